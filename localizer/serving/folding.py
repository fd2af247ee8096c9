"""An inference-only copy of a localizer with each BatchNormalization folded into its convolution.

At inference a BatchNormalization after a convolution is a per-channel scale and shift, so it can
live inside the convolution's kernel and bias. Keras 3 runs it as four element-wise ops (Mul, Sub,
Mul, AddV2) over the whole feature map, and between the convolution and its ReLU6 it also keeps
TensorFlow's CPU fusions (Conv2D + BiasAdd + Relu6 into one oneDNN kernel) from applying. In the
default model (EfficientNet-Lite0) that is 49 BatchNormalizations: about a third of the
SavedModel's CPU time (RESULTS.md, "Serving speed"). The TFLite converter folds them itself; this
does the same for the SavedModel that TF Serving runs.

Only the serving graph uses the copy (`localizer.serving.graph`). The export then checks the
written SavedModel against the ORIGINAL model (`localizer.serving.verify`), so a wrong fold
cannot be published.
"""

import keras
import numpy as np

from localizer import model as model_lib

FOLDABLE = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
"""Convolutions a following BatchNormalization folds into (their kernels' last axis, or last two
for depthwise, are the output channels)."""


def fold_batch_norms(model):
    """A functional copy of `model` (nested functional models too) whose foldable pairs
    (`foldable_pairs`) are one convolution with a bias; every other layer is shared, not copied.

    Equal to `model(x, training=False)` up to float rounding; for inference only (the folded
    convolutions are new layers, training the copy would not train `model`).
    """
    pairs = foldable_pairs(model)
    folded = {id(norm) for norm in pairs.values()}

    def clone(layer):
        if _is_functional(layer):
            return fold_batch_norms(layer)
        if layer.name in pairs:
            return layer.__class__.from_config({**layer.get_config(), "use_bias": True})
        if id(layer) in folded:
            return keras.layers.Identity(name=layer.name)
        return layer  # shared, with its weights

    def call(layer, *args, **kwargs):
        if isinstance(layer, keras.layers.Identity):
            # The graph recorded BatchNormalization's call, which takes a mask; Identity does not.
            kwargs.pop("mask", None)
        return layer(*args, **kwargs)

    copy = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for name, norm in pairs.items():
        copy.get_layer(name).set_weights(folded_weights(model.get_layer(name), norm))
    if getattr(model, "metadata", None) is not None:
        # clone_model rebuilds a Localizer from its graph alone, without what it was trained for.
        copy = model_lib.Localizer(
            copy.input, copy.output, name=model.name, metadata=model.metadata
        )
    return copy


def foldable_pairs(model):
    """`{convolution name: the BatchNormalization after it}` for the pairs of this model's own
    graph (not nested models) where folding changes nothing else.

    The convolution: Conv2D or DepthwiseConv2D, channels last, no activation of its own, called
    once, and read only by the BatchNormalization; the BatchNormalization normalizes the last
    axis and is called once.
    """
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        conv = _single_producer(layer)
        if (
            isinstance(conv, FOLDABLE)
            and conv.data_format == "channels_last"
            and conv.activation is keras.activations.linear
            and len(conv._inbound_nodes) == 1
            and len(conv._outbound_nodes) == 1
            and layer.axis in (-1, len(conv.output.shape) - 1)
        ):
            pairs[conv.name] = layer
    return pairs


def folded_weights(conv, norm):
    """`[kernel, bias]` of `conv` followed by `norm` at inference, as one convolution.

    norm(y) = (y - mean) * gamma / sqrt(variance + epsilon) + beta, per output channel c, so
    kernel'[..., c] = kernel[..., c] * s[c] and bias' = (bias - mean) * s + beta with
    s = gamma / sqrt(variance + epsilon). Computed in float64, stored in the kernel's dtype.
    """
    mean = _array(norm.moving_mean)
    scale = (_array(norm.gamma) if norm.scale else 1.0) / np.sqrt(
        _array(norm.moving_variance) + norm.epsilon
    )
    shift = _array(norm.beta) if norm.center else 0.0
    kernel = _array(conv.kernel)
    bias = _array(conv.bias) if conv.use_bias else np.zeros_like(mean)
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        # [kh, kw, in, multiplier]: output channel i * multiplier + m.
        kernel = (kernel.reshape(*kernel.shape[:2], -1) * scale).reshape(kernel.shape)
    else:
        kernel = kernel * scale
    dtype = conv.kernel.dtype
    return [kernel.astype(dtype), ((bias - mean) * scale + shift).astype(dtype)]


def _array(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), np.float64)


def _single_producer(layer):
    """The layer whose output `layer` reads, when `layer` is called once on one tensor; else
    None."""
    nodes = layer._inbound_nodes
    if len(nodes) != 1 or len(nodes[0].parent_nodes) != 1:
        return None
    return nodes[0].parent_nodes[0].operation


def _is_functional(layer):
    """A functional (or Sequential) model, which `keras.models.clone_model` can rebuild; a
    subclassed model cannot and is kept as it is."""
    return isinstance(layer, keras.Model) and getattr(layer, "_nodes_by_depth", None) is not None

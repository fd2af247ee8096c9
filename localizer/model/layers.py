"""Small serializable layers the model needs (no `Lambda` anywhere, so `.keras`
files load with `safe_mode=True`): preprocessing, packing, the metadata layer. The
box head's geometry layers are in `box_layers`.
"""

import keras
from keras import ops

_PACKAGE = "localizer"

# Per-channel statistics of ImageNet in RGB, on a 0..255 scale.
_IMAGENET_MEAN = (123.675, 116.28, 103.53)
_IMAGENET_STD = (58.395, 57.12, 57.375)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

PREPROCESSING_MODES = ("none", "tf", "torch", "caffe")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ImagePreprocessing(keras.layers.Layer):
    """Maps raw RGB pixels in [0, 255] to what a backbone was trained on.

    Modes follow `keras.applications.imagenet_utils.preprocess_input`:
      none: unchanged (backbones that normalize inside, e.g. EfficientNet),
      tf: scaled to [-1, 1] (MobileNetV2),
      torch: [0, 1] then ImageNet mean/std,
      caffe: RGB -> BGR then ImageNet mean subtracted (ResNet50).
    """

    def __init__(self, mode="none", **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(
                f"Unknown preprocessing mode {mode!r}; expected one of {PREPROCESSING_MODES}."
            )
        self.mode = mode

    def call(self, images):
        x = ops.cast(images, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            return (x - ops.array(_IMAGENET_MEAN, x.dtype)) / ops.array(_IMAGENET_STD, x.dtype)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.array(_CAFFE_MEAN_BGR, x.dtype)
        return x

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class StopGradient(keras.layers.Layer):
    """Identity forward, no gradient backward: what the box-quality head reads, it cannot bend."""

    def call(self, x):
        return ops.stop_gradient(x)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Squeeze(keras.layers.Layer):
    """`[B, 1]` -> `[B]` (float32): one number per image as an output of its own."""

    def call(self, x):
        return ops.cast(ops.squeeze(x, axis=-1), "float32")

    def compute_output_shape(self, input_shape):
        return input_shape[:-1]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PackQualityAndBox(keras.layers.Layer):
    """The training view's `QUALITY_AND_BOX`: `[quality [B], box [B, 4]]` -> `[B, 5]`, the box
    gradient-stopped.

    A Keras loss sees only its own output; `losses.BoxQualityLoss` needs the
    predicted box to compute its target, the box's IoU with the truth, and
    that target must not pull the box.
    """

    def call(self, inputs):
        quality, box = inputs
        return ops.concatenate(
            [ops.cast(quality, "float32")[:, None], ops.stop_gradient(ops.cast(box, "float32"))],
            axis=-1,
        )

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], 5)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PackFineFeatures(keras.layers.Layer):
    """Packs a backbone's stride-16 map into its stride-32 one, losslessly.

    Inputs `[coarse [B, h, w, C], fine [B, 2h, 2w, c]]`; output `[B, h, w, C +
    4c]` = concat(coarse, space-to-depth(fine)). One tensor per image keeps
    the frozen-feature cache, the heads' input and the model's wiring as they
    are for a single feature map; `UnpackFineFeatures` inverts it exactly.
    """

    def call(self, inputs):
        coarse, fine = inputs
        shape = ops.shape(coarse)
        height, width, channels = shape[1], shape[2], ops.shape(fine)[-1]
        fine = ops.reshape(fine, (-1, height, 2, width, 2, channels))
        fine = ops.reshape(
            ops.transpose(fine, (0, 1, 3, 2, 4, 5)), (-1, height, width, 4 * channels)
        )
        return ops.concatenate([coarse, ops.cast(fine, coarse.dtype)], axis=-1)

    def compute_output_shape(self, input_shapes):
        coarse, fine = input_shapes
        return (*coarse[:3], coarse[3] + 4 * fine[3])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UnpackFineFeatures(keras.layers.Layer):
    """Inverse of `PackFineFeatures`: `[B, h, w, C + 4c]` -> `[coarse [B, h, w, C], fine [B, 2h, 2w,
    c]]`."""

    def __init__(self, fine_channels, **kwargs):
        super().__init__(**kwargs)
        self.fine_channels = int(fine_channels)

    def call(self, packed):
        shape = ops.shape(packed)
        height, width, c = shape[1], shape[2], self.fine_channels
        coarse = packed[..., : packed.shape[-1] - 4 * c]
        fine = ops.reshape(packed[..., packed.shape[-1] - 4 * c :], (-1, height, width, 2, 2, c))
        fine = ops.reshape(ops.transpose(fine, (0, 1, 3, 2, 4, 5)), (-1, 2 * height, 2 * width, c))
        return [coarse, fine]

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        double = lambda n: None if n is None else 2 * n  # noqa: E731
        return [
            (batch, height, width, channels - 4 * self.fine_channels),
            (batch, double(height), double(width), self.fine_channels),
        ]

    def get_config(self):
        return {**super().get_config(), "fine_channels": self.fine_channels}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ModelMetadata(keras.layers.Layer):
    """The class-logits output layer, an identity, that held the model's metadata in models saved
    before `builder.Localizer` (which keeps it in the model's own config).

    `class_names` (label i is `class_names[i]`), `resize_mode` and
    `image_size` (how images were resized to the input) live in this layer's
    config; `localizer.model.model_metadata` reads them from such old `.keras` files.
    """

    def __init__(self, class_names=(), resize_mode="letterbox", image_size=224, **kwargs):
        super().__init__(**kwargs)
        self.class_names = list(class_names)
        self.resize_mode = resize_mode
        self.image_size = int(image_size)

    def call(self, logits):
        return logits

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "class_names": self.class_names,
            "resize_mode": self.resize_mode,
            "image_size": self.image_size,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LabelledLogits(ModelMetadata):
    """`ModelMetadata` under its former name, so that models saved before the rename still load."""

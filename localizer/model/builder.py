"""The localizer: a Keras functional model with a pretrained backbone and two heads.

    image [S, S, 3] raw RGB (uint8 or float, 0..255)
      -> "backbone" (preprocessing + pretrained CNN) -> feature map [h, w, F]
      -> "heads":
           classification: global average pool -> dropout -> Dense(C)   = "class_logits"
           box regression, attached (config.attach, `localizer.model.config`) to
             "flattened":        the flattened conv feature map (1x1 conv, flatten,
                                 dense: keeps *where*)
             "pooled":           the pooled vector (the popular tutorials' recipe)
             "attention_pooled": every cell predicts a box around itself, pooled
                                 by a learned attention map
             "centre_weighted":  FCOS/CenterNet-style: every cell predicts the
                                 object's box and a centre score, both supervised
                                 per cell; the box is the cells' boxes averaged
                                 by softmax(centre score)
           and either
             "class_agnostic": 4 numbers -> one box                      = "box"
             "per_class":      C x 4 -> a box per class ("class_boxes");
                               "box" is the predicted class's box
           box quality (config.box_quality): the predicted IoU of "box" with
             the truth, from gradient-stopped features, box and class
             probabilities                                               = "box_quality"

Boxes are BOX_FORMAT (normalized yxyx), always valid (see `BoxFromLogits`).
The inference model has two outputs, or three with "box_quality" (models
saved before it have none); the training views (`training_view`,
`features_training_view`) add the others named in `localizer.model.outputs`
over the same layers.
"""

import json

import keras

from localizer.model import backbones
from localizer.model.heads import build_heads
from localizer.model.layers import PackQualityAndBox
from localizer.model.outputs import (
    BOX,
    BOX_QUALITY,
    CLASS_BOXES,
    CLASS_LOGITS,
    INFERENCE_OUTPUTS,
    LOCALIZATION,
    QUALITY_AND_BOX,
)


@keras.saving.register_keras_serializable(package="localizer")
class Localizer(keras.Model):
    """The inference model: a functional graph that knows what it was trained for.

    Its `metadata` (`class_names`: label i is `class_names[i]`; `resize_mode` and `image_size`:
    how images were resized to the input) is part of the model's own config, so a `.keras` file
    is self-describing: evaluate, predict and export read it with `model_metadata`. Models saved
    before this class kept it in their `class_logits` layer (`layers.ModelMetadata`), where
    `model_metadata` still finds it.
    """

    def __init__(self, *args, metadata=None, **kwargs):
        super().__init__(*args, **kwargs)
        # A JSON string: immutable, and not wrapped by Keras' attribute tracking.
        self._metadata_json = json.dumps(metadata_fields(metadata)) if metadata else None

    @property
    def metadata(self):
        """`{"class_names", "resize_mode", "image_size"}`, or None when not given."""
        return json.loads(self._metadata_json) if self._metadata_json else None

    def get_config(self):
        return {**super().get_config(), "metadata": self.metadata}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        metadata = config.pop("metadata", None)
        model = super().from_config(config, custom_objects=custom_objects)
        model._metadata_json = json.dumps(metadata_fields(metadata)) if metadata else None
        return model


def metadata_fields(metadata):
    """The metadata's three fields, typed: `{"class_names": [str], "resize_mode", "image_size"}`."""
    return {
        "class_names": [str(name) for name in metadata["class_names"]],
        "resize_mode": str(metadata["resize_mode"]),
        "image_size": int(metadata["image_size"]),
    }


def build_model(config):
    """The inference model: image -> {"class_logits", "box"} (+ "box_quality" with
    `config.box_quality`).

    The backbone always runs with `training=False`, so its BatchNormalization
    layers stay in inference mode even while fine-tuning (the practice of the
    Keras fine-tuning guide: small batches would wreck their statistics).
    """
    config.validate()
    backbone = backbones.build_backbone(
        config.backbone, config.image_size, config.weights, config.feature_stride
    )
    heads = build_heads(
        tuple(backbone.output.shape[1:]), config, backbones.fine_feature_channels(backbone)
    )
    image = keras.Input((config.image_size, config.image_size, 3), name="image")
    outputs = heads(backbone(image, training=False))
    names = tuple(config.class_names) or tuple(f"class_{i}" for i in range(config.num_classes))
    return Localizer(
        image,
        {name: outputs[name] for name in INFERENCE_OUTPUTS if name in outputs},
        name="localizer",
        metadata={
            "class_names": names,
            "resize_mode": config.resize_mode,
            "image_size": config.image_size,
        },
    )


def model_metadata(model):
    """`{"class_names", "resize_mode", "image_size"}` of a localizer model: a `Localizer`'s own,
    or, in a model saved before it, what its `class_logits` layer (`ModelMetadata`) holds."""
    metadata = getattr(model, "metadata", None)
    if metadata is not None:
        return metadata
    layer = model.get_layer("heads").get_layer(CLASS_LOGITS)
    return metadata_fields(
        {
            "class_names": layer.class_names,
            "resize_mode": layer.resize_mode,
            "image_size": layer.image_size,
        }
    )


def _with_training_outputs(inputs, head_outputs):
    outputs = dict(head_outputs)
    outputs[LOCALIZATION] = keras.layers.Concatenate(name=LOCALIZATION)(
        [head_outputs[BOX], head_outputs[CLASS_LOGITS]]
    )
    if BOX_QUALITY in head_outputs:
        # Keras wants a target for every output: the quality is trained (and read) packed with its
        # box.
        outputs[QUALITY_AND_BOX] = PackQualityAndBox(name=QUALITY_AND_BOX)(
            [outputs.pop(BOX_QUALITY), head_outputs[BOX]]
        )
    return outputs


def training_view(model):
    """The model as trained: same layers, plus the outputs the losses and metrics need
    ("localization", ...)."""
    image = keras.Input(model.input.shape[1:], name="image")
    features = model.get_layer("backbone")(image, training=False)
    outputs = _with_training_outputs(image, model.get_layer("heads")(features))
    return keras.Model(image, outputs, name="localizer_training")


def prediction_view(model):
    """The inference model plus "class_boxes" for per-class heads: what inference reads, over the
    same layers."""
    image = keras.Input(model.input.shape[1:], name="image")
    outputs = model.get_layer("heads")(model.get_layer("backbone")(image, training=False))
    names = (*INFERENCE_OUTPUTS, CLASS_BOXES)
    return keras.Model(
        image,
        {name: outputs[name] for name in names if name in outputs},
        name="localizer_prediction",
    )


def features_training_view(model):
    """The heads alone on precomputed backbone features (frozen-backbone training)."""
    heads = model.get_layer("heads")
    features = keras.Input(heads.input.shape[1:], name="features")
    return keras.Model(
        features, _with_training_outputs(features, heads(features)), name="heads_training"
    )


def freeze_backbone(model):
    model.get_layer("backbone").trainable = False


def unfreeze_top_of_backbone(model, fraction):
    """Makes the top `fraction` of the backbone's layers trainable, BatchNorm excepted.

    Returns the number of layers made trainable.
    """
    backbone = model.get_layer("backbone")
    backbone.trainable = True
    layers = [layer for layer in leaf_layers(backbone) if layer.weights]
    first = int(round(len(layers) * (1.0 - fraction)))
    count = 0
    for i, layer in enumerate(layers):
        trainable = i >= first and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable
        count += trainable
    return count


def leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer

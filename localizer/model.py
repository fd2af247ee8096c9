"""The localizer: a Keras functional model with a pretrained backbone and two heads.

    image [S, S, 3] raw RGB (uint8 or float, 0..255)
      -> "backbone" (preprocessing + pretrained CNN) -> feature map [h, w, F]
      -> "heads":
           classification: global average pool -> dropout -> Dense(C)   = "class_logits"
           box regression, attached (config.attach) to
             "conv":    the spatial feature map (1x1 conv, flatten, dense: keeps *where*)
             "fc":      the pooled vector (the popular tutorials' recipe)
             "spatial": the feature map, every cell predicting a box around
                        itself, pooled by a learned attention map (shared
                        weights: translation-equivariant)
             "dense":   the feature map, FCOS/CenterNet-style: every cell
                        predicts the object's box and a centre score; both
                        supervised per cell ("centre_logits", "cell_boxes"
                        in the training views); the box is the cells' boxes
                        averaged by softmax(centre score)
           and either
             "class_agnostic": 4 numbers -> one box                      = "box"
             "per_class":      C x 4 -> a box per class ("class_boxes");
                               "box" is the predicted class's box

Boxes are BOX_FORMAT (normalized yxyx), always valid (see `BoxFromLogits`).
The inference model has exactly two outputs, "class_logits" and "box"; the
training views (`training_view`, `features_training_view`) add
"class_boxes" (per-class), "centre_logits" and "cell_boxes" (dense) and
"localization" (= box ++ logits, for the class-and-box metric) over the same
layers.
"""

import dataclasses

import keras

from localizer import backbones
from localizer.layers import (
    AttentionBoxPooling, BoxFromLogits, CellBoxes, CentreWeightedBox, LabelledLogits, SelectClassBox,
    UnpackFineFeatures,
)

ATTACH_MODES = ("conv", "fc", "spatial", "dense")
REGRESSION_MODES = ("class_agnostic", "per_class")
HEAD_CONFIGURATIONS = tuple(
    (attach, regression) for attach in ATTACH_MODES for regression in REGRESSION_MODES
    if not (attach == "dense" and regression == "per_class")
)
"""Every valid (attach, regression) pair."""

CLASS_LOGITS = "class_logits"
BOX = "box"
CLASS_BOXES = "class_boxes"
LOCALIZATION = "localization"
CENTRE_LOGITS = "centre_logits"
CELL_BOXES = "cell_boxes"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture; every field is a choice from the lecture material."""

    num_classes: int = 0  # set from the dataset
    class_names: tuple = ()  # set from the dataset; stored in the model
    resize_mode: str = "letterbox"  # how inputs are resized (set from the pipeline); stored in the model
    backbone: str = backbones.DEFAULT_BACKBONE
    weights: str = "imagenet"  # "imagenet", "none", or a weights file
    image_size: int = 224
    # 16: the backbone's stride-16 map too (small objects); the dense head
    # fuses it with the upsampled stride-32 map and predicts on the finer grid.
    feature_stride: int = 16
    attach: str = "dense"
    regression: str = "class_agnostic"
    head_units: int = 256
    conv_head_channels: int = 64
    dense_channels: int = 128  # attach="dense": width of its convolutions
    dropout: float = 0.2

    def validate(self):
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2; got {self.num_classes}.")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes.")
        if self.attach not in ATTACH_MODES:
            raise ValueError(f"attach must be one of {ATTACH_MODES}; got {self.attach!r}.")
        if self.regression not in REGRESSION_MODES:
            raise ValueError(f"regression must be one of {REGRESSION_MODES}; got {self.regression!r}.")
        if self.attach == "dense" and self.regression != "class_agnostic":
            raise ValueError(
                "attach='dense' predicts one class-agnostic box per cell; per-class regression "
                "is available with attach='conv', 'fc' or 'spatial'."
            )
        return self


def build_heads(feature_shape, config, fine_channels=0):
    """The two heads as a model named "heads": feature map -> dict of outputs.

    `fine_channels` > 0: the feature map packs a stride-16 map of that many
    channels (`backbones.build_backbone(feature_stride=16)`).
    """
    features = keras.Input(feature_shape, name="features")
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    dropped = keras.layers.Dropout(config.dropout, name="class_dropout")(pooled)
    class_logits = keras.layers.Dense(config.num_classes, dtype="float32", name="class_dense")(dropped)
    names = tuple(config.class_names) or tuple(f"class_{i}" for i in range(config.num_classes))
    class_logits = LabelledLogits(
        names, config.resize_mode, config.image_size, dtype="float32", name=CLASS_LOGITS
    )(class_logits)

    outputs = {CLASS_LOGITS: class_logits}
    if config.attach == "spatial":
        outputs.update(_spatial_box_head(features, class_logits, config))
        return keras.Model(features, outputs, name="heads")
    if config.attach == "dense":
        outputs.update(_dense_box_head(features, config, fine_channels))
        return keras.Model(features, outputs, name="heads")
    if config.attach == "conv":
        x = keras.layers.Conv2D(config.conv_head_channels, 1, activation="relu", name="box_conv")(features)
        x = keras.layers.Flatten(name="box_flatten")(x)
    else:
        x = pooled
    x = keras.layers.Dropout(config.dropout, name="box_dropout")(x)
    x = keras.layers.Dense(config.head_units, activation="relu", name="box_hidden")(x)
    # Zero-initialized: every box starts as the centred half-size box with
    # unsaturated sigmoids. Random init on large flattened conv activations
    # saturates them and the box head then stalls for epochs (measured).
    box_init = {"kernel_initializer": "zeros", "dtype": "float32"}
    if config.regression == "class_agnostic":
        raw = keras.layers.Dense(4, name="box_raw", **box_init)(x)
        outputs[BOX] = BoxFromLogits(dtype="float32", name=BOX)(raw)
    else:
        raw = keras.layers.Dense(4 * config.num_classes, name="box_raw", **box_init)(x)
        raw = keras.layers.Reshape((config.num_classes, 4), name="box_raw_per_class")(raw)
        outputs[CLASS_BOXES] = BoxFromLogits(dtype="float32", name=CLASS_BOXES)(raw)
        outputs[BOX] = SelectClassBox(dtype="float32", name=BOX)([outputs[CLASS_BOXES], class_logits])
    return keras.Model(features, outputs, name="heads")


def _spatial_box_head(features, class_logits, config):
    """Per-cell boxes pooled by attention (see `AttentionBoxPooling`)."""
    sets = 1 if config.regression == "class_agnostic" else config.num_classes
    x = keras.layers.SpatialDropout2D(config.dropout, name="box_dropout")(features)
    x = keras.layers.Conv2D(config.head_units, 3, padding="same", activation="relu", name="box_conv")(x)
    # Zero-initialized: uniform attention and mid-range boxes at the start.
    attention = keras.layers.Conv2D(sets, 1, kernel_initializer="zeros", dtype="float32", name="box_attention")(x)
    cell_boxes = keras.layers.Conv2D(4 * sets, 1, kernel_initializer="zeros", dtype="float32", name="box_cells")(x)
    boxes = AttentionBoxPooling(sets, dtype="float32", name=CLASS_BOXES if sets > 1 else BOX)([attention, cell_boxes])
    if sets == 1:
        return {BOX: boxes}
    return {CLASS_BOXES: boxes, BOX: SelectClassBox(dtype="float32", name=BOX)([boxes, class_logits])}


def _dense_box_head(features, config, fine_channels):
    """Per-cell boxes and centre scores, supervised per cell (see `losses.CentreLoss`, `losses.CellBoxLoss`).

    The features are first projected to `dense_channels` (1x1). With a
    packed stride-16 map, a minimal feature pyramid: both maps projected, the
    coarse one upsampled, summed; the cells are then those of the stride-16
    grid.
    """
    width = config.dense_channels
    lateral = lambda name: keras.layers.Conv2D(width, 1, activation="relu", name=name)  # noqa: E731
    if fine_channels:
        coarse, fine = UnpackFineFeatures(fine_channels, name="unpack_features")(features)
        coarse = keras.layers.UpSampling2D(2, interpolation="bilinear", name="box_upsample")(
            lateral("box_lateral_coarse")(coarse)
        )
        x = keras.layers.Add(name="box_fuse")([coarse, lateral("box_lateral_fine")(fine)])
    else:
        x = lateral("box_lateral")(features)
    x = keras.layers.SpatialDropout2D(config.dropout, name="box_dropout")(x)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name="box_conv")(x)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name="box_conv2")(x)
    # Zero-initialized: uniform centre scores and mid-range boxes at the start.
    zeros = {"kernel_initializer": "zeros", "dtype": "float32"}
    centre_logits = keras.layers.Conv2D(1, 1, name=CENTRE_LOGITS, **zeros)(x)
    cell_boxes = CellBoxes(dtype="float32", name=CELL_BOXES)(keras.layers.Conv2D(4, 1, name="box_cells", **zeros)(x))
    box = CentreWeightedBox(dtype="float32", name=BOX)([centre_logits, cell_boxes])
    return {BOX: box, CENTRE_LOGITS: centre_logits, CELL_BOXES: cell_boxes}


def build_model(config):
    """The inference model: image -> {"class_logits", "box"}.

    The backbone always runs with `training=False`, so its BatchNormalization
    layers stay in inference mode even while fine-tuning (the practice of the
    Keras fine-tuning guide: small batches would wreck their statistics).
    """
    config.validate()
    backbone = backbones.build_backbone(config.backbone, config.image_size, config.weights, config.feature_stride)
    heads = build_heads(tuple(backbone.output.shape[1:]), config, backbones.fine_feature_channels(backbone))
    image = keras.Input((config.image_size, config.image_size, 3), name="image")
    outputs = heads(backbone(image, training=False))
    model = keras.Model(image, {CLASS_LOGITS: outputs[CLASS_LOGITS], BOX: outputs[BOX]}, name="localizer")
    return model


def model_metadata(model):
    """`{"class_names", "resize_mode", "image_size"}` stored in a localizer model."""
    layer = model.get_layer("heads").get_layer(CLASS_LOGITS)
    return {"class_names": list(layer.class_names), "resize_mode": layer.resize_mode, "image_size": layer.image_size}


def _with_training_outputs(inputs, head_outputs):
    outputs = dict(head_outputs)
    outputs[LOCALIZATION] = keras.layers.Concatenate(name=LOCALIZATION)(
        [head_outputs[BOX], head_outputs[CLASS_LOGITS]]
    )
    return outputs


def training_view(model):
    """The model as trained: same layers, plus "class_boxes" and "localization" outputs."""
    image = keras.Input(model.input.shape[1:], name="image")
    features = model.get_layer("backbone")(image, training=False)
    outputs = _with_training_outputs(image, model.get_layer("heads")(features))
    return keras.Model(image, outputs, name="localizer_training")


def features_training_view(model):
    """The heads alone on precomputed backbone features (frozen-backbone training)."""
    heads = model.get_layer("heads")
    features = keras.Input(heads.input.shape[1:], name="features")
    return keras.Model(features, _with_training_outputs(features, heads(features)), name="heads_training")


def freeze_backbone(model):
    model.get_layer("backbone").trainable = False


def unfreeze_top_of_backbone(model, fraction):
    """Makes the top `fraction` of the backbone's layers trainable, BatchNorm excepted.

    Returns the number of layers made trainable.
    """
    backbone = model.get_layer("backbone")
    backbone.trainable = True
    layers = [layer for layer in _leaf_layers(backbone) if layer.weights]
    first = int(round(len(layers) * (1.0 - fraction)))
    count = 0
    for i, layer in enumerate(layers):
        trainable = i >= first and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable
        count += trainable
    return count


def _leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer

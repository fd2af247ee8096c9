"""The heads on the backbone's feature map: classification, box regression and, with
`ModelConfig.box_quality`, the box-quality head (the predicted IoU of the box).
"""

import keras

from localizer.model.box_layers import (
    AttentionBoxPooling,
    BoxFromLogits,
    CellBoxes,
    CentreWeightedBox,
    CentreWeightedFeatures,
    SelectClassBox,
    VoteAgreement,
)
from localizer.model.config import ATTENTION_POOLED, CENTRE_WEIGHTED, FLATTENED
from localizer.model.layers import Squeeze, StopGradient, UnpackFineFeatures
from localizer.model.outputs import (
    BOX,
    BOX_QUALITY,
    CELL_BOXES,
    CENTRE_LOGITS,
    CLASS_BOXES,
    CLASS_LOGITS,
)


def build_heads(feature_shape, config, fine_channels=0):
    """The heads as a model named "heads": feature map -> dict of outputs.

    `fine_channels` > 0: the feature map packs a stride-16 map of that many
    channels (`backbones.build_backbone(feature_stride=16)`).
    """
    features = keras.Input(feature_shape, name="features")
    outputs, quality_inputs = _class_and_box_heads(features, config, fine_channels)
    if config.box_quality:
        outputs[BOX_QUALITY] = _box_quality_head(outputs, quality_inputs, config)
    return keras.Model(features, outputs, name="heads")


def _box_quality_head(outputs, quality_inputs, config):
    """The predicted IoU of the box with the truth, `[B]` in [0, 1] (IoU-Net, VarifocalNet's
    IoU-aware score).

    It reads the pooled features, the box, the class probabilities and what
    the box head adds (`quality_inputs`, by name), all gradient-stopped: its
    loss (`losses.BoxQualityLoss`) trains this head alone and cannot trade
    box or class accuracy for an easier quality target.

    One dense projection per input, summed: the same function as one dense
    layer on their concatenation, but full-integer TFLite gives every input
    its own scale (a concatenation shares one, and the pooled features' range
    made the box's steps coarse: int8 boxes off by 0.08 on the check images).
    """
    inputs = {
        **quality_inputs,
        "box": outputs[BOX],
        "probabilities": keras.layers.Softmax(dtype="float32", name="quality_probabilities")(
            outputs[CLASS_LOGITS]
        ),
    }
    projected = [
        keras.layers.Dense(
            config.quality_units, use_bias=i == 0, dtype="float32", name=f"quality_from_{name}"
        )(StopGradient(dtype="float32", name=f"quality_stop_{name}")(tensor))
        for i, (name, tensor) in enumerate(inputs.items())
    ]
    x = keras.layers.ReLU(dtype="float32", name="quality_hidden")(
        keras.layers.Add(dtype="float32", name="quality_sum")(projected)
    )
    # Zero-initialized: every quality starts at 0.5.
    x = keras.layers.Dense(
        1, activation="sigmoid", kernel_initializer="zeros", dtype="float32", name="quality_dense"
    )(x)
    return Squeeze(dtype="float32", name=BOX_QUALITY)(x)


def _class_and_box_heads(features, config, fine_channels):
    """`(outputs, {name: input of the box-quality head})` on the feature map."""
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    dropped = keras.layers.Dropout(config.dropout, name="class_dropout")(pooled)
    class_logits = keras.layers.Dense(config.num_classes, dtype="float32", name="class_dense")(
        dropped
    )
    # The output's name; the model's metadata is the model's own (`builder.Localizer`).
    class_logits = keras.layers.Identity(dtype="float32", name=CLASS_LOGITS)(class_logits)

    outputs = {CLASS_LOGITS: class_logits}
    if config.attach == ATTENTION_POOLED:
        outputs.update(_attention_pooled_box_head(features, class_logits, config))
        return outputs, {"features": pooled}
    if config.attach == CENTRE_WEIGHTED:
        box_outputs, quality_inputs = _centre_weighted_box_head(features, config, fine_channels)
        outputs.update(box_outputs)
        return outputs, {"features": pooled, **quality_inputs}
    if config.attach == FLATTENED:
        x = keras.layers.Conv2D(config.conv_head_channels, 1, activation="relu", name="box_conv")(
            features
        )
        x = keras.layers.Flatten(name="box_flatten")(x)
    else:
        x = pooled
    x = keras.layers.Dropout(config.dropout, name="box_dropout")(x)
    x = keras.layers.Dense(config.head_units, activation="relu", name="box_hidden")(x)
    # Zero-initialized: every box starts as the centred half-size box with
    # unsaturated sigmoids. Random init on large flattened conv activations
    # saturates them and the box head then stalls for epochs.
    box_init = {"kernel_initializer": "zeros", "dtype": "float32"}
    if config.regression == "class_agnostic":
        raw = keras.layers.Dense(4, name="box_raw", **box_init)(x)
        outputs[BOX] = BoxFromLogits(dtype="float32", name=BOX)(raw)
    else:
        raw = keras.layers.Dense(4 * config.num_classes, name="box_raw", **box_init)(x)
        raw = keras.layers.Reshape((config.num_classes, 4), name="box_raw_per_class")(raw)
        outputs[CLASS_BOXES] = BoxFromLogits(dtype="float32", name=CLASS_BOXES)(raw)
        outputs[BOX] = SelectClassBox(dtype="float32", name=BOX)(
            [outputs[CLASS_BOXES], class_logits]
        )
    return outputs, {"features": pooled}


def _attention_pooled_box_head(features, class_logits, config):
    """Per-cell boxes pooled by attention (see `AttentionBoxPooling`)."""
    sets = 1 if config.regression == "class_agnostic" else config.num_classes
    x = keras.layers.SpatialDropout2D(config.dropout, name="box_dropout")(features)
    x = keras.layers.Conv2D(
        config.head_units, 3, padding="same", activation="relu", name="box_conv"
    )(x)
    # Zero-initialized: uniform attention and mid-range boxes at the start.
    attention = keras.layers.Conv2D(
        sets, 1, kernel_initializer="zeros", dtype="float32", name="box_attention"
    )(x)
    cell_boxes = keras.layers.Conv2D(
        4 * sets, 1, kernel_initializer="zeros", dtype="float32", name="box_cells"
    )(x)
    boxes = AttentionBoxPooling(sets, dtype="float32", name=CLASS_BOXES if sets > 1 else BOX)(
        [attention, cell_boxes]
    )
    if sets == 1:
        return {BOX: boxes}
    return {
        CLASS_BOXES: boxes,
        BOX: SelectClassBox(dtype="float32", name=BOX)([boxes, class_logits]),
    }


def _centre_weighted_box_head(features, config, fine_channels):
    """Per-cell boxes and centre scores, supervised per cell (see `losses.CentreLoss`,
    `losses.CellBoxLoss`).

    Returns `(outputs, inputs of the box-quality head)`: the features where
    the head looks and how its cells agree (`CentreWeightedFeatures`, `VoteAgreement`).

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
    cell_boxes = CellBoxes(dtype="float32", name=CELL_BOXES)(
        keras.layers.Conv2D(4, 1, name="box_cells", **zeros)(x)
    )
    box = CentreWeightedBox(dtype="float32", name=BOX)([centre_logits, cell_boxes])
    outputs = {BOX: box, CENTRE_LOGITS: centre_logits, CELL_BOXES: cell_boxes}
    if not config.box_quality:  # no layers the model does not use
        return outputs, {}
    looked_at = CentreWeightedFeatures(dtype="float32", name="quality_looked_at")(
        [centre_logits, x]
    )
    agreement = VoteAgreement(dtype="float32", name="quality_agreement")(
        [centre_logits, cell_boxes]
    )
    return outputs, {"looked_at": looked_at, "agreement": agreement}

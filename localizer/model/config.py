"""The model's configuration: architecture choices, validated."""

import dataclasses

from localizer.model import backbones
from pipelines import fields
from pipelines.input_pipeline import IMAGE_SIZE_MULTIPLE
from pipelines.render import MAX_IMAGE_SIZE, RESIZE_MODES

FLATTENED = "flattened"
"""Box head on the flattened conv feature map (1x1 conv, flatten, dense): keeps *where*."""
POOLED = "pooled"
"""Box head on the globally pooled feature vector (dense layers): the popular tutorials' recipe."""
ATTENTION_POOLED = "attention_pooled"
"""Every cell predicts a box around itself; the boxes are pooled by a learned, unsupervised
attention map."""
CENTRE_WEIGHTED = "centre_weighted"
"""FCOS/CenterNet-style: every cell predicts the object's box and a centre score, both supervised
per cell; the box is the cells' boxes averaged by the softmax of the centre scores."""

ATTACH_MODES = (FLATTENED, POOLED, ATTENTION_POOLED, CENTRE_WEIGHTED)
LEGACY_ATTACH_NAMES = {
    "conv": FLATTENED,
    "fc": POOLED,
    "spatial": ATTENTION_POOLED,
    "dense": CENTRE_WEIGHTED,
}
"""Names used before the head modes were renamed; configs and records that use them still load."""

REGRESSION_MODES = ("class_agnostic", "per_class")
HEAD_CONFIGURATIONS = tuple(
    (attach, regression)
    for attach in ATTACH_MODES
    for regression in REGRESSION_MODES
    if not (attach == CENTRE_WEIGHTED and regression == "per_class")
)
"""Every valid (attach, regression) pair."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture: where the box head attaches, how it regresses, the backbone.

    `image_size` and `resize_mode` are the model's input contract, stored in
    the model: the training pipeline renders images with them (they are not
    set anywhere else).
    """

    num_classes: int = fields.field(
        0, fields.integer(0, 100_000)
    )  # set from the dataset (>= 2 to build)
    class_names: tuple = fields.field(
        (), fields.names()
    )  # set from the dataset; stored in the model
    resize_mode: str = fields.field("letterbox", fields.choice(RESIZE_MODES))  # stored in the model
    backbone: str = fields.field(
        backbones.DEFAULT_BACKBONE,
        fields.choice(backbones.BACKBONES),
        flag="Backbone name (see localizer.backbones.BACKBONES).",
    )
    weights: str = fields.field(
        "imagenet", fields.text(), flag="imagenet, none, or a weights file."
    )
    image_size: int = fields.field(
        224,
        fields.integer(IMAGE_SIZE_MULTIPLE, MAX_IMAGE_SIZE, multiple=IMAGE_SIZE_MULTIPLE),
        flag="Model input size.",
    )
    # 16: the backbone's stride-16 map too (small objects); the dense head
    # fuses it with the upsampled stride-32 map and predicts on the finer grid.
    feature_stride: int = fields.field(16, fields.choice(backbones.FEATURE_STRIDES))
    attach: str = fields.field(CENTRE_WEIGHTED, fields.choice(ATTACH_MODES))
    regression: str = fields.field("class_agnostic", fields.choice(REGRESSION_MODES))
    head_units: int = fields.field(256, fields.integer(1, 65_536))
    conv_head_channels: int = fields.field(64, fields.integer(1, 65_536))
    dense_channels: int = fields.field(128, fields.integer(1, 65_536))  # centre_weighted's width
    dropout: float = fields.field(0.2, fields.real(0.0, 0.99))
    # A head that predicts the IoU of the model's own box (output "box_quality"):
    # a confidence in the box, which the class probability is not.
    box_quality: bool = fields.field(True, fields.boolean())
    quality_units: int = fields.field(64, fields.integer(1, 65_536))

    def __post_init__(self):
        # Frozen dataclass: normalize a legacy head name in place, once.
        object.__setattr__(self, "attach", LEGACY_ATTACH_NAMES.get(self.attach, self.attach))

    def validate(self):
        """Every field's rule (`pipelines.fields`), then what a model to build needs of them
        together."""
        fields.check(self, prefix="model.")
        if self.num_classes < 2:
            raise fields.ConfigError(f"num_classes must be >= 2; got {self.num_classes}.")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise fields.ConfigError(
                f"{len(self.class_names)} class names for {self.num_classes} classes."
            )
        if self.attach == CENTRE_WEIGHTED and self.regression != "class_agnostic":
            raise fields.ConfigError(
                f"attach={CENTRE_WEIGHTED!r} predicts one class-agnostic box per cell; per-class "
                f"regression is available with attach={FLATTENED!r}, {POOLED!r} or "
                f"{ATTENTION_POOLED!r}."
            )
        return self

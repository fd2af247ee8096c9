"""The model's configuration: architecture choices, validated."""

import dataclasses

from localizer.model import backbones

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

    num_classes: int = 0  # set from the dataset
    class_names: tuple = ()  # set from the dataset; stored in the model
    resize_mode: str = "letterbox"  # one of pipelines.render.RESIZE_MODES; stored in the model
    backbone: str = backbones.DEFAULT_BACKBONE
    weights: str = "imagenet"  # "imagenet", "none", or a weights file
    image_size: int = 224
    # 16: the backbone's stride-16 map too (small objects); the dense head
    # fuses it with the upsampled stride-32 map and predicts on the finer grid.
    feature_stride: int = 16
    attach: str = CENTRE_WEIGHTED  # one of ATTACH_MODES
    regression: str = "class_agnostic"
    head_units: int = 256
    conv_head_channels: int = 64
    dense_channels: int = 128  # attach=CENTRE_WEIGHTED: width of its convolutions
    dropout: float = 0.2
    # A head that predicts the IoU of the model's own box (output "box_quality"):
    # a confidence in the box, which the class probability is not.
    box_quality: bool = True
    quality_units: int = 64

    def __post_init__(self):
        # Frozen dataclass: normalize a legacy head name in place, once.
        object.__setattr__(self, "attach", LEGACY_ATTACH_NAMES.get(self.attach, self.attach))

    def validate(self):
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2; got {self.num_classes}.")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes.")
        if self.attach not in ATTACH_MODES:
            raise ValueError(f"attach must be one of {ATTACH_MODES}; got {self.attach!r}.")
        if self.regression not in REGRESSION_MODES:
            raise ValueError(
                f"regression must be one of {REGRESSION_MODES}; got {self.regression!r}."
            )
        if self.attach == CENTRE_WEIGHTED and self.regression != "class_agnostic":
            raise ValueError(
                f"attach={CENTRE_WEIGHTED!r} predicts one class-agnostic box per cell; per-class regression "
                f"is available with attach={FLATTENED!r}, {POOLED!r} or {ATTENTION_POOLED!r}."
            )
        return self

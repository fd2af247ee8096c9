"""Shared pieces of the experiment configs."""

import os

from localizer.training.config import DataConfig, TrainConfig, replace_fields

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REALMIX_DIR = os.path.join(REPO_ROOT, "..", "shared", "data", "realmix")


def realmix_data():
    """Realmix (../shared/data/realmix): train on `train`, measure on `val`."""
    return DataConfig(
        dataset="voc_dir",
        data_dir=os.path.normpath(REALMIX_DIR),
        train_split="train",
        val_split="val",
    )


def replace(config, **changes):
    """`replace(c, **{"model.attach": "pooled"})`: `localizer.training.config.replace_fields`."""
    return replace_fields(config, changes)


BEFORE_BOX_QUALITY = {"model.box_quality": False}
"""The recorded experiments ran before the box-quality head (issue 14): pinned off so that
their configs still reproduce their records; an experiment drops the pin when it is rerun with
it."""


BEFORE_BETTER_BOXES = {"fine_tune_fraction": 0.4, "fine_tune_epochs": 20}
"""The default's fine-tuning before issue 14's better-boxes candidates were measured: pinned for the
runs recorded with it (and the candidates, each one change against it)."""


def default_recipe(**changes):
    """Today's default recipe on realmix, with `changes` applied."""
    return replace(TrainConfig(data=realmix_data()), **changes)


def realmix(**changes):
    """The default recipe on realmix as the recorded runs had it (without the box-quality head,
    `BEFORE_BOX_QUALITY`; `BEFORE_BETTER_BOXES`), with `changes` applied.
    """
    return replace(
        TrainConfig(data=realmix_data()), **{**BEFORE_BOX_QUALITY, **BEFORE_BETTER_BOXES, **changes}
    )


def candidate(**changes):
    """Issue 14's better-boxes candidates: one change each against the default they were measured
    against
    (the box-quality head on, `BEFORE_BETTER_BOXES`).
    """
    return realmix(**{"model.box_quality": True, **changes})


CONV_RECIPE = {
    "model.attach": "flattened",
    "model.feature_stride": 32,
    "fine_tune_fraction": 0.3,
    "pipeline.augment.crop_area_range": (0.25, 1.0),
    "best_metric": "localization_accuracy",
}
"""The first ladder's recipe (the default before the dense head): flatten +
dense box head on stride-32 features, crops down to 25% of the image, top 30%
of the backbone fine-tuned, best epoch by localization accuracy. Pinned here so
those rows mean what was run."""


def realmix_conv(**changes):
    """`CONV_RECIPE` on realmix, with `changes` applied."""
    return realmix(**{**CONV_RECIPE, **changes})


def frozen_reference(**changes):
    """The reference of the one-change-at-a-time comparisons (experiments `frozen_*`).

    `realmix_aug_features`: the heads on 5 passes of frozen EfficientNet-Lite0
    features (1 plain + 4 augmented), 30 epochs, `CONV_RECIPE` (conv-attached
    class-agnostic box head on stride-32 features), GIoU, alpha 0.5, 224 px. Cheap (~3 min on 2
    cores), so each
    choice is compared at the same budget.
    """
    return realmix_conv(
        **{"frozen_epochs": 30, "feature_passes": 5, "fine_tune_epochs": 0, **changes}
    )

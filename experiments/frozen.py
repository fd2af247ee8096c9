"""One change at a time against the frozen reference: heads only, on frozen features.

The reference: the first ladder's recipe (`experiments.common.CONV_RECIPE`: flatten + dense box
head on stride-32 features of EfficientNet-Lite0) with the heads trained for 30 epochs on 5
passes of frozen features (1 plain + 4 augmented) and no fine-tuning, GIoU, alpha 0.5, 224 px.
Cheap (a few minutes on 2 cores), so each choice is compared at the same budget; `reference_seed1`
is the run-to-run noise the other rows are read against.

    python -m experiments.run frozen_alpha_025          # by name (realmix_aug_features: reference)
    python -m localizer.train --config=experiments/frozen.py:alpha_025 \
        --workdir=work/frozen_alpha_025

Results: experiments/RESULTS.md, "One change at a time against the frozen reference".
"""

from experiments.common import conv_recipe, variant
from pipelines.augment import AugmentConfig

FROZEN_ONLY = {"frozen_epochs": 30, "feature_passes": 5, "fine_tune_epochs": 0}

VARIANTS = {
    "reference": {},
    "reference_seed1": {"seed": 1},
    "plain": {"feature_passes": 1},  # one un-augmented pass
    "no_aug": {"pipeline.augment": AugmentConfig.off()},  # 5 passes of the same plain features
    "fc_head": {"model.attach": "pooled"},
    "per_class": {"model.regression": "per_class"},
    "spatial": {"model.attach": "attention_pooled"},
    "dense_head": {"model.attach": "centre_weighted"},
    "conv16": {"model.feature_stride": 16},
    "dense16": {"model.attach": "centre_weighted", "model.feature_stride": 16},
    "loss_l2": {"box_loss": "l2"},
    "loss_smooth_l1": {"box_loss": "smooth_l1"},
    "loss_diou": {"box_loss": "diou"},
    "loss_ciou": {"box_loss": "ciou"},
    "alpha_025": {"alpha": 0.25},
    "alpha_075": {"alpha": 0.75},
}
"""Each variant's change against the reference."""

NAMES = {
    "reference": "realmix_aug_features",
    "spatial": "realmix_spatial",
    "plain": "realmix_frozen_plain",
}
"""Experiment names that are not `frozen_<variant>` (the ladder's names for these runs)."""


def get_config(arg="reference"):
    return conv_recipe(**{**FROZEN_ONLY, **variant(VARIANTS, arg, __file__)})

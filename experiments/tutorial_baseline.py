"""Baseline: the recipe of the popular Keras localization tutorials, on realmix.

Frozen ImageNet backbone, global-average-pooled features, dense heads (no box-quality head), L2
box loss, no augmentation (EfficientNet-Lite0, 224 px).

    python -m localizer.train --experiment=tutorial_baseline --workdir=work/tutorial_baseline

Result: experiments/RESULTS.md, row "tutorial_baseline".
"""

from experiments.common import conv_recipe
from pipelines.augment import AugmentConfig


def get_config():
    return conv_recipe(
        **{
            "model.attach": "pooled",
            "model.box_quality": False,
            "box_loss": "l2",
            "pipeline.augment": AugmentConfig.off(),
            "cache_features": True,
            "frozen_epochs": 30,
            "fine_tune_epochs": 0,
            "label_smoothing": 0.0,
        }
    )

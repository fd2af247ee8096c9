"""Baseline: the recipe of the popular Keras localization tutorials, on realmix.

Frozen ImageNet backbone, global-average-pooled features, dense heads, L2 box
loss, no augmentation (EfficientNet-Lite0, 224 px).

    python -m localizer.train --experiment=tutorial_baseline --workdir=work/tutorial_baseline

Result: see experiments/RESULTS.md (row "tutorial_baseline").
"""

from experiments.common import realmix_conv
from pipelines.augment import AugmentConfig


def get_config():
    return realmix_conv(
        **{
            "model.attach": "pooled",
            "box_loss": "l2",
            "pipeline.augment": AugmentConfig.off(),
            "cache_features": True,
            "frozen_epochs": 30,
            "fine_tune_epochs": 0,
            "label_smoothing": 0.0,
        }
    )

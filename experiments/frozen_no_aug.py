"""Augmentation off: 5 passes of the same un-augmented features instead of 1 plain + 4 augmented
(realmix).

One change from the frozen reference (`experiments.common.frozen_reference`,
= realmix_aug_features): heads on 5 passes of frozen EfficientNet-Lite0
features, 30 epochs, 224 px.

    python -m experiments.run frozen_no_aug

Result: experiments/RESULTS.md, row "frozen_no_aug".
"""

from experiments.common import frozen_reference
from pipelines.augment import AugmentConfig


def get_config():
    return frozen_reference(**{"pipeline.augment": AugmentConfig.off()})

"""Loss weighting alpha = 0.25 (0.25 * CE + 0.75 * box) instead of 0.5 (realmix).

One change from the frozen reference (`experiments.common.frozen_reference`,
= realmix_aug_features): heads on 5 passes of frozen EfficientNet-Lite0
features, 30 epochs, 224 px.

    python -m experiments.run frozen_alpha_025

Result: experiments/RESULTS.md, row "frozen_alpha_025".
"""

from experiments.common import frozen_reference


def get_config():
    return frozen_reference(alpha=0.25)

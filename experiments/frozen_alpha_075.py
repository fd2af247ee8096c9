"""Loss weighting alpha = 0.75 (0.75 * CE + 0.25 * box) instead of 0.5 (realmix).

One change from the frozen reference (`experiments.common.frozen_reference`,
= realmix_aug_features): heads on 5 passes of frozen EfficientNet-Lite0
features, 30 epochs, 224 px.

    python -m experiments.run frozen_alpha_075

Result: experiments/RESULTS.md, row "frozen_alpha_075".
"""

from experiments.common import frozen_reference


def get_config():
    return frozen_reference(alpha=0.75)

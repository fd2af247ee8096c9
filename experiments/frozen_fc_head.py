"""Box regression after the pooled (FC) vector instead of the conv features (realmix).

One change from the frozen reference (`experiments.common.frozen_reference`,
= realmix_aug_features): heads on 5 passes of frozen EfficientNet-Lite0
features, 30 epochs, 224 px.

    python -m experiments.run frozen_fc_head

Result: experiments/RESULTS.md, row "frozen_fc_head".
"""

from experiments.common import frozen_reference


def get_config():
    return frozen_reference(**{"model.attach": "pooled"})

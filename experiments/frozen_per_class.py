"""Per-class box regression (C boxes; the predicted class's box) instead of class-agnostic
(realmix).

One change from the frozen reference (`experiments.common.frozen_reference`,
= realmix_aug_features): heads on 5 passes of frozen EfficientNet-Lite0
features, 30 epochs, 224 px.

    python -m experiments.run frozen_per_class

Result: experiments/RESULTS.md, row "frozen_per_class".
"""

from experiments.common import frozen_reference


def get_config():
    return frozen_reference(**{"model.regression": "per_class"})

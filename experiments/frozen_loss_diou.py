"""Box loss DIoU instead of GIoU (realmix).

One change from the frozen reference (`experiments.common.frozen_reference`,
= realmix_aug_features): heads on 5 passes of frozen EfficientNet-Lite0
features, 30 epochs, 224 px.

    python -m experiments.run frozen_loss_diou

Result: experiments/RESULTS.md, row "frozen_loss_diou".
"""

from experiments.common import frozen_reference


def get_config():
    return frozen_reference(box_loss="diou")

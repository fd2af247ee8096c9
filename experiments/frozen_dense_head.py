"""The dense (FCOS/CenterNet-style) box head instead of flatten + dense (realmix).

Every cell of the feature map predicts the object's box and a centre score;
training supervises the cells near the true centre directly (centre map
towards a Gaussian, per-cell GIoU), and the box is the cells' boxes averaged by
softmax(centre score). One change from the frozen reference
(`experiments.common.frozen_reference`, = realmix_aug_features).

    python -m experiments.run frozen_dense_head

Result: experiments/RESULTS.md, row "frozen_dense_head".
"""

from experiments.common import frozen_reference


def get_config():
    return frozen_reference(**{"model.attach": "centre_weighted"})

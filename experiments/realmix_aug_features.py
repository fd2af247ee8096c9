"""Frozen backbone, heads trained on features of 5 augmented passes (realmix).

    python -m localizer.train --experiment=realmix_aug_features --workdir=work/realmix_aug_features

Result: see experiments/RESULTS.md.
"""

from experiments.common import realmix_conv


def get_config():
    return realmix_conv(frozen_epochs=30, feature_passes=5, fine_tune_epochs=0)

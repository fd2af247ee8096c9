"""Per-cell boxes pooled by an unsupervised attention map instead of flatten + dense.

On 5 augmented frozen-feature passes (realmix); compare with
realmix_aug_features (flatten + dense), which it equals otherwise.

    python -m localizer.train --experiment=realmix_spatial --workdir=work/realmix_spatial

Result: see experiments/RESULTS.md.
"""

from experiments.common import realmix_conv


def get_config():
    return realmix_conv(
        **{
            "model.attach": "attention_pooled",
            "frozen_epochs": 30,
            "feature_passes": 5,
            "fine_tune_epochs": 0,
        }
    )

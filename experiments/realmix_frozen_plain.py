"""Box head on the conv features (flatten + dense), GIoU, on one plain frozen-feature pass.

One un-augmented pass, no fine-tuning (realmix); `CONV_RECIPE`. The step
after tutorial_baseline.

    python -m localizer.train --experiment=realmix_frozen_plain --workdir=work/realmix_frozen_plain

Result: see experiments/RESULTS.md.
"""

from experiments.common import realmix_conv


def get_config():
    return realmix_conv(frozen_epochs=30, feature_passes=1, fine_tune_epochs=0)

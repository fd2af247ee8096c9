"""What `make train` runs with no arguments: the default model on synthetic data, frozen backbone.

The synthetic dataset, frozen EfficientNet-Lite0, heads on 2 feature passes;
a few minutes on 2 CPU cores.

    make train
    python -m localizer.train --experiment=quickstart --workdir=work/quickstart

Result: experiments/RESULTS.md, row "quickstart".
"""

from experiments.common import replace
from localizer.training.config import default_config


def get_config():
    return replace(default_config(), frozen_epochs=12, feature_passes=2, fine_tune_epochs=0)

"""`realmix_dense16` without ImageNet pretraining: EfficientNet-Lite0 from random weights.

What pretraining is worth: the same architecture and budget, weights=None,
and the whole backbone fine-tuned (fraction 1.0; BatchNorm stays in inference
mode, as in every recipe here).

    python -m experiments.run backbone_lite0_scratch

Result: experiments/RESULTS.md, row "backbone_lite0_scratch".
"""

from experiments.common import realmix
from experiments.realmix_dense16 import DENSE16


def get_config():
    return realmix(**{**DENSE16, "model.weights": "none", "fine_tune_fraction": 1.0})

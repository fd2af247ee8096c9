"""`realmix_default` (the default recipe) without ImageNet pretraining: EfficientNet-Lite0 from
random weights.

What pretraining is worth: the same architecture and budget, weights=None,
and the whole backbone fine-tuned (fraction 1.0; BatchNorm stays in inference
mode, as in every recipe here).

    python -m experiments.run backbone_lite0_scratch

Result: experiments/RESULTS.md, row "backbone_lite0_scratch".
"""

from experiments.common import realmix


def get_config():
    return realmix(**{"model.weights": "none", "fine_tune_fraction": 1.0})

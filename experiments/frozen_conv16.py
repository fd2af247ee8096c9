"""Stride-16 features with the flatten + dense (conv) box head: which half of frozen_dense16 helps?

The frozen reference (`experiments.common.frozen_reference`, conv head) given
the same stride-16 + stride-32 features as `frozen_dense16` (packed into the
7x7 map as extra channels). Against `frozen_dense_head` (dense head, stride
32 only) it separates the two changes.

    python -m experiments.run frozen_conv16

Result: experiments/RESULTS.md, row "frozen_conv16".
"""

from experiments.common import frozen_reference


def get_config():
    return frozen_reference(**{"model.feature_stride": 16})

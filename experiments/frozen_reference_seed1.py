"""The frozen reference again with another seed: how much of a difference is noise.

`realmix_aug_features` (= `experiments.common.frozen_reference()`) with seed 1
instead of 0: other augmentations, shuffling and head initialization. The gap
between the two rows is the run-to-run noise against which the one-change
`frozen_*` rows should be read.

    python -m experiments.run frozen_reference_seed1

Result: experiments/RESULTS.md, row "frozen_reference_seed1".
"""

from experiments.common import frozen_reference


def get_config():
    return frozen_reference(seed=1)

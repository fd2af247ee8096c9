"""`realmix_default` (the default recipe) again with seed 1: how much of a difference between its
rows is noise.

    python -m experiments.run realmix_default_seed1

Result: experiments/RESULTS.md, row "realmix_default_seed1".
"""

from experiments.common import default_recipe


def get_config():
    return default_recipe(seed=1)

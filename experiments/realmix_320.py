"""realmix_conv_two_stage at 320 px input (small objects such as plates and boards need pixels).

    python -m localizer.train --experiment=realmix_320 --workdir=work/realmix_320

Result: see experiments/RESULTS.md.
"""

from experiments.common import realmix_conv


def get_config():
    return realmix_conv(**{"model.image_size": 320})

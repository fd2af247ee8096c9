"""The first ladder's two-stage recipe (the default before the dense head) on realmix.

`CONV_RECIPE`: flatten + dense box head on stride-32 features. Heads on 5
augmented frozen-feature passes (12 epochs), then the top 30% of the backbone
fine-tuned with augmentation (10 epochs, lr 1e-4).

    python -m experiments.run realmix_conv_two_stage
    python -m localizer.train --experiment=realmix_conv_two_stage
    --workdir=work/realmix_conv_two_stage

Result: experiments/RESULTS.md, row "realmix_conv_two_stage".
"""

from experiments.common import realmix_conv


def get_config():
    return realmix_conv()

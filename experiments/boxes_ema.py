"""`boxes_reference` (the default before these candidates) validated, selected and saved with an
exponential moving average of its weights (momentum 0.99 per step).

    python -m experiments.run boxes_ema

Issue 14's candidate "an exponential moving average of the weights"
(`TrainConfig.ema_momentum`): at 25 fine-tuning steps an epoch, 0.99 averages
about the last four epochs. Result: experiments/RESULTS.md, row "boxes_ema".
"""

from experiments.common import candidate


def get_config():
    return candidate(ema_momentum=0.99)

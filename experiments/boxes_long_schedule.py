"""`boxes_reference` (the default before these candidates) with a fine-tuning stage twice as long
(40 epochs instead of 20).

    python -m experiments.run boxes_long_schedule

Issue 14's candidate "longer schedules": the default's validation IoU still
rises at its last fine-tuning epochs. Result: experiments/RESULTS.md, row "boxes_long_schedule".
"""

from experiments.common import candidate


def get_config():
    return candidate(fine_tune_epochs=40)

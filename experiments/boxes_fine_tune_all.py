"""`boxes_reference` (the default before these candidates) with all of the backbone fine-tuned
(BatchNorm still frozen) instead of its top 40%.

    python -m experiments.run boxes_fine_tune_all

Issue 14's first candidate for better boxes: more of the features tuned to
boxes. Result: experiments/RESULTS.md, row "boxes_fine_tune_all".
"""

from experiments.common import candidate


def get_config():
    return candidate(fine_tune_fraction=1.0)

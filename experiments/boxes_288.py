"""`boxes_reference` (the default before these candidates) at 288 px instead of 224: an 18x18 box
grid instead of 14x14 (stride 16).

    python -m experiments.run boxes_288

Issue 14's candidate "a finer grid for small objects": more pixels and cells
on a small object, at about 1.65x the compute per image.
Result: experiments/RESULTS.md, row "boxes_288".
"""

from experiments.common import candidate


def get_config():
    return candidate(**{"model.image_size": 288})

"""Better boxes: one change at a time against the default recipe as it was before these candidates.

The reference (`reference`) is today's default recipe on realmix with the fine-tuning it had then:
the top 40% of the backbone for 20 epochs. `fine_tune_all` and `long_schedule` each gave better
boxes, and together they became the default (`realmix_default`).

    python -m experiments.run boxes_ema                 # by name: boxes_<variant>
    python -m localizer.train --config=experiments/boxes.py:ema --workdir=work/boxes_ema

Results: experiments/RESULTS.md, "Better boxes".
"""

from experiments.common import default_recipe, variant

BEFORE = {"fine_tune_fraction": 0.4, "fine_tune_epochs": 20}
"""The fine-tuning these candidates were measured against."""

VARIANTS = {
    "reference": {},
    # More of the features tuned to boxes: all of the backbone (BatchNorm still frozen).
    "fine_tune_all": {"fine_tune_fraction": 1.0},
    # The validation IoU still rose at the last fine-tuning epochs: twice as many.
    "long_schedule": {"fine_tune_epochs": 40},
    # Validated, selected and saved with an exponential moving average of the weights (0.99 per
    # step: at 25 steps an epoch, about the last four epochs).
    "ema": {"ema_momentum": 0.99},
    # A quarter of the training views drawn as the zoomed refinement sees them
    # (`pipelines.augment.random_zoom_view`): the same head, trained also on its windows.
    "zoom_views": {"pipeline.augment.zoom_view_prob": 0.25},
    # A finer grid for small objects: 18x18 cells instead of 14x14, about 1.65x the compute.
    "288": {"model.image_size": 288},
}


def get_config(arg="reference"):
    return default_recipe(**{**BEFORE, **variant(VARIANTS, arg, __file__)})

"""`boxes_reference` (the default before these candidates) with a quarter of the training views
drawn as the zoomed refinement would see them.

    python -m experiments.run boxes_zoom_views

Issue 14's candidate "a second-stage head trained on zoomed views", in its
cheapest form: the same head, trained also on the refinement's windows
(`pipelines.augment.random_zoom_view`: the test-time zoom window around a box
up to 15% off the truth), instead of a second head. Result:
experiments/RESULTS.md, row "boxes_zoom_views".
"""

from experiments.common import candidate


def get_config():
    return candidate(**{"pipeline.augment.zoom_view_prob": 0.25})

"""Tests of localizer/ops/views.py: the test-time views, how their boxes map back and merge
(refinement, box quality).
"""

import numpy as np
import pytest
import tensorflow as tf

from localizer.ops import views
from pipelines import boxes as box_lib
from pipelines import render


def test_multicrop_merge_hand_made_case():
    # Four views: the whole image (view 0), a crop that agrees, a crop that
    # agrees less confidently, and a corner crop that cut the object and
    # predicts a truncated box with high confidence.
    boxes = tf.constant(
        [
            [
                [0.2, 0.2, 0.6, 0.6],
                [0.22, 0.2, 0.62, 0.6],
                [0.2, 0.24, 0.6, 0.64],
                [0.4, 0.4, 0.6, 0.6],
            ]
        ]
    )
    probabilities = tf.constant([[[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.9, 0.1]]])
    box, merged, _, _ = views.merge_views(boxes, probabilities)
    # Mean probabilities pick class 0 (0.65). The truncated box overlaps view 0
    # with IoU 0.25 < 0.5 and is left out; the others weigh 0.8, 0.6, 0.3.
    expected = (0.8 * boxes[0, 0] + 0.6 * boxes[0, 1] + 0.3 * boxes[0, 2]) / 1.7
    np.testing.assert_allclose(box[0], expected, atol=1e-6)
    np.testing.assert_allclose(merged[0], [0.65, 0.35], atol=1e-6)
    # Without the agreement test the truncated box would pull the result.
    everything = views.merge_views(boxes, probabilities, agreement_iou=0.0).boxes
    assert not np.allclose(everything[0], expected, atol=1e-3)


def test_per_class_boxes_merge_per_class():
    boxes = tf.constant([[[0.2, 0.2, 0.6, 0.6], [0.2, 0.2, 0.6, 0.6]]])
    probabilities = tf.constant([[[0.9, 0.1], [0.5, 0.5]]])
    class_boxes = tf.constant(
        [
            [
                [[0.2, 0.2, 0.6, 0.6], [0.0, 0.0, 0.5, 0.5]],
                [[0.2, 0.2, 0.6, 0.6], [0.0, 0.0, 0.6, 0.5]],
            ]
        ]
    )
    merged = views.merge_views(boxes, probabilities, class_boxes).class_boxes
    # Class 1: views weigh 0.1 and 0.5 (both agree with view 0's class-1 box).
    np.testing.assert_allclose(
        merged[0, 1], [0.0, 0.0, (0.1 * 0.5 + 0.5 * 0.6) / 0.6, 0.5], atol=1e-6
    )
    np.testing.assert_allclose(merged[0, 0], [0.2, 0.2, 0.6, 0.6], atol=1e-6)


@pytest.mark.parametrize("mode", views.TTA_MODES)
@pytest.mark.parametrize("resize_mode", ["letterbox", "stretch"])
def test_views_map_back_exactly(mode, resize_mode):
    """A perfect prediction in every view's frame maps back to the true box."""
    image = tf.zeros((60, 90, 3), tf.uint8)
    true_box = tf.constant([0.3, 0.4, 0.6, 0.7])
    inputs, windows, mirrored = views.render_views(image, 48, resize_mode, mode)
    assert inputs.shape[1:] == (48, 48, 3) and inputs.shape[0] == len(views.view_crops(mode))
    in_view = box_lib.reframe(true_box, windows)
    in_view = tf.where(mirrored[:, None], box_lib.flip_left_right(in_view), in_view)
    back = views.views_to_original(in_view[None], windows[None], mirrored[None])
    # Crops that cut the object give a clipped box; the whole-image views are exact.
    np.testing.assert_allclose(back[0, 0], true_box, atol=1e-5)
    if mode == "flip":
        np.testing.assert_allclose(back[0, 1], true_box, atol=1e-5)


def test_refinement_view_maps_a_perfect_prediction_back_to_the_true_box():
    image = tf.zeros((60, 90, 3), tf.uint8)
    true_box = tf.constant([[0.3, 0.4, 0.4, 0.5]])
    inputs, windows = views.render_zoom_views(
        image[None], tf.constant([[60, 90]]), true_box, 48, "letterbox"
    )
    assert inputs.shape == (1, 48, 48, 3)
    back = render.to_original_frame(box_lib.reframe(true_box, windows), windows)
    np.testing.assert_allclose(back, true_box, atol=1e-5)


REFINE_FIRST = tf.constant([[0.2, 0.2, 0.6, 0.6], [0.2, 0.2, 0.6, 0.6], [0.2, 0.2, 0.6, 0.6]])


REFINE_ZOOM = tf.constant(
    [[0.22, 0.2, 0.6, 0.62], [0.7, 0.7, 0.9, 0.9], [0.7, 0.7, 0.9, 0.9]]
)  # agree, not, not


def test_refinement_without_qualities_keeps_the_first_box_when_the_looks_disagree():
    probabilities = tf.constant([[0.8, 0.2], [0.6, 0.4], [0.5, 0.5]])
    zoom_probabilities = tf.constant([[0.6, 0.4], [0.2, 0.8], [0.5, 0.5]])
    first, zoom = (
        views.Look(REFINE_FIRST, probabilities),
        views.Look(REFINE_ZOOM, zoom_probabilities),
    )
    for rule in views.REFINE_RULES:  # no qualities: agreement, whatever the rule
        boxes, merged, class_boxes, quality = views.merge_refinement(first, zoom, rule=rule)
        np.testing.assert_allclose(
            boxes, [REFINE_ZOOM[0], REFINE_FIRST[1], REFINE_FIRST[2]], atol=1e-6
        )
        np.testing.assert_allclose(merged, [[0.7, 0.3], [0.4, 0.6], [0.5, 0.5]], atol=1e-6)
        assert quality is None and class_boxes is None
    with pytest.raises(ValueError, match="refinement rule"):
        views.merge_refinement(first, zoom, rule="vote")


def test_refinement_by_quality_blends_agreeing_looks_and_picks_the_better_rated_otherwise():
    probabilities = tf.fill([3, 2], 0.5)
    first_quality, zoom_quality = tf.constant([0.3, 0.4, 0.4]), tf.constant([0.9, 0.1, 0.8])
    first = views.Look(REFINE_FIRST, probabilities, quality=first_quality)
    zoom = views.Look(REFINE_ZOOM, probabilities, quality=zoom_quality)
    boxes, _, _, quality = views.merge_refinement(first, zoom, rule=views.BY_QUALITY)
    w = 0.9 / (0.9 + 0.3)  # agreeing: weighted by quality
    np.testing.assert_allclose(
        boxes,
        [w * REFINE_ZOOM[0] + (1 - w) * REFINE_FIRST[0], REFINE_FIRST[1], REFINE_ZOOM[2]],
        atol=1e-6,
    )
    # Disagreeing looks: the better-rated box, with the lower of the two qualities.
    np.testing.assert_allclose(quality, [w * 0.9 + (1 - w) * 0.3, 0.1, 0.4], atol=1e-6)
    # The agreement rule with qualities: the kept look's quality.
    boxes, _, _, quality = views.merge_refinement(first, zoom, rule=views.AGREEMENT)
    np.testing.assert_allclose(boxes, [REFINE_ZOOM[0], REFINE_FIRST[1], REFINE_FIRST[2]], atol=1e-6)
    np.testing.assert_allclose(quality, [0.9, 0.4, 0.4], atol=1e-6)


def test_box_quality_follows_the_box_through_views_and_refinement():
    # Three views: 0 and 1 agree (IoU 1), 2 does not; view weights = probability of the merged class
    # (0).
    boxes = tf.constant([[[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]]])
    probabilities = tf.constant([[[0.9, 0.1], [0.3, 0.7], [1.0, 0.0]]])
    quality = tf.constant([[0.8, 0.2, 0.0]])
    merged = views.merge_view_qualities(boxes, probabilities, quality).numpy()
    np.testing.assert_allclose(merged, [(0.9 * 0.8 + 0.3 * 0.2) / (0.9 + 0.3)], atol=1e-6)
    one_view = views.merge_view_qualities(
        boxes[:, :1], probabilities[:, :1], quality[:, :1]
    ).numpy()
    np.testing.assert_allclose(one_view, [0.8], atol=1e-6)


def test_view_0_counts_in_a_merge_whatever_its_box():
    """The views' merge compares each view with view 0; view 0 itself always counts (its IoU with
    itself is no test)."""
    point = tf.constant([[[0.5, 0.5, 0.5, 0.5]]])  # [B=1, V=1, 4]: zero area
    box = views.merge_views(point, tf.constant([[[0.7, 0.3]]])).boxes
    np.testing.assert_array_equal(box.numpy(), [[0.5, 0.5, 0.5, 0.5]])
    assert views.merge_view_qualities(
        point, tf.constant([[[0.7, 0.3]]]), tf.constant([[0.4]])
    ).numpy() == pytest.approx([0.4])

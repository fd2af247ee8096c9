"""Tests of localizer/model/box_layers.py: hand-computed cases."""

import numpy as np
import pytest

from localizer.model import box_layers
from localizer.model.box_layers import BoxFromLogits, SelectClassBox
from tests import roundtrip


def test_box_from_logits_is_always_a_valid_box_inside_the_image():
    logits = np.random.default_rng(0).normal(0, 10, (1000, 4)).astype("float32")
    boxes = np.asarray(BoxFromLogits()(logits))
    assert np.all(boxes >= 0) and np.all(boxes <= 1)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    # Zero logits: a centred box of half the image.
    np.testing.assert_allclose(
        BoxFromLogits()(np.zeros((1, 4), "float32")), [[0.25, 0.25, 0.75, 0.75]]
    )


def test_select_class_box_takes_the_predicted_class():
    class_boxes = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4)
    logits = np.array([[0.1, 2.0, 0.3], [5.0, 0.0, 1.0]], "float32")
    np.testing.assert_allclose(
        SelectClassBox()([class_boxes, logits]), [class_boxes[0, 1], class_boxes[1, 0]]
    )


def test_attention_box_pooling_hand_cases():
    from localizer.model.box_layers import AttentionBoxPooling

    zeros = np.zeros((1, 2, 2, 1), "float32")
    # Uniform attention over a 2x2 grid, sigmoid(0) = 0.5 everywhere:
    # cell boxes average to the centred half-size box.
    np.testing.assert_allclose(
        AttentionBoxPooling()([zeros, np.zeros((1, 2, 2, 4), "float32")]),
        [[0.25, 0.25, 0.75, 0.75]],
        atol=1e-6,
    )
    # All attention on the bottom-right cell (centre 0.75, 0.75): its box.
    peaked = zeros.copy()
    peaked[0, 1, 1, 0] = 50.0
    box = AttentionBoxPooling()([peaked, np.zeros((1, 2, 2, 4), "float32")])
    np.testing.assert_allclose(box, [[0.375, 0.375, 0.875, 0.875]], atol=1e-5)
    # Any logits: valid boxes inside the image; per-class shape.
    rng = np.random.default_rng(0)
    boxes = np.asarray(
        AttentionBoxPooling(3)(
            [
                rng.normal(0, 5, (4, 3, 5, 3)).astype("float32"),
                rng.normal(0, 5, (4, 3, 5, 12)).astype("float32"),
            ]
        )
    )
    assert boxes.shape == (4, 3, 4) and boxes.min() >= 0 and boxes.max() <= 1
    assert np.all(boxes[..., 2] > boxes[..., 0]) and np.all(boxes[..., 3] > boxes[..., 1])


def test_dense_box_votes_near_the_peak_at_inference_and_everywhere_in_training():
    from localizer.model.box_layers import CentreWeightedBox

    # Two peaks: cell (0, 0) slightly higher than cell (3, 3), each with its own box.
    logits = np.full((1, 4, 4, 1), -10.0, "float32")
    logits[0, 0, 0, 0], logits[0, 3, 3, 0] = 5.0, 4.9
    boxes = np.zeros((1, 4, 4, 4), "float32")
    boxes[0, :2, :2] = [0.0, 0.0, 0.3, 0.3]
    boxes[0, 2:, 2:] = [0.7, 0.7, 1.0, 1.0]
    layer = CentreWeightedBox(peak_radius=1)
    np.testing.assert_allclose(
        layer([logits, boxes], training=False)[0], [0.0, 0.0, 0.3, 0.3], atol=1e-4
    )
    # Far cells are filled with a value near the peak (int8 can hold it), not -1e9.
    kept = np.asarray(box_layers._keep_near_peak(logits, 1))
    assert kept.min() == 5.0 - box_layers.FAR_FROM_PEAK and kept[0, 3, 3, 0] == kept.min()
    # Training averages both peaks: a box between the two objects.
    between = np.asarray(layer([logits, boxes], training=True)[0])
    assert 0.3 < between[0] < 0.4 and 0.6 < between[2] < 0.7
    assert roundtrip.assert_object_round_trips(layer).peak_radius == 1


def test_vote_agreement_and_looked_at_features_by_hand():
    # Two cells, softmax weights 3/4 and 1/4; their boxes differ in ymax only, by 0.4.
    cell_boxes = np.array(
        [[[[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.1, 0.5]]]], "float32"
    )  # [1, 1, 2, 4]
    logits = np.array([[[[np.log(3.0)], [0.0]]]], "float32")
    peak, spread = np.asarray(box_layers.VoteAgreement()([logits, cell_boxes]))[0]
    # Weighted mean ymax 0.4: variance 3/4 * 0.1^2 + 1/4 * 0.3^2 = 0.03.
    assert peak == pytest.approx(0.75) and spread == pytest.approx(0.03, abs=1e-6)
    features = np.array([[[[4.0, 0.0], [0.0, 8.0]]]], "float32")  # [1, 1, 2, 2]
    looked_at = np.asarray(box_layers.CentreWeightedFeatures()([logits, features]))
    np.testing.assert_allclose(looked_at, [[3.0, 2.0]], atol=1e-6)

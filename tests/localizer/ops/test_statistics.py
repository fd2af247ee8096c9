"""The numpy evaluation statistics on hand-computed cases (boxes are normalized [ymin, xmin,
ymax, xmax])."""

import json

import keras
import numpy as np
import pytest

from localizer.ops import statistics
from tests import fixtures

A = [0.0, 0.0, 0.4, 0.4]
B = [0.2, 0.2, 0.6, 0.6]  # IoU(A, B) = 0.04 / 0.28 = 1/7
WHOLE = [0.0, 0.0, 1.0, 1.0]


def strip(height):
    """A box inside WHOLE whose IoU with WHOLE is `height` (its area)."""
    return [0.0, 0.0, height, 1.0]


# --- summarize --------------------------------------------------------------


def _onehot_logits(pred_classes, num_classes):
    logits = np.zeros((len(pred_classes), num_classes), np.float32)
    logits[np.arange(len(pred_classes)), pred_classes] = 3.0
    return logits


def six_examples():
    """6 examples, 3 classes; every true box is WHOLE so IoU(strip(h)) = h."""
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 0, 1, 1, 0])  # right: 0, 2, 3, 4
    ious = np.array([1.0, 0.8, 0.6, 0.4, 0.72, 0.2])
    true_boxes = np.array([WHOLE] * 6, np.float32)
    pred_boxes = np.array([strip(h) for h in ious], np.float32)
    return true_boxes, labels, pred_boxes, _onehot_logits(predicted, 3), ["cat", "dog", "bird"]


def test_summarize_six_examples_by_hand():
    s = statistics.summarize(*six_examples())
    assert set(s) == fixtures.SUMMARY_KEYS  # C = 3: no top5_accuracy
    json.dumps(s)
    approx = lambda v: pytest.approx(v, abs=1e-6)  # noqa: E731
    assert s["num_examples"] == 6 and isinstance(s["num_examples"], int)
    assert s["classification_accuracy"] == approx(4 / 6)
    assert s["mean_iou"] == approx(3.72 / 6)
    assert s["median_iou"] == approx((0.6 + 0.72) / 2)
    # Per-class mean IoU: cat (1 + .8 + .6) / 3 = .8, dog (.4 + .72) / 2 = .56, bird .2.
    assert s["macro_mean_iou"] == approx((0.8 + 0.56 + 0.2) / 3)
    assert s["iou_accuracy"] == {
        "0.5": approx(4 / 6),
        "0.7": approx(3 / 6),
        "0.75": approx(2 / 6),
        "0.9": approx(1 / 6),
    }
    # Class right and IoU >= 0.5: examples 0, 2, 4.
    assert s["localization_accuracy"] == approx(3 / 6)
    assert s["macro_localization_accuracy"] == approx((2 / 3 + 1 / 2 + 0) / 3)
    # C <= 5: every class is among the guesses, so only IoU >= 0.5 counts: 4 of 6.
    assert s["top5_localization_error"] == approx(2 / 6)
    assert s["per_class"] == {
        "cat": {
            "count": 3,
            "mean_iou": approx(0.8),
            "localization_accuracy": approx(2 / 3),
            "classification_accuracy": approx(2 / 3),
        },
        "dog": {
            "count": 2,
            "mean_iou": approx(0.56),
            "localization_accuracy": approx(1 / 2),
            "classification_accuracy": approx(1.0),
        },
        "bird": {
            "count": 1,
            "mean_iou": approx(0.2),
            "localization_accuracy": approx(0.0),
            "classification_accuracy": approx(0.0),
        },
    }
    for value in (s["mean_iou"], s["iou_accuracy"]["0.5"], s["per_class"]["cat"]["mean_iou"]):
        assert type(value) is float


def test_summarize_probabilities_give_the_same_report():
    true_boxes, labels, pred_boxes, logits, names = six_examples()
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
    assert statistics.summarize(
        true_boxes, labels, pred_boxes, probs, names
    ) == statistics.summarize(true_boxes, labels, pred_boxes, logits, names)


def test_summarize_class_boxes_for_top5_localization():
    true_boxes, labels, pred_boxes, logits, names = six_examples()
    # Per-class boxes: every class's box is poor (IoU 0.1) except the true
    # class's, which is exact except for example 0 (IoU 0.3).
    class_boxes = np.array([[strip(0.1)] * 3] * 6, np.float32)
    class_boxes[np.arange(6), labels] = WHOLE
    class_boxes[0, labels[0]] = strip(0.3)
    s = statistics.summarize(true_boxes, labels, pred_boxes, logits, names, class_boxes=class_boxes)
    assert s["top5_localization_error"] == pytest.approx(1 / 6)
    # Everything else still describes the predicted box.
    assert s["mean_iou"] == pytest.approx(3.72 / 6)
    assert s["localization_accuracy"] == pytest.approx(3 / 6)


def test_summarize_seven_classes_top5():
    names = [f"c{i}" for i in range(7)]
    labels = np.array([6, 6, 6, 6])
    # Rank of the true class (6) among the scores: 1st, 5th, 6th, 3rd.
    order = {
        0: [6, 0, 1, 2, 3, 4, 5],
        1: [0, 1, 2, 3, 6, 4, 5],
        2: [0, 1, 2, 3, 4, 6, 5],
        3: [0, 1, 6, 2, 3, 4, 5],
    }
    logits = np.zeros((4, 7), np.float32)
    for i, ranking in order.items():
        logits[i, ranking] = np.arange(7, 0, -1)
    ious = [0.8, 0.3, 1.0, 0.9]
    true_boxes = np.array([WHOLE] * 4, np.float32)
    pred_boxes = np.array([strip(h) for h in ious], np.float32)
    s = statistics.summarize(true_boxes, labels, pred_boxes, logits, names)
    assert set(s) == fixtures.SUMMARY_KEYS | {"top5_accuracy"}
    assert s["classification_accuracy"] == pytest.approx(1 / 4)
    assert s["top5_accuracy"] == pytest.approx(3 / 4)  # ranks 1, 5, 3
    assert s["localization_accuracy"] == pytest.approx(1 / 4)
    # Top-5 and IoU >= 0.5: example 0 (rank 1, .8) and 3 (rank 3, .9); not 1 (.3), not 2 (rank 6).
    assert s["top5_localization_error"] == pytest.approx(1 - 2 / 4)
    # Classes without examples are listed with count 0 and None values.
    assert s["per_class"]["c0"] == {
        "count": 0,
        "mean_iou": None,
        "localization_accuracy": None,
        "classification_accuracy": None,
    }
    assert s["macro_mean_iou"] == pytest.approx(np.mean(ious))  # only c6 is present


def test_summarize_empty_set():
    names = [f"c{i}" for i in range(7)]
    s = statistics.summarize(
        np.zeros((0, 4)), np.zeros((0,), int), np.zeros((0, 4)), np.zeros((0, 7)), names
    )
    assert set(s) == fixtures.SUMMARY_KEYS | {"top5_accuracy"}
    assert s["num_examples"] == 0
    assert (
        s["mean_iou"] is None
        and s["top5_accuracy"] is None
        and s["top5_localization_error"] is None
    )
    assert s["iou_accuracy"] == {"0.5": None, "0.7": None, "0.75": None, "0.9": None}
    assert s["per_class"]["c3"]["count"] == 0
    json.dumps(s)


def test_summarize_rejects_bad_inputs():
    true_boxes, labels, pred_boxes, logits, names = six_examples()
    with pytest.raises(ValueError, match="labels"):
        statistics.summarize(true_boxes, labels + 1, pred_boxes, logits, names)
    with pytest.raises(ValueError, match="Mismatched"):
        statistics.summarize(true_boxes[:5], labels, pred_boxes, logits, names)
    with pytest.raises(ValueError, match="unique"):
        statistics.summarize(true_boxes, labels, pred_boxes, logits, ["a", "a", "b"])


def test_iou_numpy_agrees_with_boxes_iou():
    got = statistics.iou_numpy([A, A, WHOLE], [A, B, strip(0.25)])
    np.testing.assert_allclose(got, [1.0, 1 / 7, 0.25], rtol=1e-5)
    assert statistics.iou_numpy(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0,)


# --- how well a confidence ranks the boxes ----------------------------------


def test_average_ranks_share_ties():
    np.testing.assert_allclose(statistics.average_ranks([3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0])
    np.testing.assert_allclose(statistics.average_ranks([5.0, 5.0, 5.0]), [2.0, 2.0, 2.0])
    assert statistics.average_ranks([]).shape == (0,)


def test_auroc_by_hand():
    # Positive-negative pairs ranked right: (.9, .8), (.9, .6), (.7, .6); wrong: (.7, .8).
    assert statistics.auroc([0.9, 0.8, 0.7, 0.6], [True, False, True, False]) == pytest.approx(
        3 / 4
    )
    assert statistics.auroc([0.1, 0.9], [False, True]) == 1.0
    assert statistics.auroc([0.9, 0.1], [False, True]) == 0.0
    assert statistics.auroc([0.5, 0.5], [True, False]) == 0.5  # a tie counts one half
    # The positive ties one negative and beats the other: (1 + 0.5) / 2.
    assert statistics.auroc([0.5, 0.5, 0.2], [True, False, False]) == pytest.approx(0.75)
    assert statistics.auroc([0.3, 0.4], [True, True]) is None
    assert statistics.auroc([0.3, 0.4], [False, False]) is None


def test_spearman_by_hand():
    # Rank differences 0, 1, 1, 0: 1 - 6 * 2 / (4 * (16 - 1)) = 0.8.
    assert statistics.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert statistics.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert statistics.spearman([1, 2, 3], [0.3, 0.2, 0.1]) == pytest.approx(-1.0)
    assert statistics.spearman([1, 2, 3], [5, 5, 5]) is None
    assert statistics.spearman([1], [1]) is None


def test_risk_coverage_keeps_the_most_confident():
    # IoUs 0.0 .. 0.9 in a shuffled order; the confidence ranks them perfectly.
    ious = (np.arange(10) / 10.0)[np.random.default_rng(0).permutation(10)]
    confidence = 2.0 * ious + 1.0
    table = statistics.risk_coverage(confidence, ious, ious >= 0.5)
    assert [row["coverage"] for row in table] == [1.0, 0.9, 0.8, 0.5]
    assert [row["count"] for row in table] == [10, 9, 8, 5]
    np.testing.assert_allclose([row["mean_iou"] for row in table], [0.45, 0.5, 0.55, 0.7])
    np.testing.assert_allclose(
        [row["localization_accuracy"] for row in table], [5 / 10, 5 / 9, 5 / 8, 1.0]
    )
    # An uninformative (constant) confidence keeps dataset order: the first half.
    half = statistics.risk_coverage(np.ones(4), [0.2, 0.4, 0.6, 0.8], [False] * 4, coverages=(0.5,))
    assert half == [
        {"coverage": 0.5, "count": 2, "mean_iou": pytest.approx(0.3), "localization_accuracy": 0.0}
    ]
    with pytest.raises(ValueError, match="coverage"):
        statistics.risk_coverage([1.0], [1.0], [True], coverages=(0.0,))


def test_summarize_reports_each_confidence():
    true_boxes, labels, pred_boxes, logits, names = six_examples()
    ious = np.array([1.0, 0.8, 0.6, 0.4, 0.72, 0.2])
    s = statistics.summarize(
        true_boxes,
        labels,
        pred_boxes,
        logits,
        names,
        confidences={"score": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], "box_quality": ious},
    )
    assert set(s) == fixtures.SUMMARY_KEYS | {
        f"{name}_{key}"
        for name in ("score", "box_quality")
        for key in ("auroc", "spearman", "risk_coverage")
    }
    json.dumps(s)
    assert s["box_quality_auroc"] == 1.0 and s["box_quality_spearman"] == pytest.approx(1.0)
    # score: positives (IoU >= .5) at .9 .8 .7 .5, negatives at .6 .4: 7 of 8 pairs right.
    assert s["score_auroc"] == pytest.approx(7 / 8)
    # Localized (class right and IoU >= .5): examples 0, 2, 4; the 3 surest boxes by quality: 0, 1,
    # 4.
    half = s["box_quality_risk_coverage"][-1]
    assert half["count"] == 3 and half["mean_iou"] == pytest.approx(2.52 / 3)
    assert half["localization_accuracy"] == pytest.approx(2 / 3)
    empty = statistics.summarize(
        np.zeros((0, 4)),
        np.zeros((0,), int),
        np.zeros((0, 4)),
        np.zeros((0, 3)),
        names,
        confidences={"score": []},
    )
    assert empty["score_auroc"] is None and empty["score_risk_coverage"] is None
    with pytest.raises(ValueError, match="Mismatched"):
        statistics.summarize(
            true_boxes, labels, pred_boxes, logits, names, confidences={"score": [0.5]}
        )


def test_error_breakdown_by_hand():
    truth = np.array(
        [
            [0.0, 0.0, 0.5, 0.5],  # localized (IoU 1), medium (25%)
            [0.0, 0.0, 0.5, 0.5],  # wrong class, whatever the box
            [0.0, 0.0, 0.1, 0.1],  # box elsewhere, small (1%)
            [0.4, 0.4, 0.6, 0.6],  # too large: holds the object, IoU 0.04/0.16 = 0.25; small (4%)
            [0.0, 0.0, 1.0, 1.0],  # too small: a quarter of the object, all on it; large
            [0.0, 0.0, 0.5, 0.5],  # shifted: IoU 1/7, neither 80% rule
        ]
    )
    predicted_boxes = np.array(
        [
            [0.0, 0.0, 0.5, 0.5],
            [0.0, 0.0, 0.5, 0.5],
            [0.8, 0.8, 0.9, 0.9],
            [0.3, 0.3, 0.7, 0.7],
            [0.0, 0.0, 0.5, 0.5],
            [0.25, 0.25, 0.75, 0.75],
        ]
    )
    labels, predicted = np.array([0, 1, 2, 0, 1, 2]), np.array([0, 0, 2, 0, 1, 2])
    errors = statistics.error_breakdown(truth, labels, predicted_boxes, predicted)
    assert errors["kinds"] == dict.fromkeys(statistics.ERROR_KINDS, 1 / 6)
    sizes = errors["by_object_size"]
    assert [sizes[s]["count"] for s in ("small", "medium", "large")] == [2, 3, 1]
    assert (
        sizes["small"]["kinds"]["box_elsewhere"] == 1
        and sizes["small"]["kinds"]["box_too_large"] == 1
    )
    assert (
        sizes["large"]["kinds"]["box_too_small"] == 1
        and sizes["large"]["localization_accuracy"] == 0.0
    )
    assert sizes["medium"]["localization_accuracy"] == pytest.approx(1 / 3)
    np.testing.assert_allclose(sizes["small"]["mean_iou"], (0.0 + 0.25) / 2, rtol=1e-5)
    empty = statistics.error_breakdown(truth[:1], labels[:1], predicted_boxes[:1], predicted[:1])[
        "by_object_size"
    ]
    assert empty["small"] == {
        "count": 0,
        "mean_iou": None,
        "localization_accuracy": None,
        "kinds": dict.fromkeys(statistics.ERROR_KINDS, 0),
    }

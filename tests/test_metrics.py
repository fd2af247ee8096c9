"""Metrics on hand-computed cases (boxes are normalized [ymin, xmin, ymax, xmax])."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from localizer.model import losses, metrics
from tests import roundtrip

A = [0.0, 0.0, 0.4, 0.4]
B = [0.2, 0.2, 0.6, 0.6]  # IoU(A, B) = 0.04 / 0.28 = 1/7
FAR = [0.5, 0.5, 0.7, 0.7]  # disjoint from A
WHOLE = [0.0, 0.0, 1.0, 1.0]


def strip(height):
    """A box inside WHOLE whose IoU with WHOLE is `height` (its area)."""
    return [0.0, 0.0, height, 1.0]


def _result(metric):
    return float(keras.ops.convert_to_numpy(metric.result()))


# --- streaming metrics ------------------------------------------------------


def test_mean_box_iou_over_two_batches_and_reset():
    m = metrics.MeanBoxIoU()
    assert m.name == "mean_iou"
    m.update_state(np.array([A, A], np.float32), np.array([A, FAR], np.float32))  # IoU 1, 0
    m.update_state(np.array([A], np.float32), np.array([B], np.float32))  # IoU 1/7
    np.testing.assert_allclose(_result(m), (1.0 + 0.0 + 1 / 7) / 3, rtol=1e-5)
    m.reset_state()
    assert _result(m) == 0.0
    m.update_state([B], [A])
    np.testing.assert_allclose(_result(m), 1 / 7, rtol=1e-5)


def test_mean_box_iou_sample_weights_and_low_precision():
    m = metrics.MeanBoxIoU()
    m.update_state(
        tf.constant([A, A], tf.float16), tf.constant([A, B], tf.bfloat16), sample_weight=[3.0, 1.0]
    )
    np.testing.assert_allclose(_result(m), (3 * 1.0 + 1 / 7) / 4, rtol=1e-2)


def test_iou_accuracy_names_and_values():
    names = [metrics.IoUAccuracy(t).name for t in (0.5, 0.75, 0.9)]
    assert names == ["acc_iou50", "acc_iou75", "acc_iou90"]
    assert metrics.IoUAccuracy(0.7, name="x").name == "x"
    ious = [1.0, 0.8, 0.6, 0.4]
    true = np.array([WHOLE] * 4, np.float32)
    pred = np.array([strip(h) for h in ious], np.float32)
    expected = {0.5: 3 / 4, 0.75: 2 / 4, 0.9: 1 / 4}
    for t, value in expected.items():
        m = metrics.IoUAccuracy(t)
        m.update_state(true[:3], pred[:3])
        m.update_state(true[3:], pred[3:])
        np.testing.assert_allclose(_result(m), value, rtol=1e-6)
        m.reset_state()
        assert _result(m) == 0.0
    with pytest.raises(ValueError, match="threshold"):
        metrics.IoUAccuracy(1.5)


def test_localization_accuracy_needs_class_and_box():
    m = metrics.LocalizationAccuracy()
    assert (m.name, m.iou_threshold) == ("loc_acc", 0.5)
    # y_true = concat(box, label); y_pred = concat(box, logits over 3 classes).
    y_true = np.array([WHOLE + [1.0]] * 4, np.float32)
    y_pred = np.array(
        [
            strip(0.3) + [0.0, 5.0, 0.0],  # class right, IoU 0.3 < 0.5: wrong
            strip(0.9) + [5.0, 0.0, 0.0],  # IoU ok, class wrong: wrong
            strip(0.6) + [0.0, 5.0, 1.0],  # both right: correct
            strip(0.2) + [0.0, 0.0, 5.0],  # both wrong
        ],
        np.float32,
    )
    m.update_state(y_true[:2], y_pred[:2])
    assert _result(m) == 0.0
    m.update_state(y_true[2:], y_pred[2:])
    np.testing.assert_allclose(_result(m), 1 / 4)
    per_example = keras.ops.convert_to_numpy(metrics.localization_correct(y_true, y_pred))
    np.testing.assert_array_equal(per_example, [0.0, 0.0, 1.0, 0.0])
    strict = metrics.LocalizationAccuracy(iou_threshold=0.7)
    strict.update_state(y_true, y_pred)
    assert _result(strict) == 0.0


METRICS = [
    metrics.MeanBoxIoU(),
    metrics.IoUAccuracy(0.75),
    metrics.LocalizationAccuracy(iou_threshold=0.6, name="loc60"),
]


@pytest.mark.parametrize("metric", METRICS, ids=lambda x: type(x).__name__)
def test_metrics_round_trip_through_config(metric):
    assert roundtrip.assert_object_round_trips(metric)._direction == "up"


# --- the compile contract, single device and under MirroredStrategy --------

NUM_CLASSES = 3
ALPHA = 0.4


def identity_model(num_classes=NUM_CLASSES):
    """A model whose outputs are its inputs, laid out like the localizer's training view."""
    logits_in = keras.Input((num_classes,), name="logits_in")
    box_in = keras.Input((4,), name="box_in")
    class_logits = keras.layers.Identity(name="class_logits")(logits_in)
    box = keras.layers.Identity(name="box")(box_in)
    localization = keras.layers.Concatenate(name="localization")([box, class_logits])
    outputs = {"class_logits": class_logits, "box": box, "localization": localization}
    return keras.Model([logits_in, box_in], outputs)


def compile_like_the_trainer(model):
    """The trainer's own `compile_model`, with the weighting these hand values use."""
    from localizer.training import config as config_lib
    from localizer.training import objective

    config = config_lib.TrainConfig(alpha=ALPHA, box_loss="giou", label_smoothing=0.0)
    objective.compile_model(model, config, peak_lr=1e-3, steps_per_epoch=1, epochs=1)
    return model


def evaluation_set(n=8):
    """N examples over NUM_CLASSES classes; true boxes WHOLE, IoU of example i = ious[i]."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % NUM_CLASSES
    logits = rng.normal(size=(n, NUM_CLASSES)).astype(np.float32)
    ious = np.linspace(0.3, 0.95, n)
    true_boxes = np.array([WHOLE] * n, np.float32)
    pred_boxes = np.array([strip(h) for h in ious], np.float32)
    x = [logits, pred_boxes]
    y = {
        "class_logits": labels,
        "box": true_boxes,
        "localization": np.concatenate([true_boxes, labels[:, None].astype(np.float32)], -1),
    }
    return x, y


def check_logs_against_hand_values(logs, x, y):
    """Compiled logs == `summarize` and the pure loss functions on the same data."""
    (logits, pred_boxes), labels, true_boxes = x, y["class_logits"], y["box"]
    ref = metrics.summarize(true_boxes, labels, pred_boxes, logits, ["a", "b", "c"])
    ce = keras.ops.convert_to_numpy(losses.softmax_cross_entropy(labels, logits)).mean()
    box = keras.ops.convert_to_numpy(
        losses.box_regression_loss("giou", true_boxes, pred_boxes)
    ).mean()
    expected = {
        "loss": ALPHA * ce + (1 - ALPHA) * box,
        "class_logits_loss": ce,
        "box_loss": box,
        "class_logits_accuracy": ref["classification_accuracy"],
        "box_mean_iou": ref["mean_iou"],
        "box_acc_iou50": ref["iou_accuracy"]["0.5"],
        "box_acc_iou75": ref["iou_accuracy"]["0.75"],
        "box_acc_iou90": ref["iou_accuracy"]["0.9"],
        "localization_loc_acc": ref["localization_accuracy"],
    }
    assert set(logs) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(logs[key], value, rtol=1e-5, err_msg=key)


def test_compiled_metrics_match_summarize_and_survive_saving(tmp_path):
    x, y = evaluation_set()
    model = compile_like_the_trainer(identity_model())
    # Two batches of 4 (equal batches: Keras averages the per-batch loss values).
    check_logs_against_hand_values(
        model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True), x, y
    )
    # A `.keras` checkpoint keeps the compiled losses and metrics (registered names).
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    check_logs_against_hand_values(
        restored.evaluate(x, y, batch_size=8, verbose=0, return_dict=True), x, y
    )


DISTRIBUTED_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from localizer.model import metrics
    from tests.test_metrics import compile_like_the_trainer, evaluation_set, identity_model

    x, y = evaluation_set()
    (logits, pred_boxes), true_boxes = x, y["box"]
    loc_true, loc_pred = y["localization"], np.concatenate([pred_boxes, logits], -1)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        ms = [metrics.MeanBoxIoU(), metrics.IoUAccuracy(0.75), metrics.LocalizationAccuracy()]
        model = compile_like_the_trainer(identity_model())
    split = 5  # uneven halves: a mean of the per-replica means would differ

    def part(array):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: array[:split] if ctx.replica_id_in_sync_group == 0 else array[split:]
        )

    def update(bt, bp, lt, lp):
        ms[0].update_state(bt, bp)
        ms[1].update_state(bt, bp)
        ms[2].update_state(lt, lp)

    @tf.function
    def step(*args):
        strategy.run(update, args=args)

    step(part(true_boxes), part(pred_boxes), part(loc_true), part(loc_pred))
    logs = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)  # 4 per replica
    print("RESULT " + json.dumps({
        "metrics": [float(m.result()) for m in ms],
        "evaluate": {k: float(v) for k, v in logs.items()},
    }))
    """
)


def test_metrics_and_losses_under_mirrored_strategy():
    """2 logical CPUs (configurable only before TF starts, hence the subprocess)."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", DISTRIBUTED_SCRIPT],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    got = json.loads(lines[-1][len("RESULT ") :])

    # The same updates on one device.
    x, y = evaluation_set()
    (logits, pred_boxes), true_boxes = x, y["box"]
    single = [metrics.MeanBoxIoU(), metrics.IoUAccuracy(0.75), metrics.LocalizationAccuracy()]
    single[0].update_state(true_boxes, pred_boxes)
    single[1].update_state(true_boxes, pred_boxes)
    single[2].update_state(y["localization"], np.concatenate([pred_boxes, logits], -1))
    np.testing.assert_allclose(got["metrics"], [_result(m) for m in single], rtol=1e-6)

    # Distributed evaluate: losses scaled by the global batch, metrics summed over replicas.
    check_logs_against_hand_values(got["evaluate"], x, y)


# --- summarize --------------------------------------------------------------

SUMMARY_KEYS = {
    "num_examples",
    "classification_accuracy",
    "mean_iou",
    "median_iou",
    "macro_mean_iou",
    "iou_accuracy",
    "localization_accuracy",
    "macro_localization_accuracy",
    "top5_localization_error",
    "per_class",
}


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
    s = metrics.summarize(*six_examples())
    assert set(s) == SUMMARY_KEYS  # C = 3: no top5_accuracy
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
    assert metrics.summarize(true_boxes, labels, pred_boxes, probs, names) == metrics.summarize(
        true_boxes, labels, pred_boxes, logits, names
    )


def test_summarize_class_boxes_for_top5_localization():
    true_boxes, labels, pred_boxes, logits, names = six_examples()
    # Per-class boxes: every class's box is poor (IoU 0.1) except the true
    # class's, which is exact except for example 0 (IoU 0.3).
    class_boxes = np.array([[strip(0.1)] * 3] * 6, np.float32)
    class_boxes[np.arange(6), labels] = WHOLE
    class_boxes[0, labels[0]] = strip(0.3)
    s = metrics.summarize(true_boxes, labels, pred_boxes, logits, names, class_boxes=class_boxes)
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
    s = metrics.summarize(true_boxes, labels, pred_boxes, logits, names)
    assert set(s) == SUMMARY_KEYS | {"top5_accuracy"}
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
    s = metrics.summarize(
        np.zeros((0, 4)), np.zeros((0,), int), np.zeros((0, 4)), np.zeros((0, 7)), names
    )
    assert set(s) == SUMMARY_KEYS | {"top5_accuracy"}
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
        metrics.summarize(true_boxes, labels + 1, pred_boxes, logits, names)
    with pytest.raises(ValueError, match="Mismatched"):
        metrics.summarize(true_boxes[:5], labels, pred_boxes, logits, names)
    with pytest.raises(ValueError, match="unique"):
        metrics.summarize(true_boxes, labels, pred_boxes, logits, ["a", "a", "b"])


def test_iou_numpy_agrees_with_boxes_iou():
    got = metrics.iou_numpy([A, A, WHOLE], [A, B, strip(0.25)])
    np.testing.assert_allclose(got, [1.0, 1 / 7, 0.25], rtol=1e-5)
    assert metrics.iou_numpy(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0,)


# --- how well a confidence ranks the boxes ----------------------------------


def test_average_ranks_share_ties():
    np.testing.assert_allclose(metrics.average_ranks([3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0])
    np.testing.assert_allclose(metrics.average_ranks([5.0, 5.0, 5.0]), [2.0, 2.0, 2.0])
    assert metrics.average_ranks([]).shape == (0,)


def test_auroc_by_hand():
    # Positive-negative pairs ranked right: (.9, .8), (.9, .6), (.7, .6); wrong: (.7, .8).
    assert metrics.auroc([0.9, 0.8, 0.7, 0.6], [True, False, True, False]) == pytest.approx(3 / 4)
    assert metrics.auroc([0.1, 0.9], [False, True]) == 1.0
    assert metrics.auroc([0.9, 0.1], [False, True]) == 0.0
    assert metrics.auroc([0.5, 0.5], [True, False]) == 0.5  # a tie counts one half
    # The positive ties one negative and beats the other: (1 + 0.5) / 2.
    assert metrics.auroc([0.5, 0.5, 0.2], [True, False, False]) == pytest.approx(0.75)
    assert metrics.auroc([0.3, 0.4], [True, True]) is None
    assert metrics.auroc([0.3, 0.4], [False, False]) is None


def test_spearman_by_hand():
    # Rank differences 0, 1, 1, 0: 1 - 6 * 2 / (4 * (16 - 1)) = 0.8.
    assert metrics.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert metrics.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert metrics.spearman([1, 2, 3], [0.3, 0.2, 0.1]) == pytest.approx(-1.0)
    assert metrics.spearman([1, 2, 3], [5, 5, 5]) is None
    assert metrics.spearman([1], [1]) is None


def test_risk_coverage_keeps_the_most_confident():
    # IoUs 0.0 .. 0.9 in a shuffled order; the confidence ranks them perfectly.
    ious = (np.arange(10) / 10.0)[np.random.default_rng(0).permutation(10)]
    confidence = 2.0 * ious + 1.0
    table = metrics.risk_coverage(confidence, ious, ious >= 0.5)
    assert [row["coverage"] for row in table] == [1.0, 0.9, 0.8, 0.5]
    assert [row["count"] for row in table] == [10, 9, 8, 5]
    np.testing.assert_allclose([row["mean_iou"] for row in table], [0.45, 0.5, 0.55, 0.7])
    np.testing.assert_allclose(
        [row["localization_accuracy"] for row in table], [5 / 10, 5 / 9, 5 / 8, 1.0]
    )
    # An uninformative (constant) confidence keeps dataset order: the first half.
    half = metrics.risk_coverage(np.ones(4), [0.2, 0.4, 0.6, 0.8], [False] * 4, coverages=(0.5,))
    assert half == [
        {"coverage": 0.5, "count": 2, "mean_iou": pytest.approx(0.3), "localization_accuracy": 0.0}
    ]
    with pytest.raises(ValueError, match="coverage"):
        metrics.risk_coverage([1.0], [1.0], [True], coverages=(0.0,))


def test_summarize_reports_each_confidence():
    true_boxes, labels, pred_boxes, logits, names = six_examples()
    ious = np.array([1.0, 0.8, 0.6, 0.4, 0.72, 0.2])
    s = metrics.summarize(
        true_boxes,
        labels,
        pred_boxes,
        logits,
        names,
        confidences={"score": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], "box_quality": ious},
    )
    assert set(s) == SUMMARY_KEYS | {
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
    empty = metrics.summarize(
        np.zeros((0, 4)),
        np.zeros((0,), int),
        np.zeros((0, 4)),
        np.zeros((0, 3)),
        names,
        confidences={"score": []},
    )
    assert empty["score_auroc"] is None and empty["score_risk_coverage"] is None
    with pytest.raises(ValueError, match="Mismatched"):
        metrics.summarize(
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
    errors = metrics.error_breakdown(truth, labels, predicted_boxes, predicted)
    assert errors["kinds"] == dict.fromkeys(metrics.ERROR_KINDS, 1 / 6)
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
    empty = metrics.error_breakdown(truth[:1], labels[:1], predicted_boxes[:1], predicted[:1])[
        "by_object_size"
    ]
    assert empty["small"] == {
        "count": 0,
        "mean_iou": None,
        "localization_accuracy": None,
        "kinds": dict.fromkeys(metrics.ERROR_KINDS, 0),
    }

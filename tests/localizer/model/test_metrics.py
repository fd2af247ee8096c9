"""The streaming Keras metrics on hand-computed cases (boxes are normalized [ymin, xmin, ymax,
xmax]); the numpy statistics are in test_statistics.py."""

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
from localizer.ops import statistics
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
    ref = statistics.summarize(true_boxes, labels, pred_boxes, logits, ["a", "b", "c"])
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
    from tests.localizer.model.test_metrics import (
        compile_like_the_trainer, evaluation_set, identity_model,
    )

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
    root = Path(__file__).resolve().parents[3]
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

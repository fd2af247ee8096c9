"""Losses on hand-computed cases (boxes are normalized [ymin, xmin, ymax, xmax])."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from localizer.model import losses
from tests import roundtrip

# Hand-made boxes, BOX_FORMAT.
A = [0.0, 0.0, 0.4, 0.4]  # area 0.16
B = [0.2, 0.2, 0.6, 0.6]  # area 0.16; A ∩ B = 0.2 x 0.2 = 0.04, union 0.28
FAR = [0.5, 0.5, 0.7, 0.7]  # disjoint from SMALL
SMALL = [0.0, 0.0, 0.2, 0.2]
TALL = [0.0, 0.0, 0.4, 0.2]  # h 0.4, w 0.2
WIDE = [0.0, 0.0, 0.2, 0.4]  # h 0.2, w 0.4; TALL ∩ WIDE = 0.04, union 0.12


def _np(x):
    return keras.ops.convert_to_numpy(x)


# --- box_regression_loss ----------------------------------------------------


@pytest.mark.parametrize("kind", losses.BOX_LOSSES)
def test_identical_boxes_have_zero_loss(kind):
    got = _np(losses.box_regression_loss(kind, [A, B], [A, B]))
    assert got.shape == (2,)
    np.testing.assert_allclose(got, [0.0, 0.0], atol=1e-5)


def test_disjoint_boxes():
    # Enclosing box [0, 0, 0.7, 0.7]: area 0.49, diagonal^2 0.98; union 0.08.
    # Centres (0.1, 0.1) and (0.6, 0.6): distance^2 0.5. Same aspect ratio: v = 0.
    giou_loss = 1.0 + (0.49 - 0.08) / 0.49
    diou_loss = 1.0 + 0.5 / 0.98
    got = {
        k: float(_np(losses.box_regression_loss(k, SMALL, FAR))) for k in ("giou", "diou", "ciou")
    }
    np.testing.assert_allclose(got["giou"], giou_loss, rtol=1e-5)
    assert got["giou"] > 1.0
    np.testing.assert_allclose(got["diou"], diou_loss, rtol=1e-5)
    np.testing.assert_allclose(got["ciou"], diou_loss, rtol=1e-5)


def test_partial_overlap_exact_values():
    # IoU = 0.04 / 0.28 = 1/7; enclosing [0, 0, 0.6, 0.6]: area 0.36, diag^2 0.72;
    # centres (0.2, 0.2), (0.4, 0.4): distance^2 0.08. Every coordinate is off by 0.2.
    expected = {
        "l2": 4 * 0.2**2,
        "smooth_l1": 4 * (0.2 - 0.5 * 0.05),  # |d| = 0.2 > beta = 0.05: linear part
        "giou": 1.0 - (1 / 7 - (0.36 - 0.28) / 0.36),
        "diou": 1.0 - (1 / 7 - 0.08 / 0.72),
        "ciou": 1.0 - (1 / 7 - 0.08 / 0.72),  # same aspect ratio: v = 0
    }
    for kind, value in expected.items():
        got = float(_np(losses.box_regression_loss(kind, A, B)))
        np.testing.assert_allclose(got, value, rtol=1e-5, err_msg=kind)


def test_ciou_aspect_ratio_term():
    # IoU 0.04 / 0.12 = 1/3; centres (0.2, 0.1), (0.1, 0.2): d^2 0.02; enclosing 0.4 x 0.4: c^2
    # 0.32.
    iou = 1 / 3
    v = 4 / math.pi**2 * (math.atan(0.2 / 0.4) - math.atan(0.4 / 0.2)) ** 2
    alpha = v / (1 - iou + v)
    expected = 1.0 - (iou - 0.02 / 0.32 - alpha * v)
    got = float(_np(losses.box_regression_loss("ciou", TALL, WIDE)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert got > float(_np(losses.box_regression_loss("diou", TALL, WIDE)))


def test_smooth_l1_quadratic_and_linear_parts():
    true = [0.0, 0.0, 0.5, 0.5]
    pred = [0.02, 0.0, 0.5, 0.8]  # d = 0.02 (< beta) and 0.3 (> beta)
    expected = 0.5 * 0.02**2 / 0.05 + (0.3 - 0.025)
    got = float(_np(losses.box_regression_loss("smooth_l1", true, pred)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # beta = 0 is plain L1.
    got_l1 = float(_np(losses.box_regression_loss("smooth_l1", true, pred, smooth_l1_beta=0.0)))
    np.testing.assert_allclose(got_l1, 0.32, rtol=1e-5)


@pytest.mark.parametrize("kind", losses.BOX_LOSSES)
def test_batched_equals_unbatched(kind):
    true = np.array([A, SMALL, TALL], np.float32)
    pred = np.array([B, FAR, WIDE], np.float32)
    batched = _np(losses.box_regression_loss(kind, true, pred))
    assert batched.shape == (3,)
    for i in range(3):
        single = _np(losses.box_regression_loss(kind, true[i], pred[i]))
        assert single.shape == ()
        np.testing.assert_allclose(single, batched[i], rtol=1e-6)
    nested = _np(losses.box_regression_loss(kind, true.reshape(1, 3, 4), pred.reshape(1, 3, 4)))
    np.testing.assert_allclose(nested, batched[None], rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_inputs_give_float32(dtype):
    pred = tf.cast(tf.constant([B]), dtype)
    got = losses.box_regression_loss("giou", [A], pred)
    assert got.dtype == tf.float32
    logits = tf.cast(tf.constant([[2.0, 0.0, 0.0]]), dtype)
    assert losses.softmax_cross_entropy([0], logits).dtype == tf.float32


def test_unknown_kind_and_bad_shapes():
    with pytest.raises(ValueError, match="l2.*smooth_l1.*giou.*diou.*ciou"):
        losses.box_regression_loss("iou", A, B)
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        losses.box_regression_loss("l2", [0.0, 0.0, 1.0], [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        losses.box_regression_loss("giou", A, [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="choose one of"):
        losses.BoxLoss("mse")


# --- softmax_cross_entropy --------------------------------------------------


def test_softmax_cross_entropy_hand_computed():
    log_z = math.log(math.exp(2.0) + 2.0)  # logits [2, 0, 0]
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    got = _np(losses.softmax_cross_entropy([0, 1], logits))
    np.testing.assert_allclose(got, [log_z - 2.0, math.log(3.0)], rtol=1e-6)
    # [B, 1] labels and float labels are the same labels.
    np.testing.assert_allclose(
        _np(losses.softmax_cross_entropy([[0], [1]], logits)), got, rtol=1e-6
    )
    np.testing.assert_allclose(
        _np(losses.softmax_cross_entropy([0.0, 1.0], logits)), got, rtol=1e-6
    )
    # Unbatched.
    np.testing.assert_allclose(
        _np(losses.softmax_cross_entropy(0, logits[0])), log_z - 2.0, rtol=1e-6
    )


def test_label_smoothing_hand_computed():
    # eps = 0.3, C = 3: target [0.8, 0.1, 0.1]; -log p = [log_z - 2, log_z, log_z].
    log_z = math.log(math.exp(2.0) + 2.0)
    expected = 0.8 * (log_z - 2.0) + 0.2 * log_z
    got = float(_np(losses.softmax_cross_entropy([0], [[2.0, 0.0, 0.0]], label_smoothing=0.3))[0])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # Same convention as Keras' CategoricalCrossentropy(label_smoothing=...).
    keras_ce = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.3)
    np.testing.assert_allclose(
        got, float(keras_ce([[1.0, 0.0, 0.0]], [[2.0, 0.0, 0.0]])), rtol=1e-6
    )
    # Uniform logits: log C whatever the smoothing.
    np.testing.assert_allclose(
        _np(losses.softmax_cross_entropy([2], [[0.0, 0.0, 0.0]], 0.3)), [math.log(3.0)], rtol=1e-6
    )
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.softmax_cross_entropy([0], [[0.0, 1.0]], label_smoothing=1.5)


# --- per-class selection ----------------------------------------------------


def _class_boxes():
    """[2, 3, 4]: example 0 has boxes A, B, FAR; example 1 has SMALL, TALL, WIDE."""
    return np.array([[A, B, FAR], [SMALL, TALL, WIDE]], np.float32)


def test_select_class_boxes_picks_the_label_row():
    got = _np(losses.select_class_boxes(_class_boxes(), [1, 2]))
    np.testing.assert_allclose(got, [B, WIDE])
    np.testing.assert_allclose(
        _np(losses.select_class_boxes(_class_boxes(), [[0], [0]])), [A, SMALL]
    )
    np.testing.assert_allclose(_np(losses.select_class_boxes(_class_boxes()[0], 2)), FAR)
    with pytest.raises(ValueError, match=r"\[\.\.\., C, 4\]"):
        losses.select_class_boxes(np.zeros((2, 3, 5)), [0, 1])


def test_gradient_reaches_only_the_selected_class_box():
    boxes = _class_boxes()
    boxes[0, 0] = np.inf  # an unselected class holding garbage must not poison the gradient
    class_boxes = tf.Variable(boxes)
    y_true = np.array([A + [1.0], WIDE + [2.0]], np.float32)
    loss_fn = losses.PerClassBoxLoss("giou", reduction="sum")
    with tf.GradientTape() as tape:
        loss = loss_fn(y_true, tf.convert_to_tensor(class_boxes))  # y_pred is a tensor in fit
    grad = tape.gradient(loss, class_boxes).numpy()
    assert np.all(np.isfinite(grad))
    selected = np.zeros((2, 3), bool)
    selected[0, 1] = selected[1, 2] = True
    assert np.all(grad[~selected] == 0.0)
    assert np.abs(grad[0, 1]).sum() > 0.0  # A vs B: imperfect, so a gradient
    # Example 1's box is already exact (WIDE vs WIDE): loss 1 - GIoU ~ 0 there.
    np.testing.assert_allclose(float(loss), 1.0 - (1 / 7 - (0.36 - 0.28) / 0.36), rtol=1e-5)


def test_per_class_box_loss_equals_box_loss_on_selected_boxes():
    y_true = np.array([A + [1.0], SMALL + [2.0]], np.float32)
    per_class = losses.PerClassBoxLoss("l2", reduction=None)(y_true, _class_boxes())
    agnostic = losses.BoxLoss("l2", reduction=None)(y_true[:, :4], np.array([B, WIDE], np.float32))
    np.testing.assert_allclose(_np(per_class), _np(agnostic), rtol=1e-6)
    with pytest.raises(ValueError, match=r"\[\.\.\., 5\]"):
        losses.PerClassBoxLoss()(y_true[:, :4], _class_boxes())


# --- Keras wrappers ---------------------------------------------------------


def test_wrappers_reduce_per_example_values_with_sample_weights():
    true = np.array([A, SMALL], np.float32)
    pred = np.array([B, SMALL], np.float32)
    per_example = _np(losses.box_regression_loss("l2", true, pred))  # [0.16, 0]
    np.testing.assert_allclose(
        float(losses.BoxLoss("l2")(true, pred)), per_example.mean(), rtol=1e-6
    )
    weighted = losses.BoxLoss("l2")(true, pred, sample_weight=np.array([2.0, 1.0]))
    np.testing.assert_allclose(float(weighted), (2 * 0.16 + 0) / 2, rtol=1e-5)
    none = losses.ClassificationLoss(reduction="none")([0, 1], [[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert tuple(none.shape) == (2,)


WRAPPERS = [
    losses.ClassificationLoss(label_smoothing=0.1),
    losses.BoxLoss("smooth_l1", smooth_l1_beta=0.08),
    losses.PerClassBoxLoss("ciou", name="per_class"),
]


@pytest.mark.parametrize("loss", WRAPPERS, ids=lambda x: type(x).__name__)
def test_wrappers_round_trip_through_config(loss):
    roundtrip.assert_object_round_trips(loss)


def test_config_values():
    assert losses.ClassificationLoss(0.1).get_config()["label_smoothing"] == 0.1
    config = losses.BoxLoss("smooth_l1", smooth_l1_beta=0.08).get_config()
    assert (config["kind"], config["smooth_l1_beta"]) == ("smooth_l1", 0.08)
    assert losses.BoxLoss().kind == "giou"
    assert losses.BoxLoss().smooth_l1_beta == losses.SMOOTH_L1_BETA


def test_combined_loss_weights():
    assert losses.combined_loss_weights(0.25, "box") == {"class_logits": 0.25, "box": 0.75}
    assert losses.combined_loss_weights(1, "class_boxes") == {
        "class_logits": 1.0,
        "class_boxes": 0.0,
    }
    with pytest.raises(ValueError, match="alpha"):
        losses.combined_loss_weights(1.5, "box")
    with pytest.raises(ValueError, match="class_boxes"):
        losses.combined_loss_weights(0.5, "boxes")


def test_compiled_per_class_model_loss_is_alpha_weighted_sum():
    """The trainer's compile_model on a per-class layout: per-output losses weighted by alpha."""
    from localizer.training import config as config_lib
    from localizer.training import objective

    num_classes = 3
    logits_in = keras.Input((num_classes,), name="logits_in")
    boxes_in = keras.Input((num_classes, 4), name="boxes_in")
    box_in = keras.Input((4,), name="box_in")
    class_logits = keras.layers.Identity(name="class_logits")(logits_in)
    box = keras.layers.Identity(name="box")(box_in)
    outputs = {
        "class_logits": class_logits,
        "class_boxes": keras.layers.Identity(name="class_boxes")(boxes_in),
        "box": box,
        "localization": keras.layers.Concatenate(name="localization")([box, class_logits]),
    }
    model = keras.Model([logits_in, boxes_in, box_in], outputs)
    alpha = 0.3
    config = config_lib.TrainConfig(alpha=alpha, box_loss="giou", label_smoothing=0.0)
    objective.compile_model(model, config, peak_lr=1e-3, steps_per_epoch=1, epochs=1)
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    labels = np.array([0, 1])
    packed = np.array([B + [0.0], TALL + [1.0]], np.float32)
    y = {
        "class_logits": labels,
        "class_boxes": packed,
        "box": packed[:, :4],
        "localization": packed,
    }
    # Example 0 (class 0): box A vs true B; example 1 (class 1): TALL vs true TALL.
    boxes = _class_boxes()
    got = model.evaluate(
        [logits, boxes, boxes[[0, 1], [0, 1]]], y, batch_size=2, verbose=0, return_dict=True
    )
    ce = np.mean([math.log(math.exp(2.0) + 2.0) - 2.0, math.log(3.0)])
    box = np.mean([1.0 - (1 / 7 - (0.36 - 0.28) / 0.36), 0.0])
    np.testing.assert_allclose(got["loss"], alpha * ce + (1 - alpha) * box, rtol=1e-4)
    # Only the per-class boxes carry a box loss (the selected box is for the metrics).
    assert "box_loss" not in got and "class_boxes_loss" in got


# --- the dense head's per-cell losses ------------------------------------------


def test_centre_target_is_a_distribution_peaked_at_the_box_centre():
    target = _np(
        losses.centre_target(np.array([[0.5, 0.0, 1.0, 0.5], [0.0, 0.0, 0.02, 0.02]]), 4, 4)
    )
    np.testing.assert_allclose(target.sum(axis=(1, 2)), [1.0, 1.0], atol=1e-6)
    # Box centre (0.75, 0.25) lies on the border of rows 2 and 3 and of columns 0 and 1: they tie.
    assert np.unravel_index(target[0].argmax(), (4, 4))[0] in (2, 3)
    np.testing.assert_allclose(target[0, 2], target[0, 3], atol=1e-6)
    # A box smaller than a cell: sigma floors at half a cell, the mass sits in cell (0, 0).
    assert target[1, 0, 0] > 0.8


def test_centre_loss_is_zero_at_the_target_and_positive_elsewhere():
    boxes = np.array([[0.1, 0.2, 0.5, 0.9]], "float32")
    target = _np(losses.centre_target(boxes, 5, 6))
    perfect = np.log(target)[..., None]
    np.testing.assert_allclose(_np(losses.centre_loss(boxes, perfect)), [0.0], atol=1e-5)
    assert _np(losses.centre_loss(boxes, np.zeros((1, 5, 6, 1), "float32")))[0] > 0.1


@pytest.mark.parametrize("kind", losses.BOX_LOSSES)
def test_cell_box_loss_weights_cells_by_the_centre_target(kind):
    true = np.array([[0.2, 0.2, 0.6, 0.6]], "float32")
    cells = np.tile(np.array(true)[:, None, None, :], (1, 3, 3, 1))
    np.testing.assert_allclose(_np(losses.cell_box_loss(kind, true, cells)), [0.0], atol=1e-6)
    # A wrong box in a far corner cell costs (almost) nothing; in the centre cell, a lot.
    corner, centre = cells.copy(), cells.copy()
    corner[0, 2, 2] = FAR
    centre[0, 1, 1] = FAR
    cost_corner = _np(losses.cell_box_loss(kind, true, corner))[0]
    cost_centre = _np(losses.cell_box_loss(kind, true, centre))[0]
    assert cost_corner < 0.01 * cost_centre


def test_dense_losses_in_keras_wrappers_and_in_a_graph():
    true = np.array([[0.2, 0.2, 0.6, 0.6], [0.0, 0.5, 0.5, 1.0]], "float32")
    logits = np.random.default_rng(0).normal(size=(2, 7, 7, 1)).astype("float32")
    eager = _np(losses.CentreLoss()(true, logits))
    graph = tf.function(lambda t, p: losses.CentreLoss()(t, p))(true, logits).numpy()
    np.testing.assert_allclose(eager, graph, rtol=1e-5)
    assert losses.CellBoxLoss.from_config(losses.CellBoxLoss("diou").get_config()).kind == "diou"


def test_box_quality_loss_by_hand():
    true = np.array([[0.0, 0.0, 0.4, 0.4], [0.0, 0.0, 0.4, 0.4]], np.float32)
    # Box IoUs with the truth: 1 and 1/7; predicted qualities 0.9 and 0.5.
    packed = np.array([[0.9, 0.0, 0.0, 0.4, 0.4], [0.5, 0.2, 0.2, 0.6, 0.6]], np.float32)
    got = keras.ops.convert_to_numpy(losses.box_quality_loss(true, packed))
    expected = [-np.log(0.9), -(np.log(0.5) / 7 + 6 / 7 * np.log(0.5))]
    np.testing.assert_allclose(
        got, expected, atol=1e-5
    )  # IoU's epsilon keeps the first target just under 1
    # Minimal where the quality equals the IoU.
    qualities = np.linspace(0.05, 0.95, 19, dtype=np.float32)
    packed = np.concatenate([qualities[:, None], np.tile([[0.2, 0.2, 0.6, 0.6]], (19, 1))], axis=-1)
    values = keras.ops.convert_to_numpy(losses.box_quality_loss(np.tile(true[:1], (19, 1)), packed))
    assert qualities[np.argmin(values)] == pytest.approx(1 / 7, abs=0.05)
    with pytest.raises(ValueError, match="5"):
        losses.box_quality_loss(true, np.zeros((2, 4), np.float32))
    roundtrip.assert_object_round_trips(losses.BoxQualityLoss())

"""The box convention and the pure box functions, on hand-computed cases."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines import boxes as box_lib
from pipelines import render


def test_convention_is_normalized_yxyx():
    assert box_lib.BOX_FORMAT == "rel_yxyx"
    # A 200x400 (h x w) image; pixel xyxy (40, 20, 200, 100) -> yxyx / size.
    got = box_lib.to_internal([40.0, 20.0, 200.0, 100.0], box_lib.PIXEL_XYXY, 200, 400).numpy()
    np.testing.assert_allclose(got, [0.1, 0.1, 0.5, 0.5])
    back = box_lib.from_internal(got, box_lib.PIXEL_XYXY, 200, 400).numpy()
    np.testing.assert_allclose(back, [40.0, 20.0, 200.0, 100.0], rtol=1e-6)


@pytest.mark.parametrize("fn", [box_lib.sanitize, box_lib.flip_left_right, box_lib.area])
def test_last_dimension_must_be_4(fn):
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        fn(np.zeros((2, 3), np.float32))


def test_iou_checks_both_arguments():
    with pytest.raises(ValueError, match="boxes2"):
        box_lib.iou(np.zeros((2, 4)), np.zeros((2, 5)))


def test_sanitize_repairs_and_flags():
    boxes = np.array(
        [
            [0.1, 0.2, 0.5, 0.6],  # fine
            [0.5, 0.6, 0.1, 0.2],  # inverted
            [-0.2, 0.1, 1.3, 0.9],  # out of range
            [0.3, 0.3, 0.3, 0.7],  # zero height
            [1.2, 0.1, 1.5, 0.5],  # wholly outside
            [np.nan, 0.1, 0.5, 0.5],  # NaN
        ],
        np.float32,
    )
    repaired, valid = box_lib.sanitize(boxes)
    np.testing.assert_allclose(repaired[0], boxes[0])
    np.testing.assert_allclose(repaired[1], [0.1, 0.2, 0.5, 0.6])
    np.testing.assert_allclose(repaired[2], [0.0, 0.1, 1.0, 0.9])
    assert valid.numpy().tolist() == [True, True, True, False, False, False]


def test_flip_twice_is_identity_and_mirrors():
    box = np.array([0.1, 0.2, 0.5, 0.7], np.float32)
    np.testing.assert_allclose(box_lib.flip_left_right(box), [0.1, 0.3, 0.5, 0.8], atol=1e-6)
    np.testing.assert_allclose(
        box_lib.flip_left_right(box_lib.flip_left_right(box)), box, atol=1e-6
    )


def test_reframe_crop_and_inverse():
    box = np.array([0.2, 0.2, 0.6, 0.4], np.float32)
    window = np.array([0.0, 0.0, 0.8, 0.5], np.float32)  # crop the top-left
    np.testing.assert_allclose(box_lib.reframe(box, window), [0.25, 0.4, 0.75, 0.8], atol=1e-6)
    back = box_lib.reframe(box_lib.reframe(box, window), box_lib.invert_window(window))
    np.testing.assert_allclose(back, box, atol=1e-6)


def test_reframe_pad_window_shrinks_box():
    # A canvas twice as large with the image in its top-left quarter.
    window = np.array([0.0, 0.0, 2.0, 2.0], np.float32)
    np.testing.assert_allclose(
        box_lib.reframe([0.5, 0.5, 1.0, 1.0], window), [0.25, 0.25, 0.5, 0.5]
    )


def test_iou_hand_cases_batched_and_unbatched():
    a = np.array([0.0, 0.0, 0.5, 0.5], np.float32)
    assert box_lib.iou(a, a).numpy() == pytest.approx(1.0, abs=1e-5)
    assert box_lib.iou(a, [0.5, 0.5, 1.0, 1.0]).numpy() == pytest.approx(0.0, abs=1e-6)
    # Half-shifted: intersection 0.125, union 0.375 -> 1/3.
    assert box_lib.iou(a, [0.0, 0.25, 0.5, 0.75]).numpy() == pytest.approx(1 / 3, abs=1e-5)
    batch = box_lib.iou(
        np.stack([a, a]), np.array([[0.0, 0.0, 0.5, 0.5], [0.0, 0.25, 0.5, 0.75]])
    ).numpy()
    np.testing.assert_allclose(batch, [1.0, 1 / 3], atol=1e-5)


def test_iou_family_hand_cases():
    a = np.array([0.0, 0.0, 0.2, 0.2], np.float32)
    b = np.array([0.0, 0.4, 0.2, 0.6], np.float32)  # disjoint, same row
    # GIoU: 0 - (enclosing 0.12 - union 0.08) / 0.12 = -1/3.
    assert box_lib.giou(a, b).numpy() == pytest.approx(-1 / 3, abs=1e-5)
    # DIoU: 0 - centre distance^2 (0.4^2) / enclosing diagonal^2 (0.2^2 + 0.6^2).
    assert box_lib.diou(a, b).numpy() == pytest.approx(-0.16 / 0.4, abs=1e-5)
    # Same aspect ratio -> CIoU equals DIoU.
    assert box_lib.ciou(a, b).numpy() == pytest.approx(box_lib.diou(a, b).numpy(), abs=1e-6)
    for fn in (box_lib.giou, box_lib.diou, box_lib.ciou):
        assert fn(a, a).numpy() == pytest.approx(1.0, abs=1e-5)


M = box_lib.MIN_BOX_SIZE


# (box as predicted, mapped to the original image; what the rule makes of it)
DEGENERATE_BOXES = [
    ((0.2, 0.3, 0.6, 0.7), (0.2, 0.3, 0.6, 0.7)),  # inside: unchanged
    ((-0.1, 0.2, 0.5, 1.3), (0.0, 0.2, 0.5, 1.0)),  # partly outside: clipped
    (
        (1.1, 0.3, 1.3, 0.6),
        (1.0 - M, 0.3, 1.0, 0.6),
    ),  # wholly in the bottom padding: a sliver at the edge
    ((-0.3, 0.3, -0.1, 0.6), (0.0, 0.3, M, 0.6)),  # in the top padding
    ((-0.2, -0.2, -0.1, -0.1), (0.0, 0.0, M, M)),  # off the top-left corner
    ((0.5, 0.5, 0.5, 0.5), (0.5 - M / 2, 0.5 - M / 2, 0.5 + M / 2, 0.5 + M / 2)),  # a point
    ((0.6, 0.2, 0.4, 0.3), (0.5 - M / 2, 0.2, 0.5 + M / 2, 0.3)),  # inverted in y
    (
        (0.3, 0.3, 0.3 + M, 0.4),
        (0.3, 0.3, 0.3 + M, 0.4),
    ),  # exactly the smallest: unchanged (continuous)
]


def test_clip_to_image_is_one_rule_eagerly_and_in_graphs():
    given = np.array([box for box, _ in DEGENERATE_BOXES], np.float32)
    wanted = np.array([box for _, box in DEGENERATE_BOXES], np.float32)
    eager = box_lib.clip_to_image(given).numpy()
    in_function = tf.function(box_lib.clip_to_image)(tf.constant(given)).numpy()
    in_dataset = np.stack(
        list(
            tf.data.Dataset.from_tensor_slices(given).map(box_lib.clip_to_image).as_numpy_iterator()
        )
    )
    for result in (eager, in_function, in_dataset):
        np.testing.assert_allclose(result, wanted, atol=1e-6)
    np.testing.assert_array_equal(in_function, eager)
    np.testing.assert_array_equal(in_dataset, eager)
    assert np.all(eager >= 0.0) and np.all(eager <= 1.0)
    assert np.all(eager[:, 2:] - eager[:, :2] >= M * (1 - 1e-4))
    # Every box so mapped is a box: it agrees with itself, so a one-view merge keeps it.
    assert np.all(box_lib.iou(eager, eager).numpy() > 0.9)
    # The mapping back to the photo takes that rule: a box in a landscape photo's letterbox padding.
    window = render.resize_window(tf.constant([48.0, 90.0]), 32, "letterbox")
    np.testing.assert_allclose(
        render.to_original_frame(tf.constant([[0.8, 0.4, 0.9, 0.6]]), window)[0, ::2],
        [1.0 - M, 1.0],
        atol=1e-6,
    )

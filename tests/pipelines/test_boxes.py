"""The box convention and the pure box functions, on hand-computed cases."""

import numpy as np
import pytest

from pipelines import boxes as box_lib


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

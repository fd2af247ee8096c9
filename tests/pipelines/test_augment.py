"""Tests of pipelines/augment.py: pixels and boxes move together, eagerly and in Dataset.map."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines import augment, decode, render
from pipelines.sources.source import BOX, IMAGE
from tests import fixtures

SEED = tf.constant([3, 7], tf.int64)


AUG = augment.AugmentConfig()


OPS = {
    "sanitize": decode.sanitize,
    "zoom_out": lambda f: augment.random_zoom_out(f, SEED, 1.8),
    "crop": lambda f: augment.random_crop_keeping_object(f, SEED, AUG),
    "translate": lambda f: augment.random_translate(f, SEED, 0.2),
    "augment_pixels": lambda f: augment.augment_pixels(f, SEED, AUG),
    "augment_view": lambda f: augment.augment_view(f, SEED, AUG),
    "zoom_view": lambda f: augment.random_zoom_view(f, SEED, 0.15),
    "augment_view_with_zoom_views": lambda f: augment.augment_view(
        f, SEED, augment.AugmentConfig(zoom_view_prob=0.5)
    ),
    "augment_and_resize": lambda f: augment.augment_and_resize(f, SEED, AUG, 32, "letterbox"),
    "resize_stretch": lambda f: render.resize(f, 32, "stretch"),
    "resize_letterbox": lambda f: render.resize(f, 32, "letterbox"),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_is_the_same_eagerly_and_in_dataset_map(name):
    op = OPS[name]
    eager = op(fixtures.white_box_example())
    mapped = next(iter(tf.data.Dataset.from_tensors(fixtures.white_box_example()).map(op)))
    assert sorted(eager) == sorted(mapped)
    for key in eager:
        np.testing.assert_allclose(
            np.asarray(eager[key]), np.asarray(mapped[key]), atol=1e-6, err_msg=key
        )


def _random_examples(count, rng):
    for _ in range(count):
        height, width = rng.integers(20, 90, size=2)
        y0, x0 = rng.uniform(0, 0.8, size=2)
        y1, x1 = y0 + rng.uniform(0.1, 1 - y0), x0 + rng.uniform(0.1, 1 - x0)
        # Snap to pixel edges so the drawn rectangle is exactly the box.
        box = np.array(
            [
                round(y0 * height) / height,
                round(x0 * width) / width,
                round(y1 * height) / height,
                round(x1 * width) / width,
            ]
        )
        yield fixtures.white_box_example(int(height), int(width), tuple(box))


def _box_of_bright_pixels(image, threshold=191):
    mask = np.asarray(image).min(axis=-1) > threshold
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    h, w = mask.shape
    return np.array([rows.min() / h, cols.min() / w, (rows.max() + 1) / h, (cols.max() + 1) / w])


def test_box_invariants_over_many_random_draws():
    rng = np.random.default_rng(0)
    config = augment.AugmentConfig(zoom_out_prob=0.5, crop_prob=0.7)
    for i, example in enumerate(_random_examples(150, rng)):
        original = example[BOX].numpy()
        out = augment.augment_and_resize(
            example, tf.constant([i, 11], tf.int64), config, 48, "letterbox"
        )
        box = out[BOX].numpy()
        assert np.all(box >= 0) and np.all(box <= 1), box
        assert box[0] < box[2] and box[1] < box[3], box
        flip_only = augment.AugmentConfig(brightness=0, contrast=0, saturation=0, hue=0)
        twice = augment.augment_pixels(
            augment.augment_pixels(example, tf.constant([i, 0]), flip_only),
            tf.constant([i, 0]),
            flip_only,
        )
        np.testing.assert_allclose(twice[BOX], original, atol=1e-6)
        np.testing.assert_array_equal(twice[IMAGE], example[IMAGE])


@pytest.mark.parametrize("mode", render.RESIZE_MODES)
def test_pixels_move_with_the_box(mode):
    """A solid rectangle drawn on the box before augmentation is where the box says after."""
    rng = np.random.default_rng(1)
    config = augment.AugmentConfig(
        brightness=0, contrast=0, saturation=0, hue=0, zoom_out_prob=0.5, crop_prob=0.7
    )
    for i, example in enumerate(_random_examples(60, rng)):
        out = augment.augment_and_resize(example, tf.constant([i, 5], tf.int64), config, 64, mode)
        measured = _box_of_bright_pixels(out[IMAGE])
        # Bilinear resampling blurs each edge by up to ~1.2 output pixels (measured).
        np.testing.assert_allclose(out[BOX], measured, atol=1.5 / 64, err_msg=f"draw {i}")


def test_augment_pixels_flips_about_half_and_moves_only_flipped_boxes():
    image = tf.constant(np.random.default_rng(0).integers(0, 256, (4, 4, 3)), tf.uint8)
    box = tf.constant([0.1, 0.1, 0.5, 0.3])
    flipped = 0
    for i in range(200):
        out = augment.augment_pixels({IMAGE: image, BOX: box}, tf.constant([i, 9]), AUG)
        assert out[IMAGE].dtype == tf.uint8 and out[IMAGE].shape == image.shape
        if np.isclose(out[BOX][1].numpy(), 0.7):
            flipped += 1
        else:  # colour jitter never moves a box
            np.testing.assert_allclose(out[BOX], box)
    assert 70 < flipped < 130


def test_colour_matrices_keep_gray_and_are_identity_at_rest():
    gray = np.full((1, 3), 0.5, np.float32)
    colour = np.array([[0.9, 0.2, 0.1]], np.float32)
    for matrix in (
        augment._hue_matrix(tf.constant(1.0)),
        augment._saturation_matrix(tf.constant(0.3)),
    ):
        np.testing.assert_allclose(gray @ matrix.numpy().T, gray, atol=1e-5)
        assert not np.allclose(colour @ matrix.numpy().T, colour, atol=0.05)
    np.testing.assert_allclose(augment._hue_matrix(tf.constant(2 * np.pi)), np.eye(3), atol=1e-5)
    np.testing.assert_allclose(augment._saturation_matrix(tf.constant(1.0)), np.eye(3), atol=1e-6)
    # Saturation 0 is the luma image.
    np.testing.assert_allclose(
        colour @ augment._saturation_matrix(tf.constant(0.0)).numpy().T,
        np.full((1, 3), 0.299 * 0.9 + 0.587 * 0.2 + 0.114 * 0.1),
        atol=1e-6,
    )


def test_crop_keeps_the_whole_object():
    rng = np.random.default_rng(2)
    config = augment.AugmentConfig(crop_area_range=(0.1, 0.3))
    for i, example in enumerate(_random_examples(40, rng)):
        out = augment.random_crop_keeping_object(example, tf.constant([i, 1]), config)
        _, box_in_view, _ = render.view_of(out)
        box = box_in_view.numpy()
        assert np.all(box >= -1e-6) and np.all(box <= 1 + 1e-6), box


def test_zoom_view_is_the_refinement_window_around_a_nearby_box():
    rng = np.random.default_rng(5)
    for i, example in enumerate(_random_examples(40, rng)):
        out = augment.random_zoom_view(example, tf.constant([i, 4]), 0.15)
        window, box_in_view, _ = render.view_of(out)
        height, width = example[IMAGE].shape[:2]
        side_px = (window[2] - window[0]).numpy() * height, (window[3] - window[1]).numpy() * width
        np.testing.assert_allclose(
            side_px[0], side_px[1], rtol=1e-4
        )  # square in pixels, as at test time
        box = example[BOX].numpy()
        longest = max((box[2] - box[0]) * height, (box[3] - box[1]) * width)
        # 2x a jittered box's longer side (at most 15% off per axis), or the 30% floor, or the whole
        # image.
        low = min(
            max(
                render.ZOOM_CONTEXT * longest * np.exp(-0.15),
                render.MIN_ZOOM_FRACTION * max(height, width),
            ),
            max(height, width),
        )
        assert side_px[0] >= low * (1 - 1e-4), (side_px[0], low)
        visible = box_in_view.numpy()
        centre = (visible[:2] + visible[2:]) / 2
        assert np.all(np.abs(centre - 0.5) < 0.5), (
            visible
        )  # the object's centre is inside the window


def test_zoom_views_come_as_often_as_asked_and_change_nothing_else():
    example = fixtures.white_box_example()
    config = augment.AugmentConfig(zoom_view_prob=0.3)
    seeds = [tf.constant([i, 9], tf.int64) for i in range(200)]
    zoomed = 0
    for seed in seeds:
        usual = augment.augment_view(example, seed, augment.AugmentConfig())
        out = augment.augment_view(example, seed, config)
        same = np.allclose(out[render.WINDOW], usual[render.WINDOW])
        zoomed += not same
    assert 40 <= zoomed <= 80  # 30% of 200, and the other views are exactly the usual ones

"""Pipeline ops: eager == inside Dataset.map, and boxes stay right under augmentation."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines import augment, decode, render
from pipelines.sources.source import BOX, IMAGE, LABEL

SEED = tf.constant([3, 7], tf.int64)


def _example(height=48, width=64, box=(0.25, 0.2, 0.75, 0.6)):
    """Black image with a white rectangle exactly on `box` (pixel-aligned)."""
    image = np.zeros((height, width, 3), np.uint8)
    ymin, xmin, ymax, xmax = box
    image[
        round(ymin * height) : round(ymax * height), round(xmin * width) : round(xmax * width)
    ] = 255
    return {IMAGE: tf.constant(image), LABEL: tf.constant(1), BOX: tf.constant(box, tf.float32)}


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
    eager = op(_example())
    mapped = next(iter(tf.data.Dataset.from_tensors(_example()).map(op)))
    assert sorted(eager) == sorted(mapped)
    for key in eager:
        np.testing.assert_allclose(
            np.asarray(eager[key]), np.asarray(mapped[key]), atol=1e-6, err_msg=key
        )


def test_decode_is_the_same_eagerly_and_in_dataset_map():
    image = _example()[IMAGE]
    element = {IMAGE: tf.io.encode_png(image), BOX: tf.constant([0.0, 0.0, 1.0, 1.0])}
    eager = decode.decode(element)
    mapped = next(iter(tf.data.Dataset.from_tensors(element).map(decode.decode)))
    np.testing.assert_array_equal(eager[IMAGE], image)
    np.testing.assert_array_equal(mapped[IMAGE], image)
    np.testing.assert_array_equal(eager[render.ORIGINAL_SIZE], [48, 64])


@pytest.mark.parametrize("channels", [1, 4])
def test_decode_makes_gray_and_rgba_rgb(channels):
    pixels = np.full((5, 6, channels), 200, np.uint8)
    decoded = decode.decode({IMAGE: tf.io.encode_png(pixels)})[IMAGE]
    assert decoded.shape == (5, 6, 3) and decoded.dtype == tf.uint8
    assert decode.decode({IMAGE: tf.constant(pixels)})[IMAGE].shape == (5, 6, 3)


def test_decode_reads_paths(tmp_path):
    path = str(tmp_path / "a.jpg")
    tf.io.write_file(path, tf.io.encode_jpeg(np.zeros((7, 9, 3), np.uint8)))
    decoded = decode.decode({"image_path": tf.constant(path)})
    assert decoded[IMAGE].shape == (7, 9, 3) and "image_path" not in decoded


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
        yield _example(int(height), int(width), tuple(box))


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
    example = _example()
    config = augment.AugmentConfig(zoom_view_prob=0.3)
    seeds = [tf.constant([i, 9], tf.int64) for i in range(200)]
    zoomed = 0
    for seed in seeds:
        usual = augment.augment_view(example, seed, augment.AugmentConfig())
        out = augment.augment_view(example, seed, config)
        same = np.allclose(out[render.WINDOW], usual[render.WINDOW])
        zoomed += not same
    assert 40 <= zoomed <= 80  # 30% of 200, and the other views are exactly the usual ones


@pytest.mark.parametrize("size", [(40, 100), (100, 40), (50, 50), (3, 200)])
def test_letterbox_maps_back_to_original_pixels(size):
    height, width = size
    box = tf.constant([0.1, 0.2, 0.9, 0.7])
    features = render.resize(
        {IMAGE: tf.zeros((height, width, 3), tf.uint8), BOX: box}, 64, "letterbox"
    )
    assert features[IMAGE].shape == (64, 64, 3)
    window = features[render.WINDOW]
    # The letterbox frame, snapped to whole pixels: by under two output pixels
    # (window units grow with the aspect ratio; 3 rows onto 1 changes the scale).
    output_pixel = max(size) / min(size) / 64
    np.testing.assert_allclose(
        window, render.resize_window(tf.constant(size), 64, "letterbox"), atol=2 * output_pixel
    )
    # float32 round-off grows with the aspect ratio (66:1 here): ~3e-6.
    np.testing.assert_allclose(render.to_original_frame(features[BOX], window), box, atol=1e-5)


def test_letterbox_pads_with_pad_value_and_keeps_aspect():
    image = tf.fill((20, 80, 3), tf.constant(255, tf.uint8))
    out = render.resize({IMAGE: image, BOX: tf.constant([0.0, 0.0, 1.0, 1.0])}, 40, "letterbox")
    pixels = out[IMAGE].numpy()
    # 20x80 -> 10x40 band in the middle rows 15..25.
    assert (pixels[15:25] == 255).all() and (pixels[:15] == render.PAD_VALUE).all()
    np.testing.assert_allclose(out[BOX], [0.375, 0.0, 0.625, 1.0], atol=1e-6)


def test_render_whole_image_is_plain_resize():
    """Rendering the unit window at the image's own size reproduces it exactly."""
    image = tf.constant(np.random.default_rng(0).integers(0, 256, (16, 16, 3)), tf.uint8)
    whole, window = render.render(image, tf.constant([0.0, 0.0, 1.0, 1.0]), 16)
    np.testing.assert_array_equal(whole, image)
    np.testing.assert_allclose(window, [0.0, 0.0, 1.0, 1.0])
    # Exactly half the image, at its own scale: the top-left quarter's pixels.
    quarter, _ = render.render(image, tf.constant([0.0, 0.0, 0.5, 0.5]), 8)
    np.testing.assert_array_equal(quarter, image[:8, :8])


def test_render_pads_outside_the_image():
    image = tf.fill((10, 10, 3), tf.constant(255, tf.uint8))
    out, window = render.render(image, tf.constant([-1.0, 0.0, 1.0, 1.0]), 20)
    out = out.numpy()
    assert (out[:10] == render.PAD_VALUE).all() and (out[10:] == 255).all()
    np.testing.assert_allclose(window, [-1.0, 0.0, 1.0, 1.0], atol=1e-6)


def test_render_snaps_the_window_by_less_than_a_pixel():
    image = tf.zeros((37, 53, 3), tf.uint8)
    requested = tf.constant([-0.13, 0.071, 0.77, 1.21])
    _, snapped = render.render(image, requested, 24)
    # Under one source pixel or one output pixel, whichever is larger.
    tolerance = max(1 / 37, 1 / 53, (0.9 + 1.14) / 24)
    np.testing.assert_allclose(snapped, requested, atol=tolerance)


def test_views_compose():
    example = _example()
    zoomed = render.compose_window(example, tf.constant([0.0, 0.0, 0.5, 0.5]))
    both = render.compose_window(zoomed, tf.constant([0.5, 0.5, 1.0, 1.0]))
    np.testing.assert_allclose(both[render.WINDOW], [0.25, 0.25, 0.5, 0.5], atol=1e-6)

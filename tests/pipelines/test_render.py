"""Tests of pipelines/render.py: resize, letterbox and views, and boxes mapped back to pixels."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines import render
from pipelines.sources.source import BOX, IMAGE
from tests import fixtures


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
    example = fixtures.white_box_example()
    zoomed = render.compose_window(example, tf.constant([0.0, 0.0, 0.5, 0.5]))
    both = render.compose_window(zoomed, tf.constant([0.5, 0.5, 1.0, 1.0]))
    np.testing.assert_allclose(both[render.WINDOW], [0.25, 0.25, 0.5, 0.5], atol=1e-6)


def test_zoom_window_is_square_in_pixels_inside_the_image_and_around_the_box():
    size = tf.constant([200, 400])
    # A 20 x 20 px box centred at (100, 200): window side = max(2 * 20, 0.3 * 400) = 120 px.
    window = render.zoom_window([0.45, 0.475, 0.55, 0.525], size).numpy()
    np.testing.assert_allclose((window[2] - window[0]) * 200, 120, atol=1e-3)
    np.testing.assert_allclose((window[3] - window[1]) * 400, 120, atol=1e-3)
    np.testing.assert_allclose(
        [(window[0] + window[2]) / 2, (window[1] + window[3]) / 2], [0.5, 0.5], atol=1e-6
    )
    # Near a corner: shifted inside the image, still containing the box.
    corner_box = np.array([0.0, 0.0, 0.1, 0.05])
    window = render.zoom_window(corner_box, size).numpy()
    assert window[0] == 0.0 and window[1] == 0.0 and np.all(window[2:] >= corner_box[2:])
    # A box wider than the image's height: the window spans the height, centred vertically.
    window = render.zoom_window([0.1, 0.1, 0.9, 0.9], size).numpy()
    np.testing.assert_allclose([window[1], window[3]], [0.0, 1.0], atol=1e-6)
    assert window[0] < 0.0 and window[2] > 1.0 and abs(window[0] + window[2] - 1.0) < 1e-6

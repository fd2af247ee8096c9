"""Tests of localizer/serving/graph.py: the serving tf.Module's own rules."""

import numpy as np
import pytest
import tensorflow as tf

from localizer.model.config import POOLED
from localizer.serving import graph, verify
from pipelines import boxes as box_lib
from tests import fixtures


def sample_images():
    """A landscape JPEG and a portrait PNG (different letterboxes), as encoded bytes."""
    landscape = fixtures.make_image(48, 90, [("cat", (10, 5, 50, 40))], seed=1)
    portrait = fixtures.make_image(70, 30, [("dog", (2, 30, 28, 66))], seed=2)
    return [tf.io.encode_jpeg(landscape, quality=95).numpy(), tf.io.encode_png(portrait).numpy()]


def check_against_reference(result, expected):
    np.testing.assert_array_equal(np.asarray(result["class_id"]), expected["class_id"])
    assert [_text(name) for name in result["class_name"]] == [
        fixtures.CLASSES[i] for i in expected["class_id"]
    ]
    np.testing.assert_allclose(np.asarray(result["box"]), expected["box"], atol=1e-4)
    np.testing.assert_allclose(
        np.asarray(result["probabilities"]), expected["probabilities"], atol=1e-5
    )
    np.testing.assert_allclose(np.asarray(result["score"]), expected["score"], atol=1e-5)
    assert ("box_quality" in result) == ("box_quality" in expected)
    if "box_quality" in expected:
        np.testing.assert_allclose(
            np.asarray(result["box_quality"]), expected["box_quality"], atol=1e-5
        )
        assert np.ptp(expected["box_quality"]) > 1e-4  # qualities that depend on the image


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def padding_model(seed=0):
    """A tiny model whose box sits low in its input frame whatever the image (the pooled head's
    `box_raw`
    bias: y from 0.78 to 0.89), so on a landscape photo, letterboxed above and below, it lies wholly
    in
    the padding: what a trained model did on the export's noise check image.
    """
    # class and quality drawn: outputs that depend on the image
    model = fixtures.tiny_model(
        seed, randomize={"class_dense": 1.0, "quality_dense": 1.0}, attach=POOLED
    )
    box_raw = model.get_layer("heads").get_layer("box_raw")
    kernel, _ = box_raw.get_weights()
    box_raw.set_weights([np.zeros_like(kernel), np.array([2.0, 0.0, -2.0, -1.0], np.float32)])
    return model


@pytest.mark.parametrize("refine", [False, True])
def test_boxes_in_the_padding_agree_between_the_reference_and_the_serving_graph(refine):
    """Was: the serving graph's one-view merge weighed the zero-height box by its IoU with itself
    (0), gave
    the all-zero box with quality 0, and the second look went elsewhere; the reference kept the box.
    """
    model = padding_model()
    strip = fixtures.make_image(
        20, 90, [("cat", (30, 4, 60, 16))], seed=3
    )  # letterboxed to y 0.39..0.61
    encoded = [tf.io.encode_png(strip).numpy()] + sample_images()
    first_look = verify.reference_predictions(model, encoded)
    # Wholly in the padding below the strip: the sliver at its edge; partly below the landscape
    # photo.
    np.testing.assert_allclose(
        first_look["box"][0, ::2], [1.0 - box_lib.MIN_BOX_SIZE, 1.0], atol=1e-6
    )
    assert first_look["box"][1, 2] == 1.0 and first_look["box"][1, 0] < 1.0 - box_lib.MIN_BOX_SIZE
    expected = verify.reference_predictions(model, encoded, refine)
    served = graph.LocalizerServing(model, refine=refine).serve_bytes(tf.constant(encoded))
    check_against_reference({key: value.numpy() for key, value in served.items()}, expected)
    assert np.all(expected["box_quality"] > 0.05)  # the box's own quality, not a zero weight's


def test_a_gif_under_30_bytes_hiding_a_huge_frame_is_too_large_not_unsupported():
    """A GIF's header is its 13-byte screen descriptor: without a colour table, a whole GIF
    announcing a
    20000 x 20000 frame on a 10 x 10 canvas is 29 bytes, and it met "Unsupported image" (the 30-byte
    minimum
    of the other formats' headers) instead of the pixel limit.
    """
    with_table = fixtures.gif_with_frames(canvas=(10, 10), frame=(20000, 20000))
    flags = with_table[10]
    without_table = with_table[:10] + bytes([flags & 0x7F]) + with_table[11:13] + with_table[19:]
    assert (len(with_table), len(without_table)) == (35, 29)
    serving = graph.LocalizerServing(fixtures.tiny_model(randomize=True))
    for gif in (with_table, without_table):
        assert graph.encoded_image_pixels(tf.constant(gif)).numpy() == 20000 * 20000
        with pytest.raises(tf.errors.InvalidArgumentError, match="Image too large"):
            serving.serve_bytes(tf.constant([gif]))
    assert graph.encoded_image_pixels(tf.constant(with_table[:12])).numpy() == graph.UNKNOWN_FORMAT

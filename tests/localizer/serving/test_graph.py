"""Tests of localizer/serving/graph.py: the serving tf.Module's own rules."""

import numpy as np
import pytest
import tensorflow as tf

from localizer.serving import graph, verify
from pipelines import boxes as box_lib
from tests import fixtures
from tests.localizer.serving.test_export_lib import (
    check_against_reference,
    padding_model,
    sample_images,
)


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

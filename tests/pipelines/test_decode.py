"""Tests of pipelines/decode.py: the same eagerly and in Dataset.map, any image becomes RGB."""

import os

import numpy as np
import pytest
import tensorflow as tf

import pipelines
from pipelines import decode, render
from pipelines.sources.source import BOX, ID, IMAGE
from tests import fixtures


def test_decode_is_the_same_eagerly_and_in_dataset_map():
    image = fixtures.white_box_example()[IMAGE]
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


def test_alpha_is_composited_and_gray_becomes_rgb():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent
    decoded = decode.decode_image_bytes(tf.io.encode_png(rgba)).numpy()
    assert (decoded == render.PAD_VALUE).all()  # the background, not the hidden red
    gray = decode.decode_image_bytes(tf.io.encode_png(np.full((2, 2, 1), 9, np.uint8))).numpy()
    assert gray.shape == (2, 2, 3) and (gray == 9).all()
    cmyk = decode.decode_image_bytes(fixtures._cmyk_jpeg(8, 8)).numpy()
    assert cmyk.shape == (8, 8, 3) and cmyk[..., 0].mean() > 200 and cmyk[..., 1].mean() < 50


def test_alpha_image_trains_on_the_same_pixels_serving_sees(tmp_path):
    root, _ = fixtures.make_faulty_voc_folder(tmp_path / "data")
    source = pipelines.get_source("voc_dir", data_dir=root)
    element = next(e for e in source.load("train") if e[ID].numpy() == b"alpha")
    trained_on = decode.decode(element)["image"].numpy()
    with open(os.path.join(root, "JPEGImages", "alpha.png"), "rb") as f:
        served = decode.decode_image_bytes(f.read()).numpy()
    np.testing.assert_array_equal(trained_on, served)

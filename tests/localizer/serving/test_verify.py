"""Tests of localizer/serving/verify.py: the export's check images."""

import tensorflow as tf

import pipelines
from localizer.serving import verify
from pipelines import decode
from tests import fixtures


def test_check_images_are_photos_of_the_split_then_noise(tmp_path):
    voc = fixtures.make_voc_folder(tmp_path / "voc")
    images = verify.dataset_check_images(pipelines.get_source("voc_dir", data_dir=voc), "val", 32)
    assert [image.name for image in images] == [
        "voc_dir val img4",
        "voc_dir val img5",
        "noise 0 (landscape JPEG)",
        "noise 1 (portrait PNG)",
    ]
    decoded = [decode.decode_image_bytes(tf.constant(image.data)).numpy() for image in images]
    assert [d.shape[:2] for d in decoded[:2]] == [(56, 56), (40, 90)]
    assert images[0].data[:2] == b"\xff\xd8" and images[1].data[:4] == b"\x89PNG"  # both decoders
    generated = verify.generated_check_images(32)
    assert [image.kind for image in generated] == ["generated"] * verify.CHECK_PHOTOS + [
        "noise"
    ] * 2
    assert [image.data for image in generated] == [
        image.data for image in verify.generated_check_images(32)
    ]

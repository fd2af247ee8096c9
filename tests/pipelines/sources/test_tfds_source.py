"""`tfds:<name>[:<version>]`: any TFDS detection dataset, offline, on `tfds.testing.mock_data`.

No test downloads: the source never does, and `_no_network` fails any attempt.
"""

import socket

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import download_manager as tfds_download_manager

import pipelines
from pipelines import decode
from pipelines.sources import tfds_source
from pipelines.sources.source import BOX, ID, IMAGE, LABEL, DatasetError


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("test tried to reach the network")

    monkeypatch.setattr(tfds_download_manager.DownloadManager, "_download", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def prepared(monkeypatch):
    """mock_data serves the examples; the builder counts as prepared (no files are read)."""
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)


def _png(height, width, seed):
    return tf.io.encode_png(
        np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    ).numpy()


def _as_dataset(examples, signature):
    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        del self, split, decoders, read_config, shuffle_files
        return tf.data.Dataset.from_generator(lambda: iter(examples), output_signature=signature)

    return as_dataset


# coco/2017: objects/bbox, objects/label, objects/is_crowd, image/filename.
COCO_EXAMPLES = [
    {
        "image": _png(20, 30, 0),
        "image/filename": b"a.jpg",
        "objects": {
            "bbox": np.array([[0.1, 0.1, 0.3, 0.3], [0.0, 0.2, 0.9, 0.8]], np.float32),
            "label": np.array([5, 7]),
            "is_crowd": np.array([False, False]),
        },
    },
    # The larger box is a crowd: never the target.
    {
        "image": _png(16, 16, 1),
        "image/filename": b"b.jpg",
        "objects": {
            "bbox": np.array([[0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.75, 0.7]], np.float32),
            "label": np.array([1, 2]),
            "is_crowd": np.array([True, False]),
        },
    },
    {
        "image": _png(12, 12, 2),
        "image/filename": b"c.jpg",
        "objects": {
            "bbox": np.zeros((0, 4), np.float32),
            "label": np.zeros(0, np.int64),
            "is_crowd": np.zeros(0, bool),
        },
    },
]
COCO_SIGNATURE = {
    "image": tf.TensorSpec([], tf.string),
    "image/filename": tf.TensorSpec([], tf.string),
    "objects": {
        "bbox": tf.TensorSpec([None, 4], tf.float32),
        "label": tf.TensorSpec([None], tf.int64),
        "is_crowd": tf.TensorSpec([None], tf.bool),
    },
}


@pytest.mark.parametrize(
    "policy,expected",
    [
        ("largest", {"a.jpg": (7, [0.0, 0.2, 0.9, 0.8]), "b.jpg": (2, [0.5, 0.5, 0.75, 0.7])}),
        ("single", {"b.jpg": (2, [0.5, 0.5, 0.75, 0.7])}),
    ],
)
def test_objects_bbox_label_and_crowds(prepared, policy, expected):
    with tfds.testing.mock_data(as_dataset_fn=_as_dataset(COCO_EXAMPLES, COCO_SIGNATURE)):
        source = pipelines.source_with_options("tfds:coco/2017", "/nonexistent/tfds", policy=policy)
        assert (
            source.name == "tfds:coco/2017" and source.num_classes == 80
        )  # names: the ClassLabel's
        elements = list(source.load("train"))
        stats = source.index_stats("train")
        identity = source.identity("train")
    got = {e[ID].numpy().decode(): (int(e[LABEL]), e[BOX].numpy()) for e in elements}
    assert list(got) == list(expected)
    for name, (label, box) in expected.items():
        assert got[name][0] == label
        np.testing.assert_allclose(got[name][1], box, atol=1e-6)
    assert stats.skipped["no objects"] == 1
    assert identity["tfds"].startswith("coco/2017/") and identity["policy"] == policy
    image = decode.decode(elements[0])[IMAGE]
    assert elements[0][IMAGE].dtype == tf.string and image.shape[-1] == 3


def test_top_level_bbox_and_image_label(prepared):
    """caltech_birds2011: one `bbox` and one `label` per image (and a second Image feature,
    unread)."""
    examples = [
        {
            "image": _png(20, 20, i),
            "image/filename": f"{i}.jpg".encode(),
            "label": np.int64(i * 10),
            "label_name": b"x",
            "segmentation_mask": _png(20, 20, 9),
            "bbox": np.array([0.1 * i, 0.2, 0.5 + 0.1 * i, 0.9], np.float32),
        }
        for i in range(3)
    ]
    signature = {
        "image": tf.TensorSpec([], tf.string),
        "image/filename": tf.TensorSpec([], tf.string),
        "label": tf.TensorSpec([], tf.int64),
        "label_name": tf.TensorSpec([], tf.string),
        "segmentation_mask": tf.TensorSpec([], tf.string),
        "bbox": tf.TensorSpec([4], tf.float32),
    }
    with tfds.testing.mock_data(as_dataset_fn=_as_dataset(examples, signature)):
        source = pipelines.get_source("tfds:caltech_birds2011")
        assert source.features.objects is None and source.features.label_in_objects is False
        elements = list(source.load("train"))
    assert [int(e[LABEL]) for e in elements] == [0, 10, 20]
    np.testing.assert_allclose(elements[2][BOX], [0.2, 0.2, 0.7, 0.9], atol=1e-6)


def test_feature_discovery_on_real_builders():
    dogs = tfds_source.find_features(tfds.builder("stanford_dogs").info.features, "stanford_dogs")
    assert (dogs.objects, dogs.bbox, dogs.label_in_objects, dogs.flags) == (
        "objects",
        "bbox",
        False,
        (),
    )
    voc = tfds_source.find_features(tfds.builder("voc/2007").info.features, "voc")
    assert (voc.objects, voc.label_in_objects, voc.flags, voc.class_names[0]) == (
        "objects",
        True,
        ("is_difficult",),
        "aeroplane",
    )
    with pytest.raises(DatasetError, match="has no BBoxFeature"):
        pipelines.get_source("tfds:mnist")


def test_not_prepared_unknown_and_bad_names_are_one_line(tmp_path):
    source = pipelines.get_source("tfds:caltech_birds2011", data_dir=str(tmp_path))
    with pytest.raises(
        DatasetError, match=r"not prepared in .* never downloads.*tfds build caltech_birds2011"
    ) as e:
        source.num_examples("train")
    assert f"--data_dir={tmp_path}" in str(e.value)
    for name, fragment in (
        ("tfds:no_such_dataset_here", "cannot open TFDS dataset no_such_dataset_here"),
        ("tfds:stanford_dogs:9.9.9", "cannot open TFDS dataset stanford_dogs:9.9.9"),
    ):
        with pytest.raises(DatasetError, match=fragment) as e:
            pipelines.get_source(name, data_dir=str(tmp_path))
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"tfds:<name>\[:<version>\]"):
        pipelines.get_source("tfds:")

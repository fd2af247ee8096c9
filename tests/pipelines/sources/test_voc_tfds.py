"""`voc` (TFDS Pascal VOC) source, offline: TFDS mock data, hand-built annotations,
and a real `download_and_prepare` from tiny VOC-layout tars in a manual dir.

No test reaches the network: `_no_network` makes any TFDS download or socket
connection fail the test at once.
"""

import io
import logging
import os
import socket
import tarfile
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import checksums as tfds_checksums
from tensorflow_datasets.core.download import download_manager as tfds_download_manager
from tensorflow_datasets.testing import mocking as tfds_mocking

from pipelines import decode, render
from pipelines.sources import voc_tfds
from pipelines.sources.source import BOX, ID, IMAGE, LABEL, DatasetError

NUM_CLASSES = 20


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any download by TFDS or socket connection fails the test immediately."""

    def no_download(*args, **kwargs):
        raise AssertionError("test tried to download with TFDS")

    def no_connection(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(tfds_download_manager.DownloadManager, "_download", no_download)
    monkeypatch.setattr(socket, "create_connection", no_connection)


@pytest.fixture
def online(monkeypatch):
    """Pretends the download host is reachable (mock_data makes preparing a no-op)."""
    monkeypatch.setattr(voc_tfds, "_host_reachable", lambda *args, **kwargs: True)


def _png(height, width, seed=0):
    rng = np.random.default_rng(seed)
    return tf.io.encode_png(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).numpy()


def _random_as_dataset(num_examples):
    """TFDS's own random VOC examples, as `SkipDecoding` reads them (PNG bytes).

    `mock_data`'s default generator cannot serve VOC with a decoder: it draws
    every field of the `objects` sequence with its own random length, which
    `Sequence.encode_example` rejects. So the raw random examples are used and
    only the image is encoded, keeping the inconsistent annotations (boxes,
    labels and is_difficult of different lengths, inverted boxes).
    """

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        del split, decoders, read_config, shuffle_files
        features = self.info.features
        specs = features.get_tensor_info()
        ds = tf.data.Dataset.from_generator(
            lambda: tfds_mocking.RandomFakeGenerator(features, num_examples),
            output_types=tf.nest.map_structure(lambda t: t.dtype, specs),
            output_shapes=tf.nest.map_structure(lambda t: t.shape, specs),
        )
        return ds.map(lambda ex: {**ex, "image": tf.io.encode_png(ex["image"])})

    return as_dataset


def _hand_built_as_dataset(examples, with_difficult=True):
    """A mocked `_as_dataset` serving `examples`: (filename, (h, w), boxes, labels, difficult)."""

    def generate():
        for i, (filename, (height, width), boxes, labels, difficult) in enumerate(examples):
            objects = {
                "bbox": np.asarray(boxes, np.float32).reshape(-1, 4),
                "label": np.asarray(labels, np.int64).reshape(-1),
            }
            if with_difficult:
                objects["is_difficult"] = np.asarray(difficult, bool).reshape(-1)
            yield {
                "image": _png(height, width, seed=i),
                "image/filename": filename,
                "objects": objects,
            }

    objects_signature = {
        "bbox": tf.TensorSpec([None, 4], tf.float32),
        "label": tf.TensorSpec([None], tf.int64),
    }
    if with_difficult:
        objects_signature["is_difficult"] = tf.TensorSpec([None], tf.bool)
    signature = {
        "image": tf.TensorSpec([], tf.string),
        "image/filename": tf.TensorSpec([], tf.string),
        "objects": objects_signature,
    }

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        del self, split, decoders, read_config, shuffle_files
        return tf.data.Dataset.from_generator(generate, output_signature=signature)

    return as_dataset


# (filename, (height, width), boxes yxyx, labels, difficult)
HAND_BUILT = [
    ("one.jpg", (20, 30), [[0.1, 0.2, 0.5, 0.6]], [3], [False]),
    ("two.jpg", (24, 24), [[0.0, 0.0, 0.2, 0.2], [0.1, 0.1, 0.9, 0.8]], [1, 7], [False, False]),
    (
        "difficult.jpg",
        (16, 40),
        [[0.0, 0.0, 1.0, 1.0], [0.3, 0.3, 0.5, 0.6]],
        [4, 2],
        [True, False],
    ),
    ("inverted.jpg", (32, 16), [[0.8, 0.7, 0.2, 0.1]], [5], [False]),
    # Mismatched lengths: two boxes, one label, three flags -> one usable object.
    (
        "mismatch.jpg",
        (18, 18),
        [[0.25, 0.25, 0.75, 0.5], [0.0, 0.0, 1.0, 1.0]],
        [9],
        [False, False, True],
    ),
    ("empty.jpg", (10, 12), np.zeros([0, 4]), [], []),
    ("all_difficult.jpg", (12, 10), [[0.1, 0.1, 0.9, 0.9]], [6], [True]),
    ("degenerate.jpg", (14, 14), [[0.5, 0.5, 0.5, 0.9]], [8], [False]),
]

# What each policy keeps from HAND_BUILT: filename -> (label, box).
EXPECTED = {
    "largest": {
        "one.jpg": (3, [0.1, 0.2, 0.5, 0.6]),
        "two.jpg": (7, [0.1, 0.1, 0.9, 0.8]),
        "difficult.jpg": (2, [0.3, 0.3, 0.5, 0.6]),
        "inverted.jpg": (5, [0.2, 0.1, 0.8, 0.7]),
        "mismatch.jpg": (9, [0.25, 0.25, 0.75, 0.5]),
    },
    "single": {
        "one.jpg": (3, [0.1, 0.2, 0.5, 0.6]),
        "difficult.jpg": (2, [0.3, 0.3, 0.5, 0.6]),
        "inverted.jpg": (5, [0.2, 0.1, 0.8, 0.7]),
        "mismatch.jpg": (9, [0.25, 0.25, 0.75, 0.5]),
    },
}


def _check_element(element):
    decoded = decode.decode(element)
    image = decoded[IMAGE]
    assert element[IMAGE].dtype == tf.string
    assert image.dtype == tf.uint8 and image.shape.rank == 3 and image.shape[-1] == 3
    assert element[LABEL].dtype == tf.int32 and 0 <= int(element[LABEL]) < NUM_CLASSES
    box = element[BOX].numpy()
    assert element[BOX].dtype == tf.float32 and box.shape == (4,)
    assert np.all(box >= 0.0) and np.all(box <= 1.0)
    assert box[0] < box[2] and box[1] < box[3]
    assert element[ID].dtype == tf.string and element[ID].numpy()


def test_random_mock_data_loads_valid_elements(online, caplog):
    # The library logs through absl; a command run in this process may have set that logger's level.
    caplog.set_level(logging.INFO, logger="absl")
    with tfds.testing.mock_data(num_examples=6, as_dataset_fn=_random_as_dataset(6)):
        source = voc_tfds.VocTfdsSource(data_dir="/nonexistent/tfds")
        assert source.name == "voc"
        assert source.num_classes == NUM_CLASSES and source.class_names[0] == "aeroplane"
        elements = list(source.load("train"))
        assert len(elements) == source.num_examples("train") > 0
        for element in elements:
            _check_element(element)
        # The random boxes are inverted half the time: repaired, not a crash.
        assert source.index_stats("train").repaired["box clipped or un-inverted"] > 0
    assert any("voc[train, policy=largest]: kept" in r.getMessage() for r in caplog.records)


def test_random_mock_data_has_inconsistent_annotations(online):
    """The premise of the test above: TFDS's random VOC examples disagree on lengths."""
    with tfds.testing.mock_data(num_examples=4, as_dataset_fn=_random_as_dataset(4)):
        builder = tfds.builder("voc/2007")
        ds = builder.as_dataset(split="train", decoders={"image": tfds.decode.SkipDecoding()})
        lengths = [
            {len(ex["objects"][k]) for k in ("bbox", "label", "is_difficult")}
            for ex in ds.as_numpy_iterator()
        ]
    assert any(len(set_) > 1 for set_ in lengths)


def test_random_mock_single_keeps_no_more_than_largest(online):
    with tfds.testing.mock_data(num_examples=8, as_dataset_fn=_random_as_dataset(8)):
        largest = voc_tfds.VocTfdsSource(policy="largest").num_examples("train+val")
        single_source = voc_tfds.VocTfdsSource(policy="single")
        single = single_source.num_examples("train+val")
        assert single == len(list(single_source.load("train+val")))
    assert single <= largest


@pytest.mark.parametrize("policy", ["largest", "single"])
def test_hand_built_policy_wiring(online, caplog, policy):
    # The library logs through absl; a command run in this process may have set that logger's level.
    caplog.set_level(logging.INFO, logger="absl")
    with tfds.testing.mock_data(as_dataset_fn=_hand_built_as_dataset(HAND_BUILT)):
        source = voc_tfds.VocTfdsSource(policy=policy)
        elements = list(source.load("validation"))
        assert source.num_examples("val") == len(elements)  # "val" is "validation".
        stats = source.index_stats("validation")
    got = {e[ID].numpy().decode(): (int(e[LABEL]), e[BOX].numpy()) for e in elements}
    expected = EXPECTED[policy]
    assert list(got) == list(expected)  # Kept in the TFDS order.
    for name, (label, box) in expected.items():
        assert got[name][0] == label, name
        np.testing.assert_allclose(got[name][1], box, atol=1e-6, err_msg=name)
    for element in elements:
        _check_element(element)
    assert stats.kept == len(expected)
    assert stats.skipped["no objects"] == 1
    assert stats.skipped["no valid non-difficult object"] == 2  # all difficult, degenerate
    if policy == "single":
        assert stats.skipped["several objects (policy=single)"] == 1
    message = f"voc[validation, policy={policy}]: {stats.summary()}"
    assert any(r.getMessage() == message for r in caplog.records)


def test_missing_is_difficult_means_not_difficult(online):
    examples = [("a.jpg", (10, 10), [[0.0, 0.0, 1.0, 1.0], [0.2, 0.2, 0.4, 0.4]], [4, 2], None)]
    with tfds.testing.mock_data(
        as_dataset_fn=_hand_built_as_dataset(examples, with_difficult=False)
    ):
        largest = list(voc_tfds.VocTfdsSource(policy="largest").load("train"))
        single = list(voc_tfds.VocTfdsSource(policy="single").load("train"))
    assert [int(e[LABEL]) for e in largest] == [4]
    assert single == []


def test_index_is_cached_per_split(online, monkeypatch):
    with tfds.testing.mock_data(as_dataset_fn=_hand_built_as_dataset(HAND_BUILT)):
        source = voc_tfds.VocTfdsSource()
        calls = []
        build = source._build_index
        monkeypatch.setattr(
            source, "_build_index", lambda split: calls.append(split) or build(split)
        )
        source.num_examples("val")
        list(source.load("validation"))
        source.num_examples("train")
    assert calls == ["validation", "train"]


def test_split_names():
    assert voc_tfds.canonical_split("val") == "validation"
    assert voc_tfds.canonical_split("train+val") == "train+validation"
    assert voc_tfds.canonical_split("trainval") == "train+validation"
    assert voc_tfds.canonical_split("val[:10%]") == "validation[:10%]"
    with pytest.raises(ValueError, match="splits"):
        voc_tfds.canonical_split("training")
    with pytest.raises(DatasetError, match="no annotations"):
        voc_tfds.VocTfdsSource(year="2012").num_examples("test")
    with pytest.raises(ValueError, match="year"):
        voc_tfds.VocTfdsSource(year="2010")
    with pytest.raises(ValueError, match="policy"):
        voc_tfds.VocTfdsSource(policy="all")


# ----------------------------------------------------------------------------
# Not prepared and offline: a clear DatasetError, at once, no download attempt.
# ----------------------------------------------------------------------------


def _assert_instructions(error, manual_dir):
    message = str(error)
    assert "VOCtrainval_06-Nov-2007.tar" in message
    assert "VOCtest_06-Nov-2007.tar" in message
    assert os.fspath(manual_dir) in message
    assert "--manual_dir" in message and "--data_dir" in message


def test_offline_without_download_raises_instructions(tmp_path):
    source = voc_tfds.VocTfdsSource(data_dir=tmp_path / "tfds", download=False)
    start = time.monotonic()
    with pytest.raises(DatasetError) as error:
        source.num_examples("train")
    assert time.monotonic() - start < 10
    _assert_instructions(error.value, tmp_path / "tfds" / "downloads" / "manual")
    assert "download=False" in str(error.value)


def test_offline_with_download_fails_fast(tmp_path):
    # `_no_network` makes the host unreachable, as on a machine without internet.
    source = voc_tfds.VocTfdsSource(data_dir=tmp_path / "tfds")
    start = time.monotonic()
    with pytest.raises(DatasetError, match="cannot be reached") as error:
        list(source.load("train"))
    assert time.monotonic() - start < 10
    _assert_instructions(error.value, tmp_path / "tfds" / "downloads" / "manual")


def test_manual_dir_missing_an_archive(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "VOCtrainval_06-Nov-2007.tar").write_bytes(b"x")
    source = voc_tfds.VocTfdsSource(data_dir=tmp_path / "tfds", manual_dir=manual)
    with pytest.raises(DatasetError) as error:
        source.num_examples("train")
    _assert_instructions(error.value, manual)
    assert "VOCtest_06-Nov-2007.tar [MISSING]" in str(error.value)
    assert "VOCtrainval_06-Nov-2007.tar [present]" in str(error.value)


def test_wrong_archives_in_manual_dir_are_rejected_by_checksum(tmp_path):
    """TFDS takes the tars from manual_dir by name (and checks their sha256)."""
    manual = tmp_path / "manual"
    manual.mkdir()
    for name in voc_tfds.ARCHIVES["2007"]:
        (manual / name).write_bytes(b"not the real archive")
    source = voc_tfds.VocTfdsSource(data_dir=tmp_path / "tfds", manual_dir=manual)
    with pytest.raises(DatasetError, match="does not match the official file") as error:
        source.num_examples("train")
    _assert_instructions(error.value, manual)
    assert isinstance(error.value.__cause__, tfds_download_manager.NonMatchingChecksumError)
    # TFDS hashed our file, found in manual_dir under the archive's name.
    assert os.fspath(manual / "VOCtest_06-Nov-2007.tar") in str(error.value) or os.fspath(
        manual / "VOCtrainval_06-Nov-2007.tar"
    ) in str(error.value)
    assert not source.builder.is_prepared()


# ----------------------------------------------------------------------------
# End to end: TFDS prepares voc/2007 from tiny tars in the manual dir, offline.
# ----------------------------------------------------------------------------

# id -> (height, width, [(class name, xmin, ymin, xmax, ymax, difficult)])
TINY_VOC = {
    "000001": (40, 60, [("dog", 6, 4, 30, 36, 0)]),
    "000002": (50, 40, [("cat", 1, 1, 10, 10, 0), ("person", 5, 10, 35, 45, 0)]),
    "000003": (30, 30, [("car", 1, 1, 30, 30, 1), ("bus", 10, 10, 20, 25, 0)]),
    "000004": (36, 48, [("bird", 2, 3, 40, 30, 1)]),
    "000005": (44, 44, [("horse", 5, 5, 40, 40, 0)]),
}
TINY_SPLITS = {"train": ["000001", "000002"], "val": ["000003", "000004"], "test": ["000005"]}


def _voc_xml(image_id, height, width, objects):
    parts = [
        f"<annotation><filename>{image_id}.jpg</filename>",
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
    ]
    for name, xmin, ymin, xmax, ymax, difficult in objects:
        parts.append(
            f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>{difficult}</difficult><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
            f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
        )
    return "".join(parts + ["</annotation>"]).encode()


def _write_tar(path, set_names):
    root = "VOCdevkit/VOC2007"
    ids = [i for s in set_names for i in TINY_SPLITS[s]]
    files = {
        f"{root}/ImageSets/Main/{s}.txt": "".join(f"{i}\n" for i in TINY_SPLITS[s]).encode()
        for s in set_names
    }
    for i in ids:
        height, width, objects = TINY_VOC[i]
        rng = np.random.default_rng(int(i))
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        files[f"{root}/JPEGImages/{i}.jpg"] = tf.io.encode_jpeg(pixels).numpy()
        files[f"{root}/Annotations/{i}.xml"] = _voc_xml(i, height, width, objects)
    with tarfile.open(path, "w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _tiny_voc_archives(manual, monkeypatch):
    """Writes the two VOC2007 tars, tiny, in `manual`; sets TFDS's checksums to theirs."""
    manual.mkdir(parents=True)
    _write_tar(manual / "VOCtrainval_06-Nov-2007.tar", ["train", "val"])
    _write_tar(manual / "VOCtest_06-Nov-2007.tar", ["test"])
    voc_cls = tfds.builder_cls("voc")
    infos = {}
    for url, info in voc_cls.url_infos.items():
        if (manual / info.filename).exists():
            infos[url] = tfds_checksums.compute_url_info(manual / info.filename)
    assert len(infos) == 2
    monkeypatch.setattr(voc_cls, "url_infos", infos)
    return manual


def test_prepares_from_manual_dir_offline(tmp_path, monkeypatch):
    data_dir = tmp_path / "tfds"
    manual = _tiny_voc_archives(tmp_path / "manual", monkeypatch)
    source = voc_tfds.VocTfdsSource(data_dir=data_dir, manual_dir=manual)
    train = list(source.load("train"))
    assert source.builder.is_prepared()
    names = source.class_names
    got = {e[ID].numpy().decode(): (names[int(e[LABEL])], e[BOX].numpy()) for e in train}
    assert set(got) == {"000001.jpg", "000002.jpg"}
    assert got["000001.jpg"][0] == "dog"
    np.testing.assert_allclose(got["000001.jpg"][1], [4 / 40, 6 / 60, 36 / 40, 30 / 60], atol=1e-6)
    assert got["000002.jpg"][0] == "person"  # the larger object
    for element in train:
        _check_element(element)
        assert (
            tuple(decode.decode(element)[render.ORIGINAL_SIZE].numpy())
            == TINY_VOC[element[ID].numpy().decode()[:-4]][:2]
        )
    # Validation: 000003's larger object is difficult, 000004 has only a difficult one.
    val = list(source.load("val"))
    assert [(e[ID].numpy().decode(), names[int(e[LABEL])]) for e in val] == [("000003.jpg", "bus")]
    assert source.index_stats("val").skipped["no valid non-difficult object"] == 1
    assert source.num_examples("test") == 1

    # A new source on the same data dir reads the prepared dataset: no manual dir needed.
    again = voc_tfds.VocTfdsSource(data_dir=data_dir, policy="single", download=False)
    assert again.num_examples("train") == 1  # 000002 has two objects
    assert again.num_examples("train+val") == 2


def test_prepares_from_default_manual_dir_without_download(tmp_path, monkeypatch):
    """Without --manual_dir, TFDS looks in <data_dir>/downloads/manual."""
    data_dir = tmp_path / "tfds"
    _tiny_voc_archives(data_dir / "downloads" / "manual", monkeypatch)
    source = voc_tfds.VocTfdsSource(data_dir=data_dir, download=False)
    assert source.effective_manual_dir == os.fspath(data_dir / "downloads" / "manual")
    assert source.num_examples("train+val") == 3
    assert source.num_examples("test") == 1


def test_empty_split(online):
    with tfds.testing.mock_data(as_dataset_fn=_hand_built_as_dataset([])):
        source = voc_tfds.VocTfdsSource()
        assert source.num_examples("train") == 0
        assert list(source.load("train")) == []


def test_read_order_change_is_detected(online):
    """Elements are matched to the index by position; a changed order fails loudly."""
    calls = []
    forward = _hand_built_as_dataset(HAND_BUILT[:4])
    backward = _hand_built_as_dataset(HAND_BUILT[:4][::-1])

    def as_dataset(self, *args, **kwargs):
        calls.append(1)
        return (forward if len(calls) == 1 else backward)(self, *args, **kwargs)

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        source = voc_tfds.VocTfdsSource(policy="largest")
        with pytest.raises(tf.errors.InvalidArgumentError, match="read order"):
            list(source.load("train"))


def test_preview_renders_voc_under_mock_data(online, tmp_path):
    from pipelines import input_pipeline, show

    config = input_pipeline.PipelineConfig(
        image_size=64, resize_mode="letterbox", shuffle_buffer=8, seed=0
    )
    with tfds.testing.mock_data(as_dataset_fn=_hand_built_as_dataset(HAND_BUILT)):
        source = voc_tfds.VocTfdsSource(data_dir="/nonexistent/tfds", policy="largest")
        path = show.preview_grid(source, "train", config, 4, str(tmp_path / "voc.png"), columns=2)
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"

"""Tests of pipelines/sources/source.py and the registry: every source named, each given its own
options, target policies, file identity; the same data written as VOC, COCO and YOLO gives the
same examples, figures and batches.
"""

import os

import numpy as np
import pytest

import pipelines
from pipelines import input_pipeline
from pipelines.sources.source import (
    BOX,
    ID,
    LABEL,
    ImageObjects,
    IndexStats,
    choose_target,
)
from tests import fixtures


def test_registry_names_every_source():
    assert set(pipelines.DATASETS) == {"synthetic", "voc", "voc_dir", "csv", "coco", "yolo"}
    assert set(pipelines.SOURCE_OPTIONS) == set(pipelines.DATASETS) | {"tfds:"}
    for name in ("nope", "tfds:", "tfds"):
        with pytest.raises(ValueError, match=r"Unknown dataset .* or tfds:<name>\[:<version>\]"):
            pipelines.get_source(name)
    assert (
        pipelines.dataset_kind("tfds:coco/2017:1.1.0") == "tfds:"
        and pipelines.dataset_kind("yolo") == "yolo"
    )


def test_source_with_options_passes_each_source_its_own(tmp_path, voc_folder):
    # voc_dir takes no image_dir; the pixel limit reaches it.
    source = pipelines.source_with_options(
        "voc_dir", voc_folder, policy="single", image_dir="/x", max_image_pixels=7
    )
    assert (source.policy, source.max_image_pixels) == ("single", 7)
    root = fixtures.make_coco_folder(tmp_path / "coco")
    assert pipelines.source_with_options("coco", root, image_dir=str(tmp_path)).image_dir == str(
        tmp_path
    )


def test_choose_target_policies():
    objects = ImageObjects(
        boxes=np.array([[0.5, 0.5, 0.1, 0.1], [0, 0, 0.9, 0.9], [0, 0, 1, 1]], np.float32),
        labels=np.array([0, 1, 2, 2]),  # one label more than boxes (as TFDS mock data)
        difficult=np.array([False, False, True]),
    )
    stats = IndexStats()
    label, box = choose_target(objects, "largest", stats)
    assert label == 1 and np.allclose(box, [0, 0, 0.9, 0.9])
    assert choose_target(objects, "single", stats) is None
    assert stats.skipped["several objects (policy=single)"] == 1
    assert (
        choose_target(ImageObjects(np.zeros((0, 4)), np.zeros(0), np.zeros(0, bool)), "largest")
        is None
    )


def test_file_source_identity_changes_with_the_files(tmp_path):
    root = fixtures.make_voc_folder(tmp_path / "voc")
    first = pipelines.get_source("voc_dir", data_dir=root).identity("train")
    assert first == pipelines.get_source("voc_dir", data_dir=root).identity("train")
    image = os.path.join(root, "JPEGImages", "img1.png")
    os.utime(image, ns=(1, 1))
    again = pipelines.get_source("voc_dir", data_dir=root).identity("train")
    assert again["examples_digest"] != first["examples_digest"]


def _targets(source, split):
    """`[(id, label, box)]` of a split, in the source's order."""
    return [(e[ID].numpy().decode(), int(e[LABEL]), e[BOX].numpy()) for e in source.load(split)]


# Ids sorted, so the YOLO folder's sorted listing is the VOC list's order. b_three has three objects
# (the largest is not the first); c_pair two of one class; `single` keeps a_one, d_plate and e_dog.
SAME_DATA = {
    "train": [
        ("a_one", 60, 80, [("cat", (10, 5, 50, 45))], ()),
        (
            "b_three",
            72,
            96,
            [("cat", (2, 2, 20, 20)), ("dog", (30, 10, 90, 70)), ("plate", (0, 40, 40, 72))],
            (),
        ),
        ("c_pair", 50, 70, [("plate", (30, 20, 60, 30)), ("plate", (1, 1, 13, 9))], ()),
        ("d_plate", 47, 53, [("plate", (3.5, 2.25, 51, 44.75))], ()),
    ],
    "val": [
        ("e_dog", 56, 64, [("dog", (8, 8, 48, 40))], ()),
        ("f_two", 40, 90, [("cat", (50, 4, 80, 36)), ("dog", (0, 0, 44, 39))], ()),
    ],
}


@pytest.fixture
def same_data(tmp_path):
    return {
        "voc_dir": fixtures.make_voc_folder(tmp_path / "voc", SAME_DATA),
        "coco": fixtures.make_coco_folder(tmp_path / "coco", SAME_DATA),
        "yolo": fixtures.make_yolo_folder(tmp_path / "yolo", SAME_DATA),
    }


@pytest.mark.parametrize("policy", ["largest", "single"])
def test_same_data_gives_the_same_examples_in_every_format(same_data, policy):
    sources = {
        kind: pipelines.get_source(kind, data_dir=root, policy=policy)
        for kind, root in same_data.items()
    }
    reference = sources.pop("voc_dir")
    expected_single = {"train": ["a_one", "d_plate"], "val": ["e_dog"]}
    for split in SAME_DATA:
        want = _targets(reference, split)
        ids = [i for i, _, _ in want]
        assert ids == (
            [x[0] for x in SAME_DATA[split]] if policy == "largest" else expected_single[split]
        )
        for kind, source in sources.items():
            assert source.class_names == reference.class_names == list(fixtures.CLASSES), kind
            got = _targets(source, split)
            assert [i for i, _, _ in got] == ids, kind  # the id is the file stem everywhere
            assert [label for _, label, _ in got] == [label for _, label, _ in want], kind
            np.testing.assert_allclose(
                np.stack([b for *_, b in got]),
                np.stack([b for *_, b in want]),
                atol=1e-6,
                err_msg=kind,
            )
            assert source.index_stats(split).skipped == reference.index_stats(split).skipped, kind
    # b_three's target is its largest object, the dog, not the first one listed.
    b_three = {i: (label, box) for i, label, box in _targets(reference, "train")}.get("b_three")
    if policy == "largest":
        assert b_three[0] == fixtures.CLASSES.index("dog")
        np.testing.assert_allclose(b_three[1], [10 / 72, 30 / 96, 70 / 72, 90 / 96], atol=1e-6)


def test_same_data_evaluates_the_same_in_every_format(same_data, tmp_path):
    """A fixed tiny model scores the three folders identically (metrics and per-image IoUs)."""
    from localizer.inference import evaluation
    from localizer.inference.predictor import Predictor

    path = str(tmp_path / "tiny.keras")
    fixtures.tiny_model(attach="flattened").save(path)
    predictor = Predictor(path)
    results = {}
    for kind, root in same_data.items():
        result = evaluation.evaluate(
            predictor,
            pipelines.get_source(kind, data_dir=root),
            "train",
            "none",
            batch_size=4,
            refine=False,
        )
        results[kind] = (result.summary, result.ious, result.labels, result.predicted)
    reference = results.pop("voc_dir")
    assert reference[0]["num_examples"] == 4
    for kind, (summary, ious, labels, predicted) in results.items():
        np.testing.assert_allclose(ious, reference[1], atol=1e-5, err_msg=kind)
        np.testing.assert_array_equal(labels, reference[2])
        np.testing.assert_array_equal(predicted, reference[3])
        for key in ("mean_iou", "classification_accuracy", "localization_accuracy"):
            assert summary[key] == pytest.approx(reference[0][key], abs=1e-5), (kind, key)


def test_same_data_batches_match_through_the_pipeline(same_data):
    """What the model is fed (resized images, boxes) is the same from every format."""
    config = input_pipeline.PipelineConfig(
        image_size=32, resize_mode="letterbox", batch_size=3, seed=0
    )
    batches = {}
    for kind, root in same_data.items():
        source = pipelines.get_source(kind, data_dir=root)
        batches[kind] = list(input_pipeline.make_dataset(source, "train", config, training=False))
    reference = batches.pop("voc_dir")
    for _kind, got in batches.items():
        assert len(got) == len(reference)
        for (images, targets), (want_images, want_targets) in zip(got, reference, strict=False):
            np.testing.assert_array_equal(
                images, want_images
            )  # PNG fixtures: lossless, same pixels
            np.testing.assert_array_equal(targets[LABEL], want_targets[LABEL])
            np.testing.assert_allclose(targets[BOX], want_targets[BOX], atol=1e-6)

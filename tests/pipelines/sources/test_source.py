"""Dataset sources on generated fixtures: voc_dir, csv, synthetic, image headers."""

import os

import numpy as np
import pytest
import tensorflow as tf

import pipelines
from pipelines import decode, image_header, render
from pipelines.sources import source as source_lib
from pipelines.sources import synthetic
from pipelines.sources.source import (
    BOX,
    ID,
    IMAGE,
    LABEL,
    DatasetError,
    ImageObjects,
    IndexStats,
    choose_target,
)
from tests import fixtures


def _elements(source, split):
    return [decode.decode(e) for e in source.load(split)]


def _check_against_fixture(elements, examples, difficult_aware=True):
    assert len(elements) == len(examples)
    for element, example in zip(elements, examples):
        if not difficult_aware:
            example = example[:4] + ((),)
        label, box = fixtures.expected_target(example)
        assert int(element[LABEL]) == label
        np.testing.assert_allclose(element[BOX], box, atol=1e-6)
        # The box is measured on the decoded image: its pixels are the object's colour.
        assert tuple(element[render.ORIGINAL_SIZE].numpy()) == example[1:3]


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


def test_default_workdir_of_a_tfds_name_is_one_safe_folder():
    from localizer.training import workdir

    path = workdir.default_workdir("tfds:coco/2017:1.1.0", "/data/tfds/", "quick")
    assert path.startswith(os.path.join("work", "tfds_coco_2017_1.1.0-tfds-")) and path.endswith(
        "-quick"
    )
    assert os.path.dirname(path) == "work"


def test_voc_dir_reads_boxes_against_decoded_image(voc_folder):
    source = pipelines.get_source("voc_dir", data_dir=voc_folder)
    assert source.class_names == list(fixtures.CLASSES)
    for split, examples in fixtures.VOC_EXAMPLES.items():
        _check_against_fixture(_elements(source, split), examples)
        assert source.num_examples(split) == len(examples)


def test_voc_dir_single_policy_drops_multi_object_images(voc_folder):
    source = pipelines.get_source("voc_dir", data_dir=voc_folder, policy="single")
    ids = [e[ID].numpy().decode() for e in source.load("train")]
    assert ids == ["img0", "img1", "img2"]
    assert source.stats["train"].skipped["several objects (policy=single)"] == 1
    # img5's second object is difficult, so img5 has one usable object and stays.
    assert [e[ID].numpy().decode() for e in source.load("val")] == ["img4", "img5"]


def test_voc_dir_class_names_from_annotations_without_labels_file(tmp_path):
    root = fixtures.make_voc_folder(tmp_path / "v", labels_file=False)
    assert pipelines.get_source("voc_dir", data_dir=root).class_names == sorted(fixtures.CLASSES)


def test_voc_dir_errors_name_the_problem(tmp_path, voc_folder):
    with pytest.raises(DatasetError, match="JPEGImages"):
        pipelines.get_source("voc_dir", data_dir=str(tmp_path))
    with pytest.raises(DatasetError, match="splits here: \\['train', 'val'\\]"):
        pipelines.get_source("voc_dir", data_dir=voc_folder).load("test")


def test_voc_dir_skips_and_counts_unusable_entries(voc_folder):
    with open(os.path.join(voc_folder, "ImageSets", "Main", "train.txt"), "a") as f:
        f.write("no_such_id\n../../escape\n")
    with open(os.path.join(voc_folder, "Annotations", "img2.xml"), "w") as f:
        f.write("<annotation><object>")  # malformed
    source = pipelines.get_source("voc_dir", data_dir=voc_folder)
    assert source.num_examples("train") == 3
    skipped = source.stats["train"].skipped
    assert skipped["missing annotation file"] == 1
    assert skipped["annotation path outside the dataset folder"] == 1
    assert skipped["malformed XML"] == 1


def test_csv_source(csv_folder):
    source = pipelines.get_source("csv", data_dir=csv_folder)
    assert source.class_names == sorted(fixtures.CLASSES)
    for split, examples in fixtures.VOC_EXAMPLES.items():
        # CSV has no difficult flag: every object is a candidate.
        _check_against_fixture(_elements(source, split), examples, difficult_aware=False)


def test_csv_missing_columns_named(tmp_path):
    (tmp_path / "train.csv").write_text("filename,xmin\na.jpg,1\n")
    with pytest.raises(DatasetError, match="missing column"):
        pipelines.get_source("csv", data_dir=str(tmp_path)).load("train")


def test_synthetic_is_deterministic_for_a_seed():
    def first(seed, count=3):
        source = pipelines.get_source("synthetic", seed=seed, sizes={"val": count})
        return list(source.load("val"))

    a, b, c = first(5), first(5), first(6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[IMAGE], y[IMAGE])
        np.testing.assert_array_equal(x[BOX], y[BOX])
    # Another seed draws other objects: boxes (always [4]) and pixels differ.
    assert not np.allclose(np.stack([x[BOX] for x in a]), np.stack([x[BOX] for x in c]))
    assert any(
        x[IMAGE].shape != y[IMAGE].shape or not np.array_equal(x[IMAGE], y[IMAGE])
        for x, y in zip(a, c)
    )


def test_synthetic_examples_are_valid_and_varied():
    source = pipelines.get_source("synthetic", sizes={"train": 60})
    elements = list(source.load("train"))
    labels = {int(e[LABEL]) for e in elements}
    assert labels == set(range(len(source.class_names)))
    boxes = np.stack([e[BOX].numpy() for e in elements])
    assert np.all(boxes[:, :2] < boxes[:, 2:]) and boxes.min() >= 0 and boxes.max() <= 1
    # Varied positions and sizes: a constant box cannot fit them all.
    assert boxes.std(axis=0).min() > 0.1
    for index in range(5):
        # The box is tight on the object drawn: each of its edge rows and
        # columns holds object pixels, and none lie outside it.
        example = synthetic.render_example(tf.constant([7, index], tf.int64), with_mask=True)
        mask = example[synthetic.OBJECT_MASK].numpy()
        height, width = mask.shape
        ymin, xmin, ymax, xmax = np.round(
            example[BOX].numpy() * [height, width, height, width]
        ).astype(int)
        inside = mask[ymin:ymax, xmin:xmax]
        assert mask.sum() == inside.sum() > 0
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
        assert example[IMAGE].dtype == tf.uint8 and example[IMAGE].shape == (height, width, 3)


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


@pytest.mark.parametrize(
    "ext,size", [(".jpg", (37, 53)), (".png", (5, 300)), (".gif", (9, 4)), (".bmp", (6, 7))]
)
def test_read_image_size(tmp_path, ext, size):
    path = str(tmp_path / f"x{ext}")
    pixels = np.zeros(size + (3,), np.uint8)
    if ext == ".jpg":
        data = tf.io.encode_jpeg(pixels, progressive=True).numpy()
    elif ext == ".png":
        data = tf.io.encode_png(pixels).numpy()
    else:  # GIF and BMP as Pillow writes them (a header alone is not a readable image)
        from PIL import Image

        Image.fromarray(pixels).save(path)
        data = None
    if data is not None:
        with open(path, "wb") as f:
            f.write(data)
    assert image_header.read_image_size(path) == size


def test_read_image_size_rejects_non_images_and_truncation(tmp_path):
    fake = tmp_path / "fake.jpg"
    fake.write_text("not an image")
    with pytest.raises(image_header.ImageHeaderError, match="fake.jpg"):
        image_header.read_image_size(str(fake))
    truncated = tmp_path / "trunc.jpg"
    truncated.write_bytes(tf.io.encode_jpeg(np.zeros((8, 8, 3), np.uint8)).numpy()[:30])
    with pytest.raises(image_header.ImageHeaderError, match="truncated"):
        image_header.read_image_size(str(truncated))


def test_show_samples_across_classes_not_the_first_examples(tmp_path):
    from pipelines import show

    # Sorted by class, as many datasets are: the first five are all cats.
    items = [
        (f"{name}{i}", 16, 16, [(name, (2, 2, 12, 12))], ())
        for name, count in (("cat", 6), ("dog", 2), ("plate", 3))
        for i in range(count)
    ]
    source = pipelines.get_source(
        "voc_dir", data_dir=fixtures.make_voc_folder(tmp_path / "v", {"train": items})
    )
    assert [int(e[LABEL]) for e in source.load("train").take(5)] == [0] * 5

    def sampled(count, seed):
        return [
            (e[ID].numpy().decode(), int(e[LABEL]))
            for e in show.sample_across_classes(source, "train", count, seed)
        ]

    first = sampled(5, seed=0)
    labels = [label for _, label in first]
    assert sorted(labels[:3]) == [0, 1, 2]  # every class before any twice
    assert labels[3:5] == labels[0:2]  # then the next round, in the same class order
    assert len({i for i, _ in first}) == 5
    assert sampled(5, seed=0) == first  # seeded
    assert any(sampled(5, seed=s) != first for s in (1, 2, 3))
    assert len(sampled(50, seed=0)) == len(items)  # never more than the split holds
    picks = source_lib.stratified_indices([2, 2, 2, 0], 3, seed=4)
    assert (
        3 in picks[:2] and len(set(picks)) == 3
    )  # the rare class's one example comes in the first round

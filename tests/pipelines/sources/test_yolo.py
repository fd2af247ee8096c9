"""Tests of pipelines/sources/yolo.py: YOLO folders (plain, Roboflow, split lists), their label
rules and their errors.
"""

import os

import pytest

import pipelines
from pipelines.sources import yolo
from pipelines.sources.source import DatasetError
from tests import fixtures


def test_yolo_reads_normalized_centre_boxes(tmp_path):
    root = fixtures.make_yolo_folder(tmp_path / "yolo")
    source = pipelines.get_source("yolo", data_dir=root)
    assert source.class_names == list(fixtures.CLASSES)
    for split, examples in fixtures.VOC_EXAMPLES.items():
        fixtures.check_source_against_fixture(
            source, split, examples, difficult_aware=False, ids=True
        )  # YOLO has no difficult flag


def test_yolo_split_entries_stay_inside_the_data_dir(tmp_path):
    root = fixtures.make_yolo_folder(tmp_path / "yolo")
    outside = tmp_path / "elsewhere" / "images"
    outside.mkdir(parents=True)
    yaml = os.path.join(root, "data.yaml")
    with open(yaml, "w") as f:
        f.write(
            f"path: {tmp_path}\ntrain: ../elsewhere/images\nval: {outside}\n"
            "names: [cat, dog, plate]\n"
        )
    source = pipelines.get_source("yolo", data_dir=root)  # `path` outside data_dir: ignored
    assert source.root == os.path.abspath(root)
    for split in ("train", "val"):
        with pytest.raises(
            DatasetError, match=f"{split}: .* is not a folder inside the dataset folder"
        ):
            source.num_examples(split)
    with pytest.raises(DatasetError, match=r"no 'test' entry; splits here: \['train', 'val'\]"):
        source.num_examples("test")


def test_yolo_roboflow_layout(tmp_path):
    """Roboflow writes `train: ../train/images` beside data.yaml; Ultralytics drops the `../`."""
    examples = {"train": fixtures.VOC_EXAMPLES["train"]}
    root = fixtures.make_yolo_folder(tmp_path / "rf", examples)
    os.makedirs(os.path.join(root, "train"))
    os.rename(os.path.join(root, "images", "train"), os.path.join(root, "train", "images"))
    os.rename(os.path.join(root, "labels", "train"), os.path.join(root, "train", "labels"))
    with open(os.path.join(root, "data.yaml"), "w") as f:
        f.write(
            "train: ../train/images\nval: ../valid/images\n\n"
            "nc: 3\nnames: ['cat', 'dog', 'plate']\n\n"
            "roboflow:\n  workspace: w\n  project: p\n  version: 1\n"
        )
    source = pipelines.get_source("yolo", data_dir=root)
    fixtures.check_source_against_fixture(
        source, "train", examples["train"], difficult_aware=False, ids=True
    )


def test_yolo_split_lists_of_image_paths(tmp_path):
    """`train: train.txt` (Ultralytics' autosplit, CVAT): each line an image path, never leaving the
    dataset."""
    root = fixtures.make_yolo_folder(tmp_path / "yolo")
    (tmp_path / "outside.png").write_bytes(b"not read")
    train = fixtures.VOC_EXAMPLES["train"]
    lines = [
        "./images/train/img0.png",  # relative to the list's folder, as autosplit writes
        "images/train/img1.png",  # relative to `path` / the dataset folder, as CVAT writes
        "",
        os.path.join(root, "images", "train", "img2.png"),  # absolute, inside
        "images/train/img1.png",  # listed twice: one example
        "images/train/img3.png",
        "../outside.png",  # leaves the dataset folder
        str(tmp_path / "outside.png"),
        "images/train/missing.png",
    ]
    (tmp_path / "yolo" / "train.txt").write_text("\n".join(lines) + "\n")
    os.makedirs(os.path.join(root, "lists"))
    (tmp_path / "yolo" / "lists" / "val.txt").write_text(
        "./../images/val/img4.png\n./../images/val/img5.png\n"
    )
    (tmp_path / "yolo" / "data.yaml").write_text(
        "path: .\ntrain: train.txt\nval: [lists/val.txt]\nnames: [cat, dog, plate]\n"
    )
    source = pipelines.get_source("yolo", data_dir=root)
    fixtures.check_source_against_fixture(
        source, "train", train, difficult_aware=False, ids=True
    )  # ids: paths under images/train
    stats = source.index_stats("train")
    assert stats.skipped == {"image path outside the dataset folder": 2, "missing image file": 1}
    assert any(file.endswith("train.txt: ../outside.png") for file, _, _ in stats.problems)
    fixtures.check_source_against_fixture(
        source, "val", fixtures.VOC_EXAMPLES["val"], difficult_aware=False, ids=True
    )
    (tmp_path / "yolo" / "data.yaml").write_text("train: nowhere.txt\nnames: [cat, dog, plate]\n")
    with pytest.raises(
        DatasetError, match="train: nowhere.txt is not an image list file inside the dataset"
    ):
        pipelines.get_source("yolo", data_dir=root).num_examples("train")


def test_yolo_polygon_labels_are_named_as_such(tmp_path):
    """A segmentation export (polygons, no boxes) says why nothing is usable, in the error and the
    issues list."""
    examples = {"train": fixtures.VOC_EXAMPLES["train"][:2]}
    root = fixtures.make_yolo_folder(tmp_path / "yolo", examples)
    for name in ("img0", "img1"):
        (tmp_path / "yolo" / "labels" / "train" / f"{name}.txt").write_text(
            "0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n1 0.2 0.2 0.3 0.2 0.3 0.3\n"
        )
    source = pipelines.get_source("yolo", data_dir=root)
    with pytest.raises(
        DatasetError, match=r"no usable example .*repaired 4 \(polygon \(segmentation\) label"
    ):
        source.num_examples("train")
    listed = [
        (file, reason) for file, _, reason in source.stats["train"].problems
    ]  # data_issues.tsv's rows
    assert (
        os.path.join(root, "labels", "train", "img0.txt")
        + " line 2: 3 points: a "
        + yolo.POLYGON_LABEL,
        yolo.POLYGON_LABEL,
    ) in listed
    with pytest.raises(yolo.PolygonLabelError, match="w: 4 points"):
        yolo.parse_label_line("0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5", "w")
    with pytest.raises(ValueError, match="expected 5 values") as error:
        yolo.parse_label_line("0 0.1 0.1 0.5 0.1 0.5", "w")
    assert not isinstance(error.value, yolo.PolygonLabelError)


def test_yolo_label_path_and_line_rules():
    assert yolo.label_path("images/train/a.b.jpg") == os.path.join("labels", "train", "a.b.txt")
    assert yolo.label_path("data/images/x/images/y.png") == os.path.join(
        "data", "images", "x", "labels", "y.txt"
    )
    assert yolo.parse_label_line("2 0.5 0.25 0.5 0.5", "w") == (2, (0.5, 0.25, 0.5, 0.5))
    assert yolo.parse_label_line("1.0 0 0 1 1", "w")[0] == 1
    for line, fragment in (
        ("0 0.5 0.5 0.1", "expected 5 values"),
        ("a 0.5 0.5 0.1 0.1", "class='a'"),
        ("0 0.5 nan 0.1 0.1", "cy='nan'"),
        ("0 0.5 0.5 1.2 0.1", "w=1.2 outside"),
        ("-1 0.5 0.5 0.1 0.1", "not a class index"),
    ):
        with pytest.raises(ValueError, match=fragment):
            yolo.parse_label_line(line, "w")


@pytest.mark.parametrize(
    "names,fragment",
    [
        ("names: [a, a]", "class names repeat: a"),
        ("names:\n  0: a\n  2: b", r"indices must be 0..1"),
        ("nc: 3\nnames: [a, b]", "nc=3 but names lists 2"),
        ("nc: 2", "'names' must list"),
        ("names:\n    0: a\n  1: b", r"data.yaml line 4: not valid YAML"),
        ("names: [[a], b]", "'names' must list"),
    ],
)
def test_yolo_bad_names(tmp_path, names, fragment):
    (tmp_path / "data.yaml").write_text("train: .\n" + names + "\n")
    with pytest.raises(DatasetError, match=fragment):
        _ = pipelines.get_source("yolo", data_dir=str(tmp_path)).class_names

"""COCO JSON and YOLO folders: reading, their errors, the data.yaml reader, and the same data
written as VOC, COCO and YOLO giving the same examples.
"""

import json
import os

import numpy as np
import pytest

import pipelines
from pipelines import decode, input_pipeline, render
from pipelines.sources import data_yaml, yolo
from pipelines.sources.source import BOX, ID, LABEL, DatasetError
from tests import fixtures


def _targets(source, split):
    """`[(id, label, box)]` of a split, in the source's order."""
    return [(e[ID].numpy().decode(), int(e[LABEL]), e[BOX].numpy()) for e in source.load(split)]


def _check_against_fixture(source, split, examples, difficult_aware=True):
    elements = [decode.decode(e) for e in source.load(split)]
    assert [e[ID].numpy().decode() for e in elements] == [x[0] for x in examples]
    for element, example in zip(elements, examples):
        label, box = fixtures.expected_target(example if difficult_aware else example[:4] + ((),))
        assert int(element[LABEL]) == label
        np.testing.assert_allclose(element[BOX], box, atol=1e-6)
        assert tuple(element[render.ORIGINAL_SIZE].numpy()) == example[1:3]


# --- COCO
# ---------------------------------------------------------------------------------------------


def test_coco_reads_boxes_sparse_categories_and_crowds(tmp_path):
    root = fixtures.make_coco_folder(tmp_path / "coco")
    # A stray labels.txt in another order must not reorder the categories.
    (tmp_path / "coco" / "labels.txt").write_text("plate\ncat\ndog\n")
    source = pipelines.get_source("coco", data_dir=root)
    # Category ids 3, 17, 90 (listed in reverse in the file): classes in id order.
    assert source.class_names == list(fixtures.CLASSES)
    for split, examples in fixtures.VOC_EXAMPLES.items():
        # img5's second object is iscrowd: like VOC's difficult, never the target.
        _check_against_fixture(source, split, examples)


def test_coco_split_with_a_year_and_image_dir(tmp_path):
    root = fixtures.make_coco_folder(tmp_path / "coco", {"train": fixtures.VOC_EXAMPLES["train"]})
    os.rename(
        os.path.join(root, "annotations", "instances_train.json"),
        os.path.join(root, "annotations", "instances_train2017.json"),
    )
    os.rename(os.path.join(root, "train"), str(tmp_path / "pictures"))
    source = pipelines.source_with_options("coco", root, image_dir=str(tmp_path / "pictures"))
    assert source.num_examples("train") == 4  # train -> instances_train2017.json
    assert source.num_examples("train2017") == 4
    with pytest.raises(
        DatasetError, match=r"instances_val\.json not found; splits here: \['train2017'\]"
    ):
        source.num_examples("val")


@pytest.mark.parametrize(
    "text,fragment",
    [
        ('{"images": [', r"line 1 column 13: not valid JSON"),
        ('{"images": []}', "not a COCO instances file"),
        (
            '{"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}',
            "category id 1 appears twice",
        ),
        ("[" * 100000 + "]" * 100000, "nested too deeply"),
        (
            '{"images": [], "annotations": [], "categories": [{"id": true, "name": "a"}]}',
            "needs an integer 'id'",
        ),
        (
            '{"images": [], "annotations": [], "categories": [{"id": 1, "name": {"x": 1}}]}',
            "needs an integer 'id' and a",
        ),
    ],
)
def test_coco_broken_files_are_one_clear_line(tmp_path, text, fragment):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train.json").write_text(text)
    with pytest.raises(DatasetError, match=fragment) as error:
        pipelines.get_source("coco", data_dir=str(tmp_path)).load("train")
    assert "\n" not in str(error.value) and "instances_train.json" in str(error.value)


def test_coco_entries_of_the_wrong_type_are_counted_and_the_rest_go_on(tmp_path):
    """Ids that are lists or objects, a string iscrowd: each entry counted, never a crash."""
    root = fixtures.make_coco_folder(tmp_path / "coco", {"train": fixtures.VOC_EXAMPLES["train"]})
    path = os.path.join(root, "annotations", "instances_train.json")
    with open(path) as f:
        document = json.load(f)
    first, second, third = document["annotations"][:3]
    document["images"].append({"id": [7], "file_name": "listed.jpg"})
    first["image_id"] = {"a": 1}
    second["category_id"] = [3]
    third["iscrowd"] = "0"
    with open(path, "w") as f:
        json.dump(document, f)
    stats = pipelines.get_source("coco", data_dir=root).index_stats("train")
    assert stats.skipped["malformed image entry"] == 1
    assert stats.repaired["annotation of an unknown image ignored"] == 1
    assert stats.repaired["object of unknown class ignored"] == 1
    assert stats.repaired["unusable object ignored"] == 1


def test_coco_folder_without_annotations_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="annotations/instances_<split>.json"):
        pipelines.get_source("coco", data_dir=str(tmp_path))


def test_coco_splits_must_share_categories(tmp_path):
    root = fixtures.make_coco_folder(tmp_path / "coco")
    path = os.path.join(root, "annotations", "instances_train.json")
    document = json.load(open(path))
    document["categories"].append({"id": 200, "name": "extra"})
    with open(path, "w") as f:
        json.dump(document, f)
    source = pipelines.get_source("coco", data_dir=root)
    source.load("val")
    with pytest.raises(DatasetError, match="categories differ"):
        source.load("train")


def test_coco_stray_annotation_files_are_named_and_ignored(tmp_path, caplog):
    """`instances_.json` (no split name) or a folder named like a split file is no split, never a
    crash."""
    root = fixtures.make_coco_folder(tmp_path / "coco")
    (tmp_path / "coco" / "annotations" / "instances_.json").write_text("")
    (tmp_path / "coco" / "annotations" / "instances_old.json").mkdir()
    source = pipelines.get_source("coco", data_dir=root)
    with caplog.at_level("WARNING"):
        assert source.available_splits() == ["train", "val"]
        assert source.class_names == list(fixtures.CLASSES)
        assert source.num_examples("train") == 4
    named = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(named) == 2 and any("instances_.json" in m for m in named), named
    with pytest.raises(DatasetError, match=r"splits here: \['train', 'val'\]"):
        source.num_examples("")


# --- YOLO
# ---------------------------------------------------------------------------------------------


def test_yolo_reads_normalized_centre_boxes(tmp_path):
    root = fixtures.make_yolo_folder(tmp_path / "yolo")
    source = pipelines.get_source("yolo", data_dir=root)
    assert source.class_names == list(fixtures.CLASSES)
    for split, examples in fixtures.VOC_EXAMPLES.items():
        _check_against_fixture(
            source, split, examples, difficult_aware=False
        )  # YOLO has no difficult flag


def test_yolo_split_entries_stay_inside_the_data_dir(tmp_path):
    root = fixtures.make_yolo_folder(tmp_path / "yolo")
    outside = tmp_path / "elsewhere" / "images"
    outside.mkdir(parents=True)
    yaml = os.path.join(root, "data.yaml")
    with open(yaml, "w") as f:
        f.write(
            f"path: {tmp_path}\ntrain: ../elsewhere/images\nval: {outside}\nnames: [cat, dog, plate]\n"
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
            "train: ../train/images\nval: ../valid/images\n\nnc: 3\nnames: ['cat', 'dog', 'plate']\n\n"
            "roboflow:\n  workspace: w\n  project: p\n  version: 1\n"
        )
    source = pipelines.get_source("yolo", data_dir=root)
    _check_against_fixture(source, "train", examples["train"], difficult_aware=False)


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
    _check_against_fixture(
        source, "train", train, difficult_aware=False
    )  # ids: paths under images/train
    stats = source.index_stats("train")
    assert stats.skipped == {"image path outside the dataset folder": 2, "missing image file": 1}
    assert any(file.endswith("train.txt: ../outside.png") for file, _, _ in stats.problems)
    _check_against_fixture(source, "val", fixtures.VOC_EXAMPLES["val"], difficult_aware=False)
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
        pipelines.get_source("yolo", data_dir=str(tmp_path)).class_names


ULTRALYTICS_YAML = """\
# Ultralytics YOLO, AGPL-3.0 license
# COCO8 dataset https://docs.ultralytics.com/datasets/detect/coco8/

path: coco8 # dataset root dir
train: images/train # train images (relative to 'path') 4 images
val: "images/val"
test: # test images (optional)

# Classes
names:
  0: person
  1: 'traffic light'
  2: "hair # drier"

# Download script/URL (optional)
download: |
  from pathlib import Path
  url: not a key
extra:
- a
- b
"""


def test_data_yaml_reads_what_ultralytics_writes_values_as_text():
    parsed = data_yaml.load(ULTRALYTICS_YAML, "data.yaml")
    assert (
        parsed["path"] == "coco8"
        and parsed["train"] == "images/train"
        and parsed["val"] == "images/val"
    )
    assert parsed["test"] is None
    assert parsed["names"] == {"0": "person", "1": "traffic light", "2": "hair # drier"}
    assert parsed["download"] == "from pathlib import Path\nurl: not a key\n"
    assert parsed["extra"] == ["a", "b"]  # PyYAML's unindented block list
    assert data_yaml.load("names: ['a, b', c]\nval: [x, y]", "d")["names"] == ["a, b", "c"]
    assert data_yaml.load("names: {0: a, 1: b}", "d")["names"] == {"0": "a", "1": "b"}
    assert data_yaml.load("names:\n  - a\n  - b  # c\n", "d")["names"] == ["a", "b"]
    # Plain values stay the text they read as (YAML 1.1 would give False, True, 1.0 and a date).
    assert data_yaml.load("names: [no, yes, 1.0]\nnc: 3\nval: 2024-01-01", "d") == {
        "names": ["no", "yes", "1.0"],
        "nc": "3",
        "val": "2024-01-01",
    }
    assert data_yaml.load("", "d") == {} and data_yaml.load("test: ~", "d") == {"test": None}


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("names:\n\t- a", r"^data.yaml line 2: not valid YAML \(.*found character '\\t'"),
        ("just text", r"^data.yaml: not a YAML mapping of 'key: value' lines"),
        ("- train", r"^data.yaml: not a YAML mapping"),
        ("train: 'x", r"^data.yaml line 1: not valid YAML \(while scanning a quoted scalar"),
        ("a: 1\n---\nb: 2", r"^data.yaml line 2: .*expected a single document"),
        ("x: [a\ny: b", r"^data.yaml line 2: not valid YAML"),
        ("names: {[a]: b}", r"^data.yaml line 1: not valid YAML \(.*unhashable key"),
    ],
)
def test_data_yaml_errors_are_one_line_naming_the_file_and_line(text, fragment):
    with pytest.raises(DatasetError, match=fragment) as raised:
        data_yaml.load(text, "data.yaml")
    assert "\n" not in str(raised.value)


# --- the same data as VOC, COCO and YOLO
# -------------------------------------------------------------------

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
    b_three = dict((i, (label, box)) for i, label, box in _targets(reference, "train")).get(
        "b_three"
    )
    if policy == "largest":
        assert b_three[0] == fixtures.CLASSES.index("dog")
        np.testing.assert_allclose(b_three[1], [10 / 72, 30 / 96, 70 / 72, 90 / 96], atol=1e-6)


def test_same_data_evaluates_the_same_in_every_format(same_data, tmp_path):
    """A fixed tiny model scores the three folders identically (metrics and per-image IoUs)."""
    from localizer import model as model_lib
    from localizer.inference import evaluation
    from localizer.inference.predictor import Predictor

    config = model_lib.ModelConfig(
        num_classes=3,
        class_names=fixtures.CLASSES,
        backbone="tiny",
        weights="none",
        image_size=32,
        attach="flattened",
    )
    path = str(tmp_path / "tiny.keras")
    model_lib.build_model(config).save(path)
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
    for kind, got in batches.items():
        assert len(got) == len(reference)
        for (images, targets), (want_images, want_targets) in zip(got, reference):
            np.testing.assert_array_equal(
                images, want_images
            )  # PNG fixtures: lossless, same pixels
            np.testing.assert_array_equal(targets[LABEL], want_targets[LABEL])
            np.testing.assert_allclose(targets[BOX], want_targets[BOX], atol=1e-6)

"""Tests of pipelines/sources/coco_json.py: COCO annotation files."""

import json
import os

import pytest

import pipelines
from pipelines.sources.source import DatasetError
from tests import fixtures


def test_coco_reads_boxes_sparse_categories_and_crowds(tmp_path):
    root = fixtures.make_coco_folder(tmp_path / "coco")
    # A stray labels.txt in another order must not reorder the categories.
    (tmp_path / "coco" / "labels.txt").write_text("plate\ncat\ndog\n")
    source = pipelines.get_source("coco", data_dir=root)
    # Category ids 3, 17, 90 (listed in reverse in the file): classes in id order.
    assert source.class_names == list(fixtures.CLASSES)
    for split, examples in fixtures.VOC_EXAMPLES.items():
        # img5's second object is iscrowd: like VOC's difficult, never the target.
        fixtures.check_source_against_fixture(source, split, examples, ids=True)


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
            '{"images": [], "annotations": [], '
            '"categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}',
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
    with caplog.at_level("WARNING", logger="absl"):
        assert source.available_splits() == ["train", "val"]
        assert source.class_names == list(fixtures.CLASSES)
        assert source.num_examples("train") == 4
    named = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(named) == 2 and any("instances_.json" in m for m in named), named
    with pytest.raises(DatasetError, match=r"splits here: \['train', 'val'\]"):
        source.num_examples("")

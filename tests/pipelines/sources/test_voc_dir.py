"""Tests of pipelines/sources/voc_dir.py: Pascal VOC folders."""

import os
import re

import pytest

import pipelines
from pipelines.sources.source import (
    ID,
    DatasetError,
)
from tests import fixtures


def test_blank_labels_file_and_unusable_splits_say_what_to_check(tmp_path):
    root = fixtures.make_voc_folder(tmp_path / "voc")
    labels = os.path.join(root, "labels.txt")
    with open(labels, "w") as f:
        f.write("\n  \n")
    with pytest.raises(
        DatasetError,
        match=r"labels.txt: no class names \(the file is empty or blank\); write one "
        r"class name per line, or remove the file",
    ):
        _ = pipelines.get_source("voc_dir", data_dir=root).class_names
    os.remove(labels)
    with open(os.path.join(root, "ImageSets", "Main", "empty.txt"), "w"):
        pass
    for name in os.listdir(os.path.join(root, "JPEGImages")):
        os.remove(os.path.join(root, "JPEGImages", name))
    source = pipelines.get_source("voc_dir", data_dir=root)
    with pytest.raises(DatasetError) as error:
        source.num_examples("empty")
    assert str(error.value) == (
        f"{root} split 'empty': no usable example (kept 0): the split lists no example; "
        f"check that its list or annotation file in {root} names its examples, and that "
        f"'empty' is the split you mean."
    )
    with pytest.raises(DatasetError) as error:
        source.num_examples("train")
    message = str(error.value)
    assert re.fullmatch(
        rf"{re.escape(root)} split 'train': no usable example \(kept 0, skipped \d+ \(missing "
        rf"image file\); first: \S+: missing image file\); check that the split's list names "
        rf"examples whose annotations and images exist in {re.escape(root)} and are readable \(the "
        rf"voc_dir\[train\] log line above counts the reasons by kind\)\.",
        message,
    ), message


def test_voc_dir_reads_boxes_against_decoded_image(voc_folder):
    source = pipelines.get_source("voc_dir", data_dir=voc_folder)
    assert source.class_names == list(fixtures.CLASSES)
    for split, examples in fixtures.VOC_EXAMPLES.items():
        fixtures.check_source_against_fixture(source, split, examples)
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

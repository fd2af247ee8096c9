"""Tests of pipelines/sources/csv_source.py."""

import os

import pytest

import pipelines
from pipelines.sources.source import (
    DatasetError,
)
from tests import fixtures


def test_csv_with_a_byte_order_mark_reads(tmp_path):
    root = fixtures.make_csv_folder(tmp_path / "csv")
    path = os.path.join(root, "train_labels.csv")
    text = open(path, encoding="utf-8").read()
    with open(path, "w", encoding="utf-8-sig") as f:  # as Excel writes it
        f.write(text)
    assert pipelines.get_source("csv", data_dir=root).num_examples("train") == len(
        fixtures.VOC_EXAMPLES["train"]
    )


def test_latin1_csv_and_repeated_labels_are_named(tmp_path):
    root = fixtures.make_csv_folder(tmp_path / "csv")
    path = os.path.join(root, "train_labels.csv")
    lines = open(path, encoding="utf-8").read().splitlines()
    lines[2] = lines[2].replace("img1", "caf\xe9")
    with open(path, "w", encoding="latin-1") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"train_labels\.csv line 3: not UTF-8"):
        pipelines.get_source("csv", data_dir=root).load("train")
    with open(os.path.join(root, "labels.txt"), "w") as f:
        f.write("cat\ndog\ncat\nplate\n")
    with pytest.raises(DatasetError, match="class names repeat: cat"):
        _ = pipelines.get_source("csv", data_dir=root).class_names


def test_csv_source(csv_folder):
    source = pipelines.get_source("csv", data_dir=csv_folder)
    assert source.class_names == sorted(fixtures.CLASSES)
    for split, examples in fixtures.VOC_EXAMPLES.items():
        # CSV has no difficult flag: every object is a candidate.
        fixtures.check_source_against_fixture(source, split, examples, difficult_aware=False)


def test_csv_missing_columns_named(tmp_path):
    (tmp_path / "train.csv").write_text("filename,xmin\na.jpg,1\n")
    with pytest.raises(DatasetError, match="missing column"):
        pipelines.get_source("csv", data_dir=str(tmp_path)).load("train")

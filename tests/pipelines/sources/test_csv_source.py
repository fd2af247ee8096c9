"""Tests of pipelines/sources/csv_source.py."""

import os

import numpy as np
import pytest

import pipelines
from pipelines import decode, render
from pipelines.sources.source import (
    BOX,
    LABEL,
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


def _elements(source, split):
    return [decode.decode(e) for e in source.load(split)]


def _check_against_fixture(elements, examples, difficult_aware=True):
    assert len(elements) == len(examples)
    for element, example in zip(elements, examples, strict=False):
        if not difficult_aware:
            example = example[:4] + ((),)
        label, box = fixtures.expected_target(example)
        assert int(element[LABEL]) == label
        np.testing.assert_allclose(element[BOX], box, atol=1e-6)
        # The box is measured on the decoded image: its pixels are the object's colour.
        assert tuple(element[render.ORIGINAL_SIZE].numpy()) == example[1:3]


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

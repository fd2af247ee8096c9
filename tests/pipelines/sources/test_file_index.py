"""Tests of pipelines/sources/file_index.py and image_check.py, by fault injection: unusable
examples are skipped and counted, fixable ones fixed, paths outside the dataset refused, good
examples never dropped.
"""

import collections

import pytest

import pipelines
from pipelines import input_pipeline
from pipelines.sources.source import ID, DatasetError, check_usable
from tests import fixtures


def _expected_counts(expected):
    kept = {name for name, (action, _) in expected.items() if action == "kept"}
    skipped = collections.Counter(
        reason for action, reason in expected.values() if action == "skipped"
    )
    repaired = {reason for action, reason in expected.values() if action == "kept" and reason}
    return kept, skipped, repaired


MAKERS = {
    "voc_dir": fixtures.make_faulty_voc_folder,
    "csv": fixtures.make_faulty_csv_folder,
    "coco": fixtures.make_faulty_coco_folder,
    "yolo": fixtures.make_faulty_yolo_folder,
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_every_fault_is_skipped_or_fixed_as_specified(tmp_path, kind):
    root, expected = MAKERS[kind](tmp_path / "data")
    source = pipelines.get_source(kind, data_dir=root)
    kept_ids = {element[ID].numpy().decode() for element in source.load("train")}
    stats = source.index_stats("train")
    kept, skipped, repaired = _expected_counts(expected)
    assert kept_ids == kept  # a good or fixable example is never dropped
    assert stats.skipped == skipped
    assert repaired <= set(stats.repaired)
    # Every skipped or repaired example is listed with its reason.
    listed = {(action, reason) for _, action, reason in stats.problems}
    assert {("skipped", r) for r in skipped} <= listed and {
        ("repaired", r) for r in repaired
    } <= listed


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_kept_faulty_examples_decode_through_the_pipeline(tmp_path, kind):
    root, expected = MAKERS[kind](tmp_path / "data")
    source = pipelines.get_source(kind, data_dir=root)
    config = input_pipeline.PipelineConfig(
        image_size=32, resize_mode="letterbox", batch_size=4, seed=0
    )
    counter = input_pipeline.DropCounter()
    batches = list(
        input_pipeline.make_dataset(source, "train", config, training=True, drop_counter=counter)
    )
    images = sum(int(b[0].shape[0]) for b in batches)
    assert images == (len(_expected_counts(expected)[0]) // 4) * 4  # drop_remainder, no crash
    assert counter.value == 0


def test_coco_and_yolo_count_their_own_faults(tmp_path):
    coco, _ = fixtures.make_faulty_coco_folder(tmp_path / "coco")
    repaired = pipelines.get_source("coco", data_dir=coco).index_stats("train").repaired
    assert repaired["annotation of an unknown image ignored"] == 1
    assert repaired["object of unknown class ignored"] == 1  # category 55
    assert repaired["unusable object ignored"] == 1  # bbox x="ten"
    yolo, _ = fixtures.make_faulty_yolo_folder(tmp_path / "yolo")
    stats = pipelines.get_source("yolo", data_dir=yolo).index_stats("train")
    # one_bad_line: class 7 unknown, cx=1.5 out of range; its good line is kept.
    assert stats.repaired["object of unknown class ignored"] == 2  # unknown_class and one_bad_line
    assert (
        stats.repaired["unusable object ignored"] == 5
    )  # non_numeric, box_outside, inverted, wrong_columns,
    # one_bad_line's cx=1.5; the polygon has its own reason
    assert stats.repaired["polygon (segmentation) label, not a box"] == 1
    listed = [
        file for file, action, reason in stats.problems if reason == "unusable object ignored"
    ]
    assert any("one_bad_line.txt line 2: cx=1.5 outside [0, 1]" in file for file in listed)
    assert not any("orphan" in file for file, _, _ in stats.problems)


def test_empty_split_and_too_many_skips_fail_early(tmp_path):
    root, _ = fixtures.make_faulty_voc_folder(tmp_path / "data")
    source = pipelines.get_source("voc_dir", data_dir=root)
    with pytest.raises(DatasetError, match="no usable example"):
        source.load("empty")
    with pytest.raises(DatasetError, match=r"unusable \(more than 5%\).*truncated image file"):
        check_usable(source, "train")
    check_usable(source, "train", max_skipped_fraction=1.0)

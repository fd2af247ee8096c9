"""Tests of localizer/training/history.py: metrics.jsonl and metrics.csv."""

from localizer.training.history import read_history, write_history


def test_a_redone_epoch_replaces_its_rows(tmp_path):
    summary = {"mean_iou": 0.5, "iou_accuracy": {"0.5": 0.4}, "per_class": {}}
    history = [{"epoch": e, "stage": "frozen", **summary} for e in (1, 2, 3)]
    write_history(str(tmp_path), history)
    redone = [r for r in read_history(str(tmp_path)) if r["epoch"] < 3] + [
        {**history[2], "mean_iou": 0.6}
    ]
    write_history(str(tmp_path), redone)
    assert [r["epoch"] for r in read_history(str(tmp_path))] == [1, 2, 3]
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[-1].split(",")[0] == "3"

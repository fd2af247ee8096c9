"""The validation history of a run: one record per evaluated epoch in `metrics.jsonl`, and the
main figures as `metrics.csv`, both rewritten atomically.
"""

import csv
import json
import os

from pipelines import files

HISTORY_JSONL = "metrics.jsonl"
HISTORY_CSV = "metrics.csv"

# Columns of metrics.csv, in order (per-class figures go to the JSONL only).
_CSV_COLUMNS = (
    "epoch",
    "stage",
    "num_examples",
    "classification_accuracy",
    "mean_iou",
    "median_iou",
    "macro_mean_iou",
    "iou_acc_0.5",
    "iou_acc_0.7",
    "iou_acc_0.75",
    "iou_acc_0.9",
    "localization_accuracy",
    "macro_localization_accuracy",
)


def flat_record(record):
    flat = {k: v for k, v in record.items() if k != "train"}
    for threshold, value in record["iou_accuracy"].items():
        flat[f"iou_acc_{threshold}"] = value
    return flat


def write_history(workdir, history):
    """Rewrites metrics.jsonl and metrics.csv from `history` (records in epoch order),
    atomically."""

    def jsonl(temporary):
        with open(temporary, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in history)

    def table(temporary):
        with open(temporary, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=_CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(flat_record(r) for r in history)

    files.atomic_write(os.path.join(workdir, HISTORY_JSONL), jsonl)
    files.atomic_write(os.path.join(workdir, HISTORY_CSV), table)


def read_history(workdir):
    """The records of `metrics.jsonl` in `workdir` (empty if none)."""
    path = os.path.join(workdir, HISTORY_JSONL)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]

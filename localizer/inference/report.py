"""The evaluation report: metrics.json, report.md and the plots."""

import json
import os

from localizer.ops.statistics import (
    AUROC_SUFFIX,
    ERROR_KINDS,
    LOC_IOU_THRESHOLD,
    OBJECT_SIZES,
    RISK_COVERAGE_SUFFIX,
    SPEARMAN_SUFFIX,
)
from pipelines import files

REPORT_FILES = {
    "metrics": "metrics.json",
    "report": "report.md",
    "iou_histogram": "iou_histogram.png",
    "per_class": "per_class.png",
    "confusion_matrix": "confusion_matrix.png",
    "examples": "examples.png",
    "risk_coverage": "risk_coverage.png",
}
"""What a report dir holds, by key: our own files, each replaced atomically."""


def check_report_dir(report_dir, data_dir=None):
    """Refuses a report dir that holds files the report would replace but did not write, or the
    dataset."""
    if data_dir and files.inside(report_dir, data_dir):
        raise files.OutputFolderError(
            f"report dir {report_dir} is inside the dataset folder {data_dir}; "
            f"choose another --report_dir"
        )
    for path in report_paths(report_dir).values():
        if os.path.exists(path) and not _written_by_a_report(report_dir):
            raise files.OutputFolderError(
                f"report dir {report_dir} holds {os.path.basename(path)}, which is not from an "
                "earlier report; choose another --report_dir"
            )


def _written_by_a_report(report_dir):
    """An earlier report leaves metrics.json with its model and split: those files are ours to
    replace."""
    try:
        with open(os.path.join(report_dir, REPORT_FILES["metrics"]), encoding="utf-8") as f:
            metrics = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(metrics, dict) and {"model", "split", "num_examples"} <= set(metrics)


def report_paths(report_dir):
    return {key: os.path.join(report_dir, name) for key, name in REPORT_FILES.items()}


def write_report(evaluation, class_names, report_dir):
    """Writes metrics.json, report.md and the plots (each atomically) of an
    `evaluation.Evaluation`; returns the paths written.

    Its `confidences` (`{name: [N]}`) are drawn in the risk-coverage plot.
    """
    summary, ious = evaluation.summary, evaluation.ious
    labels, predicted = evaluation.labels, evaluation.predicted
    best, worst, confidences = evaluation.best, evaluation.worst, evaluation.confidences
    os.makedirs(report_dir, exist_ok=True)
    paths = report_paths(report_dir)
    files.write_json_atomically(paths["metrics"], summary, indent=2)
    files.atomic_write(
        paths["report"], lambda temporary: _write_text(temporary, markdown_report(summary))
    )
    from localizer.inference import plots  # matplotlib only when a report is written

    files.atomic_write(
        paths["iou_histogram"], lambda temporary: plots.iou_histogram(ious, temporary)
    )
    files.atomic_write(
        paths["per_class"], lambda temporary: plots.per_class_bars(summary["per_class"], temporary)
    )
    files.atomic_write(
        paths["confusion_matrix"],
        lambda temporary: plots.confusion_matrix(labels, predicted, class_names, temporary),
    )
    files.atomic_write(
        paths["examples"],
        lambda temporary: plots.examples_grid(best, worst, class_names, temporary),
    )
    files.atomic_write(
        paths["risk_coverage"],
        lambda temporary: plots.risk_coverage(ious, confidences or {}, temporary),
    )
    return paths


def _write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _fmt(value):
    return "-" if value is None else f"{value:.3f}"


def markdown_report(summary):
    """The metrics as Markdown tables."""
    lines = [
        f"# Evaluation: {summary['model']}",
        "",
        f"Split `{summary['split']}`, {summary['num_examples']} images, test-time augmentation "
        f"`{summary['tta']}`{', zoomed refinement' if summary.get('refine') else ''}. Boxes "
        "compared in the original image.",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for key in (
        "classification_accuracy",
        "top5_accuracy",
        "mean_iou",
        "median_iou",
        "macro_mean_iou",
        "localization_accuracy",
        "macro_localization_accuracy",
        "top5_localization_error",
    ):
        if key in summary:
            lines.append(f"| {key} | {_fmt(summary[key])} |")
    for threshold, value in summary["iou_accuracy"].items():
        lines.append(f"| IoU >= {threshold} | {_fmt(value)} |")
    lines += _confidence_lines(summary)
    lines += [
        "",
        "| class | count | mean IoU | localization acc | classification acc |",
        "|---|---|---|---|---|",
    ]
    for name, stats in summary["per_class"].items():
        lines.append(
            f"| {name} | {stats['count']} | {_fmt(stats['mean_iou'])} | "
            f"{_fmt(stats['localization_accuracy'])} | {_fmt(stats['classification_accuracy'])} |"
        )
    lines += _error_lines(summary)
    return "\n".join(lines) + "\n"


def _error_lines(summary):
    """What became of the images, by object size (`localizer.ops.statistics.error_breakdown`)."""
    errors = summary.get("errors")
    if not errors:
        return []
    sizes = [name for name, _, _ in OBJECT_SIZES]
    bounds = ", ".join(f"{name} {low:.0%}-{min(high, 1):.0%}" for name, low, high in OBJECT_SIZES)
    lines = [
        "",
        f"What became of the images, by the object's share of the image ({bounds}):",
        "",
        "| | "
        + " | ".join(f"{s} ({errors['by_object_size'][s]['count']})" for s in sizes)
        + " | all |",
        "|---|" + "---|" * (len(sizes) + 1),
    ]
    for key, label in (("mean_iou", "mean IoU"), ("localization_accuracy", "localization acc")):
        lines.append(
            f"| {label} | "
            + " | ".join(_fmt(errors["by_object_size"][s][key]) for s in sizes)
            + f" | {_fmt(summary[key])} |"
        )
    for kind, meaning in ERROR_KINDS.items():
        counts = [errors["by_object_size"][s]["kinds"][kind] for s in sizes]
        lines.append(
            f"| {kind}: {meaning} | "
            + " | ".join(str(c) for c in counts)
            + f" | {errors['kinds'][kind]:.1%} |"
        )
    return lines


def _confidence_lines(summary):
    """One table per confidence the summary ranks (keys `<name>_risk_coverage`)."""
    lines = []
    for key in summary:
        if not key.endswith(RISK_COVERAGE_SUFFIX) or not summary[key]:
            continue
        name = key[: -len(RISK_COVERAGE_SUFFIX)]
        lines += [
            "",
            f"Confidence `{name}`: AUROC for IoU >= {LOC_IOU_THRESHOLD} "
            f"{_fmt(summary.get(name + AUROC_SUFFIX))}, Spearman correlation with IoU "
            f"{_fmt(summary.get(name + SPEARMAN_SUFFIX))}.",
            "",
            "| coverage (most confident first) | images | mean IoU | localization acc |",
            "|---|---|---|---|",
        ]
        for row in summary[key]:
            lines.append(
                f"| {row['coverage']:.0%} | {row['count']} | {_fmt(row['mean_iou'])} | "
                f"{_fmt(row['localization_accuracy'])} |"
            )
    return lines

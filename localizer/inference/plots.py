"""Report plots (matplotlib, PNG files; no display needed)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from localizer.ops import statistics  # noqa: E402
from pipelines import boxes as box_lib  # noqa: E402

THRESHOLDS = (0.5, 0.7, 0.9)


def iou_histogram(ious, path):
    """Histogram of per-example IoU with the 0.5 / 0.7 / 0.9 thresholds marked."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(ious, bins=np.linspace(0, 1, 41), color="steelblue")
    for threshold in THRESHOLDS:
        share = float(np.mean(np.asarray(ious) >= threshold)) if len(ious) else 0.0
        ax.axvline(threshold, color="crimson", linestyle="--", linewidth=1)
        ax.text(
            threshold, ax.get_ylim()[1] * 0.95, f" >={threshold}: {share:.0%}", fontsize=8, va="top"
        )
    ax.set_xlabel("IoU with the true box")
    ax.set_ylabel("images")
    _save(fig, path)


def per_class_bars(per_class, path):
    """Mean IoU and localization accuracy per class."""
    names = [n for n, s in per_class.items() if s["count"]]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names)), 3.5))
    ax.bar(x - 0.2, [per_class[n]["mean_iou"] for n in names], 0.4, label="mean IoU")
    ax.bar(
        x + 0.2,
        [per_class[n]["localization_accuracy"] for n in names],
        0.4,
        label="localization acc",
    )
    ax.set_xticks(
        x, [f"{n}\n({per_class[n]['count']})" for n in names], rotation=45, ha="right", fontsize=8
    )
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    _save(fig, path)


def confusion_matrix(labels, predicted, class_names, path):
    """Rows: true class; columns: predicted class; counts in the cells."""
    count = len(class_names)
    matrix = np.zeros((count, count), int)
    np.add.at(matrix, (np.asarray(labels, int), np.asarray(predicted, int)), 1)
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * count + 2), max(4, 0.6 * count + 1.5)))
    ax.imshow(matrix, cmap="Blues")
    for (row, col), value in np.ndenumerate(matrix):
        if value:
            ax.text(
                col,
                row,
                str(value),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if value > matrix.max() / 2 else "black",
            )
    ax.set_xticks(range(count), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(count), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    _save(fig, path)


def examples_grid(best, worst, class_names, path, columns=4):
    """The best and worst examples: true box green, predicted box red, with class names."""
    rows_each = max(1, -(-max(len(best), len(worst)) // columns))
    fig, axes = plt.subplots(
        2 * rows_each, columns, figsize=(3.2 * columns, 3.2 * 2 * rows_each), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for group, (records, title) in enumerate(((best, "best"), (worst, "worst"))):
        for i, record in enumerate(records):
            ax = axes[group * rows_each + i // columns][i % columns]
            image = record["image"]
            ax.imshow(image)
            height, width = image.shape[:2]
            for box, colour in ((record["true_box"], "lime"), (record["box"], "red")):
                xmin, ymin, xmax, ymax = box_lib.from_internal(
                    box, box_lib.PIXEL_XYXY, height, width
                ).numpy()
                ax.add_patch(
                    plt.Rectangle(
                        (xmin, ymin),
                        xmax - xmin,
                        ymax - ymin,
                        fill=False,
                        color=colour,
                        linewidth=2,
                    )
                )
            ax.set_title(
                f"{title}: IoU {record['iou']:.2f}\ntrue {class_names[record['label']]} / "
                f"pred {class_names[record['predicted']]}",
                fontsize=8,
            )
    fig.suptitle("true box green, predicted box red")
    _save(fig, path)


def risk_coverage(ious, confidences, path):
    """Mean IoU of the most confident boxes against the fraction kept, one curve per confidence.

    The oracle (boxes ranked by their own IoU) bounds what any confidence can reach.
    """
    ious = np.asarray(ious, np.float64).reshape(-1)
    fig, ax = plt.subplots(figsize=(6, 4))
    if len(ious):
        coverage = np.arange(1, len(ious) + 1) / len(ious)
        ranked = {"oracle (IoU itself)": ious, **confidences}
        for name, confidence in ranked.items():
            kept = ious[statistics.confidence_order(confidence)]
            style = {"linestyle": ":", "color": "grey"} if name not in confidences else {}
            ax.plot(coverage, np.cumsum(kept) / np.arange(1, len(kept) + 1), label=name, **style)
        ax.axhline(
            float(ious.mean()), color="black", linewidth=0.8, linestyle="--", label="all boxes"
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("coverage: fraction of images kept, most confident first")
    ax.set_ylabel("mean IoU of the kept boxes")
    ax.legend(fontsize=8, loc="lower left")
    _save(fig, path)


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)

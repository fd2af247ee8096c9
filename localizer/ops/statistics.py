"""Evaluation statistics in numpy: the figures of an evaluation set, for `evaluate`'s report and
the IoU callback's validation.

Boxes are `pipelines.boxes.BOX_FORMAT` (normalized `[ymin, xmin, ymax, xmax]`)
and every IoU here is `pipelines.boxes.iou`, so `summarize` agrees exactly with
the streaming Keras metrics of training (`localizer.model.metrics`).

`summarize` (the whole report), `confidence_summary` (how well a confidence ranks
the boxes: `auroc`, `spearman`, `risk_coverage`) and `error_breakdown` (what became
of each image, by object size). They sit below `training` and `inference`, which
both evaluate.
"""

import numpy as np
from keras import ops

from pipelines import boxes as box_lib

LOC_IOU_THRESHOLD = 0.5
"""ILSVRC localization criterion: a box counts as found when IoU >= 0.5."""

SUMMARY_THRESHOLDS = (0.5, 0.7, 0.75, 0.9)
"""IoU thresholds reported by `summarize` under `iou_accuracy`."""

COVERAGES = (1.0, 0.9, 0.8, 0.5)
"""Fractions of the most confident examples in a risk-coverage table (`confidence_summary`)."""

AUROC_SUFFIX, SPEARMAN_SUFFIX, RISK_COVERAGE_SUFFIX = "_auroc", "_spearman", "_risk_coverage"
"""`confidence_summary(name, ...)` reports `name + suffix` for each."""


def iou_numpy(boxes1, boxes2):
    """`pipelines.boxes.iou` of aligned BOX_FORMAT boxes `[N, 4]` as a float64 numpy `[N]`."""
    boxes1 = np.asarray(boxes1, np.float32).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, np.float32).reshape(-1, 4)
    if len(boxes1) == 0:
        return np.zeros([0], np.float64)
    return np.asarray(ops.convert_to_numpy(box_lib.iou(boxes1, boxes2)), np.float64)


def _threshold_key(threshold):
    """`0.5 -> "0.5"`, `0.75 -> "0.75"`: the keys of `iou_accuracy`."""
    return str(float(threshold))


def _mean(values):
    """Python float mean, or None for no values."""
    return float(np.mean(values)) if len(values) else None


def _check_summary_inputs(true_boxes, labels, pred_boxes, scores, class_names, class_boxes):
    true_boxes = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    pred_boxes = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    labels = np.asarray(labels).reshape(-1)
    num_classes = len(class_names)
    if len(set(class_names)) != num_classes:
        raise ValueError(f"class_names must be unique; got {list(class_names)}.")
    scores = np.asarray(scores, np.float64).reshape(-1, num_classes)
    n = len(labels)
    if not len(true_boxes) == len(pred_boxes) == len(scores) == n:
        raise ValueError(
            f"Mismatched lengths: true_boxes {len(true_boxes)}, labels {n}, "
            f"pred_boxes {len(pred_boxes)}, logits_or_probs {len(scores)}."
        )
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must be in [0, {num_classes}); got {labels.min()}..{labels.max()}."
        )
    labels = labels.astype(np.int64)
    if class_boxes is not None:
        class_boxes = np.asarray(class_boxes, np.float64).reshape(n, num_classes, 4)
    return true_boxes, labels, pred_boxes, scores, class_boxes


def _empty_summary(class_names, thresholds):
    summary = {
        "num_examples": 0,
        "classification_accuracy": None,
        "mean_iou": None,
        "median_iou": None,
        "macro_mean_iou": None,
        "iou_accuracy": {_threshold_key(t): None for t in thresholds},
        "localization_accuracy": None,
        "macro_localization_accuracy": None,
        "top5_localization_error": None,
        "per_class": {
            name: {
                "count": 0,
                "mean_iou": None,
                "localization_accuracy": None,
                "classification_accuracy": None,
            }
            for name in class_names
        },
    }
    if len(class_names) > 5:
        summary["top5_accuracy"] = None
    return summary


def average_ranks(values):
    """1-based ranks of `values` `[N]` (ascending), ties given the mean of the ranks they span."""
    values = np.asarray(values, np.float64).reshape(-1)
    if not len(values):
        return np.zeros([0], np.float64)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # Start of each run of equal values, and each value's run.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    run = np.cumsum(np.r_[True, sorted_values[1:] != sorted_values[:-1]]) - 1
    ends = np.r_[starts[1:], len(values)]  # exclusive
    ranks = np.empty(len(values), np.float64)
    ranks[order] = ((starts + 1 + ends) / 2.0)[run]
    return ranks


def auroc(confidence, positive):
    """Area under the ROC curve of `confidence` `[N]` for the boolean `positive` `[N]`.

    The Mann-Whitney form: the probability that a random positive has a
    higher confidence than a random negative, a tie counting one half.
    None when either class is empty.
    """
    positive = np.asarray(positive, bool).reshape(-1)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = average_ranks(confidence)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def spearman(x, y):
    """Spearman's rank correlation of `[N]` and `[N]` (ties: average ranks); None if either is
    constant or N < 2."""
    rx, ry = average_ranks(x), average_ranks(y)
    if len(rx) < 2:
        return None
    rx, ry = rx - rx.mean(), ry - ry.mean()
    norm = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / norm) if norm > 0 else None


def confidence_order(confidence):
    """Indices of `confidence` `[N]`, most confident first; ties keep their order (stable)."""
    return np.argsort(-np.asarray(confidence, np.float64).reshape(-1), kind="stable")


def risk_coverage(confidence, ious, localized, coverages=COVERAGES):
    """Mean IoU and localization accuracy of the most confident examples, at each coverage.

    Args:
      confidence: `[N]` per-example confidence (higher is surer).
      ious: `[N]` IoU of each predicted box with the truth.
      localized: `[N]` bool, class right and IoU >= `LOC_IOU_THRESHOLD`.
      coverages: fractions in (0, 1]; the `ceil(coverage * N)` most confident
        examples are kept (ties in confidence keep dataset order).

    Returns:
      `[{"coverage", "count", "mean_iou", "localization_accuracy"}, ...]`, one per coverage.
    """
    order = confidence_order(confidence)
    ious = np.asarray(ious, np.float64).reshape(-1)[order]
    localized = np.asarray(localized, bool).reshape(-1)[order]
    table = []
    for coverage in coverages:
        if not 0.0 < coverage <= 1.0:
            raise ValueError(f"coverage must be in (0, 1]; got {coverage}.")
        # round() first: 0.9 * 10 is 9.000000000000002 in floats.
        count = int(np.ceil(round(coverage * len(ious), 9)))
        table.append(
            {
                "coverage": float(coverage),
                "count": count,
                "mean_iou": _mean(ious[:count]),
                "localization_accuracy": _mean(localized[:count]),
            }
        )
    return table


def confidence_summary(name, confidence, ious, localized, coverages=COVERAGES):
    """How well a per-example `confidence` ranks the boxes, as `summarize` reports it.

    Returns `{f"{name}_auroc": AUROC for IoU >= LOC_IOU_THRESHOLD,
    f"{name}_spearman": Spearman correlation with IoU, f"{name}_risk_coverage":
    risk_coverage(...)}`.
    """
    confidence = np.asarray(confidence, np.float64).reshape(-1)
    ious = np.asarray(ious, np.float64).reshape(-1)
    if len(confidence) != len(ious):
        raise ValueError(f"Mismatched lengths: {name} {len(confidence)}, ious {len(ious)}.")
    return {
        name + AUROC_SUFFIX: auroc(confidence, ious >= LOC_IOU_THRESHOLD),
        name + SPEARMAN_SUFFIX: spearman(confidence, ious),
        name + RISK_COVERAGE_SUFFIX: risk_coverage(confidence, ious, localized, coverages),
    }


def summarize(
    true_boxes,
    labels,
    pred_boxes,
    logits_or_probs,
    class_names,
    class_boxes=None,
    thresholds=SUMMARY_THRESHOLDS,
    confidences=None,
):
    """Localization report over a whole evaluation set (numpy, JSON-serializable).

    Args:
      true_boxes: `[N, 4]` ground-truth boxes, BOX_FORMAT.
      labels: `[N]` int ground-truth class ids in [0, C).
      pred_boxes: `[N, 4]` predicted boxes, BOX_FORMAT (the model's `"box"`:
        for per-class heads the box of the predicted class).
      logits_or_probs: `[N, C]` class scores (argmax and top-k are the same
        for logits and softmax probabilities).
      class_names: C unique names, index = class id.
      class_boxes: optional `[N, C, 4]` per-class boxes (per-class heads); used
        only by `top5_localization_error`, which then takes the box of each
        guessed class instead of the single predicted box.
      thresholds: IoU thresholds for `iou_accuracy`.
      confidences: optional `{name: [N] per-example confidence}` (e.g. the
        class probability "score", the model's "box_quality"); each adds the
        keys of `confidence_summary(name, ...)`.

    Returns:
      A dict with exactly these keys (Python ints/floats/None):
        `num_examples`; `classification_accuracy` (top-1); `top5_accuracy`
        (present only when C > 5); `mean_iou`, `median_iou` (IoU of `pred_boxes`);
        `macro_mean_iou` (mean over classes with examples, by true label, of
        the per-class mean IoU); `iou_accuracy` (`{"0.5": fraction with
        IoU >= 0.5, ...}`, keys `str(float(t))`); `localization_accuracy`
        (top-1 class right and IoU >= 0.5); `macro_localization_accuracy`
        (its mean over classes with examples); `top5_localization_error`
        (ILSVRC: 1 - fraction where one of the top-5 classes, all classes
        when C <= 5, is the true class with IoU >= 0.5); `per_class`
        (`{name: {"count", "mean_iou", "localization_accuracy",
        "classification_accuracy"}}`, every class listed; a class without
        examples has count 0 and None values; its classification accuracy
        is recall); and for each of `confidences`, the keys of
        `confidence_summary`. With N == 0 every value is None (`num_examples` 0).
    """
    true_boxes, labels, pred_boxes, scores, class_boxes = _check_summary_inputs(
        true_boxes, labels, pred_boxes, logits_or_probs, class_names, class_boxes
    )
    n, num_classes = len(labels), len(class_names)
    confidences = dict(confidences or {})
    for name, confidence in confidences.items():
        if len(np.asarray(confidence).reshape(-1)) != n:
            raise ValueError(
                f"Mismatched lengths: {name} {len(np.asarray(confidence).reshape(-1))}, labels {n}."
            )
    if n == 0:
        summary = _empty_summary(class_names, thresholds)
        for name in confidences:
            summary.update(dict.fromkeys(confidence_summary(name, [], [], []), None))
        return summary

    ious = iou_numpy(true_boxes, pred_boxes)
    class_ok = np.argmax(scores, axis=-1) == labels
    loc_ok = class_ok & (ious >= LOC_IOU_THRESHOLD)

    # Top-k guesses, best first; a stable sort keeps argmax's first-wins on ties.
    top_k = np.argsort(-scores, axis=-1, kind="stable")[:, : min(5, num_classes)]
    label_in_top5 = np.any(top_k == labels[:, None], axis=-1)
    if class_boxes is not None:
        label_boxes = class_boxes[np.arange(n), labels]
        label_ious = iou_numpy(true_boxes, label_boxes)
    else:
        label_ious = ious
    # Only the guess equal to the true label can be correct, so "any of the
    # top-5 is right" is "the label is in the top-5 and its box has IoU >= 0.5".
    top5_loc_ok = label_in_top5 & (label_ious >= LOC_IOU_THRESHOLD)

    per_class = {}
    for class_id, name in enumerate(class_names):
        mask = labels == class_id
        per_class[name] = {
            "count": int(mask.sum()),
            "mean_iou": _mean(ious[mask]),
            "localization_accuracy": _mean(loc_ok[mask]),
            "classification_accuracy": _mean(class_ok[mask]),
        }
    present = [v for v in per_class.values() if v["count"]]

    summary = {
        "num_examples": int(n),
        "classification_accuracy": _mean(class_ok),
        "mean_iou": _mean(ious),
        "median_iou": float(np.median(ious)),
        "macro_mean_iou": _mean([v["mean_iou"] for v in present]),
        "iou_accuracy": {_threshold_key(t): _mean(ious >= t) for t in thresholds},
        "localization_accuracy": _mean(loc_ok),
        "macro_localization_accuracy": _mean([v["localization_accuracy"] for v in present]),
        "top5_localization_error": 1.0 - _mean(top5_loc_ok),
        "per_class": per_class,
    }
    if num_classes > 5:
        summary["top5_accuracy"] = _mean(label_in_top5)
    for name, confidence in confidences.items():
        summary.update(confidence_summary(name, confidence, ious, loc_ok))
    return summary


OBJECT_SIZES = (("small", 0.0, 0.05), ("medium", 0.05, 0.3), ("large", 0.3, 1.01))
"""`(name, low, high)`: bins of the true box's area as a fraction of the image's, for
`error_breakdown`."""

ERROR_KINDS = {
    "localized": "class right, IoU >= 0.5",
    "wrong_class": "class wrong (whatever the box)",
    "box_elsewhere": "class right, IoU < 0.1: another object or the background",
    "box_too_large": (
        "class right, 0.1 <= IoU < 0.5, the box holds >= 80% of the object: loose, or a group"
    ),
    "box_too_small": (
        "class right, 0.1 <= IoU < 0.5, >= 80% of the box is on the object: a part of it"
    ),
    "box_shifted": "class right, 0.1 <= IoU < 0.5, neither: off to a side",
}
"""What became of each image, one kind each (`error_breakdown`)."""


def error_breakdown(true_boxes, labels, pred_boxes, predicted):
    """What the errors look like: each image's `ERROR_KINDS` kind, and the figures by object size.

    Args: `[N, 4]` true and predicted boxes (BOX_FORMAT, in the original
    image), `[N]` true and predicted class ids.

    Returns: `{"kinds": {kind: fraction of images}, "by_object_size": {size:
    {"count", "mean_iou", "localization_accuracy", "kinds": {kind: count}}}}`
    (sizes: `OBJECT_SIZES`; a size without images has count 0 and None figures).
    """
    true_boxes, pred_boxes = np.asarray(true_boxes, np.float64), np.asarray(pred_boxes, np.float64)
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    ious = iou_numpy(true_boxes, pred_boxes)
    overlap = ops.convert_to_numpy(box_lib.intersection(true_boxes, pred_boxes))
    sizes = ops.convert_to_numpy(box_lib.area(true_boxes))
    of_object = overlap / np.maximum(sizes, 1e-12)
    of_box = overlap / np.maximum(ops.convert_to_numpy(box_lib.area(pred_boxes)), 1e-12)
    kinds = np.select(
        [
            predicted != labels,
            ious >= LOC_IOU_THRESHOLD,
            ious < 0.1,
            of_object >= 0.8,
            of_box >= 0.8,
        ],
        ["wrong_class", "localized", "box_elsewhere", "box_too_large", "box_too_small"],
        default="box_shifted",
    )
    n = max(len(labels), 1)
    breakdown = {
        "kinds": {kind: float(np.sum(kinds == kind)) / n for kind in ERROR_KINDS},
        "by_object_size": {},
    }
    for name, low, high in OBJECT_SIZES:
        mask = (sizes >= low) & (sizes < high)
        breakdown["by_object_size"][name] = {
            "count": int(mask.sum()),
            "mean_iou": _mean(ious[mask]),
            "localization_accuracy": _mean((kinds == "localized")[mask]),
            "kinds": {kind: int(np.sum(kinds[mask] == kind)) for kind in ERROR_KINDS},
        }
    return breakdown

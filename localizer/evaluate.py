"""Evaluate a localizer: `python -m localizer.evaluate` (or `make evaluate`).

    python -m localizer.evaluate --model=work/realmix_default/best.keras \
        --dataset=voc_dir --data_dir=../shared/data/realmix --split=val \
        --report_dir=reports/realmix --tta=multicrop

`--model` is a `.keras` file or an exported SavedModel version folder. Boxes
are compared in the original image (the letterbox undone). Writes into the
report dir: metrics.json (every figure below), report.md (the same as
Markdown tables), iou_histogram.png, per_class.png, confusion_matrix.png and
examples.png (the best and worst examples with true and predicted boxes).

It streams: predictions are accumulated as small arrays, and only the images
of the current best and worst examples are kept, as thumbnails.
"""

import heapq
import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from localizer import boxes as box_lib
from localizer import inference
from localizer import metrics as metrics_lib
from pipelines import ops
from pipelines.source import BOX, ID, IMAGE, LABEL

THUMBNAIL_SIDE = 256
EXAMPLES_SHOWN = 8  # best and worst each


class _Extremes:
    """The k best and k worst examples by IoU seen so far, with thumbnails."""

    def __init__(self, k):
        self.k = k
        self.best, self.worst = [], []  # heaps of (key, counter, record)
        self._counter = 0

    def offer(self, iou, record_fn):
        self._counter += 1
        for heap, key in ((self.best, iou), (self.worst, -iou)):
            if len(heap) < self.k or key > heap[0][0]:
                entry = (key, self._counter, record_fn())
                (heapq.heappush if len(heap) < self.k else heapq.heapreplace)(heap, entry)

    def sorted(self):
        best = [r for _, _, r in sorted(self.best, key=lambda e: -e[0])]
        worst = [r for _, _, r in sorted(self.worst, key=lambda e: -e[0])]
        return best, worst


def _thumbnail(image):
    height, width = image.shape[:2]
    scale = min(1.0, THUMBNAIL_SIDE / max(height, width))
    if scale == 1.0:
        return image
    size = [max(1, round(height * scale)), max(1, round(width * scale))]
    return tf.cast(tf.image.resize(image, size, antialias=True), tf.uint8).numpy()


def evaluation_dataset(source, split, predictor, tta, batch_size):
    """Batches of views, windows, mirrored flags, true label and box, id, decoded image and its size."""
    size, mode = predictor.image_size, predictor.resize_mode

    def views(features):
        inputs, windows, mirrored = inference.render_views(features[IMAGE], size, mode, tta)
        return {"inputs": inputs, "windows": windows, "mirrored": mirrored, LABEL: features[LABEL],
                BOX: features[BOX], ID: features[ID], IMAGE: features[IMAGE],
                ops.ORIGINAL_SIZE: features[ops.ORIGINAL_SIZE]}

    ds = source.load(split).map(ops.decode, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(ops.sanitize).filter(lambda f: f["valid"])
    ds = ds.map(views, num_parallel_calls=tf.data.AUTOTUNE)
    # Decoded images differ in size: keep them out of the batched tensors.
    return ds.padded_batch(batch_size, padded_shapes={
        "inputs": [None, size, size, 3], "windows": [None, 4], "mirrored": [None], LABEL: [], BOX: [4], ID: [],
        IMAGE: [None, None, 3], ops.ORIGINAL_SIZE: [2],
    }).prefetch(tf.data.AUTOTUNE)


def evaluate(predictor, source, split, tta="none", batch_size=16, progress=True, refine=False):
    """Runs `predictor` over a split; returns (metrics dict, best examples, worst examples, ious, labels, predicted)."""
    if predictor.class_names != list(source.class_names):
        raise ValueError(
            f"The model's classes {predictor.class_names} differ from the dataset's {source.class_names}."
        )
    batches = evaluation_dataset(source, split, predictor, tta, batch_size)
    total = source.num_examples(split)
    bar = keras.utils.Progbar(total, unit_name="image", verbose=1 if progress and sys.stdout.isatty() else 0)
    labels, true_boxes, pred_boxes, probabilities, class_boxes, all_ious = [], [], [], [], [], []
    extremes = _Extremes(EXAMPLES_SHOWN)
    run = tf.function(predictor.predict_views, reduce_retracing=True)
    run_refine = tf.function(predictor.refine, reduce_retracing=True)
    for batch in batches:
        box, probs, per_class = run(batch["inputs"], batch["windows"], batch["mirrored"])
        if refine:
            box, probs = run_refine(batch[IMAGE], batch[ops.ORIGINAL_SIZE], box, probs)
        box, probs = box.numpy(), probs.numpy()
        ious = box_lib.iou(batch[BOX], box).numpy()
        for i, iou in enumerate(ious):
            def record(i=i):
                height, width = batch[ops.ORIGINAL_SIZE][i].numpy()
                return {
                    "id": batch[ID][i].numpy().decode(), "iou": float(ious[i]),
                    "label": int(batch[LABEL][i]), "predicted": int(probs[i].argmax()),
                    "true_box": batch[BOX][i].numpy(), "box": box[i],
                    "image": _thumbnail(batch[IMAGE][i, :height, :width].numpy()),
                }
            extremes.offer(float(iou), record)
        all_ious.append(ious)
        labels.append(batch[LABEL].numpy())
        true_boxes.append(batch[BOX].numpy())
        pred_boxes.append(box)
        probabilities.append(probs)
        if per_class is not None:
            class_boxes.append(per_class.numpy())
        bar.add(len(ious))
    labels, true_boxes = np.concatenate(labels), np.concatenate(true_boxes)
    pred_boxes, probabilities = np.concatenate(pred_boxes), np.concatenate(probabilities)
    summary = metrics_lib.summarize(
        true_boxes, labels, pred_boxes, probabilities, predictor.class_names,
        class_boxes=np.concatenate(class_boxes) if class_boxes else None,
    )
    summary.update({"split": split, "tta": tta, "refine": refine, "model": predictor.path})
    best, worst = extremes.sorted()
    return summary, best, worst, np.concatenate(all_ious), labels, probabilities.argmax(axis=-1)


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------


def write_report(summary, best, worst, ious, labels, predicted, class_names, report_dir):
    """Writes metrics.json, report.md and the plots; returns the paths written."""
    os.makedirs(report_dir, exist_ok=True)
    paths = {
        "metrics": os.path.join(report_dir, "metrics.json"),
        "report": os.path.join(report_dir, "report.md"),
        "iou_histogram": os.path.join(report_dir, "iou_histogram.png"),
        "per_class": os.path.join(report_dir, "per_class.png"),
        "confusion_matrix": os.path.join(report_dir, "confusion_matrix.png"),
        "examples": os.path.join(report_dir, "examples.png"),
    }
    with open(paths["metrics"], "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    with open(paths["report"], "w", encoding="utf-8") as f:
        f.write(markdown_report(summary))
    from localizer import plots  # matplotlib only when a report is written

    plots.iou_histogram(ious, paths["iou_histogram"])
    plots.per_class_bars(summary["per_class"], paths["per_class"])
    plots.confusion_matrix(labels, predicted, class_names, paths["confusion_matrix"])
    plots.examples_grid(best, worst, class_names, paths["examples"])
    return paths


def _fmt(value):
    return "-" if value is None else f"{value:.3f}"


def markdown_report(summary):
    """The metrics as Markdown tables."""
    lines = [
        f"# Evaluation: {summary['model']}", "",
        f"Split `{summary['split']}`, {summary['num_examples']} images, test-time augmentation `{summary['tta']}`"
        f"{', zoomed refinement' if summary.get('refine') else ''}. "
        "Boxes compared in the original image.", "",
        "| metric | value |", "|---|---|",
    ]
    for key in ("classification_accuracy", "top5_accuracy", "mean_iou", "median_iou", "macro_mean_iou",
                "localization_accuracy", "macro_localization_accuracy", "top5_localization_error"):
        if key in summary:
            lines.append(f"| {key} | {_fmt(summary[key])} |")
    for threshold, value in summary["iou_accuracy"].items():
        lines.append(f"| IoU >= {threshold} | {_fmt(value)} |")
    lines += ["", "| class | count | mean IoU | localization acc | classification acc |", "|---|---|---|---|---|"]
    for name, stats in summary["per_class"].items():
        lines.append(f"| {name} | {stats['count']} | {_fmt(stats['mean_iou'])} | "
                     f"{_fmt(stats['localization_accuracy'])} | {_fmt(stats['classification_accuracy'])} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------

FLAGS = flags.FLAGS


def main(argv):
    del argv
    from localizer.train import build_source
    from localizer.config import DataConfig

    predictor = inference.Predictor(FLAGS.model)
    data = DataConfig(
        dataset=FLAGS.dataset, data_dir=FLAGS.data_dir or None, policy=FLAGS.policy, voc_year=FLAGS.voc_year,
        manual_dir=FLAGS.manual_dir, image_dir=FLAGS.image_dir,
    )
    source = build_source(data)
    summary, best, worst, ious, labels, predicted = evaluate(
        predictor, source, FLAGS.split, FLAGS.tta, FLAGS.batch_size, refine=FLAGS.refine
    )
    report_dir = FLAGS.report_dir or os.path.join(os.path.dirname(os.path.abspath(FLAGS.model)), f"report-{FLAGS.split}")
    paths = write_report(summary, best, worst, ious, labels, predicted, predictor.class_names, report_dir)
    print(markdown_report(summary))
    print(f"Report: {paths['report']}\nMetrics: {paths['metrics']}\nPlots: {report_dir}/*.png")


if __name__ == "__main__":
    from pipelines import cli

    cli.define_dataset_flags(default_split="val")
    flags.DEFINE_string("model", None, "A .keras file or an exported SavedModel version folder.", required=True)
    flags.DEFINE_string("report_dir", None, "Where the report goes (default: beside the model).")
    flags.DEFINE_enum("tta", "none", list(inference.TTA_MODES), "Test-time augmentation.")
    flags.DEFINE_boolean("refine", True, "A second, zoomed look around the first box (small objects); "
                         "--norefine: one look, about half the compute.")
    flags.DEFINE_integer("batch_size", 16, "Images per batch.")
    app.run(main)

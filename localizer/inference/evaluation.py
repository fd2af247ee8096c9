"""Evaluate a localizer on a dataset split: every figure of `localizer.ops.statistics.summarize`.

Boxes are compared in the original image (the letterbox undone). Each
confidence of `confidences` is ranked against the IoUs (AUROC, Spearman,
risk-coverage): the class probability `score` always, and the model's
`box_quality` when it has one. It streams:
predictions are accumulated as small arrays, and only the images of the
current best and worst examples are kept, as thumbnails.
"""

import dataclasses
import functools
import heapq
import sys

import keras
import numpy as np
import tensorflow as tf

from localizer.model.outputs import BOX_QUALITY
from localizer.ops import statistics, views
from pipelines import boxes as box_lib
from pipelines import input_pipeline, render
from pipelines.sources.source import BOX, ID, IMAGE, LABEL, DatasetError

THUMBNAIL_SIDE = 256

SCORE = "score"
"""The class probability of the predicted class, as a confidence in the box (`confidences`)."""


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


def _example_record(batch, i, ious, probs, box):
    """Example `i` of a batch for the best and worst pages (built only for those)."""
    height, width = batch[render.ORIGINAL_SIZE][i].numpy()
    return {
        "id": batch[ID][i].numpy().decode(),
        "iou": float(ious[i]),
        "label": int(batch[LABEL][i]),
        "predicted": int(probs[i].argmax()),
        "true_box": batch[BOX][i].numpy(),
        "box": box[i],
        "image": _thumbnail(batch[IMAGE][i, :height, :width].numpy()),
    }


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What `evaluate` found on a split; `report.write_report` writes it."""

    summary: dict
    """Every figure of `statistics.summarize`, the error breakdown, split, tta, refine and model."""
    best: list
    """The best examples by IoU, best first: records with a thumbnail (`EXAMPLES_SHOWN`)."""
    worst: list
    """The worst examples by IoU, in the same form, best first."""
    ious: np.ndarray
    """`[N]` IoU of each predicted box with the true box, original frame."""
    labels: np.ndarray
    """`[N]` true class ids."""
    predicted: np.ndarray
    """`[N]` predicted class ids."""
    confidences: dict
    """`{SCORE: [N] probability of the predicted class}`, and for a model with a box-quality head
    `{BOX_QUALITY: [N] its predicted IoU}`."""


def evaluation_dataset(source, split, predictor, tta, batch_size):
    """Batches of views, windows, mirrored flags, true label and box, id, decoded image and its
    size."""
    size, mode = predictor.image_size, predictor.resize_mode

    def views_of(features):
        inputs, windows, mirrored = views.render_views(features[IMAGE], size, mode, tta)
        return {
            "inputs": inputs,
            "windows": windows,
            "mirrored": mirrored,
            LABEL: features[LABEL],
            BOX: features[BOX],
            ID: features[ID],
            IMAGE: features[IMAGE],
            render.ORIGINAL_SIZE: features[render.ORIGINAL_SIZE],
        }

    ds = input_pipeline.decoded(source, split).map(views_of, num_parallel_calls=tf.data.AUTOTUNE)
    # Decoded images differ in size: keep them out of the batched tensors.
    return ds.padded_batch(
        batch_size,
        padded_shapes={
            "inputs": [None, size, size, 3],
            "windows": [None, 4],
            "mirrored": [None],
            LABEL: [],
            BOX: [4],
            ID: [],
            IMAGE: [None, None, 3],
            render.ORIGINAL_SIZE: [2],
        },
    ).prefetch(tf.data.AUTOTUNE)


def evaluate(predictor, source, split, tta="none", batch_size=16, progress=True, refine=False):
    """Runs `predictor` over a split.

    Returns an `Evaluation`.
    """
    if predictor.class_names != list(source.class_names):
        raise DatasetError(
            f"The model's classes {predictor.class_names} differ from the dataset's "
            f"{source.class_names}."
        )
    batches = evaluation_dataset(source, split, predictor, tta, batch_size)
    total = source.num_examples(split)
    bar = keras.utils.Progbar(
        total, unit_name="image", verbose=1 if progress and sys.stdout.isatty() else 0
    )
    labels, true_boxes, pred_boxes, probabilities, class_boxes, all_ious, qualities = (
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    )
    extremes = _Extremes(EXAMPLES_SHOWN)
    run = tf.function(predictor.predict_views, reduce_retracing=True)
    run_refine = tf.function(predictor.refine, reduce_retracing=True)
    for batch in batches:
        look = run(views.Views(batch["inputs"], batch["windows"], batch["mirrored"]))
        per_class = look.class_boxes
        if refine:
            look = run_refine(batch[IMAGE], batch[render.ORIGINAL_SIZE], look)
        if look.quality is not None:
            qualities.append(look.quality.numpy())
        box, probs = look.boxes.numpy(), look.probabilities.numpy()
        ious = box_lib.iou(batch[BOX], box).numpy()
        for i, iou in enumerate(ious):
            record = functools.partial(_example_record, batch, i, ious, probs, box)
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
    confidences = {SCORE: probabilities.max(axis=-1)}
    if predictor.has_box_quality:
        confidences[BOX_QUALITY] = np.concatenate(qualities)
    summary = statistics.summarize(
        true_boxes,
        labels,
        pred_boxes,
        probabilities,
        predictor.class_names,
        class_boxes=np.concatenate(class_boxes) if class_boxes else None,
        confidences=confidences,
    )
    summary["errors"] = statistics.error_breakdown(
        true_boxes, labels, pred_boxes, probabilities.argmax(axis=-1)
    )
    summary.update({"split": split, "tta": tta, "refine": refine, "model": predictor.path})
    best, worst = extremes.sorted()
    return Evaluation(
        summary=summary,
        best=best,
        worst=worst,
        ious=np.concatenate(all_ious),
        labels=labels,
        predicted=probabilities.argmax(axis=-1),
        confidences=confidences,
    )

"""The IoU callback: the full localization picture on the validation set.

Keras' compiled metrics give running averages per batch; this callback runs
the model over the *whole* validation set every `every` epochs and computes
what a localizer is judged by (mean and median IoU, accuracy at IoU
thresholds, ILSVRC localization accuracy, per-class mean IoU), logs it to
TensorBoard and to `metrics.jsonl` / `metrics.csv` in the work dir, prints
one summary line, and keeps the best model as `best.keras`. With a preview
(a fixed sample of validation images across the classes) it also logs one
image per evaluation: those images with the true box (green) and the
predicted box (red), as the TF Object Detection API does.
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from localizer.model import BOX, CLASS_BOXES, CLASS_LOGITS
from localizer.ops import statistics
from localizer.training import backups, history

BEST_MODEL = "best.keras"

PREVIEW_IMAGES = 9  # the TensorBoard grid: 3 x 3 validation images
_TRUE_COLOUR, _PREDICTED_COLOUR = (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)


def prediction_grid(images, true_boxes, predicted_boxes, columns=3):
    """One float image `[1, H', W', 3]` in [0, 1]: `images` (uint8 `[K, H, W, 3]`) tiled
    `columns` wide, each with its true box in green and its predicted box in red (yxyx, normalized).
    """
    images = tf.image.convert_image_dtype(tf.convert_to_tensor(images), tf.float32)
    for boxes, colour in ((true_boxes, _TRUE_COLOUR), (predicted_boxes, _PREDICTED_COLOUR)):
        boxes = tf.clip_by_value(tf.convert_to_tensor(boxes, tf.float32), 0.0, 1.0)[:, None, :]
        images = tf.image.draw_bounding_boxes(images, boxes, tf.constant([colour]))
    count, height, width = images.shape[0], images.shape[1], images.shape[2]
    rows = -(-count // columns)
    images = tf.concat([images, tf.zeros([rows * columns - count, height, width, 3])], axis=0)
    grid = tf.reshape(images, [rows, columns, height, width, 3])
    grid = tf.reshape(tf.transpose(grid, [0, 2, 1, 3, 4]), [1, rows * height, columns * width, 3])
    return grid


@dataclasses.dataclass(frozen=True)
class ValidationSet:
    """The examples every evaluation runs over, in one fixed order.

    Attributes:
      inputs: `tf.data.Dataset` of model inputs (images, or features for a
        features-only training view), batched.
      labels: int `[N]` labels of those examples.
      boxes: `[N, 4]` BOX_FORMAT boxes.
      class_names: the class names.
      preview: optional `(positions, images uint8 [K, H, W, 3])` of validation
        examples (model-input frame) drawn into TensorBoard after each evaluation.
    """

    inputs: object
    labels: object
    boxes: object
    class_names: tuple
    preview: tuple = None


class IoUCallback(keras.callbacks.Callback):
    """Evaluates localization on the validation set and keeps the best model.

    Args:
      validation: the `ValidationSet`.
      workdir: where history files, TensorBoard logs and `best.keras` go.
      export_model: the inference model to save as best (shares weights with
        the model being trained).
      best_metric: key of `statistics.summarize` to maximize.
      every: evaluate every this many epochs (and always at the last).
      stage: a label written with each record ("frozen", "fine_tune").
      total_epochs: the stage's last epoch (always evaluated).
    """

    def __init__(
        self,
        validation,
        workdir,
        export_model,
        best_metric="localization_accuracy",
        every=1,
        stage="",
        total_epochs=None,
    ):
        super().__init__()
        self.val_inputs = validation.inputs
        self.true_labels = np.asarray(validation.labels)
        self.true_boxes = np.asarray(validation.boxes, np.float32)
        self.class_names = list(validation.class_names)
        preview = validation.preview
        self.workdir = workdir
        self.export_model = export_model
        self.best_metric = best_metric
        self.every = max(1, int(every))
        self.stage = stage
        self.total_epochs = total_epochs
        self.best = self._best_so_far()
        self._predict = None
        self.preview = preview if preview is not None and len(preview[0]) else None
        self._predicted_boxes = None
        self._writer = tf.summary.create_file_writer(
            os.path.join(workdir, "tensorboard", "validation_full")
        )

    def _best_so_far(self):
        """Best value in an existing history, so a resumed run keeps the real best."""
        values = [r.get(self.best_metric) for r in history.read_history(self.workdir)]
        values = [v for v in values if v is not None]
        return max(values) if values else -np.inf

    def evaluate(self):
        """Runs the model over the validation set; returns `statistics.summarize`'s dict."""
        # Plain calls of one traced function, not `predict`: on every worker of a
        # multi-worker run the whole validation set goes through the model
        # (Keras' `predict` fails under MultiWorkerMirroredStrategy), and
        # summarize() checks that every example got a prediction.
        if self._predict is None:
            self._predict = tf.function(lambda inputs: self.model(inputs, training=False))
        batches = [self._predict(inputs) for inputs in self.val_inputs]
        predictions = {key: np.concatenate([b[key].numpy() for b in batches]) for key in batches[0]}
        self._predicted_boxes = predictions[BOX]
        return statistics.summarize(
            self.true_boxes,
            self.true_labels,
            predictions[BOX],
            predictions[CLASS_LOGITS],
            self.class_names,
            class_boxes=predictions.get(CLASS_BOXES),
        )

    def on_epoch_end(self, epoch, logs=None):
        last = self.total_epochs is not None and epoch + 1 >= self.total_epochs
        if (epoch + 1) % self.every and not last:
            return
        summary = self.evaluate()
        improved = summary[self.best_metric] is not None and summary[self.best_metric] > self.best
        if improved:
            self.best = summary[self.best_metric]
            backups.save_model_atomically(self.export_model, os.path.join(self.workdir, BEST_MODEL))
        self._record(epoch + 1, summary, logs or {})
        print(self._line(epoch + 1, summary, improved), flush=True)

    def _record(self, epoch, summary, logs):
        record = {"epoch": epoch, "stage": self.stage, **summary}
        record["train"] = {
            k: float(v) for k, v in logs.items() if np.isscalar(v) or np.ndim(v) == 0
        }
        # An epoch redone after a kill replaces its row (and any later one): one row per epoch.
        records = [r for r in history.read_history(self.workdir) if r["epoch"] < epoch]
        history.write_history(self.workdir, records + [record])
        flat = history.flat_record(record)
        with self._writer.as_default(step=epoch):
            for key, value in flat.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    tf.summary.scalar(f"val_full/{key}", value)
            for name, stats in summary["per_class"].items():
                if stats.get("mean_iou") is not None:
                    tf.summary.scalar(f"val_full_per_class_iou/{name}", stats["mean_iou"])
            if self.preview is not None:
                positions, images = self.preview
                tf.summary.image(
                    "val_predictions/true_green_predicted_red",
                    prediction_grid(
                        images,
                        self.true_boxes[positions],
                        self._predicted_boxes[positions],
                    ),
                    max_outputs=1,
                )
        self._writer.flush()

    def _line(self, epoch, s, improved):
        acc = s["iou_accuracy"]
        line = (
            f"[{self.stage} epoch {epoch}] val: mean IoU {s['mean_iou']:.3f} (median "
            f"{s['median_iou']:.3f}, class-avg {s['macro_mean_iou']:.3f}) | IoU>=0.5 "
            f"{acc['0.5']:.3f} 0.75 {acc['0.75']:.3f} 0.9 {acc['0.9']:.3f} | loc acc "
            f"{s['localization_accuracy']:.3f} | class acc {s['classification_accuracy']:.3f}"
        )
        if improved:
            line += f"  * best {self.best_metric}, saved {BEST_MODEL}"
        logging.debug(line)
        return line

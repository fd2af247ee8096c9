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

import csv
import json
import logging
import os

import keras
import numpy as np
import tensorflow as tf

from localizer.model import BOX, CLASS_BOXES, CLASS_LOGITS
from localizer.ops import statistics
from pipelines import files

HISTORY_JSONL = "metrics.jsonl"
HISTORY_CSV = "metrics.csv"
BEST_MODEL = "best.keras"

# Columns of metrics.csv, in order (per-class figures go to the JSONL only).
PREVIEW_IMAGES = 9  # the TensorBoard grid: 3 x 3 validation images
_TRUE_COLOUR, _PREDICTED_COLOUR = (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)

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


def save_model_atomically(model, path):
    """Writes `model` to `path` via a temporary file and a rename.

    A kill during the write leaves the previous file intact, never a corrupt one.
    """
    files.atomic_write(path, model.save)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose backups survive a kill at any moment.

    Keras writes the weights and the epoch metadata in place, one after the
    other: a SIGKILL during the write can leave a corrupt HDF5 file or weights
    and epoch that disagree. Here each
    epoch's weights go to their own file (temporary name, then rename), and
    only then does the metadata, itself replaced atomically, point at them.
    """

    def __init__(self, backup_dir, **kwargs):
        # Kept after fit: a kill between a stage's last epoch and its completion
        # marker must find the stage done, not start it again. The trainer removes
        # the backups once the run is complete.
        super().__init__(backup_dir, delete_checkpoint=False, **kwargs)
        self.resumed_epoch = 0  # epochs the restored backup had completed (read by training.loop)

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch-{self._current_epoch:05d}.weights.h5"
        files.atomic_write(os.path.join(self.backup_dir, name), self.model.save_weights)
        previous = self._read_metadata()
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name}
        files.write_json_atomically(self._training_metadata_path, metadata)
        if previous and previous.get("weights") not in (None, name):
            _remove_quietly(os.path.join(self.backup_dir, previous["weights"]))

    def _load_model(self):
        metadata = self._read_metadata()
        if not metadata or "weights" not in metadata:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, metadata["weights"]))
        self.model._initial_epoch = self.resumed_epoch = metadata[
            "epoch"
        ]  # Model.fit reads the former
        logging.info("Resumed from %s after epoch %d.", self.backup_dir, metadata["epoch"])

    def _read_metadata(self):
        if not os.path.exists(self._training_metadata_path):
            return None
        with open(self._training_metadata_path, encoding="utf-8") as f:
            return json.load(f)


def _ema_pairs(optimizer):
    """`[(weight, its moving average), ...]` of an optimizer built with `use_ema=True`."""
    averages = getattr(optimizer, "_model_variables_moving_average", None)
    if not averages:
        raise ValueError(
            "ema_momentum > 0 needs the optimizer's moving averages (AdamW(use_ema=True)), built."
        )
    return list(zip(optimizer._trainable_variables, averages))


def _swap_with_average(optimizer):
    """Exchanges the values of the trained weights and their moving averages."""
    for weight, average in _ema_pairs(optimizer):
        trained = weight.numpy()
        weight.assign(average)
        average.assign(trained)


class ValidateWithAverage(keras.callbacks.Callback):
    """At each epoch's end, the weights' moving average goes into the model until
    `RestoreTrainedWeights`.

    The callbacks listed between the two (the IoU callback: validation and
    best.keras) see the averaged weights; those after it (the backup) save the
    trained weights and their average as the optimizer holds them, so a
    resumed run continues exactly. After the stage's last epoch the average
    stays: it is what the stage hands on (final.keras, the next stage).
    Keras' SwapEMAWeights swaps for the callbacks after it, backups included,
    and so resumes from the average.
    """

    def on_epoch_end(self, epoch, logs=None):
        _swap_with_average(self.model.optimizer)


class RestoreTrainedWeights(keras.callbacks.Callback):
    """Undoes `ValidateWithAverage` after the callbacks between them; after the last epoch, keeps
    the average."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.params["epochs"]:
            _swap_with_average(self.model.optimizer)
            return
        for weight, trained in _ema_pairs(self.model.optimizer):
            trained.assign(
                weight
            )  # fit's finalize_variable_values then leaves the average in place


def completed_epochs(backup_dir):
    """`(epochs completed, weights file)` of an `AtomicBackupAndRestore` backup; `(0, None)` if
    none."""
    path = os.path.join(backup_dir, "training_metadata.json")
    try:
        with open(path, encoding="utf-8") as f:
            metadata = json.load(f)
    except FileNotFoundError:
        return 0, None
    weights = metadata.get("weights")
    return int(metadata.get("epoch", 0)), os.path.join(backup_dir, weights) if weights else None


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _flat(record):
    flat = {k: v for k, v in record.items() if k != "train"}
    for threshold, value in record["iou_accuracy"].items():
        flat[f"iou_acc_{threshold}"] = value
    return flat


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
            writer.writerows(_flat(r) for r in history)

    files.atomic_write(os.path.join(workdir, HISTORY_JSONL), jsonl)
    files.atomic_write(os.path.join(workdir, HISTORY_CSV), table)


def read_history(workdir):
    """The records of `metrics.jsonl` in `workdir` (empty if none)."""
    path = os.path.join(workdir, HISTORY_JSONL)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class IoUCallback(keras.callbacks.Callback):
    """Evaluates localization on the validation set and keeps the best model.

    Args:
      val_inputs: `tf.data.Dataset` of model inputs (images, or features for a
        features-only training view), batched, in a fixed order.
      true_labels: int `[N]` labels of those examples, same order.
      true_boxes: `[N, 4]` BOX_FORMAT boxes, same order.
      class_names: list of class names.
      workdir: where history files, TensorBoard logs and `best.keras` go.
      export_model: the inference model to save as best (shares weights with
        the model being trained).
      best_metric: key of `statistics.summarize` to maximize.
      every: evaluate every this many epochs (and always at the last).
      stage: a label written with each record ("frozen", "fine_tune").
      preview: optional `(positions, images uint8 [K, H, W, 3])` of validation
        examples (model-input frame) drawn into TensorBoard after each evaluation.
    """

    def __init__(
        self,
        val_inputs,
        true_labels,
        true_boxes,
        class_names,
        workdir,
        export_model,
        best_metric="localization_accuracy",
        every=1,
        stage="",
        total_epochs=None,
        preview=None,
    ):
        super().__init__()
        self.val_inputs = val_inputs
        self.true_labels = np.asarray(true_labels)
        self.true_boxes = np.asarray(true_boxes, np.float32)
        self.class_names = list(class_names)
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
        values = [r.get(self.best_metric) for r in read_history(self.workdir)]
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
            save_model_atomically(self.export_model, os.path.join(self.workdir, BEST_MODEL))
        self._record(epoch + 1, summary, logs or {})
        print(self._line(epoch + 1, summary, improved), flush=True)

    def _record(self, epoch, summary, logs):
        record = {"epoch": epoch, "stage": self.stage, **summary}
        record["train"] = {
            k: float(v) for k, v in logs.items() if np.isscalar(v) or np.ndim(v) == 0
        }
        # An epoch redone after a kill replaces its row (and any later one): one row per epoch.
        history = [r for r in read_history(self.workdir) if r["epoch"] < epoch] + [record]
        write_history(self.workdir, history)
        flat = _flat(record)
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
            f"[{self.stage} epoch {epoch}] val: mean IoU {s['mean_iou']:.3f} (median {s['median_iou']:.3f}, "
            f"class-avg {s['macro_mean_iou']:.3f}) | IoU>=0.5 {acc['0.5']:.3f} 0.75 {acc['0.75']:.3f} "
            f"0.9 {acc['0.9']:.3f} | loc acc {s['localization_accuracy']:.3f} | "
            f"class acc {s['classification_accuracy']:.3f}"
        )
        if improved:
            line += f"  * best {self.best_metric}, saved {BEST_MODEL}"
        logging.debug(line)
        return line

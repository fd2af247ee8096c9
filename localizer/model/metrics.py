"""Localization metrics: the streaming Keras metrics seen during training.

Boxes are `pipelines.boxes.BOX_FORMAT` (normalized `[ymin, xmin, ymax, xmax]`)
and every IoU here is `pipelines.boxes.iou`, so these metrics and the numpy
statistics of the evaluation (`localizer.ops.statistics.summarize`) agree exactly.

Streaming metrics (all subclass `keras.metrics.Mean`: a `total` and a `count`
variable, summed across replicas under `tf.distribute`, so the result is the
mean over all examples whatever the split):

  * `MeanBoxIoU` (`"mean_iou"`) on the `"box"` output;
  * `IoUAccuracy(t)` (`"acc_iou50"`, `"acc_iou75"`, ...) on the `"box"` output:
    fraction of examples with IoU >= t;
  * `LocalizationAccuracy` (`"loc_acc"`) on the `"localization"` output
    `[B, 4 + C]` = concat(box, logits) against `[B, 5]` = concat(box, label):
    the ILSVRC criterion, class right AND IoU >= 0.5.

Under `compile(metrics={"box": [...]})` Keras logs them prefixed by the output
name: `box_mean_iou`, `box_acc_iou50`, `localization_loc_acc` (`val_...` on
validation). All declare direction "up", so `ModelCheckpoint(mode="auto")`
maximizes them.
"""

import keras
from keras import ops

from localizer.model import losses as loss_lib
from localizer.ops.statistics import LOC_IOU_THRESHOLD
from pipelines import boxes as box_lib


def _box_ious(y_true, y_pred):
    """float32 IoU of aligned BOX_FORMAT boxes `[..., 4]` -> `[...]`."""
    return ops.cast(box_lib.iou(y_true, y_pred), "float32")


def localization_correct(y_true, y_pred, iou_threshold=LOC_IOU_THRESHOLD):
    """1.0 where the class is right AND IoU >= threshold, else 0.0.

    Args:
      y_true: `[..., 5]` = concat(true box BOX_FORMAT, float(label)).
      y_pred: `[..., 4 + C]` = concat(predicted box BOX_FORMAT, class logits).
      iou_threshold: the least IoU that counts as found.

    Returns:
      float32 `[...]`.
    """
    true_boxes, labels = loss_lib.split_box_and_label(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    pred_boxes = y_pred[..., :4]
    logits = ops.cast(y_pred[..., 4:], "float32")
    class_ok = ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), labels)
    box_ok = ops.greater_equal(_box_ious(true_boxes, pred_boxes), iou_threshold)
    return ops.cast(ops.logical_and(class_ok, box_ok), "float32")


class _MeanOfValues(keras.metrics.Mean):
    """A `Mean` of per-example values `self._values(y_true, y_pred)`."""

    def __init__(self, name, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self._direction = "up"

    def _values(self, y_true, y_pred):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(self._values(y_true, y_pred), sample_weight)


@keras.saving.register_keras_serializable(package="localizer")
class MeanBoxIoU(_MeanOfValues):
    """Mean IoU between true and predicted boxes, `[B, 4]` each (BOX_FORMAT)."""

    def __init__(self, name="mean_iou", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def _values(self, y_true, y_pred):
        return _box_ious(y_true, y_pred)


def _check_threshold(threshold, what):
    threshold = float(threshold)
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"{what} must be in (0, 1]; got {threshold}.")
    return threshold


@keras.saving.register_keras_serializable(package="localizer")
class IoUAccuracy(_MeanOfValues):
    """Fraction of examples whose box IoU >= `threshold`; `[B, 4]` each (BOX_FORMAT).

    Default name `f"acc_iou{round(threshold * 100)}"`, e.g. `"acc_iou75"`.
    """

    def __init__(self, threshold=0.5, name=None, dtype=None):
        threshold = _check_threshold(threshold, "threshold")
        super().__init__(name=name or f"acc_iou{round(threshold * 100)}", dtype=dtype)
        self.threshold = threshold

    def _values(self, y_true, y_pred):
        return ops.cast(ops.greater_equal(_box_ious(y_true, y_pred), self.threshold), "float32")

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


@keras.saving.register_keras_serializable(package="localizer")
class LocalizationAccuracy(_MeanOfValues):
    """ILSVRC localization accuracy on the `"localization"` output.

    y_true `[B, 5]` = concat(box, float(label)); y_pred `[B, 4 + C]` =
    concat(box, logits); boxes in BOX_FORMAT. An example is correct iff
    `argmax(logits) == label` and `IoU(box, true box) >= iou_threshold`.
    """

    def __init__(self, iou_threshold=LOC_IOU_THRESHOLD, name="loc_acc", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.iou_threshold = _check_threshold(iou_threshold, "iou_threshold")

    def _values(self, y_true, y_pred):
        return localization_correct(y_true, y_pred, self.iou_threshold)

    def get_config(self):
        return {**super().get_config(), "iou_threshold": self.iou_threshold}

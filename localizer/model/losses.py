"""Losses of the localizer: softmax cross-entropy plus one box regression loss.

The training objective is the multi-task loss of single-object localization

    Loss = alpha * softmax_loss + (1 - alpha) * box_loss

expressed with Keras' per-output `loss` and `loss_weights` (see
`combined_loss_weights`). Boxes are `pipelines.boxes.BOX_FORMAT`: normalized
`[ymin, xmin, ymax, xmax]`.

The pure functions return one value per example (`[B]`, or a scalar for an
unbatched example) and never reduce; the `keras.losses.Loss` wrappers return
the same per-example values from `call`, so Keras' own reduction, sample
weights and the scaling under `tf.distribute` apply unchanged. Everything is
written with `keras.ops` and computed in float32, whatever the dtype of the
inputs (mixed precision hands float16/bfloat16 outputs to the losses).
"""

import keras
from keras import ops

from localizer.model.outputs import BOX, CLASS_BOXES, CLASS_LOGITS
from pipelines import boxes as box_lib

BOX_OUTPUTS = (BOX, CLASS_BOXES)
"""Outputs a box loss can be attached to: class-agnostic `[B, 4]`, per-class `[B, C, 4]`."""

BOX_LOSSES = ("l2", "smooth_l1", "giou", "diou", "ciou")
"""Kinds accepted by `box_regression_loss`, `BoxLoss` and `PerClassBoxLoss`."""

SMOOTH_L1_BETA = 0.05
"""Default smooth-L1 transition point, in normalized image units.

Fast R-CNN's beta = 1 was chosen for box *deltas* scaled to about unit
variance. Here the coordinates are fractions of the image, so every error is
below 1 and beta = 1 would make smooth-L1 a purely quadratic (L2 / 2) loss.
With 0.05 the loss is linear (L1, gradient of magnitude 1, robust to the large
errors of early training) beyond 5 % of the image side, about 11 pixels at
224, and quadratic (smooth gradient that vanishes at the optimum) within it.
"""


def _float32(x):
    return ops.cast(ops.convert_to_tensor(x), "float32")


def _int_labels(labels, batch_rank):
    """Int32 labels of rank `batch_rank`; accepts `[B]`, `[B, 1]` and float labels."""
    labels = ops.convert_to_tensor(labels)
    if len(ops.shape(labels)) == batch_rank + 1 and ops.shape(labels)[-1] == 1:
        labels = ops.squeeze(labels, axis=-1)
    if len(ops.shape(labels)) != batch_rank:
        raise ValueError(
            f"Labels must have shape [B] or [B, 1] for logits of batch rank "
            f"{batch_rank}; got shape {ops.shape(labels)}."
        )
    if "float" in str(labels.dtype):
        # Keras' Loss.__call__ and the concatenated [box, label] targets carry
        # labels as floats; round before casting so 2.9999998 becomes 2.
        labels = ops.round(labels)
    return ops.cast(labels, "int32")


def softmax_cross_entropy(labels, logits, label_smoothing=0.0):
    """Softmax cross-entropy per example, with optional label smoothing.

    Smoothing follows Szegedy et al. (2016): the target distribution is
    `(1 - eps) * one_hot(label) + eps / C`.

    Args:
      labels: int class ids `[B]` or `[B, 1]` (floats holding integers are accepted).
      logits: unnormalized scores `[B, C]` (any float dtype; computed in float32).
      label_smoothing: `eps` in [0, 1].

    Returns:
      float32 `[B]` losses (a scalar for unbatched `[C]` logits).
    """
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1]; got {label_smoothing}.")
    logits = _float32(logits)
    num_classes = ops.shape(logits)[-1]
    labels = _int_labels(labels, len(ops.shape(logits)) - 1)
    targets = ops.one_hot(labels, num_classes, dtype="float32")
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / num_classes
    return -ops.sum(targets * ops.log_softmax(logits, axis=-1), axis=-1)


def _smooth_l1(diff, beta):
    """Elementwise smooth-L1 (Girshick 2015; PyTorch's form): L1 slope beyond `beta`."""
    abs_diff = ops.abs(diff)
    if beta == 0.0:
        return abs_diff
    return ops.where(abs_diff < beta, 0.5 * diff * diff / beta, abs_diff - 0.5 * beta)


def box_regression_loss(kind, true_boxes, pred_boxes, smooth_l1_beta=SMOOTH_L1_BETA):
    """Box regression loss per example for aligned boxes `[..., 4]` -> `[...]`.

    Kinds (`BOX_LOSSES`):
      * `"l2"`: sum over the 4 coordinates of the squared error;
      * `"smooth_l1"`: sum over the 4 coordinates of smooth-L1 with
        `smooth_l1_beta` (`0.5 d^2 / beta` if `|d| < beta`, else `|d| - beta / 2`);
      * `"giou"`, `"diou"`, `"ciou"`: `1 - ` that IoU variant from
        `pipelines.boxes` (GIoU loss lies in [0, 2]; above 1 for disjoint boxes).

    Args:
      kind: one of `BOX_LOSSES`.
      true_boxes: ground truth, BOX_FORMAT `[..., 4]`.
      pred_boxes: predictions, BOX_FORMAT `[..., 4]` (any float dtype).
      smooth_l1_beta: smooth-L1 transition point (>= 0; 0 is plain L1).

    Returns:
      float32 `[...]` (one value per box).
    """
    if kind not in BOX_LOSSES:
        raise ValueError(f"Unknown box loss {kind!r}; choose one of {BOX_LOSSES}.")
    if kind in ("giou", "diou", "ciou"):
        iou_fn = getattr(box_lib, kind)
        return 1.0 - iou_fn(true_boxes, pred_boxes)
    true_boxes = box_lib.check_boxes_any_backend(true_boxes, "true_boxes")
    pred_boxes = box_lib.check_boxes_any_backend(pred_boxes, "pred_boxes")
    diff = pred_boxes - true_boxes
    if kind == "l2":
        return ops.sum(diff * diff, axis=-1)
    if smooth_l1_beta < 0:
        raise ValueError(f"smooth_l1_beta must be >= 0; got {smooth_l1_beta}.")
    return ops.sum(_smooth_l1(diff, float(smooth_l1_beta)), axis=-1)


def select_class_boxes(class_boxes, labels):
    """Picks each example's box of class `labels`: `[B, C, 4]`, `[B]` -> `[B, 4]`.

    A gather (`take_along_axis`), so the gradient reaches only the selected
    class's box; the other C - 1 boxes get exactly zero (not NaN, even if
    they hold inf). Also accepts `[C, 4]` with a scalar label, and `[B, 1]` labels.
    """
    class_boxes = _float32(class_boxes)
    shape = ops.shape(class_boxes)
    if len(shape) < 2 or shape[-1] != 4:
        raise ValueError(
            f"`class_boxes` must have shape [..., C, 4] ({box_lib.BOX_FORMAT}); got shape {shape}."
        )
    labels = _int_labels(labels, len(shape) - 2)
    index = ops.expand_dims(ops.expand_dims(labels, -1), -1)  # [..., 1, 1]
    picked = ops.take_along_axis(class_boxes, index, axis=-2)  # [..., 1, 4]
    return ops.squeeze(picked, axis=-2)


def split_box_and_label(y_true):
    """Splits a `[..., 5]` target `concat(box, float(label))` into `([..., 4], [...])`."""
    y_true = ops.convert_to_tensor(y_true)
    if ops.shape(y_true)[-1] != 5:
        raise ValueError(
            "Targets of 'class_boxes' and 'localization' must have shape [..., 5] "
            f"= concat(box {box_lib.BOX_FORMAT}, label); got shape {ops.shape(y_true)}."
        )
    return _float32(y_true[..., :4]), _int_labels(y_true[..., 4], len(ops.shape(y_true)) - 1)


def combined_loss_weights(alpha, box_output=BOX):
    """`loss_weights` for `Loss = alpha * softmax_loss + (1 - alpha) * box_loss`.

    Args:
      alpha: weight of the classification loss, in [0, 1].
      box_output: the output the box loss is attached to, one of `BOX_OUTPUTS`
        (`"box"` for a class-agnostic head, `"class_boxes"` for per-class).

    Returns:
      `{"class_logits": alpha, box_output: 1 - alpha}` (Python floats).
    """
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}.")
    if box_output not in BOX_OUTPUTS:
        raise ValueError(f"Unknown box output {box_output!r}; choose one of {BOX_OUTPUTS}.")
    return {CLASS_LOGITS: alpha, box_output: 1.0 - alpha}


@keras.saving.register_keras_serializable(package="localizer")
class ClassificationLoss(keras.losses.Loss):
    """Softmax cross-entropy on logits `[B, C]` against int labels `[B]` or `[B, 1]`."""

    def __init__(self, label_smoothing=0.0, name="classification_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1]; got {label_smoothing}.")
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        return softmax_cross_entropy(y_true, y_pred, self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class _BoxLossBase(keras.losses.Loss):
    """Holds and validates `kind` and `smooth_l1_beta` for the two box losses."""

    def __init__(self, kind, smooth_l1_beta, name, **kwargs):
        super().__init__(name=name, **kwargs)
        if kind not in BOX_LOSSES:
            raise ValueError(f"Unknown box loss {kind!r}; choose one of {BOX_LOSSES}.")
        if smooth_l1_beta < 0:
            raise ValueError(f"smooth_l1_beta must be >= 0; got {smooth_l1_beta}.")
        self.kind = kind
        self.smooth_l1_beta = float(smooth_l1_beta)

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "smooth_l1_beta": self.smooth_l1_beta,
        }


@keras.saving.register_keras_serializable(package="localizer")
class BoxLoss(_BoxLossBase):
    """Class-agnostic box loss: y_true `[B, 4]`, y_pred `[B, 4]`, both BOX_FORMAT."""

    def __init__(self, kind="giou", smooth_l1_beta=SMOOTH_L1_BETA, name="box_loss", **kwargs):
        super().__init__(kind, smooth_l1_beta, name=name, **kwargs)

    def call(self, y_true, y_pred):
        return box_regression_loss(self.kind, y_true, y_pred, self.smooth_l1_beta)


@keras.saving.register_keras_serializable(package="localizer")
class PerClassBoxLoss(_BoxLossBase):
    """Per-class box loss on the ground-truth class's box.

    y_true `[B, 5]` = concat(box BOX_FORMAT, float(label)); y_pred `[B, C, 4]`
    (one BOX_FORMAT box per class). Only the box of the true class is
    regressed; the other classes' boxes receive no gradient.
    """

    def __init__(self, kind="giou", smooth_l1_beta=SMOOTH_L1_BETA, name="class_box_loss", **kwargs):
        super().__init__(kind, smooth_l1_beta, name=name, **kwargs)

    def call(self, y_true, y_pred):
        true_boxes, labels = split_box_and_label(y_true)
        pred_boxes = select_class_boxes(y_pred, labels)
        return box_regression_loss(self.kind, true_boxes, pred_boxes, self.smooth_l1_beta)


# ----------------------------------------------------------------------------
# The centre-weighted head's auxiliary losses (model attach="centre_weighted")
# ----------------------------------------------------------------------------

CENTRE_SIGMA_FRACTION = 0.15
"""Width of the centre target: the Gaussian's sigma per axis, as a fraction of the box's side.

At least half a cell, so a box smaller than a cell still has a peaked,
well-defined target. 0.15 puts ~90 % of the mass within the central 50 % of
the box: the cells whose receptive fields see most of the object.
"""


def centre_target(true_boxes, height, width, sigma_fraction=CENTRE_SIGMA_FRACTION):
    """A distribution over the `height x width` cells peaked at each box's centre.

    Args:
      true_boxes: BOX_FORMAT `[B, 4]`.
      height: the grid's rows.
      width: the grid's columns.
      sigma_fraction: the Gaussian's standard deviation along each axis, as a fraction of the
        box's extent along it (at least half a cell).

    Returns:
      float32 `[B, height, width]`, summing to 1 over the cells of each example.
    """
    true_boxes = box_lib.check_boxes_any_backend(_float32(true_boxes), "true_boxes")
    cy, cx = box_lib.grid_centres(height), box_lib.grid_centres(width)
    box_cy = (true_boxes[:, 0] + true_boxes[:, 2]) / 2.0
    box_cx = (true_boxes[:, 1] + true_boxes[:, 3]) / 2.0
    sigma_y = ops.maximum((true_boxes[:, 2] - true_boxes[:, 0]) * sigma_fraction, 0.5 / height)
    sigma_x = ops.maximum((true_boxes[:, 3] - true_boxes[:, 1]) * sigma_fraction, 0.5 / width)
    log_y = -0.5 * ops.square((cy[None, :] - box_cy[:, None]) / sigma_y[:, None])  # [B, h]
    log_x = -0.5 * ops.square((cx[None, :] - box_cx[:, None]) / sigma_x[:, None])  # [B, w]
    logits = log_y[:, :, None] + log_x[:, None, :]
    return ops.reshape(
        ops.softmax(ops.reshape(logits, (-1, height * width)), axis=-1), (-1, height, width)
    )


def _grid(y_pred):
    shape = ops.shape(y_pred)
    if len(shape) != 4:
        raise ValueError(f"Expected a per-cell map [B, h, w, channels]; got shape {shape}.")
    return shape[1], shape[2]


def centre_loss(true_boxes, centre_logits):
    """KL(target || softmax(logits)) over cells per example; logits `[B, h, w, 1]` -> `[B]`.

    Zero exactly when the predicted distribution equals `centre_target`.
    """
    height, width = _grid(centre_logits)
    target = ops.reshape(centre_target(true_boxes, height, width), (-1, height * width))
    log_p = ops.log_softmax(ops.reshape(_float32(centre_logits), (-1, height * width)), axis=-1)
    return ops.sum(target * (ops.log(ops.maximum(target, 1e-12)) - log_p), axis=-1)


def cell_box_loss(kind, true_boxes, cell_boxes, smooth_l1_beta=SMOOTH_L1_BETA):
    """Every cell's box against the true box, weighted by `centre_target`: `[B, h, w, 4]` -> `[B]`.

    Cells near the object's centre must each predict the whole box; far cells
    are free (they get ~zero weight and, at inference, ~zero attention).
    """
    height, width = _grid(cell_boxes)
    weights = centre_target(true_boxes, height, width)
    true = ops.broadcast_to(_float32(true_boxes)[:, None, None, :], ops.shape(cell_boxes))
    per_cell = box_regression_loss(kind, true, cell_boxes, smooth_l1_beta)
    return ops.sum(ops.reshape(per_cell * weights, (-1, height * width)), axis=-1)


@keras.saving.register_keras_serializable(package="localizer")
class CentreLoss(keras.losses.Loss):
    """`centre_loss`: y_true BOX_FORMAT `[B, 4]`, y_pred centre logits `[B, h, w, 1]`."""

    def __init__(self, name="centre_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return centre_loss(y_true, y_pred)


@keras.saving.register_keras_serializable(package="localizer")
class CellBoxLoss(_BoxLossBase):
    """`cell_box_loss`: y_true BOX_FORMAT `[B, 4]`, y_pred per-cell boxes `[B, h, w, 4]`."""

    def __init__(self, kind="giou", smooth_l1_beta=SMOOTH_L1_BETA, name="cell_box_loss", **kwargs):
        super().__init__(kind, smooth_l1_beta, name=name, **kwargs)

    def call(self, y_true, y_pred):
        return cell_box_loss(self.kind, y_true, y_pred, self.smooth_l1_beta)


# ----------------------------------------------------------------------------
# The box-quality head's loss (model box_quality=True)
# ----------------------------------------------------------------------------


def box_quality_loss(true_boxes, quality_and_box):
    """Binary cross-entropy of the predicted quality against the box's IoU with the truth: `[B]`.

    Args:
      true_boxes: BOX_FORMAT `[B, 4]`.
      quality_and_box: `[B, 5]` = concat(quality in [0, 1], predicted box BOX_FORMAT).

    The target, IoU(predicted box, true box), is computed with the gradient
    stopped: the loss trains the quality to match the box, never the box to
    match the quality. A soft-target cross-entropy (as VarifocalNet's
    IoU-aware score and YOLO's IoU-weighted objectness): its gradient in the
    logit is quality - IoU, and it is minimal where the two are equal.
    """
    quality_and_box = _float32(quality_and_box)
    if ops.shape(quality_and_box)[-1] != 5:
        raise ValueError(
            f"The box-quality output must have shape [..., 5] = concat(quality, box "
            f"{box_lib.BOX_FORMAT}); got shape {ops.shape(quality_and_box)}."
        )
    quality = ops.clip(quality_and_box[..., 0], 1e-7, 1.0 - 1e-7)
    target = ops.stop_gradient(box_lib.iou(_float32(true_boxes), quality_and_box[..., 1:]))
    return -(target * ops.log(quality) + (1.0 - target) * ops.log(1.0 - quality))


@keras.saving.register_keras_serializable(package="localizer")
class BoxQualityLoss(keras.losses.Loss):
    """`box_quality_loss`: y_true BOX_FORMAT `[B, 4]`, y_pred `[B, 5]` = concat(quality, box)."""

    def __init__(self, name="box_quality_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return box_quality_loss(y_true, y_pred)

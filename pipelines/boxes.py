"""The library's one box convention and the pure functions on boxes.

Inside `localizer` and `pipelines` a box is `BOX_FORMAT`: normalized
`[ymin, xmin, ymax, xmax]`, each coordinate in [0, 1] relative to the image
height (y) or width (x). This is the TensorFlow Datasets convention and Keras'
`"rel_yxyx"`. Other formats (VOC and CSV pixel `xmin, ymin, xmax, ymax`, the
pixel `xyxy` of predict's output) are converted at the edges with
`to_internal` / `from_internal`, which wrap
`keras.utils.bounding_boxes.convert_format`.

Every function here takes boxes of shape `[..., 4]` and checks the last
dimension. Geometry used by the input pipeline (sanitize, flip, reframe) is
written with TensorFlow ops so it runs inside `tf.data`; the IoU family used by
losses and metrics is written with `keras.ops` so it runs on any backend.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

BOX_FORMAT = "rel_yxyx"
"""Normalized [ymin, xmin, ymax, xmax] in [0, 1]: the only format used inside."""

PIXEL_XYXY = "xyxy"
"""Pixel [xmin, ymin, xmax, ymax]: VOC XML, CSV files and predict's pixel output."""

PIXEL_XYWH = "xywh"
"""Pixel [x, y, width, height] of the top-left corner: COCO JSON `bbox`."""

RELATIVE_CENTER_XYWH = "rel_center_xywh"
"""Normalized [x centre, y centre, width, height]: YOLO (Ultralytics) label files."""

RELATIVE_XYWH = "rel_xywh"
"""Normalized [x, y, width, height] of the top-left corner: Label Studio's regions (in percent)."""

MIN_BOX_SIZE = 1e-3
"""Boxes thinner or shorter than this (normalized) are degenerate and dropped."""

UNIT_BOX = (0.0, 0.0, 1.0, 1.0)
"""The whole image, in BOX_FORMAT."""

_EPS = 1e-7


def check_boxes(boxes, name="boxes"):
    """Returns `boxes` as a float32 tensor; raises if the last dimension is not 4."""
    boxes = tf.convert_to_tensor(boxes)
    if boxes.shape.rank == 0 or (boxes.shape[-1] is not None and boxes.shape[-1] != 4):
        raise ValueError(
            f"`{name}` must have shape [..., 4] ({BOX_FORMAT}); got shape {boxes.shape}."
        )
    return tf.cast(boxes, tf.float32)


def check_boxes_any_backend(boxes, name):
    """Like `check_boxes` but keeps the backend's tensor type (for losses/metrics)."""
    boxes = ops.convert_to_tensor(boxes)
    shape = ops.shape(boxes)
    if len(shape) == 0 or (shape[-1] is not None and shape[-1] != 4):
        raise ValueError(f"`{name}` must have shape [..., 4] ({BOX_FORMAT}); got shape {shape}.")
    return ops.cast(boxes, "float32")


def to_internal(boxes, source_format, height, width):
    """Converts pixel boxes of `source_format` (a Keras format name) to BOX_FORMAT."""
    boxes = check_boxes(boxes)
    return keras.utils.bounding_boxes.convert_format(
        boxes, source=source_format, target=BOX_FORMAT, height=height, width=width
    )


def rounded_pixel_xyxy(box, height, width):
    """One BOX_FORMAT box as pixel `[xmin, ymin, xmax, ymax]` floats rounded to 0.1 px, for an
    image of `height` x `width`: what predict's JSON and the audit's table print."""
    xyxy = from_internal(np.asarray(box, np.float32), PIXEL_XYXY, int(height), int(width))
    return [round(float(v), 1) for v in xyxy]


def from_internal(boxes, target_format, height, width):
    """Converts BOX_FORMAT boxes to `target_format` (e.g. PIXEL_XYXY) for an image."""
    boxes = check_boxes(boxes)
    return keras.utils.bounding_boxes.convert_format(
        boxes, source=BOX_FORMAT, target=target_format, height=height, width=width
    )


def sanitize(boxes, min_size=MIN_BOX_SIZE):
    """Repairs boxes that can be repaired and flags those that cannot.

    Swaps inverted corners, clips to the image and marks as invalid the boxes
    whose height or width is below `min_size` after that (degenerate boxes,
    boxes wholly outside the image, NaN coordinates).

    Args:
      boxes: `[..., 4]` boxes in BOX_FORMAT, possibly inverted or out of range.
      min_size: smallest normalized height and width that a valid box has.

    Returns:
      `(boxes, valid)`: the repaired boxes `[..., 4]` and a bool `[...]` mask.
    """
    boxes = check_boxes(boxes)
    y_a, x_a, y_b, x_b = tf.unstack(boxes, axis=-1)
    ymin = tf.clip_by_value(tf.minimum(y_a, y_b), 0.0, 1.0)
    xmin = tf.clip_by_value(tf.minimum(x_a, x_b), 0.0, 1.0)
    ymax = tf.clip_by_value(tf.maximum(y_a, y_b), 0.0, 1.0)
    xmax = tf.clip_by_value(tf.maximum(x_a, x_b), 0.0, 1.0)
    repaired = tf.stack([ymin, xmin, ymax, xmax], axis=-1)
    # NaN compares False, so a NaN coordinate makes the box invalid here.
    valid = (ymax - ymin >= min_size) & (xmax - xmin >= min_size)
    return repaired, valid


def clip_to_image(boxes, min_size=MIN_BOX_SIZE):
    """Clips BOX_FORMAT boxes `[..., 4]` to the image, leaving each side at least `min_size` long.

    The one rule for a predicted box mapped back to its image
    (`pipelines.render.to_original_frame`), where it may lie partly or wholly
    in the letterbox padding or past a zoom window's edge. Each axis is
    clipped to [0, 1]; an axis then shorter than `min_size` (the box lay in
    the padding, or was inverted) becomes `min_size` long around where the
    clipped box was, inside the image. So no prediction is a line or a point:
    a merge of views that weighs each box by its IoU with the first would
    otherwise find a zero-area box disagreeing with itself (0 / 0), and a zoom
    window around it would be placed by that accident. The map is continuous:
    rounding near the image's edge moves the result no more than the input.
    """
    boxes = check_boxes(boxes)
    half = min_size / 2.0
    low = tf.clip_by_value(boxes[..., :2], 0.0, 1.0)  # (ymin, xmin)
    high = tf.clip_by_value(boxes[..., 2:], 0.0, 1.0)  # (ymax, xmax)
    centre = tf.clip_by_value((low + high) / 2.0, half, 1.0 - half)
    short = high - low < min_size
    return tf.concat(
        [tf.where(short, centre - half, low), tf.where(short, centre + half, high)], axis=-1
    )


def flip_left_right(boxes):
    """Mirrors BOX_FORMAT boxes as `tf.image.flip_left_right` mirrors the image."""
    boxes = check_boxes(boxes)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], axis=-1)


def reframe(boxes, window):
    """Expresses boxes in the frame of `window`.

    `window` is a BOX_FORMAT box in the current frame (it may reach outside
    [0, 1]); the result is where `boxes` lie once `window` becomes the whole
    image. Cropping to a window, padding onto a larger canvas (the window then
    reaches past [0, 1]) and letterboxing are all this one mapping, and
    `reframe(reframe(b, w), invert_window(w)) == b`. No clipping is done.
    """
    boxes = check_boxes(boxes)
    window = check_boxes(window, "window")
    wy0, wx0, wy1, wx1 = tf.unstack(window, axis=-1)
    origin = tf.stack([wy0, wx0, wy0, wx0], axis=-1)
    scale = tf.stack([wy1 - wy0, wx1 - wx0, wy1 - wy0, wx1 - wx0], axis=-1)
    return (boxes - origin) / scale


def invert_window(window):
    """The window that undoes `reframe(·, window)`: the old frame seen from the new."""
    window = check_boxes(window, "window")
    unit = tf.broadcast_to(tf.constant(UNIT_BOX), tf.shape(window))
    return reframe(unit, window)


def area(boxes):
    """Area of BOX_FORMAT boxes `[..., 4]` -> `[...]` (zero for inverted boxes)."""
    boxes = check_boxes_any_backend(boxes, "boxes")
    height = ops.maximum(boxes[..., 2] - boxes[..., 0], 0.0)
    width = ops.maximum(boxes[..., 3] - boxes[..., 1], 0.0)
    return height * width


def intersection(boxes1, boxes2):
    """Area of the overlap of aligned BOX_FORMAT boxes: `[..., 4]` x `[..., 4]` -> `[...]`."""
    b1 = check_boxes_any_backend(boxes1, "boxes1")
    b2 = check_boxes_any_backend(boxes2, "boxes2")
    inter_h = ops.maximum(
        ops.minimum(b1[..., 2], b2[..., 2]) - ops.maximum(b1[..., 0], b2[..., 0]), 0.0
    )
    inter_w = ops.maximum(
        ops.minimum(b1[..., 3], b2[..., 3]) - ops.maximum(b1[..., 1], b2[..., 1]), 0.0
    )
    return inter_h * inter_w


def iou(boxes1, boxes2):
    """Intersection over union of aligned boxes: `[..., 4]` x `[..., 4]` -> `[...]`.

    Element i of `boxes1` is compared with element i of `boxes2` (not every
    pair, unlike `keras.utils.bounding_boxes.compute_iou`). Both in BOX_FORMAT.
    """
    return _iou_terms(boxes1, boxes2)["iou"]


def _iou_terms(boxes1, boxes2):
    """IoU and the terms the GIoU/DIoU/CIoU family adds to it, for aligned boxes."""
    b1 = check_boxes_any_backend(boxes1, "boxes1")
    b2 = check_boxes_any_backend(boxes2, "boxes2")
    overlap = intersection(b1, b2)
    union = area(b1) + area(b2) - overlap
    # Smallest box enclosing both.
    enclose_h = ops.maximum(b1[..., 2], b2[..., 2]) - ops.minimum(b1[..., 0], b2[..., 0])
    enclose_w = ops.maximum(b1[..., 3], b2[..., 3]) - ops.minimum(b1[..., 1], b2[..., 1])
    return {
        "iou": overlap / (union + _EPS),
        "union": union,
        "enclose_area": enclose_h * enclose_w,
        "enclose_diag2": enclose_h**2 + enclose_w**2,
        "centre_dist2": ((b1[..., 0] + b1[..., 2]) - (b2[..., 0] + b2[..., 2])) ** 2 / 4
        + ((b1[..., 1] + b1[..., 3]) - (b2[..., 1] + b2[..., 3])) ** 2 / 4,
        "b1": b1,
        "b2": b2,
    }


def giou(boxes1, boxes2):
    """Generalized IoU (Rezatofighi et al. 2019) of aligned boxes, in [-1, 1]."""
    t = _iou_terms(boxes1, boxes2)
    return t["iou"] - (t["enclose_area"] - t["union"]) / (t["enclose_area"] + _EPS)


def diou(boxes1, boxes2):
    """Distance IoU (Zheng et al. 2020): IoU minus normalized centre distance."""
    t = _iou_terms(boxes1, boxes2)
    return t["iou"] - t["centre_dist2"] / (t["enclose_diag2"] + _EPS)


def ciou(boxes1, boxes2):
    """Complete IoU (Zheng et al. 2020): DIoU minus an aspect-ratio consistency term."""
    t = _iou_terms(boxes1, boxes2)
    b1, b2 = t["b1"], t["b2"]
    h1, w1 = b1[..., 2] - b1[..., 0], b1[..., 3] - b1[..., 1]
    h2, w2 = b2[..., 2] - b2[..., 0], b2[..., 3] - b2[..., 1]
    v = (4.0 / (3.141592653589793**2)) * (
        ops.arctan(w1 / (h1 + _EPS)) - ops.arctan(w2 / (h2 + _EPS))
    ) ** 2
    # alpha is a weight, not a path for gradients (as in the paper).
    alpha = ops.stop_gradient(v / (1.0 - t["iou"] + v + _EPS))
    return t["iou"] - t["centre_dist2"] / (t["enclose_diag2"] + _EPS) - alpha * v


def grid_centres(count):
    """Normalized centres of `count` equal cells along one axis: `(i + 0.5) / count`, float32
    `[count]`.

    The one definition of a feature-map cell's position, shared by the dense
    head's per-cell boxes (`localizer.layers`) and their training targets
    (`localizer.model.losses`), which must agree.
    """
    return (ops.cast(ops.arange(count), "float32") + 0.5) / ops.cast(count, "float32")

"""Views of an image and how their predictions merge: the inference computation
that evaluate, predict and the serving graph share.

An image is shown to the model as one or more *views*; each view is a window
of the original image (BOX_FORMAT, may reach outside it) rendered at the
model's input size exactly as training renders images (`pipelines.render.render`),
optionally mirrored. Every view's box is mapped back to the original image and
the views are merged:

  none       the whole image, letterboxed (or stretched) as in training
  flip       the whole image and its mirror image, averaged
  multicrop  Overfeat's idea: the whole image plus four corner crops and a
             centre crop, each 70% of the image side (seen 1.4x larger);
             boxes combined, weighted by each view's confidence in the
             merged class

Refinement (`refine=True`, any mode): a second look. A square window around
the merged box (`pipelines.render.zoom_window`: `ZOOM_CONTEXT` times its
longer side, at least a fraction of the image) is rendered at the input size, so a small
object fills far more of the model's grid. The two looks' boxes are merged by
`REFINE_RULE` (`merge_refinement`), and the class probabilities of both looks
are averaged. It pays where objects are small.

`look_at_views` and `zoomed_look` are that computation, for any `run_model`
(a Keras model, a SavedModel signature or the serving graph's own call):
`images uint8 [N, S, S, 3] -> Look` (boxes in the input frame). Their results are named:
`Views` (rendered views), `ZoomViews` (the second look's) and `Look` (boxes, probabilities,
per-class boxes and box quality, the last two None where the model has no such output).

The box quality (the model's predicted IoU of its box, for models that have
it) follows the box. Views merged into one box give the same weighted mean of
their qualities as of their boxes (with one view, that view's); refinement
gives the kept look's quality, or the blend's weighted mean of the two, or
(`BY_QUALITY`, looks that disagree) the lower of the two.

Boxes everywhere are BOX_FORMAT (normalized yxyx).
"""

from typing import NamedTuple

import tensorflow as tf

from pipelines import boxes as box_lib
from pipelines import render

TTA_MODES = ("none", "flip", "multicrop")

AGREEMENT_IOU = 0.5
"""A view's box is merged only if it overlaps the whole-image view's box this much."""


CROP_FRACTION = 0.7
"""Side of each multicrop crop, as a fraction of the image side."""


class Views(NamedTuple):
    """Rendered views of an image (`[V, ...]`) or of a batch of images (`[B, V, ...]`)."""

    inputs: tf.Tensor
    """uint8 `[..., V, S, S, 3]`: what the model sees."""
    windows: tf.Tensor
    """`[..., V, 4]`: the window of the original image each view shows (BOX_FORMAT)."""
    mirrored: tf.Tensor
    """bool `[..., V]`: whether the view is mirrored left-right."""


class ZoomViews(NamedTuple):
    """The refinement view of an image (`[S, S, 3]`, `[4]`) or of each image of a batch."""

    inputs: tf.Tensor
    """uint8 `[..., S, S, 3]`."""
    windows: tf.Tensor
    """`[..., 4]`: the window of the original image each shows (BOX_FORMAT)."""


class Look(NamedTuple):
    """What the model made of a batch of images: its boxes, class probabilities and, for models
    with those outputs, per-class boxes and box quality (else None).

    A model's raw look (`run_model`) is in its input frame; a merged look (`look_at_views`,
    `zoomed_look`, `merge_views`, `merge_refinement`) in the original image's.
    """

    boxes: tf.Tensor
    """`[B, 4]` BOX_FORMAT."""
    probabilities: tf.Tensor
    """`[B, C]` class probabilities."""
    class_boxes: tf.Tensor | None = None
    """`[B, C, 4]`: the box of every class (per-class heads), or None."""
    quality: tf.Tensor | None = None
    """`[B]`: the predicted IoU of the box (box-quality heads), or None."""


def view_crops(mode):
    """`[(crop window in original coordinates, mirrored), ...]` for a TTA mode."""
    if mode not in TTA_MODES:
        raise ValueError(f"Unknown TTA mode {mode!r}; expected one of {TTA_MODES}.")
    whole = box_lib.UNIT_BOX
    if mode == "none":
        return [(whole, False)]
    if mode == "flip":
        return [(whole, False), (whole, True)]
    f, rest = CROP_FRACTION, 1.0 - CROP_FRACTION
    centre = (rest / 2, rest / 2, rest / 2 + f, rest / 2 + f)
    corners = [(0.0, 0.0, f, f), (0.0, rest, f, 1.0), (rest, 0.0, 1.0, f), (rest, rest, 1.0, 1.0)]
    return [(whole, False)] + [(c, False) for c in corners] + [(centre, False)]


def render_views(image, image_size, resize_mode, mode):
    """Renders the views of one decoded image.

    Returns:
      `Views`: uint8 inputs `[V, S, S, 3]`, the `[V, 4]` windows actually shown (original
      coordinates) and mirrored, bool `[V]`.
    """
    inputs, windows, mirrored = [], [], []
    for crop, flip in view_crops(mode):
        rendered, window = render_crop(
            image, tf.constant(crop, tf.float32), image_size, resize_mode
        )
        inputs.append(tf.reverse(rendered, axis=[1]) if flip else rendered)
        windows.append(window)
        mirrored.append(flip)
    return Views(tf.stack(inputs), tf.stack(windows), tf.constant(mirrored))


def render_crop(image, crop, image_size, resize_mode):
    """Renders `crop` (a window of `image`) as training renders whole images: `(uint8 [S, S, 3],
    window)`."""
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    crop_pixels = tf.stack([crop[2] - crop[0], crop[3] - crop[1]]) * size
    frame = render.resize_window(crop_pixels, image_size, resize_mode)
    return render.render(image, box_lib.reframe(frame, box_lib.invert_window(crop)), image_size)


def render_zoom_view(image, box, image_size, resize_mode):
    """The refinement view of one decoded image around its first `box`: `ZoomViews` (uint8
    `[S, S, 3]`, window `[4]`)."""
    return ZoomViews(
        *render_crop(image, render.zoom_window(box, tf.shape(image)[:2]), image_size, resize_mode)
    )


def render_zoom_views(images, original_sizes, boxes, image_size, resize_mode):
    """The refinement view of each image of a padded batch: `ZoomViews` (inputs `[B, S, S, 3]`,
    windows `[B, 4]`)."""

    def one(args):
        image, original_size, box = args
        return render_zoom_view(
            image[: original_size[0], : original_size[1]], box, image_size, resize_mode
        )

    return tf.map_fn(
        one,
        (images, original_sizes, boxes),
        fn_output_signature=ZoomViews(
            tf.TensorSpec([image_size, image_size, 3], tf.uint8),
            tf.TensorSpec([4], tf.float32),
        ),
    )


AGREEMENT = "agreement"
"""The zoomed box where the two looks agree (IoU >= `AGREEMENT_IOU`), else the first."""
BY_QUALITY = "quality"
"""By the predicted box quality: where the looks agree, their boxes (and qualities) averaged
weighted
by their qualities; where they disagree, the box of the look the model rates higher, with the lower
of the two qualities (disagreement is doubt: on realmix it ranks the boxes better than the
higher)."""
REFINE_RULES = (AGREEMENT, BY_QUALITY)
REFINE_RULE = BY_QUALITY
"""How the two looks merge for models with a box-quality head (the others: `AGREEMENT`). On realmix,
better than `AGREEMENT` on train and val (experiments/RESULTS.md, "Test-time augmentation")."""


def merge_refinement(first, zoom, rule=REFINE_RULE, agreement_iou=AGREEMENT_IOU):
    """Merges the `first` and the `zoom`ed look (`Look`s of `[B]` images, original frame) by
    `rule`; the probabilities are averaged, class boxes are not merged.

    Returns a `Look` without class boxes (its quality None unless both looks have one; the rule is
    then `AGREEMENT`).
    """
    if rule not in REFINE_RULES:
        raise ValueError(f"Unknown refinement rule {rule!r}; expected one of {REFINE_RULES}.")
    first_boxes, zoom_boxes = first.boxes, zoom.boxes
    first_quality, zoom_quality = first.quality, zoom.quality
    probabilities = (first.probabilities + zoom.probabilities) / 2.0
    agrees = box_lib.iou(first_boxes, zoom_boxes) >= agreement_iou
    if first_quality is None or zoom_quality is None:
        return Look(tf.where(agrees[:, None], zoom_boxes, first_boxes), probabilities)
    first_quality, zoom_quality = (
        tf.cast(first_quality, tf.float32),
        tf.cast(zoom_quality, tf.float32),
    )
    if rule == AGREEMENT:
        zoom_weight = tf.cast(agrees, tf.float32)
    else:
        blend = zoom_quality / tf.maximum(zoom_quality + first_quality, 1e-6)
        zoom_weight = tf.where(agrees, blend, tf.cast(zoom_quality >= first_quality, tf.float32))
    boxes = zoom_weight[:, None] * zoom_boxes + (1.0 - zoom_weight[:, None]) * first_boxes
    quality = zoom_weight * zoom_quality + (1.0 - zoom_weight) * first_quality
    if rule == BY_QUALITY:
        quality = tf.where(agrees, quality, tf.minimum(first_quality, zoom_quality))
    return Look(boxes, probabilities, quality=quality)


def views_to_original(boxes, windows, mirrored):
    """Maps view boxes `[..., V, 4]` (or `[..., V, K, 4]`) back to the original image."""
    boxes = box_lib.check_boxes(boxes)
    extra = boxes.shape.rank - windows.shape.rank  # 1 for per-class boxes
    flip = tf.reshape(mirrored, tf.concat([tf.shape(mirrored), tf.ones([extra + 1], tf.int32)], 0))
    boxes = tf.where(flip, box_lib.flip_left_right(boxes), boxes)
    window = tf.reshape(
        windows, tf.concat([tf.shape(windows)[:-1], tf.ones([extra], tf.int32), [4]], 0)
    )
    return render.to_original_frame(boxes, window)


def merge_views(boxes, probabilities, class_boxes=None, agreement_iou=AGREEMENT_IOU):
    """Combines views: mean probabilities; agreeing boxes weighted by confidence.

    View 0 is the whole image. As in Overfeat, only boxes that agree are
    combined: a view's box counts if its IoU with view 0's box is at least
    `agreement_iou` (a crop that cut the object predicts a truncated box and
    is left out), weighted by the view's probability of the merged class.

    Args:
      boxes: `[B, V, 4]` in original coordinates.
      probabilities: `[B, V, C]`.
      class_boxes: optional `[B, V, C, 4]` (per-class heads).
      agreement_iou: overlap with view 0 needed to be merged (0 merges all).

    Returns:
      A `Look` without quality: boxes `[B, 4]`, probabilities `[B, C]`, class boxes
      `[B, C, 4]` (None without `class_boxes`).
    """
    probabilities = tf.convert_to_tensor(probabilities, tf.float32)
    merged = tf.reduce_mean(probabilities, axis=1)
    box = _weighted_mean(boxes, _view_weights(boxes, probabilities, agreement_iou))
    if class_boxes is None:
        return Look(box, merged)
    class_weights = _per_class_weights(probabilities, class_boxes, agreement_iou)
    return Look(box, merged, _weighted_mean(class_boxes, class_weights))


def merge_view_qualities(boxes, probabilities, quality, agreement_iou=AGREEMENT_IOU):
    """The merged box's quality: the views' qualities `[B, V]` weighted as `merge_views` weighs
    their boxes -> `[B]`."""
    weights = _normalized(
        _view_weights(boxes, tf.convert_to_tensor(probabilities, tf.float32), agreement_iou)
    )
    return tf.reduce_sum(tf.cast(quality, tf.float32) * weights, axis=1)


def _view_weights(boxes, probabilities, agreement_iou):
    """`[B, V]`: each view's probability of the merged class where its box agrees with view 0's,
    else 0."""
    best = tf.argmax(tf.reduce_mean(probabilities, axis=1), axis=-1)
    weights = tf.gather(probabilities, best, axis=2, batch_dims=1)
    return weights * _agrees(boxes, agreement_iou)


def _agrees(boxes, agreement_iou):
    """`[..., V]` 1.0 where a view's box overlaps view 0's enough; view 0 always.

    View 0 is what the others are compared with, so it counts whatever its
    box: its IoU with itself is no test (0 / 0 for a zero-area box, which
    made a one-view merge return the all-zero box).
    """
    overlap = box_lib.iou(boxes, boxes[..., :1, :])
    first = tf.equal(tf.range(tf.shape(overlap)[-1]), 0)
    return tf.cast(tf.logical_or(overlap >= agreement_iou, first), tf.float32)


def _per_class_weights(probabilities, class_boxes, agreement_iou):
    """`[B, V, C]`: each class box weighs its view's probability of that class, if it agrees."""
    per_class = tf.transpose(class_boxes, [0, 2, 1, 3])  # [B, C, V, 4]
    agree = tf.transpose(_agrees(per_class, agreement_iou), [0, 2, 1])  # [B, V, C]
    return probabilities * agree


def _weighted_mean(boxes, weights):
    """Weighted mean over axis 1 of `[B, V, ..., 4]` boxes with `[B, V, ...]` weights."""
    return tf.reduce_sum(boxes * _normalized(weights)[..., None], axis=1)


def _normalized(weights):
    """`[B, V, ...]` weights divided by their sum over the views (axis 1); all-zero stays zero."""
    return weights / tf.maximum(tf.reduce_sum(weights, axis=1, keepdims=True), 1e-12)


def look_at_views(run_model, views):
    """Runs the `Views` of a batch (`[B, V, ...]`; `run_model`: images -> `Look` in the input
    frame).

    Returns the views merged, a `Look` in the original frame.
    """
    inputs, windows, mirrored = views
    shape = tf.shape(inputs)
    flat = tf.reshape(inputs, tf.concat([[-1], shape[2:]], 0))
    boxes, probabilities, class_boxes, quality = run_model(flat)
    per_view = lambda t: tf.reshape(t, tf.concat([shape[:2], tf.shape(t)[1:]], 0))  # noqa: E731
    boxes = views_to_original(per_view(boxes), windows, mirrored)
    probabilities = per_view(probabilities)
    if class_boxes is not None:
        class_boxes = views_to_original(per_view(class_boxes), windows, mirrored)
    if quality is not None:
        quality = merge_view_qualities(boxes, probabilities, per_view(quality))
    return merge_views(boxes, probabilities, class_boxes)._replace(quality=quality)


def zoomed_look(run_model, first, zoom_views, rule=REFINE_RULE):
    """The second look: runs the `ZoomViews` (`render_zoom_view`) and merges them with the `first`
    look (a `Look`, original frame) by `rule`.

    Returns a `Look` without class boxes in the original frame; its quality is None when the
    first look's is.
    """
    zoom = run_model(zoom_views.inputs)
    zoom = zoom._replace(boxes=render.to_original_frame(zoom.boxes, zoom_views.windows))
    return merge_refinement(first, zoom, rule)

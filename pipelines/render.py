"""Views and rendering: every geometric op only moves a window over the original image.

Geometry has one exact mapping, `pipelines.boxes.reframe`: cropping, zooming
out, translating and letterboxing are all "make this window the new image".
They only compose a view window; `render` then samples the pixels once at the
model's resolution and the box is mapped by the same window, so pixels and box
cannot disagree, and the cost does not grow with the photo's size.
`to_original_frame` maps predictions back.
"""

import tensorflow as tf

from pipelines import boxes as box_lib
from pipelines.element import BOX, IMAGE

PAD_VALUE = 127
"""Fill for padded pixels (letterbox, zoom-out): mid-grey, about zero after any
backbone's input normalization."""

WINDOW = "window"
"""Feature key: the current view (after resize: the model input's frame) as a
BOX_FORMAT box in original image coordinates; `to_original_frame` uses it."""

ORIGINAL_SIZE = "original_size"
"""Feature key: int32 [height, width] of the decoded image."""

RESIZE_MODES = ("stretch", "letterbox")

MAX_IMAGE_SIZE = 1024
"""Largest model input side any command renders: memory grows with its square."""


# ----------------------------------------------------------------------------
# Views: every geometric op only moves a window over the original image
# ----------------------------------------------------------------------------
#
# `WINDOW` is the current view, a BOX_FORMAT box in the original image's
# coordinates (it may reach outside [0, 1], where padding shows). Zoom out,
# crop, translation and letterboxing each pick a sub-window of the current view
# and compose it in; `BOX` stays in original coordinates throughout. Pixels are
# rendered once, by `render` at the model's resolution, so augmentation costs
# the same for a 4000 px photo as for a 200 px one.


def view_of(features):
    """`(window, box_in_view, view_size)` of a feature dict (the whole image if no WINDOW)."""
    window = features.get(WINDOW, tf.constant(box_lib.UNIT_BOX))
    size = tf.cast(features.get(ORIGINAL_SIZE, tf.shape(features[IMAGE])[:2]), tf.float32)
    extent = tf.stack([window[2] - window[0], window[3] - window[1]])
    return window, box_lib.reframe(features[BOX], window), extent * size


def compose_window(features, sub_window):
    """Narrows the view to `sub_window`, given in the current view's coordinates."""
    features = dict(features)
    window = features.get(WINDOW, tf.constant(box_lib.UNIT_BOX))
    features[WINDOW] = box_lib.reframe(sub_window, box_lib.invert_window(window))
    if ORIGINAL_SIZE not in features:
        features[ORIGINAL_SIZE] = tf.shape(features[IMAGE])[:2]
    return features


def render(image, window, image_size, pad_value=PAD_VALUE):
    """Samples `window` of `image` into a square uint8 `[image_size, image_size, 3]`.

    Crop, zoom, padding (parts of the window outside the image get
    `pad_value`) and resize in one step. The window is first snapped so that
    the part of the image it shows spans whole source pixels and whole output
    pixels (it moves by under a pixel); that part is then sliced, resized with
    `tf.image.resize` (bilinear) and padded. Cost grows with the output, not
    the photo; it is several times faster than a gather-based bilinear
    resampling or `tf.image.crop_and_resize` on the edge-padded image
    (experiments/RESULTS.md, input pipeline).

    Shared by training, evaluation and the exported serving graph, so all three
    see identical pixels.

    Returns:
      `(image, window)`: the uint8 image and the snapped window actually shown;
      boxes map exactly with `reframe(box, snapped_window)`.
    """
    window = box_lib.check_boxes(window, "window")
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    wy0, wx0, wy1, wx1 = tf.unstack(window)
    top, bottom, out_top, out_bottom, snapped_y0, snapped_y1 = _snap_axis(
        wy0, wy1, height, image_size
    )
    left, right, out_left, out_right, snapped_x0, snapped_x1 = _snap_axis(
        wx0, wx1, width, image_size
    )
    visible = tf.image.resize(
        image[top:bottom, left:right], tf.stack([out_bottom - out_top, out_right - out_left])
    )
    rendered = tf.pad(
        visible,
        [[out_top, image_size - out_bottom], [out_left, image_size - out_right], [0, 0]],
        constant_values=float(pad_value),
    )
    rendered = tf.saturate_cast(tf.round(rendered), tf.uint8)
    rendered.set_shape([image_size, image_size, image.shape[-1]])
    return rendered, tf.stack([snapped_y0, snapped_x0, snapped_y1, snapped_x1])


def _snap_axis(low, high, length, image_size):
    """Snaps one axis of a window: whole source pixels onto whole output pixels.

    Returns the source slice [start, stop), the output rows [out_start,
    out_stop) it fills, and the snapped window's ends (normalized).
    """
    size = tf.cast(length, tf.float32)
    pixels_per_output = (high - low) * size / image_size
    # The part of the window inside the image, in whole source pixels.
    start = tf.cast(tf.round(tf.clip_by_value(low * size, 0.0, size)), tf.int32)
    stop = tf.cast(tf.round(tf.clip_by_value(high * size, 0.0, size)), tf.int32)
    start = tf.minimum(start, length - 1)
    stop = tf.maximum(stop, start + 1)
    # Where those pixels land in the output, in whole output pixels.
    to_output = lambda p: (tf.cast(p, tf.float32) - low * size) / pixels_per_output  # noqa: E731
    out_start = tf.clip_by_value(tf.cast(tf.round(to_output(start)), tf.int32), 0, image_size - 1)
    out_stop = tf.clip_by_value(
        tf.cast(tf.round(to_output(stop)), tf.int32), out_start + 1, image_size
    )
    # The window that maps [start, stop) exactly onto [out_start, out_stop).
    scale = tf.cast(out_stop - out_start, tf.float32) / tf.cast(stop - start, tf.float32)
    snapped_low = tf.cast(start, tf.float32) - tf.cast(out_start, tf.float32) / scale
    snapped_high = snapped_low + image_size / scale
    return start, stop, out_start, out_stop, snapped_low / size, snapped_high / size


# ----------------------------------------------------------------------------
# Resize to the model's input, and back
# ----------------------------------------------------------------------------


def resize_window(view_size, image_size, mode):
    """The model input's frame in the coordinates of a view of `view_size` pixels.

    For `stretch` it is the whole view; for `letterbox` it reaches past the
    view on the two padded sides (the view keeps its aspect ratio, centred).

    Args:
      view_size: `[2]` (height, width) of the view in source pixels.
      image_size: side of the square model input.
      mode: one of `RESIZE_MODES`.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"Unknown resize mode {mode!r}; expected one of {RESIZE_MODES}.")
    if mode == "stretch":
        return tf.constant(box_lib.UNIT_BOX)
    size = tf.maximum(tf.cast(view_size, tf.float32), 1e-6)
    longest = tf.reduce_max(size)
    # Each axis shows `longest` source pixels; the shorter one is centred in it.
    extent = longest / size
    low = (1.0 - extent) / 2.0
    return tf.stack([low[0], low[1], low[0] + extent[0], low[1] + extent[1]])


def resize(features, image_size, mode):
    """Renders the current view at the model input size; maps `BOX` into it.

    Composes the letterbox/stretch frame into `WINDOW`, which then holds the
    model input's frame in original image coordinates (`to_original_frame`
    maps predictions back with it), and adds `ORIGINAL_SIZE` if missing.
    """
    features = dict(features)
    features.setdefault(ORIGINAL_SIZE, tf.shape(features[IMAGE])[:2])
    _, _, view_size = view_of(features)
    features = compose_window(features, resize_window(view_size, image_size, mode))
    features[IMAGE], features[WINDOW] = render(features[IMAGE], features[WINDOW], image_size)
    features[BOX] = box_lib.reframe(features[BOX], features[WINDOW])
    return features


def resize_image(image, image_size, mode):
    """Resizes one decoded image for the model: `(uint8 image, window)`.

    The path evaluation, predict and the serving graph use.
    """
    return render(image, resize_window(tf.shape(image)[:2], image_size, mode), image_size)


def to_original_frame(boxes, window):
    """Maps BOX_FORMAT boxes predicted on a model input back to the original image.

    `window` is the input's `WINDOW` feature (or `resize_image`'s window); the
    result is normalized to the original image and clipped to it by the one
    rule for boxes that leave it, `pipelines.boxes.clip_to_image`: a box in
    the letterbox padding becomes a `MIN_BOX_SIZE` box at the image's edge,
    never a zero-area one. Evaluation, predict, the serving graph and the
    export's eager reference all map boxes back here.
    """
    boxes = box_lib.check_boxes(boxes)
    return box_lib.clip_to_image(box_lib.reframe(boxes, box_lib.invert_window(window)))


# The zoomed second look's window: localizer.ops.views renders it at test time,
# and the zoom-view augmentation (pipelines.augment) trains on the same windows.
ZOOM_CONTEXT = 2.0
"""Refinement window side, as a multiple of the first box's longer side."""

MIN_ZOOM_FRACTION = 0.3
"""Refinement windows are at least this fraction of the image's longer side (at most ~3.3x zoom)."""


def zoom_window(box, original_size, context=ZOOM_CONTEXT, min_fraction=MIN_ZOOM_FRACTION):
    """A square window (in pixels) around `box`, shifted inside the image where it fits.

    Args:
      box: BOX_FORMAT `[4]` in the original image.
      original_size: `[2]` (height, width) in pixels.
      context: the window's side as a multiple of the box's longer side.
      min_fraction: the smallest side, as a fraction of the image's longer side.

    Returns:
      BOX_FORMAT `[4]`: the window, in original image coordinates.
    """
    box = box_lib.check_boxes(tf.convert_to_tensor(box, tf.float32))
    size = tf.cast(original_size, tf.float32)
    height, width = size[0], size[1]
    box_px = box * tf.stack([height, width, height, width])
    longest = tf.maximum(height, width)
    side = tf.maximum(tf.reduce_max(box_px[2:] - box_px[:2]) * context, min_fraction * longest)
    side = tf.minimum(side, longest)

    def place(centre, extent):
        start = centre - side / 2
        # Inside the image when the window fits along this axis, else centred on it.
        start = tf.where(
            side <= extent, tf.clip_by_value(start, 0.0, extent - side), (extent - side) / 2
        )
        return start / extent, (start + side) / extent

    y0, y1 = place((box_px[0] + box_px[2]) / 2, height)
    x0, x1 = place((box_px[1] + box_px[3]) / 2, width)
    return tf.stack([y0, x0, y1, x1])

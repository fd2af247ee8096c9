"""Box-correct training augmentations, each keyed by a stateless per-example seed.

Why not Keras' box-aware preprocessing layers (`keras.layers.RandomFlip(...,
bounding_box_format=...)`, `RandomCrop`, `RandomTranslation`, ...)? They draw
their randomness from a stateful `SeedGenerator`, so which augmentation an
example gets depends on the order of calls, which a parallel `Dataset.map`
does not fix: a seeded run would not repeat. Their random crop also cuts
objects, where a localizer needs the whole object kept, and they have behaved
differently eagerly and inside `tf.data` in some versions. The ops below use
stateless random ops keyed by a per-example seed instead, and
`tf.image.stateless_sample_distorted_bounding_box` for object-keeping crops.

Every op only moves the view window (`pipelines.render`); pixels are rendered
once, at the model's resolution.
"""

import dataclasses

import tensorflow as tf

from pipelines import boxes as box_lib
from pipelines import fields
from pipelines.element import BOX, IMAGE
from pipelines.render import ORIGINAL_SIZE, WINDOW, compose_window, resize, view_of, zoom_window


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Box-correct training augmentations. All ranges are symmetric or [low, high]."""

    flip: bool = fields.field(True, fields.boolean())
    # Zoom out: place the image on a canvas up to this many times its size.
    zoom_out_prob: float = fields.field(0.3, fields.real(0.0, 1.0))
    zoom_out_max: float = fields.field(1.6, fields.real(1.0, 10.0))
    # Zoom in: a random crop covering at least `min_object_covered` of the object.
    # Down to 8% of the image (~3.5x): small objects are also seen large, as
    # the zoomed refinement (localizer.inference) shows them.
    crop_prob: float = fields.field(0.5, fields.real(0.0, 1.0))
    min_object_covered: float = fields.field(1.0, fields.real(0.0, 1.0))
    crop_area_range: tuple = fields.field((0.08, 1.0), fields.positive_range(high=1))
    crop_aspect_ratio_range: tuple = fields.field((0.75, 1.33), fields.positive_range())
    # Small translation, a fraction of the image size, never pushing the object out.
    translate: float = fields.field(0.1, fields.real(0.0, 0.5))
    # Colour jitter at the model's resolution; hue is a fraction of a turn.
    brightness: float = fields.field(0.15, fields.real(0.0, 1.0))
    contrast: float = fields.field(0.2, fields.real(0.0, 0.99))
    saturation: float = fields.field(0.2, fields.real(0.0, 0.99))
    hue: float = fields.field(0.02, fields.real(0.0, 0.5))
    # Zoom view: instead of all of the above, the window the zoomed refinement
    # (localizer.ops.views) would look through around a first box this
    # far off the truth (centre shift and log-size change, as fractions of the
    # box), so the head also learns the second look's views.
    zoom_view_prob: float = fields.field(0.0, fields.real(0.0, 1.0))
    zoom_view_jitter: float = fields.field(0.15, fields.real(0.0, 0.5))

    @classmethod
    def off(cls):
        """No augmentation at all."""
        return cls(
            flip=False,
            zoom_out_prob=0.0,
            crop_prob=0.0,
            translate=0.0,
            brightness=0.0,
            contrast=0.0,
            saturation=0.0,
            hue=0.0,
        )


def _uniform(seed, low=0.0, high=1.0):
    return tf.random.stateless_uniform([], seed, minval=low, maxval=high)


def random_zoom_out(features, seed, max_ratio):
    """Shows the view as a random part of a canvas up to `max_ratio` times larger."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    ratio = _uniform(seeds[0], 1.0, max_ratio)
    offset_y = _uniform(seeds[1], 0.0, ratio - 1.0)
    offset_x = _uniform(seeds[2], 0.0, ratio - 1.0)
    return compose_window(
        features, tf.stack([-offset_y, -offset_x, ratio - offset_y, ratio - offset_x])
    )


def random_crop_keeping_object(features, seed, config):
    """Crops to a random window holding at least `min_object_covered` of the object."""
    _, box, view_size = view_of(features)
    view_shape = tf.concat([tf.cast(tf.round(view_size), tf.int32), [3]], 0)
    _, _, crop = tf.image.stateless_sample_distorted_bounding_box(
        image_size=tf.maximum(view_shape, 1),
        bounding_boxes=tf.reshape(tf.clip_by_value(box, 0.0, 1.0), [1, 1, 4]),
        seed=seed,
        min_object_covered=config.min_object_covered,
        aspect_ratio_range=config.crop_aspect_ratio_range,
        area_range=config.crop_area_range,
        max_attempts=50,
        use_image_if_no_bounding_boxes=True,
    )
    return compose_window(features, tf.reshape(crop, [4]))


def random_translate(features, seed, max_fraction):
    """Shifts the view by up to `max_fraction` of its size, keeping the object inside."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    _, box, _ = view_of(features)
    ymin, xmin, ymax, xmax = tf.unstack(box)
    # A window [dy, dx, 1 + dy, 1 + dx] keeps the box inside iff
    # ymax - 1 <= dy <= ymin (same for x).
    low_y, high_y = tf.maximum(-max_fraction, ymax - 1.0), tf.minimum(max_fraction, ymin)
    low_x, high_x = tf.maximum(-max_fraction, xmax - 1.0), tf.minimum(max_fraction, xmin)
    dy = _uniform(seeds[0], tf.minimum(low_y, high_y), tf.maximum(high_y, low_y) + 1e-6)
    dx = _uniform(seeds[1], tf.minimum(low_x, high_x), tf.maximum(high_x, low_x) + 1e-6)
    return compose_window(features, tf.stack([dy, dx, 1.0 + dy, 1.0 + dx]))


# Luma weights (ITU-R 601) and the RGB <-> YIQ transforms used for hue rotation.
_LUMA = (0.299, 0.587, 0.114)
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def augment_pixels(features, seed, config):
    """Flip and colour jitter of a rendered image, deterministic for a seed `[2]`.

    Runs after `render`, at the model's resolution. Colour jitter uses a few
    linear ops (saturation is a blend with the grayscale image, hue a rotation
    in YIQ space), far cheaper than the HSV round trips of `tf.image.random_*`.
    """
    features = dict(features)
    seeds = tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5))

    def draw(i, limit):
        return tf.random.stateless_uniform([], seeds[i], -limit, limit)

    if config.flip:
        flip = tf.random.stateless_uniform([], seeds[0]) < 0.5
        image = features[IMAGE]
        features[IMAGE] = tf.cond(flip, lambda: tf.reverse(image, axis=[-2]), lambda: image)
        features[BOX] = tf.where(flip, box_lib.flip_left_right(features[BOX]), features[BOX])
    if max(config.brightness, config.contrast, config.saturation, config.hue) <= 0:
        return features
    x = tf.cast(features[IMAGE], tf.float32) / 255.0
    if config.brightness > 0:
        x = x + draw(1, config.brightness)
    if config.contrast > 0:
        mean = tf.reduce_mean(x)
        x = mean + (x - mean) * (1.0 + draw(2, config.contrast))
    if config.saturation > 0 or config.hue > 0:
        # Saturation and hue are both 3x3 colour transforms: apply their product once.
        transform = _saturation_matrix(1.0 + draw(3, config.saturation))
        if config.hue > 0:
            transform = _hue_matrix(draw(4, config.hue) * 2.0 * 3.141592653589793) @ transform
        x = tf.tensordot(x, tf.transpose(transform), axes=1)
    features[IMAGE] = tf.saturate_cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)
    return features


def _saturation_matrix(factor):
    """Blend with the grayscale (luma) image: 0 gives gray, 1 the image itself."""
    luma = tf.constant([_LUMA])
    return factor * tf.eye(3) + (1.0 - factor) * tf.ones([3, 1]) @ luma


def _hue_matrix(angle):
    """Rotation of the chroma plane of YIQ space by `angle` radians, in RGB."""
    to_yiq = tf.constant(_RGB_TO_YIQ)
    cos, sin = tf.cos(angle), tf.sin(angle)
    rotation = tf.stack([[1.0, 0.0, 0.0], tf.stack([0.0, cos, -sin]), tf.stack([0.0, sin, cos])])
    return tf.linalg.inv(to_yiq) @ rotation @ to_yiq


def _maybe(probability, seed, augment_fn, features):
    """Applies `augment_fn(features)` with `probability` (decided by `seed`)."""
    if probability <= 0:
        return features
    features = _with_view(features)
    return tf.cond(
        _uniform(seed) < probability, lambda: augment_fn(features), lambda: dict(features)
    )


def _with_view(features):
    """A copy with the view window and original size set (the whole image if none yet): both
    `tf.cond`
    branches then return the same keys.
    """
    features = dict(features)
    features.setdefault(WINDOW, tf.constant(box_lib.UNIT_BOX))
    features.setdefault(ORIGINAL_SIZE, tf.shape(features[IMAGE])[:2])
    return features


def random_zoom_view(features, seed, jitter):
    """The refinement's window around a copy of the object's box moved and resized by up to `jitter`
    of it."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    _, box, view_size = view_of(features)
    size = box[2:] - box[:2]
    centre = (box[:2] + box[2:]) / 2 + tf.random.stateless_uniform(
        [2], seeds[0], -jitter, jitter
    ) * size
    size = size * tf.exp(tf.random.stateless_uniform([2], seeds[1], -jitter, jitter))
    first_look = tf.clip_by_value(tf.concat([centre - size / 2, centre + size / 2], 0), 0.0, 1.0)
    first_look = tf.concat([first_look[:2], tf.maximum(first_look[2:], first_look[:2] + 1e-3)], 0)
    return compose_window(features, zoom_window(first_look, view_size))


def augment_view(features, seed, config):
    """Geometric augmentations, as a view window: zoom out -> crop -> translate, or a zoom view.

    The image is not touched; `resize` renders the final view.
    """
    if config.zoom_view_prob <= 0:
        return _usual_view(features, seed, config)
    # Its own seeds, folded from the example's: the usual view's draws stay as without it.
    zoom_seeds = tf.random.experimental.stateless_split(
        tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), 1), 2
    )
    features = _with_view(features)
    return tf.cond(
        _uniform(zoom_seeds[0]) < config.zoom_view_prob,
        lambda: random_zoom_view(features, zoom_seeds[1], config.zoom_view_jitter),
        lambda: _usual_view(features, seed, config),
    )


def _usual_view(features, seed, config):
    seeds = tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5))
    features = _maybe(
        config.zoom_out_prob,
        seeds[0],
        lambda f: random_zoom_out(f, seeds[1], config.zoom_out_max),
        features,
    )
    features = _maybe(
        config.crop_prob,
        seeds[2],
        lambda f: random_crop_keeping_object(f, seeds[3], config),
        features,
    )
    if config.translate > 0:
        features = random_translate(features, seeds[4], config.translate)
    return features


def augment_and_resize(features, seed, config, image_size, mode):
    """All training augmentations and the resize, deterministic for a seed `[2]`.

    zoom out -> object-keeping crop -> translation (as one view window) ->
    render at `image_size` -> flip -> colour jitter.
    """
    view_seed, pixel_seed = tf.unstack(
        tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    )
    features = resize(augment_view(features, view_seed, config), image_size, mode)
    features = augment_pixels(features, pixel_seed, config)
    # Float rounding can nudge a coordinate a hair outside [0, 1].
    features[BOX] = tf.clip_by_value(features[BOX], 0.0, 1.0)
    return features

"""`synthetic`: the embedded default dataset, generated on the fly, no files.

Each example is one object on a cluttered, textured background. The class is
the object's *shape*; its colour, texture, size, aspect ratio and position are
random, so neither colour nor position gives the class or the box away, and a
constant-box guess scores poorly. Backgrounds mix oriented colour gratings,
noise and random bars, the kind of texture on which ImageNet features help.

Every example is a pure function of (seed, split, index) built from stateless
TF ops, so the same seed gives the same dataset, eagerly or in `tf.data`, at
several hundred images per second on 2 cores (the pipeline caches it anyway).
"""

import math

import tensorflow as tf

from pipelines.sources.source import BOX, ID, IMAGE, LABEL, DatasetError, Source

SHAPES = ("ellipse", "rectangle", "triangle", "diamond", "cross", "ring")
"""Class names. Every shape touches all four sides of its box, so the box is tight."""

_SPLIT_OFFSETS = {"train": 0, "val": 1, "test": 2}
_DEFAULT_SIZES = {"train": 2000, "val": 400, "test": 400}


OBJECT_MASK = "object_mask"
"""Key of the object's pixel mask (`render_example(with_mask=True)`, for tests)."""


def _shape_mask(shape_id, u, v):
    """Inside-mask of each shape on coordinates u, v in [-1, 1] across its box."""
    r2 = u * u + v * v
    masks = tf.stack(
        [
            r2 <= 1.0,  # ellipse
            (tf.abs(u) <= 1.0) & (tf.abs(v) <= 1.0),  # rectangle
            (v <= 1.0) & (tf.abs(u) <= (v + 1.0) / 2.0),  # triangle, apex up
            tf.abs(u) + tf.abs(v) <= 1.0,  # diamond
            ((tf.abs(u) <= 0.33) | (tf.abs(v) <= 0.33)) & (tf.abs(u) <= 1.0) & (tf.abs(v) <= 1.0),
            (r2 <= 1.0) & (r2 >= 0.3),  # ring
        ]
    )
    return tf.gather(masks, shape_id)


def _grating(seeds, yy, xx, count):
    """Sum of `count` random oriented sinusoids with random colours, in [0, 1]."""
    texture = tf.zeros(tf.concat([tf.shape(yy), [3]], 0))
    for i in range(count):
        s = tf.random.experimental.stateless_split(seeds[i], 4)
        angle = tf.random.stateless_uniform([], s[0], 0.0, math.pi)
        freq = tf.random.stateless_uniform([], s[1], 0.02, 0.25)
        phase = tf.random.stateless_uniform([], s[2], 0.0, 2 * math.pi)
        colour = tf.random.stateless_uniform([3], s[3], -1.0, 1.0)
        wave = tf.sin(freq * (tf.cos(angle) * xx + tf.sin(angle) * yy) + phase)
        texture += wave[..., None] * colour
    return 0.5 + 0.5 * texture / count


def render_example(seed, image_size_range=(160, 288), with_mask=False):
    """Renders one example from a stateless seed `[2]`.

    Returns:
      dict with uint8 `IMAGE` `[H, W, 3]`, int32 `LABEL` and float32 `BOX`
      (BOX_FORMAT); with `with_mask`, also `OBJECT_MASK`: bool `[H, W]`, the
      pixels the object was drawn on.
    """
    seeds = tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 24))
    low, high = image_size_range
    height = tf.random.stateless_uniform([], seeds[0], low, high + 1, dtype=tf.int32)
    width = tf.random.stateless_uniform([], seeds[1], low, high + 1, dtype=tf.int32)
    yy, xx = tf.meshgrid(
        tf.range(tf.cast(height, tf.float32)) + 0.5,
        tf.range(tf.cast(width, tf.float32)) + 0.5,
        indexing="ij",
    )
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)

    # Background: gratings + noise + a few random bars (clutter).
    background = _grating(seeds[2:6], yy, xx, 4)
    background += tf.random.stateless_normal(tf.shape(background), seeds[6], stddev=0.06)
    for i in range(3):
        s = tf.random.experimental.stateless_split(seeds[7 + i], 3)
        centre = tf.random.stateless_uniform([2], s[0]) * tf.stack([h, w])
        angle = tf.random.stateless_uniform([], s[1], 0.0, math.pi)
        distance = tf.abs(tf.cos(angle) * (yy - centre[0]) - tf.sin(angle) * (xx - centre[1]))
        bar = tf.cast(distance < 2.5, tf.float32)[..., None]
        colour = tf.random.stateless_uniform([3], s[2])
        background = background * (1 - bar) + colour * bar

    # Object: shape (the class), size, aspect ratio, position, colour, texture.
    label = tf.random.stateless_uniform([], seeds[10], 0, len(SHAPES), dtype=tf.int32)
    scale = tf.random.stateless_uniform([], seeds[11], 0.18, 0.75)  # of the shorter side
    log_aspect = tf.random.stateless_uniform([], seeds[12], -0.7, 0.7)
    side = scale * tf.minimum(h, w)
    box_h = tf.minimum(side * tf.exp(-log_aspect / 2), 0.95 * h)
    box_w = tf.minimum(side * tf.exp(log_aspect / 2), 0.95 * w)
    ymin = tf.random.stateless_uniform([], seeds[13], 0.0, 1.0) * (h - box_h)
    xmin = tf.random.stateless_uniform([], seeds[14], 0.0, 1.0) * (w - box_w)
    u = (xx - xmin) / box_w * 2.0 - 1.0
    v = (yy - ymin) / box_h * 2.0 - 1.0
    mask = tf.cast(_shape_mask(label, u, v), tf.float32)[..., None]
    colour = tf.random.stateless_uniform([3], seeds[15], 0.0, 1.0)
    stripes = _grating(seeds[16:17], yy, xx, 1)
    contrast = tf.random.stateless_uniform([], seeds[17], 0.1, 0.5)
    foreground = colour * (1.0 - contrast) + stripes * contrast
    opacity = tf.random.stateless_uniform([], seeds[18], 0.8, 1.0)
    image = background * (1.0 - opacity * mask) + foreground * opacity * mask

    # Measure the box on the mask actually drawn (pixel edges), so it is tight.
    rows = tf.where(tf.reduce_any(mask[..., 0] > 0, axis=1))[:, 0]
    cols = tf.where(tf.reduce_any(mask[..., 0] > 0, axis=0))[:, 0]
    box = tf.stack(
        [
            tf.cast(tf.reduce_min(rows), tf.float32) / h,
            tf.cast(tf.reduce_min(cols), tf.float32) / w,
            tf.cast(tf.reduce_max(rows) + 1, tf.float32) / h,
            tf.cast(tf.reduce_max(cols) + 1, tf.float32) / w,
        ]
    )
    image = tf.saturate_cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)
    example = {IMAGE: image, LABEL: label, BOX: box}
    if with_mask:
        example[OBJECT_MASK] = mask[..., 0] > 0
    return example


class SyntheticSource(Source):
    """Generated shapes on cluttered backgrounds; deterministic for `seed`.

    Args:
      data_dir: ignored (accepted so every source is built the same way).
      seed: dataset seed; the splits use disjoint streams of it.
      sizes: optional dict split -> number of examples.
      image_size_range: (low, high) pixels for each image's height and width.
    """

    name = "synthetic"

    def __init__(self, data_dir=None, seed=1234, sizes=None, image_size_range=(160, 288)):
        del data_dir
        self.seed = int(seed)
        self.sizes = dict(_DEFAULT_SIZES, **(sizes or {}))
        self.image_size_range = tuple(image_size_range)

    @property
    def class_names(self):
        return list(SHAPES)

    def num_examples(self, split):
        self._check_split(split)
        return self.sizes[split]

    def identity(self, split):
        return {
            **super().identity(split),
            "seed": self.seed,
            "image_size_range": list(self.image_size_range),
        }

    def _check_split(self, split):
        if split not in _SPLIT_OFFSETS:
            raise DatasetError(f"synthetic has splits {sorted(_SPLIT_OFFSETS)}; got {split!r}.")

    def load(self, split):
        self._check_split(split)
        offset = _SPLIT_OFFSETS[split]

        def generate(index):
            seed = tf.stack([tf.constant(self.seed, tf.int64), offset * 10**9 + index])
            example = render_example(seed, self.image_size_range)
            example[ID] = tf.strings.join([f"synthetic/{split}/", tf.strings.as_string(index)])
            return example

        return tf.data.Dataset.range(self.sizes[split]).map(
            generate, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )

"""The tf.data input pipeline: source elements -> model-ready batches.

Fixed order (big_vision / Model Garden style):

  decode -> sanitize (repair boxes, drop degenerate ones, counted) -> cache
  -> shuffle (seeded) -> augment (training only) -> resize -> batch -> prefetch

Augmentation only moves a view window until the image is rendered at the
model's resolution (see `pipelines.render`), so resize happens inside it.

When the decoded dataset is too large to cache in memory, shuffling happens on
the cheap source elements before decoding instead.
"""

import dataclasses
import hashlib
import json

import tensorflow as tf

from pipelines import augment as augment_ops
from pipelines import decode, fields, render
from pipelines.element import BOX, ID, IMAGE, LABEL

MEMORY_CACHE_MAX_EXAMPLES = 5000
"""`cache="auto"` keeps decoded images in memory up to this many examples."""

MAX_BATCH_SIZE = 4096
IMAGE_SIZE_MULTIPLE = 32
"""Input sides are multiples of the backbones' largest stride, so every feature map has whole
cells."""


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything the input pipeline needs; no flags are read here."""

    # The model's input contract. Training sets both from the model config
    # (`TrainConfig.input_pipeline()`), the only place they are chosen there.
    image_size: int | None = fields.field(
        None,
        fields.integer(
            IMAGE_SIZE_MULTIPLE, render.MAX_IMAGE_SIZE, multiple=IMAGE_SIZE_MULTIPLE, optional=True
        ),
    )
    resize_mode: str | None = fields.field(None, fields.choice(render.RESIZE_MODES, optional=True))
    batch_size: int = fields.field(
        32, fields.integer(1, MAX_BATCH_SIZE), flag="Per-replica batch size."
    )
    shuffle_buffer: int = fields.field(1024, fields.integer(1, 10_000_000))
    # "auto" (memory when small), "memory", "none", or a file path prefix.
    cache: str = fields.field("auto", fields.text())
    augment: augment_ops.AugmentConfig = dataclasses.field(
        default_factory=augment_ops.AugmentConfig
    )
    seed: int | None = fields.field(0, fields.integer(0, 2**31 - 1, optional=True))


class DropCounter:
    """Counts examples the pipeline filtered out (degenerate boxes after decode).

    The count lives in a variable updated inside the `tf.data` graph, so it is
    correct however the pipeline is run; read `.value` after iterating.
    """

    def __init__(self):
        self._dropped = tf.Variable(0, dtype=tf.int64, trainable=False, name="dropped")

    def keep(self, features):
        valid = features["valid"]
        with tf.control_dependencies(
            [self._dropped.assign_add(tf.cast(tf.logical_not(valid), tf.int64))]
        ):
            return tf.identity(valid)

    @property
    def value(self):
        return int(self._dropped.numpy())


def _options(seed):
    options = tf.data.Options()
    options.deterministic = seed is not None
    options.autotune.enabled = True
    options.experimental_optimization.map_parallelization = True
    return options


def _use_memory_cache(config, num_examples):
    if config.cache == "auto":
        return num_examples is not None and num_examples <= MEMORY_CACHE_MAX_EXAMPLES
    return config.cache == "memory"


def decode_and_sanitize(ds, drop_counter=None):
    """Source elements -> decoded RGB images with sanitized boxes; degenerate ones dropped (and
    counted).

    The one decoding path of training, evaluation and the dataset preview.
    """
    autotune = tf.data.AUTOTUNE
    ds = ds.map(decode.decode, num_parallel_calls=autotune)
    ds = ds.map(decode.sanitize, num_parallel_calls=autotune)
    return ds.filter((drop_counter or DropCounter()).keep)


def decoded(source, split, drop_counter=None):
    """`decode_and_sanitize` of a split, in source order."""
    return decode_and_sanitize(source.load(split), drop_counter)


def _check_resolved(config):
    if config.image_size is None or config.resize_mode is None:
        raise ValueError(
            "PipelineConfig needs image_size and resize_mode (training takes them from the model "
            "config)."
        )


def cache_file(prefix, source, split):
    """The tf.data cache file of one split: named by the split and its data identity, so two
    splits never share one and a changed dataset never reads a stale cache.
    """
    identity = json.dumps(source.identity(split), sort_keys=True, default=str)
    return f"{prefix}.{split}.{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def decoded_examples(source, split, config, training, drop_counter=None, shard=None):
    """Decoded, sanitized, cached and (for training) shuffled, augmented and resized
    examples as feature dicts, unbatched. `shard=(count, index)`: only every
    count-th source element from index on (one worker's part, before decoding).
    """
    _check_resolved(config)
    ds = source.load(split)
    if shard is not None:
        ds = ds.shard(*shard)
    cache_in_memory = _use_memory_cache(config, source.num_examples(split))
    cache_to_file = config.cache not in ("auto", "memory", "none")
    caching = cache_in_memory or cache_to_file
    if training and not caching:
        # Shuffle cheap source elements (paths, boxes) before decoding.
        ds = ds.shuffle(config.shuffle_buffer, seed=config.seed, reshuffle_each_iteration=True)
    ds = decode_and_sanitize(ds, drop_counter)
    if caching:
        ds = ds.cache("" if cache_in_memory else cache_file(config.cache, source, split))
        if training:
            ds = ds.shuffle(config.shuffle_buffer, seed=config.seed, reshuffle_each_iteration=True)
    return augment_and_resize(ds, config, training).with_options(_options(config.seed))


def augment_and_resize(ds, config, training):
    """Augments (training only, one stateless seed per example) and resizes decoded examples."""
    _check_resolved(config)
    autotune = tf.data.AUTOTUNE
    if training and config.augment != augment_ops.AugmentConfig.off():
        # New draws every epoch, the same draws for the same seed.
        seeds = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True).batch(2)
        return tf.data.Dataset.zip(ds, seeds).map(
            lambda features, seed: augment_ops.augment_and_resize(
                features, seed, config.augment, config.image_size, config.resize_mode
            ),
            num_parallel_calls=autotune,
        )
    return ds.map(
        lambda f: render.resize(f, config.image_size, config.resize_mode),
        num_parallel_calls=autotune,
    )


def _batch(ds, config, training):
    return ds.batch(config.batch_size, drop_remainder=training, num_parallel_calls=tf.data.AUTOTUNE)


def batched_examples(source, split, config, training, drop_counter=None):
    """Batches of feature dicts (image, label, box, id, original_size, window)."""
    ds = decoded_examples(source, split, config, training, drop_counter)
    keys = (IMAGE, LABEL, BOX, ID, render.ORIGINAL_SIZE, render.WINDOW)
    ds = ds.map(lambda f: {k: f[k] for k in keys}, num_parallel_calls=tf.data.AUTOTUNE)
    return _batch(ds, config, training).prefetch(tf.data.AUTOTUNE)


def to_keras_inputs(features):
    """Feature dict -> `(image, {"label": ..., "box": ...})`, what `Model.fit` takes."""
    return features[IMAGE], {LABEL: features[LABEL], BOX: features[BOX]}


def make_dataset(source, split, config, training, drop_counter=None, shard=None):
    """The model-ready dataset: batches of `(image uint8, {"label", "box"})`.

    Args:
      source: a `pipelines.sources.source.Source`.
      split: split name understood by the source ("train", "val", ...).
      config: a `PipelineConfig`.
      training: shuffle, augment and drop the last partial batch when True.
      drop_counter: optional `DropCounter` to read how many examples were dropped.
      shard: `(count, index)`: this worker's part of the split (see `decoded_examples`).
    """
    ds = decoded_examples(source, split, config, training, drop_counter, shard)
    ds = ds.map(
        lambda f: {k: f[k] for k in (IMAGE, LABEL, BOX)}, num_parallel_calls=tf.data.AUTOTUNE
    )
    ds = _batch(ds, config, training).map(to_keras_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)

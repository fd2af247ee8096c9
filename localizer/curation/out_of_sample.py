"""Honest predictions for every example of a split: k-fold on frozen backbone features.

A model that trained on an example has learnt its label, wrong or not, so
only a model that never saw it can judge it. The backbone is frozen, so its
features are computed once (one plain pass over the split and
`feature_passes - 1` augmented ones, as the frozen training stage does) and
each of the `k` fold models trains only its heads on the features of the
other folds: k models for little more than the price of one. Each fold model
then looks at its held-out photos as `predict` does: the first look and the
zoomed second look (`localizer.ops.views`), in the upright original frame.
"""

import dataclasses
import sys

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from localizer import model as model_lib
from localizer.curation import selection
from localizer.inference import evaluation
from localizer.inference.predictor import Predictor
from localizer.ops import views
from localizer.training import feature_cache
from localizer.training.objective import compile_model, training_targets
from pipelines import augment, input_pipeline, render
from pipelines.sources.source import BOX, ID, IMAGE, LABEL, Selected


@dataclasses.dataclass(frozen=True)
class SplitFeatures:
    """Frozen backbone features of a split: one row per view of an example, the plain pass's rows
    first (one per example, in source order), then the augmented passes' rows."""

    features: np.ndarray
    """`[R, ...]` the backbone's output."""
    labels: np.ndarray
    """`[R]` class ids."""
    boxes: np.ndarray
    """`[R, 4]` the box in the view's model-input frame (what the heads learn)."""
    example: np.ndarray
    """`[R]` the position of each row's example among the plain pass's rows."""
    ids: np.ndarray
    """`[N]` the examples' ids, in source order."""


def split_features(backbone, source, split, pipeline, passes):
    """`SplitFeatures` of `split`: one plain pass plus `passes - 1` augmented ones."""
    plain = dataclasses.replace(pipeline, augment=augment.AugmentConfig.off())
    ids, parts = None, []
    for i in range(passes):
        batches = input_pipeline.batched_examples(
            source, split, plain if i == 0 else pipeline, training=i > 0
        )
        inputs = batches.map(lambda f: (f[IMAGE], {LABEL: f[LABEL], BOX: f[BOX], ID: f[ID]}))
        features, labels, boxes, pass_ids = feature_cache.extract_features(
            backbone, inputs, "plain" if i == 0 else f"augmented pass {i}", with_ids=True
        )
        if ids is None:
            ids = pass_ids
            if len(set(ids)) < len(ids):
                raise ValueError(f"{source.name} split {split!r}: example ids repeat")
            position = {example_id: i for i, example_id in enumerate(ids)}
        parts.append((features, labels, boxes, np.array([position[x] for x in pass_ids])))
    features, labels, boxes, example = (np.concatenate(a) for a in zip(*parts, strict=True))
    return SplitFeatures(features, labels, boxes, example, ids)


def assign_folds(labels, folds, seed, groups=None):
    """`[N]` fold of each example: every class spread evenly over the folds, in a seeded order.

    `groups`: `[N]` a group id per example (near-duplicate photos share one); a group goes to one
    fold whole, so a copy with the same wrong label never trains the model that judges it. A
    group counts for the class of its first example.
    """
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    first = {}
    for i, group in enumerate(groups):
        first.setdefault(int(group), i)
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), np.int64)
    offset = 0
    for label in np.unique(labels):
        members = rng.permutation([g for g, i in first.items() if labels[i] == label])
        # Each class starts where the last one ended, so small classes do not all fill fold 0.
        for k, group in enumerate(members):
            assignment[groups == group] = (offset + k) % folds
        offset += len(members)
    return assignment


def similar_pairs(embeddings, similarity):
    """`(i, j)`, `i < j`, of the photos whose embeddings' cosine similarity is at least
    `similarity`. A block of rows at a time: memory grows with the split, not its square."""
    embeddings = np.asarray(embeddings, np.float32)
    for start in range(0, len(embeddings), SIMILARITY_BLOCK):
        cosine = embeddings[start : start + SIMILARITY_BLOCK] @ embeddings.T
        for row, j in zip(*np.nonzero(cosine >= similarity), strict=True):
            if start + row < j:
                yield start + int(row), int(j)


SIMILARITY_BLOCK = 1024
"""Photos compared with the whole split at a time (`similar_pairs`)."""


def duplicate_groups(embeddings, similarity):
    """`[N]` a group id per photo: photos joined by `similar_pairs` (and the photos joined to
    those) share one."""
    parent = list(range(len(embeddings)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in similar_pairs(embeddings, similarity):
        parent[root(i)] = root(j)
    return np.array([root(i) for i in range(len(embeddings))])


def split_embeddings(embed, source, split, pipeline, ids):
    """`[N, D]` `selection.embedder`'s embeddings of the split's photos, in the order of `ids`."""
    plain = dataclasses.replace(pipeline, augment=augment.AugmentConfig.off())
    found, parts = [], []
    for batch in input_pipeline.batched_examples(source, split, plain, training=False):
        # A Keras model's embedding reads the rendered inputs only (`selection.embedder`).
        parts.append(embed(None, batch[IMAGE]))
        found += [x.decode() for x in batch[ID].numpy()]
    if found != list(ids):
        raise RuntimeError("the split's order changed between two passes")
    return np.concatenate(parts)


def training_rows(example, assignment, fold):
    """`[R]` whether each row (of example `example[r]`) trains fold `fold`'s model: every view of
    the examples held out in other folds, none of its own."""
    return assignment[example] != fold


def train_heads(config, features, labels, boxes, seed):
    """A model (`config`: a resolved `TrainConfig`) whose heads trained on the given features for
    `config.frozen_epochs` epochs, as the frozen stage trains them; its backbone as built."""
    keras.utils.set_random_seed(seed)
    model = model_lib.build_model(config.model)
    model_lib.freeze_backbone(model)
    train_model = model_lib.features_training_view(model)
    batch_size = config.pipeline.batch_size
    steps = max(1, len(labels) // batch_size)
    compile_model(train_model, config, config.frozen_lr, steps, config.frozen_epochs)
    batches = (
        tf.data.Dataset.from_tensor_slices((features, {LABEL: labels, BOX: boxes}))
        .shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size, drop_remainder=len(labels) >= batch_size)
        .map(training_targets(config.model))
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )
    train_model.fit(
        batches, steps_per_epoch=steps, epochs=config.frozen_epochs, shuffle=False, verbose=0
    )
    return model


@dataclasses.dataclass(frozen=True)
class Looks:
    """What a model made of each example, original frame (boxes in BOX_FORMAT), in the order of
    `ids`."""

    ids: np.ndarray
    """`[N]` example ids."""
    labels: np.ndarray
    """`[N]` the given class."""
    given_boxes: np.ndarray
    """`[N, 4]` the given box."""
    sizes: np.ndarray
    """`[N, 2]` the upright image's height and width."""
    first_boxes: np.ndarray
    """`[N, 4]` the first look's box."""
    zoom_boxes: np.ndarray
    """`[N, 4]` the zoomed second look's own box (before it is merged with the first)."""
    boxes: np.ndarray
    """`[N, 4]` the prediction `predict` gives: the two looks merged."""
    probabilities: np.ndarray
    """`[N, C]` the merged class probabilities."""
    quality: np.ndarray | None
    """`[N]` the merged look's box quality (its predicted IoU), for models with the head."""
    check_boxes: np.ndarray
    """`[N, 4]` the box the model finds in a zoomed look around the *given* box (the view the
    second look takes around its own box): a right given box is found again there, even where
    the first look missed it; a box on background or around most of the photo is not."""
    check_probabilities: np.ndarray
    """`[N, C]` the class probabilities of that look."""
    embeddings: np.ndarray | None
    """`[N, D]` `selection.embedder`'s embeddings of the photos (for near-duplicates)."""

    def take(self, order):
        return Looks(
            **{
                field.name: None if value is None else value[order]
                for field in dataclasses.fields(self)
                for value in [getattr(self, field.name)]
            }
        )

    @staticmethod
    def concatenate(parts):
        return Looks(
            **{
                field.name: None
                if getattr(parts[0], field.name) is None
                else np.concatenate([getattr(p, field.name) for p in parts])
                for field in dataclasses.fields(Looks)
            }
        )


class Looker:
    """Looks at examples as `predict --refine` looks at a photo (no test-time augmentation), plus
    the look around the given box (`Looks`). Its traced functions are made once: the fold models
    take turns in one model (`out_of_sample` loads each fold's heads into it), so no fold traces
    them again."""

    def __init__(self, predictor):
        self.predictor = predictor
        self._first = tf.function(predictor.predict_views, reduce_retracing=True)
        # No autograph: plain TF ops (autograph warns that it cannot convert a method's closure).
        self._zoomed_at = tf.function(self._zoomed_at_eager, reduce_retracing=True, autograph=False)

    def _zoomed_at_eager(self, images, sizes, boxes):
        """The look at a zoomed view around each box, original frame."""
        predictor = self.predictor
        zoom_views = views.render_zoom_views(
            images, sizes, boxes, predictor.image_size, predictor.resize_mode
        )
        zoom = predictor.predict_inputs(zoom_views.inputs)
        return zoom._replace(boxes=render.to_original_frame(zoom.boxes, zoom_views.windows))

    def __call__(self, source, split, batch_size=16):
        """`Looks` at every example of `split`."""
        parts = []
        batches = evaluation.evaluation_dataset(source, split, self.predictor, "none", batch_size)
        for batch in batches:
            parts.append(self._look(batch))
        return Looks.concatenate(parts)

    def _look(self, batch):
        first = self._first(views.Views(batch["inputs"], batch["windows"], batch["mirrored"]))
        sizes = batch[render.ORIGINAL_SIZE]
        zoom = self._zoomed_at(batch[IMAGE], sizes, first.boxes)
        merged = views.merge_refinement(first, zoom, self.predictor.refine_rule)
        check = self._zoomed_at(batch[IMAGE], sizes, batch[BOX])
        return Looks(
            ids=np.array([x.decode() for x in batch[ID].numpy()], dtype=object).astype(str),
            labels=batch[LABEL].numpy(),
            given_boxes=batch[BOX].numpy(),
            sizes=sizes.numpy(),
            first_boxes=first.boxes.numpy(),
            zoom_boxes=zoom.boxes.numpy(),
            boxes=merged.boxes.numpy(),
            probabilities=merged.probabilities.numpy(),
            quality=None if merged.quality is None else merged.quality.numpy(),
            check_boxes=check.boxes.numpy(),
            check_probabilities=check.probabilities.numpy(),
            embeddings=None,  # the split's, computed once (`split_embeddings`)
        )


@dataclasses.dataclass(frozen=True)
class OutOfSample:
    """Every example's `Looks` by the fold model that never trained on it, and its fold."""

    looks: Looks
    folds: np.ndarray
    """`[N]` the fold each example was held out in."""


def out_of_sample(config, source, split, folds, progress=None):
    """`OutOfSample` predictions for every example of `split` by `folds`-fold cross-fitting.

    `config`: a resolved `TrainConfig` (the model, the frozen stage's epochs, learning rate and
    feature passes, the pipeline). `progress(fold)`: called after each fold.
    """
    model = model_lib.build_model(config.model)  # its heads take each fold's turn
    features = split_features(
        model.get_layer("backbone"), source, split, config.input_pipeline(), config.feature_passes
    )
    predictor = Predictor.from_model(model, name=f"the {folds} fold models")
    look = Looker(predictor)
    # The backbone is frozen: one embedding of each photo serves every fold.
    embeddings = split_embeddings(
        selection.embedder(predictor)[1], source, split, config.input_pipeline(), features.ids
    )
    plain_labels = features.labels[: len(features.ids)]
    groups = duplicate_groups(embeddings, selection.DUPLICATE_SIMILARITY[selection.FEATURES])
    assignment = assign_folds(plain_labels, folds, config.seed or 0, groups)
    if np.bincount(assignment, minlength=folds).min() == 0:
        # Groups so large that a fold is empty (another may hold every example): without them.
        logging.warning("Near-duplicate groups leave a fold empty; folds drawn without them.")
        assignment = assign_folds(plain_labels, folds, config.seed or 0)
    parts = []
    for fold in range(folds):
        held_out = assignment == fold
        rows = training_rows(features.example, assignment, fold)
        trained = train_heads(
            config,
            features.features[rows],
            features.labels[rows],
            features.boxes[rows],
            seed=(config.seed or 0) + fold,
        )
        model.get_layer("heads").set_weights(trained.get_layer("heads").get_weights())
        del trained
        fold_source = Selected(source, {split: features.ids[held_out]})
        parts.append(look(fold_source, split, config.pipeline.batch_size))
        logging.info("Fold %d of %d: %d examples judged.", fold + 1, folds, int(held_out.sum()))
        if progress:
            progress(fold)
    looks = Looks.concatenate(parts)
    order = {example_id: i for i, example_id in enumerate(features.ids)}
    looks = looks.take(np.argsort([order[x] for x in looks.ids], kind="stable"))
    if len(looks.ids) != len(features.ids):
        raise RuntimeError(f"{len(features.ids)} examples, {len(looks.ids)} judged")
    return OutOfSample(dataclasses.replace(looks, embeddings=embeddings), assignment)


def progress_bar(total, unit):
    """A progress bar on a terminal, silent otherwise."""
    return keras.utils.Progbar(total, unit_name=unit, verbose=1 if sys.stdout.isatty() else 0)

"""What to label next: unlabelled photos ranked by the expected value of labelling them.

Three signals, each a doubt in [0, 1] in the units of an error of the model's own label:

  box    1 - box_quality: the model's predicted 1 - IoU of its box (models with a box-quality
         head; for the others the term is dropped, not guessed)
  class  1 - the top class probability: the model's own probability that its class is wrong
  looks  1 - IoU of the first look's box and the zoomed second look's (`localizer.ops.views`):
         the Jaccard distance between two looks at one object. It is a metric, so one of the
         two boxes is at least half of it away from the true box, whatever the model believes.

A photo's value is the weighted mean of its signals (`WEIGHTS`): the error a labeller would
correct if the model's guess were taken as the label. `choose` takes photos by value, greedily,
and skips a photo whose embedding is a near-duplicate of one already chosen (cosine similarity
at least the threshold of its kind of embedding, `DUPLICATE_SIMILARITY`): a re-saved, resized
or mirrored copy of a photo already chosen teaches nothing new (photos labelled before are not
looked at: pass only the unlabelled ones).

The signals can be computed by `candidates_from_files` or by anyone else (fold models in a
simulation): `Candidates` holds them, `value_scores` and `choose` read nothing else. Its
embeddings are one of two kinds:

  features   (a Keras model, `predictor.keras_model`) the backbone's top map (not a finer map
             packed after it) on the rendered first-look input and on its mirror image, averaged
             over its grid and summed, then a signed square root and the L2 norm: what the model
             sees, whichever way round.
  thumbnail  (an exported SavedModel or its TFLite file: no backbone to ask) a 16 x 16
             grayscale thumbnail of the whole photo, averaged with its mirror image, its mean
             removed and L2-normalized: it finds copies of one photo (re-encoded, resized,
             mirrored), not a photo of the same scene taken again.

The thresholds (`DUPLICATE_SIMILARITY`) were measured on realmix (../shared/data/realmix, 1021
photos, 9 classes) with its default model (efficientnet_lite0, 224 px; the features of another
backbone would need their own measurement) by `python -m experiments.near_duplicates`: the
cosine similarity of each photo with three copies of it (JPEG quality 75; 80% of its side, JPEG
90; mirrored) against that with the nearest other photo of its class.

                   a copy: lowest, 0.5%, 1%, median     the nearest other: median, 99%, max
  features, 0.962  JPEG 0.975 0.982 0.985 0.998          0.816 0.956 0.992
                   80%  0.948 0.962 0.966 0.991
                   mirrored 1.000
  thumbnail, 0.98  JPEG 0.999, 80% 1.000, mirrored 1.000 0.698 0.964 1.000

At 0.962 the features miss 5 of the 1021 resized copies (small photos made smaller; no
re-encoded or mirrored one) and join 8 photos to another, which are realmix's own near-duplicates
when looked at: one licence plate photo twice, a raccoon at two resolutions, a raccoon cropped
and captioned, two frames of one car. The closest distinct photos, two airliners side on against
blue sky, meet at 0.960. At 0.98 the thumbnails miss no copy and join 7 photos: the plate and
the raccoon pairs, and three edits of one pistol photo; the cropped raccoon (0.964) and the two
frames (0.944) are not copies to them.
"""

import dataclasses
import sys
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from localizer.inference import image_files
from localizer.model import backbones
from localizer.ops import views
from pipelines import boxes as box_lib
from pipelines import image_header, render

BOX, CLASS, LOOKS = "box", "class", "looks"
"""The signals, by name: `value_scores`' parts and the selection table's columns."""

REASONS = {BOX: "low box quality", CLASS: "class uncertain", LOOKS: "looks disagree"}
"""Why a photo was chosen, in words: its largest weighted signal."""

WEIGHTS = {BOX: 1.0, CLASS: 1.0, LOOKS: 1.0}
"""Equal weights, and a mean rather than a rank average. The three signals are the same kind of
number (an error of the model's guess, in [0, 1]), so their mean is one too and a photo's value
does not depend on which other photos are in the pool; ranks would blow up differences of noise
(when the two looks agree on every photo, their disagreement ranks would still spread over
[0, 1]). Nothing here is fitted: the label-efficiency simulation measures the choice
(experiments/RESULTS.md)."""

FEATURES, THUMBNAIL = "features", "thumbnail"
"""The kinds of embedding (see the module docstring)."""

DUPLICATE_SIMILARITY = {FEATURES: 0.962, THUMBNAIL: 0.98}
"""Cosine similarity from which two photos are near-duplicates, per kind of embedding: under
nearly every copy's similarity to its photo, over that of distinct photos of its class on
realmix (figures in the module docstring)."""

THUMBNAIL_SIDE = 16
"""Side of the thumbnail embedding (`THUMBNAIL`), in pixels."""

BATCH_SIZE = 16


@dataclasses.dataclass(frozen=True)
class Candidates:
    """What a model made of unlabelled photos: the signals `value_scores` and `choose` read."""

    paths: list[str]
    probabilities: np.ndarray
    """`[N, C]` class probabilities of the first look."""
    box_quality: np.ndarray | None
    """`[N]` the first look's predicted IoU of its box; None for models without a box-quality
    head."""
    first_boxes: np.ndarray
    """`[N, 4]` BOX_FORMAT, original frame: the first look (the whole photo)."""
    refined_boxes: np.ndarray
    """`[N, 4]` BOX_FORMAT, original frame: the zoomed second look's own box (before it is
    merged with the first, which would hide part of their disagreement)."""
    embeddings: np.ndarray
    """`[N, D]` L2-normalized: photos whose embeddings are close are near-duplicates."""
    embedding_kind: str = FEATURES
    """`FEATURES` or `THUMBNAIL`: which threshold of `DUPLICATE_SIMILARITY` fits the
    embeddings."""

    def __len__(self):
        return len(self.paths)


class ValueScores(NamedTuple):
    """`value_scores`' answer."""

    values: np.ndarray
    """`[N]` the value of labelling each photo, in [0, 1]: higher, label it first."""
    parts: dict
    """`{signal: [N] its doubt in [0, 1]}` for the signals the model has (`BOX` only with box
    quality)."""

    def reasons(self):
        """`[N]` why each photo is worth labelling: the words of its largest weighted signal."""
        names = list(self.parts)
        weighted = np.stack([WEIGHTS[name] * self.parts[name] for name in names], axis=-1)
        return [REASONS[names[i]] for i in np.argmax(weighted, axis=-1)]


def value_scores(candidates):
    """The value of labelling each photo and its parts (`ValueScores`): the weighted mean of
    the signals the model has (see the module docstring)."""
    probabilities = np.asarray(candidates.probabilities, np.float32)
    parts = {}
    if candidates.box_quality is not None:
        parts[BOX] = 1.0 - np.clip(np.asarray(candidates.box_quality, np.float32), 0.0, 1.0)
    parts[CLASS] = 1.0 - probabilities.max(axis=-1) if len(probabilities) else np.zeros([0])
    overlap = np.asarray(box_lib.iou(candidates.first_boxes, candidates.refined_boxes))
    parts[LOOKS] = 1.0 - np.clip(overlap.reshape([len(candidates)]), 0.0, 1.0)
    weights = np.array([WEIGHTS[name] for name in parts], np.float32)
    stacked = np.stack([parts[name] for name in parts], axis=-1).reshape([-1, len(parts)])
    return ValueScores(stacked @ weights / weights.sum(), parts)


def choose(candidates, budget, duplicate_similarity=None):
    """Indices of at most `budget` photos to label, most valuable first.

    Greedy: photos in order of value (ties in input order), each taken unless its embedding's
    cosine similarity with a photo already taken reaches `duplicate_similarity` (default: the
    calibrated threshold of the candidates' kind of embedding). A budget larger than the pool
    takes every photo that is not a near-duplicate of a more valuable one.
    """
    return choose_explained(candidates, budget, duplicate_similarity)[0]


def choose_explained(candidates, budget, duplicate_similarity=None):
    """`choose`, and the photos it skipped: `(chosen, {skipped index: index of the chosen photo
    it duplicates})`."""
    if duplicate_similarity is None:
        duplicate_similarity = DUPLICATE_SIMILARITY[candidates.embedding_kind]
    values = value_scores(candidates).values
    embeddings = np.asarray(candidates.embeddings, np.float32)
    chosen, skipped = [], {}
    for index in np.argsort(-values, kind="stable"):
        if len(chosen) >= budget:
            break
        if chosen:
            similarity = embeddings[chosen] @ embeddings[index]
            nearest = int(np.argmax(similarity))
            if similarity[nearest] >= duplicate_similarity:
                skipped[int(index)] = chosen[nearest]
                continue
        chosen.append(int(index))
    return chosen, skipped


# --- the signals of image files -------------------------------------------------------------


class Failure(NamedTuple):
    """A file that could not be looked at."""

    path: str
    message: str
    """One line, naming the file (`localizer.inference.image_files`' error lines)."""


READ_ERRORS = (OSError, image_header.ImageHeaderError, tf.errors.InvalidArgumentError)
"""What reading one file may raise: that file's failure, the others go on."""


def candidates_from_files(
    predictor,
    paths,
    max_image_pixels=image_header.MAX_IMAGE_PIXELS,
    batch_size=BATCH_SIZE,
    progress=True,
):
    """Looks at each image file twice (the whole photo, then zoomed on its box) with `predictor`
    (a `localizer.inference.predictor.Predictor`).

    `paths` are files (`image_files.image_files` lists folders); a file named twice, however
    spelled, is looked at once. Returns `(Candidates, [Failure])`: a file that cannot be read
    (`image_files.read_image`: its header checked first, `max_image_pixels`, EXIF orientation)
    is a failure and the others go on. `progress`: a bar on a terminal.
    """
    paths = image_files.distinct_files(paths)
    kind, embed = embedder(predictor)
    bar = keras.utils.Progbar(
        len(paths), unit_name="image", verbose=1 if progress and sys.stdout.isatty() else 0
    )
    looked, failures, batch = [], [], []
    for number, path in enumerate(paths, 1):
        try:
            batch.append((path, image_files.read_image(path, max_image_pixels)))
        except READ_ERRORS as error:
            failures.append(Failure(path, image_files._one_line(error, path)))
        if batch and (len(batch) == batch_size or number == len(paths)):
            looked.append(_look(predictor, batch, embed))
            batch = []
        bar.update(number)
    columns = [np.concatenate(parts) for parts in zip(*looked, strict=True)] if looked else None
    if columns is None:
        columns = [[], *(np.zeros([0, *shape], np.float32) for shape in _empty_shapes(predictor))]
    kept, probabilities, quality, first, refined, embeddings = columns
    return (
        Candidates(
            paths=list(kept),
            probabilities=probabilities,
            box_quality=quality if predictor.has_box_quality else None,
            first_boxes=first,
            refined_boxes=refined,
            embeddings=embeddings,
            embedding_kind=kind,
        ),
        failures,
    )


def _empty_shapes(predictor):
    classes = len(predictor.class_names)
    return ([classes], [], [4], [4], [0])


def _look(predictor, batch, embed):
    """The signals of a batch of `(path, decoded image)`: paths, probabilities, quality (zeros
    without it), first and second boxes, embeddings; each a numpy array over the batch."""
    size, mode = predictor.image_size, predictor.resize_mode
    images = [image for _, image in batch]
    rendered = [views.render_views(image, size, mode, "none") for image in images]
    first = predictor.predict_views(
        views.Views(*(tf.stack(parts) for parts in zip(*rendered, strict=True)))
    )
    zoom_views = [
        views.render_zoom_view(image, box, size, mode)
        for image, box in zip(images, first.boxes, strict=True)
    ]
    zoom = predictor.predict_inputs(tf.stack([view.inputs for view in zoom_views]))
    second = render.to_original_frame(zoom.boxes, tf.stack([view.windows for view in zoom_views]))
    embeddings = embed(images, tf.stack([view.inputs[0] for view in rendered]))
    quality = first.quality if first.quality is not None else tf.zeros([len(batch)])
    return (
        np.array([path for path, _ in batch], dtype=object),
        first.probabilities.numpy(),
        np.asarray(quality, np.float32),
        first.boxes.numpy(),
        second.numpy(),
        np.asarray(embeddings, np.float32),
    )


def embedder(predictor):
    """`(kind, embed)`: the kind of embedding `predictor` gives (`FEATURES` for a Keras model,
    else `THUMBNAIL`) and `embed(decoded images, their rendered first-look inputs uint8
    [B, S, S, 3]) -> [B, D]` L2-normalized."""
    if predictor.keras_model is None:
        return THUMBNAIL, lambda images, inputs: np.stack([thumbnail_embedding(i) for i in images])
    backbone = predictor.keras_model.get_layer("backbone")
    # The backbone's own top map: a packed stride-16 map (`backbones.fine_feature_channels`)
    # follows its channels, and it says where things are, for the box head, more than what they
    # are (block outputs before any activation: with them, at the threshold that misses 1% of
    # the resized copies, 15 realmix photos meet a distinct photo instead of 8).
    channels = backbone.output.shape[-1] - 4 * backbones.fine_feature_channels(backbone)

    @tf.function(reduce_retracing=True)
    def pooled(inputs):
        # Averaged over the grid for the input and its mirror image, summed: a mirrored copy is
        # the same photo (without the mirror, 100 of realmix's 1021 mirrored copies fall under
        # the threshold). Then a signed square root before the L2 norm (power normalization,
        # Perronnin et al. 2010), so that a few strong channels do not make distinct photos alike
        # (without it, 15 photos instead of 8 at 1% of the resized copies missed).
        inputs = tf.cast(inputs, tf.float32)
        both = backbone(tf.concat([inputs, tf.reverse(inputs, axis=[2])], 0), training=False)
        halves = tf.split(tf.reduce_mean(both[..., :channels], axis=[1, 2]), 2)
        summed = halves[0] + halves[1]
        return tf.math.l2_normalize(tf.sign(summed) * tf.sqrt(tf.abs(summed)), axis=-1)

    return FEATURES, lambda images, inputs: pooled(inputs).numpy()


def embed_images(predictor, images, embed=None):
    """`[N, D]`: the embeddings `candidates_from_files` gives decoded uint8 images (`embed`: one
    `embedder(predictor)` made once, for many calls)."""
    embed = embed or embedder(predictor)[1]
    size, mode = predictor.image_size, predictor.resize_mode
    inputs = tf.stack([views.render_views(i, size, mode, "none").inputs[0] for i in images])
    return embed(images, inputs)


def thumbnail_embedding(image, side=THUMBNAIL_SIDE):
    """`[side * side]` of a decoded image: its grayscale thumbnail averaged with its mirror image
    (a mirrored copy is the same photo), mean removed, L2-normalized."""
    gray = tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))
    thumbnail = tf.image.resize(gray, [side, side], method="area")[..., 0]
    symmetric = (thumbnail + tf.reverse(thumbnail, axis=[1])).numpy().reshape([-1])
    centred = symmetric - symmetric.mean()
    return centred / max(float(np.linalg.norm(centred)), 1e-12)

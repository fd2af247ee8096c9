"""Which labels are likely wrong: every example ranked by the evidence of out-of-sample looks.

Two kinds of evidence, each a score in [0, 1]; the larger one decides the
example's place and kind:

- the class: `1 - p(given class)` from a model that never saw the example
  (the self-confidence of confident learning, Northcutt et al. 2021);
- the box: `1 - max(IoU(given, model's box), IoU(given, box found around the
  given box))`. The model's own box (the two looks merged, as `predict`
  gives it) misses a right box now and then; a look zoomed around the given
  box finds a right box again even then, and finds no box there when the
  given one lies on background or around most of the photo. A label keeps
  the benefit of the doubt when either look agrees with it.

Both scores read 0.5 the way the localization metric does: a given box that
no look meets at IoU >= 0.5, a given class the model gives less than even
odds. Above `SUSPECT_SCORE`, an example is a suspect with a kind and a
suggested label. The model's box quality is not used: on injected errors
(experiments/RESULTS.md, "Label audit") it ranked clean examples the model
is sure but wrong about above moved and grown boxes.

Near-duplicate photos (`NEAR_DUPLICATE_SIMILARITY` of their features) whose
given classes differ are named as such: at least one of them is wrong.

The kind of a box error comes from how the given box lies against the
model's (`box_kind`); an example under `SUSPECT_SCORE` has kind "none".
"""

import dataclasses

import numpy as np

from localizer.curation import out_of_sample, selection
from localizer.ops import statistics
from pipelines import boxes as box_lib

WRONG_CLASS = "wrong_class"
BOX_ELSEWHERE = "box_elsewhere"
BOX_TOO_LOOSE = "box_too_loose"
BOX_TOO_TIGHT = "box_too_tight"
BOX_OFF = "box_off"
DUPLICATE = "duplicate_other_class"
NONE = "none"
KINDS = (WRONG_CLASS, BOX_ELSEWHERE, BOX_TOO_LOOSE, BOX_TOO_TIGHT, BOX_OFF, DUPLICATE, NONE)

SUSPECT_SCORE = 1.0 - statistics.LOC_IOU_THRESHOLD
"""Scores above it are suspects, with a kind and a suggested label (the corrections file): no
look meets the given box at the localization threshold (IoU 0.5), or the given class is less
likely than not."""
ELSEWHERE_IOU = 0.1
"""A given box overlapping the model's by at most this IoU is elsewhere."""
NESTED_COVER = 0.8
"""A box holding at least this share of the other's area holds it (too loose or too tight) ..."""
NESTED_AREA_RATIO = 2.0
"""... when it is at least this many times the other's area."""
NEAR_DUPLICATE_SIMILARITY = selection.DUPLICATE_SIMILARITY[selection.FEATURES]
"""Cosine similarity of two photos' embeddings (`selection.embedder`) from which they are one
photo: `select`'s threshold, calibrated on the features of a model fine-tuned on realmix. With
the ImageNet backbone the audit's fold models share, it joins 4 pairs of realmix train (2 of
licence plates, 2 of raccoons: near-duplicates select's calibration found too); at 0.9 it would
join groups of up to 9 distinct photos."""
DUPLICATE_SCORE = 0.75
"""The score of a near-duplicate labelled with another class: one of the two is wrong, whatever
the model thinks of each alone."""


@dataclasses.dataclass(frozen=True)
class Ranking:
    """Every example, most suspect first: the `out_of_sample.Looks` reordered and, per example,
    its kind, score, the evidence in words, and the suggested class and box."""

    looks: out_of_sample.Looks
    kinds: np.ndarray
    scores: np.ndarray
    evidence: list
    suggested_labels: np.ndarray
    suggested_boxes: np.ndarray
    """`[N, 4]` BOX_FORMAT, original upright frame."""

    @property
    def suspects(self):
        """How many rows, from the first, are suspects (kind other than "none")."""
        return int(np.sum(self.kinds != NONE))


def class_scores(looks):
    """`[N]` 1 - the out-of-sample probability of the given class."""
    return 1.0 - looks.probabilities[np.arange(len(looks.labels)), looks.labels]


def box_scores(looks):
    """`[N]` 1 - the IoU of the given box with the best matching honest look at it, in [0, 1]."""
    best = np.maximum(
        _iou(looks.given_boxes, looks.boxes), _iou(looks.given_boxes, looks.check_boxes)
    )
    return np.clip(1.0 - best, 0.0, 1.0)


def _iou(a, b):
    return box_lib.iou(a.astype(np.float32), b.astype(np.float32)).numpy()


def _area(boxes):
    return box_lib.area(np.asarray(boxes, np.float32)).numpy()


def box_kind(given, model):
    """How a given box that the model disagrees with lies against the model's box (`[4]` each)."""
    given, model = given[None].astype(np.float32), model[None].astype(np.float32)
    top_left = np.maximum(given[:, :2], model[:, :2])
    bottom_right = np.minimum(given[:, 2:], model[:, 2:])
    overlap = float(np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)[0])
    given_area, model_area = float(_area(given)[0]), float(_area(model)[0])
    if overlap >= NESTED_COVER * model_area and given_area >= NESTED_AREA_RATIO * model_area:
        return BOX_TOO_LOOSE
    if overlap >= NESTED_COVER * given_area and model_area >= NESTED_AREA_RATIO * given_area:
        return BOX_TOO_TIGHT
    if float(_iou(given, model)[0]) <= ELSEWHERE_IOU:
        return BOX_ELSEWHERE
    return BOX_OFF


def near_duplicates(embeddings, labels, similarity=NEAR_DUPLICATE_SIMILARITY):
    """`{example: [other examples]}`: near-duplicate photos given another class."""
    found = {}
    for i, j in out_of_sample.similar_pairs(embeddings, similarity):
        if labels[i] != labels[j]:
            found.setdefault(i, []).append(j)
            found.setdefault(j, []).append(i)
    return found


def rank(result, class_names):
    """The `Ranking` of an `out_of_sample.OutOfSample`."""
    looks = result.looks
    by_class, by_box = class_scores(looks), box_scores(looks)
    duplicates = near_duplicates(looks.embeddings, looks.labels)
    scores = np.maximum(by_class, by_box)
    for i in duplicates:
        scores[i] = max(scores[i], DUPLICATE_SCORE)
    order = np.argsort(-scores, kind="stable")
    kinds, evidence, labels, boxes = [], [], [], []
    for i in order:
        predicted = int(looks.probabilities[i].argmax())
        kind = NONE
        if scores[i] > SUSPECT_SCORE:
            if i in duplicates and scores[i] == DUPLICATE_SCORE > max(by_class[i], by_box[i]):
                kind = DUPLICATE
            elif by_class[i] >= by_box[i]:
                kind = WRONG_CLASS
            else:
                kind = box_kind(looks.given_boxes[i], looks.boxes[i])
        # Each half of the label changes on its own evidence; the kind names the stronger.
        suspect = kind != NONE
        kinds.append(kind)
        labels.append(predicted if suspect and by_class[i] > SUSPECT_SCORE else looks.labels[i])
        box_wrong = suspect and by_box[i] > SUSPECT_SCORE
        boxes.append(looks.boxes[i] if box_wrong else looks.given_boxes[i])
        evidence.append(
            _evidence(
                looks, i, predicted, class_names, [looks.ids[j] for j in duplicates.get(i, [])]
            )
        )
    return Ranking(
        looks=looks.take(order),
        kinds=np.array(kinds),
        scores=scores[order],
        evidence=evidence,
        suggested_labels=np.array(labels, np.int64),
        suggested_boxes=np.array(boxes, np.float32).reshape(-1, 4),
    )


def _evidence(looks, i, predicted, class_names, duplicates):
    """What the model said of example `i`, in words."""
    given = int(looks.labels[i])
    one = slice(i, i + 1)
    parts = [f"p({class_names[given]})={looks.probabilities[i, given]:.2f}"]
    if predicted != given:
        parts.append(f"model: {class_names[predicted]} {looks.probabilities[i, predicted]:.2f}")
    given_vs_model = float(_iou(looks.given_boxes[one], looks.boxes[one])[0])
    parts.append(f"IoU(given, model box)={given_vs_model:.2f}")
    found_again = float(_iou(looks.given_boxes[one], looks.check_boxes[one])[0])
    parts.append(f"IoU(given, box found around it)={found_again:.2f}")
    if looks.quality is not None:
        parts.append(f"model box quality={looks.quality[i]:.2f}")
    area_ratio = _area(looks.given_boxes[one])[0] / max(_area(looks.boxes[one])[0], 1e-9)
    parts.append(f"area given/model={area_ratio:.2f}")
    if duplicates:
        parts.append(f"near-duplicate of {', '.join(duplicates)} (another class)")
    return "; ".join(parts)

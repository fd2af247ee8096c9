"""What every dataset source yields, and the index-time steps they share.

A source turns some on-disk (or generated) dataset into a `tf.data.Dataset` of
*source elements*: dicts with

  - `IMAGE`: uint8 `[H, W, 3]` pixels, or `tf.string` encoded JPEG/PNG bytes;
    or instead `IMAGE_PATH`: a `tf.string` file path (read by `pipelines.decode.decode`),
  - `LABEL`: int32 class index into `source.class_names`,
  - `BOX`: float32 `[4]` box in `pipelines.boxes.BOX_FORMAT` (normalized yxyx),
  - `ID`: `tf.string` naming the example (file name or synthetic index).

`pipelines.decode.decode` turns all three image forms into uint8 RGB, so the rest
of the pipeline never cares where an example came from.

Datasets with several objects per image (Pascal VOC) are reduced to one target
here, at index time, by a policy (`choose_target`), and every source counts what it kept,
repaired and skipped, so a user sees at once how much of their data is used.
"""

import abc
import collections
import dataclasses
import hashlib

import numpy as np
import tensorflow as tf
from absl import logging

from pipelines import boxes as box_lib
from pipelines.element import BOX, ID, IMAGE, IMAGE_PATH, LABEL  # noqa: F401 (the source's API)
from pipelines.errors import UserError

POLICIES = ("largest", "single")
"""Single-target policies for multi-object images.

largest: the largest non-difficult object is the target; its class is the label.
single: keep only images with exactly one non-difficult object.
"""


class DatasetError(UserError, ValueError):
    """A dataset cannot be read as asked; the message names the file or field."""


@dataclasses.dataclass
class IndexStats:
    """What building an index kept, repaired and skipped, by reason and by file."""

    kept: int = 0
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    repaired: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    problems: list = dataclasses.field(default_factory=list)  # (file, "skipped"|"repaired", reason)

    def skip(self, reason, count=1, file=None):
        self.skipped[reason] += count
        if file is not None:
            self.problems.append((str(file), "skipped", reason))

    def repair(self, reason, count=1, file=None):
        self.repaired[reason] += count
        if file is not None:
            self.problems.append((str(file), "repaired", reason))

    @property
    def skipped_fraction(self):
        """Share of the listed examples that were skipped (0 when none were listed)."""
        total = self.kept + sum(self.skipped.values())
        return sum(self.skipped.values()) / total if total else 0.0

    def summary(self):
        parts = [f"kept {self.kept}"]
        parts += [f"skipped {n} ({reason})" for reason, n in sorted(self.skipped.items())]
        parts += [f"repaired {n} ({reason})" for reason, n in sorted(self.repaired.items())]
        return ", ".join(parts)


@dataclasses.dataclass
class ImageObjects:
    """One image's annotated objects, before a target is chosen.

    `boxes` are float32 `[N, 4]` in BOX_FORMAT (possibly inverted or out of
    range: `choose_target` sanitizes them), `labels` int `[N]`, `difficult` bool `[N]`.
    """

    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray


def choose_target(objects, policy, stats=None, file=None):
    """Picks the one object an image is trained on, or None to skip the image.

    Boxes are first repaired (`pipelines.boxes.sanitize`); degenerate ones and
    difficult ones are never chosen.

    Args:
      objects: the image's `ImageObjects`.
      policy: one of `POLICIES`.
      stats: optional `IndexStats` that counts repairs and the reason for a skip.
      file: the image's name, recorded with its problems in `stats`.

    Returns:
      `(label, box)` with the box in BOX_FORMAT, or None.
    """
    if policy not in POLICIES:
        raise ValueError(f"Unknown target policy {policy!r}; expected one of {POLICIES}.")
    stats = stats if stats is not None else IndexStats()
    # Annotations can disagree on the number of objects (TFDS mock data does).
    count = min(len(objects.boxes), len(objects.labels), len(objects.difficult))
    if count == 0:
        stats.skip("no objects", file=file)
        return None
    raw = np.asarray(objects.boxes[:count], np.float32).reshape(count, 4)
    repaired, valid = box_lib.sanitize(raw)
    repaired, valid = repaired.numpy(), valid.numpy()
    changed = np.any(np.abs(repaired - raw) > 1e-6, axis=-1) & valid
    if changed.any():
        stats.repair("box clipped or un-inverted", int(changed.sum()), file)
    if (~valid).any():
        stats.repair("degenerate box ignored", int((~valid).sum()), file)
    usable = valid & ~np.asarray(objects.difficult[:count], bool)
    if not usable.any():
        stats.skip("no valid non-difficult object", file=file)
        return None
    if policy == "single" and usable.sum() != 1:
        stats.skip("several objects (policy=single)", file=file)
        return None
    areas = box_lib.area(repaired).numpy()
    index = int(np.argmax(np.where(usable, areas, -1.0)))
    stats.kept += 1
    return int(objects.labels[index]), repaired[index]


class Source(abc.ABC):
    """A dataset: class names plus `load(split)` giving source elements."""

    name = "source"

    @property
    @abc.abstractmethod
    def class_names(self):
        """List of class names; a label is an index into it."""

    @abc.abstractmethod
    def load(self, split):
        """A finite `tf.data.Dataset` of source elements for `split`, in a fixed order."""

    def num_examples(self, split):
        """Number of elements `load(split)` yields, or None when unknown."""
        return None

    def index_stats(self, split):
        """The `IndexStats` of `split` (after indexing), or None for sources without an index."""
        return None

    def original_files(self, split):
        """`{example id: the photo's path as the dataset holds it}`, or None for sources without
        files (generated data, TFDS)."""
        return None

    def identity(self, split):
        """What `split`'s examples are, as a JSON-able dict: equal identities give equal examples.

        A work dir keeps the identity of the data it was trained on and resumes
        only when it is unchanged (`localizer.training.workdir`).
        """
        return {
            "source": self.name,
            "classes": list(self.class_names),
            "examples": self.num_examples(split),
        }

    @property
    def num_classes(self):
        return len(self.class_names)


class Subset(Source):
    """The first `max_examples` elements of each split of another source (quick runs)."""

    def __init__(self, source, max_examples):
        self.source = source
        self.max_examples = int(max_examples)
        self.name = source.name

    @property
    def class_names(self):
        return self.source.class_names

    def num_examples(self, split):
        total = self.source.num_examples(split)
        return self.max_examples if total is None else min(total, self.max_examples)

    def load(self, split):
        return self.source.load(split).take(self.max_examples)

    def index_stats(self, split):
        return self.source.index_stats(split)

    def original_files(self, split):
        return self.source.original_files(split)

    def identity(self, split):
        return {**self.source.identity(split), "max_examples": self.max_examples}


class Selected(Source):
    """Only the named examples of each split of another source: `ids_by_split = {split: ids}`
    (a split not named is whole); in the source's order."""

    def __init__(self, source, ids_by_split):
        self.source = source
        self.ids_by_split = {split: [str(x) for x in ids] for split, ids in ids_by_split.items()}
        self.name = source.name

    @property
    def class_names(self):
        return self.source.class_names

    def num_examples(self, split):
        if split not in self.ids_by_split:
            return self.source.num_examples(split)
        return len(set(self.ids_by_split[split]))

    def load(self, split):
        examples = self.source.load(split)
        if split not in self.ids_by_split:
            return examples
        wanted = sorted(set(self.ids_by_split[split]))
        table = tf.lookup.StaticHashTable(  # one lookup per element, whatever the number wanted
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(wanted, tf.string), tf.ones([len(wanted)], tf.int32)
            ),
            default_value=0,
        )
        return examples.filter(lambda element: table.lookup(element[ID]) > 0)

    def original_files(self, split):
        return self.source.original_files(split)

    def identity(self, split):
        identity = self.source.identity(split)
        if split in self.ids_by_split:
            chosen = "\n".join(sorted(set(self.ids_by_split[split]))).encode()
            identity = {**identity, "selected": hashlib.sha256(chosen).hexdigest()[:16]}
        return identity


def stratified_indices(labels, count, seed):
    """Positions of up to `count` examples, taken round-robin over the classes.

    The classes are visited in a seeded random order and each class's examples
    in a seeded random order, so every class shows up before any shows twice.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    queues = [
        list(rng.permutation(np.flatnonzero(labels == c)))
        for c in rng.permutation(np.unique(labels))
    ]
    chosen = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(int(queue.pop(0)))
    return chosen


def digest_of_arrays(arrays):
    """A short sha256 of named numpy arrays (their names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        if array.dtype.kind in "OU":
            array = np.array([str(v).encode("utf-8") for v in array.ravel()], dtype=object)
            data = b"\0".join(array)
        else:
            data = array.tobytes()
        digest.update(f"{name}|{array.dtype}|{array.shape}|".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


def log_index(source_name, split, stats):
    """Logs one line on what an index kept, so users see how much data is used."""
    logging.info("%s[%s]: %s", source_name, split, stats.summary())


DEFAULT_MAX_SKIPPED_FRACTION = 0.05


def check_usable(source, split, max_skipped_fraction=DEFAULT_MAX_SKIPPED_FRACTION):
    """Fails early, naming the reasons, when too much of a split is unusable."""
    count = source.num_examples(split)
    stats = source.index_stats(split)
    if count == 0:
        raise DatasetError(f"{source.name} split {split!r}: no usable example.")
    if stats is not None and stats.skipped_fraction > max_skipped_fraction:
        raise DatasetError(
            f"{source.name} split {split!r}: {stats.skipped_fraction:.1%} of the examples are "
            f"unusable (more than {max_skipped_fraction:.0%}): {stats.summary()}. Fix the data, or "
            "raise --set=data.max_skipped_fraction=..."
        )


def write_problems(path, stats_by_split):
    """Writes every skipped or repaired file, with the reason, as a TSV file."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("split\tfile\taction\treason\n")
        for split, stats in stats_by_split.items():
            for file, action, reason in stats.problems if stats else ():
                f.write(f"{split}\t{file}\t{action}\t{reason}\n")

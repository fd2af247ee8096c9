"""Index-time work shared by the file-based sources (`voc_dir`, `csv`, `coco`, `yolo`).

Each reads its annotations into `AnnotatedImage` records (boxes in the file's
own format, class names), then `build_index` turns them into arrays of source
elements: it resolves each image path inside the dataset root, checks the image
(`image_check.usable_image`: its header's size and EXIF orientation, a cached decode),
converts the boxes to BOX_FORMAT against the size a person sees (the only place a
file format's boxes are converted), and picks the one target with `choose_target`.
Whatever cannot be used is skipped and counted by reason.
"""

import abc
import dataclasses
import os

import numpy as np
import tensorflow as tf

from pipelines import boxes as box_lib
from pipelines import image_header
from pipelines import orientation as orientation_lib
from pipelines.sources import image_check
from pipelines.sources.source import (
    BOX,
    ID,
    IMAGE_PATH,
    LABEL,
    DatasetError,
    ImageObjects,
    IndexStats,
    Source,
    choose_target,
    digest_of_arrays,
    log_index,
)

UNKNOWN_CLASS = "object of unknown class ignored"

ELEMENT_KEYS = (IMAGE_PATH, LABEL, BOX, ID)
"""What a file source's elements hold."""
ORIGINAL_PATH = "original_path"
"""The index's column of the photos as the dataset holds them (IMAGE_PATH may be an upright copy
in the cache): what a report or a corrections file names."""
UNUSABLE_OBJECT = "unusable object ignored"
FITS_STORED_FRAME_ONLY = (
    "box fits only the stored, unrotated frame: annotated on raw pixels? "
    "--exif=ignore reads the photos as stored"
)
"""Repair reasons shared by every file source (counted in `IndexStats`, listed in
data_issues.tsv)."""

_OUTSIDE_TOLERANCE = (
    0.02  # a box this far (of the side) past the image is "outside": annotators overshoot a little
)


@dataclasses.dataclass
class PixelObject:
    """One annotated object: class name, box as the file gives it, difficult flag.

    `box_format` names the box's Keras format: pixel `xyxy` (VOC, CSV; the
    default), pixel `xywh` (COCO) or `rel_center_xywh` (YOLO); `build_index`
    converts all of them to BOX_FORMAT against the image's real size.
    """

    class_name: str
    xyxy: tuple
    difficult: bool = False
    box_format: str = box_lib.PIXEL_XYXY


@dataclasses.dataclass
class AnnotatedImage:
    """An image file (relative to its folder) and its objects."""

    example_id: str
    filename: str
    objects: list


def resolve_inside(root, relative):
    """Joins `relative` to `root`, refusing anything that resolves outside `root`.

    Absolute paths, `..` and symlinks pointing elsewhere all resolve outside and
    return None, so a crafted annotation cannot make training read other files.
    """
    root_real = os.path.realpath(root)
    path = os.path.realpath(os.path.join(root_real, relative))
    if os.path.isabs(relative) or os.path.commonpath([root_real, path]) != root_real:
        return None
    return path


def read_class_names(labels_file):
    """Class names from a labels.txt file, one per line (blank lines ignored)."""
    try:
        with open(labels_file, encoding="utf-8-sig") as f:
            names = [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as error:
        raise DatasetError(
            f"{labels_file}: not UTF-8 text ({error.reason}); save it as UTF-8."
        ) from None
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DatasetError(
            f"{labels_file}: class names repeat: {', '.join(repeated)}; list each class once."
        )
    if not names:
        raise DatasetError(
            f"{labels_file}: no class names (the file is empty or blank); write one class name "
            f"per line, or remove the file to take the names from the annotations."
        )
    return names


def build_index(
    records,
    image_root,
    class_names,
    policy,
    stats,
    max_image_pixels=image_header.MAX_IMAGE_PIXELS,
    exif=orientation_lib.DEFAULT_EXIF,
):
    """Source-element arrays for `records` whose images lie under `image_root`.

    Args:
      records: iterable of `AnnotatedImage`.
      image_root: folder the record filenames are relative to.
      class_names: list of names; objects of other classes are ignored (counted).
      policy: single-target policy (see `pipelines.sources.source.POLICIES`).
      stats: `IndexStats`, updated with what was kept, repaired and skipped.
      max_image_pixels: images whose header announces more are skipped (0: no limit).
      exif: `apply` (boxes are in the frame a person sees: each photo is measured
        and decoded turned by its EXIF orientation) or `ignore` (as stored).

    Returns:
      dict of numpy arrays with keys IMAGE_PATH, LABEL, BOX, ID (the source elements' keys,
      `ELEMENT_KEYS`) and ORIGINAL_PATH.
    """
    class_index = {name: i for i, name in enumerate(class_names)}
    if exif not in orientation_lib.EXIF_MODES:
        raise ValueError(f"exif={exif!r}: expected one of {orientation_lib.EXIF_MODES}")
    found = []  # (record, path, height, width, known objects)
    for record in records:
        path = resolve_inside(image_root, record.filename)
        image = image_check.usable_image(path, record.filename, stats, max_image_pixels, exif)
        if image is None:
            continue
        path, info, orientation = image
        known = [o for o in record.objects if o.class_name in class_index]
        if len(known) < len(record.objects):
            stats.repair(UNKNOWN_CLASS, len(record.objects) - len(known), record.filename)
        height, width = orientation_lib.upright_size(info.height, info.width, orientation)
        if orientation in orientation_lib.SWAPS_AXES and _fit_stored_frame_only(
            known, info, (height, width)
        ):
            stats.repair(FITS_STORED_FRAME_ONLY, file=record.filename)
        found.append((record, path, height, width, known))

    counts = [len(known) for *_, known in found]
    objects = [o for *_, known in found for o in known]
    sizes = np.repeat([(h, w) for _, _, h, w, _ in found], counts, axis=0).reshape(-1, 2)
    normalized = to_box_format(objects, sizes)

    columns = {IMAGE_PATH: [], LABEL: [], BOX: [], ID: [], ORIGINAL_PATH: []}
    start = 0
    for (record, path, _, _, known), count in zip(found, counts, strict=True):
        objects = ImageObjects(
            boxes=normalized[start : start + count],
            labels=np.array([class_index[o.class_name] for o in known], np.int32),
            difficult=np.array([o.difficult for o in known], bool),
        )
        start += count
        target = choose_target(objects, policy, stats, record.filename)
        if target is None:
            continue
        columns[IMAGE_PATH].append(path)
        columns[LABEL].append(target[0])
        columns[BOX].append(target[1])
        columns[ID].append(record.example_id)
        columns[ORIGINAL_PATH].append(resolve_inside(image_root, record.filename))
    return {
        IMAGE_PATH: np.array(columns[IMAGE_PATH], dtype=object).astype(str),
        LABEL: np.array(columns[LABEL], np.int32),
        BOX: np.array(columns[BOX], np.float32).reshape(-1, 4),
        ID: np.array(columns[ID], dtype=object).astype(str),
        ORIGINAL_PATH: np.array(columns[ORIGINAL_PATH], dtype=object).astype(str),
    }


def to_box_format(objects, sizes):
    """BOX_FORMAT boxes `[N, 4]` of `PixelObject`s on images of `sizes` `[N, 2]` (height, width).

    One vectorized conversion per box format present (usually one for a whole dataset).
    """
    normalized = np.zeros((len(objects), 4), np.float32)
    formats = np.array([o.box_format for o in objects], dtype=object)
    for box_format in sorted(set(formats)):
        rows = np.flatnonzero(formats == box_format)
        with np.errstate(
            over="ignore"
        ):  # a coordinate beyond float32 becomes inf: a bad box, counted later
            pixels = np.array([objects[i].xyxy for i in rows], np.float32).reshape(-1, 4)
        normalized[rows] = np.asarray(
            box_lib.to_internal(
                pixels,
                box_format,
                height=sizes[rows, :1].astype(np.float32),
                width=sizes[rows, 1:].astype(np.float32),
            )
        )
    return normalized


def _fit_stored_frame_only(objects, info, upright_size):
    """Whether pixel boxes of a photo stored turned by 90 degrees reach outside the upright frame
    but lie inside the stored one: the sign of annotations drawn on the raw pixels.
    """
    pixel_objects = [o for o in objects if o.box_format in (box_lib.PIXEL_XYXY, box_lib.PIXEL_XYWH)]
    if not pixel_objects:
        return False
    stored = to_box_format(
        pixel_objects, np.tile([[info.height, info.width]], (len(pixel_objects), 1))
    )
    upright = to_box_format(pixel_objects, np.tile([upright_size], (len(pixel_objects), 1)))
    inside = lambda boxes: np.all(
        (boxes >= -_OUTSIDE_TOLERANCE) & (boxes <= 1 + _OUTSIDE_TOLERANCE)
    )  # noqa: E731
    return bool(inside(stored) and not inside(upright))


def parse_coordinate(text, field, where):
    """A pixel coordinate from annotation text; raises ValueError naming the field."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {field}={text!r} is not a number") from None
    if not np.isfinite(value):
        raise ValueError(f"{where}: {field}={text!r} is not finite")
    return value


class FileSource(Source):
    """A dataset of image files with annotations, indexed once per split.

    Subclasses say where the records of a split come from (`_records`), which
    folder their filenames are relative to (`_image_root`) and, when there is
    no labels.txt, which class names the annotations use (`_names_from_annotations`).
    Formats whose annotations carry the class list (COCO `categories`, YOLO
    `names`) set `labels_file = None`: a stray labels.txt must not reorder them.
    """

    labels_file = "labels.txt"

    def __init__(
        self,
        data_dir,
        policy,
        max_image_pixels=image_header.MAX_IMAGE_PIXELS,
        exif=orientation_lib.DEFAULT_EXIF,
    ):
        self.data_dir = os.path.abspath(data_dir)
        self.policy = policy
        self.max_image_pixels = image_header.check_pixel_limit(max_image_pixels)
        exif = exif or orientation_lib.DEFAULT_EXIF
        if exif not in orientation_lib.EXIF_MODES:
            raise DatasetError(
                f"--exif={exif!r}: expected one of {', '.join(orientation_lib.EXIF_MODES)}"
            )
        self.exif = exif
        self._class_names = None
        self._indices = {}
        self.stats = {}

    @abc.abstractmethod
    def _records(self, split, stats):
        """`AnnotatedImage` records of `split`; counts what it skips in `stats`."""

    @abc.abstractmethod
    def _image_root(self, split):
        """Folder the records' filenames are relative to."""

    @abc.abstractmethod
    def _names_from_annotations(self):
        """Sorted class names found in the annotations of every split."""

    @property
    def class_names(self):
        if self._class_names is None:
            labels_file = (
                os.path.join(self.data_dir, self.labels_file) if self.labels_file else None
            )
            if labels_file and os.path.isfile(labels_file):
                self._class_names = read_class_names(labels_file)
            else:
                self._class_names = self._names_from_annotations()
        return self._class_names

    def index(self, split):
        """Source-element arrays for `split` (built once, then cached)."""
        if split not in self._indices:
            stats = IndexStats()
            records = list(self._records(split, stats))
            self._indices[split] = build_index(
                records,
                self._image_root(split),
                self.class_names,
                self.policy,
                stats,
                self.max_image_pixels,
                self.exif,
            )
            self.stats[split] = stats
            log_index(self.name, split, stats)
            if stats.kept == 0:
                if stats.skipped or stats.repaired:
                    first = (
                        f"; first: {stats.problems[0][0]}: {stats.problems[0][2]}"
                        if stats.problems
                        else ""
                    )
                    what = f"({stats.summary()}{first})"
                    todo = (
                        "check that the split's list names examples whose annotations and images "
                        f"exist in {self.data_dir} and are readable (the {self.name}[{split}] log "
                        "line above counts the reasons by kind)"
                    )
                else:
                    what = f"({stats.summary()}): the split lists no example"
                    todo = (
                        f"check that its list or annotation file in {self.data_dir} names its "
                        f"examples, and that {split!r} is the split you mean"
                    )
                raise DatasetError(
                    f"{self.data_dir} split {split!r}: no usable example {what}; {todo}."
                )
        return self._indices[split]

    def num_examples(self, split):
        return len(self.index(split)[LABEL])

    def index_stats(self, split):
        self.index(split)
        return self.stats[split]

    def load(self, split):
        index = self.index(split)
        return tf.data.Dataset.from_tensor_slices({key: index[key] for key in ELEMENT_KEYS})

    def original_files(self, split):
        """`{example id: the photo as the dataset holds it}` (training may read an upright copy)."""
        index = self.index(split)
        return dict(zip(index[ID], index[ORIGINAL_PATH], strict=True))

    def identity(self, split):
        """The folder, the policy, and a digest of every kept example: path, target, file size and
        mtime."""
        index = self.index(split)
        stats = [os.stat(path) for path in index[IMAGE_PATH]]
        files = {
            **{key: index[key] for key in ELEMENT_KEYS},
            "file_sizes": np.array([s.st_size for s in stats], np.int64),
            "file_mtimes": np.array([s.st_mtime_ns for s in stats], np.int64),
        }
        return {
            **super().identity(split),
            "data_dir": self.data_dir,
            "policy": self.policy,
            "exif": self.exif,
            "examples_digest": digest_of_arrays(files),
        }

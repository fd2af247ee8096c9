"""Index-time work shared by the file-based sources (`voc_dir`, `csv`, `coco`, `yolo`).

Each reads its annotations into `AnnotatedImage` records (boxes in the file's
own format, class names), then `build_index` turns them into arrays of source
elements: it resolves each image path inside the dataset root, reads the image
size from the file header, converts the boxes to BOX_FORMAT against that size
(the only place a file format's boxes are converted), and picks the one target
with `choose_target`. Whatever cannot be used is skipped and counted by
reason; nothing here decodes pixels, so indexing 10k images takes seconds.
"""

import abc
import dataclasses
import os

import numpy as np
import tensorflow as tf

from localizer import boxes as box_lib
from localizer import files
from pipelines import image_header
from pipelines.sources.source import (
    BOX, ID, IMAGE_PATH, LABEL, DatasetError, ImageObjects, IndexStats, Source, choose_target, digest_of_arrays,
    log_index,
)


UNKNOWN_CLASS = "object of unknown class ignored"
UNUSABLE_OBJECT = "unusable object ignored"
"""Repair reasons shared by every file source (counted in `IndexStats`, listed in data_issues.tsv)."""


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
        raise DatasetError(f"{labels_file}: not UTF-8 text ({error.reason}); save it as UTF-8.") from None
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DatasetError(f"{labels_file}: class names repeat: {', '.join(repeated)}; list each class once.")
    if not names:
        raise DatasetError(f"{labels_file}: no class names.")
    return names


def build_index(records, image_root, class_names, policy, stats, max_image_pixels=image_header.MAX_IMAGE_PIXELS):
    """Source-element arrays for `records` whose images lie under `image_root`.

    Args:
      records: iterable of `AnnotatedImage`.
      image_root: folder the record filenames are relative to.
      class_names: list of names; objects of other classes are ignored (counted).
      policy: single-target policy (see `pipelines.sources.source.POLICIES`).
      stats: `IndexStats`, updated with what was kept, repaired and skipped.
      max_image_pixels: images whose header announces more are skipped (0: no limit).

    Returns:
      dict of numpy arrays with keys IMAGE_PATH, LABEL, BOX, ID.
    """
    class_index = {name: i for i, name in enumerate(class_names)}
    found = []  # (record, path, height, width, known objects)
    for record in records:
        image = _usable_image(image_root, record, stats, max_image_pixels)
        if image is None:
            continue
        path, info = image
        known = [o for o in record.objects if o.class_name in class_index]
        if len(known) < len(record.objects):
            stats.repair(UNKNOWN_CLASS, len(record.objects) - len(known), record.filename)
        found.append((record, path, info.height, info.width, known))

    counts = [len(known) for *_, known in found]
    objects = [o for *_, known in found for o in known]
    sizes = np.repeat([(h, w) for _, _, h, w, _ in found], counts, axis=0).reshape(-1, 2)
    normalized = to_box_format(objects, sizes)

    columns = {IMAGE_PATH: [], LABEL: [], BOX: [], ID: []}
    start = 0
    for (record, path, _, _, known), count in zip(found, counts):
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
    return {
        IMAGE_PATH: np.array(columns[IMAGE_PATH], dtype=object).astype(str),
        LABEL: np.array(columns[LABEL], np.int32),
        BOX: np.array(columns[BOX], np.float32).reshape(-1, 4),
        ID: np.array(columns[ID], dtype=object).astype(str),
    }


def to_box_format(objects, sizes):
    """BOX_FORMAT boxes `[N, 4]` of `PixelObject`s on images of `sizes` `[N, 2]` (height, width).

    One vectorized conversion per box format present (usually one for a whole dataset).
    """
    normalized = np.zeros((len(objects), 4), np.float32)
    formats = np.array([o.box_format for o in objects], dtype=object)
    for box_format in sorted(set(formats)):
        rows = np.flatnonzero(formats == box_format)
        with np.errstate(over="ignore"):  # a coordinate beyond float32 becomes inf: a bad box, counted later
            pixels = np.array([objects[i].xyxy for i in rows], np.float32).reshape(-1, 4)
        normalized[rows] = np.asarray(box_lib.to_internal(
            pixels, box_format,
            height=sizes[rows, :1].astype(np.float32), width=sizes[rows, 1:].astype(np.float32),
        ))
    return normalized


_CONVERSIONS = {
    ("jpeg", 1): "grayscale converted to RGB", ("png", 1): "grayscale converted to RGB",
    ("png", 2): "alpha composited", ("png", 4): "alpha composited", ("jpeg", 4): "CMYK converted to RGB",
}
_NEEDS_COPY = {("png", 2), ("png", 4)}  # the decoder would drop alpha: composite once, here


def composited_copy(path):
    """A PNG of `path` with alpha composited over the padding grey, made once and cached.

    The training decoder stays branch-free (see `decode.decode_indexed_image`);
    the copy lives under $LOCALIZER_CACHE_DIR (default ~/.cache/localizer)/composited,
    named by the source file's path, size and modification time.
    """
    import hashlib

    from pipelines import decode

    stat = os.stat(path)
    key = hashlib.sha1(f"{os.path.realpath(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    folder = os.path.join(files.cache_dir(), "composited")
    copy = os.path.join(folder, f"{key}.png")
    if not os.path.exists(copy):
        os.makedirs(folder, exist_ok=True)
        with open(path, "rb") as f:
            pixels = decode.decode_image_bytes(f.read())
        files.atomic_write(copy, lambda temporary: tf.io.write_file(temporary, tf.io.encode_png(pixels)))
    return copy


def _usable_image(image_root, record, stats, max_image_pixels):
    """`(path, ImageInfo)` of a record's image, or None after counting why not."""
    path = resolve_inside(image_root, record.filename)
    reason = None
    if path is None:
        reason = "image path outside the dataset folder"
    elif not os.path.isfile(path):
        reason = "missing image file"
    else:
        try:
            info = image_header.read_image_info(path)
        except (image_header.ImageHeaderError, OSError):
            reason = "not a readable image"
        else:
            if not info.complete:
                reason = "truncated image file"
            elif max_image_pixels and info.decoded_pixels > max_image_pixels:
                reason = "image over the pixel limit (decompression bomb?)"
            elif min(info.height, info.width) < image_header.MIN_IMAGE_SIDE:
                reason = f"image smaller than {image_header.MIN_IMAGE_SIDE} px"
    if reason:
        stats.skip(reason, file=record.filename)
        return None
    conversion = _CONVERSIONS.get((info.format, info.channels))
    if conversion:
        stats.repair(conversion, file=record.filename)
    if (info.format, info.channels) in _NEEDS_COPY:
        try:
            path = composited_copy(path)
        except (OSError, tf.errors.OpError):
            stats.skip("not a readable image", file=record.filename)
            return None
    return path, info


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

    def __init__(self, data_dir, policy, max_image_pixels=image_header.MAX_IMAGE_PIXELS):
        self.data_dir = os.path.abspath(data_dir)
        self.policy = policy
        self.max_image_pixels = image_header.check_pixel_limit(max_image_pixels)
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
            labels_file = os.path.join(self.data_dir, self.labels_file) if self.labels_file else None
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
                records, self._image_root(split), self.class_names, self.policy, stats, self.max_image_pixels,
            )
            self.stats[split] = stats
            log_index(self.name, split, stats)
            if stats.kept == 0:
                raise DatasetError(
                    f"{self.data_dir} split {split!r}: no usable example ({stats.summary() or 'empty'})."
                )
        return self._indices[split]

    def num_examples(self, split):
        return len(self.index(split)[LABEL])

    def index_stats(self, split):
        self.index(split)
        return self.stats[split]

    def load(self, split):
        return tf.data.Dataset.from_tensor_slices(self.index(split))

    def identity(self, split):
        """The folder, the policy, and a digest of every kept example: path, target, file size and mtime."""
        index = self.index(split)
        stats = [os.stat(path) for path in index[IMAGE_PATH]]
        files = {
            **index,
            "file_sizes": np.array([s.st_size for s in stats], np.int64),
            "file_mtimes": np.array([s.st_mtime_ns for s in stats], np.int64),
        }
        return {
            **super().identity(split), "data_dir": self.data_dir, "policy": self.policy,
            "examples_digest": digest_of_arrays(files),
        }

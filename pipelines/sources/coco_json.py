"""`coco`: a COCO-format JSON file of boxes plus a folder of images (COCO 2017 layout).

    <data_dir>/annotations/instances_<split>.json
    <data_dir>/<split>/<file_name>                 (or --image_dir)

`--split=train` also finds `instances_train2017.json` (a split name followed
by a four-digit year, when exactly one such file exists); the image folder is
then `train2017/`. Boxes are pixel `[x, y, width, height]`; the JSON's
`width`/`height` fields are ignored, boxes are measured against the image as
decoded. Classes are the `categories` in category-id order (ids may be sparse,
as COCO's 1..90 for 80 classes); a label is the position in that list.
`iscrowd` objects are never targets (like VOC's difficult ones). An example's
id is its `file_name` without the extension: COCO 2017's file names are the
zero-padded image ids, and a folder converted to VOC or YOLO keeps that stem.

Bad entries are counted, never fatal: an image entry without a usable
`file_name` or with an id seen before is skipped; an annotation with an
unknown `category_id`, a malformed `bbox`, or an `image_id` that names no
image is ignored. A file that is not JSON, or not COCO, is a `DatasetError`.
"""

import glob
import json
import math
import os
import re

from absl import logging

from pipelines import boxes as box_lib
from pipelines import image_header
from pipelines.sources import file_index
from pipelines.sources.source import DatasetError

ANNOTATIONS_DIR = "annotations"
_ANNOTATION_FILE = re.compile(r"^instances_(.+)\.json$")


def read_coco_json(path):
    """The parsed COCO document at `path`; raises DatasetError (one line) when it is not one."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            document = json.load(f)
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{path} line {error.lineno} column {error.colno}: not valid JSON ({error.msg}); "
            "re-export the annotations"
        ) from None
    except RecursionError:
        raise DatasetError(
            f"{path}: JSON nested too deeply to be COCO annotations; re-export them"
        ) from None
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text ({error.reason}); save it as UTF-8") from None
    if not isinstance(document, dict) or not all(
        isinstance(document.get(key), list) for key in ("images", "annotations", "categories")
    ):
        raise DatasetError(
            f"{path}: not a COCO instances file (needs the lists 'images', 'annotations' and "
            "'categories')"
        )
    return document


def category_names(categories, path):
    """`(names in category-id order, {category id: name})`; DatasetError on broken or repeated
    entries."""
    by_id = {}
    for i, category in enumerate(categories):
        if (
            not isinstance(category, dict)
            or not _is_id(category.get("id"))
            or not isinstance(category.get("name"), str)
            or not category["name"].strip()
        ):
            raise DatasetError(
                f"{path}: categories[{i}] needs an integer 'id' and a 'name'; fix the file"
            )
        if category["id"] in by_id:
            raise DatasetError(
                f"{path}: category id {category['id']} appears twice; list each category once"
            )
        by_id[category["id"]] = str(category["name"]).strip()
    names = [by_id[key] for key in sorted(by_id)]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DatasetError(
            f"{path}: category names repeat: {', '.join(repeated)}; give each class one name"
        )
    if not names:
        raise DatasetError(f"{path}: no categories; a COCO file lists its classes in 'categories'")
    return names, by_id


def _is_id(value):
    """COCO ids are integers (a bool is not one, though Python says it is an int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_image_id(value):
    """An image id: an integer, or a string as some exporters write (never a list, an object, a
    float)."""
    return _is_id(value) or (isinstance(value, str) and bool(value.strip()))


def _crowd(annotation):
    """`iscrowd` as COCO writes it, 0 or 1; anything else is not a crowd flag (None)."""
    value = annotation.get("iscrowd", 0)
    return bool(value) if value in (0, 1) and not isinstance(value, float) else None


def parse_bbox(bbox, where):
    """A COCO `bbox` as a tuple of 4 finite floats; raises ValueError naming `where`."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise ValueError(f"{where}: bbox {bbox!r} is not [x, y, width, height]")
    values = []
    for name, value in zip(("x", "y", "width", "height"), bbox, strict=True):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ValueError(f"{where}: bbox {name}={value!r} is not a finite number")
        values.append(float(value))
    return tuple(values)


def coco_records(document, path, stats):
    """`AnnotatedImage` records of a COCO document, in the order of its `images`.

    Counts in `stats` (file names as listed) what it skips or ignores; logs each problem.
    """
    _, names_by_id = category_names(document["categories"], path)
    images, order = {}, []
    for i, image in enumerate(document["images"]):
        file_name = image.get("file_name") if isinstance(image, dict) else None
        image_id = image.get("id") if isinstance(image, dict) else None
        if (
            not isinstance(file_name, str)
            or not file_name.strip()
            or "\0" in file_name
            or not _is_image_id(image_id)
        ):
            logging.warning("%s images[%d]: needs an integer 'id' and a 'file_name'", path, i)
            stats.skip("malformed image entry", file=f"{path} images[{i}]")
            continue
        if image_id in images:
            logging.warning(
                "%s images[%d]: image id %r appears twice; the first entry is used",
                path,
                i,
                image_id,
            )
            stats.skip("duplicate image id", file=file_name)
            continue
        example_id = os.path.splitext(file_name)[0]
        images[image_id] = file_index.AnnotatedImage(example_id, file_name, [])
        order.append(image_id)
    for i, annotation in enumerate(document["annotations"]):
        where = f"{path} annotations[{i}]"
        if not isinstance(annotation, dict):
            stats.repair(file_index.UNUSABLE_OBJECT, file=f"{where}: not an object")
            continue
        image_id, category_id = annotation.get("image_id"), annotation.get("category_id")
        record = images.get(image_id) if _is_image_id(image_id) else None
        if record is None:
            stats.repair(
                "annotation of an unknown image ignored",
                file=f"{where}: image_id {annotation.get('image_id')!r}",
            )
            continue
        name = names_by_id.get(category_id) if _is_id(category_id) else None
        if name is None:
            stats.repair(
                file_index.UNKNOWN_CLASS,
                file=f"{where}: category_id {annotation.get('category_id')!r}",
            )
            continue
        try:
            bbox = parse_bbox(annotation.get("bbox"), where)
            crowd = _crowd(annotation)
            if crowd is None:
                raise ValueError(f"{where}: iscrowd={annotation.get('iscrowd')!r} is not 0 or 1")
        except ValueError as error:
            logging.warning("%s", error)
            stats.repair(file_index.UNUSABLE_OBJECT, file=str(error))
            continue
        record.objects.append(
            file_index.PixelObject(name, bbox, difficult=crowd, box_format=box_lib.PIXEL_XYWH)
        )
    return [images[image_id] for image_id in order]


class CocoSource(file_index.FileSource):
    """A COCO-format folder: `annotations/instances_<split>.json` and `<split>/` images.

    Args:
      data_dir: the folder holding `annotations/`.
      policy: single-target policy, "largest" or "single".
      image_dir: folder the `file_name`s are relative to (default: `<data_dir>/<split>/`).
    """

    name = "coco"
    labels_file = None  # the JSON's categories are the classes

    def __init__(
        self,
        data_dir,
        policy="largest",
        image_dir=None,
        max_image_pixels=image_header.MAX_IMAGE_PIXELS,
        exif=None,
    ):
        if not data_dir or not os.path.isdir(os.path.join(data_dir, ANNOTATIONS_DIR)):
            raise DatasetError(
                f"coco needs --data_dir: a folder with {ANNOTATIONS_DIR}/instances_<split>.json; "
                f"got {data_dir!r}"
            )
        super().__init__(data_dir, policy, max_image_pixels, exif)
        self.image_dir = image_dir
        self._ignored_files = set()  # stray annotation files already named in the log

    def available_splits(self):
        """Split names of the `instances_<split>.json` files, sorted.

        Anything else in `annotations/` that looks like one (`instances_.json`, a
        folder) is no split: it is named once in the log and otherwise ignored.
        """
        splits = []
        for path in sorted(
            glob.glob(os.path.join(self.data_dir, ANNOTATIONS_DIR, "instances_*.json"))
        ):
            match = _ANNOTATION_FILE.match(os.path.basename(path))
            if match and os.path.isfile(path):
                splits.append(match.group(1))
            elif path not in self._ignored_files:
                self._ignored_files.add(path)
                logging.warning(
                    "%s: not an instances_<split>.json file (no split name, or not a file); "
                    "ignored",
                    path,
                )
        return splits

    def resolve_split(self, split):
        """The annotation file's split name for `split` (`train` finds `train2017` when it is the
        only one)."""
        available = self.available_splits()
        if split in available:
            return split
        dated = [name for name in available if re.fullmatch(re.escape(split) + r"\d{4}", name)]
        if len(dated) == 1:
            return dated[0]
        raise DatasetError(
            f"{os.path.join(self.data_dir, ANNOTATIONS_DIR, f'instances_{split}.json')} not found; "
            f"splits here: {available}; pass one of them as the split"
        )

    def annotation_file(self, split):
        return os.path.join(
            self.data_dir, ANNOTATIONS_DIR, f"instances_{self.resolve_split(split)}.json"
        )

    def _image_root(self, split):
        if self.image_dir:
            return os.path.abspath(self.image_dir)
        return os.path.join(self.data_dir, self.resolve_split(split))

    def _names_from_annotations(self):
        # Every split must share one class list; the smallest file is read for it (COCO's
        # train JSON is 450 MB) and each split's own categories are checked when it is indexed.
        splits = self.available_splits()
        if not splits:
            raise DatasetError(f"{self.data_dir}/{ANNOTATIONS_DIR}: no instances_<split>.json file")
        paths = [
            os.path.join(self.data_dir, ANNOTATIONS_DIR, f"instances_{s}.json") for s in splits
        ]
        path = min(paths, key=os.path.getsize)
        names, _ = category_names(read_coco_json(path)["categories"], path)
        return names

    def _records(self, split, stats):
        path = self.annotation_file(split)
        document = read_coco_json(path)
        names, _ = category_names(document["categories"], path)
        if names != self.class_names:
            raise DatasetError(
                f"{path}: its categories differ from the other splits' ({names} vs "
                f"{self.class_names}); every split must list the same categories"
            )
        return coco_records(document, path, stats)

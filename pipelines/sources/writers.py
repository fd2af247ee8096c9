"""Writes labels in the formats the sources here read, for labelling tools to import.

`write_labels(fmt, out_dir, labels, class_names, split)` writes one `Label` (an image, its
class, its box) per example, in the image's upright frame (EXIF orientation applied: the
frame CVAT, Label Studio and Roboflow show and this project's sources read; LabelImg ignores
the tag, so phone photos are turned upright for it first):

    voc          Annotations/<id>.xml, ImageSets/Main/<split>.txt, labels.txt, labelmap.txt
    coco         annotations/instances_<split>.json
    yolo         labels/<split>/<id>.txt, data.yaml
    labelstudio  tasks_<split>.json (Label Studio tasks with pre-annotations), labeling_config.xml

No photo is copied or linked: a photo copied into the out dir doubles the disk a photo folder
takes, and a link is refused by this project's sources (a path that resolves outside the
dataset folder is skipped), so the user puts the photos where the format wants them
(`next_step` says where): `JPEGImages/` (voc_dir), `images/<split>/` (yolo); a COCO file is
read beside the photos where they are (`--image_dir`), a Label Studio task points at the photo
through Label Studio's local-files URL. A photo's name in the dataset is `<id><extension>`,
its id by default the file's stem.

How each format marks a box a person should check (`Label.review`; predict's `"unsure"`):

- voc: `<attributes>` of the object (`score`, `box_quality`, `review`), the element CVAT
  and Datumaro read into an annotation's attributes; LabelImg and the voc_dir source ignore
  it. VOC's own flags mean other things (`<difficult>`: hard to recognise, and sources here
  drop such objects), so none is used for review.
- coco: each annotation's `score` (COCO's results field) and `attributes` (`review`,
  `box_quality`), which CVAT and Datumaro read.
- yolo: nothing. A label line is `class cx cy w h` and Ultralytics reads every line as a box;
  predict's JSON lines keep `score`, `box_quality` and `unsure`.
- labelstudio: the prediction's `score` (the class probability; the Data Manager sorts on it)
  and the task's data fields `review`, `score` and `box_quality`, which the Data Manager shows
  as columns to filter and sort on.

Never over what the user brought: the out dir may hold only files written here, unchanged since
(a file a labelling tool saved over is the user's work now). `.localizer-labels.json` in the out
dir names each file written with its sha256; a text mark inside each file cannot work here (a
YOLO label file has no comment syntax, and a mark would survive a labelling tool's edit). The
out dir must not be, or lie inside, a folder holding one of the photos. Everything is checked
before anything is written (`check_output`, which a caller runs before its long part too).
"""

import dataclasses
import hashlib
import json
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET

import numpy as np

from pipelines import boxes as box_lib
from pipelines import files
from pipelines.errors import UserError

FORMATS = ("voc", "coco", "yolo", "labelstudio")

MANIFEST = ".localizer-labels.json"
"""In the out dir: the format, the classes, and every file written there with its sha256."""

WRITTEN_BY = "localizer: pipelines/sources/writers.py"

LABEL_STUDIO_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
"""Label Studio's own setting: the folder its `/data/local-files/?d=` paths are relative to."""

LABEL_STUDIO_DEFAULT_ROOT = "/"
"""Label Studio's default document root (when the variable is unset)."""

LABEL_STUDIO_URL = "/data/local-files/?d="
LABEL_STUDIO_CONFIG = "labeling_config.xml"
LABEL_STUDIO_FROM_NAME = "label"
LABEL_STUDIO_TO_NAME = "image"
LABEL_STUDIO_DATA_KEY = "image"
LABEL_STUDIO_MODEL_VERSION = "localizer"

VOC_IMAGE_DIR = "JPEGImages"
YOLO_IMAGE_DIR = "images"

_PIXEL_PLACES = 2  # VOC and COCO pixels: a hundredth of a pixel (CVAT writes floats too)
_YOLO_PLACES = 6  # as Ultralytics writes its label files
_PERCENT_PLACES = 4  # Label Studio's percent
_BOX_TOLERANCE = 1e-6
_SPLIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class LabelsOutputError(files.OutputFolderError):
    """The out dir would mix labels with the photos, or replace files the writer did not write."""


class LabelsFormatError(UserError, ValueError):
    """The labels cannot be written in the format asked (ids that collide or it cannot hold,
    class names it cannot hold, a photo Label Studio cannot reach); the message says what to do.
    """


@dataclasses.dataclass(frozen=True)
class Label:
    """One example's label: its photo, its upright size, its class and box.

    image_path: the photo, as the user has it (not copied).
    height, width: the image's upright size (EXIF orientation applied).
    label: class index into class_names.
    box: [4] normalized [ymin, xmin, ymax, xmax] (`pipelines.boxes.BOX_FORMAT`), upright frame.
    score: class probability, when from a model.
    box_quality: the model's predicted IoU of the box.
    review: a person should check this one (unsure).
    id: example id; default: the file stem.
    """

    image_path: str
    height: int
    width: int
    label: int
    box: np.ndarray
    score: float | None = None
    box_quality: float | None = None
    review: bool = False
    id: str | None = None


def example_id(label):
    """The label's id: `label.id`, else the photo's file name without its extension."""
    return label.id if label.id is not None else default_id(label.image_path)


def default_id(image_path):
    """A photo's default example id: its file name without the extension."""
    return os.path.splitext(os.path.basename(image_path))[0]


def dataset_file_name(image_path, example):
    """The photo's name in the dataset: `<id><extension of the photo>`."""
    return example + os.path.splitext(image_path)[1]


def write_labels(fmt, out_dir, labels, class_names, split="train"):
    """Writes `labels` in format `fmt` under `out_dir`; returns the paths written.

    Refuses (LabelsOutputError, LabelsFormatError: one line each) before writing anything what
    `check_output` refuses. A later call for the same format and classes replaces this split's
    files and removes those of this split it no longer writes; other splits' files stay.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r}: expected one of {FORMATS}")
    labels = list(labels)
    class_names = list(class_names)
    for label in labels:
        _check_label(label, class_names)
    manifest = check_output(
        fmt,
        out_dir,
        [label.image_path for label in labels],
        class_names,
        ids=[example_id(label) for label in labels],
        split=split,
    )
    contents = _render(
        fmt, out_dir, labels, class_names, split, _splits_written(manifest, fmt, split)
    )
    return _write(out_dir, fmt, class_names, split, manifest, contents)


def check_output(fmt, out_dir, image_paths, class_names, ids=None, split="train", what="out dir"):
    """Refuses, before the long part, what `write_labels` would refuse; returns the out dir's
    manifest (None when nothing was written there).

    image_paths: the photos to be labelled; ids: their example ids (default: the file stems).
    what: how messages name the out dir (`--out` for a command's flag).
    Raises LabelsFormatError for labels the format cannot hold, LabelsOutputError for an out dir
    that is a file, is or lies inside a photo's folder, holds a file not written here (or
    changed since) or labels of another format or class list, or is not writable.
    """
    if fmt not in FORMATS:
        raise LabelsFormatError(f"format {fmt!r} is not one of {', '.join(FORMATS)}; pick one")
    image_paths = list(image_paths)
    ids = [default_id(path) for path in image_paths] if ids is None else list(ids)
    _check_split(split)
    _check_class_names(fmt, class_names)
    if fmt == "labelstudio":
        for path in image_paths:
            label_studio_url(path)
    else:
        _check_ids(fmt, image_paths, ids)
    files.check_not_a_file(out_dir, what, f"choose another {what}")
    photo_folders = {os.path.dirname(os.path.abspath(path)): path for path in image_paths}
    for folder, path in photo_folders.items():
        if files.inside(out_dir, folder):
            raise LabelsOutputError(
                f"{what} {out_dir} {'is' if files.inside(folder, out_dir) else 'lies inside'} "
                f"{folder}, the folder of the photo {path}; labels must not go among the photos, "
                f"choose another {what} outside it"
            )
    manifest = _read_manifest(out_dir, what)
    if manifest is not None and (
        manifest["format"] != fmt or manifest["class_names"] != list(class_names)
    ):
        differs = "format" if manifest["format"] != fmt else "class list"
        raise LabelsOutputError(
            f"{what} {out_dir} holds {manifest['format']} labels of the classes "
            f"{', '.join(manifest['class_names'])}: another {differs}; choose another {what}"
        )
    _check_only_ours(out_dir, manifest, what)
    files.check_writable_folder(out_dir, what, todo=f"choose another {what}")
    return manifest


def next_step(fmt, out_dir, split="train"):
    """What the user does with the files written (a line for a command's log)."""
    if fmt == "voc":
        return (
            f"put the photos in {os.path.join(out_dir, VOC_IMAGE_DIR)}/ to read it as "
            f"--dataset=voc_dir --data_dir={out_dir} --split={split}, or open the photos in "
            f"LabelImg with {os.path.join(out_dir, 'Annotations')} as its save dir"
        )
    if fmt == "coco":
        return (
            f"read it beside the photos with --dataset=coco --data_dir={out_dir} "
            f"--split={split} --image_dir=<the photos' folder>, or import "
            f"{os.path.join(out_dir, 'annotations', f'instances_{split}.json')} into CVAT "
            "with the photos"
        )
    if fmt == "yolo":
        return (
            f"put the photos in {os.path.join(out_dir, YOLO_IMAGE_DIR, split)}/ to read it as "
            f"--dataset=yolo --data_dir={out_dir} --split={split}"
        )
    return (
        f"import {os.path.join(out_dir, f'tasks_{split}.json')} into a Label Studio project set "
        f"up with {os.path.join(out_dir, LABEL_STUDIO_CONFIG)} and a local-files storage of the "
        f"photos' folder (under {LABEL_STUDIO_ROOT_ENV}={label_studio_root()})"
    )


# --- checks ------------------------------------------------------------------------------------


def _check_label(label, class_names):
    """A caller's bug (not a user's mistake): a class index or box that is no label."""
    if not 0 <= int(label.label) < len(class_names):
        raise ValueError(f"{label.image_path}: label {label.label} is not a class index")
    box = np.asarray(label.box, np.float64)
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        raise ValueError(f"{label.image_path}: box {label.box!r} is not 4 finite numbers")
    ymin, xmin, ymax, xmax = box
    if (
        min(box) < -_BOX_TOLERANCE
        or max(box) > 1 + _BOX_TOLERANCE
        or not (ymin < ymax and xmin < xmax)
    ):
        raise ValueError(
            f"{label.image_path}: box {box.tolist()} is not a normalized "
            f"[ymin, xmin, ymax, xmax] ({box_lib.BOX_FORMAT}) inside the image"
        )
    if int(label.height) < 1 or int(label.width) < 1:
        raise ValueError(f"{label.image_path}: size {label.height}x{label.width} is no image")


def _check_split(split):
    if not isinstance(split, str) or not _SPLIT.fullmatch(split):
        raise LabelsFormatError(
            f"split {split!r} cannot name the labels' files; use letters, digits, _ . - "
            "(train, val)"
        )


def _check_class_names(fmt, class_names):
    names = list(class_names)
    for name in names:
        if not isinstance(name, str) or not name or name != name.strip() or not name.isprintable():
            raise LabelsFormatError(
                f"class name {name!r} cannot be written as a label (empty, white space at an "
                "end, or a line break); rename the class"
            )
        if fmt == "voc" and ":" in name:
            raise LabelsFormatError(
                f"class name {name!r} holds ':', which separates the fields of VOC's "
                "labelmap.txt; rename the class or write another format"
            )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated or not names:
        raise LabelsFormatError(
            f"class names {names} {'repeat ' + ', '.join(repeated) if repeated else 'are none'}; "
            "give each class one name"
        )


def _check_ids(fmt, image_paths, ids):
    """Ids that name files: relative, inside the out dir, one per photo (VOC: no white space)."""
    seen = {}
    for path, example in zip(image_paths, ids, strict=True):
        parts = example.split("/") if isinstance(example, str) else [""]
        if (
            not parts
            or any(part in ("", ".", "..") for part in parts)
            or "\\" in example
            or not example.isprintable()
        ):
            raise LabelsFormatError(
                f"{path}: id {example!r} cannot name a label file (empty, a '..' or '.' part, "
                "a backslash or a line break); rename the photo"
            )
        if fmt == "voc" and (re.search(r"\s", example) or example.startswith("#")):
            raise LabelsFormatError(
                f"{path}: id {example!r} holds white space (or starts with #), which a VOC split "
                "file (ImageSets/Main/<split>.txt, one id a line) cannot hold; rename the photo "
                "or write another format"
            )
        if example in seen:
            raise LabelsFormatError(
                f"the photos {seen[example]} and {path} would share the id {example!r}, one "
                f"file name in the {fmt} dataset; rename one, or label them in two runs with "
                "two out folders"
            )
        seen[example] = path


def label_studio_root():
    """Label Studio's document root for local files: `$LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`,
    else its default `/`."""
    return os.environ.get(LABEL_STUDIO_ROOT_ENV) or LABEL_STUDIO_DEFAULT_ROOT


def label_studio_url(image_path):
    """The photo's URL for Label Studio: `/data/local-files/?d=<path under the document root>`.

    Raises LabelsFormatError when the photo lies outside the document root.
    """
    root = os.path.abspath(label_studio_root())
    path = os.path.abspath(image_path)
    if not (path.startswith(root.rstrip(os.sep) + os.sep)):
        raise LabelsFormatError(
            f"{image_path}: not under {LABEL_STUDIO_ROOT_ENV}={label_studio_root()}, the folder "
            "Label Studio serves local files from; set it (here and for Label Studio) to a "
            "folder that holds the photos"
        )
    relative = os.path.relpath(path, root).replace(os.sep, "/")
    return LABEL_STUDIO_URL + urllib.parse.quote(relative, safe="/")


# --- the out dir's manifest: only our own files are ever replaced ------------------------------


def _digest(data):
    return hashlib.sha256(data).hexdigest()


def _file_digest(path):
    with open(path, "rb") as f:
        return _digest(f.read())


def _read_manifest(out_dir, what):
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.lexists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
        if not (
            isinstance(manifest, dict)
            and manifest.get("format") in FORMATS
            and isinstance(manifest.get("class_names"), list)
            and isinstance(manifest.get("files"), dict)
            and all(
                isinstance(entry, dict) and isinstance(entry.get("sha256"), list)
                for entry in manifest["files"].values()
            )
        ):
            raise ValueError("not a manifest of this writer")
    except (OSError, ValueError) as error:
        raise LabelsOutputError(
            f"{what} {out_dir} holds {MANIFEST}, which cannot be read ({error}); choose "
            f"another {what}"
        ) from None
    return manifest


def _check_only_ours(out_dir, manifest, what):
    """Refuses an out dir holding anything but files written here, unchanged since."""
    if not os.path.isdir(out_dir):
        return
    written = manifest["files"] if manifest else {}
    for folder, dirs, names in os.walk(out_dir):
        dirs.sort()
        for name in sorted(names) + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, out_dir).replace(os.sep, "/")
            leftover = name.startswith(".tmp-") or (
                folder == out_dir and name.startswith(files.PROBE_PREFIX)
            )
            if relative == MANIFEST or (leftover and not os.path.islink(path)):
                continue  # the manifest, and what a killed write of ours left behind
            entry = written.get(relative)
            ours = (
                entry is not None
                and not os.path.islink(path)
                and os.path.isfile(path)
                and _file_digest(path) in entry["sha256"]
            )
            if not ours:
                why = (
                    "was changed since it was written there (a labelling tool's save is your "
                    "work now)"
                    if entry
                    else "was not written there by localizer"
                )
                raise LabelsOutputError(
                    f"{what} {out_dir} holds {relative}, which {why}; labels go only into a new "
                    f"folder or over their own unchanged files, choose another {what}"
                )


def _splits_written(manifest, fmt, split):
    """The splits with files in the out dir after this write, sorted (`split` among them)."""
    splits = {split}
    if manifest and manifest["format"] == fmt:
        splits |= {entry.get("split") for entry in manifest["files"].values()} - {None}
    return sorted(splits)


def _write_manifest(out_dir, fmt, class_names, entries):
    document = {
        "written_by": WRITTEN_BY,
        "format": fmt,
        "class_names": list(class_names),
        "files": dict(sorted(entries.items())),
    }
    files.write_bytes_atomically(
        os.path.join(out_dir, MANIFEST), (json.dumps(document, indent=1) + "\n").encode()
    )


def _write(out_dir, fmt, class_names, split, manifest, contents):
    """Writes `contents` ({relative path: (bytes, split or None)}) so that at every moment each
    file there is one the manifest names with its digest: a kill leaves a folder the next run
    takes as its own."""
    old = manifest["files"] if manifest else {}
    stale = [name for name, entry in old.items() if entry.get("split") == split]
    stale = [name for name in stale if name not in contents]
    during = dict(old)
    for name, (data, file_split) in contents.items():
        digests = sorted(set(old.get(name, {}).get("sha256", [])) | {_digest(data)})
        during[name] = {"split": file_split, "sha256": digests}
    _write_manifest(out_dir, fmt, class_names, during)
    written = []
    for name, (data, _) in contents.items():
        path = os.path.join(out_dir, *name.split("/"))
        files.write_bytes_atomically(path, data)
        written.append(path)
    for name in stale:
        path = os.path.join(out_dir, *name.split("/"))
        if os.path.isfile(path) and not os.path.islink(path):
            os.remove(path)
    final = {name: entry for name, entry in old.items() if name not in stale}
    for name, (data, file_split) in contents.items():
        final[name] = {"split": file_split, "sha256": [_digest(data)]}
    _write_manifest(out_dir, fmt, class_names, final)
    return written


# --- the formats -------------------------------------------------------------------------------


def _converted(labels, box_format):
    """Every label's box in `box_format` (one conversion through `pipelines.boxes`), float64."""
    if not labels:
        return np.zeros((0, 4))
    boxes = np.clip(np.array([np.asarray(lb.box, np.float32) for lb in labels]), 0.0, 1.0)
    heights = np.array([[float(lb.height)] for lb in labels], np.float32)
    widths = np.array([[float(lb.width)] for lb in labels], np.float32)
    return np.asarray(box_lib.from_internal(boxes, box_format, heights, widths), np.float64)


def _number(value, places):
    """`value` rounded to `places` decimals, written without trailing zeros (`12.5`, `40`)."""
    text = f"{round(float(value), places):.{places}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _rounded(value, places):
    value = round(float(value), places)
    return int(value) if value == int(value) else value


def _render(fmt, out_dir, labels, class_names, split, splits):
    """`{relative path: (bytes, split or None for files every split shares)}`."""
    render = {
        "voc": _voc_files,
        "coco": _coco_files,
        "yolo": _yolo_files,
        "labelstudio": _label_studio_files,
    }[fmt]
    return render(out_dir, labels, list(class_names), split, splits)


def _text(lines):
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def _xml(root):
    ET.indent(root, "  ")
    return (ET.tostring(root, encoding="unicode") + "\n").encode("utf-8")


def _element(parent, tag, text=None):
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = str(text)
    return element


def _voc_files(out_dir, labels, class_names, split, splits):
    contents = {}
    pixels = _converted(labels, box_lib.PIXEL_XYXY)
    for label, xyxy in zip(labels, pixels, strict=True):
        example = example_id(label)
        root = ET.Element("annotation")
        _element(root, "folder", VOC_IMAGE_DIR)
        _element(root, "filename", dataset_file_name(label.image_path, example))
        _element(root, "path", os.path.abspath(label.image_path))
        size = _element(root, "size")
        _element(size, "width", int(label.width))
        _element(size, "height", int(label.height))
        _element(size, "depth", 3)
        _element(root, "segmented", 0)
        obj = _element(root, "object")
        _element(obj, "name", class_names[int(label.label)])
        _element(obj, "pose", "Unspecified")
        _element(obj, "truncated", 0)
        _element(obj, "difficult", 0)
        box = _element(obj, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), xyxy, strict=True):
            _element(box, key, _number(value, _PIXEL_PLACES))
        attributes = _element(obj, "attributes")
        for name, value in _review_fields(label):
            attribute = _element(attributes, "attribute")
            _element(attribute, "name", name)
            _element(attribute, "value", str(value).lower() if isinstance(value, bool) else value)
        contents[f"Annotations/{example}.xml"] = (_xml(root), split)
    ids = [example_id(label) for label in labels]
    contents[f"ImageSets/Main/{split}.txt"] = (_text(ids), split)
    contents["labels.txt"] = (_text(class_names), None)
    # Datumaro (CVAT's importer) takes its classes from labelmap.txt, VOC's 20 without one.
    labelmap = ["# label:color_rgb:parts:actions"] + [f"{name}:::" for name in class_names]
    contents["labelmap.txt"] = (_text(labelmap), None)
    return contents


def _review_fields(label):
    """(name, value) of what says how sure the model was, where known; `review` always."""
    fields = []
    if label.score is not None:
        fields.append(("score", _rounded(label.score, 4)))
    if label.box_quality is not None:
        fields.append(("box_quality", _rounded(label.box_quality, 4)))
    fields.append(("review", bool(label.review)))
    return fields


def _coco_files(out_dir, labels, class_names, split, splits):
    images, annotations = [], []
    pixels = _converted(labels, box_lib.PIXEL_XYWH)
    for number, (label, xywh) in enumerate(zip(labels, pixels, strict=True), start=1):
        images.append(
            {
                "id": number,
                "file_name": dataset_file_name(label.image_path, example_id(label)),
                "width": int(label.width),
                "height": int(label.height),
            }
        )
        bbox = [_rounded(value, _PIXEL_PLACES) for value in xywh]
        annotation = {
            "id": number,
            "image_id": number,
            "category_id": int(label.label) + 1,
            "bbox": bbox,
            "area": _rounded(bbox[2] * bbox[3], _PIXEL_PLACES),
            "iscrowd": 0,
            "segmentation": [],  # Datumaro (CVAT) requires the key
        }
        fields = dict(_review_fields(label))
        if "score" in fields:
            annotation["score"] = fields.pop("score")
        annotation["attributes"] = fields
        annotations.append(annotation)
    document = {
        "info": {"description": f"labels written by {WRITTEN_BY}"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": name, "supercategory": ""} for i, name in enumerate(class_names)
        ],
    }
    text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
    return {f"annotations/instances_{split}.json": (text.encode("utf-8"), split)}


def _yolo_files(out_dir, labels, class_names, split, splits):
    contents = {}
    centres = _converted(labels, box_lib.RELATIVE_CENTER_XYWH)
    for label, cxcywh in zip(labels, centres, strict=True):
        values = " ".join(_number(value, _YOLO_PLACES) for value in cxcywh)
        contents[f"labels/{split}/{example_id(label)}.txt"] = (
            _text([f"{int(label.label)} {values}"]),
            split,
        )
    lines = [
        f"# Written by {WRITTEN_BY}.",
        "# labels/<split>/<id>.txt labels the photo images/<split>/<id>.<ext>: put the photos",
        "# there. YOLO has no score and no review flag: predict's JSON lines keep them.",
        "# path is absolute: Ultralytics reads a relative one from its own datasets folder.",
        f"path: {json.dumps(os.path.abspath(out_dir), ensure_ascii=False)}",
    ]
    lines += [f"{name}: {YOLO_IMAGE_DIR}/{name}" for name in splits]
    lines += ["names:"] + [
        f"  {i}: {json.dumps(name, ensure_ascii=False)}" for i, name in enumerate(class_names)
    ]
    contents["data.yaml"] = (_text(lines), None)
    return contents


def _label_studio_files(out_dir, labels, class_names, split, splits):
    percents = _converted(labels, box_lib.RELATIVE_XYWH) * 100.0
    tasks = []
    for number, (label, xywh) in enumerate(zip(labels, percents, strict=True), start=1):
        data = {
            LABEL_STUDIO_DATA_KEY: label_studio_url(label.image_path),
            "example_id": example_id(label),
        }
        data.update(_review_fields(label))
        x, y, width, height = (_rounded(value, _PERCENT_PLACES) for value in xywh)
        result = {
            "id": f"r{number}",
            "type": "rectanglelabels",
            "from_name": LABEL_STUDIO_FROM_NAME,
            "to_name": LABEL_STUDIO_TO_NAME,
            "original_width": int(label.width),
            "original_height": int(label.height),
            "image_rotation": 0,
            "value": {
                "x": x,
                "y": y,
                "width": width,
                "height": height,
                "rotation": 0,
                "rectanglelabels": [class_names[int(label.label)]],
            },
        }
        prediction = {"model_version": LABEL_STUDIO_MODEL_VERSION, "result": [result]}
        if label.score is not None:
            result["score"] = prediction["score"] = _rounded(label.score, 4)
        tasks.append({"data": data, "predictions": [prediction]})
    text = json.dumps(tasks, indent=1, ensure_ascii=False) + "\n"
    view = ET.Element("View")
    ET.SubElement(view, "Image", name=LABEL_STUDIO_TO_NAME, value=f"${LABEL_STUDIO_DATA_KEY}")
    rectangles = ET.SubElement(
        view, "RectangleLabels", name=LABEL_STUDIO_FROM_NAME, toName=LABEL_STUDIO_TO_NAME
    )
    for name in class_names:
        ET.SubElement(rectangles, "Label", value=name)
    return {
        f"tasks_{split}.json": (text.encode("utf-8"), split),
        LABEL_STUDIO_CONFIG: (_xml(view), None),
    }

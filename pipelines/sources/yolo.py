"""`yolo`: a dataset in the Ultralytics YOLO layout.

    <data_dir>/data.yaml              path: (optional root), train:/val:/test: image folders, names:
    <root>/images/<split>/<stem>.jpg
    <root>/labels/<split>/<stem>.txt  one object per line: class cx cy w h (normalized to [0, 1])

The split entries of data.yaml (a folder, a `.txt` list of image paths, or a
list of those) are relative to `path` when it names a folder inside data_dir,
else to data_dir itself (a `path` outside data_dir, often another machine's
absolute path, is ignored with a warning); an entry that leaves data_dir is a
`DatasetError`. A list file (`train: train.txt`, as Ultralytics' autosplit and
CVAT write it) holds one image path a line: `./images/...` relative to the
list's folder, other paths relative to `path`, then to data_dir; a listed path
that leaves data_dir is skipped and counted. As in Ultralytics, an image's
label file is its path with the last `images` folder replaced by `labels` and
the extension by `.txt`. `names` is a list or an `index: name` map; class
indices must be 0..N-1.

A folder's images are listed recursively and sorted by path, a list's are
taken in its order (each once); an example's id is the image path relative
to its split folder (for a list, the folder its images share), without the
extension (the file stem).
Boxes are normalized `rel_center_xywh`; `file_index.build_index` converts them
to BOX_FORMAT (normalized, so the image size only checks the file) and applies
the same checks as for every file source.

Bad input is counted, never fatal: an image without a label file is a
background image (Ultralytics trains on those; a single-object localizer has
no target there), so it is skipped as "no label file (background image)"; an
empty label file is "no objects". A segmentation polygon line (class and
three or more x y points) is no box: ignored and counted as
"polygon (segmentation) label, not a box". A label line with other than 5
values, a value that is not a number or lies outside [0, 1], is ignored
(counted); an unknown class index likewise.
"""

import os

from absl import logging

from pipelines import boxes as box_lib
from pipelines import image_header
from pipelines.sources import data_yaml, file_index
from pipelines.sources.source import DatasetError

DATA_YAML = "data.yaml"
SPLIT_KEYS = ("train", "val", "test")
SPLIT_ALIASES = {"validation": "val"}
NO_LABEL_FILE = "no label file (background image)"
POLYGON_LABEL = "polygon (segmentation) label, not a box"
OUTSIDE = "image path outside the dataset folder"
"""Reasons counted in `IndexStats` (the index log line and data_issues.tsv)."""

LIST_SUFFIX = ".txt"
"""A split entry naming such a file is a list of image paths (Ultralytics' autosplit, CVAT), not a
folder."""


class PolygonLabelError(ValueError):
    """A label line is a segmentation polygon (class x1 y1 ... xn yn), not a box."""


def class_names_from_yaml(config, path):
    """The class names of a parsed data.yaml: `names` as a list, or an `index: name` map over
    0..N-1."""
    names = config.get("names")
    if isinstance(names, dict):
        try:
            by_index = {int(key): value for key, value in names.items()}
        except (TypeError, ValueError):
            raise DatasetError(
                f"{path}: names keys must be class indices 0..N-1; got {sorted(map(str, names))}"
            ) from None
        if sorted(by_index) != list(range(len(by_index))):
            raise DatasetError(
                f"{path}: names indices must be 0..{len(by_index) - 1}; got {sorted(by_index)}"
            )
        names = [by_index[i] for i in range(len(by_index))]
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and n.strip() for n in names)
    ):
        raise DatasetError(
            f"{path}: 'names' must list the class names (a list, or index: name lines)"
        )
    names = [n.strip() for n in names]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DatasetError(
            f"{path}: class names repeat: {', '.join(repeated)}; give each class one name"
        )
    declared = config.get("nc")
    if declared is not None and str(declared).strip() != str(len(names)):
        raise DatasetError(
            f"{path}: nc={declared} but names lists {len(names)} classes; make them agree"
        )
    return names


def parse_label_line(line, where):
    """`(class index, (cx, cy, w, h))` of one label line; raises ValueError naming `where`.

    The index is not checked against the class list: the caller counts unknown classes.
    """
    values = line.split()
    if (
        len(values) >= 7 and len(values) % 2 == 1
    ):  # Ultralytics' own test: more than 6 values is a polygon
        raise PolygonLabelError(f"{where}: {len(values) // 2} points: a {POLYGON_LABEL}")
    if len(values) != 5:
        raise ValueError(f"{where}: expected 5 values (class cx cy w h), got {len(values)}")
    numbers = []
    for name, text in zip(("class", "cx", "cy", "w", "h"), values, strict=True):
        try:
            numbers.append(file_index.parse_coordinate(text, name, where))
        except ValueError:
            raise ValueError(f"{where}: {name}={text!r} is not a finite number") from None
    index, *box = numbers
    if index != int(index) or index < 0:
        raise ValueError(f"{where}: class={values[0]!r} is not a class index")
    outside = [
        f"{n}={t}"
        for n, t, v in zip(("cx", "cy", "w", "h"), values[1:], box, strict=True)
        if not 0.0 <= v <= 1.0
    ]
    if outside:
        raise ValueError(
            f"{where}: {', '.join(outside)} outside [0, 1] (YOLO boxes are normalized)"
        )
    return int(index), tuple(box)


def label_path(image_relative):
    """The label file of an image path (relative): the last `images` folder becomes `labels`,
    `.txt`."""
    parts = os.path.normpath(image_relative).split(os.sep)
    folders = parts[:-1]
    if "images" in folders:
        last = len(folders) - 1 - folders[::-1].index("images")
        folders[last] = "labels"
    return os.path.join(*folders, os.path.splitext(parts[-1])[0] + ".txt")


def list_images(folder):
    """Image files under `folder`, recursively (symlinked folders not followed), as sorted relative
    paths."""
    found = []
    for current, dirs, names in os.walk(folder):
        dirs.sort()
        for name in names:
            if name.lower().endswith(image_header.IMAGE_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(current, name), folder))
    return sorted(found)


class YoloSource(file_index.FileSource):
    """A YOLO-format dataset folder holding data.yaml.

    Args:
      data_dir: the folder holding data.yaml.
      policy: single-target policy, "largest" or "single".
    """

    name = "yolo"
    labels_file = None  # data.yaml's names are the classes

    def __init__(
        self, data_dir, policy="largest", max_image_pixels=image_header.MAX_IMAGE_PIXELS, exif=None
    ):
        yaml_path = os.path.join(data_dir, DATA_YAML) if data_dir else None
        if not yaml_path or not os.path.isfile(yaml_path):
            raise DatasetError(
                f"yolo needs --data_dir: a folder holding {DATA_YAML}; got {data_dir!r}"
            )
        super().__init__(data_dir, policy, max_image_pixels, exif)
        self.yaml_path = os.path.join(self.data_dir, DATA_YAML)
        try:
            with open(self.yaml_path, encoding="utf-8-sig") as f:
                text = f.read()
        except UnicodeDecodeError as error:
            raise DatasetError(
                f"{self.yaml_path}: not UTF-8 text ({error.reason}); save it as UTF-8"
            ) from None
        self.config = data_yaml.load(text, self.yaml_path)
        self.root = self._dataset_root()

    def _dataset_root(self):
        path = self.config.get("path")
        if not isinstance(path, str):
            return self.data_dir
        root = file_index.resolve_inside(self.data_dir, path) if not os.path.isabs(path) else None
        if (
            root is None
            and os.path.isabs(path)
            and os.path.realpath(path) == os.path.realpath(self.data_dir)
        ):
            root = self.data_dir
        if root is None or not os.path.isdir(root):
            logging.warning(
                "%s: path=%s is not a folder inside %s; split folders are read relative to %s",
                self.yaml_path,
                path,
                self.data_dir,
                self.data_dir,
            )
            return self.data_dir
        return root

    def _names_from_annotations(self):
        return class_names_from_yaml(self.config, self.yaml_path)

    def _image_root(self, split):
        return self.root

    def split_entries(self, split):
        """Absolute image folders and image-list files of `split`, each inside data_dir;
        DatasetError naming the
        entry otherwise.
        """
        key = SPLIT_ALIASES.get(split, split)
        entry = self.config.get(key)
        if entry is None:
            listed = [k for k in SPLIT_KEYS if self.config.get(k)]
            raise DatasetError(f"{self.yaml_path}: no {key!r} entry; splits here: {listed}")
        return [
            self._split_entry(key, relative)
            for relative in (entry if isinstance(entry, list) else [entry])
        ]

    def _split_entry(self, key, relative):
        if not isinstance(relative, str) or not relative:
            raise DatasetError(f"{self.yaml_path}: {key} entry {relative!r} is not a folder name")
        is_list = relative.lower().endswith(LIST_SUFFIX)
        # Ultralytics' own fallbacks: relative to `path`, then without a leading "../"
        # (Roboflow writes "../train/images" beside data.yaml); always inside data_dir.
        tries = [relative] + ([relative[3:]] if relative.startswith("../") else [])
        candidates = (
            self._inside(os.path.join(base, t))
            for base in dict.fromkeys((self.root, self.data_dir))
            for t in tries
        )
        found = next(
            (c for c in candidates if c and (os.path.isfile(c) if is_list else os.path.isdir(c))),
            None,
        )
        if found is None:
            what = "an image list file" if is_list else "a folder"
            raise DatasetError(
                f"{self.yaml_path}: {key}: {relative} is not {what} inside the dataset folder "
                f"{self.data_dir}; point it at an image folder or a .txt list of image paths "
                "there, relative to `path` or to data.yaml's folder"
            )
        return found

    def _inside(self, path):
        """`path` (absolute, or relative to the working folder) resolved, when it lies inside
        data_dir; else None."""
        return file_index.resolve_inside(
            self.data_dir, os.path.relpath(os.path.abspath(path), self.data_dir)
        )

    def listed_images(self, list_file, stats):
        """Image paths of a split list, resolved inside data_dir, in the list's order, each once.

        A line is an image path: `./x` is relative to the list's folder (as
        Ultralytics reads it), any other relative path to `path`, then to
        data_dir; a path that leaves data_dir is counted and skipped.
        """
        try:
            with open(list_file, encoding="utf-8-sig") as f:
                lines = [line.strip() for line in f.read().splitlines()]
        except (OSError, UnicodeDecodeError) as error:
            raise DatasetError(
                f"{list_file}: cannot be read as a list of image paths ({error}); save it as "
                "UTF-8 text, one image path a line"
            ) from None
        found = []
        for line in dict.fromkeys(line for line in lines if line):
            if line.startswith("./"):
                bases = [os.path.dirname(list_file)]
            else:
                bases = list(dict.fromkeys((self.root, self.data_dir)))
            candidates = [self._inside(os.path.join(base, line)) for base in bases]
            inside = [c for c in candidates if c is not None]
            if not inside:
                stats.skip(OUTSIDE, file=f"{list_file}: {line}")
                continue
            found.append(next((c for c in inside if os.path.exists(c)), inside[0]))
        return found

    def _split_images(self, split, stats):
        """`(image path, example id)` of every image of `split`: a folder's, listed recursively (the
        id is the
        path under the folder), or a list's (the id is the path under the folder its images share).
        """
        for entry in self.split_entries(split):
            if os.path.isdir(entry):
                for relative in list_images(entry):
                    yield os.path.join(entry, relative), os.path.splitext(relative)[0]
                continue
            images = self.listed_images(entry, stats)
            common = os.path.commonpath([os.path.dirname(p) for p in images]) if images else ""
            for path in images:
                yield path, os.path.splitext(os.path.relpath(path, common))[0]

    def _records(self, split, stats):
        names = self.class_names
        records = []
        root = os.path.realpath(self.root)  # split entries and listed images are resolved paths
        for path, example_id in self._split_images(split, stats):
            filename = os.path.relpath(path, root)
            if not os.path.exists(
                path
            ):  # a listed image that is not there: build_index counts it as missing
                records.append(file_index.AnnotatedImage(example_id, filename, []))
                continue
            objects = self._read_labels(filename, names, stats)
            if objects is not None:
                records.append(file_index.AnnotatedImage(example_id, filename, objects))
        return records

    def _read_labels(self, filename, names, stats):
        """`PixelObject`s of an image's label file, or None (counted) when the image has none to
        read."""
        path = file_index.resolve_inside(self.root, label_path(filename))
        if path is None:
            stats.skip("label path outside the dataset folder", file=filename)
            return None
        if not os.path.isfile(path):
            stats.skip(NO_LABEL_FILE, file=filename)
            return None
        try:
            with open(path, encoding="utf-8-sig") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError):
            stats.skip("unreadable label file", file=filename)
            return None
        objects, polygons = [], 0
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                index, box = parse_label_line(line, where)
            except PolygonLabelError as error:
                polygons += 1
                if polygons == 1:  # once per file: a segmentation dataset has one on every line
                    logging.warning("%s (ignored; a box is needed: class cx cy w h)", error)
                stats.repair(POLYGON_LABEL, file=str(error))
                continue
            except ValueError as error:
                logging.warning("%s", error)
                stats.repair(file_index.UNUSABLE_OBJECT, file=str(error))
                continue
            if index >= len(names):
                stats.repair(file_index.UNKNOWN_CLASS, file=f"{where}: class {index}")
                continue
            objects.append(
                file_index.PixelObject(names[index], box, box_format=box_lib.RELATIVE_CENTER_XYWH)
            )
        return objects

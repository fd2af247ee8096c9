"""`yolo`: a dataset in the Ultralytics YOLO layout.

    <data_dir>/data.yaml              path: (optional root), train:/val:/test: image folders, names:
    <root>/images/<split>/<stem>.jpg
    <root>/labels/<split>/<stem>.txt  one object per line: class cx cy w h (normalized to [0, 1])

The split entries of data.yaml (a folder or a list of folders) are relative to
`path` when it names a folder inside data_dir, else to data_dir itself (a
`path` outside data_dir, often another machine's absolute path, is ignored
with a warning); an entry that leaves data_dir is a `DatasetError`. As in
Ultralytics, an image's label file is its path with the last `images`
folder replaced by `labels` and the extension by `.txt`. `names` is a list or
an `index: name` map; class indices must be 0..N-1.

Images are listed recursively and sorted by path; an example's id is the image
path relative to its split folder, without the extension (the file stem).
Boxes are normalized `rel_center_xywh`; `file_index.build_index` converts them
to BOX_FORMAT (normalized, so the image size only checks the file) and applies
the same checks as for every file source.

Bad input is counted, never fatal: an image without a label file is a
background image (Ultralytics trains on those; a single-object localizer has
no target there), so it is skipped as "no label file (background image)"; an
empty label file is "no objects". A label line with other than 5 values
(segmentation polygons included), a value that is not a number or lies
outside [0, 1], is ignored (counted); an unknown class index likewise.
"""

import logging
import os

from localizer import boxes as box_lib
from pipelines import image_header
from pipelines.sources import data_yaml, file_index
from pipelines.sources.source import DatasetError

DATA_YAML = "data.yaml"
SPLIT_KEYS = ("train", "val", "test")
SPLIT_ALIASES = {"validation": "val"}
NO_LABEL_FILE = "no label file (background image)"


def class_names_from_yaml(config, path):
    """The class names of a parsed data.yaml: `names` as a list, or an `index: name` map over 0..N-1."""
    names = config.get("names")
    if isinstance(names, data_yaml.RawBlock):
        raise DatasetError(f"{path}: 'names' lines are indented unevenly; indent every class the same "
                           "(a list of '- name' lines, or 'index: name' lines)")
    if isinstance(names, dict):
        try:
            by_index = {int(key): value for key, value in names.items()}
        except (TypeError, ValueError):
            raise DatasetError(f"{path}: names keys must be class indices 0..N-1; got {sorted(names)}") from None
        if sorted(by_index) != list(range(len(by_index))):
            raise DatasetError(f"{path}: names indices must be 0..{len(by_index) - 1}; got {sorted(by_index)}")
        names = [by_index[i] for i in range(len(by_index))]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise DatasetError(f"{path}: 'names' must list the class names (a list, or index: name lines)")
    names = [n.strip() for n in names]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DatasetError(f"{path}: class names repeat: {', '.join(repeated)}; give each class one name")
    declared = config.get("nc")
    if declared is not None and str(declared).strip() != str(len(names)):
        raise DatasetError(f"{path}: nc={declared} but names lists {len(names)} classes; make them agree")
    return names


def parse_label_line(line, where):
    """`(class index, (cx, cy, w, h))` of one label line; raises ValueError naming `where`.

    The index is not checked against the class list: the caller counts unknown classes.
    """
    values = line.split()
    if len(values) != 5:
        raise ValueError(f"{where}: expected 5 values (class cx cy w h), got {len(values)}")
    numbers = []
    for name, text in zip(("class", "cx", "cy", "w", "h"), values):
        try:
            numbers.append(file_index.parse_coordinate(text, name, where))
        except ValueError:
            raise ValueError(f"{where}: {name}={text!r} is not a finite number") from None
    index, *box = numbers
    if index != int(index) or index < 0:
        raise ValueError(f"{where}: class={values[0]!r} is not a class index")
    outside = [f"{n}={t}" for n, t, v in zip(("cx", "cy", "w", "h"), values[1:], box) if not 0.0 <= v <= 1.0]
    if outside:
        raise ValueError(f"{where}: {', '.join(outside)} outside [0, 1] (YOLO boxes are normalized)")
    return int(index), tuple(box)


def label_path(image_relative):
    """The label file of an image path (relative): the last `images` folder becomes `labels`, `.txt`."""
    parts = os.path.normpath(image_relative).split(os.sep)
    folders = parts[:-1]
    if "images" in folders:
        last = len(folders) - 1 - folders[::-1].index("images")
        folders[last] = "labels"
    return os.path.join(*folders, os.path.splitext(parts[-1])[0] + ".txt")


def list_images(folder):
    """Image files under `folder`, recursively (symlinked folders not followed), as sorted relative paths."""
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

    def __init__(self, data_dir, policy="largest", max_image_pixels=image_header.MAX_IMAGE_PIXELS,
                 exif=None):
        yaml_path = os.path.join(data_dir, DATA_YAML) if data_dir else None
        if not yaml_path or not os.path.isfile(yaml_path):
            raise DatasetError(f"yolo needs --data_dir: a folder holding {DATA_YAML}; got {data_dir!r}")
        super().__init__(data_dir, policy, max_image_pixels, exif)
        self.yaml_path = os.path.join(self.data_dir, DATA_YAML)
        try:
            with open(self.yaml_path, encoding="utf-8-sig") as f:
                text = f.read()
        except UnicodeDecodeError as error:
            raise DatasetError(f"{self.yaml_path}: not UTF-8 text ({error.reason}); save it as UTF-8") from None
        self.config = data_yaml.parse_data_yaml(text, self.yaml_path)
        self.root = self._dataset_root()

    def _dataset_root(self):
        path = self.config.get("path")
        if not isinstance(path, str):
            return self.data_dir
        root = file_index.resolve_inside(self.data_dir, path) if not os.path.isabs(path) else None
        if root is None and os.path.isabs(path) and os.path.realpath(path) == os.path.realpath(self.data_dir):
            root = self.data_dir
        if root is None or not os.path.isdir(root):
            logging.warning("%s: path=%s is not a folder inside %s; split folders are read relative to %s",
                            self.yaml_path, path, self.data_dir, self.data_dir)
            return self.data_dir
        return root

    def _names_from_annotations(self):
        return class_names_from_yaml(self.config, self.yaml_path)

    def _image_root(self, split):
        return self.root

    def image_folders(self, split):
        """Absolute image folders of `split`, each inside data_dir; DatasetError naming the entry otherwise."""
        key = SPLIT_ALIASES.get(split, split)
        entry = self.config.get(key)
        if entry is None:
            listed = [k for k in SPLIT_KEYS if self.config.get(k)]
            raise DatasetError(f"{self.yaml_path}: no {key!r} entry; splits here: {listed}")
        folders = []
        for relative in entry if isinstance(entry, list) else [entry]:
            if not isinstance(relative, str) or not relative:
                raise DatasetError(f"{self.yaml_path}: {key} entry {relative!r} is not a folder name")
            # Ultralytics' own fallbacks: relative to `path`, then without a leading "../"
            # (Roboflow writes "../train/images" beside data.yaml); always inside data_dir.
            tries = [relative] + ([relative[3:]] if relative.startswith("../") else [])
            inside = [
                c for c in (
                    file_index.resolve_inside(self.data_dir, os.path.relpath(os.path.join(base, t), self.data_dir))
                    for base in dict.fromkeys((self.root, self.data_dir)) for t in tries
                ) if c is not None
            ]
            folder = next((c for c in inside if os.path.isdir(c)), None)
            if folder is None:
                raise DatasetError(
                    f"{self.yaml_path}: {key}: {relative} is not a folder inside the dataset folder "
                    f"{self.data_dir}; point it at an image folder there, relative to `path` or to data.yaml's "
                    "folder (a .txt list of image paths is not read)"
                )
            folders.append(folder)
        return folders

    def _records(self, split, stats):
        names = self.class_names
        records = []
        for folder in self.image_folders(split):
            for relative in list_images(folder):
                filename = os.path.relpath(os.path.join(folder, relative), self.root)
                objects = self._read_labels(filename, names, stats)
                if objects is not None:
                    records.append(file_index.AnnotatedImage(os.path.splitext(relative)[0], filename, objects))
        return records

    def _read_labels(self, filename, names, stats):
        """`PixelObject`s of an image's label file, or None (counted) when the image has none to read."""
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
        objects = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                index, box = parse_label_line(line, where)
            except ValueError as error:
                logging.warning("%s", error)
                stats.repair(file_index.UNUSABLE_OBJECT, file=str(error))
                continue
            if index >= len(names):
                stats.repair(file_index.UNKNOWN_CLASS, file=f"{where}: class {index}")
                continue
            objects.append(file_index.PixelObject(names[index], box, box_format=box_lib.RELATIVE_CENTER_XYWH))
        return objects

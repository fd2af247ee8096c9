"""`csv`: boxes in a CSV file, images in a folder (the TF Object Detection API
tutorials' format).

    <data_dir>/<split>.csv or <data_dir>/<split>_labels.csv
        filename,width,height,class,xmin,ymin,xmax,ymax     (pixels)
    images in --image_dir, else <data_dir>/images/, <data_dir>/<split>/ or <data_dir>/
    <data_dir>/labels.txt    optional: class names, one per line

Several rows with the same filename are several objects of one image; the
single-target policy picks one. The width/height columns are ignored: boxes are
measured against the image as decoded.
"""

import collections
import csv
import glob
import io
import os

from absl import logging

from pipelines import image_header
from pipelines.sources import file_index
from pipelines.sources.source import DatasetError

REQUIRED_COLUMNS = ("filename", "class", "xmin", "ymin", "xmax", "ymax")


def read_csv_rows(csv_path):
    """Rows of a box CSV as dicts; raises DatasetError naming missing columns or undecodable text.

    UTF-8, with or without the byte-order mark spreadsheet programs write.
    """
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as error:
        line = 1 + _raw_bytes(csv_path)[: error.start].count(b"\n")
        raise DatasetError(
            f"{csv_path} line {line}: not UTF-8 text ({error.reason} at byte {error.start}); "
            f"save the CSV as UTF-8"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in (reader.fieldnames or [])]
        reader.fieldnames = header
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DatasetError(
                f"{csv_path}: missing column(s) {missing} (header: {header}); expected header "
                "filename,width,height,class,xmin,ymin,xmax,ymax."
            )
        return list(reader)
    except csv.Error as error:
        raise DatasetError(
            f"{csv_path} line {reader.line_num}: not a readable CSV ({error})."
        ) from None


def _raw_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def rows_to_images(rows, csv_path):
    """Groups CSV rows by filename into `AnnotatedImage` records, in file order.

    Returns:
      `(records, problems)`: problems are messages for rows that were ignored.
    """
    objects = collections.OrderedDict()
    problems = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{csv_path} line {line}"
        filename = (row.get("filename") or "").strip()
        if "\0" in filename:
            problems.append(f"{where}: filename holds a NUL byte")
            continue
        if not filename:
            problems.append(f"{where}: empty filename")
            continue
        try:
            xyxy = tuple(
                file_index.parse_coordinate(row.get(k), k, where)
                for k in ("xmin", "ymin", "xmax", "ymax")
            )
        except ValueError as error:
            objects.setdefault(filename, [])
            problems.append(str(error))
            continue
        objects.setdefault(filename, []).append(
            file_index.PixelObject((row.get("class") or "").strip(), xyxy)
        )
    records = [
        file_index.AnnotatedImage(filename, filename, objs) for filename, objs in objects.items()
    ]
    return records, problems


class CsvSource(file_index.FileSource):
    """A CSV of pixel boxes plus a folder of images.

    Args:
      data_dir: folder holding `<split>.csv` (or `<split>_labels.csv`).
      policy: single-target policy, "largest" or "single".
      image_dir: folder the CSV filenames are relative to (default: see module doc).
    """

    name = "csv"

    def __init__(
        self,
        data_dir,
        policy="largest",
        image_dir=None,
        max_image_pixels=image_header.MAX_IMAGE_PIXELS,
        exif=None,
    ):
        if not data_dir or not os.path.isdir(data_dir):
            raise DatasetError(
                f"csv needs --data_dir: a folder with <split>.csv files; got {data_dir!r}."
            )
        super().__init__(data_dir, policy, max_image_pixels, exif)
        self.image_dir = image_dir

    def csv_path(self, split):
        for name in (f"{split}.csv", f"{split}_labels.csv"):
            path = os.path.join(self.data_dir, name)
            if os.path.isfile(path):
                return path
        available = sorted(
            os.path.basename(p) for p in glob.glob(os.path.join(self.data_dir, "*.csv"))
        )
        raise DatasetError(
            f"No {split}.csv or {split}_labels.csv in {self.data_dir}; CSV files here: {available}."
        )

    def _image_root(self, split):
        if self.image_dir:
            return os.path.abspath(self.image_dir)
        for candidate in ("images", split):
            path = os.path.join(self.data_dir, candidate)
            if os.path.isdir(path):
                return path
        return self.data_dir

    def _names_from_annotations(self):
        # Every CSV of the folder, so that all splits share one class list.
        names = set()
        for path in glob.glob(os.path.join(self.data_dir, "*.csv")):
            names.update((r.get("class") or "").strip() for r in read_csv_rows(path))
        names.discard("")
        if not names:
            raise DatasetError(f"{self.data_dir}: no class names in any CSV file.")
        return sorted(names)

    def _records(self, split, stats):
        path = self.csv_path(split)
        records, problems = rows_to_images(read_csv_rows(path), path)
        for problem in problems:
            logging.warning("%s", problem)
            stats.repair("unusable row ignored", file=problem)
        return records

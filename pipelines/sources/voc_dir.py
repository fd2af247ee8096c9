"""`voc_dir`: any folder in Pascal VOC layout.

    <data_dir>/JPEGImages/<id>.jpg
    <data_dir>/Annotations/<id>.xml          VOC XML, pixel xmin, ymin, xmax, ymax
    <data_dir>/ImageSets/Main/<split>.txt    one id per line
    <data_dir>/labels.txt                    optional: class names, one per line

This is the layout of an extracted VOCdevkit (`VOCdevkit/VOC2007`) and of
LabelImg exports. Boxes are measured against the image as decoded, never the
XML `<size>` fields, which are often wrong in real datasets.
"""

import glob
import os
import xml.etree.ElementTree as ET

from absl import logging

from pipelines import image_header
from pipelines.sources import file_index
from pipelines.sources.source import DatasetError

_COORDINATES = ("xmin", "ymin", "xmax", "ymax")


def parse_voc_xml(xml_path):
    """Reads a VOC annotation file.

    Returns:
      `(filename, objects, problems)`: the `<filename>` text (or None), a list of
      `PixelObject`, and a list of messages for objects that had to be ignored.

    Raises:
      ValueError: naming the file, when the XML cannot be parsed.
    """
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as error:
        raise ValueError(f"{xml_path}: malformed XML ({error})") from None
    filename = (root.findtext("filename") or "").strip() or None
    objects, problems = [], []
    for i, obj in enumerate(root.iter("object")):
        where = f"{xml_path} object {i}"
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if not name or box is None:
            problems.append(f"{where}: no <name> or no <bndbox>")
            continue
        try:
            xyxy = tuple(
                file_index.parse_coordinate(box.findtext(k), k, where) for k in _COORDINATES
            )
        except ValueError as error:
            problems.append(str(error))
            continue
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        objects.append(file_index.PixelObject(name, xyxy, difficult))
    return filename, objects, problems


def voc_xml(filename, objects, size=(0, 0), difficult=()):
    """VOC annotation text for `objects`: (class name, pixel (xmin, ymin, xmax, ymax)).

    `size` (height, width) is written as given; readers here ignore it.
    `difficult` holds the indices of difficult objects.
    """
    parts = [
        f"<annotation><filename>{filename}</filename>",
        f"<size><width>{size[1]}</width><height>{size[0]}</height><depth>3</depth></size>",
    ]
    for i, (name, (xmin, ymin, xmax, ymax)) in enumerate(objects):
        parts.append(
            f"<object><name>{name}</name><difficult>{int(i in difficult)}</difficult>"
            f"<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>"
            "</object>"
        )
    parts.append("</annotation>")
    return "".join(parts)


class VocDirSource(file_index.FileSource):
    """A Pascal-VOC-format folder.

    Args:
      data_dir: the folder holding JPEGImages/, Annotations/, ImageSets/Main/.
      policy: single-target policy, "largest" or "single" (see `pipelines.sources.source`).
    """

    name = "voc_dir"

    def __init__(
        self, data_dir, policy="largest", max_image_pixels=image_header.MAX_IMAGE_PIXELS, exif=None
    ):
        if not data_dir:
            raise DatasetError("voc_dir needs --data_dir: a folder in Pascal VOC layout.")
        super().__init__(data_dir, policy, max_image_pixels, exif)
        for sub in ("JPEGImages", "Annotations", os.path.join("ImageSets", "Main")):
            if not os.path.isdir(os.path.join(self.data_dir, sub)):
                raise DatasetError(
                    f"{self.data_dir} is not a Pascal VOC folder: {sub}/ is missing "
                    "(expected JPEGImages/, Annotations/ and ImageSets/Main/<split>.txt)."
                )

    def _names_from_annotations(self):
        names = set()
        for xml_path in glob.glob(os.path.join(self.data_dir, "Annotations", "*.xml")):
            try:
                _, objects, _ = parse_voc_xml(xml_path)
            except ValueError:
                continue  # counted when a split that uses it is indexed
            names.update(o.class_name for o in objects)
        if not names:
            raise DatasetError(f"{self.data_dir}: no annotated objects in Annotations/*.xml.")
        return sorted(names)

    def split_ids(self, split):
        """Example ids listed in ImageSets/Main/<split>.txt."""
        split_file = os.path.join(self.data_dir, "ImageSets", "Main", f"{split}.txt")
        if not os.path.isfile(split_file):
            available = sorted(
                os.path.splitext(os.path.basename(p))[0]
                for p in glob.glob(os.path.join(self.data_dir, "ImageSets", "Main", "*.txt"))
            )
            raise DatasetError(f"{split_file} not found; splits here: {available}.")
        try:
            with open(
                split_file, encoding="utf-8-sig"
            ) as f:  # a byte-order mark is not part of the first id
                # VOCdevkit's per-class files have "<id> <flag>"; the id comes first.
                return [line.split()[0] for line in f if line.strip()]
        except UnicodeDecodeError as error:
            raise DatasetError(
                f"{split_file}: not UTF-8 text ({error.reason}); save it as UTF-8."
            ) from None

    def _records(self, split, stats):
        for example_id in self.split_ids(split):
            xml_path = file_index.resolve_inside(
                self.data_dir, os.path.join("Annotations", f"{example_id}.xml")
            )
            if xml_path is None:
                stats.skip("annotation path outside the dataset folder", file=example_id)
                continue
            if not os.path.isfile(xml_path):
                stats.skip("missing annotation file", file=example_id)
                continue
            try:
                filename, objects, problems = parse_voc_xml(xml_path)
            except ValueError as error:
                logging.warning("%s", error)
                stats.skip("malformed XML", file=example_id)
                continue
            for problem in problems:
                logging.warning("%s", problem)
            for problem in problems:
                stats.repair(file_index.UNUSABLE_OBJECT, file=problem)
            yield file_index.AnnotatedImage(
                example_id, self._image_filename(example_id, filename), objects
            )

    def _image_filename(self, example_id, xml_filename):
        """Path of the image relative to data_dir: the id's own file when present."""
        for ext in (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"):
            candidate = os.path.join("JPEGImages", example_id + ext)
            if os.path.isfile(os.path.join(self.data_dir, candidate)):
                return candidate
        return os.path.join("JPEGImages", xml_filename or example_id + ".jpg")

    def _image_root(self, split):
        return self.data_dir

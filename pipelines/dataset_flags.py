"""Dataset flags shared by the command-line entry points (train, evaluate, show).

Only `__main__` code calls these; library functions take a source object.
"""

from absl import flags

import pipelines
from pipelines.image_header import MAX_IMAGE_PIXELS, check_pixel_limit
from pipelines.orientation import DEFAULT_EXIF, EXIF_MODES
from pipelines.sources.source import POLICIES


def define_dataset_flags(default_split="train", with_split=True):
    """Defines --dataset, --data_dir, --split (if `with_split`), --policy and per-source options."""
    flags.DEFINE_string(
        "dataset", pipelines.DEFAULT_DATASET, f"Dataset source: {pipelines.DATASET_CHOICES}."
    )
    flags.register_validator(
        "dataset",
        lambda name: pipelines.dataset_kind(name) is not None,
        f"expected {pipelines.DATASET_CHOICES}",
    )
    flags.DEFINE_string(
        "data_dir",
        None,
        "voc, tfds:<name>: TFDS data dir; voc_dir: the VOC-format folder; csv: folder with <split>.csv; "
        "coco: folder with annotations/instances_<split>.json; yolo: folder with data.yaml.",
    )
    if with_split:
        flags.DEFINE_string("split", default_split, "Split to read.")
    flags.DEFINE_enum(
        "policy",
        POLICIES[0],
        list(POLICIES),
        "Multi-object images: train on the largest object, or keep single-object images only.",
    )
    flags.DEFINE_string("voc_year", "2007", "voc: 2007 or 2012.")
    flags.DEFINE_string(
        "manual_dir", None, "voc: folder holding the official VOC tar files (no internet)."
    )
    flags.DEFINE_string(
        "image_dir", None, "csv, coco: folder the annotations' file names are relative to."
    )
    flags.DEFINE_enum(
        "exif",
        DEFAULT_EXIF,
        list(EXIF_MODES),
        "voc_dir, csv, coco, yolo: apply each photo's EXIF orientation (the frame viewers and "
        "labelling tools show), or ignore it for datasets annotated on the stored pixels.",
    )
    define_pixel_limit_flag()


def define_pixel_limit_flag():
    flags.DEFINE_integer(
        "max_image_pixels",
        MAX_IMAGE_PIXELS,
        "Images whose header announces more pixels are refused before decoding (0: no limit).",
    )


def source_from_flags(flag_values):
    """Builds the dataset source named by the flags defined above."""
    return pipelines.source_with_options(
        flag_values.dataset,
        flag_values.data_dir,
        policy=flag_values.policy,
        voc_year=flag_values.voc_year,
        manual_dir=flag_values.manual_dir,
        image_dir=flag_values.image_dir,
        max_image_pixels=check_pixel_limit(flag_values.max_image_pixels),
        exif=flag_values.exif,
    )

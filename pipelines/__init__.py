"""Everything before the model: dataset sources and the tf.data pipeline.

`DATASETS` maps a dataset name (the `--dataset` flag) to its source class, and
`tfds:<name>[:<version>]` names any TFDS detection dataset (`TfdsSource`);
`get_source(name, data_dir=..., **options)` builds one with a clear error for
unknown names. Every source yields the same element (see `pipelines.sources.source`).

| `--dataset`    | source                         | `--data_dir`                         | options
(`SOURCE_OPTIONS`)          |
|----------------|--------------------------------|--------------------------------------|-------------------------------------|
| synthetic      | sources.synthetic              | -                                    | -
|
| voc            | sources.voc_tfds (TFDS)        | TFDS data dir                        | policy,
voc_year, manual_dir        |
| tfds:NAME[:V]  | sources.tfds_source (TFDS)     | TFDS data dir (prepared; no download) | policy
|
| voc_dir        | sources.voc_dir                | VOC folder                           | policy,
max_image_pixels, exif            |
| csv            | sources.csv_source             | folder with <split>.csv              | policy,
image_dir, max_image_pixels, exif |
| coco           | sources.coco_json              | folder with annotations/             | policy,
image_dir, max_image_pixels, exif |
| yolo           | sources.yolo                   | folder with data.yaml                | policy,
max_image_pixels, exif            |
"""

from pipelines.image_header import MAX_IMAGE_PIXELS
from pipelines.orientation import DEFAULT_EXIF
from pipelines.sources.coco_json import CocoSource
from pipelines.sources.csv_source import CsvSource
from pipelines.sources.source import BOX, ID, IMAGE, IMAGE_PATH, LABEL, DatasetError, Source
from pipelines.sources.synthetic import SyntheticSource
from pipelines.sources.tfds_source import PREFIX as TFDS_PREFIX
from pipelines.sources.tfds_source import TfdsSource
from pipelines.sources.voc_dir import VocDirSource
from pipelines.sources.voc_tfds import VocTfdsSource
from pipelines.sources.yolo import YoloSource

DATASETS = {
    "synthetic": SyntheticSource,
    "voc": VocTfdsSource,
    "voc_dir": VocDirSource,
    "csv": CsvSource,
    "coco": CocoSource,
    "yolo": YoloSource,
}

DEFAULT_DATASET = "synthetic"

DATASET_CHOICES = f"one of {sorted(DATASETS)} or {TFDS_PREFIX}<name>[:<version>]"
"""What `--dataset` accepts, in words (flag help and errors)."""

SOURCE_OPTIONS = {
    "synthetic": (),
    "voc": ("policy", "voc_year", "manual_dir"),
    TFDS_PREFIX: ("policy",),
    "voc_dir": ("policy", "max_image_pixels", "exif"),
    "csv": ("policy", "image_dir", "max_image_pixels", "exif"),
    "coco": ("policy", "image_dir", "max_image_pixels", "exif"),
    "yolo": ("policy", "max_image_pixels", "exif"),
}
"""The options (flags) each source takes; `source_with_options` passes only these."""

_ARGUMENT_NAMES = {"voc_year": "year"}  # option -> constructor argument, where they differ


def dataset_kind(name):
    """The `SOURCE_OPTIONS` key of a dataset name (`tfds:coco/2017` -> `tfds:`), or None when
    unknown."""
    if isinstance(name, str) and name.startswith(TFDS_PREFIX) and len(name) > len(TFDS_PREFIX):
        return TFDS_PREFIX
    return name if name in DATASETS else None


def check_dataset_name(name):
    """`name` when it names a dataset; ValueError saying what is accepted otherwise."""
    if dataset_kind(name) is None:
        raise ValueError(f"Unknown dataset {name!r}; expected {DATASET_CHOICES}.")
    return name


def get_source(name, data_dir=None, **options):
    """Builds the source registered as `name` (see `DATASETS`), or the TFDS dataset
    `tfds:<name>[:<version>]`."""
    if check_dataset_name(name).startswith(TFDS_PREFIX):
        return TfdsSource(name[len(TFDS_PREFIX) :], data_dir=data_dir or None, **options)
    return DATASETS[name](data_dir=data_dir or None, **options)


def source_with_options(
    name,
    data_dir=None,
    policy="largest",
    voc_year="2007",
    manual_dir=None,
    image_dir=None,
    max_image_pixels=MAX_IMAGE_PIXELS,
    exif=DEFAULT_EXIF,
):
    """Builds source `name`, passing it only the options it takes (`SOURCE_OPTIONS`).

    policy: multi-object images; voc_year and manual_dir: voc; image_dir: the image folder (csv,
    coco;
    passed only when set); max_image_pixels (header check before decoding, 0: off) and exif (EXIF
    orientation: `apply` or `ignore`, `pipelines.orientation.EXIF_MODES`): the file sources.
    """
    given = {
        "policy": policy,
        "voc_year": voc_year,
        "manual_dir": manual_dir,
        "image_dir": image_dir,
        "max_image_pixels": max_image_pixels,
        "exif": exif,
    }
    options = {
        _ARGUMENT_NAMES.get(option, option): given[option]
        for option in SOURCE_OPTIONS[dataset_kind(check_dataset_name(name))]
        if option != "image_dir" or image_dir
    }
    return get_source(name, data_dir=data_dir, **options)


__all__ = [
    "BOX",
    "ID",
    "IMAGE",
    "IMAGE_PATH",
    "LABEL",
    "DATASETS",
    "DATASET_CHOICES",
    "DEFAULT_DATASET",
    "SOURCE_OPTIONS",
    "DatasetError",
    "Source",
    "check_dataset_name",
    "dataset_kind",
    "get_source",
    "source_with_options",
]

"""Everything before the model: dataset sources and the tf.data pipeline.

`DATASETS` maps a dataset name (the `--dataset` flag) to its source class, and
`tfds:<name>[:<version>]` names any TFDS detection dataset (`TfdsSource`);
`get_source(name, data_dir=..., **options)` builds one with a clear error for
unknown names. Every source yields the same element (see `pipelines.sources.source`).

| `--dataset`   | source                     | `--data_dir`                          |
|---------------|----------------------------|---------------------------------------|
| synthetic     | sources.synthetic          | -                                     |
| voc           | sources.voc_tfds (TFDS)    | TFDS data dir                         |
| tfds:NAME[:V] | sources.tfds_source (TFDS) | TFDS data dir (prepared; no download) |
| voc_dir       | sources.voc_dir            | VOC folder                            |
| csv           | sources.csv_source         | folder with <split>.csv               |
| coco          | sources.coco_json          | folder with annotations/              |
| yolo          | sources.yolo               | folder with data.yaml                 |

The other options (policy, voc_year, manual_dir, image_dir, max_image_pixels, exif) are declared
once, in `DATASET_OPTIONS`, with the sources that take each (`SOURCE_OPTIONS` lists them per
source).
"""

import dataclasses

from pipelines import fields
from pipelines.image_header import MAX_IMAGE_PIXELS
from pipelines.orientation import DEFAULT_EXIF, EXIF_MODES
from pipelines.sources.coco_json import CocoSource
from pipelines.sources.csv_source import CsvSource
from pipelines.sources.source import (
    BOX,
    ID,
    IMAGE,
    IMAGE_PATH,
    LABEL,
    POLICIES,
    DatasetError,
    Source,
)
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

FILE_SOURCES = ("voc_dir", "csv", "coco", "yolo")


@dataclasses.dataclass(frozen=True)
class DatasetOption:
    """One dataset option, declared once: its flag, its `DataConfig` field, what it is passed to.

    name: the flag and the config field; default and help: the flag's (and the field's default);
    rule: what it accepts (`pipelines.fields`); sources: the dataset kinds (`dataset_kind`) that
    take it; argument: the source constructor's argument, where its name differs; enum: the flag
    lists its choices; in_config: a `DataConfig` field (False: a runtime limit, never part of a
    run's config); only_when_set: passed only when set (the source has its own default).
    """

    name: str
    default: object
    help: str
    rule: fields.Rule
    sources: tuple
    argument: str = ""
    enum: bool = False
    in_config: bool = True
    only_when_set: bool = False


DATASET_OPTIONS = (
    DatasetOption(
        "policy",
        POLICIES[0],
        "Multi-object images: train on the largest object, or keep single-object images only.",
        fields.choice(POLICIES),
        sources=("voc", TFDS_PREFIX, *FILE_SOURCES),
        enum=True,
    ),
    DatasetOption(
        "voc_year", "2007", "voc: 2007 or 2012.", fields.choice(("2007", "2012")), ("voc",), "year"
    ),
    DatasetOption(
        "manual_dir",
        None,
        "voc: folder holding the official VOC tar files (no internet).",
        fields.text(optional=True),
        sources=("voc",),
    ),
    DatasetOption(
        "image_dir",
        None,
        "csv, coco: folder the annotations' file names are relative to.",
        fields.text(optional=True),
        sources=("csv", "coco"),
        only_when_set=True,
    ),
    DatasetOption(
        "max_image_pixels",
        MAX_IMAGE_PIXELS,
        "Images whose header announces more pixels are refused before decoding (0: no limit).",
        fields.integer(0),
        sources=FILE_SOURCES,
        in_config=False,
    ),
    DatasetOption(
        "exif",
        DEFAULT_EXIF,
        "voc_dir, csv, coco, yolo: apply each photo's EXIF orientation (the frame viewers and "
        "labelling tools show), or ignore it for datasets annotated on the stored pixels.",
        fields.choice(EXIF_MODES),
        sources=FILE_SOURCES,
        enum=True,
    ),
)
"""Every dataset option: the dataset flags, `DataConfig` (through `DatasetOptions`) and
`source_with_options` derive from this one list."""

OPTIONS = {option.name: option for option in DATASET_OPTIONS}

SOURCE_OPTIONS = {
    kind: tuple(option.name for option in DATASET_OPTIONS if kind in option.sources)
    for kind in (*DATASETS, TFDS_PREFIX)
}
"""The options (flags) each source takes; `source_with_options` passes only these."""

DatasetOptions = dataclasses.make_dataclass(
    "DatasetOptions",
    [
        (
            option.name,
            str | None if option.default is None else type(option.default),
            fields.field(option.default, option.rule),
        )
        for option in DATASET_OPTIONS
        if option.in_config
    ],
    frozen=True,
)
DatasetOptions.__module__ = __name__
DatasetOptions.__doc__ = """The dataset options a run's config holds (`DATASET_OPTIONS` with
`in_config`): the base of `localizer.training.config.DataConfig`."""


def options_of(config):
    """`{option: value}` of the dataset options `config` (a `DatasetOptions`) holds."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(DatasetOptions)}


def dataset_kind(name):
    """The `SOURCE_OPTIONS` key of a dataset name (`tfds:coco/2017` -> `tfds:`), or None when
    unknown."""
    if isinstance(name, str) and name.startswith(TFDS_PREFIX) and len(name) > len(TFDS_PREFIX):
        return TFDS_PREFIX
    return name if name in DATASETS else None


def check_dataset_name(name):
    """`name` when it names a dataset; DatasetError (a ValueError) saying what is accepted
    otherwise."""
    if dataset_kind(name) is None:
        raise DatasetError(f"Unknown dataset {name!r}; expected {DATASET_CHOICES}.")
    return name


def get_source(name, data_dir=None, **options):
    """Builds the source registered as `name` (see `DATASETS`), or the TFDS dataset
    `tfds:<name>[:<version>]`."""
    if check_dataset_name(name).startswith(TFDS_PREFIX):
        return TfdsSource(name[len(TFDS_PREFIX) :], data_dir=data_dir or None, **options)
    return DATASETS[name](data_dir=data_dir or None, **options)


def source_with_options(name, data_dir=None, **options):
    """Builds source `name`, passing it only the options it takes (`SOURCE_OPTIONS`).

    `options`: any of `DATASET_OPTIONS` (the others keep their defaults): policy (multi-object
    images); voc_year and manual_dir (voc); image_dir (the image folder: csv, coco; passed only
    when set); max_image_pixels (header check before decoding, 0: off) and exif (EXIF orientation:
    `apply` or `ignore`, `pipelines.orientation.EXIF_MODES`): the file sources.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"source_with_options got unknown options {unknown}")
    given = {option.name: options.get(option.name, option.default) for option in DATASET_OPTIONS}
    passed = {
        OPTIONS[option].argument or option: given[option]
        for option in SOURCE_OPTIONS[dataset_kind(check_dataset_name(name))]
        if not OPTIONS[option].only_when_set or given[option]
    }
    return get_source(name, data_dir=data_dir, **passed)


__all__ = [
    "BOX",
    "ID",
    "IMAGE",
    "IMAGE_PATH",
    "LABEL",
    "DATASETS",
    "DATASET_CHOICES",
    "DEFAULT_DATASET",
    "DATASET_OPTIONS",
    "OPTIONS",
    "SOURCE_OPTIONS",
    "DatasetOption",
    "DatasetOptions",
    "DatasetError",
    "Source",
    "check_dataset_name",
    "dataset_kind",
    "get_source",
    "options_of",
    "source_with_options",
]

"""Everything before the model: dataset sources and the tf.data pipeline.

`DATASETS` maps a dataset name (the `--dataset` flag) to its source class;
`get_source(name, data_dir=..., **options)` builds one with a clear error for
unknown names. Every source yields the same element (see `pipelines.sources.source`).
"""

from pipelines.image_header import MAX_IMAGE_PIXELS
from pipelines.sources.csv_source import CsvSource
from pipelines.sources.source import BOX, ID, IMAGE, IMAGE_PATH, LABEL, DatasetError, Source
from pipelines.sources.synthetic import SyntheticSource
from pipelines.sources.voc_dir import VocDirSource
from pipelines.sources.voc_tfds import VocTfdsSource

DATASETS = {
    "synthetic": SyntheticSource,
    "voc": VocTfdsSource,
    "voc_dir": VocDirSource,
    "csv": CsvSource,
}

DEFAULT_DATASET = "synthetic"


def get_source(name, data_dir=None, **options):
    """Builds the source registered as `name` (see `DATASETS`)."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {sorted(DATASETS)}.")
    return DATASETS[name](data_dir=data_dir or None, **options)


def source_with_options(name, data_dir=None, policy="largest", voc_year="2007", manual_dir=None, image_dir=None,
                        max_image_pixels=MAX_IMAGE_PIXELS):
    """Builds source `name`, passing it only the options it takes.

    policy: voc, voc_dir, csv; voc_year and manual_dir: voc; image_dir: csv;
    max_image_pixels (header check before decoding, 0: off): voc_dir, csv.
    """
    options = {}
    if name in ("voc", "voc_dir", "csv"):
        options["policy"] = policy
    if name in ("voc_dir", "csv"):
        options["max_image_pixels"] = max_image_pixels
    if name == "voc":
        options.update(year=voc_year, manual_dir=manual_dir)
    if name == "csv" and image_dir:
        options["image_dir"] = image_dir
    return get_source(name, data_dir=data_dir, **options)


__all__ = [
    "BOX", "ID", "IMAGE", "IMAGE_PATH", "LABEL", "DATASETS", "DEFAULT_DATASET",
    "DatasetError", "Source", "get_source", "source_with_options",
]

"""Dataset flags shared by the command-line entry points (train, evaluate, show).

Only `__main__` code calls these; library functions take a source object.
"""

from absl import flags

import pipelines
from pipelines.image_header import check_pixel_limit


def define_dataset_flags(default_split="train", with_split=True):
    """Defines --dataset, --data_dir, --split (if `with_split`) and the dataset options
    (`pipelines.DATASET_OPTIONS`: --policy, per-source options, --max_image_pixels)."""
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
        "voc, tfds:<name>: TFDS data dir; voc_dir: the VOC-format folder; "
        "csv: folder with <split>.csv; coco: folder with annotations/instances_<split>.json; "
        "yolo: folder with data.yaml.",
    )
    if with_split:
        flags.DEFINE_string("split", default_split, "Split to read.")
    for option in pipelines.DATASET_OPTIONS:
        _define(option)


def define_pixel_limit_flag():
    """--max_image_pixels alone (for commands that read image files without a dataset)."""
    _define(pipelines.OPTIONS["max_image_pixels"])


def _define(option):
    """The flag of a dataset option (`pipelines.DATASET_OPTIONS`)."""
    if option.enum:
        flags.DEFINE_enum(option.name, option.default, list(option.rule.choices), option.help)
    elif isinstance(option.default, int):
        flags.DEFINE_integer(option.name, option.default, option.help)
    else:
        flags.DEFINE_string(option.name, option.default, option.help)


def source_from_flags(flag_values):
    """Builds the dataset source named by the flags defined above."""
    options = {option: flag_values[option].value for option in pipelines.OPTIONS}
    options["max_image_pixels"] = check_pixel_limit(options["max_image_pixels"])
    return pipelines.source_with_options(flag_values.dataset, flag_values.data_dir, **options)

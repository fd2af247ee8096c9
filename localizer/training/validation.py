"""Every field of a `TrainConfig`, checked for type and range before anything runs.

One table, `RULES`, keyed by the field's dotted path: a numeric field gets
`(type, low, high)` (inclusive; `None` leaves a side open), a choice field the
tuple of its choices. `check_fields` walks the whole config tree and fails on
the first field that breaks its rule, naming it; a field without a rule is a
bug (a test makes sure every field has one).
"""

import dataclasses

from localizer.model import ATTACH_MODES, REGRESSION_MODES, losses
from localizer.model.backbones import BACKBONES, FEATURE_STRIDES
from localizer.training import config as config_lib
from pipelines import DATASET_CHOICES, dataset_kind
from pipelines.orientation import EXIF_MODES
from pipelines.render import MAX_IMAGE_SIZE, RESIZE_MODES
from pipelines.sources.source import POLICIES

MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 4096
IMAGE_SIZE_MULTIPLE = 32
"""Input sides are multiples of the backbones' largest stride, so every feature map has whole
cells."""

INTEGER, REAL, TEXT, FLAG = "int", "float", "str", "bool"

RULES = {
    # TrainConfig
    "box_loss": losses.BOX_LOSSES,
    "alpha": (REAL, 0.0, 1.0),
    "label_smoothing": (REAL, 0.0, 0.99),
    "cell_box_loss_weight": (REAL, 0.0, 100.0),
    "centre_loss_weight": (REAL, 0.0, 100.0),
    "box_quality_loss_weight": (REAL, 0.0, 100.0),
    "frozen_epochs": (INTEGER, 0, MAX_EPOCHS),
    "frozen_lr": (REAL, 1e-9, 10.0),
    "cache_features": FLAG,
    "feature_passes": (INTEGER, 1, 100),
    "fine_tune_epochs": (INTEGER, 0, MAX_EPOCHS),
    "fine_tune_lr": (REAL, 1e-9, 10.0),
    "fine_tune_fraction": (REAL, 0.0, 1.0),
    "warmup_epochs": (REAL, 0.0, MAX_EPOCHS),
    "weight_decay": (REAL, 0.0, 1.0),
    "ema_momentum": (REAL, 0.0, 0.9999),
    "eval_every": (INTEGER, 1, MAX_EPOCHS),
    "best_metric": config_lib.BEST_METRICS,
    "strategy": config_lib.STRATEGIES,
    "precision": config_lib.PRECISIONS,
    "jit_compile": FLAG,
    "seed": (INTEGER, 0, 2**31 - 1, "optional"),
    "deterministic": FLAG,
    # DataConfig
    "data.dataset": "dataset",
    "data.data_dir": (TEXT, "optional"),
    "data.train_split": TEXT,
    "data.val_split": TEXT,
    "data.policy": POLICIES,
    "data.voc_year": ("2007", "2012"),
    "data.manual_dir": (TEXT, "optional"),
    "data.image_dir": (TEXT, "optional"),
    "data.exif": EXIF_MODES,
    "data.max_examples": (INTEGER, 1, None, "optional"),
    "data.max_skipped_fraction": (REAL, 0.0, 1.0),
    # ModelConfig
    "model.num_classes": (INTEGER, 0, 100_000),  # 0 until the dataset sets it; builders need >= 2
    "model.class_names": "names",
    "model.resize_mode": RESIZE_MODES,
    "model.backbone": tuple(BACKBONES),
    "model.weights": TEXT,
    "model.image_size": (INTEGER, IMAGE_SIZE_MULTIPLE, MAX_IMAGE_SIZE, "multiple"),
    "model.feature_stride": FEATURE_STRIDES,
    "model.attach": ATTACH_MODES,
    "model.regression": REGRESSION_MODES,
    "model.head_units": (INTEGER, 1, 65_536),
    "model.conv_head_channels": (INTEGER, 1, 65_536),
    "model.dense_channels": (INTEGER, 1, 65_536),
    "model.dropout": (REAL, 0.0, 0.99),
    "model.box_quality": FLAG,
    "model.quality_units": (INTEGER, 1, 65_536),
    # PipelineConfig
    "pipeline.image_size": (INTEGER, IMAGE_SIZE_MULTIPLE, MAX_IMAGE_SIZE, "optional", "multiple"),
    "pipeline.resize_mode": RESIZE_MODES + (None,),
    "pipeline.batch_size": (INTEGER, 1, MAX_BATCH_SIZE),
    "pipeline.shuffle_buffer": (INTEGER, 1, 10_000_000),
    "pipeline.cache": TEXT,
    "pipeline.seed": (INTEGER, 0, 2**31 - 1, "optional"),
    "pipeline.augment.flip": FLAG,
    "pipeline.augment.zoom_out_prob": (REAL, 0.0, 1.0),
    "pipeline.augment.zoom_out_max": (REAL, 1.0, 10.0),
    "pipeline.augment.crop_prob": (REAL, 0.0, 1.0),
    "pipeline.augment.zoom_view_prob": (REAL, 0.0, 1.0),
    "pipeline.augment.zoom_view_jitter": (REAL, 0.0, 0.5),
    "pipeline.augment.min_object_covered": (REAL, 0.0, 1.0),
    "pipeline.augment.crop_area_range": "fraction range",
    "pipeline.augment.crop_aspect_ratio_range": "positive range",
    "pipeline.augment.translate": (REAL, 0.0, 0.5),
    "pipeline.augment.brightness": (REAL, 0.0, 1.0),
    "pipeline.augment.contrast": (REAL, 0.0, 0.99),
    "pipeline.augment.saturation": (REAL, 0.0, 0.99),
    "pipeline.augment.hue": (REAL, 0.0, 0.5),
}


def leaf_fields(config, prefix=""):
    """`(dotted path, value)` of every non-dataclass field of a config tree."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            yield from leaf_fields(value, f"{prefix}{field.name}.")
        else:
            yield f"{prefix}{field.name}", value


def check_fields(config):
    """Raises ValueError naming the first field of `config` that breaks its rule."""
    for path, value in leaf_fields(config):
        if path not in RULES:
            raise ValueError(
                f"config field {path} has no validation rule (localizer.training.validation.RULES)"
            )
        problem = _problem(RULES[path], value)
        if problem:
            raise ValueError(
                f"config field {path}={value!r} {problem}; fix it in the experiment or with --set={path}=..."
            )


def _problem(rule, value):
    """What is wrong with `value` under `rule`, or None."""
    if isinstance(rule, tuple) and rule and rule[0] in (INTEGER, REAL, TEXT):
        kind, *rest = rule
        flags = {r for r in rest if isinstance(r, str)}
        bounds = [r for r in rest if not isinstance(r, str)]
        if value is None:
            return None if "optional" in flags else "must be set"
        return _typed_problem(kind, bounds, flags, value)
    if isinstance(rule, tuple):
        return None if value in rule else f"must be one of {list(rule)}"
    if rule in (TEXT, FLAG, INTEGER, REAL):
        return _typed_problem(rule, [], set(), value)
    if rule == "dataset":
        return None if dataset_kind(value) else f"must be {DATASET_CHOICES}"
    if rule == "names":
        ok = isinstance(value, (tuple, list)) and all(isinstance(v, str) and v for v in value)
        return None if ok and len(set(value)) == len(value) else "must be distinct non-empty names"
    if rule in ("fraction range", "positive range"):
        ok = (
            isinstance(value, (tuple, list))
            and len(value) == 2
            and all(_is_number(v) for v in value)
        )
        if not ok or not 0 < value[0] <= value[1]:
            return "must be (low, high) with 0 < low <= high"
        if rule == "fraction range" and value[1] > 1:
            return "must be (low, high) with 0 < low <= high <= 1"
        return None
    raise AssertionError(f"unknown rule {rule!r}")


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _typed_problem(kind, bounds, flags, value):
    if kind == FLAG:
        return None if isinstance(value, bool) else "must be true or false"
    if kind == TEXT:
        return None if isinstance(value, str) and value else "must be a non-empty text"
    if kind == INTEGER and (not isinstance(value, int) or isinstance(value, bool)):
        return "must be a whole number"
    if kind == REAL and not _is_number(value):
        return "must be a number"
    if value != value:  # NaN
        return "must be a number"
    low, high = (bounds + [None, None])[:2]
    if low is not None and value < low:
        return f"must be at least {low}"
    if high is not None and value > high:
        return f"must be at most {high}"
    if "multiple" in flags and value % IMAGE_SIZE_MULTIPLE:
        return f"must be a multiple of {IMAGE_SIZE_MULTIPLE}"
    return None

"""Training configuration: one frozen dataclass tree, saved as JSON in the work dir.

Configuration flows one way: an experiment file (`experiments/<name>.py`,
`get_config()`) or `default_config()` -> `TrainConfig` -> functions that take
it. Command lines override single fields with `--set path.to.field=value`
(`apply_overrides`); library code never reads flags.
"""

import dataclasses
import importlib
import json
import typing

from localizer.model import ModelConfig
from pipelines.input_pipeline import PipelineConfig
from pipelines.orientation import DEFAULT_EXIF
from pipelines.sources.source import DEFAULT_MAX_SKIPPED_FRACTION, POLICIES

INPUT_CONTRACT = ("image_size", "resize_mode")
"""Set in `ModelConfig` only; the pipeline renders images with the model's values."""

BEST_METRICS = ("localization_accuracy", "mean_iou", "macro_mean_iou", "classification_accuracy")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "auto", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which dataset and splits (see `pipelines.DATASETS`)."""

    dataset: str = "synthetic"
    data_dir: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    policy: str = POLICIES[0]  # multi-object images, every source but synthetic (one of POLICIES)
    voc_year: str = "2007"
    manual_dir: str | None = None
    image_dir: str | None = None
    exif: str = (
        DEFAULT_EXIF  # file sources: apply each photo's EXIF orientation, or ignore it (EXIF_MODES)
    )
    max_examples: int | None = None  # cap per split, for quick runs
    # Fail before training when more than this share of a split is unusable.
    max_skipped_fraction: float = DEFAULT_MAX_SKIPPED_FRACTION


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything `localizer.training.trainer.train_and_evaluate` needs."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    pipeline: PipelineConfig = dataclasses.field(default_factory=PipelineConfig)
    # Loss = alpha * softmax cross-entropy + (1 - alpha) * box loss.
    box_loss: str = "giou"
    alpha: float = 0.5
    label_smoothing: float = 0.1
    # attach="centre_weighted" only: weights of the per-cell losses, relative to the box loss.
    cell_box_loss_weight: float = 1.0
    centre_loss_weight: float = 0.2
    # model.box_quality only: weight of the box-quality loss, relative to the box loss.
    box_quality_loss_weight: float = 1.0
    # Stage 1: heads on a frozen backbone. With cache_features, the backbone
    # runs over the training set `feature_passes` times (the first pass plain,
    # the others augmented) and the heads train on those features.
    frozen_epochs: int = 12
    frozen_lr: float = 1e-3
    cache_features: bool = True
    feature_passes: int = 5
    # Stage 2: the backbone unfrozen (BatchNorm stays frozen), lower LR. All of it, for twice the
    # epochs of the recipe before: each alone gave better boxes on realmix (experiments/RESULTS.md).
    fine_tune_epochs: int = 40
    fine_tune_lr: float = 1e-4
    fine_tune_fraction: float = 1.0
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4
    # > 0: an exponential moving average of the weights (Polyak averaging, this momentum per
    # step) is what each epoch is validated with, and what best.keras and final.keras hold.
    ema_momentum: float = 0.0
    # Evaluation, checkpoints and hardware.
    eval_every: int = 1
    # Class-averaged mean IoU: the box quality of every class counts, whatever its share.
    best_metric: str = "macro_mean_iou"
    strategy: str = "auto"
    precision: str = "float32"
    jit_compile: bool = False
    seed: int = 0
    deterministic: bool = False  # bit-exact repeats (tf op determinism); slower

    def validate(self):
        """Every field's type and range (`localizer.training.validation`), then the rules between
        fields."""
        from localizer.training import validation  # here: it reads this module's constants

        validation.check_fields(self)
        if self.frozen_epochs + self.fine_tune_epochs <= 0:
            raise ValueError("Nothing to train: frozen_epochs + fine_tune_epochs must be > 0.")
        for name in INPUT_CONTRACT:
            value, model_value = getattr(self.pipeline, name), getattr(self.model, name)
            if value is not None and value != model_value:
                raise ValueError(
                    f"pipeline.{name}={value!r} contradicts model.{name}={model_value!r}: the model's input is "
                    f"set once, as model.{name}; drop pipeline.{name}."
                )
        return self

    def input_pipeline(self):
        """The `PipelineConfig` with the model's input contract (image size, resize mode) filled
        in."""
        return dataclasses.replace(
            self.pipeline, **{name: getattr(self.model, name) for name in INPUT_CONTRACT}
        )

    def resolve(self, class_names, replicas=1):
        """The config as a run uses it (and saves it): the dataset's classes in the model,
        the model's input contract in the pipeline, the global batch for `replicas`.
        """
        model = dataclasses.replace(
            self.model, num_classes=len(class_names), class_names=tuple(class_names)
        )
        pipeline = dataclasses.replace(
            self.input_pipeline(),
            batch_size=self.pipeline.batch_size * replicas,
            seed=self.seed,
        )
        return dataclasses.replace(self, model=model, pipeline=pipeline)


def default_config():
    """The project's default recipe: the best found on realmix within a CPU budget.

    EfficientNet-Lite0 (ImageNet) with the centre-weighted box head on its
    stride-16 + stride-32 features and a box-quality head; the heads first on
    frozen feature passes (one plain, the others augmented), then the whole
    backbone fine-tuned (BatchNorm frozen) with augmentation; the best epoch
    by class-averaged IoU. The
    numbers are the `TrainConfig` defaults above; what they cost and give,
    and how they were chosen: experiments/RESULTS.md.
    """
    return TrainConfig()


def load_experiment(name):
    """`experiments.<name>.get_config()`; the empty name gives `default_config()`."""
    if not name:
        return default_config()
    missing = ValueError(
        f"no experiment {name!r}: expected experiments/{name}.py with get_config(); "
        f"see experiments/README.md for the names"
    )
    if not name.isidentifier():
        raise missing
    try:
        module = importlib.import_module(f"experiments.{name}")
    except ModuleNotFoundError as error:
        if error.name not in (f"experiments.{name}", "experiments"):
            raise
        raise missing from None
    if not callable(getattr(module, "get_config", None)):
        raise missing
    return module.get_config()


def to_dict(config):
    return dataclasses.asdict(config)


def to_json(config):
    return json.dumps(to_dict(config), indent=2, sort_keys=True)


def from_dict(data, cls=TrainConfig):
    """Rebuilds a (nested) config dataclass from `to_dict` output."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in data:
            continue
        value = data[field.name]
        if dataclasses.is_dataclass(hints[field.name]) and isinstance(value, dict):
            value = from_dict(value, hints[field.name])
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[field.name] = value
    return cls(**kwargs)


def replace_fields(config, changes):
    """`dataclasses.replace` for nested fields: `replace_fields(c, {"model.attach": "pooled"})`.

    Values are taken as they are; `apply_overrides` parses strings first.
    """
    for path, value in changes.items():
        config = _replace_path(
            config, path.split("."), lambda current, hint, value=value: value, path
        )
    return config


def apply_overrides(config, overrides):
    """Applies `["model.image_size=160", "alpha=0.3", ...]` to a config.

    Values are parsed by the field's type (bool accepts true/false/1/0; None
    or "none" clears an optional field; tuples take comma-separated values).
    """
    for override in overrides or ():
        path, sep, raw = override.partition("=")
        if not sep:
            raise ValueError(f"Override {override!r} must look like field.path=value.")
        raw = raw.strip()
        parse = lambda current, hint, raw=raw, override=override: _parse(
            raw, hint, current, override
        )  # noqa: E731
        config = _replace_path(config, path.strip().split("."), parse, override)
    return config


def _replace_path(node, path, make_value, what):
    """`node` with the field at `path` replaced by `make_value(current value, type hint)`."""
    if not dataclasses.is_dataclass(node):
        raise ValueError(f"{what!r}: {type(node).__name__} has no fields.")
    names = {f.name for f in dataclasses.fields(node)}
    if path[0] not in names:
        raise ValueError(
            f"{what!r}: {type(node).__name__} has no field {path[0]!r}; fields: {sorted(names)}."
        )
    hints = typing.get_type_hints(type(node))
    current = getattr(node, path[0])
    if len(path) > 1:
        value = _replace_path(current, path[1:], make_value, what)
    else:
        value = make_value(current, hints[path[0]])
    return dataclasses.replace(node, **{path[0]: value})


def _parse(raw, hint, current, override):
    if dataclasses.is_dataclass(current):
        field = sorted(f.name for f in dataclasses.fields(current))[0]
        raise ValueError(
            f"{override!r}: {override.partition('=')[0]} is a group of fields; set one of them, "
            f"e.g. {override.partition('=')[0]}.{field}=..."
        )
    if raw.lower() in ("none", "null") and (current is None or type(None) in typing.get_args(hint)):
        return None
    kind = (
        type(current)
        if current is not None
        else next(a for a in typing.get_args(hint) if a is not type(None))
    )
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        if kind is tuple:
            return (
                tuple(type(current[0])(v) for v in raw.split(","))
                if current
                else tuple(raw.split(","))
            )
        return kind(raw)
    except (TypeError, ValueError):
        raise ValueError(
            f"Override {override!r}: {raw!r} is not a valid {kind.__name__}."
        ) from None

"""Training configuration: one frozen dataclass tree, saved as JSON in the work dir.

Configuration flows one way: a config file (`experiments/<name>.py` with `get_config()`, or a
JSON config or run record: `localizer.train --experiment/--config`) or `default_config()` ->
`TrainConfig` -> functions that take it. Command lines override single fields with
`--set path.to.field=value` (`apply_overrides`); library code never reads flags.

Every field carries its rule (`pipelines.fields`); `TrainConfig.validate()` checks them all,
then the rules between fields.
"""

import dataclasses
import json
import re
import typing

import yaml

import pipelines
from localizer.model import ModelConfig, losses
from pipelines import fields
from pipelines.fields import ConfigError
from pipelines.input_pipeline import PipelineConfig
from pipelines.sources.source import DEFAULT_MAX_SKIPPED_FRACTION

INPUT_CONTRACT = ("image_size", "resize_mode")
"""Set in `ModelConfig` only; the pipeline renders images with the model's values."""

BEST_METRICS = ("localization_accuracy", "mean_iou", "macro_mean_iou", "classification_accuracy")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "auto", "mixed_float16", "mixed_bfloat16")
MAX_EPOCHS = 10_000


def _dataset_problem(name):
    return (
        None
        if isinstance(name, str) and pipelines.dataset_kind(name)
        else (f"must be {pipelines.DATASET_CHOICES}")
    )


@dataclasses.dataclass(frozen=True)
class DataConfig(pipelines.DatasetOptions):
    """Which dataset and splits (see `pipelines.DATASETS`), and the dataset options
    (`pipelines.DATASET_OPTIONS`: policy, voc_year, manual_dir, image_dir, exif)."""

    dataset: str = fields.field("synthetic", fields.check_with(_dataset_problem))
    data_dir: str | None = fields.field(None, fields.text(optional=True))
    train_split: str = fields.field("train", fields.text())
    val_split: str = fields.field("val", fields.text())
    max_examples: int | None = fields.field(  # cap per split, for quick runs
        None, fields.integer(1, optional=True)
    )
    # Fail before training when more than this share of a split is unusable.
    max_skipped_fraction: float = fields.field(DEFAULT_MAX_SKIPPED_FRACTION, fields.real(0.0, 1.0))


def _real(default, low, high):
    return fields.field(default, fields.real(low, high))


def _whole(default, low, high):
    return fields.field(default, fields.integer(low, high))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything `localizer.training.trainer.train_and_evaluate` needs."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    pipeline: PipelineConfig = dataclasses.field(default_factory=PipelineConfig)
    # Loss = alpha * softmax cross-entropy + (1 - alpha) * box loss.
    box_loss: str = fields.field("giou", fields.choice(losses.BOX_LOSSES))
    alpha: float = _real(0.5, 0.0, 1.0)
    label_smoothing: float = _real(0.1, 0.0, 0.99)
    # attach="centre_weighted" only: weights of the per-cell losses, relative to the box loss.
    cell_box_loss_weight: float = _real(1.0, 0.0, 100.0)
    centre_loss_weight: float = _real(0.2, 0.0, 100.0)
    # model.box_quality only: weight of the box-quality loss, relative to the box loss.
    box_quality_loss_weight: float = _real(1.0, 0.0, 100.0)
    # Stage 1: heads on a frozen backbone. With cache_features, the backbone
    # runs over the training set `feature_passes` times (the first pass plain,
    # the others augmented) and the heads train on those features.
    frozen_epochs: int = _whole(12, 0, MAX_EPOCHS)
    frozen_lr: float = _real(1e-3, 1e-9, 10.0)
    cache_features: bool = fields.field(True, fields.boolean())
    feature_passes: int = _whole(5, 1, 100)
    # Stage 2: the backbone unfrozen (BatchNorm stays frozen), lower LR. All of it, for twice the
    # epochs of the recipe before: each alone gave better boxes on realmix (experiments/RESULTS.md).
    fine_tune_epochs: int = _whole(40, 0, MAX_EPOCHS)
    fine_tune_lr: float = _real(1e-4, 1e-9, 10.0)
    fine_tune_fraction: float = _real(1.0, 0.0, 1.0)
    warmup_epochs: float = _real(1.0, 0.0, MAX_EPOCHS)
    weight_decay: float = _real(1e-4, 0.0, 1.0)
    # > 0: an exponential moving average of the weights (Polyak averaging, this momentum per
    # step) is what each epoch is validated with, and what best.keras and final.keras hold.
    ema_momentum: float = _real(0.0, 0.0, 0.9999)
    # Evaluation, checkpoints and hardware.
    eval_every: int = _whole(1, 1, MAX_EPOCHS)
    # Class-averaged mean IoU: the box quality of every class counts, whatever its share.
    best_metric: str = fields.field("macro_mean_iou", fields.choice(BEST_METRICS))
    strategy: str = fields.field(
        "auto", fields.choice(STRATEGIES), flag="tf.distribute strategy.", flag_enum=True
    )
    precision: str = fields.field(
        "float32", fields.choice(PRECISIONS), flag="Keras dtype policy.", flag_enum=True
    )
    jit_compile: bool = fields.field(False, fields.boolean(), flag="XLA-compile the train step.")
    seed: int | None = fields.field(
        0, fields.integer(0, 2**31 - 1, optional=True), flag="Random seed."
    )
    deterministic: bool = fields.field(  # bit-exact repeats (tf op determinism); slower
        False, fields.boolean()
    )

    def validate(self):
        """Every field's rule (`pipelines.fields`), then the rules between fields."""
        fields.check(self)
        if self.frozen_epochs + self.fine_tune_epochs <= 0:
            raise ConfigError("Nothing to train: frozen_epochs + fine_tune_epochs must be > 0.")
        for name in INPUT_CONTRACT:
            value, model_value = getattr(self.pipeline, name), getattr(self.model, name)
            if value is not None and value != model_value:
                raise ConfigError(
                    f"pipeline.{name}={value!r} contradicts model.{name}={model_value!r}: the "
                    f"model's input is set once, as model.{name}; drop pipeline.{name}."
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

        Idempotent for one replica: a resolved config resolves to itself. A config read back from
        a multi-replica run's record holds the global batch; `from_record` divides it back.
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


def to_dict(config):
    return dataclasses.asdict(config)


def to_json(config):
    return json.dumps(to_dict(config), indent=2, sort_keys=True)


def from_dict(data, cls=TrainConfig):
    """Rebuilds a (nested) config dataclass from `to_dict` output (other keys are ignored)."""
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


RUN_FACTS = ("class_names", "replicas", "resolved_precision", "code")
"""Keys a work dir's config.json holds beside the config: facts of the run, not fields."""


def unknown_fields(data, cls=TrainConfig, prefix=""):
    """Dotted paths of the keys in `data` (`to_dict`-shaped) that `cls` has no field for."""
    hints = typing.get_type_hints(cls)
    found = []
    for key, value in data.items():
        if key not in hints:
            found.append(prefix + key)
        elif dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            found += unknown_fields(value, hints[key], f"{prefix}{key}.")
    return found


def from_record(data, what="the JSON file"):
    """The config a JSON file holds: `to_dict` output, a work dir's config.json, or a run record
    (its "config").

    A resolved config loads as it ran: the "replicas" that config.json and run records hold
    divide the global batch back to the per-replica batch, so that resolving it again (with the
    same classes and replicas) gives the same config.
    """
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        data = data["config"]
    if not isinstance(data, dict):
        raise ConfigError(f"{what} holds no config: expected a config dict or a run record")
    unknown = sorted(unknown_fields({k: v for k, v in data.items() if k not in RUN_FACTS}))
    if unknown:
        raise ConfigError(
            f"{what} names fields no config has: {', '.join(unknown[:8])}; check their spelling "
            f"(a field removed since the file was written cannot be rerun as it was)"
        )
    config = from_dict(data)
    replicas = data.get("replicas", 1)
    if isinstance(replicas, int) and replicas > 1:
        batch = config.pipeline.batch_size // replicas
        config = replace_fields(config, {"pipeline.batch_size": batch})
    return config


def replace_fields(config, changes):
    """`dataclasses.replace` for nested fields: `replace_fields(c, {"model.attach": "pooled"})`.

    Values are taken as they are; `apply_overrides` parses strings first.
    """
    for path, value in changes.items():
        config = _replace_path(config, path.split("."), lambda *_, value=value: value, path)
    return config


def apply_overrides(config, overrides):
    """Applies `["model.image_size=160", "alpha=0.3", ...]` to a config.

    A value is YAML (PyYAML's safe loader, which also reads `3e-3` as a number: `0.3`, `true`,
    `null`, `[0.08, 1.0]`, `pooled`), taken as the field's type where that loses nothing: a text
    field takes the text as written (`data.voc_year=2012`), a real field a whole number, a flag 1
    or 0, a tuple a list or comma-separated values; `none` clears an optional field. Then the
    field's rule (`pipelines.fields`) checks it: a mistake is a `ConfigError` naming the override.
    """
    for override in overrides or ():
        path, sep, raw = override.partition("=")
        if not sep:
            raise ConfigError(f"Override {override!r} must look like field.path=value.")
        path, raw = path.strip(), raw.strip()

        def parse(current, hint, field, raw=raw, path=path, override=override):
            if dataclasses.is_dataclass(current):
                first = sorted(f.name for f in dataclasses.fields(current))[0]
                raise ConfigError(
                    f"{override!r}: {path} is a group of fields; set one of them, "
                    f"e.g. {path}.{first}=..."
                )
            value = _override_value(raw, current, hint)
            problem = fields.problem(field, value)
            if problem:
                raise ConfigError(f"Override {override!r}: {path}={value!r} {problem}.")
            return value

        config = _replace_path(config, path.split("."), parse, override)
    return config


def _replace_path(node, path, make_value, what):
    """`node` with the field at `path` replaced by `make_value(current value, type hint, field)`."""
    if not dataclasses.is_dataclass(node):
        raise ConfigError(f"{what!r}: {type(node).__name__} has no fields.")
    by_name = {f.name: f for f in dataclasses.fields(node)}
    if path[0] not in by_name:
        raise ConfigError(
            f"{what!r}: {type(node).__name__} has no field {path[0]!r}; fields: {sorted(by_name)}."
        )
    hint = typing.get_type_hints(type(node))[path[0]]
    current = getattr(node, path[0])
    if len(path) > 1:
        value = _replace_path(current, path[1:], make_value, what)
    else:
        value = make_value(current, hint, by_name[path[0]])
    return dataclasses.replace(node, **{path[0]: value})


def _override_value(raw, current, hint):
    """`raw` read as YAML, then as the field's type where nothing is lost (`apply_overrides`)."""
    kinds = [kind for kind in typing.get_args(hint) or (hint,) if kind is not type(None)]
    kind = kinds[0] if len(kinds) == 1 else type(current)
    if raw.lower() in ("none", "null") and len(kinds) < len(typing.get_args(hint) or (hint,)):
        return None  # an optional field, cleared
    value = _yaml(raw)
    if kind is str:
        return value if isinstance(value, str) else raw
    if kind is float and type(value) is int:
        return float(value)
    if kind is bool and type(value) is int and value in (0, 1):
        return bool(value)
    if kind is tuple and isinstance(value, list):
        return tuple(value)
    if kind is tuple and isinstance(value, str) and "," in raw:
        texts = bool(current) and isinstance(current[0], str)
        return tuple(part.strip() if texts else _yaml(part.strip()) for part in raw.split(","))
    return value


class _OverrideLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading `3e-3` (an exponent without a dot) as the number YAML 1.2
    says it is; YAML 1.1's float pattern wants a dot and leaves it as text."""


_OverrideLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml(raw):
    try:
        return yaml.load(raw, Loader=_OverrideLoader)
    except yaml.YAMLError:
        return raw  # the field's rule says what is wrong with it

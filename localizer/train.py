"""Train a localizer: `python -m localizer.train` (or `make train`).

    python -m localizer.train --dataset=voc_dir --data_dir=/data/my_voc_folder \
        --experiment=realmix_default --workdir=work/realmix

Flags and `main` only: the work is `localizer.training.trainer.train_and_evaluate`.
"""

import importlib.util
import json
import os
import shlex
import sys

from absl import flags

import pipelines
from localizer.training import config as config_lib
from localizer.training import workdir as workdir_lib
from localizer.training.trainer import train_and_evaluate
from pipelines import cli, dataset_flags, fields
from pipelines.fields import ConfigError
from pipelines.image_header import check_pixel_limit

FLAGS = flags.FLAGS

EXPERIMENTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments"
)
"""Where `--experiment=NAME` finds NAME.py (read by path: the library never imports experiments)."""

DATA_FLAGS = ("dataset", "data_dir") + tuple(
    option.name for option in pipelines.DATASET_OPTIONS if option.in_config
)
"""The dataset flags that set `config.data` fields of the same name."""


def shortcut_flags():
    """`(flag name, field path, field)` of every config field that declares a flag
    (`pipelines.fields.FLAG`): --backbone, --image_size, --batch_size, --seed, ..."""
    for path, _, field in fields.leaves(config_lib.default_config()):
        if fields.FLAG in field.metadata:
            yield path.rpartition(".")[2], path, field


def load_experiment(name):
    """Experiment `name`'s config, as `experiments/names.py` resolves it (a file's
    `get_config()`, or a variant of a sweep file); the empty name gives `default_config()`."""
    if not name:
        return config_lib.default_config()
    missing = ConfigError(
        f"no experiment {name!r}: expected experiments/{name}.py with get_config(); "
        f"see experiments/README.md for the names"
    )
    if not name.isidentifier():
        raise missing
    names = _load(os.path.join(EXPERIMENTS, "names.py"), "experiments.names")
    try:
        spec = names.spec(name)  # experiments/frozen.py:alpha_025
    except ValueError:
        raise missing from None
    return load_config_file(os.path.join(os.path.dirname(EXPERIMENTS), spec))


def load_config_file(spec):
    """`--config`: `PATH.py` (its `get_config()`), `PATH.py:ARG` (`get_config(ARG)`, as
    big_vision's configs take one), or `PATH.json`: a config (`config_lib.to_dict` output, a work
    dir's config.json) or a run record (its "config"), which reruns as it ran."""
    path, arg = _split_spec(spec)
    if not os.path.isfile(path):
        raise ConfigError(f"--config={spec}: no such file {path}")
    if path.endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(f"--config={spec}: not a JSON file ({error})") from None
        return config_lib.from_record(data, path)
    if path.endswith(".py"):
        missing = ConfigError(f"--config={spec}: expected {path} to define get_config()")
        module = "_config_" + os.path.splitext(os.path.basename(path))[0]
        return _get_config(path, module, arg or None, missing)
    raise ConfigError(
        f"--config={spec}: expected a .py file with get_config() or a .json config or run record"
    )


def _load(path, module_name):
    """The Python file at `path` as a module, loaded by path (no import edge to its package)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _get_config(path, module_name, arg, missing):
    """`get_config()` (or `get_config(arg)`) of the Python file at `path`."""
    get_config = getattr(_load(path, module_name), "get_config", None)
    if not callable(get_config):
        raise missing
    config = get_config() if arg is None else get_config(arg)
    if isinstance(config, dict):
        config = config_lib.from_record(config, path)
    if not isinstance(config, config_lib.TrainConfig):
        raise ConfigError(f"get_config() of {path} returned {type(config).__name__}, not a config")
    return config


def config_from_flags(flag_values):
    """The experiment's (or --config's) config, overridden only by the flags actually given, then
    `--set`."""
    if flag_values.experiment and flag_values.config:
        raise ConfigError("--config and --experiment both name a config; give one of them")
    if flag_values.config:
        config = load_config_file(flag_values.config)
    else:
        config = load_experiment(flag_values.experiment)
    given = {name: flag_values[name].value for name in DATA_FLAGS if flag_values[name].present}
    given = {f"data.{name}": (value or None) for name, value in given.items()}  # --data_dir= clears
    config = config_lib.replace_fields(config, given)
    overrides = [
        f"{path}={flag_values[name].value}"
        for name, path, _ in shortcut_flags()
        if flag_values[name].present
    ]
    return config_lib.apply_overrides(config, overrides + list(flag_values.set))


def _split_spec(spec):
    """`PATH.py:ARG` -> `(PATH.py, ARG)`; any other spec -> `(spec, "")`."""
    path, sep, arg = spec.partition(".py:")
    return (f"{path}.py", arg) if sep else (spec, "")


def _run_name(flag_values):
    """The work dir's name part for the config: the experiment, or --config's file name."""
    if not flag_values.config:
        return flag_values.experiment or None
    path, arg = _split_spec(flag_values.config)
    return "-".join(part for part in (os.path.splitext(os.path.basename(path))[0], arg) if part)


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(
            f"unexpected argument {argv[1]!r}; every option is a --flag (see --helpshort)"
        )
    config = config_from_flags(FLAGS)
    workdir = FLAGS.workdir or workdir_lib.default_workdir(
        FLAGS.dataset if FLAGS["dataset"].present else None,
        FLAGS.data_dir,
        _run_name(FLAGS),
    )
    command = " ".join(["python -m localizer.train", shlex.join(sys.argv[1:])]).strip()
    summary = train_and_evaluate(
        config,
        workdir,
        command=command,
        overwrite=FLAGS.overwrite,
        max_image_pixels=check_pixel_limit(FLAGS.max_image_pixels),
    )
    if summary.get(
        "role"
    ):  # a worker other than the chief: the chief reports and writes the work dir
        print(f"\n{summary['role']}: done; the chief (worker 0) wrote {summary['workdir']}.")
        if summary.get("weights_digest"):
            print(f"Weights digest: {summary['weights_digest']}")
        return
    best, base = summary["best"], summary["constant_guess_baseline"]
    print()
    if best:
        print(
            f"Best epoch {best['epoch']}: "
            f"localization accuracy {best['localization_accuracy']:.3f}, "
            f"mean IoU {best['mean_iou']:.3f}, "
            f"class accuracy {best['classification_accuracy']:.3f} "
            f"(best constant guess: loc acc {base['localization_accuracy']:.3f}, "
            f"mean IoU {base['mean_iou']:.3f})."
        )
    print(f"Trained in {summary['train_seconds']:.0f} s.")
    if summary.get("weights_digest"):  # every worker of a multi-worker run prints the same one
        print(f"Weights digest: {summary['weights_digest']}")
    print(f"Model:   {summary['best_model']}")
    print(f"Metrics: {summary['metrics_history']} (and metrics.csv, train_summary.json)")
    print(f"TensorBoard: tensorboard --logdir {os.path.join(summary['workdir'], 'tensorboard')}")


def define_flags():
    dataset_flags.define_dataset_flags(with_split=False)
    flags.DEFINE_string(
        "experiment", "", "Name of experiments/<name>.py (empty: the default recipe)."
    )
    flags.DEFINE_string(
        "workdir",
        "",
        "Output folder (default: work/<dataset>[-<data folder>-<digest of its "
        "path>][-<experiment>]).",
    )
    flags.DEFINE_boolean(
        "overwrite",
        False,
        "The work dir holds another run: move it aside (kept as "
        "<workdir>.replaced-<time>) and start afresh.",
    )
    flags.DEFINE_string(
        "config",
        "",
        "A config file instead of --experiment: PATH.py with get_config() (PATH.py:ARG calls "
        "get_config(ARG)), or PATH.json: a config, a work dir's config.json or a run record "
        "(experiments/results/runs/NAME.json), which reruns as it ran.",
    )
    for name, _, field in shortcut_flags():  # the fields that name a flag: --backbone, --seed, ...
        help_text, kind = field.metadata[fields.FLAG], field.type
        if field.metadata.get(fields.FLAG_ENUM):
            flags.DEFINE_enum(name, None, list(field.metadata[fields.RULE].choices), help_text)
        elif kind is bool:
            flags.DEFINE_boolean(name, None, help_text)
        elif kind in (int, int | None):
            flags.DEFINE_integer(name, None, help_text)
        else:
            flags.DEFINE_string(name, None, help_text)
    flags.DEFINE_multi_string(
        "set",
        [],
        "Override any config field: --set=model.attach=pooled (values in YAML: 0.3, true, null, "
        "[0.08, 1.0]).",
    )


if __name__ == "__main__":
    cli.run(main, define_flags)

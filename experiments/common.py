"""Shared pieces of the experiment configs: the realmix data and the recipes the sweeps start from.

A config here is today's: it names what an experiment changes, never what a default used to be.
What a past run ran is its record's own config (`experiments/results/runs/<name>.json`).
"""

import os

from localizer.training.config import DataConfig, TrainConfig, replace_fields

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REALMIX_DIR = os.path.join(REPO_ROOT, "..", "shared", "data", "realmix")


def realmix_data():
    """Realmix (../shared/data/realmix): train on `train`, measure on `val`."""
    return DataConfig(
        dataset="voc_dir",
        data_dir=os.path.normpath(REALMIX_DIR),
        train_split="train",
        val_split="val",
    )


def replace(config, **changes):
    """`replace(c, **{"model.attach": "pooled"})`: `localizer.training.config.replace_fields`."""
    return replace_fields(config, changes)


def default_recipe(**changes):
    """Today's default recipe on realmix, with `changes` applied."""
    return replace(TrainConfig(data=realmix_data()), **changes)


CONV_RECIPE = {
    "model.attach": "flattened",
    "model.feature_stride": 32,
    "fine_tune_fraction": 0.3,
    "pipeline.augment.crop_area_range": (0.25, 1.0),
    "best_metric": "localization_accuracy",
}
"""The first ladder's recipe (before the dense head): flatten + dense box head on stride-32
features, crops down to 25% of the image, top 30% of the backbone fine-tuned, best epoch by
localization accuracy."""


def conv_recipe(**changes):
    """The default recipe on realmix with `CONV_RECIPE`, with `changes` applied."""
    return default_recipe(**{**CONV_RECIPE, **changes})


def variant(variants, arg, path):
    """`variants[arg]`: one variant's changes of a sweep file (big_vision's `get_config(arg)`), or a
    ValueError naming the file's variants."""
    if arg not in variants:
        name = os.path.relpath(path, REPO_ROOT)
        raise ValueError(f"no variant {arg!r} in {name}: one of {', '.join(variants)}")
    return variants[arg]


def benchmark_facts(command):
    """What a benchmark's JSON file holds beside its figures: the command, date, machine, code."""
    import platform
    import time

    from localizer import provenance

    return {
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "code": provenance.code_version(),
    }


def write_benchmark(path, result):
    """Writes a benchmark's JSON file (atomically) and says where."""
    from pipelines import files

    files.write_json_atomically(path, result, indent=1)
    print(f"Wrote {path}")

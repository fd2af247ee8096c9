"""Every named experiment: a file's `get_config()`, or one variant of a sweep file.

A file with a `VARIANTS` table is a sweep (big_vision's `configs/*.py` with `get_config(arg)`):
its variant `alpha_025` in `experiments/frozen.py` is the experiment `frozen_alpha_025`, or the
name its `NAMES` table gives it; its config file spec is `experiments/frozen.py:alpha_025`, what
`python -m localizer.train --config=...` takes. Any other file with `get_config()` is one
experiment of its own name (`quickstart`, `realmix_default`, `tutorial_baseline`).
"""

import ast
import glob
import importlib
import os

HERE = os.path.dirname(os.path.abspath(__file__))
NOT_EXPERIMENTS = {
    "__init__",
    "common",
    "names",
    "records",
    "results",
    "run",
    "tta_effect",
    "real_model_check",
    "label_noise",
    "label_efficiency",
    "near_duplicates",
}
"""Modules of experiments/ that are not experiments (benchmarks start with bench_)."""


def _module(stem):
    return importlib.import_module(f"experiments.{stem}")


def experiments():
    """`{name: (file stem, variant or None)}` for every named experiment."""
    found = {}
    for path in sorted(glob.glob(os.path.join(HERE, "*.py"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in NOT_EXPERIMENTS or stem.startswith("bench_"):
            continue
        module = _module(stem)
        variants = getattr(module, "VARIANTS", None)
        if variants is None:
            found[stem] = (stem, None)
            continue
        names = getattr(module, "NAMES", {})
        for arg in variants:
            found[names.get(arg, f"{stem}_{arg}")] = (stem, arg)
    return found


def _lookup(name):
    table = experiments()
    if name not in table:
        raise ValueError(f"no experiment {name!r}; names: {', '.join(table)}")
    return table[name]


def spec(name):
    """The config file spec of experiment `name`: `experiments/frozen.py:alpha_025`."""
    stem, arg = _lookup(name)
    return f"experiments/{stem}.py" + (f":{arg}" if arg is not None else "")


def get_config(name):
    """Experiment `name`'s `TrainConfig` (today's code, today's defaults)."""
    stem, arg = _lookup(name)
    module = _module(stem)
    return module.get_config() if arg is None else module.get_config(arg)


def describe(name):
    """One line on what experiment `name` is: the first line of its file's docstring, and for a
    sweep variant its changes against the sweep's reference."""
    stem, arg = _lookup(name)
    with open(os.path.join(HERE, f"{stem}.py"), encoding="utf-8") as f:
        doc = (ast.get_docstring(ast.parse(f.read())) or "").strip()
    first = doc.split("\n\n")[0].replace("\n", " ").rstrip(".") if doc else name
    if arg is None:
        return first
    changes = _module(stem).VARIANTS[arg]
    listed = ", ".join(f"{key}={value!r}" for key, value in changes.items()) or "no change"
    return f"`{stem}.py:{arg}`: {listed}"

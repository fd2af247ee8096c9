"""Run records: experiments/results/runs/<name>.json, small, committed, each a frozen fact.

A record holds the run's commit, its whole resolved config (the work dir's config.json), the
command that reruns it from the record (`python -m localizer.train
--config=experiments/results/runs/<name>.json`), the experiment that defined it and the summary of
its best epoch. Nothing here compares a record with today's experiment files or defaults: a
changed default changes tomorrow's runs, never a record.
"""

import glob
import json
import os
import shlex

from localizer.training.config import RUN_FACTS

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, "results", "runs")
REALMIX_RELATIVE = "../shared/data/realmix"
"""How records name the realmix folder (beside the project root), whatever the machine's path."""


def record(workdir, name=None, experiment=None, what=None):
    """Writes a run record from a work dir: a frozen fact that reruns as it was.

    The record holds the commit and code that ran, the resolved config as the work dir's
    config.json has it (`localizer.training.config.to_dict`), the command that reruns it from the
    record itself (`python -m localizer.train --config=<the record>`), the command it ran with,
    which experiment defined it (`experiment`: "experiments/frozen.py:alpha_025") and what it
    changed (`what`: one line for the results table), and the summary of its best epoch.
    """
    name = name or os.path.basename(os.path.normpath(workdir))
    with open(os.path.join(workdir, "train_summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
    summary.pop("last", None)
    for key in ("workdir", "best_model", "final_model", "metrics_history"):
        summary.pop(key, None)
    ran = summary.pop("command", None)
    code = dict(summary.pop("code", None) or config.get("code") or {})
    path = os.path.join(RUNS, f"{name}.json")
    body = {
        "name": name,
        "what": what or name,
        "experiment": experiment,
        "commit": code.pop("commit", None),
        "code": code,
        "command": rerun_command(name),
        "ran": ran,
        "config": portable_config({k: v for k, v in config.items() if k not in RUN_FACTS}),
        "config_source": "the work dir's config.json",
        "runtime": {k: config[k] for k in ("replicas", "resolved_precision") if k in config},
        "summary": summary,
    }
    os.makedirs(RUNS, exist_ok=True)
    with open(path, "w") as f:
        json.dump(body, f, indent=2, sort_keys=True)
        f.write("\n")
    return path


def rerun_command(name):
    """The argv that reruns record `name` as it ran: training from the record's own config."""
    return [
        "python",
        "-m",
        "localizer.train",
        f"--config=experiments/results/runs/{name}.json",
        f"--workdir=work/{name}",
    ]


def portable_config(config):
    """`config` with a realmix data dir written relative to the repo (records are compared on any
    machine)."""
    config = json.loads(json.dumps(config))
    data_dir = (config.get("data") or {}).get("data_dir")
    if data_dir and os.path.normpath(data_dir).endswith(os.path.join("shared", "data", "realmix")):
        config["data"]["data_dir"] = REALMIX_RELATIVE
    return config


def record_config(run):
    """The `TrainConfig` a record ran with, as `--config=<record>` rebuilds it."""
    from localizer.training import config as config_lib

    return config_lib.from_dict(run["config"])


def read_runs():
    """Every run record, by name."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(RUNS, "*.json"))):
        with open(path) as f:
            run = json.load(f)
        runs[run["name"]] = run
    return runs


def check_records():
    """Lines naming every record that does not rerun as it ran: no commit, a command that does not
    train from the record itself, or a config that today's code cannot build."""
    lines = []
    for name, run in read_runs().items():
        if not run.get("commit"):
            lines.append(f"{name}: names no commit")
        if run.get("command") != rerun_command(name):
            lines.append(f"{name}: its command is not {shlex.join(rerun_command(name))}")
        try:
            record_config(run).resolve(run["config"]["model"]["class_names"]).validate()
        except (KeyError, TypeError, ValueError) as error:
            lines.append(f"{name}: its config does not load: {error}")
    return lines

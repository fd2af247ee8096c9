"""Tests of experiments/results.py: every run record is a frozen fact that reruns as it ran;
RESULTS.md is what the records generate. Nothing compares a record with today's defaults:
changing one breaks no test here.
"""

import dataclasses
import re

import pytest

from experiments import names, records, results
from localizer.training import config as config_lib

RUNS = records.read_runs()


@pytest.mark.parametrize("name", sorted(RUNS))
def test_record_is_a_frozen_fact(name):
    """Its commit, its whole resolved config (today's code builds and validates it) and the command
    that reruns it from the record itself."""
    run = RUNS[name]
    assert run["name"] == name and run["what"]
    assert len(run["commit"]) == 40
    assert run["command"] == [
        "python",
        "-m",
        "localizer.train",
        f"--config=experiments/results/runs/{name}.json",
        f"--workdir=work/{name}",
    ]
    config = records.record_config(run)
    assert list(config.model.class_names) == run["config"]["model"]["class_names"]
    config.resolve(run["config"]["model"]["class_names"]).validate()
    if run["experiment"].startswith("experiments/results/runs/"):  # a rerun of another record
        assert run["experiment"].removeprefix("experiments/results/runs/")[:-5] in RUNS
    else:
        assert run["experiment"] == names.spec(name)  # the experiment that defines it today


def test_every_record_reruns_as_it_ran():
    assert records.check_records() == []


def test_results_md_is_generated_from_the_records():
    with open(results.RESULTS_MD) as f:
        committed = f.read()
    assert committed == results.results_markdown(), (
        "RESULTS.md is generated: python -m experiments.results write"
    )
    assert "/tmp/" not in committed and "/work/" not in committed
    assert not re.search(r"issues? \d", committed, re.IGNORECASE)  # no tracker numbers


def test_a_changed_default_breaks_no_record(monkeypatch):
    """Today's defaults move; the records and RESULTS.md do not."""
    fields = {f.name: f for f in dataclasses.fields(config_lib.TrainConfig)}
    changed = dataclasses.make_dataclass(
        "TrainConfig",
        [("fine_tune_epochs", int, dataclasses.field(default=7))],
        bases=(config_lib.TrainConfig,),
        frozen=True,
    )
    assert fields["fine_tune_epochs"].default != 7 and changed().fine_tune_epochs == 7
    monkeypatch.setattr(config_lib, "TrainConfig", changed)
    monkeypatch.setattr(config_lib, "default_config", changed)
    with open(results.RESULTS_MD) as f:
        assert f.read() == results.results_markdown()
    assert records.check_records() == []
    run = RUNS["realmix_default"]
    assert records.record_config(run).fine_tune_epochs == run["config"]["fine_tune_epochs"] == 40


def test_record_writes_a_rerunnable_record(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "RUNS", str(tmp_path / "runs"))
    workdir = tmp_path / "frozen_alpha_025"
    workdir.mkdir()
    config = {
        **config_lib.to_dict(names.get_config("frozen_alpha_025").resolve(["a", "b"])),
        "class_names": ["a", "b"],
        "replicas": 1,
        "resolved_precision": "float32",
        "code": {"commit": "c" * 40, "dirty": False},
    }
    (workdir / "config.json").write_text(results.json.dumps(config))
    (workdir / "train_summary.json").write_text(
        results.json.dumps({"command": "python -m localizer.train x", "train_seconds": 60})
    )
    path = records.record(str(workdir), None, "experiments/frozen.py:alpha_025", "alpha 0.25")
    run = results.json.loads(open(path).read())
    assert run["commit"] == "c" * 40 and run["ran"] == "python -m localizer.train x"
    assert run["command"][3] == "--config=experiments/results/runs/frozen_alpha_025.json"
    ran = names.get_config("frozen_alpha_025").resolve(["a", "b"])
    portable = dataclasses.replace(ran.data, data_dir="../shared/data/realmix")  # any machine's
    assert records.record_config(run) == dataclasses.replace(ran, data=portable)
    assert "class_names" not in run["config"] and run["runtime"]["replicas"] == 1

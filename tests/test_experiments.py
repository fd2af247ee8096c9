"""Every named experiment loads, validates, documents how to run it, and its run record still
holds."""

import dataclasses
import json

import pytest

from experiments import results
from experiments import run as run_lib
from localizer import model as model_lib
from localizer.training import config as config_lib

NAMES = run_lib.experiment_names()
RUNS = results.read_runs()


def test_there_are_experiments():
    assert {"quickstart", "tutorial_baseline", "realmix_default"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_experiment_is_a_valid_config_with_its_command(name):
    config = config_lib.load_experiment(name).validate()
    # The model part validates once the dataset has set the classes.
    dataclasses.replace(config.model, num_classes=3, class_names=()).validate()
    assert (config.model.attach, config.model.regression) in model_lib.HEAD_CONFIGURATIONS
    module = __import__(f"experiments.{name}", fromlist=["get_config"])
    assert f"--experiment={name}" in module.__doc__ or f"experiments.run {name}" in module.__doc__


@pytest.mark.parametrize("name", sorted(RUNS))
def test_record_is_reproduced_by_todays_config(name):
    """Changing a default that an experiment relies on must pin it there, or rerun the
    experiment."""
    assert name in NAMES, f"record {name} has no experiments/{name}.py"
    assert results.config_mismatches(RUNS[name]) == []


@pytest.mark.parametrize("name", sorted(RUNS))
def test_record_names_its_code_and_command(name):
    run = RUNS[name]
    assert run["command"] and f"--experiment={results.RUN_BY.get(name, name)}" in run["command"]
    if (
        name in results.UNVERSIONED_RECORDS
    ):  # written before records named their code; listed to be rerun
        assert not (run.get("code") or {}).get("commit"), (
            f"{name} names its commit now: take it off the list"
        )
        return
    assert (run.get("code") or {}).get("commit"), (
        f"{name}: rerun it (python -m experiments.run --rerun {name})"
    )


def test_a_changed_default_is_caught(monkeypatch):
    run = json.loads(json.dumps(RUNS["realmix_default"]))
    run["config"]["fine_tune_epochs"] += 1
    assert results.config_mismatches(run) == [
        (
            "fine_tune_epochs",
            run["config"]["fine_tune_epochs"],
            run["config"]["fine_tune_epochs"] - 1,
        )
    ]
    del run["config"]["model"]["dense_channels"]  # a field added after the run
    assert ("model.dense_channels", "<absent>", 128) in results.config_mismatches(run)
    # A field added since, at the value that does what the run did, is no change; at another it is
    # (a row run before the box-quality head, which its experiment pins off).
    pinned = json.loads(json.dumps(RUNS["realmix_spatial"]))
    for field in ("box_quality", "box_quality_loss_weight"):
        pinned["config"].pop(field, None)
        pinned["config"]["model"].pop(field, None)
    assert not [m for m in results.config_mismatches(pinned) if "box_quality" in m[0]]
    monkeypatch.setattr(results, "ABSENT_MEANS", {"model.box_quality": True})
    assert ("model.box_quality", "<absent>", False) in results.config_mismatches(pinned)


def test_run_records_an_existing_run_without_retraining(tmp_path, monkeypatch):
    calls, recorded = [], []
    monkeypatch.setattr(run_lib.subprocess, "call", lambda command: calls.append(command) or 0)
    monkeypatch.setattr(
        run_lib.results, "record", lambda workdir, name: recorded.append(name) or name
    )
    monkeypatch.setattr(run_lib, "WORK_ROOT", str(tmp_path))
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "train_summary.json").write_text("{}")
    assert run_lib.run_experiment("done") and calls == [] and recorded == ["done"]
    assert run_lib.run_experiment("new") and "--experiment=new" in calls[0]
    # --rerun deletes the old work dir so the run starts fresh instead of resuming.
    assert run_lib.run_experiment("done", rerun=True) and not (tmp_path / "done").exists()
    monkeypatch.setattr(run_lib.subprocess, "call", lambda command: 1)
    assert not run_lib.run_experiment("broken") and recorded[-1] != "broken"

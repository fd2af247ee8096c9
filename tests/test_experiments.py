"""Every named experiment loads, validates and documents how to run it."""

import dataclasses
import glob
import os

import pytest

from experiments import run as run_lib
from localizer import config as config_lib
from localizer import model as model_lib

EXPERIMENTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments")
NOT_EXPERIMENTS = {"__init__", "common", "results", "run", "tta_effect"}
NAMES = sorted(
    os.path.splitext(os.path.basename(path))[0] for path in glob.glob(os.path.join(EXPERIMENTS_DIR, "*.py"))
    if not os.path.basename(path).startswith("bench_")
    and os.path.splitext(os.path.basename(path))[0] not in NOT_EXPERIMENTS
)


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


def test_run_records_an_existing_run_without_retraining(tmp_path, monkeypatch):
    calls, recorded = [], []
    monkeypatch.setattr(run_lib.subprocess, "call", lambda command: calls.append(command) or 0)
    monkeypatch.setattr(run_lib.results, "record", lambda workdir, name: recorded.append(name) or name)
    monkeypatch.setattr(run_lib, "WORK_ROOT", str(tmp_path))
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "train_summary.json").write_text("{}")
    assert run_lib.run_experiment("done") and calls == [] and recorded == ["done"]
    assert run_lib.run_experiment("new") and "--experiment=new" in calls[0]
    # --rerun deletes the old work dir so the run starts fresh instead of resuming.
    assert run_lib.run_experiment("done", rerun=True) and not (tmp_path / "done").exists()
    monkeypatch.setattr(run_lib.subprocess, "call", lambda command: 1)
    assert not run_lib.run_experiment("broken") and recorded[-1] != "broken"

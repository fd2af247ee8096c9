"""Tests of experiments/names.py: every experiment is a valid config with its command."""

import dataclasses
import os

import pytest

from experiments import names
from experiments import run as run_lib
from localizer import model as model_lib

NAMES = run_lib.experiment_names()


def test_there_are_experiments():
    assert {"quickstart", "tutorial_baseline", "realmix_default", "frozen_alpha_025"} <= set(NAMES)
    assert names.spec("frozen_alpha_025") == "experiments/frozen.py:alpha_025"
    assert names.spec("realmix_aug_features") == "experiments/frozen.py:reference"
    assert names.spec("quickstart") == "experiments/quickstart.py"


@pytest.mark.parametrize("name", NAMES)
def test_experiment_is_a_valid_config_with_its_command(name):
    config = names.get_config(name).validate()
    # The model part validates once the dataset has set the classes.
    dataclasses.replace(config.model, num_classes=3, class_names=()).validate()
    assert (config.model.attach, config.model.regression) in model_lib.HEAD_CONFIGURATIONS
    stem = names.spec(name).split(":")[0]
    doc = __import__(f"experiments.{os.path.basename(stem)[:-3]}", fromlist=["x"]).__doc__
    assert "python -m experiments.run" in doc or "--config=" in doc or "--experiment=" in doc


def test_a_sweep_names_its_variants():
    with pytest.raises(ValueError, match="no variant 'alpha_0' in experiments/frozen.py: one of"):
        __import__("experiments.frozen", fromlist=["x"]).get_config("alpha_0")

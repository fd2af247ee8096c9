"""Tests of localizer/training/backups.py: atomic saves."""

import os

import keras
import pytest

from tests import fixtures


def test_a_failed_model_write_keeps_the_previous_file(tmp_path):
    from localizer.training import backups

    model = fixtures.tiny_model()
    path = str(tmp_path / "best.keras")
    backups.save_model_atomically(model, path)
    before = open(path, "rb").read()

    class Killed(Exception):
        pass

    def save_then_die(target, *args, **kwargs):
        with open(target, "wb") as f:
            f.write(b"half a zip file")
        raise Killed()

    original_save = model.save
    model.save = save_then_die
    with pytest.raises(Killed):
        backups.save_model_atomically(model, path)
    model.save = original_save
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["best.keras"]  # no temporary left behind
    keras.models.load_model(path, safe_mode=True)

"""Tests of localizer/training/workdir.py: work dirs that know whose run they hold (what changes
a result refuses, other code resumes), overwrite moves a run aside, default work dir names.
"""

import os

import pytest

from localizer.training import config as config_lib
from localizer.training import workdir as workdir_lib
from tests import fixtures


def _fingerprint(**changes):
    config = config_lib.replace_fields(config_lib.default_config(), changes)
    return workdir_lib.fingerprint(
        config_lib.to_dict(config), {"train": {"source": "synthetic", "examples": 8}}
    )


def test_work_dir_resumes_only_its_own_run(tmp_path):
    workdir = str(tmp_path / "run")
    assert workdir_lib.claim(workdir, _fingerprint()) is False  # new
    (tmp_path / "run" / "best.keras").write_bytes(b"the first run's model")
    assert workdir_lib.claim(workdir, _fingerprint()) is True  # same fingerprint: resume
    # Runtime-only knobs may change on a resume.
    assert workdir_lib.claim(workdir, _fingerprint(strategy="mirrored", eval_every=2)) is True
    with pytest.raises(workdir_lib.WorkdirMismatch) as error:
        workdir_lib.claim(workdir, _fingerprint(**{"frozen_epochs": 3, "model.attach": "pooled"}))
    message = str(error.value)
    assert (
        workdir in message
        and "config.frozen_epochs" in message
        and "config.model.attach" in message
    )
    assert "--overwrite" in message and "\n" not in message
    assert (tmp_path / "run" / "best.keras").read_bytes() == b"the first run's model"  # untouched


def test_overwrite_moves_the_old_run_aside(tmp_path):
    workdir = str(tmp_path / "run")
    workdir_lib.claim(workdir, _fingerprint())
    (tmp_path / "run" / "best.keras").write_bytes(b"old")
    assert workdir_lib.claim(workdir, _fingerprint(alpha=0.3), overwrite=True) is False
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert len(moved) == 1 and (moved[0] / "best.keras").read_bytes() == b"old"
    assert sorted(os.listdir(workdir)) == [workdir_lib.FINGERPRINT]


def test_other_data_or_foreign_files_are_refused(tmp_path):
    workdir = str(tmp_path / "run")
    workdir_lib.claim(workdir, _fingerprint())
    other = workdir_lib.fingerprint(
        config_lib.to_dict(config_lib.default_config()),
        {"train": {"source": "synthetic", "examples": 9}},
    )
    with pytest.raises(workdir_lib.WorkdirMismatch, match="data.train.examples"):
        workdir_lib.claim(workdir, other)
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(workdir_lib.WorkdirMismatch, match="not a localizer run"):
        workdir_lib.claim(str(foreign), _fingerprint())
    with pytest.raises(workdir_lib.WorkdirMismatch, match="overlaps the dataset"):
        workdir_lib.check_not_inside(str(tmp_path), str(foreign))


def test_default_work_dirs_tell_data_folders_apart():
    a = workdir_lib.default_workdir("voc_dir", "/data/cats", None)
    b = workdir_lib.default_workdir("voc_dir", "/data/dogs/", None)
    assert a != b and "voc_dir-cats-" in a and "voc_dir-dogs-" in b
    assert workdir_lib.default_workdir(None, None, "quickstart") == os.path.join(
        "work", "quickstart"
    )


def test_data_folders_of_one_name_get_their_own_work_dirs(tmp_path, monkeypatch):
    """`/a/rm` and `/b/rm` never share a default work dir; one folder, however named, keeps one."""
    import subprocess
    import sys

    for folder in ("a/rm", "b/rm"):
        (tmp_path / folder).mkdir(parents=True)
    a = workdir_lib.default_workdir("voc_dir", str(tmp_path / "a" / "rm"), "exp")
    b = workdir_lib.default_workdir("voc_dir", str(tmp_path / "b" / "rm"), "exp")
    assert a != b
    assert os.path.basename(a).startswith("voc_dir-rm-") and os.path.basename(a).endswith("-exp")
    monkeypatch.chdir(tmp_path / "a")
    (tmp_path / "link").symlink_to(tmp_path / "a" / "rm")
    assert {a} == {
        workdir_lib.default_workdir("voc_dir", name, "exp")
        for name in ("rm", "rm/", "./rm", str(tmp_path / "link"))
    }
    # The Makefile asks the module for WORK_DIR: the same rule.
    printed = subprocess.run(
        [sys.executable, "-m", "localizer.training.workdir", "voc_dir", "rm", "exp"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": fixtures.REPO_ROOT},
    )
    assert printed.stdout.strip() == a


def test_overwrite_never_moves_a_folder_that_is_not_a_run(tmp_path):
    photos = tmp_path / "images"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"x")
    with pytest.raises(workdir_lib.WorkdirMismatch, match="not a localizer run"):
        workdir_lib.claim(str(photos), _fingerprint(), overwrite=True)
    assert (photos / "a.jpg").exists()
    for workdir in (photos, photos / "sub", tmp_path):
        with pytest.raises(workdir_lib.WorkdirMismatch, match="overlaps the dataset"):
            workdir_lib.check_not_inside(str(workdir), None, str(photos))


def test_other_code_resumes_the_same_run(tmp_path, monkeypatch):
    """A comment edit or another commit changes the source, not the run: it resumes, and the
    resume line names both code versions."""
    workdir = str(tmp_path / "run")
    started = _fingerprint()
    workdir_lib.claim(workdir, started)
    from localizer import provenance

    edited = {**provenance.code_version(), "source_digest": "0" * 16, "commit": "f" * 40}
    monkeypatch.setattr(provenance, "code_version", lambda: edited)
    now = _fingerprint()
    assert workdir_lib.claim(workdir, now) is True
    assert workdir_lib.read_fingerprint(workdir)["code"] == started["code"]  # the run's own
    assert "code ffffffffffff" in workdir_lib.code_line(started, now)
    assert "it was started by code" in workdir_lib.code_line(started, now)


def test_a_model_of_another_structure_is_another_run(tmp_path):
    import keras

    def model(units):
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(units)(inputs))

    workdir = str(tmp_path / "run")
    config = config_lib.to_dict(config_lib.default_config())
    data = {"train": {"source": "synthetic", "examples": 8}}
    workdir_lib.claim(workdir, workdir_lib.fingerprint(config, data, model(3)))
    assert workdir_lib.claim(workdir, workdir_lib.fingerprint(config, data, model(3))) is True
    with pytest.raises(workdir_lib.WorkdirMismatch, match="model.digest"):
        workdir_lib.claim(workdir, workdir_lib.fingerprint(config, data, model(5)))


def test_a_run_recorded_before_model_structures_resumes(tmp_path):
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    workdir = str(tmp_path / "run")
    config = config_lib.to_dict(config_lib.default_config())
    data = {"train": {"source": "synthetic", "examples": 8}}
    workdir_lib.claim(workdir, workdir_lib.fingerprint(config, data))  # no "model" recorded
    assert workdir_lib.claim(workdir, workdir_lib.fingerprint(config, data, model)) is True


def test_a_refused_run_leaves_the_work_dir_free(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "data_issues.tsv").write_text("split\tfile\taction\treason\n")
    assert workdir_lib.is_unclaimed(str(workdir))
    assert workdir_lib.claim(str(workdir), _fingerprint()) is False


def test_default_workdir_of_a_tfds_name_is_one_safe_folder():
    from localizer.training import workdir

    path = workdir.default_workdir("tfds:coco/2017:1.1.0", "/data/tfds/", "quick")
    assert path.startswith(os.path.join("work", "tfds_coco_2017_1.1.0-tfds-")) and path.endswith(
        "-quick"
    )
    assert os.path.dirname(path) == "work"

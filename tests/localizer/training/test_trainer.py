"""Tests of localizer/training/trainer.py: the model learns, runs repeat, resume and distribute,
and training refuses bad data or a full disk with one clear line.
"""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from localizer.training import trainer as train
from pipelines.sources.source import DatasetError
from tests import fixtures
from tests.fixtures import summary_images, tiny_config

REPO_ROOT = fixtures.REPO_ROOT


@pytest.mark.slow
def test_learns_far_better_than_a_constant_guess(tmp_path):
    # The real recipe at a small size: pretrained EfficientNet-Lite0 (offline
    # weights), frozen, heads on cached features.
    config = tiny_config(
        **{
            "model.backbone": "efficientnet_lite0",
            "model.weights": "imagenet",
            "model.image_size": "96",
            "model.head_units": "128",
            "data.max_examples": "600",
            "frozen_epochs": "8",
            "fine_tune_epochs": "0",
            "frozen_lr": "3e-3",
            "pipeline.batch_size": "32",
        }
    )
    summary = train.train_and_evaluate(config, str(tmp_path))
    best, baseline = summary["best"], summary["constant_guess_baseline"]
    assert best["mean_iou"] > baseline["mean_iou"] + 0.1, (best["mean_iou"], baseline["mean_iou"])
    assert best["classification_accuracy"] > 2 * baseline["classification_accuracy"]
    for name in (
        "best.keras",
        "final.keras",
        "config.json",
        "metrics.jsonl",
        "metrics.csv",
        "train_summary.json",
    ):
        assert os.path.exists(tmp_path / name), name
    loaded = keras.models.load_model(str(tmp_path / "best.keras"), safe_mode=True)
    assert set(loaded.output) == {"class_logits", "box", "box_quality"}
    # Every evaluation logged one preview grid (3 x 3 val images of 96 px) to TensorBoard.
    grids = summary_images(
        tmp_path / "tensorboard" / "validation_full", "val_predictions/true_green_predicted_red"
    )
    assert [step for step, _ in grids] == list(range(1, 9))
    assert all(image.shape == (288, 288, 3) for _, image in grids)
    assert not np.array_equal(
        grids[0][1], grids[-1][1]
    )  # the predicted boxes moved as the heads learned


def _run_cli(workdir, *extra, env=None, wait=True):
    command = [
        sys.executable,
        "-m",
        "localizer.train",
        f"--workdir={workdir}",
        "--backbone=tiny",
        "--weights=none",
        "--image_size=32",
        "--set=data.max_examples=96",
        "--set=model.head_units=32",
        "--batch_size=16",
        "--set=feature_passes=1",
        *extra,
    ]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    if not wait:
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    return subprocess.run(
        command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=600
    )


def _weights(path):
    model = keras.models.load_model(path, safe_mode=True)
    return [w.numpy() for w in model.weights]


@pytest.mark.slow
def test_same_seed_same_weights_in_separate_runs(tmp_path):
    runs = []
    for name in ("a", "b"):
        result = _run_cli(
            tmp_path / name,
            "--seed=3",
            "--set=deterministic=true",
            "--set=frozen_epochs=1",
            "--set=fine_tune_epochs=1",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        runs.append(_weights(str(tmp_path / name / "final.keras")))
    for a, b in zip(*runs, strict=False):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
    script = f"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from localizer.training import config as config_lib, trainer as train
from tests.fixtures import tiny_config
summary = train.train_and_evaluate(tiny_config(strategy="mirrored"), {str(tmp_path)!r})
print("REPLICAS", tf.distribute.MirroredStrategy().num_replicas_in_sync)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["replicas"] == 2
    # The global batch is the per-replica batch times the replicas.
    assert saved["pipeline"]["batch_size"] == 32
    assert os.path.exists(tmp_path / "best.keras")


def _history_epochs(workdir):
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line)["epoch"] for line in f if line.strip()]


@pytest.mark.slow  # the fast suite kills at a stage boundary (tests/localizer/test_commands.py)
def test_resumes_after_sigkill_from_last_completed_epoch(tmp_path):
    workdir = str(tmp_path / "run")
    args = ("--set=frozen_epochs=3", "--set=fine_tune_epochs=4", "--set=data.max_examples=256")
    process = _run_cli(workdir, *args, wait=False)
    deadline = time.time() + 300
    # Kill it in the middle of the fine-tuning stage (epochs 4..7).
    while time.time() < deadline and process.poll() is None and len(_history_epochs(workdir)) < 5:
        time.sleep(0.2)
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = _history_epochs(workdir)
    assert 5 <= len(done_before) < 7
    result = _run_cli(workdir, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    epochs = _history_epochs(workdir)
    # No epoch was trained twice and the run reached the end.
    assert epochs[-1] == 7 and len(epochs) == len(set(epochs))
    assert epochs[: len(done_before)] == done_before
    assert os.path.exists(os.path.join(workdir, "final.keras"))
    # The same command never interrupted ends within noise of the resumed run.
    straight = str(tmp_path / "straight")
    assert _run_cli(straight, *args).returncode == 0
    resumed_iou = json.loads(open(os.path.join(workdir, "train_summary.json")).read())["last"][
        "mean_iou"
    ]
    straight_iou = json.loads(open(os.path.join(straight, "train_summary.json")).read())["last"][
        "mean_iou"
    ]
    assert abs(resumed_iou - straight_iou) < 0.05, (resumed_iou, straight_iou)


def test_unwritable_workdir_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="not writable"):
        train.train_and_evaluate(tiny_config(), str(blocker / "work"))


# A whole training run (35 s on 2 cores): fast, test_weight_average.py checks the EMA validation
# callbacks and other trainer tests run train_and_evaluate.
@pytest.mark.slow
def test_training_with_weight_averaging_end_to_end(tmp_path):
    result = _run_cli(
        tmp_path / "w",
        "--set=ema_momentum=0.9",
        "--set=frozen_epochs=1",
        "--set=fine_tune_epochs=2",
        "--set=cache_features=false",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = json.loads((tmp_path / "w" / "config.json").read_text())
    assert config["ema_momentum"] == 0.9
    keras.models.load_model(str(tmp_path / "w" / "best.keras"), safe_mode=True)


def _disk_full(*args, **kwargs):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")  # as a write reports it: no file named


@pytest.mark.parametrize("writer", ["config", "issues"])
def test_training_on_a_full_disk_names_the_path_and_says_to_free_space(
    tmp_path, monkeypatch, writer
):
    """Whichever training writer meets the full disk: the file (or the work dir) named, and how to
    resume."""
    from localizer.training import data as data_lib
    from localizer.training import trainer
    from pipelines import files
    from tests.fixtures import tiny_config

    workdir = str(tmp_path / "work")
    if writer == "config":  # a work dir file, written atomically
        write = files.write_json_atomically
        monkeypatch.setattr(
            files,
            "write_json_atomically",
            lambda path, *a, **k: (
                files.atomic_write(path, _disk_full)
                if path.endswith("config.json")
                else write(path, *a, **k)
            ),
        )
        named = os.path.join(workdir, "config.json")
    else:  # a writer that names no file
        monkeypatch.setattr(data_lib, "write_issues", _disk_full)
        named = workdir
    with pytest.raises(files.DiskFullError) as error:
        trainer.train_and_evaluate(tiny_config(**{"data.max_examples": "16"}), workdir)
    message = str(error.value)
    assert f"writing {named};" in message and "free space there" in message and "resumes" in message


@pytest.mark.slow
def test_training_refuses_then_logs_the_faults(tmp_path):
    from localizer.training import trainer as train
    from tests.fixtures import tiny_config

    root, expected = fixtures.make_faulty_voc_folder(tmp_path / "data")
    data = {
        "data.dataset": "voc_dir",
        "data.data_dir": root,
        "data.train_split": "train",
        "data.val_split": "train",
        "data.max_examples": "none",
        "model.image_size": "32",
        "pipeline.batch_size": "4",
    }
    with pytest.raises(DatasetError, match="unusable"):
        train.train_and_evaluate(tiny_config(**data), str(tmp_path / "refused"))
    workdir = tmp_path / "run"
    train.train_and_evaluate(
        tiny_config(**data, **{"data.max_skipped_fraction": "1.0"}), str(workdir)
    )
    log = (workdir / "data_issues.tsv").read_text().splitlines()
    assert log[0] == "split\tfile\taction\treason"
    reasons = {line.split("\t")[3] for line in log[1:]}
    assert "truncated image file" in reasons and "image path outside the dataset folder" in reasons

"""Training across workers: MultiWorkerMirroredStrategy through `localizer.launch` on 127.0.0.1.

The fast suite runs two workers into one shared work dir; `make test-slow`
adds a work dir per worker, the comparison with one process of the same
global batch, and kill -9 of a worker mid-epoch followed by a resume."""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from localizer import model as model_lib
from localizer.training import loop, objective
from tests import fixtures
from tests.fixtures import summary_images, tiny_config

REPO_ROOT = fixtures.REPO_ROOT


# 2 + 2 epochs of the tiny backbone on 64 synthetic examples; per-replica batch 16.
TRAIN_FLAGS = (
    "--dataset=synthetic",
    "--backbone=tiny",
    "--weights=none",
    "--image_size=32",
    "--batch_size=16",
    "--set=model.head_units=32",
    "--set=data.max_examples=64",
    "--set=frozen_epochs=2",
    "--set=fine_tune_epochs=2",
    "--set=fine_tune_fraction=1.0",
    "--set=feature_passes=1",
)


DIGEST = re.compile(r"^\[worker (\d+)\] Weights digest: ([0-9a-f]{16})$", re.M)


def _env(tmp_path):
    temporary = (
        tmp_path / "tmp"
    )  # the workers' temporary folders land here: checked empty afterwards
    temporary.mkdir(exist_ok=True)
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(temporary)}


def _launch(tmp_path, *train_flags, workers=2, timeout=600):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "localizer.launch",
            f"--workers={workers}",
            "--",
            *TRAIN_FLAGS,
            *train_flags,
        ],
        cwd=REPO_ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _epochs(workdir):
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _worker_folders(tmp_path):
    return sorted(glob.glob(str(tmp_path / "tmp" / "localizer-worker*")))


def _check_trained_together(result, workdir, tmp_path, epochs=4):
    assert result.returncode == 0, result.stdout[-6000:]
    digests = dict(DIGEST.findall(result.stdout))
    assert set(digests) == {"0", "1"}, result.stdout[-4000:]
    assert digests["0"] == digests["1"], "the workers' final weights differ"
    with open(os.path.join(workdir, "train_summary.json"), encoding="utf-8") as f:
        assert json.load(f)["weights_digest"] == digests["0"]
    with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
        saved = json.load(f)
    assert saved["replicas"] == 2 and saved["pipeline"]["batch_size"] == 32  # the global batch
    assert [r["epoch"] for r in _epochs(workdir)] == list(range(1, epochs + 1))  # each epoch once
    assert _worker_folders(tmp_path) == [], "a worker left its temporary folder"
    return digests["0"]


# Two real worker processes (58 s on 2 cores): fast, the loop is checked against fit in one
# process (test_the_loop_trains_like_fit_on_one_process), the launcher and TF_CONFIG roles by hand.
@pytest.mark.slow
def test_two_workers_train_together_into_one_shared_work_dir(tmp_path):
    workdir = tmp_path / "shared"
    result = _launch(tmp_path, f"--workdir={workdir}")
    _check_trained_together(result, workdir, tmp_path)
    assert "worker 1 of 2: done; the chief (worker 0) wrote" in result.stdout
    assert "[launch] exit codes: worker 0: 0, worker 1: 0" in result.stdout
    for name in ("best.keras", "final.keras", "fingerprint.json", "data_issues.tsv", "metrics.csv"):
        assert (workdir / name).exists(), name
    assert not (workdir / "backup").exists()
    # The chief's TensorBoard has one preview grid per evaluated epoch: 3 x 3 val images of 32 px.
    grids = summary_images(
        workdir / "tensorboard" / "validation_full", "val_predictions/true_green_predicted_red"
    )
    assert [step for step, _ in grids] == [1, 2, 3, 4]
    assert all(image.shape == (96, 96, 3) for _, image in grids)


@pytest.mark.slow
def test_a_work_dir_per_worker_only_the_chief_writes(tmp_path):
    result = _launch(tmp_path, f"--workdir={tmp_path}/run-{{worker}}")
    _check_trained_together(result, tmp_path / "run-0", tmp_path)
    assert not (tmp_path / "run-1").exists() or os.listdir(tmp_path / "run-1") == []


@pytest.mark.slow
def test_two_workers_match_one_process_of_the_same_global_batch(tmp_path):
    two = tmp_path / "two"
    _check_trained_together(_launch(tmp_path, f"--workdir={two}"), two, tmp_path)
    one = tmp_path / "one"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "localizer.train",
            *TRAIN_FLAGS,
            "--batch_size=32",
            f"--workdir={one}",
        ],
        cwd=REPO_ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for mine, theirs in zip(_epochs(two), _epochs(one), strict=True):
        # Same recipe and global batch; only the data order differs (each worker reads its shard).
        assert abs(mine["mean_iou"] - theirs["mean_iou"]) < 0.05, (
            mine["epoch"],
            mine["mean_iou"],
            theirs["mean_iou"],
        )
        assert abs(mine["classification_accuracy"] - theirs["classification_accuracy"]) < 0.2


@pytest.mark.slow
def test_kill_a_worker_mid_epoch_the_other_stops_then_all_resume(tmp_path):
    workdir = tmp_path / "run"
    flags = (f"--workdir={workdir}", "--set=data.max_examples=320", "--set=fine_tune_epochs=4")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localizer.launch",
            "--workers=2",
            "--grace_seconds=600",
            "--",
            *TRAIN_FLAGS,
            *flags,
        ],
        cwd=REPO_ROOT,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines, killed_at = [], None
    for line in process.stdout:
        lines.append(line)
        if killed_at is None and line.startswith("[worker 1] [fine_tune epoch 4]"):
            time.sleep(1.0)  # into epoch 5
            os.kill(_worker_pid(process.pid, 1), signal.SIGKILL)
            killed_at = time.monotonic()
    process.wait(timeout=600)
    output = "".join(lines)
    assert killed_at is not None, output[-4000:]
    stopped_after = time.monotonic() - killed_at
    assert stopped_after < 180, f"the surviving worker took {stopped_after:.0f} s to stop"
    assert re.search(
        r"^\[worker 0\] error: training across workers stopped: another worker is gone",
        output,
        re.M,
    ), output[-4000:]
    assert "[launch] exit codes: worker 0: 3, worker 1: -9" in output
    completed = [r["epoch"] for r in _epochs(workdir)]
    assert completed[:4] == [1, 2, 3, 4], completed
    leftovers = _worker_folders(tmp_path)  # only the killed worker could not remove its own
    assert [os.path.basename(p)[: len("localizer-worker1")] for p in leftovers] == [
        "localizer-worker1"
    ]
    for path in leftovers:
        shutil.rmtree(path)

    result = _launch(tmp_path, *flags)
    _check_trained_together(result, workdir, tmp_path, epochs=6)
    resumed_from = int(
        re.search(
            r"Resumed from .*fine_tune after epoch (\d+)", result.stdout + result.stderr
        ).group(1)
    )
    assert resumed_from == max(completed)
    assert f"Epoch {resumed_from}/" not in result.stdout  # no epoch repeated


def _worker_pid(launcher_pid, index):
    """The pid of worker `index` among the launcher's children (started in worker order)."""
    children = subprocess.run(
        ["pgrep", "-P", str(launcher_pid)], capture_output=True, text=True
    ).stdout.split()
    return sorted(int(pid) for pid in children)[index]


def test_a_bad_tf_config_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "localizer.train", *TRAIN_FLAGS, f"--workdir={tmp_path}/w"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **_env(tmp_path),
            "TF_CONFIG": '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"index": 0}}',
        },
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")] == [
        line for line in result.stderr.splitlines() if "TF_CONFIG is not valid" in line
    ]
    assert not (tmp_path / "w").exists()


def test_the_loop_trains_like_fit_on_one_process():
    """The multi-worker loop, run under the default strategy, gives fit's weights and logs."""
    config = tiny_config().resolve(["a", "b", "c"], 1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (32, 32, 32, 3)).astype(np.uint8)
    corners = rng.uniform(0.0, 0.5, (32, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(0.2, 0.5, (32, 2))], axis=1)  # yxyx
    labels = rng.integers(0, 3, 32)
    to_targets = objective.training_targets(config.model)

    def dataset_fn(batch_size):
        ds = tf.data.Dataset.from_tensor_slices(
            (images, {"label": labels, "box": boxes.astype(np.float32)})
        )
        return ds.batch(batch_size, drop_remainder=True).map(to_targets)

    trained = []
    for use_loop in (False, True):
        tf.keras.utils.set_random_seed(1)
        model = model_lib.build_model(config.model)
        view = model_lib.training_view(model)
        objective.compile_model(view, config, 1e-2, 4, 2)
        strategy = tf.distribute.get_strategy()
        if use_loop:
            history = loop.fit_across_workers(
                view, strategy, dataset_fn, 8, loop.Epochs(4, 2, 0), [], verbose=0
            )
        else:
            history = view.fit(
                dataset_fn(8).repeat(), steps_per_epoch=4, epochs=2, shuffle=False, verbose=0
            )
        trained.append(([w.numpy() for w in model.weights], history.history["loss"]))
    (fit_weights, fit_loss), (loop_weights, loop_loss) = trained
    np.testing.assert_allclose(loop_loss, fit_loss, rtol=1e-4)
    for a, b in zip(fit_weights, loop_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert not np.allclose(fit_loss[0], fit_loss[1])  # it did train

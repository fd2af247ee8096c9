"""Tests of localizer/launch.py: the local multi-worker launcher."""

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from localizer import launch
from tests import fixtures
from tests.localizer.training.test_loop import TRAIN_FLAGS, _env, _worker_pid

REPO_ROOT = fixtures.REPO_ROOT


def test_launcher_pieces():
    configs = [json.loads(c) for c in launch.tf_configs(["h:1", "h:2"])]
    assert [c["task"] for c in configs] == [
        {"type": "worker", "index": 0},
        {"type": "worker", "index": 1},
    ]
    assert all(c["cluster"] == {"worker": ["h:1", "h:2"]} for c in configs)
    assert len(set(launch.free_ports(4))) == 4
    assert launch.worker_args(["--workdir=w/run-{worker}", "--seed=1"], 1) == [
        "--workdir=w/run-1",
        "--seed=1",
    ]
    assert launch.worst_exit_code([0, 0]) == 0
    assert launch.worst_exit_code([0, 3]) == 3
    assert launch.worst_exit_code([3, -9]) == 137
    assert launch.worst_exit_code([2, 2]) == 2


@pytest.mark.slow
def test_sigterm_to_the_launcher_stops_its_workers(tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localizer.launch",
            "--workers=2",
            "--",
            *TRAIN_FLAGS,
            f"--workdir={tmp_path}/run",
            "--set=frozen_epochs=50",
        ],
        cwd=REPO_ROOT,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started = set()
    for line in process.stdout:  # both workers are training
        match = re.match(r"\[worker (\d)\] .*Training on", line)
        if match:
            started.add(match.group(1))
        if len(started) == 2:
            break
    workers = [_worker_pid(process.pid, index) for index in (0, 1)]
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=60)
    assert "[launch] interrupted; stopping the workers" in rest
    assert process.returncode != 0
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

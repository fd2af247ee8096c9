"""Tests of pipelines/files.py: atomic writes, a full disk, caches."""

import os

import pytest


def _disk_full(*args, **kwargs):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")  # as a write reports it: no file named


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path):
    from pipelines import cli, files

    path = tmp_path / "metrics.json"
    path.write_text("old")
    with pytest.raises(files.DiskFullError) as error:
        files.atomic_write(str(path), _disk_full)
    line = cli.error_line(error.value)
    assert f"writing {path}" in line and "free space" in line and "\n" not in line
    assert path.read_text() == "old" and os.listdir(tmp_path) == [
        "metrics.json"
    ]  # no temporary left
    # Errors that name no file (TensorFlow's, a bare errno) still say what to do.
    import tensorflow as tf

    for bare in (
        OSError(28, "No space left on device"),
        tf.errors.ResourceExhaustedError(
            None, None, "tensorboard/events.out: No space left on device"
        ),
    ):
        assert files.is_disk_full(bare) and "free space on that disk" in cli.error_line(bare)
    assert not files.is_disk_full(OSError(2, "No such file or directory"))

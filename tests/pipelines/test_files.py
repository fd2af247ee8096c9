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


def test_a_name_too_long_for_the_file_system_is_shortened_keeping_its_suffixes():
    from pipelines import files

    assert files.fitting_name("photo.jpg.pred.png") == "photo.jpg.pred.png"
    long = "猫" * 76 + ".jpg.pred.png"  # 228 + 13 bytes: a legal photo name plus predict's suffix
    other = "猫" * 75 + "犬.jpg.pred.png"
    for name in (long, other, "x" * 300, "." + "y" * 300):
        fitted = files.fitting_name(name)
        assert len(fitted.encode()) <= files.MAX_NAME_BYTES
        assert fitted.encode().decode() == fitted  # whole characters only
    assert files.fitting_name(long).endswith(".jpg.pred.png")
    assert files.fitting_name(long) != files.fitting_name(other)
    assert len(files.fitting_name(long, 100).encode()) <= 100


def test_atomic_write_of_a_name_near_the_limit(tmp_path):
    from pipelines import files

    path = tmp_path / ("n" * 250 + ".png")  # fits; with the temporary prefix it would not
    files.write_bytes_atomically(str(path), b"data")
    assert path.read_bytes() == b"data" and os.listdir(tmp_path) == [path.name]

"""The work dir: checked writable before anything expensive, and the markers of finished stages."""

import os

from localizer import files


def check_workdir(workdir):
    """Fails now, naming the path, if the work dir cannot be written (not hours later)."""
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write-test-{os.getpid()}")
        with open(probe, "wb") as f:
            f.write(b"\0" * 1024 * 1024)
        os.remove(probe)
    except OSError as error:
        raise OSError(f"Work dir {workdir!r} is not writable: {error.strerror or error}.") from None


def stage_done_marker(workdir, stage):
    return os.path.join(workdir, f"{stage}.done.weights.h5")


def mark_stage_done(model, workdir, stage):
    files.atomic_write(stage_done_marker(workdir, stage), model.save_weights)

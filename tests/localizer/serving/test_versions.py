"""Tests of localizer/serving/versions.py: numbered versions and temporary folders."""

import os

from localizer.serving import versions


def test_temporary_folders_of_live_exports_are_kept(tmp_path):
    parent = os.getppid()  # alive, and not this process
    busy = tmp_path / f".tmp-{parent}-abc123"
    stale_own = tmp_path / f".tmp-{os.getpid()}-def456"
    busy.mkdir()
    stale_own.mkdir()
    (tmp_path / "notes").mkdir()  # not ours: untouched
    assert versions.remove_stale_temporaries(str(tmp_path)) == [str(stale_own)]
    assert sorted(os.listdir(tmp_path)) == sorted([busy.name, "notes"])

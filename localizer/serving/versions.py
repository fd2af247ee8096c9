"""Version folders of an export dir, as TF Serving reads them: numbered folders,
published by an atomic rename from a temporary name it ignores.
"""

import os
import re
import shutil

from pipelines.errors import UserError

TEMPORARY_PREFIX = ".tmp-"


_TEMPORARY = re.compile(r"^\.tmp-(\d+)-[0-9a-f]+$")


_VERSION = re.compile(r"^\d+$")


# Temporary folders this process is writing right now (never removed as stale).
ACTIVE = set()


def existing_versions(export_dir):
    """Sorted version numbers of the numbered folders in `export_dir`."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(
        int(name)
        for name in os.listdir(export_dir)
        if _VERSION.match(name) and os.path.isdir(os.path.join(export_dir, name))
    )


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(export_dir):
    """Removes `.tmp-<pid>-*` folders left by killed exports; returns their paths.

    A folder is stale when its process is gone, or is this process and is not
    one of its exports in progress. Exports running in other live processes
    are left alone.
    """
    removed = []
    if not os.path.isdir(export_dir):
        return removed
    for name in os.listdir(export_dir):
        match = _TEMPORARY.match(name)
        path = os.path.join(export_dir, name)
        if not match or path in ACTIVE:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or not _process_alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def check_version(version):
    if isinstance(version, bool) or int(version) != version or version < 1:
        raise ValueError(f"version must be a positive integer; got {version!r}.")
    return int(version)


class VersionTakenError(UserError, FileExistsError):
    """The `--version` asked for exists already in the export dir; the message names the next free
    one."""


def version_taken(export_dir, version):
    """The VersionTakenError (a FileExistsError) for a `--version` whose folder `export_dir` holds
    already: what to do instead."""
    path = os.path.join(export_dir, str(version))
    following = max(existing_versions(export_dir), default=0) + 1
    while os.path.exists(os.path.join(export_dir, str(following))):  # as `publish` picks it
        following += 1
    return VersionTakenError(
        f"version {version} exists already: {path}; choose another --version, or leave it out "
        f"for the next free one ({following})"
    )


def publish(temporary, export_dir, version):
    """Renames the finished export to its number (the next free one if `version` is None)."""
    number = version or max(existing_versions(export_dir), default=0) + 1
    while True:
        final = os.path.join(export_dir, str(number))
        if not os.path.exists(final):
            try:
                os.rename(temporary, final)
                return final
            except OSError:
                # A concurrent export published this number first (renaming
                # onto a non-empty folder fails): refuse, or take the next one.
                if not os.path.exists(final):
                    raise
        if version is not None:
            raise version_taken(export_dir, version)
        number += 1

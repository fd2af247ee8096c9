"""Which code produced a result: the git commit of this checkout and whether its tree was dirty.

Run records, work-dir fingerprints and train summaries name it, so a figure can
be traced to the code that made it. Outside a git checkout (an installed
wheel) the commit is None and the package version stands in.
"""

import functools
import hashlib
import os
import subprocess

import localizer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(localizer.__file__)))


def _git(*args):
    try:
        result = subprocess.run(
            ["git", "-C", REPO_ROOT, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


RESULT_PATHS = ("experiments/results", "experiments/RESULTS.md")
"""What experiment runs write into the tree."""

SOURCE_PACKAGES = ("localizer", "pipelines")
"""The code a trained model depends on (experiments/ and tests/ only configure and check it)."""


@functools.lru_cache(maxsize=1)
def source_digest():
    """A sha256 of every .py file of `SOURCE_PACKAGES` (paths and contents): changes with any edit,
    committed or not, in a checkout or an installed copy.
    """
    digest = hashlib.sha256()
    for package in SOURCE_PACKAGES:
        root = os.path.join(REPO_ROOT, package)
        for folder, subfolders, names in sorted(os.walk(root)):
            subfolders.sort()
            for name in sorted(n for n in names if n.endswith(".py")):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, REPO_ROOT).encode() + b"\0")
                with open(path, "rb") as f:
                    digest.update(f.read() + b"\0")
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def code_version():
    """`{"commit": sha or None, "dirty": bool or None, "version": package version}`."""
    commit = _git("rev-parse", "HEAD")
    # Result files (run records, RESULTS.md) are what runs write: they do not make the code dirty.
    status = (
        _git(
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            *(f":!{p}" for p in RESULT_PATHS),
        )
        if commit
        else None
    )
    return {
        "commit": commit,
        "dirty": None if status is None else bool(status),
        "version": localizer.__version__,
        "source_digest": source_digest(),
    }

"""Files the project writes: atomically (a kill at any moment leaves the old file
or the new one, never half of one), and where its caches live."""

import contextlib
import json
import os
import uuid


CACHE_DIR_ENV = "LOCALIZER_CACHE_DIR"
"""Environment variable that moves the cache (converted weights, composited images)."""


def cache_dir():
    """The project's cache folder: `$LOCALIZER_CACHE_DIR`, else `~/.cache/localizer`."""
    return os.environ.get(CACHE_DIR_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "localizer")


def inside(path, folder):
    """True when `path` is `folder` or lies inside it (symlinks resolved)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder + os.sep)


PROBE_PREFIX = ".write-test-"
"""Name of the short-lived file `check_writable_folder` writes (a kill may leave one behind)."""


def check_writable_folder(path, what, probe_bytes=1, todo="choose another folder"):
    """Creates `path` if needed and proves it writable now (not after the long part); returns it.

    `probe_bytes` are written and removed (a larger probe also catches a nearly full disk).
    Raises OSError naming the folder and what to do.
    """
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f"{PROBE_PREFIX}{os.getpid()}")
        with open(probe, "wb") as f:
            f.write(b"\0" * probe_bytes)
        os.remove(probe)
    except OSError as error:
        raise OSError(f"{what} {path} is not writable ({error.strerror or error}); {todo}") from None
    return path


MARK_KEY = "Software"
"""PNG text chunk that names the command which wrote a file (matplotlib's `savefig(metadata=...)`)."""


def mark_metadata(mark):
    """`savefig` metadata that marks a PNG as written by `mark`."""
    return {MARK_KEY: mark}


def carries_mark(path, mark):
    """Whether the PNG at `path` was written with `mark_metadata(mark)` (its text chunk comes first)."""
    with open(path, "rb") as f:
        return mark.encode() in f.read(4096)


def atomic_write(path, write):
    """Calls `write(temporary)` for a temporary path beside `path`, then renames it to `path`.

    The temporary name ends with the file's own name, so its suffix (by which
    Keras picks the format) is kept. On any failure the temporary file is
    removed and the previous `path` is left as it was.
    """
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    temporary = os.path.join(directory, f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{name}")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    return path


def write_json_atomically(path, data, **json_options):
    """`json.dump(data)` into `path` via `atomic_write`."""

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(data, f, **json_options)

    return atomic_write(path, write)

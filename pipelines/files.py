"""Files the project writes: atomically (a kill at any moment leaves the old file
or the new one, never half of one), and where its caches live.
"""

import contextlib
import errno
import hashlib
import json
import os
import uuid

from pipelines.errors import UserError

CACHE_DIR_ENV = "LOCALIZER_CACHE_DIR"
"""Environment variable that moves the cache (converted weights, composited images)."""


def cache_dir():
    """The project's cache folder: `$LOCALIZER_CACHE_DIR`, else `~/.cache/localizer`."""
    return os.environ.get(CACHE_DIR_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "localizer"
    )


def inside(path, folder):
    """True when `path` is `folder` or lies inside it (symlinks resolved)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder + os.sep)


PROBE_PREFIX = ".write-test-"
"""Name of the short-lived file `check_writable_folder` writes (a kill may leave one behind)."""


class OutputFolderError(UserError, OSError, ValueError):
    """An output folder the command refuses: a file, not writable, among its inputs, or holding
    files it did not write; the message names it and says to choose another.

    An OSError (it could not be written) and a ValueError (it was refused) for older callers.
    """


def check_not_a_file(path, what, todo="choose another folder"):
    """Refuses an output folder that is an existing file (makedirs would only say "File exists")."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputFolderError(f"{what} {path} is a file, not a folder; {todo}")
    return path


def check_writable_folder(path, what, probe_bytes=1, todo="choose another folder"):
    """Creates `path` if needed and proves it writable now (not after the long part); returns it.

    `probe_bytes` are written and removed (a larger probe also catches a nearly full disk).
    Raises OutputFolderError (an OSError) naming the folder and what to do.
    """
    check_not_a_file(path, what, todo)
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f"{PROBE_PREFIX}{os.getpid()}")
        with open(probe, "wb") as f:
            f.write(b"\0" * probe_bytes)
        os.remove(probe)
    except OSError as error:
        if is_disk_full(error):
            todo = f"free space there, or {todo}"
        raise OutputFolderError(
            f"{what} {path} is not writable ({error.strerror or error}); {todo}"
        ) from None
    return path


MARK_KEY = "Software"
"""PNG text chunk that names the command which wrote a file (matplotlib's
`savefig(metadata=...)`)."""


def mark_metadata(mark):
    """`savefig` metadata that marks a PNG as written by `mark`."""
    return {MARK_KEY: mark}


def carries_mark(path, mark):
    """Whether the PNG at `path` was written with `mark_metadata(mark)` (its text chunk comes
    first)."""
    with open(path, "rb") as f:
        return mark.encode() in f.read(4096)


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded")
"""How a full disk (or quota) shows: an errno from Python's own writes, only words from h5py or
TensorFlow's."""


class DiskFullError(UserError, OSError):
    """No space was left where a file was being written; the message names the file and what to
    do.

    Not a mistake of the user's, but theirs to fix (an environment condition): one line, like one.
    """

    def __init__(
        self, path, todo="free space there, or write elsewhere, and run the command again"
    ):
        folder = os.path.abspath(os.fspath(path))
        folder = folder if os.path.isdir(folder) else os.path.dirname(folder)
        super().__init__(
            f"no space left on the device writing {path}; {todo} (df -h {folder} shows the space "
            "left)"
        )
        self.path = os.fspath(path)


def is_disk_full(error):
    """Whether `error` (an OSError, a TensorFlow or h5py error) means the disk or a quota is
    full."""
    if isinstance(error, DiskFullError) or getattr(error, "errno", None) in DISK_FULL_ERRNOS:
        return True
    text = f"{getattr(error, 'message', '')} {error}"
    return any(words in text for words in DISK_FULL_WORDS)


MAX_NAME_BYTES = 255
"""The longest file name (one path component, in bytes) that Linux, macOS and Windows file systems
all take."""


def fitting_name(name, limit=MAX_NAME_BYTES):
    """`name`, or when its UTF-8 form is longer than `limit` bytes, a name that fits: the start of
    its stem, `~` and 8 hex digits of the whole name's digest (distinct names stay distinct), and
    its suffixes (`.jpg.pred.png`: what tools read the format by) kept whole where they are
    short."""
    if len(name.encode()) <= limit:
        return name
    dot = name.find(".", 1)
    suffix = name[dot:] if dot > 0 and len(name[dot:].encode()) <= limit // 4 else ""
    mark = "~" + hashlib.sha256(name.encode()).hexdigest()[:8]
    budget = limit - len(mark.encode()) - len(suffix.encode())
    head = name[: len(name) - len(suffix)].encode()[:budget].decode(errors="ignore")
    return head + mark + suffix


def atomic_write(path, write):
    """Calls `write(temporary)` for a temporary path beside `path`, then renames it to `path`.

    The temporary name ends with the file's own name (`fitting_name` of it, when the prefix would
    make it too long), so its suffix (by which Keras picks the format) is kept. On any failure the
    temporary file is removed and the previous `path` is left as it was; a full disk raises
    DiskFullError naming `path` (a write's own error names no file).
    """
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    prefix = f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-"
    temporary = os.path.join(directory, prefix + fitting_name(name, MAX_NAME_BYTES - len(prefix)))
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        if is_disk_full(error) and not isinstance(error, DiskFullError):
            raise DiskFullError(path) from error
        raise
    return path


def write_bytes_atomically(path, data):
    """`data` (bytes) into `path` via `atomic_write`, its folder made first."""

    def write(temporary):
        with open(temporary, "wb") as f:  # closed here, so a full disk raises here
            f.write(data)

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return atomic_write(path, write)


def write_json_atomically(path, data, **json_options):
    """`json.dump(data)` into `path` via `atomic_write`."""

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(data, f, **json_options)

    return atomic_write(path, write)

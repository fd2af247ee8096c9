"""The work dir: whose it is, whether it can be written, and the markers of finished stages.

A run writes a fingerprint of what determines its result (the resolved
config, the data's identity, the model's structure) before anything else, with the
code version beside it (printed on resume, never compared). A later
run in the same work dir resumes only when its fingerprint is the same; else
it stops before touching anything and names the fields that differ.
`overwrite=True` moves the old run aside (never deletes it).
"""

import hashlib
import json
import math
import os
import re
import time

from localizer import provenance
from pipelines import files
from pipelines.errors import UserError

CONFIG_FILE = "config.json"
"""A run's resolved config, written by the trainer beside its models."""
FINGERPRINT = "fingerprint.json"

RUNTIME_ONLY_FIELDS = ("strategy", "jit_compile", "eval_every")
"""Config fields that say how a run executes, not what it trains: a resume may change them."""


class WorkdirMismatch(UserError, ValueError):
    """The work dir holds another run (other config, data or code): refuse to resume it."""


def default_workdir(dataset=None, data_dir=None, experiment=None, root="work"):
    """`work/<dataset>[-<data folder name>-<digest>][-<experiment>]`: two data folders get two work
    dirs.

    The folder's name keeps the work dir readable; the short digest of its
    resolved absolute path tells `/a/rm` from `/b/rm` (the same folder, named
    relatively, through a symlink or with a trailing slash, keeps one work dir).
    """
    safe = lambda part: re.sub(r"[^A-Za-z0-9_.]+", "_", part)  # noqa: E731
    folder = None
    if data_dir:
        path = os.path.realpath(os.path.expanduser(data_dir))
        digest = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:DIGEST_LENGTH]
        folder = f"{safe(os.path.basename(path) or 'root')}-{digest}"
    name = "-".join(
        part
        for part in (dataset and safe(dataset), folder, experiment and safe(experiment))
        if part
    )
    return os.path.join(root, name or "default")


DIGEST_LENGTH = 6
"""Hex digits of a data folder's path digest in default work dir names."""


def fingerprint(config_dict, data_identity, model=None):
    """What determines a run's result: config (runtime-only fields aside), data identity, and the
    model's structure (`model_structure`), plus the code version, recorded but never compared.

    Source bytes are not part of it: a comment edit, a refactoring or a commit elsewhere must
    not orphan a run. What would make its weights mean something else (a layer or shape that
    changed) shows in the model's structure.
    """
    code = provenance.code_version()
    found = {
        "config": {k: v for k, v in config_dict.items() if k not in RUNTIME_ONLY_FIELDS},
        "data": data_identity,
        RECORDED_ONLY: {key: code[key] for key in ("commit", "dirty", "version", "source_digest")},
    }
    if model is not None:
        found["model"] = model_structure(model)
    return found


RECORDED_ONLY = "code"
"""The fingerprint's part that is printed on resume, never a reason to refuse one."""


def model_structure(model):
    """A digest of the model's layers (their classes, in order) and weights (shapes, dtypes).

    Names are left out: Keras numbers unnamed layers by how many were built before in the
    process, which says nothing about the model.
    """
    layers = [type(layer).__name__ for layer in model._flatten_layers(include_self=False)]
    weights = [(tuple(weight.shape), str(weight.dtype)) for weight in model.weights]
    text = json.dumps({"layers": layers, "weights": weights})
    return {
        "parameters": int(sum(math.prod(shape) for shape, _ in weights)),
        "digest": hashlib.sha256(text.encode()).hexdigest()[:16],
    }


def changed_fields(old, new):
    """Dotted paths where fingerprint `new` differs from the run's `old` in what must match for a
    resume: never the code; the model's structure only when `old` recorded it (a run written
    before it was recorded resumes on its config and data)."""
    ignored = {RECORDED_ONLY} | (set() if "model" in old else {"model"})
    kept = lambda found: {k: v for k, v in found.items() if k not in ignored}
    return list(differences(kept(old), kept(new)))


def read_fingerprint(workdir):
    """The fingerprint a run wrote in `workdir`, or None."""
    return _read(os.path.join(workdir, FINGERPRINT))


def code_line(old, new):
    """`started by code X; this is code Y` for the resume log line."""

    def name(code):
        code = code or {}
        commit = (code.get("commit") or "")[:12] or f"version {code.get('version')}"
        return commit + (" (edited)" if code.get("dirty") else "")

    before, now = name(old.get(RECORDED_ONLY)), name(new.get(RECORDED_ONLY))
    return f"code {now}" + ("" if before == now else f"; it was started by code {before}")


def differences(old, new, prefix=""):
    """Dotted paths where two fingerprints (nested dicts) differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            yield from differences(
                old.get(key, "<absent>"), new.get(key, "<absent>"), f"{prefix}{key}."
            )
    elif _canonical(old) != _canonical(new):
        yield prefix.rstrip(".")


def _canonical(value):
    return json.loads(json.dumps(value))


def check_not_inside(workdir, *data_dirs):
    """Refuses a work dir that is, holds, or lies inside a dataset folder (data, image or manual
    dir)."""
    for data_dir in filter(None, data_dirs):
        if files.inside(data_dir, workdir) or files.inside(workdir, data_dir):
            raise WorkdirMismatch(
                f"work dir {workdir} overlaps the dataset folder {data_dir}; "
                f"choose a --workdir outside it"
            )


def claim(workdir, new_fingerprint, overwrite=False):
    """Makes `workdir` this run's. Returns True when it resumes an earlier run of the same
    fingerprint.

    Raises:
      WorkdirMismatch: `workdir` holds another run (or other files) and `overwrite` is False.
    """
    path = os.path.join(workdir, FINGERPRINT)
    old = _read(path)
    changed = None if old is None else changed_fields(old, new_fingerprint)
    if old is not None and not changed:
        return True
    occupied = old is not None or _holds_other_files(workdir)
    if occupied and old is None and not _looks_like_a_run(workdir):
        # Not a run: never moved, even with --overwrite: it may be the user's own folder.
        raise WorkdirMismatch(
            f"work dir {workdir} holds files that are not a localizer run (no {FINGERPRINT}); "
            f"choose another --workdir"
        )
    if occupied and not overwrite:
        if old is None:
            what = f"a run from before work dirs had a {FINGERPRINT}"
        else:
            shown = ", ".join(changed[:6]) + (
                f" and {len(changed) - 6} more" if len(changed) > 6 else ""
            )
            what = f"a run with other {shown}"
        raise WorkdirMismatch(
            f"work dir {workdir} holds {what}; use another --workdir, or --overwrite to move the "
            f"old run aside (it is kept as {workdir}.replaced-<time>)"
        )
    if occupied:
        moved = f"{os.path.normpath(workdir)}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
        os.rename(workdir, moved)
    os.makedirs(workdir, exist_ok=True)
    files.write_json_atomically(path, new_fingerprint, indent=2, sort_keys=True)
    return False


def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"unreadable": path}


LEFT_BY_A_REFUSED_RUN = ("data_issues.tsv",)
"""What a run refused at its data checks leaves in a new work dir (it has not claimed it)."""


def _holds_other_files(workdir):
    """True when `workdir` exists and holds anything but write-probe leftovers or a refused run's
    data report."""
    if not os.path.isdir(workdir):
        return False
    return any(
        not name.startswith(files.PROBE_PREFIX) and name not in LEFT_BY_A_REFUSED_RUN
        for name in os.listdir(workdir)
    )


def _looks_like_a_run(workdir):
    """A run written before fingerprints: its config.json beside backups or metrics."""
    names = set(os.listdir(workdir))
    return CONFIG_FILE in names and bool(names & {"backup", "metrics.jsonl", "train_summary.json"})


def is_unclaimed(workdir):
    """True when no run owns `workdir` yet (it may be missing or hold only a refused run's data
    report)."""
    return not os.path.exists(os.path.join(workdir, FINGERPRINT)) and not _holds_other_files(
        workdir
    )


def check_workdir(workdir):
    """Fails now, naming the path, if the work dir cannot be written (not hours later)."""
    files.check_writable_folder(
        workdir, "work dir", probe_bytes=1024 * 1024, todo="choose another --workdir"
    )


def stage_done_marker(workdir, stage):
    return os.path.join(workdir, f"{stage}.done.weights.h5")


def mark_stage_done(model, workdir, stage):
    files.atomic_write(stage_done_marker(workdir, stage), model.save_weights)


if __name__ == "__main__":
    import sys

    # `python -m localizer.training.workdir DATASET DATA_DIR EXPERIMENT`: the default work dir (for
    # the Makefile).
    print(default_workdir(*(arg or None for arg in (sys.argv[1:] + ["", "", ""])[:3])))


def recorded_data(model_path):
    """The `DataConfig` of the run whose work dir holds `model_path` (its config.json), or None.

    None for a model outside a work dir, or beside a config.json that names no dataset.
    """
    from localizer.training import config as config_lib

    recorded = _read(os.path.join(os.path.dirname(os.path.abspath(model_path)), CONFIG_FILE))
    if (
        not isinstance(recorded, dict)
        or not isinstance(recorded.get("data"), dict)
        or not recorded["data"].get("dataset")
    ):
        return None
    return config_lib.from_dict(recorded["data"], config_lib.DataConfig)

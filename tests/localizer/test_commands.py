"""Every command under the one error contract, tried as a careless user would, in real subprocesses.

A mistake: exit 2, one line `error: ...` on stderr, no traceback. Inputs are
never modified (md5 before and after). The fast suite runs one case per
command; `make test-slow` runs the whole table and the kill-point sweep.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests import fixtures
from tests.test_imports import COMMANDS

REPO_ROOT = fixtures.REPO_ROOT
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run(*args, timeout=600):
    return fixtures.run_python("-m", *args, env=ENV, timeout=timeout)


def assert_user_error(result, fragment):
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(lines) == 1 and fragment in lines[0], result.stderr[-3000:]


def md5_tree(root):
    digests = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                digests[os.path.relpath(path, root)] = hashlib.md5(f.read()).hexdigest()
    return digests


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A VOC folder, a tiny model, a truncated model file and a folder of garbage."""
    root = tmp_path_factory.mktemp("world")
    voc = fixtures.make_voc_folder(root / "voc")
    model = str(root / "tiny.keras")
    fixtures.tiny_model().save(model)
    truncated = root / "truncated.keras"
    truncated.write_bytes(open(model, "rb").read()[:300])
    garbage = root / "garbage_export"
    garbage.mkdir()
    (garbage / "saved_model.pb").write_bytes(b"\0garbage")
    # An export's version folder whose TFLite file is damaged, and a TFLite file outside any export.
    assets_extra = root / "export" / "1" / "assets.extra"
    assets_extra.mkdir(parents=True)
    (root / "export" / "1" / "assets").mkdir()
    (root / "export" / "1" / "assets" / "metadata.json").write_text(
        json.dumps(
            {"class_names": list(fixtures.CLASSES), "resize_mode": "letterbox", "image_size": 32}
        )
    )
    corrupt_tflite = assets_extra / "localizer.tflite"
    corrupt_tflite.write_bytes(b"TFL3 truncated flatbuffer")
    loose_tflite = root / "loose.tflite"
    loose_tflite.write_bytes(b"TFL3")
    # An export whose metadata.json lacks image_size, and one holding another model's TFLite file (5
    # classes).
    from tests.localizer.inference.test_predictor import (
        METADATA,
        _export_with_metadata,
        foreign_tflite,
    )

    no_size = _export_with_metadata(
        root / "no_size", json.dumps({k: v for k, v in METADATA.items() if k != "image_size"})
    )
    foreign = _export_with_metadata(root / "foreign", json.dumps(METADATA))
    foreign_tflite(foreign / "assets.extra" / "localizer.tflite", num_classes=5)
    foreign_tflite(no_size / "assets.extra" / "localizer.tflite", num_classes=3)
    notes = root / "notes.png"
    notes.write_bytes(b"the user's own file")
    # An output folder that cannot be created (tests run as root, so chmod would not stop a write).
    readonly = notes
    return {
        "root": str(root),
        "voc": voc,
        "model": model,
        "truncated": str(truncated),
        "garbage": str(garbage),
        "corrupt_tflite": str(corrupt_tflite),
        "loose_tflite": str(loose_tflite),
        "readonly": str(readonly),
        "notes": str(notes),
        "foreign_tflite": str(foreign / "assets.extra" / "localizer.tflite"),
        "no_size_tflite": str(no_size / "assets.extra" / "localizer.tflite"),
    }


TRAIN = (
    "localizer.train",
    "--backbone=tiny",
    "--weights=none",
    "--image_size=32",
    "--set=data.max_examples=8",
    "--batch_size=4",
)

# (name, command arguments with {placeholders}, fragment of the error line)
CASES = [
    ("train_unknown_set", TRAIN + ("--set=model.nope=1",), "no field 'nope'"),
    ("train_ill_typed_set", TRAIN + ("--set=frozen_epochs=many",), "must be a whole number"),
    ("train_negative_epochs", TRAIN + ("--set=frozen_epochs=-1",), "frozen_epochs=-1"),
    ("train_batch_size_0", TRAIN + ("--batch_size=0",), "pipeline.batch_size=0"),
    ("train_image_size_0", TRAIN + ("--image_size=0",), "model.image_size=0"),
    ("train_max_examples", TRAIN + ("--set=data.max_examples=-5",), "data.max_examples=-5"),
    ("train_pixel_limit", TRAIN + ("--max_image_pixels=-1",), "max_image_pixels=-1"),
    (
        "train_missing_weights",
        (
            "localizer.train",
            "--backbone=efficientnet_lite0",
            "--weights={root}/none.pth",
            "--workdir={root}/w1",
        ),
        "none.pth",
    ),
    ("train_readonly_workdir", TRAIN + ("--workdir={readonly}/work",), "not writable"),
    ("train_unknown_flag", ("localizer.train", "--nope=1"), "nope"),
    (
        "train_contradiction",
        TRAIN + ("--set=pipeline.image_size=96",),
        "contradicts model.image_size",
    ),
    (
        "train_fewer_examples_than_a_batch",
        TRAIN + ("--batch_size=16", "--workdir={root}_w2"),
        "fewer than one",
    ),
    (
        "evaluate_missing_model",
        (
            "localizer.evaluate",
            "--model={root}/missing.keras",
            "--dataset=voc_dir",
            "--data_dir={voc}",
            "--split=train",
        ),
        "not found",
    ),
    (
        "evaluate_truncated_model",
        (
            "localizer.evaluate",
            "--model={truncated}",
            "--dataset=voc_dir",
            "--data_dir={voc}",
            "--split=train",
        ),
        "not a .keras file",
    ),
    (
        "evaluate_garbage_export",
        (
            "localizer.evaluate",
            "--model={garbage}",
            "--dataset=voc_dir",
            "--data_dir={voc}",
            "--split=train",
        ),
        "cannot be loaded",
    ),
    (
        "evaluate_missing_tflite",
        (
            "localizer.evaluate",
            "--model={root}/export/1/assets.extra/missing.tflite",
            "--dataset=voc_dir",
            "--data_dir={voc}",
            "--split=train",
        ),
        "not found",
    ),
    (
        "evaluate_corrupt_tflite",
        (
            "localizer.evaluate",
            "--model={corrupt_tflite}",
            "--dataset=voc_dir",
            "--data_dir={voc}",
            "--split=train",
        ),
        "cannot be loaded as a localizer TFLite",
    ),
    (
        "evaluate_tflite_outside_export",
        (
            "localizer.evaluate",
            "--model={loose_tflite}",
            "--dataset=voc_dir",
            "--data_dir={voc}",
            "--split=train",
        ),
        "not in an export's assets.extra",
    ),
    (
        "evaluate_metadata_without_size",
        (
            "localizer.evaluate",
            "--model={no_size_tflite}",
            "--dataset=voc_dir",
            "--data_dir={voc}",
            "--split=train",
        ),
        "lacks the field 'image_size'",
    ),
    (
        "evaluate_foreign_tflite",
        (
            "localizer.evaluate",
            "--model={foreign_tflite}",
            "--dataset=voc_dir",
            "--data_dir={voc}",
            "--split=train",
            "--norefine",
        ),
        "for 5 classes",
    ),
    (
        "evaluate_batch_size_0",
        (
            "localizer.evaluate",
            "--model={model}",
            "--dataset=voc_dir",
            "--data_dir={voc}",
            "--batch_size=0",
        ),
        "--batch_size=0",
    ),
    (
        "evaluate_readonly_report",
        (
            "localizer.evaluate",
            "--model={model}",
            "--dataset=voc_dir",
            "--data_dir={voc}",
            "--split=train",
            "--report_dir={readonly}/report",
        ),
        "not writable",
    ),
    (
        "evaluate_missing_data",
        ("localizer.evaluate", "--model={model}", "--dataset=voc_dir", "--data_dir={root}/nowhere"),
        "nowhere",
    ),
    ("predict_no_images", ("localizer.predict", "--model={model}"), "no image given"),
    (
        "predict_draw_among_inputs",
        ("localizer.predict", "--model={model}", "--draw_dir={voc}/JPEGImages", "{voc}/JPEGImages"),
        "holds the input",
    ),
    (
        "predict_draw_dir_is_a_file",
        ("localizer.predict", "--model={model}", "--draw_dir={notes}", "{voc}/JPEGImages"),
        "is a file, not a folder",
    ),
    (
        "evaluate_report_dir_is_a_file",
        (
            "localizer.evaluate",
            "--model={model}",
            "--dataset=voc_dir",
            "--data_dir={voc}",
            "--split=train",
            "--report_dir={notes}",
        ),
        "is a file, not a folder",
    ),
    (
        "predict_truncated_model",
        ("localizer.predict", "--model={truncated}", "{voc}/JPEGImages"),
        "not a .keras file",
    ),
    (
        "predict_min_box_quality_out_of_range",
        ("localizer.predict", "--model={model}", "--min_box_quality=2", "{voc}/JPEGImages"),
        "min_box_quality=2.0 is not in [0, 1]",
    ),
    (
        "predict_annotations_without_out",
        ("localizer.predict", "--model={model}", "--annotations=coco", "{voc}/JPEGImages"),
        "--annotations=coco needs --out=DIR",
    ),
    (
        "predict_out_among_the_photos",
        (
            "localizer.predict",
            "--model={model}",
            "--annotations=yolo",
            "--out={voc}/JPEGImages/labels",
            "{voc}/JPEGImages",
        ),
        "the folder of the photo",
    ),
    (
        "predict_folder_without_images",
        ("localizer.predict", "--model={model}", "{voc}/Annotations"),
        "Annotations holds no image file (predict looks for .jpg",
    ),
    (
        "export_truncated_model",
        ("localizer.export", "--model={truncated}", "--export_dir={root}/models"),
        "not a .keras file",
    ),
    (
        "export_readonly_dir",
        ("localizer.export", "--model={model}", "--export_dir={readonly}/models"),
        "not writable",
    ),
    (
        "export_int8_without_data",
        ("localizer.export", "--model={model}", "--export_dir={root}/models", "--tflite_int8"),
        "no work-dir config.json",
    ),
    (
        "export_int8_other_classes",
        (
            "localizer.export",
            "--model={model}",
            "--export_dir={root}/models",
            "--tflite_int8",
            "--dataset=synthetic",
        ),
        "pass the dataset it was trained on",
    ),
    (
        "export_version_taken",
        ("localizer.export", "--model={model}", "--export_dir={root}/export", "--version=1"),
        "/export/1; choose another --version, or leave it out for the next free one (2)",
    ),
    (
        "export_version_0",
        ("localizer.export", "--model={model}", "--export_dir={root}/models", "--version=0"),
        "--version=0",
    ),
    (
        "show_replaces_user_file",
        ("pipelines.show", "--dataset=voc_dir", "--data_dir={voc}", "--out={notes}"),
        "not a preview",
    ),
    (
        "show_missing_data",
        (
            "pipelines.show",
            "--dataset=voc_dir",
            "--data_dir={root}/nowhere",
            "--out={root}/grid.png",
        ),
        "nowhere",
    ),
]
FAST_CASES = {
    "train_unknown_set",
    "evaluate_truncated_model",
    "evaluate_corrupt_tflite",
    "export_int8_without_data",
    "predict_draw_among_inputs",
    "export_truncated_model",
    "show_replaces_user_file",
}


def _case(name):
    return next(case for case in CASES if case[0] == name)


def _try(world, name):
    _, arguments, fragment = _case(name)
    before = md5_tree(world["voc"]), md5_tree(os.path.dirname(world["notes"]))
    result = run(*(argument.format(**world) for argument in arguments))
    assert_user_error(result, fragment)
    assert (md5_tree(world["voc"]), md5_tree(os.path.dirname(world["notes"]))) == before


@pytest.mark.parametrize("name", sorted(FAST_CASES))
def test_a_mistake_is_one_line_and_exit_2(world, name):
    _try(world, name)


_RAISES = r"""
import sys
from absl import flags
from pipelines import cli
from pipelines.errors import UserError

def main(argv):
    if flags.FLAGS.what == "bug":
        raise ValueError("Input 0 of layer 'dense' is incompatible with the layer: shape (None, 3)")
    raise UserError("model m.keras not found; pass --model=<a .keras file>")

cli.run(main, lambda: flags.DEFINE_string("what", "bug", "bug or mistake"))
"""


@pytest.mark.parametrize("what", ["bug", "mistake"])
def test_a_bug_keeps_its_traceback_and_only_a_user_error_is_one_line(what):
    """A ValueError from inside main (a Keras shape bug) is no user mistake: traceback, exit 1."""
    result = subprocess.run(
        [sys.executable, "-c", _RAISES, f"--what={what}"],
        cwd=REPO_ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if what == "mistake":
        assert_user_error(result, "model m.keras not found")
    else:
        assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
        assert "Traceback" in result.stderr and "ValueError: Input 0 of layer" in result.stderr
        assert not [line for line in result.stderr.splitlines() if line.startswith("error: ")]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted({case[0] for case in CASES} - FAST_CASES))
def test_every_listed_mistake_is_one_line_and_exit_2(world, name):
    _try(world, name)


@pytest.mark.slow
def test_inputs_unchanged_by_every_command(world, tmp_path):
    before = md5_tree(world["voc"])
    drawn = tmp_path / "drawn"
    commands = [
        (
            "localizer.predict",
            f"--model={world['model']}",
            f"--draw_dir={drawn}",
            os.path.join(world["voc"], "JPEGImages"),
        ),
        (
            "localizer.evaluate",
            f"--model={world['model']}",
            "--dataset=voc_dir",
            f"--data_dir={world['voc']}",
            "--split=train",
            f"--report_dir={tmp_path / 'report'}",
        ),
        (
            "localizer.export",
            f"--model={world['model']}",
            f"--export_dir={tmp_path / 'models'}",
            "--norefine",
        ),
        (
            "pipelines.show",
            "--dataset=voc_dir",
            f"--data_dir={world['voc']}",
            "--split=train",
            "--num_examples=4",
            f"--out={tmp_path / 'grid.png'}",
        ),
    ]
    for command in commands:
        result = run(*command)
        assert result.returncode == 0, (command, result.stderr[-3000:])
    assert md5_tree(world["voc"]) == before
    # Run again: our own outputs are replaced, the inputs still untouched.
    for command in commands:
        assert run(*command).returncode == 0
    assert md5_tree(world["voc"]) == before


# --- help lists every flag a command takes ------------------------------------------------------

HELP_COMMANDS = (*COMMANDS, "pipelines.show")


def _help_flags(command, which):
    """`(flags listed by --<which>, usage text)`; for --helpfull only the flags our packages
    define."""
    import re

    result = run(command, f"--{which}", timeout=120)
    assert "flags:" in result.stdout, result.stderr[
        -2000:
    ]  # absl's help exits 1 (its own convention)
    listed, ours = set(), True
    for line in result.stdout.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):  # a module's section
            ours = (
                which != "helpfull"
                or re.search(r"(^|/)(localizer|pipelines)[./]", line) is not None
            )
        found = re.match(r"^  --(?:\[no\])?(\w+)", line)
        if found and ours:
            listed.add(found.group(1))
    return listed, result.stdout


def _check_help(command):
    short, usage = _help_flags(command, "helpshort")
    full, _ = _help_flags(command, "helpfull")
    assert full - short == set() and "debug" in short, (command, sorted(full - short))
    assert "../shared" not in usage  # the project needs no folder beside it
    return short


@pytest.mark.slow  # five commands started for their help (7 s)
def test_help_lists_the_dataset_flags_and_no_sibling_folder():
    short = _check_help("localizer.train")
    assert {"dataset", "data_dir", "policy", "image_dir", "max_image_pixels", "workdir"} <= short


@pytest.mark.slow
@pytest.mark.parametrize("command", HELP_COMMANDS)
def test_every_command_s_help_lists_every_flag_it_takes(command):
    short = _check_help(command)
    reads_files_only = command in ("localizer.predict", "localizer.select", "localizer.demo")
    assert "max_image_pixels" in short and (reads_files_only or "dataset" in short)


# --- train: a used work dir, and kill -9 at any instant ------------------------------------------

KILL_TRAIN = (
    "localizer.train",
    "--backbone=tiny",
    "--weights=none",
    "--image_size=32",
    "--set=data.max_examples=64",
    "--set=model.head_units=32",
    "--batch_size=16",
    "--set=feature_passes=2",
    "--set=frozen_epochs=2",
    "--set=fine_tune_epochs=2",
)

_KILL_AT = r"""
import os, signal, sys
from localizer.training import backups, feature_cache, stages, trainer
from pipelines import files

point = sys.argv[1]
def die():
    os.kill(os.getpid(), signal.SIGKILL)

def after(module, name, condition=lambda *a, **k: True):
    original = getattr(module, name)
    def wrapped(*args, **kwargs):
        result = original(*args, **kwargs)
        if condition(*args, **kwargs):
            die()
        return result
    setattr(module, name, wrapped)

if point == "feature_caching":
    calls = []
    after(feature_cache, "extract_features", lambda *a, **k: calls.append(1) or len(calls) == 2)
elif point == "frozen_stage_end":  # its last epoch done, its marker not yet written
    after(stages, "frozen_stage")
elif point == "stage_boundary":  # marker written, fine-tuning not started
    after(trainer, "mark_stage_done")
elif point == "fine_tune_epoch":  # mid-stage: after the first fine-tuning epoch's backup
    saves = []
    after(
        backups.AtomicBackupAndRestore, "_save_model",
        lambda self: saves.append(1) or len(saves) == 3,
    )
elif point == "final_save":  # final.keras written, the summary not yet
    after(backups, "save_model_atomically", lambda model, path: path.endswith("final.keras"))
elif point == "summary":  # summary written, backups not yet removed
    after(
        files, "write_json_atomically",
        lambda path, *a, **k: str(path).endswith("train_summary.json"),
    )
sys.argv = ["localizer.train", *sys.argv[2:]]
from localizer import train
from pipelines import cli
cli.run(train.main, train.define_flags)
"""

_DISK_FULL = r"""
import errno, sys
from localizer.training import history

def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")  # as a write reports it: no file named

history.write_history = disk_full  # the metrics, after the first epoch
sys.argv = ["localizer.train", *sys.argv[1:]]
from localizer import train
from pipelines import cli
cli.run(train.main, train.define_flags)
"""


@pytest.mark.slow
def test_train_on_a_full_disk_is_one_line_naming_the_work_dir(tmp_path):
    workdir = str(tmp_path / "w")
    result = subprocess.run(
        [sys.executable, "-c", _DISK_FULL, *KILL_TRAIN[1:], f"--workdir={workdir}"],
        cwd=REPO_ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert_user_error(result, f"no space left on the device writing {workdir}; free space there")


KILL_POINTS = [
    "feature_caching",
    "frozen_stage_end",
    "stage_boundary",
    "fine_tune_epoch",
    "final_save",
    "summary",
]


def _epochs(workdir):
    path = os.path.join(workdir, "metrics.jsonl")
    with open(path) as f:
        return [json.loads(line)["epoch"] for line in f if line.strip()]


def _kill_then_resume(tmp_path, point):
    workdir = str(tmp_path / point)
    args = KILL_TRAIN + (f"--workdir={workdir}",)
    killed = subprocess.run(
        [sys.executable, "-c", _KILL_AT, point, *args[1:]],
        cwd=REPO_ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, (
        point,
        killed.stdout[-2000:],
        killed.stderr[-3000:],
    )
    resumed = run(*args)
    assert resumed.returncode == 0, (point, resumed.stdout[-2000:], resumed.stderr[-3000:])
    assert _epochs(workdir) == [1, 2, 3, 4], point  # every epoch once, in order
    with open(os.path.join(workdir, "metrics.csv")) as f:
        assert [line.split(",")[0] for line in f.read().splitlines()[1:]] == ["1", "2", "3", "4"]
    assert os.path.exists(os.path.join(workdir, "final.keras"))
    assert not os.path.exists(os.path.join(workdir, "backup"))  # removed once the run is complete


@pytest.mark.slow
def test_kill_at_the_stage_boundary_resumes_without_repeating(tmp_path):
    _kill_then_resume(tmp_path, "frozen_stage_end")


@pytest.mark.slow
@pytest.mark.parametrize("point", [p for p in KILL_POINTS if p != "frozen_stage_end"])
def test_kill_point_sweep(tmp_path, point):
    _kill_then_resume(tmp_path, point)


@pytest.mark.slow
def test_a_used_work_dir_refuses_another_recipe_and_dataset(tmp_path, world):
    workdir = str(tmp_path / "w")
    assert run(*KILL_TRAIN, f"--workdir={workdir}").returncode == 0
    before = md5_tree(workdir)
    started = time.time()
    other = run(*KILL_TRAIN, f"--workdir={workdir}", "--set=alpha=0.3")
    assert_user_error(other, "config.alpha")
    other_data = run(
        *KILL_TRAIN,
        f"--workdir={workdir}",
        "--dataset=voc_dir",
        f"--data_dir={world['voc']}",
        "--set=data.train_split=train",
        "--set=data.val_split=train",
        "--batch_size=2",
    )
    assert_user_error(other_data, "data.")
    assert md5_tree(workdir) == before and time.time() - started < 300
    assert (
        run(*KILL_TRAIN, f"--workdir={workdir}", "--set=alpha=0.3", "--overwrite").returncode == 0
    )
    assert any(name.startswith("w.replaced-") for name in os.listdir(tmp_path))

"""Trust at the edges: work dirs that know whose they are, outputs that never replace inputs,
memory bounded before decoding, every config field validated, clear messages for bad files.
"""

import io
import json
import os
import re

import numpy as np
import pytest

import pipelines
from localizer import model as model_lib
from localizer.inference import image_files, report
from localizer.inference.predictor import ModelFileError, Predictor
from localizer.training import config as config_lib
from localizer.training import workdir as workdir_lib
from localizer.training.history import read_history, write_history
from pipelines import fields, image_header
from pipelines.sources.source import DatasetError
from tests import fixtures

# --- work dirs
# --------------------------------------------------------------------------------------


def _fingerprint(**changes):
    config = config_lib.replace_fields(config_lib.default_config(), changes)
    return workdir_lib.fingerprint(
        config_lib.to_dict(config), {"train": {"source": "synthetic", "examples": 8}}
    )


def test_work_dir_resumes_only_its_own_run(tmp_path):
    workdir = str(tmp_path / "run")
    assert workdir_lib.claim(workdir, _fingerprint()) is False  # new
    (tmp_path / "run" / "best.keras").write_bytes(b"the first run's model")
    assert workdir_lib.claim(workdir, _fingerprint()) is True  # same fingerprint: resume
    # Runtime-only knobs may change on a resume.
    assert workdir_lib.claim(workdir, _fingerprint(strategy="mirrored", eval_every=2)) is True
    with pytest.raises(workdir_lib.WorkdirMismatch) as error:
        workdir_lib.claim(workdir, _fingerprint(**{"frozen_epochs": 3, "model.attach": "pooled"}))
    message = str(error.value)
    assert (
        workdir in message
        and "config.frozen_epochs" in message
        and "config.model.attach" in message
    )
    assert "--overwrite" in message and "\n" not in message
    assert (tmp_path / "run" / "best.keras").read_bytes() == b"the first run's model"  # untouched


def test_overwrite_moves_the_old_run_aside(tmp_path):
    workdir = str(tmp_path / "run")
    workdir_lib.claim(workdir, _fingerprint())
    (tmp_path / "run" / "best.keras").write_bytes(b"old")
    assert workdir_lib.claim(workdir, _fingerprint(alpha=0.3), overwrite=True) is False
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert len(moved) == 1 and (moved[0] / "best.keras").read_bytes() == b"old"
    assert sorted(os.listdir(workdir)) == [workdir_lib.FINGERPRINT]


def test_other_data_or_foreign_files_are_refused(tmp_path):
    workdir = str(tmp_path / "run")
    workdir_lib.claim(workdir, _fingerprint())
    other = workdir_lib.fingerprint(
        config_lib.to_dict(config_lib.default_config()),
        {"train": {"source": "synthetic", "examples": 9}},
    )
    with pytest.raises(workdir_lib.WorkdirMismatch, match="data.train.examples"):
        workdir_lib.claim(workdir, other)
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(workdir_lib.WorkdirMismatch, match="not a localizer run"):
        workdir_lib.claim(str(foreign), _fingerprint())
    with pytest.raises(workdir_lib.WorkdirMismatch, match="overlaps the dataset"):
        workdir_lib.check_not_inside(str(tmp_path), str(foreign))


def test_default_work_dirs_tell_data_folders_apart():
    a = workdir_lib.default_workdir("voc_dir", "/data/cats", None)
    b = workdir_lib.default_workdir("voc_dir", "/data/dogs/", None)
    assert a != b and "voc_dir-cats-" in a and "voc_dir-dogs-" in b
    assert workdir_lib.default_workdir(None, None, "quickstart") == os.path.join(
        "work", "quickstart"
    )


def test_data_folders_of_one_name_get_their_own_work_dirs(tmp_path, monkeypatch):
    """`/a/rm` and `/b/rm` never share a default work dir; one folder, however named, keeps one."""
    import subprocess
    import sys

    for folder in ("a/rm", "b/rm"):
        (tmp_path / folder).mkdir(parents=True)
    a = workdir_lib.default_workdir("voc_dir", str(tmp_path / "a" / "rm"), "exp")
    b = workdir_lib.default_workdir("voc_dir", str(tmp_path / "b" / "rm"), "exp")
    assert a != b
    assert os.path.basename(a).startswith("voc_dir-rm-") and os.path.basename(a).endswith("-exp")
    monkeypatch.chdir(tmp_path / "a")
    (tmp_path / "link").symlink_to(tmp_path / "a" / "rm")
    assert {a} == {
        workdir_lib.default_workdir("voc_dir", name, "exp")
        for name in ("rm", "rm/", "./rm", str(tmp_path / "link"))
    }
    # The Makefile asks the module for WORK_DIR: the same rule.
    printed = subprocess.run(
        [sys.executable, "-m", "localizer.training.workdir", "voc_dir", "rm", "exp"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))},
    )
    assert printed.stdout.strip() == a


def test_file_source_identity_changes_with_the_files(tmp_path):
    root = fixtures.make_voc_folder(tmp_path / "voc")
    first = pipelines.get_source("voc_dir", data_dir=root).identity("train")
    assert first == pipelines.get_source("voc_dir", data_dir=root).identity("train")
    image = os.path.join(root, "JPEGImages", "img1.png")
    os.utime(image, ns=(1, 1))
    again = pipelines.get_source("voc_dir", data_dir=root).identity("train")
    assert again["examples_digest"] != first["examples_digest"]


def test_a_redone_epoch_replaces_its_rows(tmp_path):
    summary = {"mean_iou": 0.5, "iou_accuracy": {"0.5": 0.4}, "per_class": {}}
    history = [{"epoch": e, "stage": "frozen", **summary} for e in (1, 2, 3)]
    write_history(str(tmp_path), history)
    redone = [r for r in read_history(str(tmp_path)) if r["epoch"] < 3] + [
        {**history[2], "mean_iou": 0.6}
    ]
    write_history(str(tmp_path), redone)
    assert [r["epoch"] for r in read_history(str(tmp_path))] == [1, 2, 3]
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[-1].split(",")[0] == "3"


# --- outputs never replace inputs ----------------------------------------------------------------


def test_drawings_never_collide_or_land_among_inputs(tmp_path):
    names = image_files.drawing_names(["a/photo.jpg", "a/photo.png", "b/photo.jpg"])
    assert len(set(names.values())) == 3
    assert all(name.endswith(image_files.DRAWING_SUFFIX) for name in names.values())
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "photo.jpg").write_bytes(b"x")
    for draw_dir, inputs in ((photos, [str(photos)]), (photos, [str(photos / "photo.jpg")])):
        with pytest.raises(image_files.DrawDirError, match="holds the input"):
            image_files.check_draw_dir(str(draw_dir), inputs)
    image_files.check_draw_dir(str(tmp_path / "drawn"), [str(photos)])


def test_report_dir_with_foreign_files_is_refused(tmp_path):
    (tmp_path / "report.md").write_text("my notes")
    with pytest.raises(ValueError, match="not from an earlier report"):
        report.check_report_dir(str(tmp_path))
    (tmp_path / "metrics.json").write_text(
        json.dumps({"model": "m", "split": "val", "num_examples": 3})
    )
    report.check_report_dir(str(tmp_path))  # an earlier report's files are ours to replace


# --- bounded memory ------------------------------------------------------------------------------

BOMBS = {
    "bomb.png": fixtures.png_bomb,
    "bomb.gif": fixtures.gif_bomb,
    "bomb.webp": fixtures.webp_bomb,
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bombs_are_refused_from_their_header(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BOMBS[name]())
    assert path.stat().st_size < 1000
    with pytest.raises(image_header.ImageTooLargeError, match="over the limit"):
        image_files.read_image(str(path))
    assert image_header.check_image_file(str(path), max_pixels=0).width > 10_000  # 0: no limit


def test_pixel_limit_values():
    assert image_header.check_pixel_limit(0) == 0
    with pytest.raises(ValueError, match="max_image_pixels=-1"):
        image_header.check_pixel_limit(-1)


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    model_lib.build_model(
        model_lib.ModelConfig(
            num_classes=3,
            class_names=fixtures.CLASSES,
            backbone="tiny",
            weights="none",
            image_size=32,
        )
    ).save(path)
    return path


def test_predict_goes_on_after_a_bomb_and_an_unsupported_file(tmp_path, tiny_model_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a_bomb.png").write_bytes(fixtures.png_bomb())
    (folder / "b_scan.tiff").write_bytes(b"II*\0" + b"\0" * 64)
    fixtures.write_image(
        str(folder / "c_good.png"), fixtures.make_image(40, 50, [("cat", (5, 5, 30, 30))])
    )
    fixtures.write_image(str(folder / "d_tiny.png"), fixtures.make_image(1, 1, []))
    (folder / "notes.txt").write_text("not an image")
    out = io.StringIO()
    failures = image_files.run(
        tiny_model_path, [str(folder)], draw_dir=str(tmp_path / "drawn"), out=out, refine=False
    )
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    names = [os.path.basename(line["file"]) for line in lines]
    assert names == ["a_bomb.png", "b_scan.tiff", "c_good.png", "d_tiny.png"]
    assert (
        failures == 2
        and "over the limit" in lines[0]["error"]
        and "not supported" in lines[1]["error"]
    )
    assert "class" in lines[2] and "warning" not in lines[2] and "under 8 px" in lines[3]["warning"]
    assert sorted(os.listdir(tmp_path / "drawn")) == ["c_good.png.pred.png", "d_tiny.png.pred.png"]


def test_model_files_that_are_not_models_give_one_line(tmp_path, tiny_model_path):
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(open(tiny_model_path, "rb").read()[:500])
    garbage = tmp_path / "export"
    garbage.mkdir()
    (garbage / "saved_model.pb").write_bytes(b"garbage")
    for path, fragment in (
        (tmp_path / "missing.keras", "not found"),
        (truncated, "not a .keras file"),
        (garbage, "cannot be loaded"),
        (tmp_path, "no saved_model.pb"),
    ):
        with pytest.raises(ModelFileError, match=fragment) as error:
            Predictor(str(path))
        assert "\n" not in str(error.value)


# --- every config field validated -----------------------------------------------------------------


def test_every_config_field_has_a_rule():
    leaves = list(fields.leaves(config_lib.default_config()))
    assert len(leaves) > 60
    for path, value, field in leaves:
        assert isinstance(field.metadata.get(fields.RULE), fields.Rule), path
        assert fields.problem(field, value) is None, path  # the defaults keep their own rules


NUMERIC = {
    path: field.metadata[fields.RULE]
    for path, _, field in fields.leaves(config_lib.default_config())
    if isinstance(field.metadata[fields.RULE], fields.Number)
}


@pytest.mark.parametrize("path", sorted(NUMERIC))
@pytest.mark.parametrize("value", [0, -1, 10**12])
def test_numeric_fields_at_zero_minus_one_and_absurd(path, value):
    rule = NUMERIC[path]
    value = value if rule.whole else float(value)
    accepted = (
        (rule.low is None or value >= rule.low)
        and (rule.high is None or value <= rule.high)
        and not (rule.multiple and value % rule.multiple)
    )
    config = config_lib.replace_fields(config_lib.default_config(), {path: value})
    if accepted:
        fields.check(config)
    else:
        with pytest.raises(fields.ConfigError, match=path.replace(".", r"\.")):
            fields.check(config)


def test_wrong_types_and_contradictions_are_refused():
    base = config_lib.default_config()
    for path, value in (
        ("frozen_epochs", "3"),
        ("alpha", True),
        ("cache_features", 1),
        ("model.attach", "ring"),
    ):
        with pytest.raises(ValueError, match=path.replace(".", r"\.")):
            config_lib.replace_fields(base, {path: value}).validate()
    with pytest.raises(ValueError, match="contradicts model.image_size"):
        config_lib.apply_overrides(
            base, ["model.image_size=64", "pipeline.image_size=96"]
        ).validate()
    with pytest.raises(ValueError, match="Nothing to train"):
        config_lib.apply_overrides(base, ["frozen_epochs=0", "fine_tune_epochs=0"]).validate()


# --- clear messages for bad dataset files
# -----------------------------------------------------------


def test_csv_with_a_byte_order_mark_reads(tmp_path):
    root = fixtures.make_csv_folder(tmp_path / "csv")
    path = os.path.join(root, "train_labels.csv")
    text = open(path, encoding="utf-8").read()
    with open(path, "w", encoding="utf-8-sig") as f:  # as Excel writes it
        f.write(text)
    assert pipelines.get_source("csv", data_dir=root).num_examples("train") == len(
        fixtures.VOC_EXAMPLES["train"]
    )


def test_latin1_csv_and_repeated_labels_are_named(tmp_path):
    root = fixtures.make_csv_folder(tmp_path / "csv")
    path = os.path.join(root, "train_labels.csv")
    lines = open(path, encoding="utf-8").read().splitlines()
    lines[2] = lines[2].replace("img1", "caf\xe9")
    with open(path, "w", encoding="latin-1") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"train_labels\.csv line 3: not UTF-8"):
        pipelines.get_source("csv", data_dir=root).load("train")
    with open(os.path.join(root, "labels.txt"), "w") as f:
        f.write("cat\ndog\ncat\nplate\n")
    with pytest.raises(DatasetError, match="class names repeat: cat"):
        pipelines.get_source("csv", data_dir=root).class_names


def test_webp_header_is_read(tmp_path):
    from PIL import Image

    for options, channels in (({}, 3), ({"lossless": True}, 3)):
        path = tmp_path / "photo.webp"
        Image.fromarray(np.zeros((21, 34, 3), np.uint8)).save(path, "WEBP", **options)
        info = image_header.read_image_info(str(path))
        assert (info.format, info.height, info.width, info.channels, info.complete) == (
            "webp",
            21,
            34,
            channels,
            True,
        )


# --- found by an adversarial try
# --------------------------------------------------------------------


def test_gif_frames_count_not_only_its_canvas(tmp_path):
    huge_frame = tmp_path / "frame.gif"
    huge_frame.write_bytes(fixtures.gif_with_frames(canvas=(16, 16), frame=(20000, 20000)))
    many = tmp_path / "many.gif"
    many.write_bytes(fixtures.gif_with_frames(canvas=(2000, 2000), frame=(2000, 2000), frames=20))
    info = image_header.read_image_info(str(many))
    assert (info.frames, info.decoded_pixels) == (20, 20 * 2000 * 2000)
    for path in (huge_frame, many):
        with pytest.raises(image_header.ImageTooLargeError):
            image_files.read_image(str(path))
    import tensorflow as tf

    from localizer.serving.graph import encoded_image_pixels

    for path in (huge_frame, many):
        assert (
            encoded_image_pixels(tf.constant(path.read_bytes())).numpy()
            == image_header.read_image_info(str(path)).decoded_pixels
        )


def test_overwrite_never_moves_a_folder_that_is_not_a_run(tmp_path):
    photos = tmp_path / "images"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"x")
    with pytest.raises(workdir_lib.WorkdirMismatch, match="not a localizer run"):
        workdir_lib.claim(str(photos), _fingerprint(), overwrite=True)
    assert (photos / "a.jpg").exists()
    for workdir in (photos, photos / "sub", tmp_path):
        with pytest.raises(workdir_lib.WorkdirMismatch, match="overlaps the dataset"):
            workdir_lib.check_not_inside(str(workdir), None, str(photos))


def test_other_code_resumes_the_same_run(tmp_path, monkeypatch):
    """A comment edit or another commit changes the source, not the run: it resumes, and the
    resume line names both code versions."""
    workdir = str(tmp_path / "run")
    started = _fingerprint()
    workdir_lib.claim(workdir, started)
    from localizer import provenance

    edited = {**provenance.code_version(), "source_digest": "0" * 16, "commit": "f" * 40}
    monkeypatch.setattr(provenance, "code_version", lambda: edited)
    now = _fingerprint()
    assert workdir_lib.claim(workdir, now) is True
    assert workdir_lib.read_fingerprint(workdir)["code"] == started["code"]  # the run's own
    assert "code ffffffffffff" in workdir_lib.code_line(started, now)
    assert "it was started by code" in workdir_lib.code_line(started, now)


def test_a_model_of_another_structure_is_another_run(tmp_path):
    import keras

    def model(units):
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(units)(inputs))

    workdir = str(tmp_path / "run")
    config = config_lib.to_dict(config_lib.default_config())
    data = {"train": {"source": "synthetic", "examples": 8}}
    workdir_lib.claim(workdir, workdir_lib.fingerprint(config, data, model(3)))
    assert workdir_lib.claim(workdir, workdir_lib.fingerprint(config, data, model(3))) is True
    with pytest.raises(workdir_lib.WorkdirMismatch, match="model.digest"):
        workdir_lib.claim(workdir, workdir_lib.fingerprint(config, data, model(5)))


def test_a_run_recorded_before_model_structures_resumes(tmp_path):
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    workdir = str(tmp_path / "run")
    config = config_lib.to_dict(config_lib.default_config())
    data = {"train": {"source": "synthetic", "examples": 8}}
    workdir_lib.claim(workdir, workdir_lib.fingerprint(config, data))  # no "model" recorded
    assert workdir_lib.claim(workdir, workdir_lib.fingerprint(config, data, model)) is True


def test_a_refused_run_leaves_the_work_dir_free(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "data_issues.tsv").write_text("split\tfile\taction\treason\n")
    assert workdir_lib.is_unclaimed(str(workdir))
    assert workdir_lib.claim(str(workdir), _fingerprint()) is False


def test_predict_never_replaces_a_file_it_did_not_draw(tmp_path, tiny_model_path):
    photo = tmp_path / "a.png"
    fixtures.write_image(str(photo), fixtures.make_image(40, 50, []))
    drawn = tmp_path / "drawn"
    drawn.mkdir()
    (drawn / "a.png.pred.png").write_bytes(b"precious user file")
    with pytest.raises(image_files.DrawDirError, match="did not write"):
        image_files.run(tiny_model_path, [str(photo)], draw_dir=str(drawn), out=io.StringIO())
    assert (drawn / "a.png.pred.png").read_bytes() == b"precious user file"
    (drawn / "a.png.pred.png").unlink()
    out = io.StringIO()
    for _ in range(2):  # its own drawing is replaced
        assert (
            image_files.run(
                tiny_model_path, [str(photo)], draw_dir=str(drawn), out=out, refine=False
            )
            == 0
        )


def test_experiment_names_and_field_groups_give_clear_errors():
    from localizer import train

    for name in ("common", "__init__", "../x", "nope.sub", "nope"):
        with pytest.raises(fields.ConfigError, match="no experiment"):
            train.load_experiment(name)
    with pytest.raises(ValueError, match="group of fields"):
        config_lib.apply_overrides(config_lib.default_config(), ["model=1"])


def test_file_caches_are_per_split_and_per_data(tmp_path):
    from pipelines import input_pipeline

    root = fixtures.make_voc_folder(tmp_path / "voc")
    source = pipelines.get_source("voc_dir", data_dir=root)
    train, val = (input_pipeline.cache_file("c", source, split) for split in ("train", "val"))
    assert train != val and train.startswith("c.train.")


def test_outputs_never_go_inside_the_dataset(tmp_path):
    from pipelines import cli, show

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    with pytest.raises(ValueError, match="inside the dataset"):
        report.check_report_dir(str(data / "report"), str(data))
    with pytest.raises(cli.UserError, match="inside the dataset"):
        show.check_output(str(data / "images" / "grid.png"), str(data))
    show.check_output(str(tmp_path / "grid.png"), str(data))


# --- exports whose files do not fit together ------------------------------------------------------


def _export_with_metadata(root, text):
    """A version folder `<root>/1` holding only `assets/metadata.json` with `text` and
    `assets.extra/`."""
    from localizer.serving import signatures

    version_dir = root / "1"
    (version_dir / "assets").mkdir(parents=True)
    (version_dir / signatures.ASSETS_EXTRA).mkdir()
    (version_dir / "assets" / signatures.METADATA_ASSET).write_text(text)
    return version_dir


def stand_in_saved_model(path, num_classes, image_size=32):
    """A SavedModel at `path` with the localizer's `predict_images` signature for `num_classes`
    classes,
    from a two-matmul module (no Keras model): about a second.
    """
    import tensorflow as tf

    class Module(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None, image_size, image_size, 3], tf.uint8, name="images")
            ]
        )
        def predict_images(self, images):
            means = tf.reduce_mean(tf.cast(images, tf.float32), axis=[1, 2]) / 255.0
            logits = tf.matmul(means, tf.ones([3, num_classes]))
            return {
                "class_logits": logits,
                "probabilities": tf.nn.softmax(logits),
                "box": tf.sigmoid(tf.matmul(means, tf.ones([3, 4]))),
                "box_quality": tf.sigmoid(means[:, 0]),
            }

    module = Module()
    tf.saved_model.save(module, str(path), signatures={"predict_images": module.predict_images})
    return str(path)


def foreign_tflite(path, num_classes, image_size=32):
    """A TFLite file with the localizer's `predict_images` signature for `num_classes` classes (as
    another
    export's file would have).
    """
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as saved:
        stand_in_saved_model(saved, num_classes, image_size)
        content = tf.lite.TFLiteConverter.from_saved_model(
            saved, signature_keys=["predict_images"]
        ).convert()
    with open(path, "wb") as f:
        f.write(content)
    return str(path)


METADATA = {"class_names": list(fixtures.CLASSES), "resize_mode": "letterbox", "image_size": 32}


@pytest.mark.parametrize(
    "text, fragment",
    [
        (
            json.dumps({k: v for k, v in METADATA.items() if k != "image_size"}),
            "lacks the field 'image_size'",
        ),
        (json.dumps({"resize_mode": "stretch"}), "lacks the fields 'class_names', 'image_size'"),
        ('{"class_names": ["cat"', "is not JSON"),
        ("[1, 2]", "is not a JSON object"),
        (json.dumps({**METADATA, "image_size": "32"}), "image_size='32', not a positive integer"),
        (json.dumps({**METADATA, "resize_mode": "crop"}), "resize_mode='crop'"),
        (json.dumps({**METADATA, "class_names": []}), "not a list of names"),
    ],
)
def test_export_metadata_without_a_field_is_one_line(tmp_path, text, fragment):
    """A reader of an export names metadata.json, what is wrong with it, and to export again: no
    KeyError."""
    from localizer.serving import signatures

    version_dir = _export_with_metadata(tmp_path, text)
    with pytest.raises(signatures.MetadataError, match=fragment) as error:
        signatures.load_metadata(str(version_dir))
    message = str(error.value)
    assert "\n" not in message and signatures.metadata_path(str(version_dir)) in message
    assert "export the model again" in message
    tflite_file = foreign_tflite(
        version_dir / "assets.extra" / "localizer.tflite", len(fixtures.CLASSES)
    )
    stand_in_saved_model(version_dir, len(fixtures.CLASSES))
    for model in (
        tflite_file,
        str(version_dir),
    ):  # evaluate --model=<the .tflite file> or <the export>
        with pytest.raises(signatures.MetadataError, match=fragment):
            Predictor(model)


def test_a_foreign_tflite_file_in_an_export_is_refused_at_once(tmp_path):
    """Another model's file (other class count) is named when loaded, not as a TF stack on the first
    batch."""
    version_dir = _export_with_metadata(tmp_path, json.dumps(METADATA))
    own = foreign_tflite(version_dir / "assets.extra" / "localizer.tflite", len(fixtures.CLASSES))
    predictor = Predictor(own)  # the same signature and class count: accepted
    boxes, probabilities, _, quality = predictor.predict_inputs(np.zeros([2, 32, 32, 3], np.uint8))
    assert boxes.shape == (2, 4) and probabilities.shape == (2, 3) and quality.shape == (2,)
    foreign = foreign_tflite(version_dir / "assets.extra" / "localizer_int8.tflite", 5)
    fragment = r"class_logits for 5 classes, its export's metadata.json names 3"
    with pytest.raises(ModelFileError, match=fragment) as error:
        Predictor(foreign)
    assert "\n" not in str(error.value) and "export it again" in str(error.value)
    other_size = foreign_tflite(tmp_path / "1" / "assets.extra" / "other.tflite", 3, image_size=48)
    with pytest.raises(
        ModelFileError, match=r"takes images of shape \[48, 48, 3\], its export 32 px"
    ):
        Predictor(other_size)


# --- a full disk ----------------------------------------------------------------------------------


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


@pytest.mark.parametrize("writer", ["config", "issues"])
def test_training_on_a_full_disk_names_the_path_and_says_to_free_space(
    tmp_path, monkeypatch, writer
):
    """Whichever training writer meets the full disk: the file (or the work dir) named, and how to
    resume."""
    from localizer.training import data as data_lib
    from localizer.training import trainer
    from pipelines import files
    from tests.test_train import tiny_config

    workdir = str(tmp_path / "work")
    if writer == "config":  # a work dir file, written atomically
        write = files.write_json_atomically
        monkeypatch.setattr(
            files,
            "write_json_atomically",
            lambda path, *a, **k: (
                files.atomic_write(path, _disk_full)
                if path.endswith("config.json")
                else write(path, *a, **k)
            ),
        )
        named = os.path.join(workdir, "config.json")
    else:  # a writer that names no file
        monkeypatch.setattr(data_lib, "write_issues", _disk_full)
        named = workdir
    with pytest.raises(files.DiskFullError) as error:
        trainer.train_and_evaluate(tiny_config(**{"data.max_examples": "16"}), workdir)
    message = str(error.value)
    assert f"writing {named};" in message and "free space there" in message and "resumes" in message


# --- repeated inputs, output folders that are files
# ------------------------------------------------


def test_a_file_given_three_times_is_predicted_and_drawn_once(
    tmp_path, tiny_model_path, monkeypatch
):
    photos = tmp_path / "photos"
    photos.mkdir()
    fixtures.write_image(
        str(photos / "a.png"), fixtures.make_image(40, 50, [("cat", (5, 5, 30, 30))])
    )
    (tmp_path / "other").mkdir()
    fixtures.write_image(str(tmp_path / "other" / "a.png"), fixtures.make_image(40, 50, []))
    monkeypatch.chdir(tmp_path)
    inputs = ["photos/a.png", "./photos/a.png", str(photos), "other/a.png", "photos/a.png"]
    listed = [
        "photos/a.png",
        "./photos/a.png",
        str(photos / "a.png"),
        "other/a.png",
        "photos/a.png",
    ]
    assert image_files.drawing_names(listed) == {
        "photos/a.png": "a.png.pred.png",
        "other/a.png": "a.png-2.pred.png",
    }
    out = io.StringIO()
    failures = image_files.run(
        tiny_model_path, inputs, draw_dir=str(tmp_path / "drawn"), out=out, refine=False
    )
    files = [json.loads(line)["file"] for line in out.getvalue().splitlines()]
    assert failures == 0 and files == ["photos/a.png", "other/a.png"]
    assert sorted(os.listdir(tmp_path / "drawn")) == ["a.png-2.pred.png", "a.png.pred.png"]


def test_an_output_folder_that_is_a_file_is_named_so(tmp_path):
    from pipelines import files

    blocker = tmp_path / "drawn"
    blocker.write_text("the user's notes")
    with pytest.raises(OSError, match=f"--draw_dir {blocker} is a file, not a folder"):
        image_files.check_draw_dir(str(blocker), [str(tmp_path / "photos")])
    with pytest.raises(
        OSError, match=f"report dir {blocker} is a file, not a folder; choose another"
    ):
        files.check_writable_folder(str(blocker), "report dir", todo="choose another --report_dir")
    assert blocker.read_text() == "the user's notes"


def test_reports_on_exports_go_to_the_reports_area_not_into_the_export(tmp_path, monkeypatch):
    """TF Serving watches the export's base path: evaluate's default report dir stays out of it."""
    from localizer import evaluate
    from pipelines import files

    monkeypatch.chdir(tmp_path)
    version_dir = _export_with_metadata(tmp_path / "models" / "localizer", json.dumps(METADATA))
    (version_dir / "saved_model.pb").write_bytes(b"")
    (version_dir / "assets.extra" / "localizer_int8.tflite").write_bytes(b"TFL3")
    expected = {
        "models/localizer/1": os.path.join("reports", "localizer-1-val"),
        "models/localizer/1/": os.path.join("reports", "localizer-1-val"),
        str(version_dir / "assets.extra" / "localizer_int8.tflite"): os.path.join(
            "reports", "localizer-1-localizer_int8-val"
        ),
    }
    for model, report_dir in expected.items():
        assert evaluate.default_report_dir(model, "val") == report_dir
        assert not files.inside(report_dir, tmp_path / "models")
    keras_model = os.path.join(
        "work", "run", "best.keras"
    )  # a .keras file's report stays in its work dir
    assert evaluate.default_report_dir(keras_model, "val") == str(
        tmp_path / "work" / "run" / "report-val"
    )


# --- predict: names kept whole, broken links listed, folders without images named (issue 19)
# ------------


def test_predict_keeps_a_file_name_with_a_line_break_whole_in_its_error(tmp_path, tiny_model_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    odd = folder / "new\nline.jpg"
    odd.write_bytes(b"not an image at all")
    missing = tmp_path / "gone\n\u2028away.png"
    assert (
        image_files._one_line(OSError(2, "No such file or directory", str(missing)))
        == f"{tmp_path}/gone\\n\\u2028away.png: No such file or directory"
    )
    out = io.StringIO()
    failures = image_files.run(tiny_model_path, [str(folder), str(missing)], out=out, refine=False)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert failures == 2 and [line["file"] for line in lines] == [str(odd), str(missing)]
    assert lines[0]["error"].startswith(f"{folder}/new\\nline.jpg: not a JPEG"), lines[0]
    assert lines[1]["error"] == f"{tmp_path}/gone\\n\\u2028away.png: no such file", lines[1]


def test_predict_lists_broken_links_in_a_folder_each_with_its_line(tmp_path, tiny_model_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    fixtures.write_image(
        str(folder / "a_good.png"), fixtures.make_image(40, 50, [("cat", (5, 5, 30, 30))])
    )
    os.symlink(tmp_path / "moved.jpg", folder / "b_dangling.jpg")
    os.symlink(
        tmp_path / "moved.jpg", folder / "c_dangling_too.jpg"
    )  # the same missing target: its own line
    os.symlink(folder / "d_loop_b.png", folder / "d_loop_a.png")
    os.symlink(folder / "d_loop_a.png", folder / "d_loop_b.png")
    (folder / "e_album.jpg").mkdir()  # a folder named like an image is no input
    out = io.StringIO()
    failures = image_files.run(
        tiny_model_path, [str(folder), str(folder / "b_dangling.jpg")], out=out, refine=False
    )
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [os.path.basename(line["file"]) for line in lines] == [
        "a_good.png",
        "b_dangling.jpg",
        "c_dangling_too.jpg",
        "d_loop_a.png",
        "d_loop_b.png",
    ]
    assert failures == 4 and "class" in lines[0]
    for line in lines[1:3]:
        assert line["error"] == (
            f"{line['file']}: no such file (broken link to {tmp_path}/moved.jpg, which does not "
            f"exist); fix or remove the link"
        )
    for line in lines[3:]:
        assert line["error"].startswith(
            f"{line['file']}: no such file (broken link: a loop of links"
        ), line


def test_predict_on_folders_without_image_files_says_so(tmp_path, tiny_model_path, capsys):
    empty = tmp_path / "scans"
    empty.mkdir()
    (empty / "notes.txt").write_text("no image here")
    (empty / "inner").mkdir()
    fixtures.write_image(
        str(empty / "inner" / "deep.png"), fixtures.make_image(40, 50, [])
    )  # not searched
    also_empty = tmp_path / "nothing"
    also_empty.mkdir()
    out = io.StringIO()
    with pytest.raises(image_files.NoImagesError) as error:
        image_files.run(tiny_model_path, [str(empty), str(also_empty)], out=out)
    assert str(error.value) == (
        f"folders {empty}, {also_empty} hold no image file (predict looks for .jpg .jpeg .jpe .jfif .png .gif .bmp "
        f".webp in any letter case; subfolders are not searched); give image files, or a folder that holds them"
    )
    assert out.getvalue() == ""
    photos = tmp_path / "photos"
    photos.mkdir()
    fixtures.write_image(
        str(photos / "a.PNG"), fixtures.make_image(40, 50, [("cat", (5, 5, 30, 30))])
    )
    assert image_files.run(tiny_model_path, [str(empty), str(photos)], out=out, refine=False) == 0
    assert [json.loads(line)["file"] for line in out.getvalue().splitlines()] == [
        str(photos / "a.PNG")
    ]
    assert capsys.readouterr().err.splitlines() == [
        f"warning: folder {empty} holds no image file (predict looks for .jpg .jpeg .jpe .jfif .png .gif .bmp .webp "
        f"in any letter case; subfolders are not searched); nothing predicted from it"
    ]


# --- dataset errors say what to do (issue 19)
# -------------------------------------------------------------


def test_blank_labels_file_and_unusable_splits_say_what_to_check(tmp_path):
    root = fixtures.make_voc_folder(tmp_path / "voc")
    labels = os.path.join(root, "labels.txt")
    with open(labels, "w") as f:
        f.write("\n  \n")
    with pytest.raises(
        DatasetError,
        match=r"labels.txt: no class names \(the file is empty or blank\); write one "
        r"class name per line, or remove the file",
    ):
        pipelines.get_source("voc_dir", data_dir=root).class_names
    os.remove(labels)
    with open(os.path.join(root, "ImageSets", "Main", "empty.txt"), "w"):
        pass
    for name in os.listdir(os.path.join(root, "JPEGImages")):
        os.remove(os.path.join(root, "JPEGImages", name))
    source = pipelines.get_source("voc_dir", data_dir=root)
    with pytest.raises(DatasetError) as error:
        source.num_examples("empty")
    assert str(error.value) == (
        f"{root} split 'empty': no usable example (kept 0): the split lists no example; "
        f"check that its list or annotation file in {root} names its examples, and that "
        f"'empty' is the split you mean."
    )
    with pytest.raises(DatasetError) as error:
        source.num_examples("train")
    message = str(error.value)
    assert re.fullmatch(
        rf"{re.escape(root)} split 'train': no usable example \(kept 0, skipped \d+ \(missing image "
        rf"file\); first: \S+: missing image file\); check that the split's list names examples "
        rf"whose annotations and images exist in {re.escape(root)} and are readable \(the "
        rf"voc_dir\[train\] log line above counts the reasons by kind\)\.",
        message,
    ), message

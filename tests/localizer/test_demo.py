"""The demo page's answers without a browser: the page's function called as Gradio calls it.

Its record is predict's (same builder, same values), from serving_default for an export; a photo
that is not an image, damaged or too large is a message, and the next photo still works. The
browser test (`test_demo_browser.py`) drives the same page in chromium.
"""

import json
import os
import socket
import sys

import numpy as np
import pytest

from localizer.inference import demo_model, demo_page, image_files
from localizer.inference.predictor import Predictor
from localizer.ops import statistics
from pipelines import image_header
from tests import fixtures
from tests.pipelines.test_orientation import UPRIGHT_BOX, stored_pixels, tagged_jpeg

TOLERANCE = 1e-4
"""Score, probabilities and box: serving_default against predict on the same export (the
export's verification budget)."""


def tagged_photo(folder, name="phone.jpg", orientation=6):
    """A 48x64 (upright) photo stored turned and tagged with EXIF `orientation`, as phones do."""
    upright = fixtures.make_image(48, 64, [UPRIGHT_BOX])
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(tagged_jpeg(stored_pixels(upright, orientation), orientation))
    return path


def upload(path, name=None):
    """What Gradio hands the page's function for an upload with `preprocess=False`."""
    return {"path": str(path), "orig_name": name or os.path.basename(path), "size": 1}


def assert_records_agree(page, reference, tolerance=0.0):
    """Same fields and classes; numbers within `tolerance` (0: equal)."""
    assert list(page) == list(reference)
    for key in ("class", "image_size", "unsure", "warning"):
        assert page.get(key) == reference.get(key), key
    assert [e["class"] for e in page["top5"]] == [e["class"] for e in reference["top5"]]
    numbers = [
        (page["score"], reference["score"]),
        *zip(page["box"], reference["box"], strict=True),
        *((a["score"], b["score"]) for a, b in zip(page["top5"], reference["top5"], strict=True)),
    ]
    if "box_quality" in reference:
        numbers.append((page["box_quality"], reference["box_quality"]))
    assert max(abs(a - b) for a, b in numbers) <= tolerance, (page, reference)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`(Keras model, version dir)`: the random tiny model, exported as `localizer.export` does
    by default (serving_default refined)."""
    from localizer.serving import export_lib

    model = fixtures.tiny_model(randomize=True)
    version_dir = export_lib.export_saved_model(
        model,
        str(tmp_path_factory.mktemp("export")),
        refine=True,
        checks=export_lib.ExportChecks(verify=False),
    )
    return model, version_dir


def test_keras_model_answers_with_predict_s_record_upright(random_tiny_model_path, tmp_path):
    photo = tagged_photo(tmp_path)
    model = demo_model.DemoModel(random_tiny_model_path)
    got = demo_page.answer(model, upload(photo, "IMG_0001.jpg"), str(tmp_path))
    reference, _ = image_files.predict_file(
        Predictor(random_tiny_model_path),
        photo,
        refine=True,
        min_box_quality=statistics.LOC_IOU_THRESHOLD,
    )
    record = json.loads(got.record)
    assert record == {**reference, "file": "IMG_0001.jpg"}  # the same path: equal
    assert record["image_size"] == [48, 64]  # upright (stored 64x48, tagged 6)
    with open(got.record_file, encoding="utf-8") as f:
        assert f.read() == got.record + "\n"
    assert os.path.basename(got.record_file) == "IMG_0001.jpg.pred.json"
    from PIL import Image

    with Image.open(got.drawing) as drawing:
        assert drawing.size == (64, 48)  # drawn upright, at the photo's size
    assert got.class_name.startswith(record["class"])
    assert got.top5 == {e["class"]: e["score"] for e in record["top5"]}
    assert got.box_quality.startswith(f"{record['box_quality']:.4f}")
    assert ("UNSURE" in got.box_quality) == record.get("unsure", False)
    assert got.message == ""


def test_export_answers_through_serving_default_as_predict_does(exported, tmp_path):
    keras_model, version_dir = exported
    model = demo_model.DemoModel(version_dir)
    assert model.serving is not None and "serving_default" in model.runs
    # predict on the .keras file; the export's own check holds serving_default to it (1e-4).
    reference_predictor = Predictor.from_model(keras_model)
    for orientation in (1, 6):
        photo = tagged_photo(tmp_path, f"o{orientation}.jpg", orientation)
        got = demo_page.answer(model, upload(photo), str(tmp_path))
        reference, _ = image_files.predict_file(
            reference_predictor, photo, refine=True, min_box_quality=model.min_box_quality
        )
        assert json.loads(got.record)["file"] == f"o{orientation}.jpg"
        assert_records_agree(
            json.loads(got.record), {**reference, "file": f"o{orientation}.jpg"}, TOLERANCE
        )


@pytest.mark.slow  # a second load of the export (predict_images)
def test_export_answers_as_predict_on_the_export(exported, tmp_path):
    _, version_dir = exported
    model, reference_predictor = demo_model.DemoModel(version_dir), Predictor(version_dir)
    for orientation in (3, 8):
        photo = tagged_photo(tmp_path, f"o{orientation}.jpg", orientation)
        got = demo_page.answer(model, upload(photo), str(tmp_path))
        reference, _ = image_files.predict_file(
            reference_predictor, photo, refine=True, min_box_quality=model.min_box_quality
        )
        assert_records_agree(
            json.loads(got.record), {**reference, "file": f"o{orientation}.jpg"}, TOLERANCE
        )


def test_bad_photos_are_messages_and_the_next_photo_works(random_tiny_model_path, tmp_path):
    model = demo_model.DemoModel(random_tiny_model_path)
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(fixtures.png_bomb())
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(open(tagged_photo(tmp_path), "rb").read()[:400])
    cases = {
        text: "not a JPEG, PNG, GIF, BMP or WebP image",
        bomb: f"over the limit of {image_header.MAX_IMAGE_PIXELS}",
        cut: "truncated",
        tmp_path / "gone.jpg": "no such file",
        tmp_path / "photo.heic": ".heic images are not supported",
    }
    for path, words in cases.items():
        got = demo_page.answer(model, upload(path), str(tmp_path))
        assert got.message.startswith("**Cannot use this photo.**") and words in got.message, (
            got.message
        )
        assert str(tmp_path) not in got.message  # the photo's name, not the cache path
        assert got.record == "" and got.drawing is None and got.top5 is None
    good = demo_page.answer(model, upload(tagged_photo(tmp_path)), str(tmp_path))
    assert json.loads(good.record)["file"] == "phone.jpg"
    assert demo_page.answer(model, None, str(tmp_path)) == demo_page.Answer()  # cleared
    # A name the file system takes, but not with ".pred.png" after it: the files get names that fit.
    long = demo_page.answer(
        model, upload(tagged_photo(tmp_path), "y" * 240 + ".jpg"), str(tmp_path)
    )
    assert json.loads(long.record)["file"] == "y" * 240 + ".jpg"
    assert os.path.isfile(long.drawing) and os.path.isfile(long.record_file)


def test_a_bug_is_a_line_on_the_page_and_a_traceback_in_the_terminal(tmp_path, capsys):
    class Broken:
        def predict(self, path, name):
            raise KeyError("bug")

    got = demo_page.answer(Broken(), upload(tmp_path / "x.jpg"), str(tmp_path))
    assert "a bug" in got.message and got.record == ""
    assert "Traceback" in capsys.readouterr().err


def test_unsure_threshold_defaults_to_the_localization_criterion(tmp_path):
    assert demo_model.DEFAULT_MIN_BOX_QUALITY == statistics.LOC_IOU_THRESHOLD
    without_head = str(tmp_path / "no_quality.keras")
    fixtures.tiny_model(box_quality=False).save(without_head)
    model = demo_model.DemoModel(without_head)
    assert model.min_box_quality is None  # nothing to mark
    got = demo_page.answer(model, upload(tagged_photo(tmp_path)), str(tmp_path))
    assert "box_quality" not in json.loads(got.record) and "no box-quality head" in got.box_quality
    with pytest.raises(image_files.BoxQualityThresholdError, match="no box_quality output"):
        demo_model.DemoModel(without_head, min_box_quality=0.3)


def test_given_threshold_and_its_range(random_tiny_model_path):
    assert demo_model.DemoModel(random_tiny_model_path, 0.2).min_box_quality == 0.2
    with pytest.raises(image_files.BoxQualityThresholdError, match=r"not in \[0, 1\]"):
        demo_model.DemoModel(random_tiny_model_path, 1.5)


def test_examples_are_the_folder_s_image_files(tmp_path):
    with pytest.raises(demo_page.ExamplesError, match="is not a folder"):
        demo_page.example_photos(str(tmp_path / "missing"))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.jpg").mkdir()
    with pytest.raises(demo_page.ExamplesError, match="holds no image file"):
        demo_page.example_photos(str(tmp_path))
    tagged_photo(tmp_path, "b.JPG")
    tagged_photo(tmp_path, "a.png")
    (tmp_path / "c.heic").write_bytes(b"x")  # not decoded here: not offered
    assert [os.path.basename(p) for p in demo_page.example_photos(str(tmp_path))] == [
        "a.png",
        "b.JPG",
    ]


def test_a_taken_port_or_foreign_host_is_refused_before_the_model_loads():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(demo_page.AddressError, match=f"--port={port} .*another --port"):
            demo_page.check_address("127.0.0.1", port)
    with pytest.raises(demo_page.AddressError, match="--host=192.0.2.1"):
        demo_page.check_address("192.0.2.1", 7860)  # TEST-NET-1: never this machine
    with pytest.raises(demo_page.FlagValueError, match="--port=0"):
        demo_page.check_address("127.0.0.1", 0)


def test_missing_gradio_is_refused_before_anything_else(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    with pytest.raises(demo_page.GradioMissingError, match=r'pip install -e "\.\[demo\]"'):
        demo_page.run(str(tmp_path / "missing.keras"), examples_folder=str(tmp_path / "none"))


@pytest.mark.slow  # a command started (5 s); the test above holds the order in process
def test_missing_gradio_is_one_error_line_of_the_command(tmp_path):
    script = (
        "import runpy, sys; sys.modules['gradio'] = None; "
        f"sys.argv = ['demo', '--model={tmp_path}/missing.keras']; "
        "runpy.run_module('localizer.demo', run_name='__main__')"
    )
    result = fixtures.run_python("-c", script)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert len(lines) == 1 and 'pip install -e ".[demo]"' in lines[0], result.stderr[-2000:]


def test_the_page_builds_with_examples(random_tiny_model_path, tmp_path):
    gradio = demo_page.import_gradio()
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    model = demo_model.DemoModel(random_tiny_model_path)
    page = demo_page.build_page(gradio, model, str(tmp_path), [tagged_photo(tmp_path)])
    ids = {block.elem_id for block in page.blocks.values()}
    assert {"photo", "drawing", "message", "class", "box_quality", "top5", "record"} <= ids
    assert np.isclose(model.min_box_quality, statistics.LOC_IOU_THRESHOLD)

"""The SavedModel export for TF Serving (`localizer.export`).

One tiny model is exported once, by the command line, for the module; the
checks that need a clean interpreter (loading the export, `saved_model_cli`,
a killed export) run in subprocesses."""

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest
import tensorflow as tf

import pipelines
from localizer import model as model_lib
from localizer.inference import evaluation
from localizer.inference.predictor import ModelFileError, Predictor
from localizer.model.config import POOLED
from localizer.serving import calibration, export_lib, graph, signatures, tflite, verify, versions
from pipelines import decode, render
from tests import fixtures

REPO_ROOT = fixtures.REPO_ROOT


ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def sample_images():
    """A landscape JPEG and a portrait PNG (different letterboxes), as encoded bytes."""
    landscape = fixtures.make_image(48, 90, [("cat", (10, 5, 50, 40))], seed=1)
    portrait = fixtures.make_image(70, 30, [("dog", (2, 30, 28, 66))], seed=2)
    return [tf.io.encode_jpeg(landscape, quality=95).numpy(), tf.io.encode_png(portrait).numpy()]


def reference(model, encoded, refine=False):
    """What serving_default must return: the export's own independent reference, computed
    eagerly."""
    return verify.reference_predictions(model, encoded, refine)


def input_frame_boxes(model, encoded):
    """The model's boxes in its letterboxed input frame, before they are mapped back to the
    photo."""
    metadata = model_lib.model_metadata(model)
    images = [
        render.resize_image(
            decode.decode_image_bytes(tf.constant(data)),
            metadata["image_size"],
            metadata["resize_mode"],
        )[0]
        for data in encoded
    ]
    return model(tf.stack(images), training=False)["box"].numpy()


def check_against_reference(result, expected):
    np.testing.assert_array_equal(np.asarray(result["class_id"]), expected["class_id"])
    assert [_text(name) for name in result["class_name"]] == [
        fixtures.CLASSES[i] for i in expected["class_id"]
    ]
    np.testing.assert_allclose(np.asarray(result["box"]), expected["box"], atol=1e-4)
    np.testing.assert_allclose(
        np.asarray(result["probabilities"]), expected["probabilities"], atol=1e-5
    )
    np.testing.assert_allclose(np.asarray(result["score"]), expected["score"], atol=1e-5)
    assert ("box_quality" in result) == ("box_quality" in expected)
    if "box_quality" in expected:
        np.testing.assert_allclose(
            np.asarray(result["box_quality"]), expected["box_quality"], atol=1e-5
        )
        assert np.ptp(expected["box_quality"]) > 1e-4  # qualities that depend on the image


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def in_a_work_dir(root, model, voc):
    """Saves `model` as `<root>/model.keras` beside a run's config.json that names the VOC folder
    `voc`."""
    model_path = str(root / "model.keras")
    model.save(model_path)
    with open(root / "config.json", "w") as f:
        json.dump({"data": {"dataset": "voc_dir", "data_dir": voc}}, f)
    return model_path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`(model, export_dir, version_dir)`: the tiny model, in a work dir whose config.json names the
    VOC
    fixture, exported by the CLI (and so checked on the run's validation photos).
    """
    root = tmp_path_factory.mktemp("export")
    model = fixtures.tiny_model(randomize=True)
    model_path = in_a_work_dir(root, model, fixtures.make_voc_folder(root / "voc"))
    export_dir = str(root / "models" / "localizer")
    result = fixtures.run_python(
        "-m",
        "localizer.export",
        f"--model={model_path}",
        f"--export_dir={export_dir}",
        "--version=7",
        "--norefine",  # compared below with the one-look reference
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The two photos of the run's val split, and the two noise images, each checked with its figure.
    assert re.search(
        r"checked: serving_default against the Keras model on 4 images \(2 voc_dir val, 2 noise\): "
        r"largest differences score \S+, box \S+, probabilities \S+, box_quality \S+ "
        r"\(each at most 1e-04\)",
        result.stdout,
    ), result.stdout
    return model, export_dir, os.path.join(export_dir, "7")


def test_cli_writes_the_requested_version_with_assets(exported):
    model, export_dir, version_dir = exported
    assert sorted(os.listdir(export_dir)) == ["7"]  # no temporary folder left
    assets = os.path.join(version_dir, "assets")
    with open(os.path.join(assets, signatures.CLASS_NAMES_ASSET)) as f:
        assert f.read().splitlines() == list(fixtures.CLASSES)
    metadata = signatures.load_metadata(version_dir)
    assert metadata["class_names"] == list(fixtures.CLASSES)
    assert (metadata["resize_mode"], metadata["image_size"]) == ("letterbox", 32)


_CLIENT = r"""
import base64, json, sys
import tensorflow as tf

def rest_predict(signature, body):
    # What TF Serving's REST API does with a row-format body
    # (tensorflow_serving/util/json_tensor.cc): {"b64": ...} values of a string
    # input are base64-decoded; with one input, instances may be bare values;
    # the response is {"predictions": [{output: value, ...}, ...]}, strings as
    # JSON strings unless the output's name ends in "_bytes".
    request = json.loads(body)
    (name, spec), = signature.structured_input_signature[1].items()
    values = []
    for item in request["instances"]:
        if isinstance(item, dict) and set(item) != {"b64"}:
            item = item[name]
        values.append(base64.b64decode(item["b64"]) if isinstance(item, dict) else item)
    outputs = signature(**{name: tf.constant(values, dtype=spec.dtype)})
    def value(key, v):
        if isinstance(v, bytes):
            return {"b64": base64.b64encode(v).decode()} if key.endswith("_bytes") else v.decode()
        return v.tolist()
    predictions = [
        {k: value(k, v.numpy()[i]) for k, v in outputs.items()} for i in range(len(values))
    ]
    return json.dumps({"predictions": predictions})

version_dir, *paths = sys.argv[1:]
encoded = [open(p, "rb").read() for p in paths]
loaded = tf.saved_model.load(version_dir)
serve = loaded.signatures["serving_default"]
direct = {k: v.numpy().tolist() for k, v in serve(image_bytes=tf.constant(encoded)).items()}
direct["class_name"] = [n.decode() for n in direct["class_name"]]
body = json.dumps({"instances": [{"b64": base64.b64encode(e).decode()} for e in encoded]})
named = json.dumps(
    {"instances": [{"image_bytes": {"b64": base64.b64encode(e).decode()}} for e in encoded]}
)

# TF Serving's C++ loads SavedModels TF1-style (import the graph, restore the
# variables, run the init op) and runs signatures by tensor name: the same here.
with tf.Graph().as_default(), tf.compat.v1.Session() as session:
    meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], version_dir)
    signature = meta_graph.signature_def["serving_default"]
    fetched = session.run({k: v.name for k, v in signature.outputs.items()},
                          {signature.inputs["image_bytes"].name: encoded})
in_session = {k: v.tolist() for k, v in fetched.items()}
in_session["class_name"] = [n.decode() for n in in_session["class_name"]]

print("RESULT " + json.dumps({
    "direct": direct,
    "rest": json.loads(rest_predict(serve, body)),
    "rest_named": json.loads(rest_predict(serve, named)),
    "session": in_session,
}))
"""


def test_fresh_process_rest_body_and_tf1_session_match_keras(exported, tmp_path):
    model, _, version_dir = exported
    encoded = sample_images()
    paths = []
    for i, data in enumerate(encoded):
        paths.append(str(tmp_path / f"image{i}"))
        with open(paths[-1], "wb") as f:
            f.write(data)
    result = fixtures.run_python("-c", _CLIENT, version_dir, *paths)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    served = json.loads(line[len("RESULT ") :])
    expected = reference(model, encoded)
    check_against_reference(served["direct"], expected)
    check_against_reference(served["session"], expected)
    for key in ("rest", "rest_named"):
        predictions = served[key]["predictions"]
        assert len(predictions) == 2
        assert set(predictions[0]) == {
            "class_id",
            "class_name",
            "score",
            "box",
            "probabilities",
            "box_quality",
        }
        columns = {k: [p[k] for p in predictions] for k in predictions[0]}
        check_against_reference(columns, expected)
    # The box is in the original image's frame: letterboxing is undone.
    assert not np.allclose(served["direct"]["box"], input_frame_boxes(model, encoded), atol=1e-3)


def _saved_model_cli():
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    return (
        [cli]
        if os.path.exists(cli)
        else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    )


def test_saved_model_cli_lists_both_signatures(exported):
    _, _, version_dir = exported
    result = subprocess.run(
        [*_saved_model_cli(), "show", "--all", "--dir", version_dir],
        cwd=REPO_ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    blocks = dict(re.findall(r"signature_def\['(\w+)'\]:\n(.*?Method name is: [^\n]*)", text, re.S))
    serving = blocks["serving_default"]
    assert re.search(
        r"inputs\['image_bytes'\] tensor_info:\s+dtype: DT_STRING\s+shape: \(-1\)", serving
    )
    for name, dtype, shape in [
        ("class_id", "DT_INT32", r"\(-1\)"),
        ("class_name", "DT_STRING", r"\(-1\)"),
        ("score", "DT_FLOAT", r"\(-1\)"),
        ("box", "DT_FLOAT", r"\(-1, 4\)"),
        ("probabilities", "DT_FLOAT", r"\(-1, 3\)"),
        ("box_quality", "DT_FLOAT", r"\(-1\)"),
    ]:
        assert re.search(
            rf"outputs\['{name}'\] tensor_info:\s+dtype: {dtype}\s+shape: {shape}", serving
        ), name
    assert "tensorflow/serving/predict" in serving
    images = blocks["predict_images"]
    assert re.search(
        r"inputs\['images'\] tensor_info:\s+dtype: DT_UINT8\s+shape: \(-1, 32, 32, 3\)", images
    )
    for name, shape in [
        ("class_logits", r"\(-1, 3\)"),
        ("probabilities", r"\(-1, 3\)"),
        ("box", r"\(-1, 4\)"),
        ("box_quality", r"\(-1\)"),
    ]:
        assert re.search(
            rf"outputs\['{name}'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: {shape}", images
        ), name


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported[2])


def test_corrupt_image_is_invalid_argument_and_serving_goes_on(exported, loaded):
    model = exported[0]
    serve = loaded.signatures["serving_default"]
    good = sample_images()
    truncated_jpeg = good[0][: len(good[0]) // 3]
    for bad in (b"not an image", truncated_jpeg, b""):
        with pytest.raises(tf.errors.InvalidArgumentError):
            serve(image_bytes=tf.constant([good[1], bad]))
    check_against_reference(
        {k: v.numpy() for k, v in serve(image_bytes=tf.constant(good)).items()},
        reference(model, good),
    )


def test_empty_batch(loaded):
    outputs = loaded.signatures["serving_default"](image_bytes=tf.zeros([0], tf.string))
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        "class_id": (0,),
        "class_name": (0,),
        "score": (0,),
        "box": (0, 4),
        "probabilities": (0, 3),
        "box_quality": (0,),
    }
    raw = loaded.signatures["predict_images"](images=tf.zeros([0, 32, 32, 3], tf.uint8))
    assert tuple(raw["box"].shape) == (0, 4) and tuple(raw["class_logits"].shape) == (0, 3)
    assert tuple(raw["box_quality"].shape) == (0,)


def test_predict_images_gives_input_frame_outputs(exported, loaded):
    model = exported[0]
    encoded = sample_images()
    images = tf.stack(
        [
            render.resize_image(decode.decode_image_bytes(tf.constant(d)), 32, "letterbox")[0]
            for d in encoded
        ]
    )
    raw = loaded.signatures["predict_images"](images=images)
    keras_outputs = model(images, training=False)
    np.testing.assert_allclose(raw["box"].numpy(), keras_outputs["box"].numpy(), atol=1e-4)
    np.testing.assert_allclose(
        raw["class_logits"].numpy(), keras_outputs["class_logits"].numpy(), atol=1e-4
    )
    np.testing.assert_allclose(
        raw["probabilities"].numpy(),
        tf.nn.softmax(keras_outputs["class_logits"]).numpy(),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        raw["box_quality"].numpy(), keras_outputs["box_quality"].numpy(), atol=1e-5
    )


def _png_header(height, width):
    """A PNG that claims `height` x `width` pixels (header only, no image data)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + b"\0" * 4


def _jpeg_claiming(height, width):
    """A real small JPEG whose start-of-frame header is rewritten to `height` x `width`."""
    data = bytearray(tf.io.encode_jpeg(np.zeros((8, 8, 3), np.uint8)).numpy())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _pil(format, **options):
    def encode(array):
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format, **options)
        return buffer.getvalue()

    return encode


_gif, _bmp, _webp = _pil("GIF"), _pil("BMP"), _pil("WEBP", lossless=True)


def test_huge_images_refused_from_their_header(loaded):
    serve = loaded.signatures["serving_default"]
    assert tf.image.extract_jpeg_shape(_jpeg_claiming(20000, 20000)).numpy().tolist() == [
        20000,
        20000,
        3,
    ]
    for huge in (
        _png_header(20000, 20000),
        _jpeg_claiming(20000, 20000),
        fixtures.gif_bomb(),
        fixtures.webp_bomb(),
    ):
        with pytest.raises(tf.errors.InvalidArgumentError, match="Image too large"):
            serve(image_bytes=tf.constant([huge]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unsupported image"):
        serve(image_bytes=tf.constant([b"II*\0" + b"\0" * 64]))  # a TIFF header
    assert (
        graph.encoded_image_pixels(tf.constant(_png_header(3, 0x80000001))).numpy()
        == 3 * 0x80000001
    )
    # The same header fields as the file reader, for every format it reads.
    for width, height in ((30, 20), (7, 300)):
        for encode in (
            lambda a: tf.io.encode_png(a),
            lambda a: tf.io.encode_jpeg(a),
            _gif,
            _bmp,
            _webp,
        ):
            data = encode(np.zeros((height, width, 3), np.uint8))
            data = data.numpy() if hasattr(data, "numpy") else data
            assert graph.encoded_image_pixels(tf.constant(data)).numpy() == width * height


@pytest.mark.slow
def test_stretch_model_export(tmp_path):
    model = fixtures.tiny_model(randomize=True, resize_mode="stretch", seed=1)
    path = export_lib.export_saved_model(model, str(tmp_path))
    assert signatures.load_metadata(path)["resize_mode"] == "stretch"
    encoded = sample_images()
    outputs = tf.saved_model.load(path).signatures["serving_default"](
        image_bytes=tf.constant(encoded)
    )
    check_against_reference({k: v.numpy() for k, v in outputs.items()}, reference(model, encoded))


@pytest.mark.skipif(
    not hasattr(tf, "lite") or not hasattr(tf.lite, "Interpreter"),
    reason="this TensorFlow has no tf.lite (LiteRT moved out)",
)
# Slow: the fast suite checks the float TFLite file against the Keras model through evaluate
# (test_evaluate_on_a_tflite_file_matches_the_keras_model, on the int8 fixture's export).
@pytest.mark.slow
def test_tflite_export_matches_predict_images(tmp_path):
    model = fixtures.tiny_model(randomize=True)
    path = export_lib.export_saved_model(
        model, str(tmp_path), tflite=True, checks=export_lib.ExportChecks(verify=False)
    )
    content = open(os.path.join(path, signatures.TFLITE_FILE), "rb").read()
    images = tf.stack(
        [
            render.resize_image(decode.decode_image_bytes(tf.constant(d)), 32, "letterbox")[0]
            for d in sample_images()
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's notice that LiteRT replaces it
        interpreter = tf.lite.Interpreter(model_content=content)
    outputs = interpreter.get_signature_runner("predict_images")(images=images.numpy())
    expected = model(images, training=False)
    np.testing.assert_allclose(outputs["box"], expected["box"].numpy(), atol=1e-4)
    np.testing.assert_allclose(outputs["class_logits"], expected["class_logits"].numpy(), atol=1e-4)
    np.testing.assert_allclose(outputs["box_quality"], expected["box_quality"].numpy(), atol=1e-5)


@pytest.mark.slow
def test_versions_are_numbered_and_never_overwritten(tmp_path):
    model = fixtures.tiny_model(randomize=True)
    export_dir = str(tmp_path / "models")
    assert export_lib.export_saved_model(model, export_dir) == os.path.join(export_dir, "1")
    assert export_lib.export_saved_model(
        model, export_dir, checks=export_lib.ExportChecks(verify=False)
    ) == os.path.join(export_dir, "2")
    with pytest.raises(FileExistsError):
        export_lib.export_saved_model(
            model, export_dir, version=2, checks=export_lib.ExportChecks(verify=False)
        )
    assert export_lib.export_saved_model(
        model, export_dir, version=7, checks=export_lib.ExportChecks(verify=False)
    ) == os.path.join(export_dir, "7")
    assert export_lib.export_saved_model(
        model, export_dir, checks=export_lib.ExportChecks(verify=False)
    ) == os.path.join(export_dir, "8")
    with pytest.raises(ValueError):
        export_lib.export_saved_model(
            model, export_dir, version=0, checks=export_lib.ExportChecks(verify=False)
        )
    assert sorted(os.listdir(export_dir), key=int) == ["1", "2", "7", "8"]


def test_failed_save_leaves_no_version(tmp_path, monkeypatch):
    export_dir = str(tmp_path / "models")

    def failing_save(module, path, **kwargs):
        os.makedirs(os.path.join(path, "variables"))
        with open(os.path.join(path, "saved_model.pb"), "wb") as f:
            f.write(b"half written")
        raise OSError("disk full")

    monkeypatch.setattr(export_lib.tf.saved_model, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        export_lib.export_saved_model(fixtures.tiny_model(randomize=True), export_dir)
    assert os.listdir(export_dir) == []


_KILLED_EXPORT = r"""
import os, signal, sys
from localizer.serving import export_lib
from tests.fixtures import tiny_model

real_write = export_lib._write

def write_then_die(module, path):
    real_write(module, path)  # a complete SavedModel, not yet renamed to its number
    os.kill(os.getpid(), signal.SIGKILL)

export_lib._write = write_then_die
export_lib.export_saved_model(
    tiny_model(randomize=True), sys.argv[1], checks=export_lib.ExportChecks(verify=False)
)
"""


@pytest.mark.slow
def test_killed_export_leaves_no_version_and_next_export_cleans_up(tmp_path):
    export_dir = str(tmp_path / "models")
    result = fixtures.run_python("-c", _KILLED_EXPORT, export_dir)
    assert result.returncode == -signal.SIGKILL, result.stdout[-3000:] + result.stderr[-3000:]
    left = os.listdir(export_dir)
    assert len(left) == 1 and left[0].startswith(".tmp-"), left
    assert os.path.exists(os.path.join(export_dir, left[0], "saved_model.pb"))
    assert versions.existing_versions(export_dir) == []

    path = export_lib.export_saved_model(
        fixtures.tiny_model(randomize=True),
        export_dir,
        checks=export_lib.ExportChecks(verify=False),
    )
    assert path == os.path.join(export_dir, "1")
    assert os.listdir(export_dir) == ["1"]


# Slow: the refined serving graph against the eager reference stays fast in test_graph.py
# (boxes in the padding, refine on and off); `make real-check` runs it on a real model.
@pytest.mark.slow
def test_refining_export_matches_the_evaluation_path(tmp_path):
    """serving_default with --refine gives what `localizer.evaluate --refine` computes."""
    import keras

    from localizer.inference.predictor import Predictor

    keras.utils.set_random_seed(2)
    model = fixtures.tiny_model(randomize=True, seed=2)
    # Small boxes, so the zoom window is a real crop (a box near the image's
    # size would give a window equal to the whole image: nothing to test).
    cells = model.get_layer("heads").get_layer("box_cells")
    kernel, bias = cells.get_weights()
    cells.set_weights([kernel * 0.1, bias - 3.0])
    model_path = str(tmp_path / "model.keras")
    model.save(model_path)
    path = export_lib.export_saved_model(model, str(tmp_path / "models"), refine=True)
    assert signatures.load_metadata(path)["refine"] is True
    encoded = sample_images()
    served = tf.saved_model.load(path).signatures["serving_default"](
        image_bytes=tf.constant(encoded)
    )
    predictor = Predictor(model_path)
    for i, data in enumerate(encoded):
        box, probabilities, quality = predictor.predict_image(
            decode.decode_image_bytes(tf.constant(data)), refine=True
        )
        np.testing.assert_allclose(served["box"][i].numpy(), box, atol=1e-4)
        np.testing.assert_allclose(served["probabilities"][i].numpy(), probabilities, atol=1e-5)
        assert served["box_quality"][i].numpy() == pytest.approx(quality, abs=1e-5)
    # The second look changed the output (its probabilities are always averaged in).
    plain = reference(model, encoded)
    assert not np.allclose(served["probabilities"].numpy(), plain["probabilities"], atol=1e-3)


INT8_HEADS = {**fixtures.RANDOMIZED, "box_cells": 3.0, "centre_logits": 0.0}


def INT8_MODEL(seed=0):
    return fixtures.tiny_model(seed, randomize=INT8_HEADS, image_size=64)


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    """`(model, model path, version dir, VOC folder)`: the tiny model at 64 px exported by the CLI
    with
    --tflite and --tflite_int8, calibrated on the VOC fixture's train split.
    """
    root = tmp_path_factory.mktemp("int8")
    voc = fixtures.make_voc_folder(root / "voc")
    model = INT8_MODEL()
    model_path = str(root / "model.keras")
    model.save(model_path)
    export_dir = str(root / "models")
    result = fixtures.run_python(
        "-m",
        "localizer.export",
        f"--model={model_path}",
        f"--export_dir={export_dir}",
        "--tflite",
        "--tflite_int8",
        "--dataset=voc_dir",
        f"--data_dir={voc}",
        "--norefine",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "TFLite int8" in result.stdout
    # The int8 check's figures against their budgets, on the held-out training images and the
    # export's own.
    assert re.search(
        r"checked: int8 TFLite predict_images against the SavedModel on 10 images \(4 voc_dir "
        r"train, 2 noise, 4 int8 check sample of the calibration split\): median box difference "
        r"[0-9.]+ \(at most 0.05\), same top class on \d+% \(at least 75%\), median box_quality "
        r"difference [0-9.]+ \(at most 0.1\)",
        result.stdout,
    ), result.stdout
    assert "checked: TFLite predict_images against the SavedModel" in result.stdout
    # Nothing of the converter's C++ logging or the calibrator's deprecation notice.
    for noise in (
        "fully_quantize",
        "is deprecated",
        "XNNPACK",
        "Reading SavedModel",
        "tf_tfl_flatbuffer_helpers",
    ):
        assert noise not in result.stderr, result.stderr[-3000:]
    return model, model_path, os.path.join(export_dir, "1"), voc


def _voc_images(voc, size=64):
    source = pipelines.get_source("voc_dir", data_dir=voc)
    return calibration.rendered_images(
        source, "train", range(source.num_examples("train")), size, "letterbox"
    )


def test_int8_file_is_full_integer_with_the_float_files_signature(int8_export):
    _, _, version_dir, _ = int8_export
    int8 = open(os.path.join(version_dir, signatures.TFLITE_INT8_FILE), "rb").read()
    floats = open(os.path.join(version_dir, signatures.TFLITE_FILE), "rb").read()
    assert signatures.TFLITE_INT8_FILE.endswith("int8.tflite")
    assert tflite.float_ops(int8) == []
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(
        tflite.float_ops(floats)
    )  # the check sees float ops
    runners = [
        tflite.interpreter(content).get_signature_runner("predict_images")
        for content in (int8, floats)
    ]
    for runner in runners:
        assert runner.get_input_details()["images"]["dtype"] == np.uint8
        assert {name: d["dtype"] for name, d in runner.get_output_details().items()} == {
            "box": np.float32,
            "class_logits": np.float32,
            "probabilities": np.float32,
            "box_quality": np.float32,
        }
    # Inside, weights and activations are int8 (the interpreter's main graph holds the model's ops).
    types = {d["dtype"] for d in tflite.interpreter(int8).get_tensor_details()}
    assert np.int8 in types and np.uint8 in types


def test_int8_predictions_are_close_to_the_models(int8_export):
    model, _, version_dir, voc = int8_export
    images = _voc_images(voc)
    expected = {key: value.numpy() for key, value in model(images, training=False).items()}
    outputs = tflite.run_signature(
        open(os.path.join(version_dir, signatures.TFLITE_INT8_FILE), "rb").read(), images
    )
    box_error, same_class, quality_error = tflite.int8_disagreement(outputs, expected)
    assert box_error <= 0.02 and same_class >= 0.75, (box_error, same_class)
    assert quality_error <= 0.02, quality_error
    assert np.max(np.abs(outputs["box"] - expected["box"])) > 1e-5  # quantized: not the float model
    assert np.std(expected["box"], axis=0).max() > 0.01  # boxes that depend on the image


@pytest.mark.slow
def test_int8_check_refuses_a_file_far_from_the_saved_model(tmp_path, monkeypatch, int8_export):
    """An int8 file that does not compute what the SavedModel does (here: another model's) is
    refused."""
    _, _, _, voc = int8_export
    images = _voc_images(voc)
    other = export_lib.export_saved_model(
        fixtures.tiny_model(1, randomize=INT8_HEADS, image_size=64),
        str(tmp_path / "other"),
        checks=export_lib.ExportChecks(verify=False),
    )
    convert = tflite.convert_int8
    monkeypatch.setattr(
        tflite, "convert_int8", lambda _, calibration_images: convert(other, calibration_images)
    )
    with pytest.raises(
        verify.ExportVerificationError, match="int8 model is far from the SavedModel"
    ):
        export_lib.export_saved_model(
            INT8_MODEL(),
            str(tmp_path / "models"),
            checks=export_lib.ExportChecks(verify=False),
            tflite_int8=(images, images),
        )
    assert not os.path.exists(tmp_path / "models" / "1")


@pytest.mark.parametrize(
    "name, tolerance", [(signatures.TFLITE_FILE, 1e-4), (signatures.TFLITE_INT8_FILE, 0.05)]
)
def test_evaluate_on_a_tflite_file_matches_the_keras_model(int8_export, name, tolerance):
    _, model_path, version_dir, voc = int8_export
    source = pipelines.get_source("voc_dir", data_dir=voc)
    keras_summary = evaluation.evaluate(
        Predictor(model_path), source, "train", "flip", batch_size=2, refine=True
    ).summary
    summary = evaluation.evaluate(
        Predictor(os.path.join(version_dir, name)),
        source,
        "train",
        "flip",
        batch_size=2,
        refine=True,
    ).summary
    for key in ("mean_iou", "macro_mean_iou", "classification_accuracy"):
        assert summary[key] == pytest.approx(keras_summary[key], abs=tolerance), key
    # The box quality travels through the TFLite file too, and is ranked against the IoUs.
    assert "box_quality_auroc" in summary and set(summary) == set(keras_summary)
    assert summary["box_quality_risk_coverage"][0]["mean_iou"] == pytest.approx(
        summary["mean_iou"], abs=1e-6
    )


# Slow (a whole export of a second model); predict's handling of such a model stays fast
# (test_image_files.py).
@pytest.mark.slow
def test_a_model_without_box_quality_exports_verifies_and_predicts_as_before(tmp_path):
    """Models saved before the box-quality head: no box_quality anywhere, everything else as it
    was."""
    model = fixtures.tiny_model(randomize=True, box_quality=False)
    model_path = str(tmp_path / "old.keras")
    model.save(model_path)
    path = export_lib.export_saved_model(
        model, str(tmp_path / "models"), tflite=True
    )  # verifies both
    encoded = sample_images()
    served = tf.saved_model.load(path).signatures["serving_default"](
        image_bytes=tf.constant(encoded)
    )
    assert "box_quality" not in served
    check_against_reference({k: v.numpy() for k, v in served.items()}, reference(model, encoded))
    for predictor in (
        Predictor(model_path),
        Predictor(path),
        Predictor(os.path.join(path, signatures.TFLITE_FILE)),
    ):
        assert not predictor.has_box_quality
        box, probabilities, quality = predictor.predict_image(
            decode.decode_image_bytes(tf.constant(encoded[0]))
        )
        assert quality is None
        np.testing.assert_allclose(box, served["box"][0].numpy(), atol=1e-4)


def test_a_truncated_tflite_file_is_refused_not_a_crash(int8_export, tmp_path):
    """The C++ interpreter crashes the process on a truncated flatbuffer; the file is walked
    first."""
    _, _, version_dir, _ = int8_export
    copy = tmp_path / "1"
    shutil.copytree(version_dir, copy)
    for name in (signatures.TFLITE_FILE, signatures.TFLITE_INT8_FILE):
        content = (copy / name).read_bytes()
        tflite.check_flatbuffer(content)
        for cut in (3000, len(content) // 2, len(content) - 10):
            (copy / name).write_bytes(content[:cut])
            with pytest.raises(ModelFileError, match="damaged or truncated TFLite file"):
                Predictor(str(copy / name))


def padding_model(seed=0):
    """A tiny model whose box sits low in its input frame whatever the image (the pooled head's
    `box_raw`
    bias: y from 0.78 to 0.89), so on a landscape photo, letterboxed above and below, it lies wholly
    in
    the padding: what a trained model did on the export's noise check image.
    """
    # class and quality drawn: outputs that depend on the image
    model = fixtures.tiny_model(
        seed, randomize={"class_dense": 1.0, "quality_dense": 1.0}, attach=POOLED
    )
    box_raw = model.get_layer("heads").get_layer("box_raw")
    kernel, _ = box_raw.get_weights()
    box_raw.set_weights([np.zeros_like(kernel), np.array([2.0, 0.0, -2.0, -1.0], np.float32)])
    return model


@pytest.mark.slow
def test_a_model_boxing_the_padding_exports_and_passes_its_own_check(tmp_path):
    """End to end, as the trained model failed: the written SavedModel checked (both looks) on the
    generated
    images and the noise images, where the padding model's first box lies wholly in the padding.
    """
    checks = []
    path = export_lib.export_saved_model(
        padding_model(),
        str(tmp_path),
        refine=True,
        checks=export_lib.ExportChecks(on_check=checks.append),
    )
    assert signatures.load_metadata(path)["refine"] is True
    assert [check.what for check in checks] == ["serving_default against the Keras model"]
    assert (
        checks[0].images
        == f"{verify.CHECK_PHOTOS + 2} images ({verify.CHECK_PHOTOS} generated, 2 noise)"
    )


_EXPORT_WITH_A_FAULT = r"""
import errno, sys
import numpy as np
import tensorflow as tf
from localizer import export
from pipelines import cli
from localizer.serving import export_lib, verify

fault, *sys.argv[1:] = sys.argv[1:]
if fault == "verification":  # the Keras model's box on check image 1 differs from the export's
    reference = verify.reference_predictions
    def shifted(*args, **kwargs):
        expected = reference(*args, **kwargs)
        expected["box"][1] += 0.01
        return expected
    verify.reference_predictions = shifted
elif fault == "tf_disk_full":  # TensorFlow's writer reports ENOSPC as ResourceExhaustedError
    def save(module, path, **kwargs):
        raise tf.errors.ResourceExhaustedError(
            None, None,
            f"{path}/variables/variables.data-00000-of-00001.tempstate123; No space left on device",
        )
    export_lib.tf.saved_model.save = save
elif fault == "python_disk_full":  # a Python write (metadata, TFLite file) reports the errno alone
    def dump(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    export_lib.json.dump = dump
cli.run(export.main, export.define_flags)
"""


def _export_with_fault(fault, *flags):
    return fixtures.run_python("-c", _EXPORT_WITH_A_FAULT, fault, *flags)


def _one_error_line(result):
    """The `error:` line of a command that stopped at a user's problem (exit 2, no traceback)."""
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


@pytest.mark.slow  # a whole export through the CLI (12 s); the rule it guards is tested fast above
def test_a_failed_check_is_one_line_naming_what_by_how_much_and_where(
    random_tiny_model_path, tmp_path
):
    export_dir = tmp_path / "models"
    line = _one_error_line(
        _export_with_fault(
            "verification",
            f"--model={random_tiny_model_path}",
            f"--export_dir={export_dir}",
            "--norefine",
        )
    )
    assert re.fullmatch(
        r"error: export of \S+ failed its check: the exported serving_default's box differs from "
        r"the Keras model's by 1\.00e-02 \(limit 1e-04\) on check image generated 1; nothing was "
        r"published; this is a bug in the export: report it .*--debug",
        line,
    ), line
    assert versions.existing_versions(str(export_dir)) == [] and os.listdir(export_dir) == []


# Two whole exports (9 s each); training's full disk is tested fast (test_trainer.py).
@pytest.mark.slow
@pytest.mark.parametrize("fault", ["tf_disk_full", "python_disk_full"])
def test_a_full_disk_during_export_is_one_line_naming_the_export_dir(
    random_tiny_model_path, tmp_path, fault
):
    export_dir = tmp_path / "models"
    line = _one_error_line(
        _export_with_fault(fault, f"--model={random_tiny_model_path}", f"--export_dir={export_dir}")
    )
    assert line.startswith(
        f"error: no space left on the device writing {export_dir}; free space there, or pass "
        f"another --export_dir, and export again; nothing was published"
    ), line
    assert os.listdir(export_dir) == []


def test_an_export_dir_that_is_a_file_is_one_line(random_tiny_model_path, tmp_path):
    taken = tmp_path / "models"
    taken.write_text("notes")
    result = fixtures.run_python(
        "-m", "localizer.export", f"--model={random_tiny_model_path}", f"--export_dir={taken}"
    )
    assert (
        _one_error_line(result)
        == f"error: export dir {taken} is a file, not a folder; choose another --export_dir"
    )
    assert taken.read_text() == "notes"


def test_a_taken_version_says_to_choose_another_or_leave_it_out(tmp_path):
    export_dir = tmp_path / "models"
    for taken in ("1", "2"):
        (export_dir / taken).mkdir(parents=True)
    (export_dir / "3").write_text("notes")  # not a version, but publishing would skip its name too
    expected = (
        f"version 2 exists already: {export_dir}/2; choose another --version, or leave it out for "
        f"the next free one (4)"
    )
    with pytest.raises(FileExistsError) as error:  # refused before the model is even looked at
        export_lib.export_saved_model(None, str(export_dir), version=2)
    assert str(error.value) == expected
    temporary = export_dir / f"{versions.TEMPORARY_PREFIX}1-ab"
    (temporary / "assets").mkdir(parents=True)
    with pytest.raises(FileExistsError) as error:  # another export published the number meanwhile
        versions.publish(str(temporary), str(export_dir), 2)
    assert str(error.value) == expected

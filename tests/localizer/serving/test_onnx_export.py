"""The ONNX file of an export (`export --onnx`, `localizer.serving.onnx_export`) and running it
(`Predictor`, `evaluate --model=....onnx`).

One tiny model is exported once, in the process, for the module; the command lines run in
subprocesses only where the command itself is what is tested.
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import pipelines
from localizer.inference import evaluation
from localizer.inference.predictor import ModelFileError, Predictor
from localizer.serving import export_lib, onnx_export, signatures, verify
from localizer.serving.signatures import ONNX_BATCH, ONNX_FILE
from pipelines import decode
from pipelines.errors import UserError
from tests import fixtures

onnx = pytest.importorskip("onnx", reason="the extra .[onnx] is not installed")

OUTPUTS = ("class_logits", "probabilities", "box", "box_quality")


@pytest.fixture(scope="module")
def onnx_export_dir(tmp_path_factory):
    """`(model, model path, version dir, VOC folder, check figures)`: the tiny model exported with
    --onnx (the SavedModel's own check against Keras is test_export_lib's)."""
    root = tmp_path_factory.mktemp("onnx")
    voc = fixtures.make_voc_folder(root / "voc")
    model = fixtures.tiny_model(randomize=True)
    model_path = str(root / "model.keras")
    model.save(model_path)
    figures = []
    version_dir = export_lib.export_saved_model(
        model,
        str(root / "models"),
        onnx=True,
        checks=export_lib.ExportChecks(verify=False, on_check=figures.append),
    )
    return model, model_path, version_dir, voc, figures


def _onnx_path(version_dir):
    return os.path.join(version_dir, ONNX_FILE)


def test_the_file_has_predict_images_names_types_batch_and_metadata(onnx_export_dir):
    _, _, version_dir, _, figures = onnx_export_dir
    (check,) = figures
    assert check.line().startswith("ONNX predict_images against the SavedModel on 10 images")
    assert "(each at most 1e-04), batches of 0, 1 and 10 images" in check.line()
    proto = onnx.load(_onnx_path(version_dir))
    onnx.checker.check_model(proto)

    def described(value):
        kind = value.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in kind.shape.dim]
        return onnx.helper.tensor_dtype_to_np_dtype(kind.elem_type), dims

    assert {v.name: described(v) for v in proto.graph.input} == {
        "images": (np.uint8, [ONNX_BATCH, 32, 32, 3])
    }
    assert {v.name: described(v) for v in proto.graph.output} == {
        "class_logits": (np.float32, [ONNX_BATCH, 3]),
        "probabilities": (np.float32, [ONNX_BATCH, 3]),
        "box": (np.float32, [ONNX_BATCH, 4]),
        "box_quality": (np.float32, [ONNX_BATCH]),
    }
    properties = {p.key: p.value for p in proto.metadata_props}
    assert onnx_export.file_metadata(properties) == {
        field: signatures.load_metadata(version_dir)[field] for field in signatures.METADATA_FIELDS
    }
    assert properties["resize_mode"] == "letterbox" and properties["image_size"] == "32"


def test_the_file_computes_predict_images_on_batches_of_0_1_and_3(onnx_export_dir):
    _, _, version_dir, _, _ = onnx_export_dir
    predict_images = tf.saved_model.load(version_dir).signatures["predict_images"]
    session = onnx_export.session(_onnx_path(version_dir), threads=1)
    images = np.random.default_rng(0).integers(0, 256, [3, 32, 32, 3], np.uint8)
    for size in (0, 1, 3):
        outputs = onnx_export.run(session, images[:size])
        expected = {k: v.numpy() for k, v in predict_images(images=images[:size]).items()}
        assert set(outputs) == set(expected) == set(OUTPUTS)
        for key in OUTPUTS:
            assert outputs[key].dtype == np.float32 and outputs[key].shape == expected[key].shape
            np.testing.assert_allclose(outputs[key], expected[key], atol=verify.FLOAT_TOLERANCE)
    assert np.ptp(expected["box"], axis=0).max() > 1e-3  # boxes that depend on the image


def test_predictor_on_the_file_looks_as_on_the_saved_model(onnx_export_dir):
    _, _, version_dir, voc, _ = onnx_export_dir
    image = decode.decode_image_bytes(tf.io.read_file(os.path.join(voc, "JPEGImages", "img3.png")))
    saved, file = Predictor(version_dir), Predictor(_onnx_path(version_dir))
    assert file.metadata == {f: saved.metadata[f] for f in signatures.METADATA_FIELDS}
    assert file.has_box_quality
    for tta, refine in (("none", False), ("flip", True)):
        expected = saved.predict_image(image, tta, refine)
        found = file.predict_image(image, tta, refine)
        np.testing.assert_allclose(found.box, expected.box, atol=1e-4)
        np.testing.assert_allclose(found.probabilities, expected.probabilities, atol=1e-5)
        assert found.quality == pytest.approx(expected.quality, abs=1e-5)


def test_evaluate_command_on_the_file_matches_the_keras_model(onnx_export_dir, tmp_path):
    from localizer import evaluate
    from tests.localizer.test_commands import run

    model, _, version_dir, voc, _ = onnx_export_dir
    report_dir = tmp_path / "report"
    result = run(
        "localizer.evaluate",
        f"--model={_onnx_path(version_dir)}",
        "--dataset=voc_dir",
        f"--data_dir={voc}",
        "--split=train",
        "--tta=flip",
        f"--report_dir={report_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((report_dir / "metrics.json").read_text())
    source = pipelines.get_source("voc_dir", data_dir=voc)
    keras_summary = evaluation.evaluate(
        Predictor.from_model(model), source, "train", "flip", batch_size=16, refine=True
    ).summary
    for key in ("mean_iou", "macro_mean_iou", "classification_accuracy", "box_quality_auroc"):
        assert summary[key] == pytest.approx(keras_summary[key], abs=1e-4), key
    # Its default report goes beside the float TFLite file's, not over it.
    assert evaluate.default_report_dir(_onnx_path(version_dir), "val") == os.path.join(
        "reports", "models-1-localizer-onnx-val"
    )
    tflite_file = os.path.join(version_dir, signatures.TFLITE_FILE)
    assert evaluate.default_report_dir(tflite_file, "val").endswith("models-1-localizer-val")


def _with_metadata(source, target, **changes):
    """Writes the ONNX file `source` to `target` with `changes` to its metadata_props."""
    proto = onnx.load(source)
    properties = {p.key: p.value for p in proto.metadata_props}
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {**properties, **changes})
    onnx.save(proto, str(target))
    return str(target)


def test_the_file_carries_its_metadata_and_an_export_must_agree(onnx_export_dir, tmp_path):
    _, _, version_dir, _, _ = onnx_export_dir
    loose = tmp_path / "copy.onnx"
    shutil.copy(_onnx_path(version_dir), loose)
    assert Predictor(str(loose)).class_names == list(fixtures.CLASSES)  # outside any export
    copy = tmp_path / "models" / "1"
    shutil.copytree(version_dir, copy)
    five = json.dumps(["a", "b", "c", "d", "e"])
    cases = [
        (copy / ONNX_FILE, {"class_names": five}, "its export's .*metadata.json class_names="),
        (
            tmp_path / "five.onnx",
            {"class_names": five},
            "for 3 classes, its metadata_props names 5",
        ),
        (tmp_path / "bare.onnx", {"image_size": "big"}, "image_size='big', not a positive integer"),
    ]
    for target, changes, fragment in cases:
        path = _with_metadata(_onnx_path(version_dir), target, **changes)
        with pytest.raises(ModelFileError, match=fragment) as error:
            Predictor(path)
        assert "\n" not in str(error.value) and "export it again (--onnx)" in str(error.value)


def test_a_truncated_file_is_one_line(onnx_export_dir, tmp_path):
    _, _, version_dir, _, _ = onnx_export_dir
    content = open(_onnx_path(version_dir), "rb").read()
    for cut in (0, 10, len(content) // 2, len(content) - 10):
        damaged = tmp_path / f"cut{cut}.onnx"
        damaged.write_bytes(content[:cut])
        with pytest.raises(ModelFileError, match="cannot be loaded as a localizer ONNX") as error:
            Predictor(str(damaged))
        assert "\n" not in str(error.value)


def test_without_onnxruntime_the_file_is_one_line_naming_the_extra(onnx_export_dir, monkeypatch):
    _, _, version_dir, _, _ = onnx_export_dir
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    with pytest.raises(UserError, match=r'onnxruntime, .*pip install -e "\.\[onnx\]"') as error:
        Predictor(_onnx_path(version_dir))
    assert "\n" not in str(error.value)


_WITHOUT = """
import runpy, sys
sys.modules[sys.argv.pop(1)] = None  # as if the package were not installed
sys.argv[0] = "localizer.export"
runpy.run_module("localizer.export", run_name="__main__", alter_sys=True)
"""


def test_export_without_tf2onnx_is_one_line_naming_the_extra_before_the_long_part(
    tmp_path, random_tiny_model_path
):
    from tests.localizer.test_commands import assert_user_error

    export_dir = tmp_path / "models"
    result = fixtures.run_python(
        "-c",
        _WITHOUT,
        "tf2onnx",
        f"--model={tmp_path / 'not_loaded.keras'}",  # refused before the model is looked at
        f"--export_dir={export_dir}",
        "--onnx",
    )
    assert_user_error(result, "needs the package tf2onnx")
    assert ".[onnx]" in result.stderr
    assert not export_dir.exists()


@pytest.mark.slow  # a whole export by the command line; the fast tests export in the process
def test_export_command_prints_the_onnx_check_and_keeps_tf2onnx_quiet(
    tmp_path, random_tiny_model_path
):
    import re

    export_dir = tmp_path / "models"
    result = fixtures.run_python(
        "-m",
        "localizer.export",
        f"--model={random_tiny_model_path}",
        f"--export_dir={export_dir}",
        "--onnx",
        "--norefine",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"ONNX (predict_images only): {export_dir / '1' / ONNX_FILE}" in result.stdout
    assert re.search(
        r"checked: ONNX predict_images against the SavedModel on 10 images \(8 generated, 2 noise\)"
        r": largest differences class_logits \S+, probabilities \S+, box \S+, box_quality \S+ "
        r"\(each at most 1e-04\), batches of 0, 1 and 10 images",
        result.stdout,
    ), result.stdout
    for noise in ("tf2onnx", "Using opset", "Optimizing ONNX"):
        assert noise not in result.stderr, result.stderr[-3000:]


README = os.path.join(os.path.dirname(__file__), "..", "..", "..", "README.md")


def readme_onnx_snippet():
    """The Python block of the README's "Running the ONNX file", as a user copies it."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("### Running the ONNX file") :]
    return section[section.index("```python\n") + len("```python\n") :].split("\n```", 1)[0]


def test_the_readme_snippet_runs_the_file_with_onnxruntime_alone_as_predict_does(
    onnx_export_dir, tmp_path
):
    from tests.localizer.test_demo import tagged_photo

    _, _, version_dir, _, _ = onnx_export_dir
    photo = tagged_photo(str(tmp_path), orientation=6)  # stored turned, as phones do
    code = readme_onnx_snippet()
    assert not any(
        f"{word} {package}" in code
        for word in ("import", "from")
        for package in ("tensorflow", "localizer", "pipelines")
    )
    code = code.replace("models/localizer/1/assets.extra/localizer.onnx", _onnx_path(version_dir))
    code = code.replace('"photo.jpg"', repr(photo)).replace("print(", "(")
    found = {}
    exec(compile(code, "README.md", "exec"), found)  # noqa: S102 - the README's own code
    prediction = Predictor(_onnx_path(version_dir)).predict_image(
        decode.decode_image_bytes(tf.constant(open(photo, "rb").read())), refine=False
    )
    height, width = 48, 64  # upright
    expected = prediction.box * [height, width, height, width]
    assert (
        found["names"][int(found["probabilities"].argmax())]
        == fixtures.CLASSES[int(prediction.probabilities.argmax())]
    )
    # Pixels xyxy of the upright photo; the two JPEG decoders and resizes round a little apart.
    np.testing.assert_allclose(
        found["box_xyxy"], [expected[1], expected[0], expected[3], expected[2]], atol=1.0
    )
    np.testing.assert_allclose(found["probabilities"], prediction.probabilities, atol=0.02)

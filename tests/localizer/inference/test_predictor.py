"""Tests of localizer/inference/predictor.py: the model files, exports and TFLite files it accepts
or refuses.
"""

import json

import numpy as np
import pytest

from localizer.inference.predictor import ModelFileError, Predictor
from tests import fixtures


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
        (
            json.dumps({**METADATA, "class_names": ["x", "x", "y"]}),
            r"names the class \['x'\] twice",
        ),
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
        ModelFileError,
        match=r"takes images of shape \[48, 48, 3\], its export's metadata.json says 32 px",
    ):
        Predictor(other_size)

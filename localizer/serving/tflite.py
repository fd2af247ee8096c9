"""TFLite: `predict_images` converted and checked against the SavedModel."""

import os
import warnings

import numpy as np
import tensorflow as tf

from localizer.model.outputs import BOX, CLASS_LOGITS
from localizer.serving.signatures import IMAGES_INPUT, IMAGES_SIGNATURE, PROBABILITIES, load_metadata
from localizer.serving.verify import ExportVerificationError, check_images
from pipelines import decode, render


def export_tflite(saved_model_dir, output_path, atol=1e-4):
    """Converts the export's `predict_images` to TFLite and checks its outputs; returns the path."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[IMAGES_SIGNATURE])
    content = converter.convert()
    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    with open(output_path, "wb") as f:
        f.write(content)
    metadata = load_metadata(saved_model_dir)
    images = tf.stack([
        render.resize_image(decode.decode_image_bytes(tf.constant(data)), metadata["image_size"], metadata["resize_mode"])[0]
        for data in check_images(metadata["image_size"])
    ])
    expected = tf.saved_model.load(saved_model_dir).signatures[IMAGES_SIGNATURE](**{IMAGES_INPUT: images})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice (LiteRT)
        interpreter = tf.lite.Interpreter(model_content=content)
    outputs = interpreter.get_signature_runner(IMAGES_SIGNATURE)(**{IMAGES_INPUT: images.numpy()})
    for key in (CLASS_LOGITS, PROBABILITIES, BOX):
        error = float(np.max(np.abs(outputs[key] - expected[key].numpy())))
        if error > atol:
            raise ExportVerificationError(f"{output_path}: TFLite {key} differs from the SavedModel's by {error:.2e}.")
    return output_path

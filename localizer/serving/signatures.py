"""The SavedModel's contract with its clients: signature, input, output and
asset names. TF Serving clients, `localizer.inference.predictor` (which loads
exports) and the serving graph all key on these.
"""

import json
import os

from localizer.model.outputs import BOX, BOX_QUALITY, CLASS_LOGITS

SERVING_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "predict_images"
BYTES_INPUT = "image_bytes"
IMAGES_INPUT = "images"
CLASS_ID = "class_id"
CLASS_NAME = "class_name"
SCORE = "score"
PROBABILITIES = "probabilities"
OUTPUT_BOX = BOX
OUTPUT_CLASS_LOGITS = CLASS_LOGITS
OUTPUT_BOX_QUALITY = BOX_QUALITY
"""float32 `[B]` in [0, 1], the model's predicted IoU of its box; only in exports of models that have it."""

CLASS_NAMES_ASSET = "class_names.txt"
METADATA_ASSET = "metadata.json"
ASSETS_EXTRA = "assets.extra"
TFLITE_FILE = os.path.join(ASSETS_EXTRA, "localizer.tflite")
TFLITE_INT8_FILE = os.path.join(ASSETS_EXTRA, "localizer_int8.tflite")
"""`predict_images` in TFLite: float32, and full-integer (int8 weights and activations, uint8 images in)."""


def metadata_path(version_dir):
    """Where an export keeps `metadata.json` (class_names, resize_mode, image_size, max_image_pixels, refine)."""
    return os.path.join(version_dir, "assets", METADATA_ASSET)


def load_metadata(version_dir):
    """`metadata.json` of an export."""
    with open(metadata_path(version_dir), encoding="utf-8") as f:
        return json.load(f)


def export_of_tflite(path):
    """The version folder a `.tflite` file belongs to (it lies in `<version>/assets.extra/`), or None."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.basename(folder) != ASSETS_EXTRA or not os.path.isfile(metadata_path(os.path.dirname(folder))):
        return None
    return os.path.dirname(folder)

"""The SavedModel's contract with its clients: signature, input, output and
asset names. TF Serving clients, `localizer.inference.predictor` (which loads
exports) and the serving graph all key on these.
"""

import json
import os

from localizer.model.outputs import BOX, CLASS_LOGITS

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

CLASS_NAMES_ASSET = "class_names.txt"
METADATA_ASSET = "metadata.json"
TFLITE_FILE = os.path.join("assets.extra", "localizer.tflite")


def metadata_path(version_dir):
    """Where an export keeps `metadata.json` (class_names, resize_mode, image_size, max_image_pixels, refine)."""
    return os.path.join(version_dir, "assets", METADATA_ASSET)


def load_metadata(version_dir):
    """`metadata.json` of an export."""
    with open(metadata_path(version_dir), encoding="utf-8") as f:
        return json.load(f)

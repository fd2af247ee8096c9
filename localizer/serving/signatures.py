"""The SavedModel's contract with its clients: signature, input, output and
asset names. TF Serving clients, `localizer.inference.predictor` (which loads
exports) and the serving graph all key on these.
"""

import json
import os

from localizer.model.outputs import BOX, BOX_QUALITY, CLASS_LOGITS
from pipelines.errors import UserError

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
"""float32 `[B]` in [0, 1], the model's predicted IoU of its box; only in exports of models that
have it."""

CLASS_NAMES_ASSET = "class_names.txt"
METADATA_ASSET = "metadata.json"
ASSETS_EXTRA = "assets.extra"
TFLITE_FILE = os.path.join(ASSETS_EXTRA, "localizer.tflite")
TFLITE_INT8_FILE = os.path.join(ASSETS_EXTRA, "localizer_int8.tflite")
"""`predict_images` in TFLite: float32, and full-integer (int8 weights and activations, uint8 images
in)."""
ONNX_FILE = os.path.join(ASSETS_EXTRA, "localizer.onnx")
"""`predict_images` in ONNX (`localizer.serving.onnx_export`): the same input and outputs, the
export's metadata in the file's metadata_props."""
ONNX_BATCH = "batch"
"""The name of the ONNX file's dynamic batch dimension (dim 0 of its input and every output)."""


def metadata_path(version_dir):
    """Where an export keeps `metadata.json` (class_names, resize_mode, image_size,
    max_image_pixels, refine)."""
    return os.path.join(version_dir, "assets", METADATA_ASSET)


METADATA_FIELDS = ("class_names", "resize_mode", "image_size")
"""What every reader of an export needs from `metadata.json` (it also holds max_image_pixels and
refine)."""

REEXPORT = "export the model again (python -m localizer.export --model=<its .keras file>)"
"""What to do about an export whose metadata cannot be used."""


class MetadataError(UserError, ValueError):
    """An export's `metadata.json` is missing, not JSON, or lacks a field; the message names the
    file."""


def load_metadata(version_dir):
    """`metadata.json` of an export, checked (`METADATA_FIELDS`); MetadataError (one line)
    otherwise."""
    path = metadata_path(version_dir)
    try:
        with open(path, encoding="utf-8") as f:
            metadata = json.load(f)
    except OSError as error:
        raise MetadataError(
            f"{path} cannot be read ({error.strerror or error}); {REEXPORT}"
        ) from None
    except (
        ValueError,
        RecursionError,
    ) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise MetadataError(f"{path} is not JSON ({reason}); {REEXPORT}") from None
    problem = metadata_problem(metadata)
    if problem:
        raise MetadataError(f"{path} {problem}; {REEXPORT}")
    return metadata


def metadata_problem(metadata):
    """What is wrong with a parsed `metadata.json`, in words, or None when a reader can use it."""
    from pipelines.render import RESIZE_MODES

    if not isinstance(metadata, dict):
        return "is not a JSON object"
    missing = [field for field in METADATA_FIELDS if field not in metadata]
    if missing:
        return f"lacks the field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
    names, size = metadata["class_names"], metadata["image_size"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return f"has class_names={str(names)[:100]}, not a list of names"
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        return f"names the class{'es' if len(repeated) > 1 else ''} {repeated[:5]} twice"
    if metadata["resize_mode"] not in RESIZE_MODES:
        return f"has resize_mode={metadata['resize_mode']!r}, not one of {RESIZE_MODES}"
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        return f"has image_size={size!r}, not a positive integer"
    return None


def export_of_model_file(path):
    """The version folder a model file of an export (`.tflite`, `.onnx`) belongs to (it lies in
    `<version>/assets.extra/`), or None."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.basename(folder) != ASSETS_EXTRA or not os.path.isfile(
        metadata_path(os.path.dirname(folder))
    ):
        return None
    return os.path.dirname(folder)

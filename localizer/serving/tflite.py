"""TFLite: `predict_images` converted, in float32 or full-integer int8, and checked against the SavedModel.

Both files keep the signature `predict_images` (uint8 `images` in; float32
`class_logits`, `probabilities`, `box` and, for a model with a box-quality
head, `box_quality` out), so one reader serves both
(`localizer.inference.predictor`).
"""

import os
import warnings

import numpy as np
import tensorflow as tf

from localizer.model.outputs import BOX, BOX_QUALITY, CLASS_LOGITS
from localizer.serving.signatures import IMAGES_INPUT, IMAGES_SIGNATURE, PROBABILITIES, load_metadata
from localizer.serving.verify import ExportVerificationError, check_images
from pipelines import decode, render

INT8_BOX_TOLERANCE = 0.05
"""The int8 file's box may differ from the SavedModel's by this much (the median over the check images of
each image's largest coordinate difference; normalized coordinates)."""

INT8_QUALITY_TOLERANCE = 0.1
"""The int8 file's box quality may differ from the SavedModel's by this much (median over the check images):
it is a confidence in [0, 1], and a tenth still ranks sure boxes above unsure ones."""

INT8_CLASS_AGREEMENT = 0.75
"""At least this share of the check images keeps the SavedModel's top class under int8."""

CONVERSIONS = ("QUANTIZE", "DEQUANTIZE", "CAST", "IF")
"""Ops that may touch float tensors in a full-integer file: the float boundaries (uint8 images cast in,
outputs dequantized) and the empty-batch branch of `predict_images`; none of them computes."""


def interpreter(content=None, path=None, num_threads=None):
    """A `tf.lite.Interpreter` (XNNPACK, the default delegate, on) without its LiteRT deprecation notice.

    The flatbuffer is walked in Python first (`check_flatbuffer`): the C++
    interpreter crashes the process on a truncated file instead of raising.
    """
    if path is not None:
        with open(path, "rb") as f:
            content, path = f.read(), None
    check_flatbuffer(content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_content=content, num_threads=num_threads)


def check_flatbuffer(content):
    """Raises ValueError unless `content` parses whole as a TFLite model (every table and vector in bounds)."""
    from tensorflow.lite.tools import flatbuffer_utils

    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    except Exception:  # struct.error, IndexError, ...: offsets past the end of a damaged file
        raise ValueError("damaged or truncated TFLite file") from None
    if not model.subgraphs:
        raise ValueError("a TFLite file without a graph")


def run_signature(content, images):
    """`predict_images` of a TFLite model on uint8 `images` `[N, S, S, 3]`: `{output: numpy array}`."""
    return interpreter(content).get_signature_runner(IMAGES_SIGNATURE)(**{IMAGES_INPUT: np.asarray(images)})


def _write(content, output_path):
    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    with open(output_path, "wb") as f:
        f.write(content)


def _check_inputs(saved_model_dir, extra_images=None):
    """The verification images rendered as the model sees them (`check_images`, plus `extra_images`), and
    the SavedModel's `predict_images` outputs on them."""
    metadata = load_metadata(saved_model_dir)
    images = np.stack([
        render.resize_image(decode.decode_image_bytes(tf.constant(data)), metadata["image_size"],
                            metadata["resize_mode"])[0].numpy()
        for data in check_images(metadata["image_size"])
    ])
    if extra_images is not None and len(extra_images):
        images = np.concatenate([images, np.asarray(extra_images, np.uint8)])
    expected = tf.saved_model.load(saved_model_dir).signatures[IMAGES_SIGNATURE](**{IMAGES_INPUT: images})
    return images, {key: value.numpy() for key, value in expected.items()}


def export_tflite(saved_model_dir, output_path, atol=1e-4):
    """Converts the export's `predict_images` to TFLite and checks its outputs; returns the path."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[IMAGES_SIGNATURE])
    content = converter.convert()
    _write(content, output_path)
    images, expected = _check_inputs(saved_model_dir)
    outputs = run_signature(content, images)
    _check_same_outputs(output_path, "TFLite", outputs, expected)
    for key in (CLASS_LOGITS, PROBABILITIES, BOX, BOX_QUALITY):
        if key not in expected:
            continue
        error = float(np.max(np.abs(outputs[key] - expected[key])))
        if error > atol:
            raise ExportVerificationError(f"{output_path}: TFLite {key} differs from the SavedModel's by {error:.2e}.")
    return output_path


def convert_int8(saved_model_dir, calibration_images):
    """`predict_images` as full-integer TFLite bytes, calibrated on uint8 `calibration_images` `[N, S, S, 3]`.

    Only int8 builtin ops are allowed (the conversion fails rather than
    leave an op in float); the uint8 image input stays as it is, the float32
    outputs are dequantized so the file reads like the float one.
    """
    def representative_dataset():
        for image in calibration_images:
            yield {IMAGES_INPUT: image[None]}

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[IMAGES_SIGNATURE])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    return converter.convert()


def _check_same_outputs(output_path, kind, outputs, expected):
    """The TFLite file has the SavedModel's `predict_images` outputs, no more, no fewer."""
    if set(outputs) != set(expected):
        raise ExportVerificationError(f"{output_path}: {kind} outputs {sorted(outputs)}, the SavedModel's "
                                      f"{sorted(expected)}.")


def int8_disagreement(outputs, expected):
    """`(median box error, share of images with the same top class, median box-quality error or None)` of
    int8 `outputs` against `expected` (None: the model has no box quality)."""
    box_error = float(np.median(np.max(np.abs(outputs[BOX] - expected[BOX]), axis=-1)))
    same_class = float(np.mean(outputs[CLASS_LOGITS].argmax(-1) == expected[CLASS_LOGITS].argmax(-1)))
    quality_error = None
    if BOX_QUALITY in expected:
        quality_error = float(np.median(np.abs(outputs[BOX_QUALITY] - expected[BOX_QUALITY])))
    return box_error, same_class, quality_error


def export_tflite_int8(saved_model_dir, output_path, calibration_images, dataset_images=None):
    """Writes the full-integer `predict_images` and checks it against the SavedModel; returns the path.

    Checked on `check_images` and `dataset_images` (rendered dataset images;
    int8 is calibrated on real images and may be far off on noise alone):
    see `INT8_BOX_TOLERANCE`, `INT8_CLASS_AGREEMENT` and `INT8_QUALITY_TOLERANCE`.
    """
    content = convert_int8(saved_model_dir, calibration_images)
    computing = float_ops(content)
    if computing:
        raise ExportVerificationError(f"{output_path}: ops left in float after int8 conversion: {computing}.")
    _write(content, output_path)
    images, expected = _check_inputs(saved_model_dir, dataset_images)
    outputs = run_signature(content, images)
    _check_same_outputs(output_path, "int8 TFLite", outputs, expected)
    box_error, same_class, quality_error = int8_disagreement(outputs, expected)
    if box_error > INT8_BOX_TOLERANCE or same_class < INT8_CLASS_AGREEMENT:
        raise ExportVerificationError(
            f"{output_path}: the int8 model is far from the SavedModel on {len(images)} check images (median box "
            f"error {box_error:.3f}, limit {INT8_BOX_TOLERANCE}; same top class on {same_class:.0%}, at least "
            f"{INT8_CLASS_AGREEMENT:.0%}); an op quantizes badly: compare the layers with "
            f"tf.lite.experimental.QuantizationDebugger")
    if quality_error is not None and quality_error > INT8_QUALITY_TOLERANCE:
        raise ExportVerificationError(
            f"{output_path}: the int8 model's box_quality is far from the SavedModel's on {len(images)} check "
            f"images (median error {quality_error:.3f}, limit {INT8_QUALITY_TOLERANCE}); compare the layers with "
            f"tf.lite.experimental.QuantizationDebugger")
    return output_path


def _op_and_tensor_names():
    from tensorflow.lite.python import schema_py_generated as schema

    def names(enum):
        return {value: name for name, value in vars(enum).items() if not name.startswith("_")}

    return names(schema.BuiltinOperator), names(schema.TensorType)


def float_ops(content):
    """Sorted names of the ops of a TFLite model (every subgraph) that compute on float tensors.

    Conversions and control flow (`CONVERSIONS`) are left out: a full-integer
    model gives `[]`, a float model every op it has.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    op_names, tensor_names = _op_and_tensor_names()
    found = set()
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            name = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
            indices = [i for part in (op.inputs, op.outputs) if part is not None for i in part if i >= 0]
            types = {tensor_names[subgraph.tensors[i].type] for i in indices}
            if name not in CONVERSIONS and types & {"FLOAT32", "FLOAT16"}:
                found.add(name)
    return sorted(found)

"""TFLite: `predict_images` converted, in float32 or full-integer int8, and checked against the
SavedModel.

Both files keep the signature `predict_images` (uint8 `images` in; float32
`class_logits`, `probabilities`, `box` and, for a model with a box-quality
head, `box_quality` out), so one reader serves both
(`localizer.inference.predictor`).
"""

import contextlib
import os
import sys
import tempfile
import warnings

import numpy as np
import tensorflow as tf

from localizer.model.outputs import BOX, BOX_QUALITY, CLASS_LOGITS
from localizer.serving.signatures import (
    IMAGES_INPUT,
    IMAGES_SIGNATURE,
    PROBABILITIES,
    load_metadata,
)
from localizer.serving.verify import (
    FLOAT_TOLERANCE,
    CheckFigures,
    ExportVerificationError,
    describe,
    render_encoded,
)

INT8_BOX_TOLERANCE = 0.05
"""The int8 file's box may differ from the SavedModel's by this much (the median over the check
images of
each image's largest coordinate difference; normalized coordinates)."""

INT8_QUALITY_TOLERANCE = 0.1
"""The int8 file's box quality may differ from the SavedModel's by this much (median over the check
images):
it is a confidence in [0, 1], and a tenth still ranks sure boxes above unsure ones."""

INT8_CLASS_AGREEMENT = 0.75
"""At least this share of the check images keeps the SavedModel's top class under int8."""

CONVERSIONS = ("QUANTIZE", "DEQUANTIZE", "CAST", "IF")
"""Ops that may touch float tensors in a full-integer file: the float boundaries (uint8 images cast
in,
outputs dequantized) and the empty-batch branch of `predict_images`; none of them computes."""


def interpreter(content=None, path=None, num_threads=None):
    """A `tf.lite.Interpreter` (XNNPACK, the default delegate, on) without its LiteRT deprecation
    notice.

    The flatbuffer is walked in Python first (`check_flatbuffer`): the C++
    interpreter crashes the process on a truncated file instead of raising.
    """
    if path is not None:
        with open(path, "rb") as f:
            content, path = f.read(), None
    check_flatbuffer(content)
    with quiet_native_logs():  # the LiteRT notice
        return tf.lite.Interpreter(model_content=content, num_threads=num_threads)


@contextlib.contextmanager
def quiet_native_logs():
    """Keeps what TFLite's and TF's C++ code logs (to file descriptor 2) and Python warnings off the
    terminal while it runs: the converter writes a score of INFO lines about loading the SavedModel
    and
    MLIR passes, and its calibrator warns that `tf.lite.Interpreter` is scheduled for deletion in a
    TF
    older than ours. If the block fails, what was written is shown after all, for the diagnosis.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = True
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                captured.seek(0)
                sys.stderr.write(captured.read().decode(errors="replace"))


def check_flatbuffer(content):
    """Raises ValueError unless `content` parses whole as a TFLite model (every table and vector in
    bounds)."""
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
    """`predict_images` of a TFLite model on uint8 `images` `[N, S, S, 3]`: `{output: numpy
    array}`."""
    runner = interpreter(content).get_signature_runner(IMAGES_SIGNATURE)
    with (
        quiet_native_logs()
    ):  # "Created TensorFlow Lite XNNPACK delegate for CPU", on the first run
        return runner(**{IMAGES_INPUT: np.asarray(images)})


def _write(content, output_path):
    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    with open(output_path, "wb") as f:
        f.write(content)


def rendered_check_inputs(saved_model_dir, check_images, extra_images=None):
    """`check_images` (`verify.CheckImage`) rendered as the model sees them, then `extra_images`
    (already
    rendered), and the SavedModel's `predict_images` outputs on them.
    """
    metadata = load_metadata(saved_model_dir)
    images = np.stack(
        [
            render_encoded(image.data, metadata["image_size"], metadata["resize_mode"]).numpy()
            for image in check_images
        ]
    )
    if extra_images is not None and len(extra_images):
        images = np.concatenate([images, np.asarray(extra_images, np.uint8)])
    expected = tf.saved_model.load(saved_model_dir).signatures[IMAGES_SIGNATURE](
        **{IMAGES_INPUT: images}
    )
    return images, {key: value.numpy() for key, value in expected.items()}


TFLITE_TODO = (
    "nothing was published; export without --tflite, and report it with this line and --debug's "
    "output"
)


def export_tflite(saved_model_dir, output_path, check_images, atol=FLOAT_TOLERANCE):
    """Converts the export's `predict_images` to TFLite and checks it on `check_images`
    (`verify.CheckImage`).

    Returns the `verify.CheckFigures`.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=[IMAGES_SIGNATURE]
    )
    with quiet_native_logs():
        content = converter.convert()
    _write(content, output_path)
    images, expected = rendered_check_inputs(saved_model_dir, check_images)
    outputs = run_signature(content, images)
    _check_same_outputs("TFLite", outputs, expected)
    figures = largest_differences("TFLite", outputs, expected, check_images, atol, TFLITE_TODO)
    return CheckFigures(
        "TFLite predict_images against the SavedModel",
        describe(image.kind for image in check_images),
        (f"largest differences {figures} (each at most {atol:.0e})",),
    )


def largest_differences(kind, outputs, expected, check_images, atol, todo):
    """`"class_logits 3.0e-06, ..."`: each float32 output's largest difference from the
    SavedModel's (`expected`) over `check_images`; ExportVerificationError (naming the check image
    and `todo`) when one is over `atol` or is not float32."""
    figures = []
    for key in (CLASS_LOGITS, PROBABILITIES, BOX, BOX_QUALITY):
        if key not in expected:
            continue
        per_image = np.abs(outputs[key] - expected[key]).reshape(len(expected[key]), -1).max(axis=1)
        error = float(per_image.max())
        if outputs[key].dtype != np.float32 or error > atol:
            raise ExportVerificationError(
                f"the {kind} file's {key} ({outputs[key].dtype}) differs from the SavedModel's by "
                f"{error:.2e} (limit {atol:.0e}) on check image "
                f"{check_images[int(per_image.argmax())].name}; {todo}"
            )
        figures.append(f"{key} {error:.1e}")
    return ", ".join(figures)


def convert_int8(saved_model_dir, calibration_images):
    """`predict_images` as full-integer TFLite bytes, calibrated on uint8 `calibration_images` `[N,
    S, S, 3]`.

    Only int8 builtin ops are allowed (the conversion fails rather than
    leave an op in float); the uint8 image input stays as it is, the float32
    outputs are dequantized so the file reads like the float one.
    """

    def representative_dataset():
        for image in calibration_images:
            yield {IMAGES_INPUT: image[None]}

    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=[IMAGES_SIGNATURE]
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    with quiet_native_logs():
        return converter.convert()


def _check_same_outputs(kind, outputs, expected):
    """The TFLite file has the SavedModel's `predict_images` outputs, no more, no fewer."""
    if set(outputs) != set(expected):
        raise ExportVerificationError(
            f"the {kind} file outputs {sorted(outputs)}, the SavedModel "
            f"{sorted(expected)}; {TFLITE_TODO}"
        )


def int8_disagreement(outputs, expected):
    """`(median box error, share of images with the same top class, median box-quality error or
    None)` of
    int8 `outputs` against `expected` (None: the model has no box quality).
    """
    box_error = float(np.median(np.max(np.abs(outputs[BOX] - expected[BOX]), axis=-1)))
    same_class = float(
        np.mean(outputs[CLASS_LOGITS].argmax(-1) == expected[CLASS_LOGITS].argmax(-1))
    )
    quality_error = None
    if BOX_QUALITY in expected:
        quality_error = float(np.median(np.abs(outputs[BOX_QUALITY] - expected[BOX_QUALITY])))
    return box_error, same_class, quality_error


INT8_TODO = (
    "nothing was published; an op quantizes badly: compare the layers with "
    "tf.lite.experimental.QuantizationDebugger, or export without --tflite_int8"
)


def export_tflite_int8(
    saved_model_dir, output_path, calibration_images, dataset_images, check_images
):
    """Writes the full-integer `predict_images` and checks it against the SavedModel.

    Checked on `check_images` (`verify.CheckImage`, the export's own) and
    `dataset_images` (rendered images of the calibration split that
    calibration did not see, where the split is large enough): see `INT8_BOX_TOLERANCE`,
    `INT8_CLASS_AGREEMENT` and
    `INT8_QUALITY_TOLERANCE`. Returns the `verify.CheckFigures`.
    """
    content = convert_int8(saved_model_dir, calibration_images)
    computing = float_ops(content)
    if computing:
        raise ExportVerificationError(
            f"ops are left in float after the int8 conversion: {computing}; {INT8_TODO}"
        )
    _write(content, output_path)
    images, expected = rendered_check_inputs(saved_model_dir, check_images, dataset_images)
    outputs = run_signature(content, images)
    _check_same_outputs("int8 TFLite", outputs, expected)
    box_error, same_class, quality_error = int8_disagreement(outputs, expected)
    where = describe(
        [image.kind for image in check_images]
        + ["int8 check sample of the calibration split"] * len(dataset_images)
    )
    figures = [
        f"median box difference {box_error:.3f} (at most {INT8_BOX_TOLERANCE})",
        f"same top class on {same_class:.0%} (at least {INT8_CLASS_AGREEMENT:.0%})",
    ]
    if quality_error is not None:
        figures.append(
            f"median box_quality difference {quality_error:.3f} (at most {INT8_QUALITY_TOLERANCE})"
        )
    failed = (
        box_error > INT8_BOX_TOLERANCE
        or same_class < INT8_CLASS_AGREEMENT
        or (quality_error is not None and quality_error > INT8_QUALITY_TOLERANCE)
    )
    check = CheckFigures("int8 TFLite predict_images against the SavedModel", where, tuple(figures))
    if failed:
        raise ExportVerificationError(
            f"the int8 model is far from the SavedModel on {check.images}: "
            f"{check.shown()}; {INT8_TODO}"
        )
    return check


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
            indices = [
                i for part in (op.inputs, op.outputs) if part is not None for i in part if i >= 0
            ]
            types = {tensor_names[subgraph.tensors[i].type] for i in indices}
            if name not in CONVERSIONS and types & {"FLOAT32", "FLOAT16"}:
                found.add(name)
    return sorted(found)

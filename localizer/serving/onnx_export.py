"""ONNX: `predict_images` converted with tf2onnx, checked against the SavedModel, and run with
onnxruntime.

The file (`signatures.ONNX_FILE`) has the SavedModel's `predict_images` contract: uint8 `images`
`[batch, S, S, 3]` in (already resized as `resize_mode` says; decoding and resizing stay with the
caller, as for TFLite), float32 `class_logits` `[batch, C]`, `probabilities` `[batch, C]`, `box`
`[batch, 4]` (normalized yxyx in the input's frame) and, for a model with a box-quality head,
`box_quality` `[batch]` out. The batch dimension is named `ONNX_BATCH`. The export's metadata
(`signatures.METADATA_FIELDS`) travels in the file's `metadata_props` (`file_metadata`), so a copy
taken out of the export still says its classes, size and resize mode.

The converter is tf2onnx (`tf2onnx.convert.from_function`, opset `ONNX_OPSET`). Keras 3's own
`model.export(format="onnx")` was tried first and left: it takes float inputs (not the uint8
images of `predict_images`), has no softmax output, and mis-converts BatchNormalization after the
Resizing layer (outputs far from the model's). tf2onnx cannot take the SavedModel's
`predict_images` itself: its empty-batch guard (`tf.cond(batch > 0)`, `localizer.serving.graph`)
makes the Conv ops lose their shapes and gives a file onnxruntime refuses. So the converted
function is the same computation without the guard (`_predict_images_function`); ONNX Runtime
runs an empty batch through the model without it, and the check below proves it on every export.

tf2onnx, onnx and onnxruntime are the optional extra `.[onnx]`: imported only inside the functions
that need them, and `require` turns a missing one into one error line naming the extra.
"""

import importlib
import json
import logging
import os

import numpy as np
import tensorflow as tf

from localizer.model.outputs import BOX, BOX_QUALITY, CLASS_LOGITS
from localizer.serving import tflite
from localizer.serving.signatures import (
    IMAGES_INPUT,
    METADATA_FIELDS,
    ONNX_BATCH,
    PROBABILITIES,
    load_metadata,
)
from localizer.serving.verify import (
    FLOAT_TOLERANCE,
    CheckFigures,
    ExportVerificationError,
    describe,
)
from pipelines.errors import UserError

EXTRA = ".[onnx]"
"""The setup.cfg extra that installs the ONNX packages."""

CONVERTER_PACKAGES = ("tf2onnx", "onnx", "onnxruntime")
"""What `export --onnx` needs: the converter, the format's checker, and the runtime its check
runs."""

RUNTIME_PACKAGES = ("onnxruntime",)
"""What running the file needs (evaluate, predict)."""

ONNX_OPSET = 17
"""The ONNX opset the file is written in: the one the conversion was tried and checked at (every
export checks its file again); an older runtime may refuse a newer opset, so it is not raised
without a reason."""

ONNX_TODO = (
    "nothing was published; export without --onnx, and report it with this line and --debug's "
    "output"
)


class MissingPackageError(UserError, ImportError):
    """A package of the `.[onnx]` extra is not installed; the message names it and the extra."""


def require(packages, what):
    """Imports `packages` (names); MissingPackageError (one line) for the first that is missing.

    `what` says what needs them (`--onnx`, `an .onnx model`). Called before the long part of a
    command, so that a missing package fails it at once.
    """
    for name in packages:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise MissingPackageError(
                f"{what} needs the package {name}, which cannot be imported ({error}); install "
                f'the extra with pip install -e "{EXTRA}" (in the repository) and run it again'
            ) from None


def session(path, threads=None):
    """An `onnxruntime.InferenceSession` on the CPU for the ONNX file at `path`.

    `threads`: onnxruntime's intra-op threads; default all cores (`os.cpu_count()`), as TensorFlow
    and the TFLite interpreter here use. A session's `run` may be called from several threads at
    once (onnxruntime's documented guarantee), so its callers need no lock.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count()
    options.log_severity_level = 3  # errors only: no notes about graph optimizations on load
    return onnxruntime.InferenceSession(
        path, sess_options=options, providers=["CPUExecutionProvider"]
    )


def run(onnx_session, images):
    """The file's outputs on uint8 `images` `[N, S, S, 3]`: `{output name: numpy array}`."""
    names = [output.name for output in onnx_session.get_outputs()]
    values = onnx_session.run(names, {IMAGES_INPUT: np.asarray(images, np.uint8)})
    return dict(zip(names, values, strict=True))


def encode_metadata(metadata):
    """`{key: text}` for the file's metadata_props: each of `METADATA_FIELDS`, a string as it is,
    anything else (the class names, the size) as JSON."""
    return {
        field: value if isinstance(value, str) else json.dumps(value)
        for field, value in ((field, metadata[field]) for field in METADATA_FIELDS)
    }


def file_metadata(properties):
    """The export metadata of an ONNX file's `properties` (`{key: text}`, onnxruntime's
    `custom_metadata_map`): `{field: value}` of the `METADATA_FIELDS` it holds, undone as
    `encode_metadata` wrote them; a value that is not JSON stays text, for
    `signatures.metadata_problem` to name."""
    found = {}
    for field in METADATA_FIELDS:
        if field not in properties:
            continue
        text = properties[field]
        try:
            found[field] = json.loads(text) if field != "resize_mode" else text
        except ValueError:
            found[field] = text
    return found


def _predict_images_function(model, image_size):
    """`predict_images` of `localizer.serving.graph` without its empty-batch `tf.cond` (see the
    module docstring): the model's outputs in float32, and the softmax of the logits."""
    keys = [CLASS_LOGITS, BOX] + ([BOX_QUALITY] if BOX_QUALITY in model.output else [])
    signature = [tf.TensorSpec([None, image_size, image_size, 3], tf.uint8, name=IMAGES_INPUT)]

    @tf.function(input_signature=signature)
    def predict_images(images):
        outputs = model(images, training=False)
        outputs = {key: tf.cast(outputs[key], tf.float32) for key in keys}
        return {**outputs, PROBABILITIES: tf.nn.softmax(outputs[CLASS_LOGITS], axis=-1)}

    return predict_images, signature


def convert(model, metadata):
    """The ONNX `ModelProto` of `model`'s `predict_images`, its batch dimension named and
    `metadata` (the export's) in its metadata_props; checked by `onnx.checker`."""
    import onnx
    import tf2onnx

    function, signature = _predict_images_function(model, metadata["image_size"])
    # tf2onnx logs its progress (INFO and WARNING lines) through Python logging; TensorFlow's C++
    # logs while the function is traced and optimized.
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    with tflite.quiet_native_logs():
        proto, _ = tf2onnx.convert.from_function(
            function, input_signature=signature, opset=ONNX_OPSET
        )
    # tf2onnx names the batch dimension `unk__N`; a name says the inputs and outputs share it.
    for value in [*proto.graph.input, *proto.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = ONNX_BATCH
    onnx.helper.set_model_props(proto, encode_metadata(metadata))
    proto.doc_string = (
        f"localizer predict_images: uint8 {IMAGES_INPUT} [{ONNX_BATCH}, S, S, 3], resized as the "
        "metadata's resize_mode and image_size say; float32 outputs, box normalized "
        "[ymin, xmin, ymax, xmax] in the input's frame"
    )
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model, saved_model_dir, output_path, check_images, atol=FLOAT_TOLERANCE):
    """Writes `model`'s `predict_images` as ONNX to `output_path`, then checks the file, run by
    onnxruntime, against the export's SavedModel on `check_images` (`verify.CheckImage`): the same
    outputs, each within `atol`, on the whole batch, on its first image alone and on an empty
    batch. Returns the `verify.CheckFigures`; raises ExportVerificationError.
    """
    require(CONVERTER_PACKAGES, "--onnx")
    proto = convert(model, load_metadata(saved_model_dir))
    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    with open(output_path, "wb") as f:
        f.write(proto.SerializeToString())
    images, expected = tflite.rendered_check_inputs(saved_model_dir, check_images)
    onnx_session = session(output_path)
    outputs = run(onnx_session, images)
    if set(outputs) != set(expected):
        raise ExportVerificationError(
            f"the ONNX file outputs {sorted(outputs)}, the SavedModel {sorted(expected)}; "
            f"{ONNX_TODO}"
        )
    figures = tflite.largest_differences("ONNX", outputs, expected, check_images, atol, ONNX_TODO)
    batches = _check_batches(onnx_session, images, expected, atol)
    return CheckFigures(
        "ONNX predict_images against the SavedModel",
        describe(image.kind for image in check_images),
        (
            f"largest differences {figures} (each at most {atol:.0e})",
            f"batches of {', '.join(map(str, batches[:-1]))} and {batches[-1]} images",
        ),
    )


def _check_batches(onnx_session, images, expected, atol):
    """The dynamic batch: an empty batch and the first image alone give the right shapes (and the
    first image its values). Returns the batch sizes checked, the whole one included."""
    sizes = sorted({0, 1, len(images)})
    for size in sizes[:-1]:
        outputs = run(onnx_session, images[:size])
        for key, value in expected.items():
            want = value[:size]
            if outputs[key].shape != want.shape:
                raise ExportVerificationError(
                    f"the ONNX file gives {key} of shape {outputs[key].shape} for a batch of "
                    f"{size}, the SavedModel {want.shape}; {ONNX_TODO}"
                )
            error = float(np.abs(outputs[key] - want).max(initial=0.0))
            if error > atol:
                raise ExportVerificationError(
                    f"the ONNX file's {key} for a batch of {size} differs from the SavedModel's "
                    f"by {error:.2e} (limit {atol:.0e}); {ONNX_TODO}"
                )
    return sizes

"""Exports a localizer as a versioned SavedModel that TF Serving serves as is.

    python -m localizer.export --model=work/quickstart/best.keras --export_dir=models/localizer [--version=N]
    (or `make export MODEL=...`)

writes `<export_dir>/<version>/`, the layout `tensorflow_model_server
--model_base_path=<export_dir>` (and the `tensorflow/serving` Docker image)
expects: one numbered folder per version, the highest served by default.

Signatures (see `saved_model_cli show --all --dir <export_dir>/<version>`):

  serving_default
    in:  image_bytes  string [B]   encoded JPEG/PNG/GIF/BMP images, any size
    out: class_id     int32 [B]    the predicted class
         class_name   string [B]   its name
         score        float32 [B]  its softmax probability
         box          float32 [B, 4]  normalized [ymin, xmin, ymax, xmax] of the
                                   ORIGINAL image (the letterbox is undone)
         probabilities float32 [B, C]
    Inside the graph: decode (`pipelines.ops.decode_image_bytes`), resize
    exactly as in training (`pipelines.ops.resize_image` with the model's
    `resize_mode` and `image_size`), the model, `pipelines.ops.to_original_frame`.
    The input's name ends in `_bytes` by the Cloud ML Engine convention TF
    Serving follows; TF Serving's REST API base64-decodes `{"b64": "..."}`
    values for any string input (see the README).

  predict_images
    in:  images        uint8 [B, S, S, 3]  already resized model inputs
    out: class_logits  float32 [B, C]
         probabilities float32 [B, C]
         box           float32 [B, 4]  in the input's frame

Errors: an image that does not decode, or whose header announces more than
`max_image_pixels` pixels (JPEG and PNG headers are read before decoding; GIF
and BMP are not checked), fails the whole request with InvalidArgument; the
server keeps serving. An empty batch gives empty outputs.

The class names travel inside the SavedModel: as a constant in the graph (the
`class_name` output), and as the assets `class_names.txt` (one per line) and
`metadata.json` (`class_names`, `resize_mode`, `image_size`,
`max_image_pixels`).

The export is atomic: it is written to `<export_dir>/.tmp-<pid>-<hex>` (a name
TF Serving ignores, as it is not a number), loaded back and checked against
the Keras model (eagerly, and in a TF1 session the way TF Serving's C++
loads it), then renamed to its number. A killed export leaves only a
temporary folder, which the next export removes.

`--tflite` also writes `<version>/assets.extra/localizer.tflite`:
`predict_images` converted to TFLite (uint8 model inputs; decoding and
resizing stay with the caller) and checked against the SavedModel.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import uuid
import warnings

import numpy as np
import tensorflow as tf
from absl import flags

from localizer import inference
from localizer import model as model_lib
from pipelines import ops

SERVING_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "predict_images"
BYTES_INPUT = "image_bytes"
IMAGES_INPUT = "images"
CLASS_ID = "class_id"
CLASS_NAME = "class_name"
SCORE = "score"
BOX = model_lib.BOX
PROBABILITIES = "probabilities"
CLASS_LOGITS = model_lib.CLASS_LOGITS

CLASS_NAMES_ASSET = "class_names.txt"
METADATA_ASSET = "metadata.json"
TFLITE_FILE = os.path.join("assets.extra", "localizer.tflite")

DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
"""Largest image (height x width, from its header) serving_default accepts: a
48 MP phone photo passes; a decompression bomb is refused before it is decoded.
0 turns the check off."""

TEMPORARY_PREFIX = ".tmp-"
_TEMPORARY = re.compile(r"^\.tmp-(\d+)-[0-9a-f]+$")
_VERSION = re.compile(r"^\d+$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

FLAGS = flags.FLAGS

# Temporary folders this process is writing right now (never removed as stale).
_ACTIVE = set()


class ExportVerificationError(RuntimeError):
    """The SavedModel, loaded back, does not reproduce the Keras model."""


class _Untracked:
    """Holds an object without making it part of the SavedModel."""

    def __init__(self, value):
        self.value = value


class LocalizerServing(tf.Module):
    """The serving graph: a `tf.Module` with the two signatures and the variables they read.

    The Keras model itself is deliberately not tracked: a SavedModel that
    tracks a Keras 3 model as an object loads with `tf.saved_model.load` but
    not with the TF1 session loader that TF Serving's C++ uses (its variables
    are never restored there: "Could not find variable ..."). Tracking the
    tf.Variables the signatures capture, as `keras.export.ExportArchive`
    does, works with both.
    """

    def __init__(self, model, max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS, refine=False):
        super().__init__(name="localizer_serving")
        self._refine = bool(refine)
        metadata = model_lib.model_metadata(model)
        self._keras = _Untracked(model)
        self._class_names = list(metadata["class_names"])
        self._resize_mode = metadata["resize_mode"]
        self._image_size = int(metadata["image_size"])
        self._max_image_pixels = int(max_image_pixels or 0)
        size = self._image_size
        self.serve_bytes = tf.function(
            self._serve_bytes,
            input_signature=[tf.TensorSpec([None], tf.string, name=BYTES_INPUT)],
        )
        self.predict_images = tf.function(
            self._predict_images,
            input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name=IMAGES_INPUT)],
        )
        self.model_variables = _captured_variables(self.signatures().values())

    def metadata(self):
        return {
            "class_names": self._class_names,
            "resize_mode": self._resize_mode,
            "image_size": self._image_size,
            "max_image_pixels": self._max_image_pixels,
            "refine": self._refine,
        }

    def signatures(self):
        return {
            SERVING_SIGNATURE: self.serve_bytes.get_concrete_function(),
            IMAGES_SIGNATURE: self.predict_images.get_concrete_function(),
        }

    def _run_model(self, images):
        """`(class_logits [B, C], box [B, 4])`; an empty batch skips the model."""
        num_classes = len(self._class_names)

        def run():
            outputs = self._keras.value(images, training=False)
            return tf.cast(outputs[CLASS_LOGITS], tf.float32), tf.cast(outputs[BOX], tf.float32)

        def empty():
            return tf.zeros([0, num_classes], tf.float32), tf.zeros([0, 4], tf.float32)

        # Some CPU kernels reject zero-sized batches (seen: BatchNormalization
        # under oneDNN), so an empty request never reaches the model.
        logits, box = tf.cond(tf.shape(images)[0] > 0, run, empty)
        logits.set_shape([None, num_classes])
        box.set_shape([None, 4])
        return logits, box

    def _predict_images(self, images):
        logits, box = self._run_model(images)
        return {CLASS_LOGITS: logits, PROBABILITIES: tf.nn.softmax(logits, axis=-1), BOX: box}

    def _prepare(self, data):
        """One encoded image -> `(uint8 [S, S, 3] model input, window [4])`, as in training."""
        if self._max_image_pixels > 0:
            pixels = encoded_image_pixels(data)
            check = tf.debugging.assert_less_equal(
                pixels, tf.constant(self._max_image_pixels, tf.int64),
                message=f"Image too large: more than {self._max_image_pixels} pixels (header size)",
            )
            with tf.control_dependencies([check]):
                data = tf.identity(data)
        image = ops.decode_image_bytes(data)
        return ops.resize_image(image, self._image_size, self._resize_mode)

    def _serve_bytes(self, image_bytes):
        size = self._image_size
        images, windows = tf.map_fn(
            self._prepare,
            image_bytes,
            fn_output_signature=(
                tf.TensorSpec([size, size, 3], tf.uint8),
                tf.TensorSpec([4], tf.float32),
            ),
        )
        logits, box = self._run_model(images)
        probabilities = tf.nn.softmax(logits, axis=-1)
        box = ops.to_original_frame(box, windows)
        if self._refine:
            # The second, zoomed look (localizer.inference): decode again rather
            # than carry variable-size images through map_fn.
            zoom_images, zoom_windows = tf.map_fn(
                self._prepare_zoom, (image_bytes, box),
                fn_output_signature=(tf.TensorSpec([size, size, 3], tf.uint8), tf.TensorSpec([4], tf.float32)),
            )
            zoom_logits, zoom_box = self._run_model(zoom_images)
            box, probabilities = inference.merge_refinement(
                box, probabilities, ops.to_original_frame(zoom_box, zoom_windows), tf.nn.softmax(zoom_logits, axis=-1)
            )
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        class_names = tf.constant(self._class_names, tf.string, name="class_names")
        return {
            CLASS_ID: class_id,
            CLASS_NAME: tf.gather(class_names, class_id),
            SCORE: tf.reduce_max(probabilities, axis=-1),
            BOX: box,
            PROBABILITIES: probabilities,
        }

    def _prepare_zoom(self, inputs):
        data, box = inputs
        return inference.render_zoom_view(ops.decode_image_bytes(data), box, self._image_size, self._resize_mode)


def _captured_variables(functions):
    """The tf.Variables the concrete `functions` read, each once."""
    found = {}
    for function in functions:
        for variable in function.variables:
            found.setdefault(id(variable), variable)
    return list(found.values())


def encoded_image_pixels(data):
    """Height x width (int64) from a JPEG or PNG header, without decoding; 0 for other formats."""

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return shape[0] * shape[1]

    def png():
        # IHDR: big-endian uint32 width and height at bytes 16..24.
        size = tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.int32, little_endian=False)
        size = tf.bitwise.bitwise_and(tf.cast(size, tf.int64), 0xFFFFFFFF)
        return size[0] * size[1]

    is_png = tf.logical_and(
        tf.strings.length(data) >= 24, tf.equal(tf.strings.substr(data, 0, 8), _PNG_SIGNATURE)
    )
    return tf.cond(
        tf.io.is_jpeg(data), jpeg, lambda: tf.cond(is_png, png, lambda: tf.constant(0, tf.int64))
    )


# ----------------------------------------------------------------------------
# Versions and the atomic write
# ----------------------------------------------------------------------------


def existing_versions(export_dir):
    """Sorted version numbers of the numbered folders in `export_dir`."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(
        int(name) for name in os.listdir(export_dir)
        if _VERSION.match(name) and os.path.isdir(os.path.join(export_dir, name))
    )


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(export_dir):
    """Removes `.tmp-<pid>-*` folders left by killed exports; returns their paths.

    A folder is stale when its process is gone, or is this process and is not
    one of its exports in progress. Exports running in other live processes
    are left alone.
    """
    removed = []
    if not os.path.isdir(export_dir):
        return removed
    for name in os.listdir(export_dir):
        match = _TEMPORARY.match(name)
        path = os.path.join(export_dir, name)
        if not match or path in _ACTIVE:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or not _process_alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _check_version(version):
    if isinstance(version, bool) or int(version) != version or version < 1:
        raise ValueError(f"version must be a positive integer; got {version!r}.")
    return int(version)


def export_saved_model(model, export_dir, version=None, max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS,
                       verify=True, tflite=False, refine=False):
    """Exports `model` to `<export_dir>/<version>/`; returns that path.

    Args:
      model: a localizer (`localizer.model.build_model` or a loaded `.keras`).
      export_dir: the model base path TF Serving is pointed at.
      version: positive integer; default: one more than the highest existing
        version (1 in an empty folder). An existing version is refused.
      max_image_pixels: see `DEFAULT_MAX_IMAGE_PIXELS`.
      verify: load the written SavedModel back (with `tf.saved_model.load`
        and with the TF1 session loader TF Serving's C++ uses) and check it
        against `model` on two generated images before publishing it.
      tflite: also write `assets.extra/localizer.tflite` in the version
        folder: `predict_images` (uint8 model inputs) converted to TFLite,
        checked against the SavedModel. Decoding and resizing stay with the
        caller (TFLite has no image decoding ops).
      refine: serving_default takes the second, zoomed look around the first
        box (`localizer.inference`; ~2x the compute per image).

    Raises:
      FileExistsError: `version` exists already.
      ExportVerificationError: the loaded export disagrees with the model.
    """
    export_dir = os.path.abspath(export_dir)
    os.makedirs(export_dir, exist_ok=True)
    remove_stale_temporaries(export_dir)
    if version is not None:
        version = _check_version(version)
        if version in existing_versions(export_dir):
            raise FileExistsError(f"Version {version} exists already: {os.path.join(export_dir, str(version))}.")

    module = LocalizerServing(model, max_image_pixels, refine)
    temporary = os.path.join(export_dir, f"{TEMPORARY_PREFIX}{os.getpid()}-{uuid.uuid4().hex}")
    _ACTIVE.add(temporary)
    try:
        _write(module, temporary)
        if verify:
            verify_export(temporary, model, refine=refine)
        if tflite:
            export_tflite(temporary, os.path.join(temporary, TFLITE_FILE))
        return _publish(temporary, export_dir, version)
    finally:
        _ACTIVE.discard(temporary)
        if os.path.exists(temporary):
            shutil.rmtree(temporary, ignore_errors=True)


def _write(module, path):
    """The SavedModel with its signatures and the two assets."""
    metadata = module.metadata()
    with tempfile.TemporaryDirectory() as assets:
        names_file = os.path.join(assets, CLASS_NAMES_ASSET)
        with open(names_file, "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in metadata["class_names"]))
        metadata_file = os.path.join(assets, METADATA_ASSET)
        with open(metadata_file, "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=2)
        module.class_names_file = tf.saved_model.Asset(names_file)
        module.metadata_file = tf.saved_model.Asset(metadata_file)
        tf.saved_model.save(module, path, signatures=module.signatures())


def _publish(temporary, export_dir, version):
    """Renames the finished export to its number (the next free one if `version` is None)."""
    number = version or max(existing_versions(export_dir), default=0) + 1
    while True:
        final = os.path.join(export_dir, str(number))
        if not os.path.exists(final):
            try:
                os.rename(temporary, final)
                return final
            except OSError:
                # A concurrent export published this number first (renaming
                # onto a non-empty folder fails): refuse, or take the next one.
                if not os.path.exists(final):
                    raise
        if version is not None:
            raise FileExistsError(f"Version {version} exists already: {final}.")
        number += 1


# ----------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------


def keras_predictions(model, image_bytes, refine=False):
    """What serving_default must return, computed eagerly with the Keras model.

    The same preprocessing as training (`decode_image_bytes`, `resize_image`)
    and `to_original_frame`, and with `refine` the zoomed second look of
    `localizer.inference`; returns numpy arrays keyed like the signature.
    """
    metadata = model_lib.model_metadata(model)
    size, mode = metadata["image_size"], metadata["resize_mode"]
    decoded = [ops.decode_image_bytes(tf.constant(data)) for data in image_bytes]
    images, windows = zip(*(ops.resize_image(image, size, mode) for image in decoded))
    outputs = model(tf.stack(images), training=False)
    probabilities = tf.nn.softmax(tf.cast(outputs[CLASS_LOGITS], tf.float32), axis=-1)
    box = ops.to_original_frame(tf.cast(outputs[BOX], tf.float32), tf.stack(windows))
    if refine:
        zoom_images, zoom_windows = zip(*(
            inference.render_zoom_view(image, first_box, size, mode) for image, first_box in zip(decoded, box)
        ))
        zoom = model(tf.stack(zoom_images), training=False)
        box, probabilities = inference.merge_refinement(
            box, probabilities, ops.to_original_frame(tf.cast(zoom[BOX], tf.float32), tf.stack(zoom_windows)),
            tf.nn.softmax(tf.cast(zoom[CLASS_LOGITS], tf.float32), axis=-1),
        )
    probabilities = probabilities.numpy()
    class_id = probabilities.argmax(axis=-1).astype(np.int32)
    return {
        CLASS_ID: class_id,
        CLASS_NAME: np.array([metadata["class_names"][i].encode() for i in class_id], dtype=object),
        SCORE: probabilities.max(axis=-1),
        BOX: box.numpy(),
        PROBABILITIES: probabilities,
    }


def _check_images(image_size):
    """A landscape JPEG and a portrait PNG, deterministic, for `verify_export`."""
    rng = np.random.default_rng(0)
    landscape = rng.integers(0, 256, size=(image_size * 3 // 4 + 5, image_size * 2 + 3, 3), dtype=np.uint8)
    portrait = rng.integers(0, 256, size=(image_size + 7, image_size // 2 + 1, 3), dtype=np.uint8)
    return [tf.io.encode_jpeg(landscape).numpy(), tf.io.encode_png(portrait).numpy()]


def _computes_in_low_precision(model):
    """Whether any layer of `model` (nested models included) computes in float16/bfloat16."""
    stack = [model]
    while stack:
        layer = stack.pop()
        if getattr(layer, "compute_dtype", None) in ("float16", "bfloat16"):
            return True
        stack.extend(getattr(layer, "layers", []))
    return False


def verify_export(path, model, atol=None, refine=False):
    """Loads the SavedModel at `path` and checks both signatures against `model`.

    `atol` defaults to 1e-4, or 1e-2 for a model computing in float16/bfloat16
    (mixed precision), where eager and graph kernels may round differently.
    """
    if atol is None:
        atol = 1e-2 if _computes_in_low_precision(model) else 1e-4
    loaded = tf.saved_model.load(path)
    missing = {SERVING_SIGNATURE, IMAGES_SIGNATURE} - set(loaded.signatures)
    if missing:
        raise ExportVerificationError(f"{path}: signatures {sorted(missing)} missing.")
    metadata = model_lib.model_metadata(model)
    data = _check_images(metadata["image_size"])
    expected = keras_predictions(model, data, refine)
    served = loaded.signatures[SERVING_SIGNATURE](**{BYTES_INPUT: tf.constant(data)})
    names = served[CLASS_NAME].numpy()
    if not np.array_equal(names, np.array([metadata["class_names"][i].encode() for i in served[CLASS_ID].numpy()],
                                          dtype=object)):
        raise ExportVerificationError(f"{path}: class_name does not match class_id.")
    # Near-ties may flip with float rounding; only clear winners must agree.
    top_two = np.sort(expected[PROBABILITIES], axis=-1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 10 * atol
    if not np.array_equal(names[clear], expected[CLASS_NAME][clear]):
        raise ExportVerificationError(f"{path}: classes differ from the Keras model's.")
    for key in (SCORE, BOX, PROBABILITIES):
        error = float(np.max(np.abs(served[key].numpy() - expected[key])))
        if error > atol:
            raise ExportVerificationError(f"{path}: {key} differs from the Keras model's by {error:.2e}.")
    image, _ = ops.resize_image(ops.decode_image_bytes(tf.constant(data[0])), metadata["image_size"],
                                metadata["resize_mode"])
    raw = loaded.signatures[IMAGES_SIGNATURE](**{IMAGES_INPUT: image[None]})
    reference = model(image[None], training=False)
    error = float(np.max(np.abs(raw[BOX].numpy() - reference[BOX].numpy())))
    if error > atol:
        raise ExportVerificationError(f"{path}: predict_images box differs from the Keras model's by {error:.2e}.")
    empty = loaded.signatures[SERVING_SIGNATURE](**{BYTES_INPUT: tf.zeros([0], tf.string)})
    if empty[BOX].shape != (0, 4):
        raise ExportVerificationError(f"{path}: an empty batch gives box shape {empty[BOX].shape}.")
    in_session = run_in_session(path, SERVING_SIGNATURE, {BYTES_INPUT: data})
    error = float(np.max(np.abs(in_session[BOX] - served[BOX].numpy())))
    if error > atol:
        raise ExportVerificationError(f"{path}: loaded in a TF1 session (as TF Serving does), box differs by {error:.2e}.")


def run_in_session(path, signature, inputs):
    """Runs a signature the way TF Serving does: TF1 SavedModel loader, then `Session.run`.

    The loader imports the graph, restores the variables with the saver and
    runs the init op (assets), like TF Serving's C++ `LoadSavedModel`; the
    signature's inputs and outputs are fed and fetched by tensor name.
    Returns `{output name: numpy array}`.
    """
    logger, level = tf.get_logger(), tf.get_logger().level
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        logger.setLevel("ERROR")  # the TF1 loader's deprecation notice
        try:
            meta_graph = tf.compat.v1.saved_model.loader.load(session, [tf.saved_model.SERVING], path)
        finally:
            logger.setLevel(level)
        signature_def = meta_graph.signature_def[signature]
        feeds = {signature_def.inputs[name].name: value for name, value in inputs.items()}
        fetches = {name: info.name for name, info in signature_def.outputs.items()}
        return session.run(fetches, feeds)


def export_tflite(saved_model_dir, output_path, atol=1e-4):
    """Converts the export's `predict_images` to TFLite and checks its outputs; returns the path."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[IMAGES_SIGNATURE])
    content = converter.convert()
    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    with open(output_path, "wb") as f:
        f.write(content)
    metadata = load_metadata(saved_model_dir)
    images = tf.stack([
        ops.resize_image(ops.decode_image_bytes(tf.constant(data)), metadata["image_size"], metadata["resize_mode"])[0]
        for data in _check_images(metadata["image_size"])
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


def load_metadata(version_dir):
    """`metadata.json` of an export (class_names, resize_mode, image_size, max_image_pixels)."""
    with open(os.path.join(version_dir, "assets", METADATA_ASSET), encoding="utf-8") as f:
        return json.load(f)


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------


def main(argv):
    del argv
    import keras
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # SavedModel's INFO lines about renamed captures
    model = keras.models.load_model(FLAGS.model, compile=False)
    try:
        path = export_saved_model(
            model, FLAGS.export_dir, version=FLAGS.version, max_image_pixels=FLAGS.max_image_pixels,
            tflite=FLAGS.tflite, refine=FLAGS.refine,
        )
    except (FileExistsError, ValueError, ExportVerificationError) as error:
        sys.exit(f"Export failed: {error}")
    metadata = load_metadata(path)
    print(f"Exported {FLAGS.model} -> {path}")
    print(f"  {len(metadata['class_names'])} classes, {metadata['resize_mode']} to {metadata['image_size']} px")
    print(f"  signatures: {SERVING_SIGNATURE} ({BYTES_INPUT}: string [B]), "
          f"{IMAGES_SIGNATURE} ({IMAGES_INPUT}: uint8 [B, {metadata['image_size']}, {metadata['image_size']}, 3])")
    if FLAGS.tflite:
        print(f"  TFLite (predict_images only): {os.path.join(path, TFLITE_FILE)}")
    print(f"  serve: tensorflow_model_server --rest_api_port=8501 --model_name=localizer "
          f"--model_base_path={os.path.dirname(path)}")


if __name__ == "__main__":
    from absl import app

    flags.DEFINE_string("model", None, "The .keras model to export.")
    flags.DEFINE_string("export_dir", "models/localizer", "Model base path; the version folder goes inside.")
    flags.DEFINE_integer("version", None, "Version number (default: the next free one).")
    flags.DEFINE_integer("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS,
                         "serving_default refuses JPEG/PNG images with more pixels (0: no limit).")
    flags.DEFINE_boolean("tflite", False, "Also write assets.extra/localizer.tflite (predict_images, checked).")
    flags.DEFINE_boolean("refine", True, "serving_default takes a second, zoomed look around the first box "
                         "(--norefine: one look, about half the compute).")
    flags.mark_flag_as_required("model")
    app.run(main)

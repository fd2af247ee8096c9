"""Checks of a written export against the Keras model: eagerly, and in a TF1
session the way TF Serving's C++ loads it.

`reference_predictions` is the independent reference: what serving_default
must return, computed step by step with eager ops, not with the serving code.
"""

import numpy as np
import tensorflow as tf

from localizer import model as model_lib
from localizer.inference import views
from localizer.model.outputs import BOX, BOX_QUALITY, CLASS_LOGITS
from localizer.serving.signatures import (
    BYTES_INPUT, CLASS_ID, CLASS_NAME, IMAGES_INPUT, IMAGES_SIGNATURE, PROBABILITIES, SCORE, SERVING_SIGNATURE,
)
from pipelines import decode, render


class ExportVerificationError(RuntimeError):
    """The SavedModel, loaded back, does not reproduce the Keras model."""


def reference_predictions(model, image_bytes, refine=False):
    """What serving_default must return: the independent reference, computed eagerly.

    Step by step with the pipeline's ops (`decode_image_bytes`, `resize_image`,
    `to_original_frame`) and, with `refine`, the zoomed second look, not with
    the serving graph's code; returns numpy arrays keyed like the signature.
    """
    metadata = model_lib.model_metadata(model)
    size, mode = metadata["image_size"], metadata["resize_mode"]
    decoded = [decode.decode_image_bytes(tf.constant(data)) for data in image_bytes]
    images, windows = zip(*(render.resize_image(image, size, mode) for image in decoded))
    outputs = model(tf.stack(images), training=False)
    probabilities = tf.nn.softmax(tf.cast(outputs[CLASS_LOGITS], tf.float32), axis=-1)
    box = render.to_original_frame(tf.cast(outputs[BOX], tf.float32), tf.stack(windows))
    quality = outputs.get(BOX_QUALITY)
    if refine:
        zoom_images, zoom_windows = zip(*(
            views.render_zoom_view(image, first_box, size, mode) for image, first_box in zip(decoded, box)
        ))
        zoom = model(tf.stack(zoom_images), training=False)
        zoom_box = render.to_original_frame(tf.cast(zoom[BOX], tf.float32), tf.stack(zoom_windows))
        box, probabilities, quality = views.merge_refinement(
            box, probabilities, zoom_box, tf.nn.softmax(tf.cast(zoom[CLASS_LOGITS], tf.float32), axis=-1),
            quality, zoom.get(BOX_QUALITY),
        )
    probabilities = probabilities.numpy()
    class_id = probabilities.argmax(axis=-1).astype(np.int32)
    expected = {
        CLASS_ID: class_id,
        CLASS_NAME: np.array([metadata["class_names"][i].encode() for i in class_id], dtype=object),
        SCORE: probabilities.max(axis=-1),
        BOX: box.numpy(),
        PROBABILITIES: probabilities,
    }
    if quality is not None:
        expected[BOX_QUALITY] = np.asarray(quality, np.float32)
    return expected


def check_images(image_size):
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
    data = check_images(metadata["image_size"])
    expected = reference_predictions(model, data, refine)
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
    if set(served) != set(expected):
        raise ExportVerificationError(f"{path}: serving_default outputs {sorted(served)}, the Keras model's "
                                      f"would be {sorted(expected)}.")
    for key in (SCORE, BOX, PROBABILITIES, BOX_QUALITY):
        if key not in expected:
            continue
        error = float(np.max(np.abs(served[key].numpy() - expected[key])))
        if error > atol:
            raise ExportVerificationError(f"{path}: {key} differs from the Keras model's by {error:.2e}.")
    image, _ = render.resize_image(decode.decode_image_bytes(tf.constant(data[0])), metadata["image_size"],
                                metadata["resize_mode"])
    raw = loaded.signatures[IMAGES_SIGNATURE](**{IMAGES_INPUT: image[None]})
    reference = model(image[None], training=False)
    for key in (BOX, BOX_QUALITY):
        if key not in reference:
            continue
        error = float(np.max(np.abs(raw[key].numpy() - reference[key].numpy())))
        if error > atol:
            raise ExportVerificationError(f"{path}: predict_images {key} differs from the Keras model's by {error:.2e}.")
    empty = loaded.signatures[SERVING_SIGNATURE](**{BYTES_INPUT: tf.zeros([0], tf.string)})
    if empty[BOX].shape != (0, 4):
        raise ExportVerificationError(f"{path}: an empty batch gives box shape {empty[BOX].shape}.")
    if BOX_QUALITY in empty and empty[BOX_QUALITY].shape != (0,):
        raise ExportVerificationError(f"{path}: an empty batch gives box_quality shape {empty[BOX_QUALITY].shape}.")
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

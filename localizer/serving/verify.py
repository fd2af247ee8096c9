"""Checks of a written export against the Keras model: eagerly, and in a TF1
session the way TF Serving's C++ loads it.

`reference_predictions` is the independent reference: what serving_default
must return, computed step by step with eager ops, not with the serving code.
"""

import collections
import contextlib
import dataclasses

import numpy as np
import tensorflow as tf

from localizer import model as model_lib
from localizer.model.outputs import BOX, BOX_QUALITY, CLASS_LOGITS
from localizer.ops import views
from localizer.serving import calibration
from localizer.serving.signatures import (
    BYTES_INPUT,
    CLASS_ID,
    CLASS_NAME,
    IMAGES_INPUT,
    IMAGES_SIGNATURE,
    PROBABILITIES,
    SCORE,
    SERVING_SIGNATURE,
)
from pipelines import decode, render
from pipelines.sources import synthetic
from pipelines.sources.source import IMAGE


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
    images, windows = zip(
        *(render.resize_image(image, size, mode) for image in decoded), strict=True
    )
    outputs = model(tf.stack(images), training=False)
    probabilities = tf.nn.softmax(tf.cast(outputs[CLASS_LOGITS], tf.float32), axis=-1)
    box = render.to_original_frame(tf.cast(outputs[BOX], tf.float32), tf.stack(windows))
    quality = outputs.get(BOX_QUALITY)
    if refine:
        zoom_images, zoom_windows = zip(
            *(
                views.render_zoom_view(image, first_box, size, mode)
                for image, first_box in zip(decoded, box, strict=True)
            ),
            strict=True,
        )
        zoom = model(tf.stack(zoom_images), training=False)
        zoom_box = render.to_original_frame(tf.cast(zoom[BOX], tf.float32), tf.stack(zoom_windows))
        refined = views.merge_refinement(
            views.Look(box, probabilities, quality=quality),
            views.Look(
                zoom_box,
                tf.nn.softmax(tf.cast(zoom[CLASS_LOGITS], tf.float32), axis=-1),
                quality=zoom.get(BOX_QUALITY),
            ),
        )
        box, probabilities, quality = refined.boxes, refined.probabilities, refined.quality
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


CheckImage = collections.namedtuple("CheckImage", ["kind", "name", "data"])
"""One image the export is checked on: its `kind` and `name` for messages (where it came from),
`data` its JPEG
or PNG bytes."""

CHECK_PHOTOS = 8
"""Photos (of the run's validation split, else generated ones) the export is checked on."""

SEED = 1
"""Seeds the sample of check photos (calibration.SEED seeds int8's calibration sample)."""


def noise_images(image_size):
    """A landscape JPEG and a portrait PNG of noise: the edge case, where a trained model's box may
    land
    in the letterbox padding (`pipelines.boxes.clip_to_image` then decides it).
    """
    rng = np.random.default_rng(0)
    landscape = rng.integers(
        0, 256, size=(image_size * 3 // 4 + 5, image_size * 2 + 3, 3), dtype=np.uint8
    )
    portrait = rng.integers(0, 256, size=(image_size + 7, image_size // 2 + 1, 3), dtype=np.uint8)
    return [
        CheckImage("noise", "noise 0 (landscape JPEG)", tf.io.encode_jpeg(landscape).numpy()),
        CheckImage("noise", "noise 1 (portrait PNG)", tf.io.encode_png(portrait).numpy()),
    ]


def _encoded(image, index):
    """Every other check photo a PNG, so that both decoders are checked."""
    return (tf.io.encode_png(image) if index % 2 else tf.io.encode_jpeg(image, quality=95)).numpy()


def generated_check_images(image_size, count=CHECK_PHOTOS, seed=SEED):
    """Photo-like images (the synthetic source's: one object on clutter, of many sizes and aspect
    ratios), then `noise_images`: what the export is checked on when the model's own data is
    unknown.
    """
    sizes = (
        image_size // 2,
        image_size * 2,
    )  # smaller and larger than the model's input, every aspect ratio
    images = [
        synthetic.render_example(tf.constant([seed, i], tf.int64), sizes)[IMAGE]
        for i in range(count)
    ]
    return [
        CheckImage("generated", f"generated {i}", _encoded(image, i))
        for i, image in enumerate(images)
    ] + noise_images(image_size)


def dataset_check_images(source, split, image_size, count=CHECK_PHOTOS, seed=SEED):
    """A seeded sample of `split`'s photos, decoded as training decodes them and re-encoded, then
    `noise_images`: what the model is for, and the edge case.
    """
    indices, _ = calibration.sample_indices(calibration.split_size(source, split), count, 0, seed)
    kind = f"{source.name} {split}"
    return [
        CheckImage(kind, f"{kind} {example_id}", _encoded(image, i))
        for i, (example_id, image) in enumerate(calibration.decoded_images(source, split, indices))
    ] + noise_images(image_size)


def _computes_in_low_precision(model):
    """Whether any layer of `model` (nested models included) computes in float16/bfloat16."""
    stack = [model]
    while stack:
        layer = stack.pop()
        if getattr(layer, "compute_dtype", None) in ("float16", "bfloat16"):
            return True
        stack.extend(getattr(layer, "layers", []))
    return False


@dataclasses.dataclass(frozen=True)
class CheckFigures:
    """What a passed check measured, for the export's summary: `figures` are texts like
    `median box difference 0.012 (at most 0.05)`.
    """

    what: str
    images: str
    figures: tuple

    def shown(self):
        return ", ".join(self.figures)

    def line(self):
        return f"{self.what} on {self.images}: {self.shown()}"


def describe(kinds):
    """`10 images (8 voc_dir val, 2 noise)`: how many images of which kinds (one kind per image, in
    order)."""
    counts = collections.Counter(kinds)
    return (
        f"{sum(counts.values())} images ({', '.join(f'{n} {kind}' for kind, n in counts.items())})"
    )


def _worst(differences):
    """`(largest difference, index of its image)` of `[N, ...]` absolute differences."""
    per_image = differences.reshape(len(differences), -1).max(axis=1)
    return float(per_image.max()), int(per_image.argmax())


BUG = (
    "nothing was published; this is a bug in the export: report it with this line and the output "
    "of --debug"
)


FLOAT_TOLERANCE = 1e-4
"""How far a float32 export's outputs may be from what it is checked against: the SavedModel's
from the Keras model, and the float TFLite and ONNX files' from the SavedModel (largest absolute
difference of any output on any check image). Runtimes and fused kernels sum in other orders,
which moves logits of magnitude ~10 by ~1e-6 (measured up to 9e-6 on the realmix model); a wrong
op (a BatchNormalization, the resize, a missing softmax) moves them by 1e-2 or more."""

LOW_PRECISION_TOLERANCE = 1e-2
"""`FLOAT_TOLERANCE` for a model computing in float16/bfloat16 (mixed precision), where eager and
graph kernels may round differently."""


def verify_export(path, model, check_images, atol=None, refine=False):
    """Loads the SavedModel at `path` and checks both signatures against `model` on `check_images`.

    `atol` defaults to `FLOAT_TOLERANCE`, or `LOW_PRECISION_TOLERANCE` for a mixed-precision
    model.
    Returns the `CheckFigures`; raises ExportVerificationError naming what
    differs, by how much and on which check image.
    """
    if atol is None:
        atol = LOW_PRECISION_TOLERANCE if _computes_in_low_precision(model) else FLOAT_TOLERANCE
    loaded = tf.saved_model.load(path)
    missing = {SERVING_SIGNATURE, IMAGES_SIGNATURE} - set(loaded.signatures)
    if missing:
        raise ExportVerificationError(f"the export lacks the signatures {sorted(missing)}; {BUG}")
    metadata = model_lib.model_metadata(model)
    data = [image.data for image in check_images]
    expected = reference_predictions(model, data, refine)
    served = {
        key: value.numpy()
        for key, value in loaded.signatures[SERVING_SIGNATURE](
            **{BYTES_INPUT: tf.constant(data)}
        ).items()
    }
    if set(served) != set(expected):
        raise ExportVerificationError(
            f"serving_default outputs {sorted(served)}, the Keras model's would be "
            f"{sorted(expected)}; {BUG}"
        )
    _check_classes(served, expected, metadata["class_names"], check_images, atol)
    figures = []
    for key in (SCORE, BOX, PROBABILITIES, BOX_QUALITY):
        if key not in expected:
            continue
        error, worst = _worst(np.abs(served[key] - expected[key]))
        if error > atol:
            raise ExportVerificationError(
                f"the exported serving_default's {key} differs from the Keras model's by "
                f"{error:.2e} (limit {atol:.0e}) on check image {check_images[worst].name}; {BUG}"
            )
        figures.append(f"{key} {error:.1e}")
    _check_predict_images(loaded, model, data[0], metadata, atol)
    _check_empty_batch(loaded)
    in_session = run_in_session(path, SERVING_SIGNATURE, {BYTES_INPUT: data})
    error, worst = _worst(np.abs(in_session[BOX] - served[BOX]))
    if error > atol:
        raise ExportVerificationError(
            f"the export loaded in a TF1 session (as TF Serving does) gives a box {error:.2e} from "
            f"the eager one (limit {atol:.0e}) on check image {check_images[worst].name}; {BUG}"
        )
    return CheckFigures(
        "serving_default against the Keras model",
        describe(image.kind for image in check_images),
        (f"largest differences {', '.join(figures)} (each at most {atol:.0e})",),
    )


def _check_classes(served, expected, class_names, check_images, atol):
    """class_name matches class_id, and the classes are the Keras model's where it has a clear
    winner."""
    names = served[CLASS_NAME]
    if not np.array_equal(
        names, np.array([class_names[i].encode() for i in served[CLASS_ID]], dtype=object)
    ):
        raise ExportVerificationError(f"the exported class_name does not match class_id; {BUG}")
    # Near-ties may flip with float rounding; only clear winners must agree.
    top_two = np.sort(expected[PROBABILITIES], axis=-1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 10 * atol
    differ = np.flatnonzero(clear & (names != expected[CLASS_NAME]))
    if len(differ):
        image = differ[0]
        raise ExportVerificationError(
            f"the exported serving_default says {names[image].decode()!r} where the Keras model "
            f"says {expected[CLASS_NAME][image].decode()!r} on check image "
            f"{check_images[image].name}; {BUG}"
        )


def render_encoded(data, image_size, resize_mode):
    """One encoded image as the model sees it: decoded upright and resized as in training, uint8
    `[S, S, 3]`."""
    image, _ = render.resize_image(
        decode.decode_image_bytes(tf.constant(data)), image_size, resize_mode
    )
    return image


def _check_predict_images(loaded, model, data, metadata, atol):
    image = render_encoded(data, metadata["image_size"], metadata["resize_mode"])
    raw = loaded.signatures[IMAGES_SIGNATURE](**{IMAGES_INPUT: image[None]})
    reference = model(image[None], training=False)
    for key in (BOX, BOX_QUALITY):
        if key not in reference:
            continue
        error = float(np.max(np.abs(raw[key].numpy() - reference[key].numpy())))
        if error > atol:
            raise ExportVerificationError(
                f"the exported predict_images' {key} differs from the Keras model's by "
                f"{error:.2e} (limit {atol:.0e}); {BUG}"
            )


def _check_empty_batch(loaded):
    empty = loaded.signatures[SERVING_SIGNATURE](**{BYTES_INPUT: tf.zeros([0], tf.string)})
    if empty[BOX].shape != (0, 4):
        raise ExportVerificationError(f"an empty batch gives box shape {empty[BOX].shape}; {BUG}")
    if BOX_QUALITY in empty and empty[BOX_QUALITY].shape != (0,):
        raise ExportVerificationError(
            f"an empty batch gives box_quality shape {empty[BOX_QUALITY].shape}; {BUG}"
        )


def run_in_session(path, signature, inputs):
    """Runs a signature the way TF Serving does: TF1 SavedModel loader, then `Session.run`.

    Returns `{output name: numpy array}`; see `tf1_session`.
    """
    with tf1_session(path, signature) as run:
        return run(inputs)


@contextlib.contextmanager
def tf1_session(path, signature):
    """`run(inputs) -> {output name: numpy array}` over one TF1 session that loaded the SavedModel.

    The loader imports the graph, restores the variables with the saver and
    runs the init op (assets), like TF Serving's C++ `LoadSavedModel`, once;
    each call feeds and fetches the signature's tensors by name, as a served
    request does. The session's graph is the default only while it loads, so eager code keeps
    running eagerly inside the block (a benchmark times both side by side).
    """
    logger, level = tf.get_logger(), tf.get_logger().level
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    try:
        with graph.as_default():
            logger.setLevel("ERROR")  # the TF1 loader's deprecation notice
            try:
                meta_graph = tf.compat.v1.saved_model.loader.load(
                    session, [tf.saved_model.SERVING], path
                )
            finally:
                logger.setLevel(level)
        signature_def = meta_graph.signature_def[signature]
        fetches = {name: info.name for name, info in signature_def.outputs.items()}

        def run(inputs):
            feeds = {signature_def.inputs[name].name: value for name, value in inputs.items()}
            return session.run(fetches, feeds)

        yield run
    finally:
        session.close()

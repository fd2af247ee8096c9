"""A trained localizer, loaded from a `.keras` file, an exported SavedModel or its TFLite or ONNX
file, ready to run on images."""

import os
import threading
import zipfile
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from localizer import model as model_lib
from localizer.ops import views
from localizer.serving import signatures
from pipelines.errors import UserError


class ModelFileError(UserError, ValueError):
    """The model path is missing, or is not a localizer `.keras` file or exported SavedModel."""


MODEL_HINT = (
    "pass --model=<a .keras file from training, an export's version folder such as "
    "models/localizer/1, or a .tflite or .onnx file in its assets.extra/>"
)
TFLITE_SUFFIX = ".tflite"
ONNX_SUFFIX = ".onnx"


def load_keras_model(path, hint=MODEL_HINT):
    """A localizer `.keras` file, loaded safely (no Lambda layers); one-line errors for the usual
    mistakes."""
    if not os.path.exists(path):
        raise ModelFileError(f"model {path} not found; {hint}")
    if os.path.isdir(path) or not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"model {path} is not a .keras file (not a zip archive: truncated, or another "
            f"format); {hint}"
        )
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
        model_lib.model_metadata(model)
    except Exception as error:  # Keras raises many types for a damaged or foreign archive
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ModelFileError(
            f"model {path} cannot be loaded as a localizer ({first}); {hint}"
        ) from None
    return model


def load_saved_model(path):
    """An exported version folder: `(loaded SavedModel, metadata)`; one-line errors for folders that
    are not."""
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ModelFileError(
            f"model folder {path} is not an exported SavedModel (no saved_model.pb); {MODEL_HINT}"
        )
    try:
        loaded = tf.saved_model.load(path)
        loaded.signatures[signatures.IMAGES_SIGNATURE]
    except (
        Exception
    ) as error:  # damaged protobufs, missing variables or assets, another model's export
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ModelFileError(
            f"model folder {path} cannot be loaded as a localizer export ({first}); export it again"
        ) from None
    return loaded, signatures.load_metadata(
        path
    )  # its own one-line errors name the file and the field


def load_tflite(path):
    """A `.tflite` file of an export: `(predict_images signature runner, metadata)`; one-line
    errors.

    The class names, image size and resize mode are the export's
    (`metadata.json`), so the file must lie in its `<version>/assets.extra/`.
    """
    from localizer.serving import tflite

    if not os.path.isfile(path):
        raise ModelFileError(f"model {path} not found; {MODEL_HINT}")
    version_dir = signatures.export_of_model_file(path)
    if version_dir is None:
        raise ModelFileError(
            f"model {path} is not in an export's {signatures.ASSETS_EXTRA}/ folder, where its "
            f"class names, image size and resize mode are ({signatures.METADATA_ASSET}); pass "
            f"the file as the export wrote it (<export_dir>/<version>/{signatures.TFLITE_FILE})"
        )
    metadata = signatures.load_metadata(version_dir)
    size = metadata["image_size"]
    try:
        # All cores, as TensorFlow uses for the SavedModel (the interpreter's default is one
        # thread).
        runner = tflite.interpreter(path=path, num_threads=os.cpu_count()).get_signature_runner(
            signatures.IMAGES_SIGNATURE
        )
        shape = [
            int(v)
            for v in runner.get_input_details()[signatures.IMAGES_INPUT]["shape_signature"][1:]
        ]
        outputs = {}
        if shape == [
            size,
            size,
            3,
        ]:  # the outputs have no static shape (the empty-batch branch hides
            outputs = runner(
                **{signatures.IMAGES_INPUT: np.zeros([1, *shape], np.uint8)}
            )  # it): one image shows it
    except Exception as error:  # a damaged flatbuffer, another model's file, no predict_images
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ModelFileError(
            f"model {path} cannot be loaded as a localizer TFLite file ({first}); {TFLITE_TODO}"
        ) from None
    problem = file_signature_problem(shape, outputs, metadata)
    if problem:
        # Checked now: a mismatch would otherwise surface on the first batch, as a TF stack.
        raise ModelFileError(
            f"model {path} {problem}: it is not the file this export wrote; {TFLITE_TODO}"
        )
    return runner, metadata


TFLITE_TODO = "export it again (--tflite or --tflite_int8)"


def file_output_shapes(num_classes, has_box_quality):
    """`{output name: shape after the batch}` of `predict_images` for a model of `num_classes`
    classes."""
    shapes = {
        signatures.OUTPUT_CLASS_LOGITS: [num_classes],
        signatures.PROBABILITIES: [num_classes],
        signatures.OUTPUT_BOX: [4],
    }
    if has_box_quality:
        shapes[signatures.OUTPUT_BOX_QUALITY] = []
    return shapes


def file_signature_problem(input_shape, outputs, metadata, source=None):
    """What in a TFLite (or ONNX) `predict_images` contradicts the export's `metadata`, in words;
    None when it fits.

    `input_shape`: its images' shape after the batch; `outputs`: `{name: array}` for one image;
    `source`: where `metadata` comes from, in words (default: the export's metadata.json).
    """
    source = source or f"its export's {signatures.METADATA_ASSET}"
    size, num_classes = metadata["image_size"], len(metadata["class_names"])
    if input_shape != [size, size, 3]:
        return f"takes images of shape {input_shape}, {source} says {size} px"
    expected = file_output_shapes(num_classes, signatures.OUTPUT_BOX_QUALITY in outputs)
    if set(outputs) != set(expected):
        return f"has the outputs {sorted(outputs)}, not {sorted(expected)}"
    for name, shape in expected.items():
        found = list(np.shape(outputs[name])[1:])
        if found != shape and shape == [num_classes]:
            return (
                f"gives {name} for {found[0] if len(found) == 1 else found} classes, {source} "
                f"names {num_classes}"
            )
        if found != shape:
            return f"gives {name} of shape {found}, not {shape}"
    return None


ONNX_TODO = "export it again (--onnx)"
ONNX_IMAGES_TYPE = "tensor(uint8)"
"""onnxruntime's name for the type of the images input."""


def load_onnx(path):
    """An ONNX file an export wrote: `(onnxruntime session, metadata)`; one-line errors.

    The class names, image size and resize mode are the file's own (its metadata_props, which
    `export --onnx` writes), so a copy outside the export runs too; a file in an export's
    `assets.extra/` must agree with that export's `metadata.json`. The session runs on every core.
    """
    from localizer.serving import onnx_export

    if not os.path.isfile(path):
        raise ModelFileError(f"model {path} not found; {MODEL_HINT}")
    onnx_export.require(onnx_export.RUNTIME_PACKAGES, f"model {path} (an .onnx file)")
    try:
        session = onnx_export.session(path)
        properties = session.get_modelmeta().custom_metadata_map
        (images,) = session.get_inputs()
        shape = list(images.shape[1:])
    except Exception as error:  # a damaged or truncated protobuf, a graph it cannot run
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ModelFileError(
            f"model {path} cannot be loaded as a localizer ONNX file ({first}); {ONNX_TODO}"
        ) from None
    metadata = _onnx_metadata(path, onnx_export.file_metadata(properties))
    if (images.name, images.type) != (signatures.IMAGES_INPUT, ONNX_IMAGES_TYPE):
        raise ModelFileError(
            f"model {path} takes {images.name} ({images.type}), not {signatures.IMAGES_INPUT} "
            f"({ONNX_IMAGES_TYPE}): it is not a file an export wrote; {ONNX_TODO}"
        )
    size = metadata["image_size"]
    outputs = {}
    if shape == [size, size, 3]:  # else the problem is the shape, named below
        try:  # the output shapes, from one image: checked now, not as a stack on the first batch
            outputs = onnx_export.run(session, np.zeros([1, size, size, 3], np.uint8))
        except Exception as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
            raise ModelFileError(
                f"model {path} does not run as a localizer ONNX file ({first}); {ONNX_TODO}"
            ) from None
    problem = file_signature_problem(shape, outputs, metadata, "its metadata_props")
    if problem:
        raise ModelFileError(
            f"model {path} {problem}: it is not a file an export wrote; {ONNX_TODO}"
        )
    return session, metadata


def _onnx_metadata(path, metadata):
    """The export metadata an ONNX file at `path` holds (`metadata`, read from its
    metadata_props), checked, and checked against its export's `metadata.json` when it lies in
    one; ModelFileError (one line) otherwise."""
    problem = signatures.metadata_problem(metadata)
    if problem:
        raise ModelFileError(
            f"model {path}: its metadata_props {problem}: it is not a file an export wrote; "
            f"{ONNX_TODO}"
        )
    version_dir = signatures.export_of_model_file(path)  # any file in <version>/assets.extra/
    if version_dir is None:
        return metadata
    exported = signatures.load_metadata(version_dir)
    differ = [field for field in signatures.METADATA_FIELDS if exported[field] != metadata[field]]
    if differ:
        raise ModelFileError(
            f"model {path} has {', '.join(f'{f}={metadata[f]!r}' for f in differ)} in its "
            f"metadata_props, its export's {signatures.metadata_path(version_dir)} "
            f"{', '.join(f'{f}={exported[f]!r}' for f in differ)}: it is another model's "
            f"file; {ONNX_TODO}"
        )
    return metadata


class Prediction(NamedTuple):
    """One image's prediction (`Predictor.predict_image`), in its original frame."""

    box: np.ndarray
    """`[4]` BOX_FORMAT."""
    probabilities: np.ndarray
    """`[C]` class probabilities."""
    quality: float | None
    """The predicted IoU of the box, for a model with a box-quality head; else None."""


class Predictor:
    """A trained localizer, from a `.keras` file, an exported SavedModel folder or its `.tflite`
    or `.onnx` file.

    `predict_inputs(images)` runs rendered model inputs (uint8 `[N, S, S, 3]`)
    and returns boxes in the input frame, class probabilities, for
    per-class heads of Keras models the box of every class, and for models
    with a box-quality head (`has_box_quality`) its predicted IoU of the box.
    """

    def __init__(self, path, refine_rule=views.REFINE_RULE):
        self.path = path
        self.refine_rule = refine_rule  # how `refine` merges the two looks (views.REFINE_RULES)
        self.keras_model = None  # the Keras model, when loaded from a .keras file
        if os.path.isdir(path):
            self._load_saved_model(path)
        elif path.endswith(TFLITE_SUFFIX):
            self._load_tflite(path)
        elif path.endswith(ONNX_SUFFIX):
            self._load_onnx(path)
        else:
            self._load_keras(path)

    @classmethod
    def from_model(cls, model, name="<model in memory>", refine_rule=views.REFINE_RULE):
        """A predictor over a localizer Keras model already in memory (a model being trained or
        audited), named `name` in what it reports."""
        predictor = cls.__new__(cls)
        predictor.path, predictor.refine_rule = name, refine_rule
        predictor._use_keras_model(model)
        return predictor

    def _load_keras(self, path):
        self._use_keras_model(load_keras_model(path))

    def _use_keras_model(self, model):
        self.keras_model = model
        self.metadata = model_lib.model_metadata(model)
        view = model_lib.prediction_view(model)  # adds class_boxes for per-class heads
        self._per_class = model_lib.CLASS_BOXES in view.output
        self.has_box_quality = model_lib.BOX_QUALITY in view.output
        self._run = tf.function(lambda images: view(images, training=False))

    def _load_saved_model(self, path):
        loaded, self.metadata = load_saved_model(path)
        signature = loaded.signatures[signatures.IMAGES_SIGNATURE]
        self._per_class = False
        self.has_box_quality = signatures.OUTPUT_BOX_QUALITY in signature.structured_outputs
        self._run = lambda images: signature(**{signatures.IMAGES_INPUT: images})
        self._loaded = loaded  # keeps the variables alive

    def _load_tflite(self, path):
        runner, self.metadata = load_tflite(path)
        self._per_class = False
        self.has_box_quality = signatures.OUTPUT_BOX_QUALITY in runner.get_output_details()
        lock = threading.Lock()  # an interpreter runs one call at a time
        shapes = file_output_shapes(len(self.metadata["class_names"]), self.has_box_quality)

        def run_numpy(images):
            if not len(images):
                return tuple(np.zeros([0, *shape], np.float32) for shape in shapes.values())
            with lock:  # the runner resizes its input to the batch
                outputs = runner(**{signatures.IMAGES_INPUT: images})
            return tuple(outputs[name] for name in shapes)

        self._run = _numpy_runner(run_numpy, shapes)

    def _load_onnx(self, path):
        from localizer.serving import onnx_export

        session, self.metadata = load_onnx(path)
        names = {output.name for output in session.get_outputs()}
        self._per_class = False
        self.has_box_quality = signatures.OUTPUT_BOX_QUALITY in names
        shapes = file_output_shapes(len(self.metadata["class_names"]), self.has_box_quality)

        def run_numpy(images):
            # No lock: an onnxruntime session runs calls from several threads at once.
            outputs = onnx_export.run(session, images)  # an empty batch too (checked on export)
            return tuple(outputs[name] for name in shapes)

        self._run = _numpy_runner(run_numpy, shapes)

    @property
    def class_names(self):
        return self.metadata["class_names"]

    @property
    def image_size(self):
        return self.metadata["image_size"]

    @property
    def resize_mode(self):
        return self.metadata["resize_mode"]

    def predict_inputs(self, images):
        """A `views.Look` at rendered inputs, input frame: boxes `[N, 4]`, probabilities `[N, C]`,
        class boxes `[N, C, 4]` or None, box quality `[N]` or None."""
        outputs = self._run(tf.convert_to_tensor(images, tf.uint8))
        if signatures.PROBABILITIES in outputs:
            probabilities = outputs[signatures.PROBABILITIES]
        else:
            probabilities = tf.nn.softmax(outputs[model_lib.CLASS_LOGITS], axis=-1)
        class_boxes = outputs.get(model_lib.CLASS_BOXES) if self._per_class else None
        quality = (
            tf.cast(outputs[model_lib.BOX_QUALITY], tf.float32) if self.has_box_quality else None
        )
        return views.Look(outputs[model_lib.BOX], probabilities, class_boxes, quality)

    def predict_views(self, rendered):
        """Runs the `views.Views` of a batch (`[B, V, ...]`); returns them merged, a `views.Look` in
        the original frame."""
        return views.look_at_views(self.predict_inputs, rendered)

    def refine(self, images, original_sizes, first):
        """The second, zoomed look (see the module docstring) for a padded batch of decoded images
        and their `first` look (a `views.Look`).

        Returns a `views.Look` without class boxes in the original frame.
        """
        zoom_views = views.render_zoom_views(
            images, original_sizes, first.boxes, self.image_size, self.resize_mode
        )
        return views.zoomed_look(self.predict_inputs, first, zoom_views, self.refine_rule)

    def predict_image(self, image, tta="none", refine=False):
        """One decoded uint8 image `[H, W, 3]` -> its `Prediction`, original frame."""
        rendered = views.render_views(image, self.image_size, self.resize_mode, tta)
        look = self.predict_views(views.Views(*(t[None] for t in rendered)))
        if refine:
            look = self.refine(image[None], tf.shape(image)[None, :2], look)
        return Prediction(
            look.boxes[0].numpy(),
            look.probabilities[0].numpy(),
            None if look.quality is None else float(look.quality[0]),
        )


def _numpy_runner(run_numpy, shapes):
    """`images -> {output: float32 tensor [B, *shape]}` over `run_numpy`, a function of uint8
    numpy images returning the arrays of `shapes` (`{output: shape after the batch}`) in order.

    tf.numpy_function: evaluation and the views code call it inside tf.function.
    """

    def as_float32(images):
        return tuple(np.asarray(value, np.float32) for value in run_numpy(images))

    def run(images):
        outputs = tf.numpy_function(as_float32, [images], [tf.float32] * len(shapes), stateful=True)
        for output, shape in zip(outputs, shapes.values(), strict=True):
            output.set_shape([None, *shape])
        return dict(zip(shapes, outputs, strict=True))

    return run

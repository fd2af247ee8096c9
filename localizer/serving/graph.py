"""The serving graph: a `tf.Module` with the two signatures TF Serving runs.

  serving_default  image_bytes string [B] -> class_id, class_name, score, box
                   (normalized yxyx of the ORIGINAL image), probabilities
                   (+ box_quality float [B] for a model with a box-quality head)
  predict_images   images uint8 [B, S, S, 3] -> class_logits, probabilities, box
                   (+ box_quality)

Inside serving_default: the header's pixel count is checked before decoding,
then the same computation as evaluation and `predict`
(`localizer.ops.views.look_at_views`, and with refinement
`zoomed_look`).
"""

import tensorflow as tf

from localizer import model as model_lib
from localizer.model.outputs import BOX, BOX_QUALITY, CLASS_LOGITS
from localizer.ops import views
from localizer.serving import folding
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
from pipelines import decode, orientation
from pipelines.image_header import JPEG_MIN_BITS_PER_BLOCK, MAX_IMAGE_PIXELS, PNG_SIGNATURE


class _Untracked:
    """Holds an object without making it part of the SavedModel."""

    def __init__(self, value):
        self.value = value


class LocalizerServing(tf.Module):
    """The serving graph: a `tf.Module` with the two signatures (and the variables they read,
    when not optimized).

    The Keras model itself is deliberately not tracked: a SavedModel that
    tracks a Keras 3 model as an object loads with `tf.saved_model.load` but
    not with the TF1 session loader that TF Serving's C++ uses (its variables
    are never restored there: "Could not find variable ..."). Optimized (the
    default), the weights are constants of the graph (`inference_function`);
    otherwise the module tracks the tf.Variables the signatures capture, as
    `keras.export.ExportArchive` does. Both load both ways.
    """

    def __init__(self, model, max_image_pixels=MAX_IMAGE_PIXELS, refine=False, optimize=True):
        """`optimize`: the signatures run `inference_function(model)` (the same results, faster
        on CPU: RESULTS.md, "Serving speed"); False runs the model as it is, reading its
        variables (to measure what the optimization gains)."""
        super().__init__(name="localizer_serving")
        self._refine = bool(refine)
        metadata = model_lib.model_metadata(model)
        self._has_box_quality = BOX_QUALITY in model.output
        self._class_names = list(metadata["class_names"])
        self._resize_mode = metadata["resize_mode"]
        self._image_size = int(metadata["image_size"])
        self._max_image_pixels = int(max_image_pixels or 0)
        size = self._image_size
        images_spec = tf.TensorSpec([None, size, size, 3], tf.uint8, name=IMAGES_INPUT)
        if optimize:
            self._model = _Untracked(inference_function(model, images_spec))
        else:
            self._model = _Untracked(lambda images: model(images, training=False))
        # The functions are held untracked: saved as attributes, tf.saved_model.save would trace
        # them a second time, and store the model's weights (constants of the graph) twice.
        self._functions = _Untracked(
            {
                SERVING_SIGNATURE: tf.function(
                    self._serve_bytes,
                    input_signature=[tf.TensorSpec([None], tf.string, name=BYTES_INPUT)],
                ),
                IMAGES_SIGNATURE: tf.function(self._predict_images, input_signature=[images_spec]),
            }
        )
        self.model_variables = _captured_variables(self.signatures().values())

    def serve_bytes(self, image_bytes):
        """The `serving_default` signature, called in Python."""
        return self._functions.value[SERVING_SIGNATURE](image_bytes)

    def predict_images(self, images):
        """The `predict_images` signature, called in Python."""
        return self._functions.value[IMAGES_SIGNATURE](images)

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
            name: function.get_concrete_function()
            for name, function in self._functions.value.items()
        }

    def _run_model(self, images):
        """`{class_logits [B, C], box [B, 4], box_quality [B] if the model has it}`; an empty batch
        skips the model."""
        shapes = {CLASS_LOGITS: [len(self._class_names)], BOX: [4]}
        if self._has_box_quality:
            shapes[BOX_QUALITY] = []

        def run():
            outputs = self._model.value(images)
            return {name: tf.cast(outputs[name], tf.float32) for name in shapes}

        def empty():
            return {name: tf.zeros([0, *shape], tf.float32) for name, shape in shapes.items()}

        # Some CPU kernels (BatchNormalization under oneDNN) reject zero-sized
        # batches, so an empty request never reaches the model.
        outputs = tf.cond(tf.shape(images)[0] > 0, run, empty)
        for name, shape in shapes.items():
            outputs[name].set_shape([None, *shape])
        return outputs

    def _predict_images(self, images):
        outputs = self._run_model(images)
        return {**outputs, PROBABILITIES: tf.nn.softmax(outputs[CLASS_LOGITS], axis=-1)}

    def _run_for_views(self, images):
        """The model as `localizer.ops.views` runs it: a `views.Look` (no class boxes; box quality
        or None)."""
        outputs = self._run_model(images)
        return views.Look(
            outputs[BOX],
            tf.nn.softmax(outputs[CLASS_LOGITS], axis=-1),
            quality=outputs.get(BOX_QUALITY),
        )

    def _decode(self, data):
        """One encoded image, its header's pixel count checked before decoding."""
        if self._max_image_pixels > 0:
            pixels = encoded_image_pixels(data)
            known = tf.debugging.assert_greater_equal(
                pixels,
                tf.constant(0, tf.int64),
                message="Unsupported image: not a JPEG, PNG, GIF, BMP or WebP file (its header is "
                "not one of these)",
            )
            with tf.control_dependencies([known]):
                small_enough = tf.debugging.assert_less_equal(
                    pixels,
                    tf.constant(self._max_image_pixels, tf.int64),
                    message="Image too large: its header announces more than "
                    f"{self._max_image_pixels} pixels "
                    f"(the export's max_image_pixels)",
                )
            with tf.control_dependencies([small_enough]):
                data = tf.identity(data)
        enough_data = tf.debugging.assert_equal(
            jpeg_holds_its_pixels(data),
            True,
            message="Truncated image: the JPEG holds too little data for the size its header "
            "announces",
        )
        with tf.control_dependencies([enough_data]):
            return decode.decode_image_bytes(tf.identity(data))

    def _prepare(self, data):
        """One encoded image -> its single whole-image view, rendered as in training."""
        return views.render_views(self._decode(data), self._image_size, self._resize_mode, "none")

    def _prepare_zoom(self, inputs):
        data, box = inputs
        return views.render_zoom_view(
            decode.decode_image_bytes(data), box, self._image_size, self._resize_mode
        )

    def _serve_bytes(self, image_bytes):
        size = self._image_size
        rendered = tf.map_fn(
            self._prepare,
            image_bytes,
            fn_output_signature=views.Views(
                tf.TensorSpec([1, size, size, 3], tf.uint8),
                tf.TensorSpec([1, 4], tf.float32),
                tf.TensorSpec([1], tf.bool),
            ),
        )
        look = views.look_at_views(self._run_for_views, rendered)
        if self._refine:
            # Decode again rather than carry variable-size images through map_fn.
            zoom_views = tf.map_fn(
                self._prepare_zoom,
                (image_bytes, look.boxes),
                fn_output_signature=views.ZoomViews(
                    tf.TensorSpec([size, size, 3], tf.uint8),
                    tf.TensorSpec([4], tf.float32),
                ),
            )
            look = views.zoomed_look(self._run_for_views, look, zoom_views)
        box, probabilities, quality = look.boxes, look.probabilities, look.quality
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        class_names = tf.constant(self._class_names, tf.string, name="class_names")
        outputs = {
            CLASS_ID: class_id,
            CLASS_NAME: tf.gather(class_names, class_id),
            SCORE: tf.reduce_max(probabilities, axis=-1),
            BOX: box,
            PROBABILITIES: probabilities,
        }
        if quality is not None:
            outputs[BOX_QUALITY] = quality
        return outputs


def inference_function(model, images_spec):
    """`model(images, training=False)` as one `tf.function` over `images_spec`, for serving.

    Built for CPU speed:
    - each BatchNormalization folded into its convolution (`folding.fold_batch_norms`), which
      lets TensorFlow's CPU fusions (Conv2D + BiasAdd + Relu6) apply;
    - the weights are constants of the graph, not variables: oneDNN then converts each
      convolution's filter to its own layout once and keeps it, where a variable's filter is
      converted again on every call.

    Measured on the realmix default (RESULTS.md, "Serving speed"). One function, so the weights
    are stored once in the SavedModel however many signatures and looks call it. Its result
    equals the model's up to float rounding; the export checks it against the model.
    """
    folded = folding.fold_batch_norms(model)
    trainable = [variable.numpy() for variable in folded.trainable_variables]
    non_trainable = [variable.numpy() for variable in folded.non_trainable_variables]

    def call(images):
        outputs, _ = folded.stateless_call(
            [tf.constant(value) for value in trainable],
            [tf.constant(value) for value in non_trainable],
            images,
            training=False,
        )
        return outputs

    return tf.function(call, input_signature=[images_spec])


def _captured_variables(functions):
    """The tf.Variables the concrete `functions` read, each once."""
    found = {}
    for function in functions:
        for variable in function.variables:
            found.setdefault(id(variable), variable)
    return list(found.values())


def jpeg_holds_its_pixels(data):
    """False for JPEG bytes too short for the size their header announces (cut off, or a lying
    header,
    which TF's decoder would fill grey); True for anything else. The bound of
    `pipelines.image_header` (`JPEG_MIN_BITS_PER_BLOCK`), in graph ops.
    """

    def check():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        blocks = ((shape[0] + 7) // 8) * ((shape[1] + 7) // 8)
        _, scan = orientation.jpeg_layout(data)  # the pixels are in the data after the headers
        data_bytes = tf.cast(tf.strings.length(data) - tf.maximum(scan, 0), tf.int64)
        return data_bytes * 8 >= blocks * JPEG_MIN_BITS_PER_BLOCK

    return tf.cond(tf.io.is_jpeg(data), check, lambda: tf.constant(True))


UNKNOWN_FORMAT = -1
"""`encoded_image_pixels` of bytes whose header is not one it reads."""


def encoded_image_pixels(data):
    """Height x width (int64) from a JPEG, PNG, GIF, BMP or WebP header, without decoding.

    `UNKNOWN_FORMAT` for anything else. The same formats and header fields as
    `pipelines.image_header.read_image_info`, in graph ops.
    """
    # Padded so that every header field below can be sliced, however short the bytes.
    head = tf.strings.substr(tf.strings.join([data, tf.constant(b"\0" * 32)]), 0, 32)

    def field(offset, size, dtype, little_endian=True):
        raw = tf.strings.substr(head, offset, size)
        return tf.cast(tf.io.decode_raw(raw, dtype, little_endian=little_endian), tf.int64)

    def starts_with(offset, signature):
        return tf.equal(tf.strings.substr(head, offset, len(signature)), signature)

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return shape[0] * shape[1]

    def png():
        # IHDR: big-endian uint32 width and height at bytes 16..24.
        size = tf.bitwise.bitwise_and(field(16, 8, tf.int32, little_endian=False), 0xFFFFFFFF)
        return size[0] * size[1]

    def gif():
        return gif_decoded_pixels(data)

    def bmp():
        size = tf.abs(field(18, 8, tf.int32))  # a negative height means top-down rows
        return size[0] * size[1]

    def webp_lossy():
        size = tf.bitwise.bitwise_and(field(26, 4, tf.uint16), 0x3FFF)
        return size[0] * size[1]

    def webp_lossless():
        bits = tf.bitwise.bitwise_and(field(21, 4, tf.int32), 0xFFFFFFFF)[0]
        width = tf.bitwise.bitwise_and(bits, 0x3FFF) + 1
        height = tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 14), 0x3FFF) + 1
        return width * height

    def webp_extended():
        b = field(24, 6, tf.uint8)
        return (b[0] + b[1] * 256 + b[2] * 65536 + 1) * (b[3] + b[4] * 256 + b[5] * 65536 + 1)

    complete_header = tf.strings.length(data) >= 30
    # A GIF's header is its signature and 13-byte screen descriptor, all `gif_decoded_pixels` needs:
    # a whole
    # GIF can be under 30 bytes (no colour table, one frame) and announce a huge frame, which must
    # meet the
    # pixel limit ("Image too large"), not read as an unknown format ("Unsupported image").
    gif_header = tf.strings.length(data) >= 13
    webp = tf.logical_and(
        complete_header, tf.logical_and(starts_with(0, b"RIFF"), starts_with(8, b"WEBP"))
    )
    return tf.case(
        [
            (tf.io.is_jpeg(data), jpeg),
            (tf.logical_and(complete_header, starts_with(0, PNG_SIGNATURE)), png),
            (
                tf.logical_and(
                    gif_header, tf.logical_or(starts_with(0, b"GIF87a"), starts_with(0, b"GIF89a"))
                ),
                gif,
            ),
            (tf.logical_and(complete_header, starts_with(0, b"BM")), bmp),
            (tf.logical_and(webp, starts_with(12, b"VP8 ")), webp_lossy),
            (tf.logical_and(webp, starts_with(12, b"VP8L")), webp_lossless),
            (tf.logical_and(webp, starts_with(12, b"VP8X")), webp_extended),
        ],
        default=lambda: tf.constant(UNKNOWN_FORMAT, tf.int64),
        exclusive=False,
    )


def gif_decoded_pixels(data):
    """Pixels the GIF decoder produces for `data`: frames x the largest of the canvas and frame
    sizes.

    Walks the block structure in graph ops (`pipelines.image_header._gif_extent`
    does the same on files): extensions and image descriptors, skipping their
    data sub-blocks, never decoding.
    """
    raw = tf.io.decode_raw(tf.strings.join([data, tf.constant(b"\0" * 16)]), tf.uint8)
    bytes_ = tf.cast(raw, tf.int64)
    length = tf.cast(tf.strings.length(data), tf.int64)

    def at(i):
        return bytes_[tf.minimum(tf.cast(i, tf.int64), length + 15)]

    def u16(i):
        return at(i) + 256 * at(i + 1)

    def colour_table(flags):
        return tf.where(
            tf.bitwise.bitwise_and(flags, 0x80) > 0,
            3 * tf.bitwise.left_shift(tf.constant(2, tf.int64), tf.bitwise.bitwise_and(flags, 7)),
            tf.constant(0, tf.int64),
        )

    start = 13 + colour_table(at(10))
    # State: position, inside data sub-blocks?, frames, largest width and height, finished.
    state = (
        start,
        tf.constant(False),
        tf.constant(0, tf.int64),
        u16(6),
        u16(8),
        tf.constant(False),
    )

    def more(pos, in_blocks, frames, width, height, done):
        return tf.logical_and(tf.logical_not(done), pos < length)

    def step(pos, in_blocks, frames, width, height, done):
        value = at(pos)

        def sub_block():
            return pos + value + 1, tf.logical_not(tf.equal(value, 0)), frames, width, height, done

        def block():
            is_extension, is_image = tf.equal(value, 0x21), tf.equal(value, 0x2C)
            next_pos = tf.where(is_image, pos + 10 + colour_table(at(pos + 9)) + 1, pos + 2)
            return (
                next_pos,
                tf.logical_or(is_extension, is_image),
                frames + tf.cast(is_image, tf.int64),
                tf.where(is_image, tf.maximum(width, u16(pos + 5)), width),
                tf.where(is_image, tf.maximum(height, u16(pos + 7)), height),
                tf.logical_not(tf.logical_or(is_extension, is_image)),
            )

        return tf.cond(in_blocks, sub_block, block)

    _, _, frames, width, height, _ = tf.while_loop(
        more, step, state, maximum_iterations=tf.cast(tf.minimum(length + 1, 2**31 - 1), tf.int32)
    )
    return tf.maximum(frames, 1) * width * height

"""Decode and sanitize: source elements -> decoded RGB images with valid boxes.

Pure map functions over feature dicts (see `pipelines.sources.source` for the
keys); each works eagerly and inside `Dataset.map` with the same result.
"""

import tensorflow as tf

from pipelines import boxes as box_lib
from pipelines import orientation as orientation_lib
from pipelines.element import BOX, IMAGE, IMAGE_PATH
from pipelines.render import ORIGINAL_SIZE, PAD_VALUE


def decode_image_bytes(data, orientation=None):
    """Decodes any JPEG/PNG/GIF/BMP/WebP bytes to uint8 RGB `[H, W, 3]`, upright (serving, predict).

    Grayscale becomes RGB; transparent pixels are composited over PAD_VALUE
    grey (dropping alpha would show whatever colour they happen to store);
    CMYK JPEGs come out as RGB from TF's decoder. The image is turned by its
    EXIF `orientation` (`pipelines.orientation`): given (read by Pillow from
    the file), or None to read it from the bytes in graph ops, as the serving
    graph does. Gives the same pixels as the training path
    (`decode_indexed_image` on the index's prepared copies).
    """
    if orientation is None:
        orientation = orientation_lib.jpeg_orientation(data)
    return orientation_lib.transpose(_decode_rgb(data), orientation)


def _decode_rgb(data):
    """Encoded bytes -> uint8 RGB `[H, W, 3]` as stored (alpha composited)."""
    image = tf.io.decode_image(data, channels=0, expand_animations=False, dtype=tf.uint8)
    channels = tf.shape(image)[-1]
    image = tf.switch_case(
        tf.clip_by_value(channels - 1, 0, 3),
        [
            lambda: tf.image.grayscale_to_rgb(image[..., :1]),
            lambda: _composite(tf.image.grayscale_to_rgb(image[..., :1]), image[..., 1:2]),
            lambda: image[..., :3],
            lambda: _composite(image[..., :3], image[..., 3:4]),
        ],
    )
    image.set_shape([None, None, 3])
    return image


def _composite(rgb, alpha):
    """Alpha-composites uint8 `rgb` over a PAD_VALUE grey background."""
    weight = tf.cast(alpha, tf.float32) / 255.0
    blended = tf.cast(rgb, tf.float32) * weight + float(PAD_VALUE) * (1.0 - weight)
    return tf.saturate_cast(tf.round(blended), tf.uint8)


def to_rgb(image):
    """Makes a uint8 `[H, W, C]` image with C in {1, 2, 3, 4} RGB (alpha composited)."""
    image = tf.convert_to_tensor(image)
    channels = image.shape[-1]
    if channels == 1:
        image = tf.image.grayscale_to_rgb(image)
    elif channels == 2:
        image = _composite(tf.image.grayscale_to_rgb(image[..., :1]), image[..., 1:])
    elif channels == 4:
        image = _composite(image[..., :3], image[..., 3:])
    elif channels != 3:
        raise ValueError(f"Images must have 1, 2, 3 or 4 channels; got shape {image.shape}.")
    return image


def decode_indexed_image(data):
    """The training-path decoder: RGB straight from TF's decoder, no branches.

    `channels=3` already turns grayscale and CMYK JPEGs into RGB. Images with
    alpha or an EXIF rotation are composited and turned upright at index time
    (`pipelines.sources.file_index`), so nothing here needs control flow, which
    costs throughput on every example in tf.data.
    """
    image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return image


def decode(features):
    """Reads and decodes the image of a source element into uint8 RGB `IMAGE`.

    Accepts `IMAGE_PATH` (a file), `IMAGE` as encoded bytes, or `IMAGE` as
    pixels. Adds `ORIGINAL_SIZE`.
    """
    features = dict(features)
    if IMAGE_PATH in features:
        image = decode_indexed_image(tf.io.read_file(features.pop(IMAGE_PATH)))
    elif features[IMAGE].dtype == tf.string:
        image = decode_indexed_image(features[IMAGE])
    else:
        image = to_rgb(tf.image.convert_image_dtype(features[IMAGE], tf.uint8))
    features[IMAGE] = image
    features[ORIGINAL_SIZE] = tf.shape(image)[:2]
    return features


def sanitize(features, min_size=box_lib.MIN_BOX_SIZE):
    """Repairs the box (clip, un-invert) and adds a bool `valid` for degenerate ones."""
    features = dict(features)
    features[BOX], features["valid"] = box_lib.sanitize(features[BOX], min_size)
    return features

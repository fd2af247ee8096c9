"""EXIF orientation: the frame a person sees a photo in.

Phones store pixels as the sensor saw them and add an EXIF Orientation tag
(1-8); every viewer, browser and labelling tool shows the photo turned by it,
and annotations are drawn on that upright view. TF's decoders ignore the tag,
so every place that decodes a photo turns it here: `transpose` (TF ops, the
same eagerly, in `Dataset.map` and in the serving graph) with the tag read by
Pillow from files (`of_exif`, via `pipelines.image_header`) or, inside the
serving graph, from the JPEG bytes themselves (`jpeg_orientation`).

The tag's values (EXIF 2.3, as Pillow's `ImageOps.exif_transpose` applies them):

  1 upright             2 mirrored left-right     3 rotated 180
  4 mirrored top-bottom 5 transposed              6 stored turned 90 ccw (shown turned 90 cw)
  7 transversed         8 stored turned 90 cw (shown turned 90 ccw)

5-8 swap height and width.
"""

import tensorflow as tf

ORIENTATION_TAG = 0x0112
UPRIGHT = 1
ORIENTATIONS = tuple(range(1, 9))
SWAPS_AXES = (5, 6, 7, 8)

EXIF_MODES = ("apply", "ignore")
DEFAULT_EXIF = "apply"
"""What the file sources do with the tag (`--exif`): `apply` (default) reads and annotates each photo in
the frame a person sees; `ignore` keeps the stored pixels, for datasets annotated on raw pixels."""

MAX_JPEG_SEGMENTS = 32
"""Segments before the frame the serving graph walks to find the EXIF one (APP1 comes first or second)."""
MAX_IFD_ENTRIES = 128
"""Entries of the first EXIF directory read in the serving graph (phones write about a dozen)."""
_EXIF_SCAN_BYTES = 1 << 18  # the graph's parser looks at this much of the file: 32 segments of <= 8 KiB typical


def of_exif(exif):
    """The orientation in a Pillow `Image.Exif` mapping: 1-8, or `UPRIGHT` when absent or invalid."""
    value = exif.get(ORIENTATION_TAG, UPRIGHT) if exif else UPRIGHT
    return int(value) if isinstance(value, int) and value in ORIENTATIONS else UPRIGHT


def upright_size(height, width, orientation):
    """`(height, width)` after turning a stored `height` x `width` image by `orientation`."""
    return (width, height) if orientation in SWAPS_AXES else (height, width)


def transpose(image, orientation):
    """Turns a decoded `[H, W, C]` image stored with EXIF `orientation` upright (any int tensor or int).

    A Python int picks the op at trace time; a tensor picks it in the graph.
    """
    image = tf.convert_to_tensor(image)
    operations = [
        lambda: image,  # 1 (also any value out of range)
        lambda: tf.reverse(image, [1]),  # 2
        lambda: tf.reverse(image, [0, 1]),  # 3
        lambda: tf.reverse(image, [0]),  # 4
        lambda: tf.transpose(image, [1, 0, 2]),  # 5
        lambda: tf.reverse(tf.transpose(image, [1, 0, 2]), [1]),  # 6
        lambda: tf.reverse(tf.transpose(image, [1, 0, 2]), [0, 1]),  # 7
        lambda: tf.reverse(tf.transpose(image, [1, 0, 2]), [0]),  # 8
    ]
    if isinstance(orientation, int):
        return operations[orientation - 1 if orientation in ORIENTATIONS else 0]()
    index = tf.cast(orientation, tf.int32) - 1
    index = tf.where((index >= 0) & (index < 8), index, 0)
    turned = tf.switch_case(index, operations)
    turned.set_shape([None, None, image.shape[-1]])
    return turned


def jpeg_orientation(data):
    """The EXIF orientation (int32, 1-8) of encoded image bytes, in graph ops; `UPRIGHT` for anything else.

    Walks the JPEG's segments up to the first EXIF APP1 (or the start of
    scan), then the first image directory (IFD0) of its TIFF structure, in
    either byte order, for tag 0x0112. Bounded: at most `MAX_JPEG_SEGMENTS`
    segments and `MAX_IFD_ENTRIES` entries of the first `_EXIF_SCAN_BYTES`
    bytes; damaged or cut-off EXIF data reads as upright. The same answer as
    Pillow's on the files `pipelines.image_header` reads (tests/test_orientation.py).
    """
    data = tf.convert_to_tensor(data, tf.string)
    head = tf.strings.substr(data, 0, _EXIF_SCAN_BYTES)
    raw = tf.io.decode_raw(tf.strings.join([head, tf.constant(b"\0" * 16)]), tf.uint8)
    bytes_ = tf.cast(raw, tf.int32)
    length = tf.strings.length(head)

    def at(i):
        return bytes_[tf.clip_by_value(i, 0, length + 15)]

    def u16(i, little):
        return tf.where(little, at(i) + 256 * at(i + 1), 256 * at(i) + at(i + 1))

    def u32(i, little):
        low, high = u16(i, little), u16(i + 2, little)
        return tf.where(little, low + 65536 * high, 65536 * low + high)

    exif_start = _exif_segment(at, length)
    tiff = exif_start + 10  # after FF E1, the length and "Exif\0\0"
    little = tf.equal(at(tiff), 0x49)  # "II": little-endian; "MM": big-endian
    valid_tiff = (tf.equal(at(tiff), at(tiff + 1)) & ((at(tiff) == 0x49) | (at(tiff) == 0x4D))
                  & tf.equal(u16(tiff + 2, little), 42))
    ifd = tiff + u32(tiff + 4, little)
    entries = tf.minimum(u16(ifd, little), MAX_IFD_ENTRIES)

    def look(i, found):
        entry = ifd + 2 + 12 * i
        kind = u16(entry + 2, little)  # 3: SHORT (what cameras write), 4: LONG
        value = tf.where(tf.equal(kind, 4), u32(entry + 8, little), u16(entry + 8, little))
        is_tag = tf.equal(u16(entry, little), ORIENTATION_TAG) & ((kind == 3) | (kind == 4))
        return i + 1, tf.where(is_tag & tf.equal(found, 0), value, found)

    usable = (exif_start >= 0) & valid_tiff & (ifd > tiff) & (ifd + 2 <= length)
    _, found = tf.while_loop(lambda i, found: (i < entries) & tf.equal(found, 0) & usable,
                             look, (tf.constant(0), tf.constant(0)))
    return tf.where((found >= 1) & (found <= 8), found, UPRIGHT)


def _exif_segment(at, length):
    """Position of the JPEG's EXIF APP1 marker (`FF E1 .. "Exif\\0\\0"`), or -1 when there is none."""
    is_jpeg = tf.equal(at(0), 0xFF) & tf.equal(at(1), 0xD8)
    exif = [0x45, 0x78, 0x69, 0x66, 0, 0]  # "Exif\0\0"

    def is_exif(pos):
        signature = tf.reduce_all(tf.stack([tf.equal(at(pos + 4 + k), byte) for k, byte in enumerate(exif)]))
        return tf.equal(at(pos), 0xFF) & tf.equal(at(pos + 1), 0xE1) & signature

    def more(step, pos, found):
        marker = at(pos + 1)
        in_header = tf.equal(at(pos), 0xFF) & (marker != 0xDA) & (marker != 0xD9)  # before start of scan
        return (step < MAX_JPEG_SEGMENTS) & tf.equal(found, -1) & (pos + 4 <= length) & in_header

    def walk(step, pos, found):
        found = tf.where(is_exif(pos), pos, found)
        return step + 1, pos + 2 + 256 * at(pos + 2) + at(pos + 3), found

    _, _, found = tf.while_loop(more, walk, (tf.constant(0), tf.constant(2), tf.constant(-1)))
    return tf.where(is_jpeg, found, -1)

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
"""What the file sources do with the tag (`--exif`): `apply` (default) reads and annotates each
photo in
the frame a person sees; `ignore` keeps the stored pixels, for datasets annotated on raw pixels."""

MAX_JPEG_SEGMENTS = 1024
"""Segments before the scan the serving graph walks (a photo has about ten; each is 64 KiB at
most)."""
_EXIF_TYPES = (
    3,
    4,
    8,
    9,
)  # the Orientation value as SHORT (cameras), LONG, SSHORT or SLONG: Pillow reads each
_MAX_SEGMENT = 65535  # a JPEG segment's length field is 16 bits: the whole EXIF block fits in one


def of_exif(exif):
    """The orientation in a Pillow `Image.Exif` mapping: 1-8, or `UPRIGHT` when absent or
    invalid."""
    value = exif.get(ORIENTATION_TAG, UPRIGHT) if exif else UPRIGHT
    return int(value) if isinstance(value, int) and value in ORIENTATIONS else UPRIGHT


def upright_size(height, width, orientation):
    """`(height, width)` after turning a stored `height` x `width` image by `orientation`."""
    return (width, height) if orientation in SWAPS_AXES else (height, width)


def transpose(image, orientation):
    """Turns a decoded `[H, W, C]` image stored with EXIF `orientation` upright (any int tensor or
    int).

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
    """The EXIF orientation (int32, 1-8) of encoded image bytes, in graph ops; `UPRIGHT` for
    anything else.

    Finds the first EXIF APP1 segment (`jpeg_layout`), then reads the first
    image directory (IFD0) of its TIFF structure, in either byte order, for
    tag 0x0112. Damaged or cut-off EXIF data reads as upright. The same
    answer as Pillow's reading of the EXIF block (`of_exif`) on the files
    `pipelines.image_header` reads (tests/pipelines/test_orientation.py).
    """
    data = tf.convert_to_tensor(data, tf.string)
    exif_start, _ = jpeg_layout(data)
    tiff_start = exif_start + 10  # after FF E1, the length and "Exif\0\0"
    block = _bytes(data, tf.maximum(tiff_start, 0), _MAX_SEGMENT)
    size = tf.minimum(tf.strings.length(data) - tiff_start, _MAX_SEGMENT)

    def at(i):
        return block[tf.clip_by_value(i, 0, _MAX_SEGMENT - 1)]

    def u16(i, little):
        return tf.where(little, at(i) + 256 * at(i + 1), 256 * at(i) + at(i + 1))

    def u32(i, little):
        low, high = u16(i, little), u16(i + 2, little)
        return tf.where(little, low + 65536 * high, 65536 * low + high)

    little = tf.equal(at(0), 0x49)  # "II": little-endian; "MM": big-endian
    valid_tiff = (
        tf.equal(at(0), at(1)) & ((at(0) == 0x49) | (at(0) == 0x4D)) & tf.equal(u16(2, little), 42)
    )
    ifd = u32(4, little)
    entries = tf.minimum(u16(ifd, little), (size - ifd - 2) // 12)  # only entries inside the block

    def look(i, found):
        entry = ifd + 2 + 12 * i
        kind = u16(entry + 2, little)
        value = tf.where((kind == 4) | (kind == 9), u32(entry + 8, little), u16(entry + 8, little))
        is_tag = tf.equal(u16(entry, little), ORIENTATION_TAG) & tf.reduce_any(
            tf.equal(kind, _EXIF_TYPES)
        )
        return i + 1, tf.where(is_tag, value, found)

    usable = (exif_start >= 0) & valid_tiff & (ifd >= 8) & (ifd + 2 <= size)
    _, found = tf.while_loop(
        lambda i, found: usable & (i < entries) & tf.equal(found, 0),
        look,
        (tf.constant(0), tf.constant(0)),
    )
    return tf.where((found >= 1) & (found <= 8), found, UPRIGHT)


def jpeg_layout(data):
    r"""`(exif_start, scan_start)` of JPEG bytes, in graph ops: where the first EXIF APP1 segment
    (`FF E1 .. "Exif\0\0"`) and the first start of scan (`FF DA`) begin, each -1 when absent.

    Walks the segments from the start of image, skipping fill bytes,
    reading a few bytes at each (never the whole file), for at most
    `MAX_JPEG_SEGMENTS` segments; stops at damage.
    """
    data = tf.convert_to_tensor(data, tf.string)
    length = tf.strings.length(data)
    exif_signature = tf.constant([0x45, 0x78, 0x69, 0x66, 0, 0], tf.int32)  # "Exif\0\0"

    def more(step, pos, exif, scan, done):
        return tf.logical_not(done) & (step < MAX_JPEG_SEGMENTS) & (pos + 4 <= length)

    def walk(step, pos, exif, scan, done):
        head = _bytes(data, pos, 10)
        marker = head[1]
        fill = tf.equal(marker, 0xFF)
        standalone = tf.equal(marker, 0x01) | ((marker >= 0xD0) & (marker <= 0xD7))
        is_exif = tf.equal(marker, 0xE1) & tf.reduce_all(tf.equal(head[4:10], exif_signature))
        exif = tf.where(is_exif & tf.equal(exif, -1), pos, exif)
        is_scan = tf.equal(marker, 0xDA)
        scan = tf.where(is_scan, pos, scan)
        done = tf.not_equal(head[0], 0xFF) | is_scan | tf.equal(marker, 0xD9)
        step_size = tf.where(fill, 1, tf.where(standalone, 2, 2 + 256 * head[2] + head[3]))
        return step + 1, pos + step_size, exif, scan, done

    is_jpeg = tf.reduce_all(tf.equal(_bytes(data, 0, 2), [0xFF, 0xD8]))
    start = (
        tf.constant(0),
        tf.constant(2),
        tf.constant(-1),
        tf.constant(-1),
        tf.logical_not(is_jpeg),
    )
    _, _, exif, scan, _ = tf.while_loop(more, walk, start)
    return exif, scan


def _bytes(data, pos, count):
    """int32 `[count]`: `count` bytes of `data` from `pos` (clamped to its length), zeros past its
    end."""
    pos = tf.clip_by_value(pos, 0, tf.strings.length(data))
    piece = tf.strings.join([tf.strings.substr(data, pos, count), tf.constant(b"\0" * count)])
    return tf.cast(tf.io.decode_raw(tf.strings.substr(piece, 0, count), tf.uint8), tf.int32)

"""Image size, channels, orientation and completeness from the file, without decoding pixels.

File sources normalize pixel boxes at index time by the size of the image as a
person sees it: decoded, then turned by its EXIF Orientation tag (XML and CSV
size fields are often wrong in real datasets, and phones store photos sideways
with a tag every viewer and labelling tool honours). Reading the header and
the last bytes of each file also catches, before a long run starts, files
that are not images, truncated files (TF's decoder raises on them mid-epoch,
or fills them grey), decompression bombs (the header announces the pixels)
and images that need conversion (grayscale, alpha, CMYK).

Headers and EXIF are read with Pillow (lazily: `Image.open` reads the header
only); what Pillow cannot tell without decoding, this module adds: whether the
file ends the way its format ends, whether there is enough data for the
pixels the header announces, and a GIF's largest frame.
"""

import dataclasses
import math
import os
import struct
import warnings

from PIL import Image, UnidentifiedImageError

from pipelines import orientation as orientation_lib
from pipelines.errors import FlagValueError, UserError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


MAX_IMAGE_PIXELS = 50_000_000
"""Largest image (height x width, from its header) any command decodes by default: a 48 MP
photo passes, a decompression bomb does not. `--max_image_pixels` changes it; 0 turns it off."""

FORMATS = ("jpeg", "png", "gif", "bmp", "webp")
"""Formats whose size this module reads from the header (and TF decodes)."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".webp")
"""File names taken as images when a folder is given."""

MIN_IMAGE_SIDE = 8
"""Images smaller than this (pixels, either side) hold nothing to localize: training skips them."""

_KINDS = {"MPO": "jpeg"}  # phones' multi-picture JPEGs: TF decodes the first picture, as any JPEG
_CHANNELS = {
    "1": 1,
    "L": 1,
    "I": 1,
    "I;16": 1,
    "I;16B": 1,
    "F": 1,
    "LA": 2,
    "La": 2,
    "PA": 4,
    "RGBA": 4,
    "RGBa": 4,
    "CMYK": 4,
}  # Pillow mode -> channels TF's decoder gives; 3 for any other (RGB, P, YCbCr)

# Least compressed data a header's pixels need (see `_too_little_data`): a Huffman-coded JPEG
# spends at least 1 bit per 8x8 luma block (its DC code), deflate (PNG) compresses at most 1032:1.
JPEG_MIN_BITS_PER_BLOCK = 1
_DEFLATE_MAX_RATIO = 1032


class ImageHeaderError(UserError, ValueError):
    """The file is not a JPEG/PNG/GIF/BMP/WebP image this reader understands, or is damaged."""


class CutOffHeaderError(ImageHeaderError):
    """A JPEG/PNG/GIF/BMP/WebP file whose header is damaged or ends early (a truncated file)."""


class ImageTooLargeError(ImageHeaderError):
    """The header announces more pixels than the limit: refused before decoding."""


def check_pixel_limit(limit):
    """A `--max_image_pixels` value: 0 (off) or positive; negative is a mistake."""
    if limit is None or int(limit) < 0:
        raise FlagValueError(
            f"--max_image_pixels={limit} must be 0 (no limit) or a positive pixel count"
        )
    return int(limit)


def check_image_file(path, max_pixels=MAX_IMAGE_PIXELS):
    """`ImageInfo` of `path`, refused (ImageTooLargeError) when its header announces more than
    `max_pixels`.

    Memory stays bounded whatever the file claims: only the header is read.
    """
    info = read_image_info(path)
    if max_pixels and info.decoded_pixels > max_pixels:
        frames = f" x {info.frames} frames" if info.frames > 1 else ""
        raise ImageTooLargeError(
            f"{path}: image header announces {info.width}x{info.height}{frames} = "
            f"{info.decoded_pixels} pixels, over the limit of {max_pixels} (--max_image_pixels; 0 "
            "turns it off)"
        )
    return info


def check_decodable(path, max_pixels=MAX_IMAGE_PIXELS):
    """`check_image_file`, and refused (ImageHeaderError) when the file is cut off or its data
    cannot
    hold the pixels its header announces: what commands that decode one file at a time need.
    """
    info = check_image_file(path, max_pixels)
    if not info.complete:
        raise ImageHeaderError(
            f"{path}: {info.format.upper()} data ends early (the file is truncated); "
            f"copy or export it again"
        )
    if info.too_little_data:
        raise ImageHeaderError(
            f"{path}: its header announces {info.width}x{info.height} pixels but the file holds "
            f"too little {info.format.upper()} data for them (truncated, or the header lies about "
            "its size)"
        )
    return info


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What the header and the end of an image file say.

    height, width: as stored (what TF's decoder gives).
    channels: 1 gray, 2 gray + alpha, 3 colour, 4 RGBA (PNG, WebP) or CMYK (JPEG).
    complete: the file ends the way its format ends (not truncated).
    frames: images the decoder decodes (GIF frames; 1 otherwise). A GIF's
      height and width are the largest of its canvas and its frames: what the
      decoder allocates for each frame.
    orientation: a JPEG's EXIF Orientation tag (1-8; 1 when absent or invalid, and for other
    formats).
    too_little_data: the file is too small to hold the pixels its header
      announces (a lying or cut-off header).
    """

    format: str
    height: int
    width: int
    channels: int
    complete: bool
    frames: int = 1
    orientation: int = orientation_lib.UPRIGHT
    too_little_data: bool = False

    @property
    def decoded_pixels(self):
        """Pixels the decoder produces: what a pixel limit bounds."""
        return self.height * self.width * self.frames

    @property
    def upright_size(self):
        """`(height, width)` as a person sees the image: after its EXIF orientation."""
        return orientation_lib.upright_size(self.height, self.width, self.orientation)


def read_image_info(path):
    """`ImageInfo` of a JPEG, PNG, GIF, BMP or WebP file.

    Raises:
      ImageHeaderError: naming the file, when it is not a readable image (its
        header damaged or cut off included).
      OSError: when the file cannot be opened.
    """
    with open(path, "rb") as f:
        try:
            info = _pillow_info(f)
        except (
            UnidentifiedImageError,
            SyntaxError,
            struct.error,
            IndexError,
            ValueError,
            EOFError,
        ) as error:
            raise _header_error(path, f, error) from None
        except OSError as error:
            if error.errno is not None:  # the file system's error, not Pillow's word on the content
                raise
            raise _header_error(path, f, error) from None
        if info is None:
            raise ImageHeaderError(f"{path}: not a JPEG, PNG, GIF, BMP or WebP image.")
        kind, height, width, channels, frames, orientation, data_offset = info
        size = f.seek(0, os.SEEK_END)
        if kind == "gif":
            f.seek(0)
            height, width, frames, complete = _gif_extent(f.read(), height, width)
        else:
            complete = _ends_properly(f, kind, size, data_offset)
    if height <= 0 or width <= 0:
        raise ImageHeaderError(f"{path}: image header gives size {width}x{height}.")
    # A JPEG's pixels are in the data after its headers (comment or metadata segments could pad it).
    data_bytes = size - data_offset if kind == "jpeg" else size
    return ImageInfo(
        kind,
        int(height),
        int(width),
        int(channels),
        complete,
        frames,
        orientation,
        _too_little_data(kind, height, width, channels, data_bytes),
    )


def _pillow_info(f):
    """`(format, height, width, channels, frames, orientation, data offset)` from Pillow's header
    read, or None for
    another format. Pillow's own bomb check is off: the caller applies the project's limit.
    """
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # DecompressionBombWarning, EXIF warnings: judged here instead
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with Image.open(f, formats=[name.upper() for name in FORMATS]) as image:
                kind = _KINDS.get(image.format, image.format.lower())
                width, height = image.size
                channels = 3 if kind in ("gif", "bmp") else _CHANNELS.get(image.mode, 3)
                frames = getattr(image, "n_frames", 1) if kind == "gif" else 1
                # Cameras and phones write the tag in JPEGs; the serving graph reads it there too
                # (`orientation.jpeg_orientation`), so every path turns the same files.
                turned = _orientation(image) if kind == "jpeg" else orientation_lib.UPRIGHT
                # Pillow stops reading a JPEG's header at its start of scan: the image data follow
                # there.
                data_offset = f.tell() if kind == "jpeg" else 0
                return kind, height, width, channels, frames, turned, data_offset
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def _orientation(image):
    """The orientation in an open JPEG's EXIF block; damaged EXIF data reads as upright (as in the
    serving
    graph), never as a bad photo: the pixels are fine.

    Only the EXIF block, as the serving graph reads it (`orientation.jpeg_orientation`): Pillow's
    `getexif()` would also take an XMP packet's `tiff:Orientation`, which the graph does not parse.
    """
    block = image.info.get("exif")
    if not block:
        return orientation_lib.UPRIGHT
    exif = Image.Exif()
    try:
        exif.load(block)
    except Exception:  # noqa: BLE001 (Pillow raises many kinds on damaged EXIF: struct.error, SyntaxError, ...)
        return orientation_lib.UPRIGHT
    return orientation_lib.of_exif(exif)


def _header_error(path, f, error):
    """The ImageHeaderError for a header Pillow could not read: cut off, or not an image at all."""
    size = f.seek(0, os.SEEK_END)
    f.seek(0)
    head = f.read(16)
    known = head.startswith((b"\xff\xd8", PNG_SIGNATURE, b"GIF87a", b"GIF89a", b"BM")) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    )
    if size == 0:
        return CutOffHeaderError(f"{path}: the file is empty (0 bytes); copy or export it again")
    if known:
        return CutOffHeaderError(
            f"{path}: its image header is damaged or ends early ({size} bytes): the file is "
            f"truncated; copy or export it again"
        )
    return ImageHeaderError(f"{path}: not a JPEG, PNG, GIF, BMP or WebP image.")


def _ends_properly(f, kind, size, data_offset=0):
    """Whether the file ends with its format's end marker (EOI, IEND, trailer, declared size).

    A JPEG may carry data after its end (phones' motion photos append a
    video, MPO files more pictures): when its last bytes are not the end
    marker, the marker is looked for after the start of its image data,
    where the byte pair FF D9 means nothing else (entropy-coded data stuffs
    every FF), so an EXIF thumbnail's own end cannot pass for it.
    """
    f.seek(0)
    head = f.read(8)
    f.seek(max(0, size - 64))
    tail = f.read()
    if kind == "jpeg":
        return b"\xff\xd9" in tail.rstrip(b"\x00\r\n ")[-16:] or _has_jpeg_end(f, data_offset)
    if kind == "png":
        return _png_ends(f, size)
    if kind == "webp":
        (declared,) = struct.unpack("<I", head[4:8])  # RIFF payload size
        return size >= declared + 8
    (declared,) = struct.unpack("<I", head[2:6])  # BMP file size
    return size >= declared


def _has_jpeg_end(f, data_offset, chunk=1 << 20):
    """Whether FF D9 (end of image) occurs after `data_offset`, read a chunk at a time."""
    f.seek(data_offset)
    previous = b""
    while True:
        block = f.read(chunk)
        if not block:
            return False
        if b"\xff\xd9" in previous[-1:] + block:
            return True
        previous = block


def _png_ends(f, size):
    """Whether a PNG's chunks lead, length by length, to a whole IEND chunk (data may follow it)."""
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= size:
        f.seek(pos)
        length, kind = struct.unpack(">I4s", f.read(8))
        if kind == b"IEND":
            return pos + 12 <= size  # length, type and checksum
        pos += 12 + length
    return False


def _too_little_data(kind, height, width, channels, file_size):
    """Whether `file_size` bytes cannot hold `height` x `width` pixels of `kind` at the best
    compression
    the format allows (a header that lies, or data cut off before an end marker that a forger
    appended).

    Only JPEG and PNG are bounded (the formats photos come in): an arithmetic-coded JPEG could in
    principle go below the Huffman bound, and none was ever seen in a photo folder.
    """
    if kind == "jpeg":
        blocks = math.ceil(height / 8) * math.ceil(width / 8)
        return file_size * 8 < blocks * JPEG_MIN_BITS_PER_BLOCK
    if kind == "png":
        bits_per_pixel = 1 if channels == 1 else 8 * channels  # 1-bit gray/palette is the smallest
        raw_bytes = height * (
            math.ceil(width * bits_per_pixel / 8) + 1
        )  # + one filter byte per row
        return file_size * _DEFLATE_MAX_RATIO < raw_bytes
    return False


def _gif_extent(data, height, width):
    """`(height, width, frames, complete)` of a GIF: the largest of its canvas and frame sizes, its
    frame
    count, and whether its blocks lead to the trailer (the file is whole; data may follow it).

    Pillow gives the canvas and the first frame only; the decoder sizes each
    frame by its own descriptor and decodes every frame, so a small canvas can
    hide a huge frame. Walks the block structure (extensions and image
    descriptors, skipping their data sub-blocks) without decoding.
    """
    flags = data[10] if len(data) > 10 else 0
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    frames, complete = 0, False
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            complete = True
            break
        if block == 0x21:  # extension: label, then sub-blocks
            pos += 2
        elif block == 0x2C:  # image descriptor
            if pos + 10 > len(data):
                break
            frame_width, frame_height, frame_flags = struct.unpack("<HHB", data[pos + 5 : pos + 10])
            width, height, frames = max(width, frame_width), max(height, frame_height), frames + 1
            pos += (
                10 + (3 << ((frame_flags & 7) + 1) if frame_flags & 0x80 else 0) + 1
            )  # + LZW code size
        else:
            break  # not a GIF block: the decoder stops here too
        while pos < len(data) and data[pos]:  # data sub-blocks, ended by a zero length
            pos += data[pos] + 1
        pos += 1
    return height, width, max(frames, 1), complete


def read_image_size(path):
    """Returns `(height, width)` of a JPEG, PNG, GIF, BMP or WebP file as stored (see
    `read_image_info`)."""
    info = read_image_info(path)
    return info.height, info.width

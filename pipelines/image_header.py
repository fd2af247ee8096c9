"""Image size, channels and completeness from the file, without decoding pixels.

File sources normalize pixel boxes at index time by the size of the image as
it decodes (XML and CSV size fields are often wrong in real datasets). TF's
decoders ignore EXIF orientation, so the header's size is the decoded size.
Reading the header and the last bytes of each file also catches, before a long
run starts, files that are not images, truncated files (TF's decoder raises
on them mid-epoch), decompression bombs (the header announces the pixels) and
images that need conversion (grayscale, alpha, CMYK).
"""

import dataclasses
import os
import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers that carry the size (not DHT C4, JPG C8, DAC CC).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


MAX_IMAGE_PIXELS = 50_000_000
"""Largest image (height x width, from its header) any command decodes by default: a 48 MP
photo passes, a decompression bomb does not. `--max_image_pixels` changes it; 0 turns it off."""

FORMATS = ("jpeg", "png", "gif", "bmp", "webp")
"""Formats whose size this module reads from the header (and TF decodes)."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".webp")
"""File names taken as images when a folder is given."""

MIN_IMAGE_SIDE = 8
"""Images smaller than this (pixels, either side) hold nothing to localize: training skips them."""

_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # PNG colour type -> channels


class ImageHeaderError(ValueError):
    """The file is not a JPEG/PNG/GIF/BMP/WebP image this reader understands."""


class ImageTooLargeError(ImageHeaderError):
    """The header announces more pixels than the limit: refused before decoding."""


def check_pixel_limit(limit):
    """A `--max_image_pixels` value: 0 (off) or positive; negative is a mistake."""
    if limit is None or int(limit) < 0:
        raise ValueError(f"--max_image_pixels={limit} must be 0 (no limit) or a positive pixel count")
    return int(limit)


def check_image_file(path, max_pixels=MAX_IMAGE_PIXELS):
    """`ImageInfo` of `path`, refused (ImageTooLargeError) when its header announces more than `max_pixels`.

    Memory stays bounded whatever the file claims: only the header is read.
    """
    info = read_image_info(path)
    if max_pixels and info.decoded_pixels > max_pixels:
        frames = f" x {info.frames} frames" if info.frames > 1 else ""
        raise ImageTooLargeError(
            f"{path}: image header announces {info.width}x{info.height}{frames} = {info.decoded_pixels} pixels, "
            f"over the limit of {max_pixels} (--max_image_pixels; 0 turns it off)"
        )
    return info


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What the header and the end of an image file say.

    channels: 1 gray, 2 gray + alpha, 3 colour, 4 RGBA (PNG) or CMYK (JPEG).
    complete: the file ends the way its format ends (not truncated).
    frames: images the decoder decodes (GIF frames; 1 otherwise). A GIF's
      height and width are the largest of its canvas and its frames: what the
      decoder allocates for each frame.
    """

    format: str
    height: int
    width: int
    channels: int
    complete: bool
    frames: int = 1

    @property
    def decoded_pixels(self):
        """Pixels the decoder produces: what a pixel limit bounds."""
        return self.height * self.width * self.frames


def read_image_info(path):
    """`ImageInfo` of a JPEG, PNG, GIF, BMP or WebP file.

    Raises:
      ImageHeaderError: naming the file, when it is not a readable image.
      OSError: when the file cannot be opened.
    """
    with open(path, "rb") as f:
        head = f.read(32)
        if head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            kind, channels = "png", _PNG_CHANNELS.get(head[25], 3)
        elif head[:6] in (b"GIF87a", b"GIF89a"):
            f.seek(0)
            height, width, frames = _gif_extent(f.read(), path)
            kind, channels = "gif", 3
        elif head[:2] == b"BM" and len(head) >= 26:
            width, height = struct.unpack("<ii", head[18:26])
            height = abs(height)  # negative height means top-down rows
            kind, channels = "bmp", 3
        elif head[:2] == b"\xff\xd8":
            f.seek(2)
            height, width, channels = _jpeg_frame(f, path)
            kind = "jpeg"
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            height, width, channels = _webp_size(head, path)
            kind = "webp"
        else:
            raise ImageHeaderError(f"{path}: not a JPEG, PNG, GIF, BMP or WebP image.")
        complete = _ends_properly(f, kind, head)
    if height <= 0 or width <= 0:
        raise ImageHeaderError(f"{path}: image header gives size {width}x{height}.")
    return ImageInfo(kind, int(height), int(width), int(channels), complete, frames if kind == "gif" else 1)


def _ends_properly(f, kind, head):
    """Whether the file ends with its format's end marker (EOI, IEND, trailer, size)."""
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - 64))
    tail = f.read()
    if kind == "jpeg":
        return b"\xff\xd9" in tail.rstrip(b"\x00\r\n ")[-16:]
    if kind == "png":
        return b"IEND" in tail
    if kind == "gif":
        return tail.rstrip(b"\x00").endswith(b"\x3b")
    if kind == "webp":
        (declared,) = struct.unpack("<I", head[4:8])  # RIFF payload size
        return size >= declared + 8
    (declared,) = struct.unpack("<I", head[2:6])  # BMP file size
    return size >= declared


def _gif_extent(data, path):
    """`(height, width, frames)` of a GIF: the largest of its canvas and frame sizes, and its frame count.

    Walks the block structure (extensions and image descriptors, skipping
    their data sub-blocks) without decoding: the decoder sizes each frame by
    its own descriptor, not by the canvas, and decodes every frame.
    """
    if len(data) < 13:
        raise ImageHeaderError(f"{path}: GIF ends before its header (truncated?).")
    width, height, flags = struct.unpack("<HHB", data[6:11])
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    frames = 0
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            pos += 2
        elif block == 0x2C:  # image descriptor
            if pos + 10 > len(data):
                break
            frame_width, frame_height, frame_flags = struct.unpack("<HHB", data[pos + 5:pos + 10])
            width, height, frames = max(width, frame_width), max(height, frame_height), frames + 1
            pos += 10 + (3 << ((frame_flags & 7) + 1) if frame_flags & 0x80 else 0) + 1  # + LZW code size
        else:
            break  # not a GIF block: the decoder stops here too
        while pos < len(data) and data[pos]:  # data sub-blocks, ended by a zero length
            pos += data[pos] + 1
        pos += 1
    return height, width, max(frames, 1)


def _webp_size(head, path):
    """`(height, width, channels)` from a WebP's first chunk: VP8 (lossy), VP8L (lossless) or VP8X."""
    chunk = head[12:16]
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return height & 0x3FFF, width & 0x3FFF, 3
    if chunk == b"VP8L" and head[20] == 0x2F:
        (bits,) = struct.unpack("<I", head[21:25])
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1, 4 if bits >> 28 & 1 else 3
    if chunk == b"VP8X":
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return height, width, 4 if head[20] & 0x10 else 3
    raise ImageHeaderError(f"{path}: WebP without a readable size (chunk {chunk!r}).")


def read_image_size(path):
    """Returns `(height, width)` of a JPEG, PNG, GIF, BMP or WebP file (see `read_image_info`)."""
    info = read_image_info(path)
    return info.height, info.width


def _jpeg_frame(f, path):
    """Walks JPEG segments up to the first start-of-frame marker."""
    while True:
        byte = f.read(1)
        while byte and byte != b"\xff":  # skip to the next marker
            byte = f.read(1)
        while byte == b"\xff":  # markers may be padded with 0xFF
            byte = f.read(1)
        if not byte:
            raise ImageHeaderError(f"{path}: JPEG ends before its size (truncated?).")
        marker = byte[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue  # markers without a length field
        length_bytes = f.read(2)
        if len(length_bytes) < 2:
            raise ImageHeaderError(f"{path}: JPEG ends before its size (truncated?).")
        (length,) = struct.unpack(">H", length_bytes)
        if marker in _JPEG_SOF:
            frame = f.read(6)
            if len(frame) < 6:
                raise ImageHeaderError(f"{path}: JPEG ends before its size (truncated?).")
            _, height, width, components = struct.unpack(">BHHB", frame)
            return height, width, components
        if marker == 0xD9 or length < 2:
            raise ImageHeaderError(f"{path}: JPEG has no frame header.")
        f.seek(length - 2, 1)

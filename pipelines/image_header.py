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
"""Largest image (height x width) read; a 48 MP photo passes, a decompression bomb does not."""

_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # PNG colour type -> channels


class ImageHeaderError(ValueError):
    """The file is not a JPEG/PNG/GIF/BMP image this reader understands."""


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What the header and the end of an image file say.

    channels: 1 gray, 2 gray + alpha, 3 colour, 4 RGBA (PNG) or CMYK (JPEG).
    complete: the file ends the way its format ends (not truncated).
    """

    format: str
    height: int
    width: int
    channels: int
    complete: bool


def read_image_info(path):
    """`ImageInfo` of a JPEG, PNG, GIF or BMP file.

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
            width, height = struct.unpack("<HH", head[6:10])
            kind, channels = "gif", 3
        elif head[:2] == b"BM" and len(head) >= 26:
            width, height = struct.unpack("<ii", head[18:26])
            height = abs(height)  # negative height means top-down rows
            kind, channels = "bmp", 3
        elif head[:2] == b"\xff\xd8":
            f.seek(2)
            height, width, channels = _jpeg_frame(f, path)
            kind = "jpeg"
        else:
            raise ImageHeaderError(f"{path}: not a JPEG, PNG, GIF or BMP image.")
        complete = _ends_properly(f, kind, head)
    if height <= 0 or width <= 0:
        raise ImageHeaderError(f"{path}: image header gives size {width}x{height}.")
    return ImageInfo(kind, int(height), int(width), int(channels), complete)


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
    (declared,) = struct.unpack("<I", head[2:6])  # BMP file size
    return size >= declared


def read_image_size(path):
    """Returns `(height, width)` of a JPEG, PNG, GIF or BMP file (see `read_image_info`)."""
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

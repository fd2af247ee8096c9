"""Whether an indexed image file can be used, and what it needs first: the per-image checks of
`file_index.build_index`.

From the header alone (`pipelines.image_header`): a path outside the dataset folder, a missing,
unreadable, truncated or oversized file, too little data for its size, too small a side. Then a
decode once per file version (cached) finds what no header tells. Grayscale, CMYK and alpha are
converted; alpha (and an EXIF turn, with --exif=apply) is applied once into a cached PNG copy, so
the training decoder stays branch-free. Each skip and repair is counted by reason in
`IndexStats`.
"""

import hashlib
import os

import tensorflow as tf

from pipelines import files, image_header
from pipelines import orientation as orientation_lib

TRUNCATED = "truncated image file"
UNDECODABLE = "image data the decoder cannot read (damaged inside, or a variant it lacks)"
TURNED_UPRIGHT = "stored rotated or mirrored: turned upright by its EXIF orientation"
ORIENTATION_IGNORED = "EXIF orientation ignored (--exif=ignore): read as stored"
"""Skip and repair reasons of the image checks (counted in `IndexStats`, listed in
data_issues.tsv)."""

_CONVERSIONS = {
    ("jpeg", 1): "grayscale converted to RGB",
    ("png", 1): "grayscale converted to RGB",
    ("png", 2): "alpha composited",
    ("png", 4): "alpha composited",
    ("jpeg", 4): "CMYK converted to RGB",
}
_NEEDS_COPY = {("png", 2), ("png", 4)}  # the decoder would drop alpha: composite once, here


def _file_version_key(path):
    """A sha1 (still open to updates) naming one version of a file: its real path, size and
    mtime."""
    stat = os.stat(path)
    return hashlib.sha1(f"{os.path.realpath(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode())


def prepared_copy(path, orientation=orientation_lib.UPRIGHT):
    """A PNG of `path` with alpha composited over the padding grey and turned by `orientation`, made
    once and cached.

    The training decoder stays branch-free (see `decode.decode_indexed_image`);
    the copy holds exactly the pixels `decode.decode_image_bytes` gives
    serving and predict (lossless). It lives under $LOCALIZER_CACHE_DIR
    (default ~/.cache/localizer)/composited, named by the source file's path,
    size and modification time and the orientation.
    """
    from pipelines import decode

    key = _file_version_key(path)
    if orientation != orientation_lib.UPRIGHT:
        key.update(f"|orientation={orientation}".encode())
    folder = os.path.join(files.cache_dir(), "composited")
    copy = os.path.join(folder, f"{key.hexdigest()}.png")
    if not os.path.exists(copy):
        os.makedirs(folder, exist_ok=True)
        with open(path, "rb") as f:
            pixels = decode.decode_image_bytes(f.read(), orientation=orientation)
        files.atomic_write(
            copy, lambda temporary: tf.io.write_file(temporary, tf.io.encode_png(pixels))
        )
    return copy


def usable_image(path, filename, stats, max_image_pixels, exif):
    """`(path, ImageInfo, orientation applied)` of an annotated image, or None after counting why
    not in `stats` (an `IndexStats`).

    `path` is the image's absolute path (None: its annotation points outside the dataset folder);
    `filename` names it in `stats`. The path returned is a prepared copy where one is needed.
    """
    reason = None
    if path is None:
        reason = "image path outside the dataset folder"
    elif not os.path.isfile(path):
        reason = "missing image file"
    else:
        try:
            info = image_header.read_image_info(path)
        except image_header.ImageHeaderError as error:
            reason = (
                TRUNCATED
                if isinstance(error, image_header.CutOffHeaderError)
                else "not a readable image"
            )
        except OSError:
            reason = "not a readable image"
        else:
            if not info.complete:
                reason = TRUNCATED
            elif max_image_pixels and info.decoded_pixels > max_image_pixels:
                reason = "image over the pixel limit (decompression bomb?)"
            elif info.too_little_data:
                reason = (
                    "too little image data for the size its header announces "
                    "(truncated or lying header)"
                )
            elif min(info.height, info.width) < image_header.MIN_IMAGE_SIDE:
                reason = f"image smaller than {image_header.MIN_IMAGE_SIDE} px"
    if reason is None and not _needs_copy(info, exif) and not decodes(path):
        reason = UNDECODABLE  # (a prepared copy is decoded while it is made)
    if reason:
        stats.skip(reason, file=filename)
        return None
    conversion = _CONVERSIONS.get((info.format, info.channels))
    if conversion:
        stats.repair(conversion, file=filename)
    orientation = info.orientation if exif == "apply" else orientation_lib.UPRIGHT
    if info.orientation != orientation_lib.UPRIGHT:
        stats.repair(TURNED_UPRIGHT if exif == "apply" else ORIENTATION_IGNORED, file=filename)
    if _needs_copy(info, exif):
        try:
            path = prepared_copy(path, orientation)
        except OSError:
            stats.skip("not a readable image", file=filename)
            return None
        except tf.errors.OpError:
            stats.skip(UNDECODABLE, file=filename)
            return None
    return path, info, orientation


def _needs_copy(info, exif):
    """Whether the training decoder needs a prepared copy: alpha to composite, or a turn to
    apply."""
    turned = exif == "apply" and info.orientation != orientation_lib.UPRIGHT
    return (info.format, info.channels) in _NEEDS_COPY or turned


def decodes(path):
    """Whether the training path's decoder reads `path` whole: what no header tells (a PNG chunk's
    checksum, a BMP depth or a JPEG process TF lacks, data damaged in the middle), found here rather
    than as a crash mid-epoch. Decoded once per file version: success leaves a marker in the cache
    (named by the file's path, size and modification time), so a rerun costs nothing.
    """
    from pipelines import decode

    marker = os.path.join(files.cache_dir(), "decoded", _file_version_key(path).hexdigest())
    if os.path.exists(marker):
        return True
    try:
        with open(path, "rb") as f:
            decode.decode_indexed_image(f.read())
    except tf.errors.OpError:
        return False
    try:
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        open(marker, "wb").close()
    except OSError:
        pass  # a read-only cache only costs the decode again next time
    return True

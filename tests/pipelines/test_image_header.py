"""Tests of pipelines/image_header.py: sizes, formats and pixel limits read from headers.

Files cut off inside their header, cut off before their end, or whose header lies about the size:
each is that file's own error, named as such, and the files after it still run (predict, the index,
serving).
"""

import io
import json
import os
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from localizer.inference import image_files
from pipelines import image_header
from tests import fixtures

PIXELS = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)


def _encoded(format, **options):
    buffer = io.BytesIO()
    Image.fromarray(PIXELS).save(buffer, format, **options)
    return buffer.getvalue()


def jpeg_claiming(height, width):
    """A real small JPEG whose start-of-frame is rewritten to announce `height` x `width`."""
    data = bytearray(_encoded("JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def header_prefixes():
    """`{name: bytes}`: every format cut inside its header (the 18-30 byte prefixes that crashed the
    old parser)."""
    cases = {}
    for format, ext in (
        ("PNG", "png"),
        ("WEBP", "webp"),
        ("JPEG", "jpg"),
        ("GIF", "gif"),
        ("BMP", "bmp"),
    ):
        data = _encoded(format)
        for size in (12, 18, 24, 30):
            cases[f"{format.lower()}{size}.{ext}"] = data[:size]
    return cases


@pytest.mark.parametrize("name,data", sorted(header_prefixes().items()))
def test_a_header_cut_off_is_a_header_error_naming_the_file(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(image_header.ImageHeaderError, match=name):
        image_header.check_decodable(str(path))


def test_data_that_ends_early_or_lies_about_its_size_is_named(tmp_path):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(_encoded("JPEG")[:-200])
    with pytest.raises(image_header.ImageHeaderError, match="truncated"):
        image_header.check_decodable(str(truncated))
    lying = tmp_path / "lying.jpg"
    lying.write_bytes(jpeg_claiming(7000, 7000))
    assert image_header.read_image_info(str(lying)).complete  # it even ends with its end marker
    with pytest.raises(image_header.ImageHeaderError, match="too little JPEG data"):
        image_header.check_decodable(str(lying))
    fine = tmp_path / "fine.jpg"
    fine.write_bytes(_encoded("JPEG", quality=5))  # heavily compressed, yet a whole photo
    image_header.check_decodable(str(fine))
    flat = tmp_path / "flat.png"
    Image.new("RGB", (3000, 2000)).save(flat)  # deflate's best case: one colour
    image_header.check_decodable(str(flat))


def test_predict_gives_each_damaged_file_its_line_and_goes_on(tmp_path):
    from localizer.inference import image_files

    model_path = str(tmp_path / "model.keras")
    fixtures.tiny_model(randomize=True).save(model_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a_good.jpg").write_bytes(_encoded("JPEG"))
    (photos / "b_cut18.png").write_bytes(_encoded("PNG")[:18])
    (photos / "c_cut30.webp").write_bytes(_encoded("WEBP")[:30])
    (photos / "d_truncated.jpg").write_bytes(_encoded("JPEG")[:-200])
    (photos / "e_lying.jpg").write_bytes(jpeg_claiming(7000, 7000))
    (photos / "z_good.png").write_bytes(_encoded("PNG"))
    out = io.StringIO()
    failures = image_files.run(model_path, [str(photos)], out=out)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert failures == 4 and len(records) == 6
    errors = {r["file"].rsplit("/", 1)[1]: r.get("error") for r in records}
    assert errors["a_good.jpg"] is None and errors["z_good.png"] is None
    assert "ends early" in errors["b_cut18.png"] and "ends early" in errors["c_cut30.webp"]
    assert "truncated" in errors["d_truncated.jpg"]
    assert "too little JPEG data" in errors["e_lying.jpg"]
    assert all(
        "\n" not in (e or "") and "{{" not in (e or "") for e in errors.values()
    )  # no TF op text


def test_index_skips_damaged_files_and_keeps_the_rest(tmp_path, monkeypatch):
    import pipelines
    from pipelines.sources import image_check
    from pipelines.sources.voc_dir import voc_xml

    monkeypatch.setenv("LOCALIZER_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "voc"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    images = {
        "good": _encoded("PNG"),
        "cut": _encoded("PNG")[:18],
        "webpcut": _encoded("WEBP")[:30],
        "lying": jpeg_claiming(7000, 7000),
    }
    for name, data in images.items():
        ext = "jpg" if name == "lying" else ("webp" if name == "webpcut" else "png")
        (root / "JPEGImages" / f"{name}.{ext}").write_bytes(data)
        (root / "Annotations" / f"{name}.xml").write_text(
            voc_xml(f"{name}.{ext}", [("cat", (4, 4, 30, 30))])
        )
    (root / "ImageSets" / "Main" / "train.txt").write_text("\n".join(images) + "\n")
    (root / "labels.txt").write_text("cat\ndog\n")
    source = pipelines.get_source("voc_dir", data_dir=str(root))
    stats = source.index_stats("train")
    assert stats.kept == 1
    assert (
        stats.skipped[image_check.TRUNCATED] == 2
    )  # the PNG and the WebP cut inside their headers
    assert sum(stats.skipped.values()) == 3  # and the lying JPEG
    assert any("too little image data" in reason for reason in stats.skipped)


def test_serving_refuses_a_jpeg_too_short_for_its_size():
    from localizer.serving.graph import jpeg_holds_its_pixels

    assert bool(jpeg_holds_its_pixels(tf.constant(_encoded("JPEG"))))
    assert not bool(jpeg_holds_its_pixels(tf.constant(jpeg_claiming(7000, 7000))))
    assert bool(jpeg_holds_its_pixels(tf.constant(_encoded("PNG"))))


def test_a_photo_with_data_after_its_end_is_whole(tmp_path):
    """Motion photos append a video after the JPEG's end: the photo is whole; cut inside it, it is
    not."""
    photo = _encoded("JPEG")
    motion = tmp_path / "motion.jpg"
    motion.write_bytes(photo + b"\0\0\0\x18ftypmp42" + bytes(range(256)) * 40)
    assert image_header.check_decodable(str(motion)).complete
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(photo[: len(photo) * 2 // 3])
    assert not image_header.read_image_info(str(cut)).complete


def test_data_after_a_png_or_gif_end_is_whole_and_a_missing_checksum_is_not(tmp_path):
    for format, ext in (("PNG", "png"), ("GIF", "gif")):
        trailing = tmp_path / f"trailing.{ext}"
        trailing.write_bytes(
            _encoded(format) + b"PK\x03\x04" + bytes(range(256)) * 4
        )  # a zip appended
        assert image_header.check_decodable(str(trailing)).complete
    cut = tmp_path / "cut.png"
    cut.write_bytes(_encoded("PNG")[:-1])  # IEND's checksum cut short
    assert not image_header.read_image_info(str(cut)).complete
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(image_header.ImageHeaderError, match="empty"):
        image_header.check_decodable(str(empty))


def test_a_lying_header_padded_with_metadata_is_still_caught(tmp_path):
    from localizer.serving.graph import jpeg_holds_its_pixels

    data = jpeg_claiming(7000, 7000)
    padded = (
        data[:2] + (b"\xff\xfe" + struct.pack(">H", 65002) + b"\0" * 65000) * 4 + data[2:]
    )  # comments
    path = tmp_path / "padded.jpg"
    path.write_bytes(padded)
    with pytest.raises(image_header.ImageHeaderError, match="too little JPEG data"):
        image_header.check_decodable(str(path))
    assert not bool(jpeg_holds_its_pixels(tf.constant(padded)))


def test_files_the_decoder_cannot_read_are_found_at_index_time_and_named_by_predict(
    tmp_path, monkeypatch
):
    """A 1-bit BMP (a variant TF lacks) and a PNG with a damaged chunk pass every header check: the
    index
    decodes each file once and skips them (training would crash mid-epoch); predict names the
    decoder's reason.
    """
    import pipelines
    from localizer.inference import image_files
    from pipelines.sources import image_check
    from pipelines.sources.voc_dir import voc_xml

    monkeypatch.setenv("LOCALIZER_CACHE_DIR", str(tmp_path / "cache"))
    buffer = io.BytesIO()
    Image.fromarray(PIXELS).convert("1").save(buffer, "BMP")
    png = bytearray(_encoded("PNG"))
    idat = png.index(b"IDAT")
    png[idat + 10] ^= (
        0xFF  # one flipped byte inside the compressed data: its chunk's checksum fails
    )
    root = tmp_path / "voc"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    images = {
        "good.png": _encoded("PNG"),
        "onebit.bmp": buffer.getvalue(),
        "flipped.png": bytes(png),
    }
    for name, data in images.items():
        (root / "JPEGImages" / name).write_bytes(data)
        stem = name.split(".")[0]
        (root / "Annotations" / f"{stem}.xml").write_text(voc_xml(name, [("cat", (4, 4, 30, 30))]))
    (root / "ImageSets" / "Main" / "train.txt").write_text("good\nonebit\nflipped\n")
    (root / "labels.txt").write_text("cat\ndog\n")
    stats = pipelines.get_source("voc_dir", data_dir=str(root)).index_stats("train")
    assert (stats.kept, stats.skipped[image_check.UNDECODABLE]) == (1, 2)
    assert len(os.listdir(tmp_path / "cache" / "decoded")) == 1  # the good file, remembered
    with pytest.raises(
        image_header.ImageHeaderError, match="decoder cannot read its BMP data"
    ) as raised:
        image_files.read_image(str(root / "JPEGImages" / "onebit.bmp"))
    assert "{{" not in str(raised.value) and "[Op:" not in str(raised.value)


def test_pixel_limit_values():
    assert image_header.check_pixel_limit(0) == 0
    with pytest.raises(ValueError, match="max_image_pixels=-1"):
        image_header.check_pixel_limit(-1)


def test_webp_header_is_read(tmp_path):
    from PIL import Image

    for options, channels in (({}, 3), ({"lossless": True}, 3)):
        path = tmp_path / "photo.webp"
        Image.fromarray(np.zeros((21, 34, 3), np.uint8)).save(path, "WEBP", **options)
        info = image_header.read_image_info(str(path))
        assert (info.format, info.height, info.width, info.channels, info.complete) == (
            "webp",
            21,
            34,
            channels,
            True,
        )


def test_gif_frames_count_not_only_its_canvas(tmp_path):
    huge_frame = tmp_path / "frame.gif"
    huge_frame.write_bytes(fixtures.gif_with_frames(canvas=(16, 16), frame=(20000, 20000)))
    many = tmp_path / "many.gif"
    many.write_bytes(fixtures.gif_with_frames(canvas=(2000, 2000), frame=(2000, 2000), frames=20))
    info = image_header.read_image_info(str(many))
    assert (info.frames, info.decoded_pixels) == (20, 20 * 2000 * 2000)
    for path in (huge_frame, many):
        with pytest.raises(image_header.ImageTooLargeError):
            image_files.read_image(str(path))
    import tensorflow as tf

    from localizer.serving.graph import encoded_image_pixels

    for path in (huge_frame, many):
        assert (
            encoded_image_pixels(tf.constant(path.read_bytes())).numpy()
            == image_header.read_image_info(str(path)).decoded_pixels
        )


@pytest.mark.parametrize(
    "ext,size", [(".jpg", (37, 53)), (".png", (5, 300)), (".gif", (9, 4)), (".bmp", (6, 7))]
)
def test_read_image_size(tmp_path, ext, size):
    path = str(tmp_path / f"x{ext}")
    pixels = np.zeros(size + (3,), np.uint8)
    if ext == ".jpg":
        data = tf.io.encode_jpeg(pixels, progressive=True).numpy()
    elif ext == ".png":
        data = tf.io.encode_png(pixels).numpy()
    else:  # GIF and BMP as Pillow writes them (a header alone is not a readable image)
        from PIL import Image

        Image.fromarray(pixels).save(path)
        data = None
    if data is not None:
        with open(path, "wb") as f:
            f.write(data)
    assert image_header.read_image_size(path) == size


def test_read_image_size_rejects_non_images_and_truncation(tmp_path):
    fake = tmp_path / "fake.jpg"
    fake.write_text("not an image")
    with pytest.raises(image_header.ImageHeaderError, match="fake.jpg"):
        image_header.read_image_size(str(fake))
    truncated = tmp_path / "trunc.jpg"
    truncated.write_bytes(tf.io.encode_jpeg(np.zeros((8, 8, 3), np.uint8)).numpy()[:30])
    with pytest.raises(image_header.ImageHeaderError, match="truncated"):
        image_header.read_image_size(str(truncated))

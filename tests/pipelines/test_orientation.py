"""EXIF orientation: the graph's reader agrees with Pillow, and `transpose` with
`ImageOps.exif_transpose`,
eagerly and inside `Dataset.map`; every command reads a tagged photo in the frame a person sees.
"""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from pipelines import decode, image_header
from pipelines import orientation as orientation_lib
from tests import fixtures


def tagged_jpeg(pixels, orientation, big_endian=False, extra_tags=True, quality=95):
    """JPEG bytes of `pixels` (stored as given) carrying EXIF `orientation` (None: no EXIF at
    all)."""
    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    if orientation is None:
        image.save(buffer, "JPEG", quality=quality)
        return buffer.getvalue()
    exif = Image.Exif()
    if extra_tags:  # what a phone writes before the orientation
        exif[0x010F] = "PhoneMaker"
        exif[0x0110] = "Phone 12"
    exif[orientation_lib.ORIENTATION_TAG] = orientation
    if extra_tags:
        exif[0x0131] = "Camera 1.0"
    exif_bytes = exif.tobytes()
    if big_endian:
        exif_bytes = _big_endian_exif(exif, orientation)
    image.save(buffer, "JPEG", quality=quality, exif=exif_bytes)
    return buffer.getvalue()


def _big_endian_exif(exif, orientation):
    r"""`Exif\0\0` + a big-endian ("MM") TIFF directory holding only the orientation."""
    import struct

    entry = struct.pack(">HHIHH", orientation_lib.ORIENTATION_TAG, 3, 1, orientation, 0)
    return (
        b"Exif\0\0"
        + b"MM\0\x2a"
        + struct.pack(">I", 8)
        + struct.pack(">H", 1)
        + entry
        + b"\0\0\0\0"
    )


PIXELS = np.random.default_rng(0).integers(0, 256, size=(24, 40, 3), dtype=np.uint8)


@pytest.mark.parametrize("orientation", orientation_lib.ORIENTATIONS)
def test_transpose_matches_pillow_eagerly_and_in_dataset_map(orientation):
    expected = np.asarray(ImageOps.exif_transpose(_pillow_with_tag(PIXELS, orientation)))
    assert np.array_equal(orientation_lib.transpose(PIXELS, orientation).numpy(), expected)
    assert np.array_equal(
        orientation_lib.transpose(PIXELS, tf.constant(orientation)).numpy(), expected
    )
    mapped = tf.data.Dataset.from_tensors((PIXELS, orientation)).map(orientation_lib.transpose)
    assert np.array_equal(next(iter(mapped)).numpy(), expected)
    assert orientation_lib.upright_size(24, 40, orientation) == expected.shape[:2]


def _pillow_with_tag(pixels, orientation):
    image = Image.fromarray(pixels)
    image.getexif()[orientation_lib.ORIENTATION_TAG] = orientation
    return image


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("orientation", [None, *orientation_lib.ORIENTATIONS])
def test_graph_reader_agrees_with_pillow(tmp_path, orientation, big_endian):
    data = tagged_jpeg(PIXELS, orientation, big_endian=big_endian)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    pillow = image_header.read_image_info(str(path)).orientation
    assert pillow == (orientation or 1)
    assert int(orientation_lib.jpeg_orientation(tf.constant(data))) == pillow
    in_graph = tf.function(
        orientation_lib.jpeg_orientation, input_signature=[tf.TensorSpec([], tf.string)]
    )
    assert int(in_graph(tf.constant(data))) == pillow


def test_graph_reader_survives_damaged_and_foreign_bytes():
    data = tagged_jpeg(PIXELS, 6)
    exif_at = data.index(b"Exif")
    cases = [
        b"",
        b"\xff\xd8",
        data[: exif_at + 8],
        data[: exif_at + 20],
        b"\x89PNG\r\n\x1a\n" + b"\0" * 40,
        data[: exif_at + 10] + b"XX" + data[exif_at + 12 :],  # not a TIFF byte order
        tagged_jpeg(PIXELS, 9, extra_tags=False),
    ]  # out of range
    for case in cases:
        assert int(orientation_lib.jpeg_orientation(tf.constant(case))) == 1
    assert int(orientation_lib.jpeg_orientation(tf.constant(data))) == 6


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_decode_image_bytes_turns_photos_upright(orientation):
    data = tagged_jpeg(PIXELS, orientation)
    upright = decode.decode_image_bytes(tf.constant(data))
    stored = tf.io.decode_jpeg(data)
    assert upright.shape[:2] == orientation_lib.upright_size(*PIXELS.shape[:2], orientation)
    assert np.array_equal(upright.numpy(), orientation_lib.transpose(stored, orientation).numpy())
    assert np.array_equal(
        decode.decode_image_bytes(tf.constant(data), orientation=1).numpy(), stored.numpy()
    )


# --- every command reads a tagged photo in the frame a person sees
# -------------------------------------------

INVERSE = {6: 8, 8: 6}  # the other orientations undo themselves
UPRIGHT_BOX = ("cat", (10, 8, 40, 36))  # pixels xmin, ymin, xmax, ymax of the 48x64 upright photo


def stored_pixels(upright, orientation):
    """What a phone stores for an `upright` photo it tags with `orientation`."""
    return orientation_lib.transpose(upright, INVERSE.get(orientation, orientation)).numpy()


def tagged_voc_folder(root, orientations, box=UPRIGHT_BOX):
    """A VOC folder of 48x64 (upright) JPEGs, one per orientation, stored turned and tagged;
    annotated upright."""
    from pipelines.sources.voc_dir import voc_xml
    from tests import fixtures

    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    names = []
    for i, orientation in enumerate(orientations):
        name = f"photo{i}_o{orientation}"
        upright = fixtures.make_image(48, 64, [box], seed=i)
        (root / "JPEGImages" / f"{name}.jpg").write_bytes(
            tagged_jpeg(stored_pixels(upright, orientation), orientation)
        )
        (root / "Annotations" / f"{name}.xml").write_text(
            voc_xml(f"{name}.jpg", [box], size=(48, 64))
        )
        names.append(name)
    (root / "ImageSets" / "Main" / "train.txt").write_text("\n".join(names) + "\n")
    (root / "labels.txt").write_text("cat\ndog\nplate\n")
    return str(root)


def test_index_measures_and_decodes_tagged_photos_upright(tmp_path, monkeypatch):
    import pipelines
    from pipelines import input_pipeline
    from pipelines.sources import file_index, image_check
    from pipelines.sources.source import BOX, IMAGE

    monkeypatch.setenv("LOCALIZER_CACHE_DIR", str(tmp_path / "cache"))
    root = tagged_voc_folder(tmp_path / "voc", orientation_lib.ORIENTATIONS)
    source = pipelines.get_source("voc_dir", data_dir=root)
    expected_box = np.array([8 / 48, 10 / 64, 36 / 48, 40 / 64], np.float32)
    examples = list(input_pipeline.decoded(source, "train"))
    assert len(examples) == 8
    for orientation, example in zip(orientation_lib.ORIENTATIONS, examples, strict=False):
        np.testing.assert_allclose(example[BOX].numpy(), expected_box, atol=1e-6)
        stored = tf.io.decode_jpeg(
            (
                tmp_path / "voc" / "JPEGImages" / f"photo{orientation - 1}_o{orientation}.jpg"
            ).read_bytes()
        )
        assert np.array_equal(
            example[IMAGE].numpy(), orientation_lib.transpose(stored, orientation).numpy()
        )
    stats = source.index_stats("train")
    assert stats.repaired[image_check.TURNED_UPRIGHT] == 7  # every tag but 1 (upright)
    assert file_index.FITS_STORED_FRAME_ONLY not in stats.repaired

    ignoring = pipelines.get_source("voc_dir", data_dir=root, exif="ignore")
    stored_frame = [
        example[IMAGE].shape[:2] for example in input_pipeline.decoded(ignoring, "train")
    ]
    assert stored_frame == [(48, 64)] * 4 + [(64, 48)] * 4
    assert ignoring.index_stats("train").repaired[image_check.ORIENTATION_IGNORED] == 7


def test_boxes_drawn_on_the_stored_pixels_are_named(tmp_path, monkeypatch):
    import pipelines
    from pipelines.sources import file_index

    monkeypatch.setenv("LOCALIZER_CACHE_DIR", str(tmp_path / "cache"))
    # A box drawn on the stored 64x48 (portrait) pixels of orientation-6 photos, past the upright
    # height of 48.
    root = tagged_voc_folder(tmp_path / "voc", [6, 6, 1], box=("cat", (4, 30, 40, 60)))
    stats = pipelines.get_source("voc_dir", data_dir=root).index_stats("train")
    assert stats.repaired[file_index.FITS_STORED_FRAME_ONLY] == 2
    assert any("--exif=ignore" in reason for _, _, reason in stats.problems)


def test_predict_reports_the_upright_frame(tmp_path):
    import json

    from localizer import predict  # noqa: F401  (the command's module imports cleanly)
    from localizer.inference import image_files

    model_path = str(tmp_path / "model.keras")
    fixtures.tiny_model(randomize=True).save(model_path)
    upright = np.asarray(np.random.default_rng(1).integers(0, 256, (48, 64, 3)), np.uint8)
    (tmp_path / "upright.png").write_bytes(tf.io.encode_png(upright).numpy())
    for orientation in (3, 6, 8):
        (tmp_path / f"tagged{orientation}.jpg").write_bytes(
            tagged_jpeg(stored_pixels(upright, orientation), orientation, quality=100)
        )
    out = io.StringIO()
    failures = image_files.run(model_path, [str(tmp_path)], out=out)
    assert failures == 0
    records = {os.path.basename(r["file"]): r for r in map(json.loads, out.getvalue().splitlines())}
    for orientation in (3, 6, 8):
        record = records[f"tagged{orientation}.jpg"]
        assert record["image_size"] == [48, 64]
        # JPEG at quality 100 is near the PNG's pixels: the same box, in the same (upright) frame.
        np.testing.assert_allclose(record["box"], records["upright.png"]["box"], atol=0.03)


# A SavedModel written and loaded twice (10 s); the graph reader and decode_image_bytes,
# which serving_default decodes with, are tested fast above, and make real-check serves tagged
# photos
@pytest.mark.slow
def test_serving_turns_tagged_jpegs_upright_in_graph_and_tf1_session(tmp_path):
    from localizer.serving import export_lib, verify
    from localizer.serving.graph import LocalizerServing

    model = fixtures.tiny_model(randomize=True)
    upright = np.asarray(np.random.default_rng(2).integers(0, 256, (40, 70, 3)), np.uint8)
    plain = tagged_jpeg(upright, None, quality=100)
    stored = tf.io.decode_jpeg(
        plain
    ).numpy()  # what the plain JPEG decodes to: turned back, exactly
    encoded = [plain] + [tagged_jpeg(stored_pixels(stored, o), o, quality=100) for o in (6, 3)]
    path = str(tmp_path / "saved")
    export_lib._write(
        LocalizerServing(model, refine=True), path
    )  # the export's writer, without its own checks
    served = tf.saved_model.load(path).signatures["serving_default"](
        image_bytes=tf.constant(encoded)
    )
    expected = verify.reference_predictions(model, encoded, refine=True)
    np.testing.assert_allclose(served["box"].numpy(), expected["box"], atol=1e-4)
    # Re-encoding moved the pixels a little; the boxes stay in the upright frame of the plain photo.
    np.testing.assert_allclose(
        served["box"].numpy()[1:], np.repeat(served["box"].numpy()[:1], 2, 0), atol=0.05
    )
    in_session = verify.run_in_session(path, "serving_default", {"image_bytes": encoded})
    np.testing.assert_allclose(in_session["box"], served["box"].numpy(), atol=1e-4)


def test_multi_picture_jpegs_and_damaged_exif(tmp_path):
    """Phones' MPO files are JPEGs (tag read, end found); a photo whose EXIF is damaged is read
    upright."""
    first, second = Image.fromarray(PIXELS), Image.fromarray(255 - PIXELS)
    exif = Image.Exif()
    exif[orientation_lib.ORIENTATION_TAG] = 6
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[second], exif=exif.tobytes())
    mpo = tmp_path / "phone.jpg"
    mpo.write_bytes(buffer.getvalue())
    info = image_header.check_decodable(str(mpo))
    assert (info.format, info.orientation, info.complete, info.upright_size) == (
        "jpeg",
        6,
        True,
        (40, 24),
    )
    data = tagged_jpeg(PIXELS, 6)
    exif_at = data.index(b"Exif")
    damaged = tmp_path / "damaged_exif.jpg"
    damaged.write_bytes(
        data[: exif_at + 10] + b"MM\0\x2a\xff\xff\xff\xff" + data[exif_at + 18 :]
    )  # IFD past the end
    assert image_header.check_decodable(str(damaged)).orientation == 1
    assert int(orientation_lib.jpeg_orientation(tf.constant(damaged.read_bytes()))) == 1


def _with_segments_before_exif(data, segments):
    """`data` (a JPEG) with `segments` (raw bytes) inserted right after its start-of-image
    marker."""
    return data[:2] + segments + data[2:]


def _segment(marker, payload):
    import struct

    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _exif_with_entries(orientation, entries_before, kind=3):
    """An EXIF block whose IFD0 holds `entries_before` other tags, then the orientation as
    `kind`."""
    import struct

    count = entries_before + 1
    entries = b"".join(struct.pack("<HHIHH", 0x9000 + i, 3, 1, 7, 0) for i in range(entries_before))
    value = struct.pack("<I", orientation) if kind in (4, 9) else struct.pack("<HH", orientation, 0)
    entries += struct.pack("<HHI", orientation_lib.ORIENTATION_TAG, kind, 1) + value
    return (
        b"Exif\0\0"
        + b"II\x2a\0"
        + struct.pack("<I", 8)
        + struct.pack("<H", count)
        + entries
        + b"\0" * 4
    )


@pytest.mark.parametrize(
    "case",
    ["fill_bytes", "many_segments", "large_icc_first", "sshort", "slong", "entry_140", "xmp_only"],
)
def test_graph_and_pillow_agree_on_unusual_layouts(tmp_path, case):
    plain = tagged_jpeg(PIXELS, None)
    exif = _segment(0xE1, _exif_with_entries(6, 0))
    data = {
        "fill_bytes": _with_segments_before_exif(plain, b"\xff\xff\xff" + exif[1:]),
        "many_segments": _with_segments_before_exif(plain, _segment(0xFE, b"note") * 40 + exif),
        "large_icc_first": _with_segments_before_exif(
            plain, _segment(0xE2, b"\0" * 65000) * 5 + exif
        ),
        "sshort": _with_segments_before_exif(
            plain, _segment(0xE1, _exif_with_entries(6, 0, kind=8))
        ),
        "slong": _with_segments_before_exif(
            plain, _segment(0xE1, _exif_with_entries(6, 0, kind=9))
        ),
        "entry_140": _with_segments_before_exif(plain, _segment(0xE1, _exif_with_entries(6, 140))),
        "xmp_only": _with_segments_before_exif(
            plain,
            _segment(
                0xE1,
                b"http://ns.adobe.com/xap/1.0/\0"
                b'<x:xmpmeta><rdf:Description tiff:Orientation="6"/>'
                b"</x:xmpmeta>",
            ),
        ),
    }[case]
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    pillow = image_header.read_image_info(str(path)).orientation
    assert pillow == (
        1 if case == "xmp_only" else 6
    )  # the EXIF block only, as the serving graph reads it
    assert int(orientation_lib.jpeg_orientation(tf.constant(data))) == pillow

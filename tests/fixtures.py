"""Builders for tiny on-disk datasets. Tests generate them; nothing is committed.

Every image is mid-grey noise with each object drawn as a solid rectangle of
its own colour exactly on its box, so a test can check that boxes and pixels
agree.
"""

import os
import struct
import zlib

import numpy as np
import tensorflow as tf

from pipelines.sources.voc_dir import voc_xml

CLASSES = ("cat", "dog", "plate")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLOURS = {"cat": (255, 0, 0), "dog": (0, 255, 0), "plate": (0, 0, 255)}


def make_image(height, width, objects, seed=0):
    """uint8 image with each (class, (xmin, ymin, xmax, ymax) pixels) drawn solid."""
    rng = np.random.default_rng(seed)
    image = rng.integers(100, 150, size=(height, width, 3), dtype=np.uint8)
    for name, (xmin, ymin, xmax, ymax) in objects:
        image[int(ymin) : int(ymax), int(xmin) : int(xmax)] = COLOURS[name]
    return image


def white_box_example(height=48, width=64, box=(0.25, 0.2, 0.75, 0.6)):
    """A source element: a black image with a white rectangle exactly on `box` (pixel-aligned),
    label 1."""
    from pipelines.element import BOX, IMAGE, LABEL

    image = np.zeros((height, width, 3), np.uint8)
    ymin, xmin, ymax, xmax = box
    image[
        round(ymin * height) : round(ymax * height), round(xmin * width) : round(xmax * width)
    ] = 255
    return {IMAGE: tf.constant(image), LABEL: tf.constant(1), BOX: tf.constant(box, tf.float32)}


def write_image(path, image):
    encoded = (
        tf.io.encode_png(image) if path.endswith(".png") else tf.io.encode_jpeg(image, quality=95)
    )
    tf.io.write_file(path, encoded)


# (id, height, width, objects, difficult indices). img3 has two objects: the
# larger (dog) is the `largest` target and `single` drops it.
VOC_EXAMPLES = {
    "train": [
        ("img0", 60, 80, [("cat", (10, 5, 50, 45))], ()),
        ("img1", 64, 48, [("dog", (4, 8, 40, 60))], ()),
        ("img2", 50, 70, [("plate", (30, 20, 60, 30))], ()),
        ("img3", 72, 96, [("cat", (2, 2, 20, 20)), ("dog", (30, 10, 90, 70))], ()),
    ],
    "val": [
        ("img4", 56, 56, [("dog", (8, 8, 48, 40))], ()),
        ("img5", 40, 90, [("cat", (50, 4, 80, 36)), ("plate", (0, 0, 89, 39))], (1,)),
    ],
}


SUMMARY_KEYS = {
    "num_examples",
    "classification_accuracy",
    "mean_iou",
    "median_iou",
    "macro_mean_iou",
    "iou_accuracy",
    "localization_accuracy",
    "macro_localization_accuracy",
    "top5_localization_error",
    "per_class",
}
"""The keys `statistics.summarize` always gives (evaluate's metrics.json holds them too)."""


def expected_target(example):
    """The (label, normalized yxyx box) the `largest` policy must choose."""
    _, height, width, objects, difficult = example
    candidates = [(i, o) for i, o in enumerate(objects) if i not in difficult]
    _, (name, (xmin, ymin, xmax, ymax)) = max(
        candidates, key=lambda c: (c[1][1][2] - c[1][1][0]) * (c[1][1][3] - c[1][1][1])
    )
    return CLASSES.index(name), np.array(
        [ymin / height, xmin / width, ymax / height, xmax / width], np.float32
    )


def check_source_against_fixture(source, split, examples, difficult_aware=True, ids=False):
    """Every decoded element of `source[split]` has the target `expected_target` gives its
    example, measured on the decoded image (the box's pixels are the object's colour), in order;
    `ids`: and the example's id. Without `difficult_aware` every object is a candidate (formats
    with no difficult flag)."""
    from pipelines import decode, render
    from pipelines.element import BOX, ID, LABEL

    elements = [decode.decode(e) for e in source.load(split)]
    assert len(elements) == len(examples)
    if ids:
        assert [e[ID].numpy().decode() for e in elements] == [x[0] for x in examples]
    for element, example in zip(elements, examples, strict=False):
        label, box = expected_target(example if difficult_aware else example[:4] + ((),))
        assert int(element[LABEL]) == label
        np.testing.assert_allclose(element[BOX], box, atol=1e-6)
        assert tuple(element[render.ORIGINAL_SIZE].numpy()) == example[1:3]


def make_voc_folder(root, examples=None, labels_file=True):
    """Writes a VOC-layout folder; the XML <size> fields are deliberately wrong."""
    examples = examples or VOC_EXAMPLES
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for split, items in examples.items():
        for seed, (example_id, height, width, objects, difficult) in enumerate(items):
            filename = f"{example_id}.png"  # PNG: lossless, so pixel checks are exact
            write_image(
                os.path.join(root, "JPEGImages", filename), make_image(height, width, objects, seed)
            )
            with open(os.path.join(root, "Annotations", f"{example_id}.xml"), "w") as f:
                f.write(voc_xml(filename, objects, size=(999, 999), difficult=difficult))
        with open(os.path.join(root, "ImageSets", "Main", f"{split}.txt"), "w") as f:
            f.write("\n".join(item[0] for item in items) + "\n")
    if labels_file:
        with open(os.path.join(root, "labels.txt"), "w") as f:
            f.write("\n".join(CLASSES) + "\n")
    return str(root)


def make_csv_folder(root, examples=None):
    """Writes <root>/images/*.jpg and <root>/<split>_labels.csv (TF OD API layout)."""
    examples = examples or VOC_EXAMPLES
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    for split, items in examples.items():
        lines = ["filename,width,height,class,xmin,ymin,xmax,ymax"]
        for seed, (example_id, height, width, objects, _) in enumerate(items):
            filename = f"{example_id}.png"
            write_image(
                os.path.join(root, "images", filename), make_image(height, width, objects, seed)
            )
            for name, (xmin, ymin, xmax, ymax) in objects:
                lines.append(f"{filename},{width},{height},{name},{xmin},{ymin},{xmax},{ymax}")
        with open(os.path.join(root, f"{split}_labels.csv"), "w") as f:
            f.write("\n".join(lines) + "\n")
    return str(root)


# ----------------------------------------------------------------------------
# Fault injection: every kind of bad input a scraped, hand-labelled dataset has
# ----------------------------------------------------------------------------


def _jpeg(image):
    return tf.io.encode_jpeg(image, quality=90).numpy()


def _cmyk_jpeg(height, width):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("CMYK", (width, height), (0, 255, 255, 0)).save(buffer, "JPEG")
    return buffer.getvalue()


def _png_header_only(height, width):
    """A valid-looking PNG whose header announces height x width (a decompression bomb)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: (
        struct.pack(">I", len(data))
        + kind
        + data  # noqa: E731
        + struct.pack(">I", zlib.crc32(kind + data))
    )
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


GOOD_BOX = ("cat", (10, 8, 40, 36))


def faulty_cases(outside_file):
    """`{name: (image filename or None, image bytes or None, objects or raw XML, expected)}`.

    `expected` is ("kept", repair reason or None) or ("skipped", reason).
    Objects are (class, (xmin, ymin, xmax, ymax)) in pixels of a 48x64 image.
    """
    base = make_image(48, 64, [GOOD_BOX])
    rgba = np.concatenate([base, np.full((48, 64, 1), 128, np.uint8)], axis=-1)
    return {
        "good0": ("good0.jpg", _jpeg(base), [GOOD_BOX], ("kept", None)),
        "good1": (
            "good1.jpg",
            _jpeg(make_image(48, 64, [GOOD_BOX], seed=1)),
            [GOOD_BOX],
            ("kept", None),
        ),
        "good2": ("good2.png", tf.io.encode_png(base).numpy(), [GOOD_BOX], ("kept", None)),
        "truncated": (
            "truncated.jpg",
            _jpeg(base)[:300],
            [GOOD_BOX],
            ("skipped", "truncated image file"),
        ),
        "not_an_image": (
            "not_an_image.jpg",
            b"this is not a picture\n" * 10,
            [GOOD_BOX],
            ("skipped", "not a readable image"),
        ),
        "alpha": (
            "alpha.png",
            tf.io.encode_png(rgba).numpy(),
            [GOOD_BOX],
            ("kept", "alpha composited"),
        ),
        "grayscale": (
            "grayscale.jpg",
            _jpeg(base[..., :1]),
            [GOOD_BOX],
            ("kept", "grayscale converted to RGB"),
        ),
        "cmyk": ("cmyk.jpg", _cmyk_jpeg(48, 64), [GOOD_BOX], ("kept", "CMYK converted to RGB")),
        "tiny": (
            "tiny.png",
            tf.io.encode_png(np.zeros((1, 1, 3), np.uint8)).numpy(),
            [("cat", (0, 0, 1, 1))],
            ("skipped", "image smaller than 8 px"),
        ),
        "bomb": (
            "bomb.png",
            _png_header_only(30000, 30000),
            [GOOD_BOX],
            ("skipped", "image over the pixel limit (decompression bomb?)"),
        ),
        "missing_image": ("missing_image.jpg", None, [GOOD_BOX], ("skipped", "missing image file")),
        "non_numeric": (
            "non_numeric.jpg",
            _jpeg(base),
            [("cat", ("ten", 8, 40, 36))],
            ("skipped", "no objects"),
        ),
        "box_outside": (
            "box_outside.jpg",
            _jpeg(base),
            [("cat", (40, 30, 90, 70))],
            ("kept", "box clipped or un-inverted"),
        ),
        "inverted": (
            "inverted.jpg",
            _jpeg(base),
            [("cat", (40, 36, 10, 8))],
            ("kept", "box clipped or un-inverted"),
        ),
        "zero_area": (
            "zero_area.jpg",
            _jpeg(base),
            [("cat", (10, 8, 10, 36))],
            ("skipped", "no valid non-difficult object"),
        ),
        "unknown_class": (
            "unknown_class.jpg",
            _jpeg(base),
            [("unicorn", (10, 8, 40, 36))],
            ("skipped", "no objects"),
        ),
        "escape_relative": (
            "../../etc/passwd",
            None,
            [GOOD_BOX],
            ("skipped", "image path outside the dataset folder"),
        ),
        "escape_absolute": (
            "/etc/passwd",
            None,
            [GOOD_BOX],
            ("skipped", "image path outside the dataset folder"),
        ),
        "escape_symlink": (
            "escape_symlink.jpg",
            ("symlink", outside_file),
            [GOOD_BOX],
            ("skipped", "image path outside the dataset folder"),
        ),
    }


VOC_ONLY_CASES = {
    "malformed_xml": ("<annotation><object><name>cat", ("skipped", "malformed XML")),
    "no_bndbox": (
        "<annotation><filename>no_bndbox.jpg</filename><object><name>cat</name></object></annotation>",
        ("skipped", "no objects"),
    ),
}


def _write_case_image(folder, filename, content):
    if content is None or filename.startswith(("/", "..")):
        return
    path = os.path.join(folder, filename)
    if isinstance(content, tuple):  # ("symlink", target)
        os.symlink(content[1], path)
    else:
        with open(path, "wb") as f:
            f.write(content)


def make_faulty_voc_folder(root):
    """A VOC folder with every fault; returns `(root, {example id: expected})`."""
    root = str(root)
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    outside = os.path.join(os.path.dirname(root), "outside_secret.jpg")
    with open(outside, "wb") as f:
        f.write(_jpeg(make_image(48, 64, [GOOD_BOX])))
    expected = {}
    for name, (filename, content, objects, outcome) in faulty_cases(outside).items():
        _write_case_image(os.path.join(root, "JPEGImages"), filename, content)
        # Image names in VOC XML are relative to JPEGImages/: one more level up.
        xml_filename = "../" + filename if filename.startswith("..") else filename
        with open(os.path.join(root, "Annotations", f"{name}.xml"), "w") as f:
            f.write(voc_xml(xml_filename, objects, size=(48, 64)))
        expected[name] = outcome
    for name, (xml, outcome) in VOC_ONLY_CASES.items():
        with open(os.path.join(root, "Annotations", f"{name}.xml"), "w") as f:
            f.write(xml)
        _write_case_image(
            os.path.join(root, "JPEGImages"), f"{name}.jpg", _jpeg(make_image(48, 64, [GOOD_BOX]))
        )
        expected[name] = outcome
    with open(os.path.join(root, "ImageSets", "Main", "train.txt"), "w") as f:
        f.write("\n".join(expected) + "\n")
    open(os.path.join(root, "ImageSets", "Main", "empty.txt"), "w").close()
    with open(os.path.join(root, "labels.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    return root, expected


def make_faulty_csv_folder(root):
    """The same faults as a CSV dataset; returns `(root, {filename: expected})`."""
    root = str(root)
    images = os.path.join(root, "images")
    os.makedirs(images, exist_ok=True)
    outside = os.path.join(os.path.dirname(root), "outside_secret_csv.jpg")
    with open(outside, "wb") as f:
        f.write(_jpeg(make_image(48, 64, [GOOD_BOX])))
    lines = ["filename,width,height,class,xmin,ymin,xmax,ymax"]
    expected = {}
    for _name, (filename, content, objects, outcome) in faulty_cases(outside).items():
        _write_case_image(images, filename, content)
        for class_name, (xmin, ymin, xmax, ymax) in objects:
            lines.append(f"{filename},64,48,{class_name},{xmin},{ymin},{xmax},{ymax}")
        expected[filename] = outcome
    with open(os.path.join(root, "train.csv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(root, "labels.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    return root, expected


# --- decompression bombs: small files whose headers announce huge images ------------------------


def _png_chunk(kind, data):
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bomb(width=20000, height=20000, real=False):
    """RGBA PNG bytes announcing `width` x `height`; `real`: its IDAT really inflates to all of
    it."""
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + 4 * width)
    rows = height if real else 1
    data = b"".join(compressor.compress(row) for _ in range(rows)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def gif_bomb(width=65535, height=65535):
    """A GIF whose screen and only frame announce `width` x `height` pixels, in a few dozen
    bytes."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


def gif_with_frames(canvas=(16, 16), frame=(20000, 20000), frames=1):
    """A GIF with a small canvas and `frames` frames of size `frame` (width, height): the decoder
    sizes each frame by its own descriptor.
    """
    screen = b"GIF89a" + struct.pack("<HHBBB", *canvas, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    one = b"\x2c" + struct.pack("<HHHHB", 0, 0, *frame, 0) + b"\x02\x02\x44\x01\x00"
    return screen + one * frames + b"\x3b"


def webp_bomb(width=16383, height=16383):
    """An extended (VP8X) WebP announcing `width` x `height` with a tiny lossy frame."""
    vp8x = (
        b"VP8X"
        + struct.pack("<I", 10)
        + b"\0\0\0\0"
        + (width - 1).to_bytes(3, "little")
        + (height - 1).to_bytes(3, "little")
    )
    frame = b"\x30\x01\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\0" * 8
    vp8 = b"VP8 " + struct.pack("<I", len(frame)) + frame
    body = b"WEBP" + vp8x + vp8
    return b"RIFF" + struct.pack("<I", len(body)) + body


# --- the same annotations as COCO JSON and as YOLO (Ultralytics) folders
# ----------------------------

COCO_CATEGORY_IDS = {"cat": 3, "dog": 17, "plate": 90}
"""Sparse, as COCO's own (1..90 for 80 classes); their order is the classes' order."""


def yolo_line(class_index, xyxy, height, width):
    """A YOLO label line for a pixel (xmin, ymin, xmax, ymax) box, at full float precision."""
    xmin, ymin, xmax, ymax = (float(v) for v in xyxy)
    values = (
        (xmin + xmax) / 2 / width,
        (ymin + ymax) / 2 / height,
        (xmax - xmin) / width,
        (ymax - ymin) / height,
    )
    return " ".join([str(class_index)] + [repr(v) for v in values])


def data_yaml(splits, names=CLASSES):
    """An Ultralytics data.yaml for image folders images/<split>/, names as an index map."""
    lines = ["# Ultralytics layout, written by tests/fixtures.py", "path: .  # dataset root"]
    lines += [f"{split}: images/{split}" for split in splits]
    lines += ["names:"] + [f"  {i}: {name}" for i, name in enumerate(names)]
    return "\n".join(lines) + "\n"


def make_coco_folder(root, examples=None, image_ext=".png"):
    """Writes annotations/instances_<split>.json and <split>/<id><ext> (COCO 2017 layout).

    Difficult objects become `iscrowd` ones; image ids are not the file names (as in real exports).
    """
    import json

    examples = examples or VOC_EXAMPLES
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    categories = [
        {"id": i, "name": n, "supercategory": "thing"} for n, i in COCO_CATEGORY_IDS.items()
    ]
    for split, items in examples.items():
        os.makedirs(os.path.join(root, split), exist_ok=True)
        images, annotations = [], []
        for seed, (example_id, height, width, objects, difficult) in enumerate(items):
            filename = example_id + image_ext
            write_image(
                os.path.join(root, split, filename), make_image(height, width, objects, seed)
            )
            image_id = 1000 + 7 * seed
            images.append({"id": image_id, "file_name": filename, "width": 999, "height": 999})
            for i, (name, (xmin, ymin, xmax, ymax)) in enumerate(objects):
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": COCO_CATEGORY_IDS[name],
                        "bbox": [xmin, ymin, xmax - xmin, ymax - ymin],
                        "area": (xmax - xmin) * (ymax - ymin),
                        "iscrowd": int(i in difficult),
                    }
                )
        with open(os.path.join(root, "annotations", f"instances_{split}.json"), "w") as f:
            json.dump(
                {
                    "images": images,
                    "annotations": annotations[::-1],
                    "categories": categories[::-1],
                },
                f,
            )
    return str(root)


def make_yolo_folder(root, examples=None, image_ext=".png"):
    """Writes data.yaml, images/<split>/<id><ext> and labels/<split>/<id>.txt (Ultralytics layout).

    YOLO has no difficult flag: difficult objects are written as ordinary ones.
    """
    examples = examples or VOC_EXAMPLES
    for split, items in examples.items():
        os.makedirs(os.path.join(root, "images", split), exist_ok=True)
        os.makedirs(os.path.join(root, "labels", split), exist_ok=True)
        for seed, (example_id, height, width, objects, _) in enumerate(items):
            write_image(
                os.path.join(root, "images", split, example_id + image_ext),
                make_image(height, width, objects, seed),
            )
            with open(os.path.join(root, "labels", split, example_id + ".txt"), "w") as f:
                f.write(
                    "".join(
                        yolo_line(CLASSES.index(n), box, height, width) + "\n" for n, box in objects
                    )
                )
    with open(os.path.join(root, "data.yaml"), "w") as f:
        f.write(data_yaml(examples))
    return str(root)


COCO_ONLY_CASES = ("duplicate_id", "crowd_only", "malformed_entry")


def make_faulty_coco_folder(root):
    """The faults of `faulty_cases` plus COCO's own, as a COCO folder; returns `(root, {id:
    expected})`."""
    import json

    root = str(root)
    images_dir = os.path.join(root, "train")
    os.makedirs(images_dir, exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    outside = os.path.join(os.path.dirname(root), "outside_secret_coco.jpg")
    with open(outside, "wb") as f:
        f.write(_jpeg(make_image(48, 64, [GOOD_BOX])))
    ids = {"cat": 3, "dog": 17, "plate": 90, "unicorn": 55}  # 55: not in categories
    images, annotations, expected = [], [], {}

    def annotate(image_id, objects, iscrowd=0):
        for name, (xmin, ymin, xmax, ymax) in objects:
            bbox = [xmin, ymin, xmax - xmin if not isinstance(xmin, str) else 30, ymax - ymin]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": ids[name],
                    "bbox": bbox,
                    "iscrowd": iscrowd,
                }
            )

    for image_id, (name, (filename, content, objects, outcome)) in enumerate(
        faulty_cases(outside).items()
    ):
        _write_case_image(images_dir, filename, content)
        images.append({"id": image_id, "file_name": filename, "width": 64, "height": 48})
        annotate(image_id, objects)
        expected[name] = outcome
    _write_case_image(images_dir, "crowd_only.jpg", _jpeg(make_image(48, 64, [GOOD_BOX])))
    images.append({"id": 500, "file_name": "crowd_only.jpg"})
    annotate(500, [GOOD_BOX], iscrowd=1)
    expected["crowd_only"] = ("skipped", "no valid non-difficult object")
    images.append({"id": 0, "file_name": "duplicate_id.jpg"})  # id 0 is good0's
    expected["duplicate_id"] = ("skipped", "duplicate image id")
    images.append({"id": 501})  # no file_name
    expected["malformed_entry"] = ("skipped", "malformed image entry")
    annotate(99999, [GOOD_BOX])  # an annotation of no image
    categories = [{"id": i, "name": n} for n, i in ids.items() if n != "unicorn"]
    with open(os.path.join(root, "annotations", "instances_train.json"), "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return root, expected


# Cases whose image cannot be listed in a YOLO folder (its images are the folder's files).
_NOT_LISTABLE = ("escape_relative", "escape_absolute", "missing_image")
# YOLO boxes are normalized values, each in [0, 1]: a box reaching outside the image, or inverted,
# has a value outside that range and is ignored rather than clipped.
_YOLO_OUTCOMES = {"box_outside": ("skipped", "no objects"), "inverted": ("skipped", "no objects")}


def make_faulty_yolo_folder(root):
    """The faults of `faulty_cases` plus YOLO's own, as a YOLO folder; returns `(root, {id:
    expected})`."""
    root = str(root)
    images_dir, labels_dir = (
        os.path.join(root, "images", "train"),
        os.path.join(root, "labels", "train"),
    )
    os.makedirs(images_dir, exist_ok=True)
    os.makedirs(labels_dir, exist_ok=True)
    outside = os.path.join(os.path.dirname(root), "outside_secret_yolo.jpg")
    with open(outside, "wb") as f:
        f.write(_jpeg(make_image(48, 64, [GOOD_BOX])))
    expected = {}
    for name, (filename, content, objects, outcome) in faulty_cases(outside).items():
        if name in _NOT_LISTABLE:
            continue
        _write_case_image(images_dir, filename, content)
        lines = []
        for class_name, box in objects:
            index = CLASSES.index(class_name) if class_name in CLASSES else len(CLASSES)
            if any(isinstance(v, str) for v in box):
                lines.append(f"{index} ten 0.5 0.2 0.2")
            else:
                lines.append(yolo_line(index, box, 48, 64))
        with open(os.path.join(labels_dir, os.path.splitext(filename)[0] + ".txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        expected[name] = _YOLO_OUTCOMES.get(name, outcome)
    good = _jpeg(make_image(48, 64, [GOOD_BOX]))
    own = {
        "no_label": (None, ("skipped", "no label file (background image)")),
        "empty_label": ("", ("skipped", "no objects")),
        "wrong_columns": ("0 0.5 0.5 0.2\n", ("skipped", "no objects")),
        "polygon": ("0 0.1 0.1 0.5 0.1 0.5 0.5\n", ("skipped", "no objects")),
        "one_bad_line": (
            "7 0.5 0.5 0.2 0.2\n0 1.5 0.5 0.2 0.2\n" + yolo_line(0, GOOD_BOX[1], 48, 64) + "\n",
            ("kept", None),
        ),
    }
    for name, (text, outcome) in own.items():
        _write_case_image(images_dir, f"{name}.jpg", good)
        if text is not None:
            with open(os.path.join(labels_dir, f"{name}.txt"), "w") as f:
                f.write(text)
        expected[name] = outcome
    with open(
        os.path.join(labels_dir, "orphan.txt"), "w"
    ) as f:  # a label without an image: not an example
        f.write(yolo_line(0, GOOD_BOX[1], 48, 64) + "\n")
    with open(os.path.join(root, "data.yaml"), "w") as f:
        f.write(data_yaml(["train"]))
    return root, expected


# --- the tiny model ----------------------------------------------------------------------------

#: Head layers whose weights `tiny_model(randomize=True)` draws, with the scale of each.
RANDOMIZED = {"class_dense": 20.0, "box_cells": 1.0, "centre_logits": 1.0, "quality_dense": 1.0}


def tiny_model(seed=0, randomize=False, **changes):
    """The one tiny localizer of the tests: backbone "tiny", no weights, 32 px, `CLASSES`.

    `changes` are `ModelConfig` fields (`image_size=64`, `resize_mode="stretch"`,
    `attach="flattened"`, `box_quality=False`, ...). Seeded whole (the backbone's initial
    weights too), so it is the same model whatever ran before.

    Head layers are zero-initialized at the end, which would make every box the same (and every
    box quality 0.5). `randomize` draws them instead, so outputs depend on the image: True draws
    every layer of `RANDOMIZED` that the head has; a dict `{layer name: scale}` draws those, in
    its order (one generator seeded by `seed`).
    """
    import keras

    from localizer import model as model_lib

    keras.utils.set_random_seed(seed)
    config = {
        "num_classes": 3,
        "class_names": CLASSES,
        "backbone": "tiny",
        "weights": "none",
        "image_size": 32,
    }
    model = model_lib.build_model(model_lib.ModelConfig(**{**config, **changes}))
    if randomize is True:
        randomize = dict(RANDOMIZED)
        if not changes.get("box_quality", True):
            del randomize["quality_dense"]
    heads = model.get_layer("heads")
    rng = np.random.default_rng(seed)
    for name, scale in (randomize or {}).items():
        layer = heads.get_layer(name)
        kernel, bias = layer.get_weights()
        layer.set_weights([rng.normal(0.0, scale, kernel.shape).astype("float32"), bias])
    return model


# --- a tiny training run -----------------------------------------------------------------------


def run_python(*args, env=None, timeout=300):
    """`python *args` in the repository (a command's `-m` or a `-c` script), output captured."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env=env or {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tiny_config(**changes):
    """A tiny, fast synthetic run: 32 px, tiny backbone, few examples."""
    overrides = {
        "model.backbone": "tiny",
        "model.weights": "none",
        "model.image_size": "32",
        "model.head_units": "32",
        "pipeline.batch_size": "16",
        "data.max_examples": "64",
        "frozen_epochs": "1",
        "fine_tune_epochs": "1",
        "fine_tune_fraction": "1.0",
        "feature_passes": "1",
    }
    overrides.update(changes)
    from localizer.training import config as config_lib

    return config_lib.apply_overrides(
        config_lib.default_config(), [f"{k}={v}" for k, v in overrides.items()]
    )


def summary_images(folder, tag):
    import glob

    """`(step, decoded image)` of every image summary `tag` in the event files under `folder`."""
    found = []
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    encoded = tf.make_ndarray(value.tensor)[2]  # [width, height, png]
                    found.append((event.step, tf.io.decode_png(encoded).numpy()))
    return found

"""Predictions for image files: one JSON record per file, optionally drawn.

Every file is checked from its header before it is decoded (format, pixel
limit), so a decompression bomb costs nothing and the files after it still
run. Drawings go to `<name>.<ext>.pred.png` in the draw dir: they never
replace an input, and two inputs never share a drawing (a file given twice
is predicted and drawn once).
"""

import errno
import json
import os
import re
import sys

import numpy as np
import tensorflow as tf

from localizer.inference import annotations as annotations_lib
from localizer.inference.predictor import Predictor
from pipelines import boxes as box_lib
from pipelines import decode, files, image_header
from pipelines.errors import UserError

DRAWING_SUFFIX = ".pred.png"
DRAWING_MARK = "localizer predict"
"""Written into each drawing (`files.mark_metadata`): only such files are ever replaced."""

UNSUPPORTED_EXTENSIONS = (
    ".tif",
    ".tiff",
    ".heic",
    ".heif",
    ".avif",
    ".jxl",
    ".jp2",
    ".ico",
    ".svg",
    ".psd",
)
"""Image formats seen in photo folders that are not decoded here: listed with an error, never
skipped silently."""


DrawDirError = files.OutputFolderError
"""The draw dir would put drawings among the inputs, or over files predict did not write."""


class NoImagesError(UserError, ValueError):
    """No input names an image file: every one is a folder without any."""


def printable(text):
    r"""`text` with its line breaks and other unprintable characters escaped as in a Python string
    literal (`new\nline.jpg`), everything else as it is: a file name, whole, on one line.
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def image_files(paths):
    """Files named directly, plus the image-named entries inside named folders (sorted).

    Every entry of a folder whose name ends in an image extension is listed
    unless it is a folder: a broken link (dangling, or a loop of links) or a
    FIFO gets its own error line from `read_image`, never skipped silently.
    """
    for path in paths:
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                listed = name.lower().endswith(
                    image_header.IMAGE_EXTENSIONS + UNSUPPORTED_EXTENSIONS
                )
                if listed and not os.path.isdir(
                    full
                ):  # isdir follows links: a broken one is listed
                    yield full
        else:
            yield path


def _no_images(folders):
    """What a folder without image files lacks, naming the folders and the extensions looked for."""
    named = ", ".join(printable(folder) for folder in folders)
    return (
        f"{'folder' if len(folders) == 1 else 'folders'} {named} "
        f"{'holds' if len(folders) == 1 else 'hold'} no image file (predict looks for "
        f"{' '.join(image_header.IMAGE_EXTENSIONS)} in any letter case; subfolders are not "
        "searched)"
    )


def check_draw_dir(draw_dir, inputs):
    """Refuses a draw dir that holds any input (or is one), or is a file; returns it."""
    files.check_not_a_file(draw_dir, "--draw_dir", "choose a folder")
    target = os.path.realpath(draw_dir)
    for path in inputs:
        real = os.path.realpath(path)
        folder = real if os.path.isdir(real) else os.path.dirname(real)
        if folder == target:
            raise DrawDirError(
                f"--draw_dir={draw_dir} holds the input {path}; drawings must not go among the "
                "photos, choose another --draw_dir"
            )
    return draw_dir


def check_drawings_are_ours(draw_dir, names):
    """Refuses to replace a file in the draw dir that predict did not write."""
    for name in names:
        path = os.path.join(draw_dir, name)
        if os.path.exists(path) and not files.carries_mark(path, DRAWING_MARK):
            raise DrawDirError(
                f"--draw_dir={draw_dir} holds {name}, which predict did not write; "
                f"choose another --draw_dir"
            )


def distinct_files(paths):
    """`paths` in order, each file once: `a.jpg`, `./a.jpg` or a folder listing it again name one
    file, which
    is predicted and drawn once (under its first spelling).
    """
    seen, distinct = set(), []
    for path in paths:
        # A path that leads nowhere (missing, a broken link) is told apart by its own name: two
        # broken
        # links to one missing file are two lines, not one.
        real = os.path.realpath(path) if os.path.exists(path) else os.path.abspath(path)
        if real not in seen:
            seen.add(real)
            distinct.append(path)
    return distinct


def drawing_names(paths):
    """`{input path: drawing file name}`: `<name>.<ext>.pred.png`; where distinct files share a
    name, the
    later ones in input order are numbered `<name>.<ext>-2.pred.png`, `-3`, ... (a file given twice
    is one
    input: see `distinct_files`).
    """
    names, taken = {}, set()
    for path in distinct_files(paths):
        base = os.path.basename(path)
        name, count = files.fitting_name(f"{base}{DRAWING_SUFFIX}"), 1
        while name in taken:
            count += 1
            name = files.fitting_name(f"{base}-{count}{DRAWING_SUFFIX}")
        taken.add(name)
        names[path] = name
    return names


def read_image(path, max_image_pixels=image_header.MAX_IMAGE_PIXELS):
    """The decoded uint8 image of `path`, upright (its EXIF orientation applied), its header checked
    first
    (format, size, pixel limit, data that ends early or cannot hold the pixels announced).
    """
    if path.lower().endswith(UNSUPPORTED_EXTENSIONS):
        raise image_header.ImageHeaderError(
            f"{path}: {os.path.splitext(path)[1]} images are not supported; convert it to JPEG, "
            "PNG or WebP"
        )
    if not os.path.isfile(path):  # a folder, a FIFO or a device would block or fail the decoder
        if os.path.islink(path) and not os.path.exists(path):
            raise image_header.ImageHeaderError(
                f"{path}: no such file ({_broken_link(path)}); fix or remove the link"
            )
        raise image_header.ImageHeaderError(
            f"{path}: not a regular file" if os.path.exists(path) else f"{path}: no such file"
        )
    info = image_header.check_decodable(path, max_image_pixels)
    with open(path, "rb") as f:
        data = f.read()
    try:
        return decode.decode_image_bytes(data, orientation=info.orientation)
    except tf.errors.InvalidArgumentError as error:
        raise image_header.ImageHeaderError(
            f"{path}: the decoder cannot read its {info.format.upper()} data (damaged inside, or a "
            f"variant it lacks: {_decoder_words(error)}); open and save it again as JPEG or PNG"
        ) from None


def _decoder_words(error):
    """TensorFlow's reason without its op and node names: `{{function_node ...}} reason
    [Op:DecodeImage]`."""
    text = re.sub(r"\{\{[^}]*\}\}", "", error.message or str(error))
    return " ".join(re.sub(r"\[Op:[^\]]*\]", "", text).split()).rstrip(".") or "no reason given"


def _broken_link(path):
    """Why the link `path` leads nowhere: a loop of links, or a target that does not exist."""
    target = printable(os.readlink(path))
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return f"broken link: a loop of links, through {target}"
    return f"broken link to {target}, which does not exist"


class BoxQualityThresholdError(UserError, ValueError):
    """`--min_box_quality` for a model without a box-quality output."""


def check_min_box_quality(predictor, min_box_quality):
    """Refuses a box-quality threshold the model cannot be held to, or one outside [0, 1]."""
    if min_box_quality is None:
        return
    if not 0.0 <= min_box_quality <= 1.0:
        raise BoxQualityThresholdError(
            f"--min_box_quality={min_box_quality} is not in [0, 1]; it is a predicted IoU"
        )
    if not predictor.has_box_quality:
        raise BoxQualityThresholdError(
            f"model {predictor.path} has no box_quality output (trained before it, or with "
            f"model.box_quality=False); drop --min_box_quality or retrain the model"
        )


def prediction_record(
    file, class_names, box, probabilities, quality, height, width, min_box_quality=None
):
    """The JSON record `predict` prints for one image: its `file` name, class, score, top-5,
    box (BOX_FORMAT, normalized yxyx, and pixel xyxy of the `height` x `width` upright image), and
    for a box-quality model (`quality` not None) `"box_quality"`, with `"unsure": true` below
    `min_box_quality`.

    The one builder of that record: predict and the demo page (`localizer.inference.demo_model`,
    from serving_default's outputs) give the same fields and values.
    """
    top = np.argsort(probabilities)[::-1][:5]
    record = {
        "file": file,
        "class": class_names[int(top[0])],
        "score": round(float(probabilities[top[0]]), 4),
        "top5": [
            {"class": class_names[int(i)], "score": round(float(probabilities[i]), 4)} for i in top
        ],
        "box": [round(float(v), 4) for v in box],
        "box_pixels_xyxy": box_lib.rounded_pixel_xyxy(box, height, width),
        "image_size": [int(height), int(width)],
    }
    if quality is not None:
        record["box_quality"] = round(float(quality), 4)
        if min_box_quality is not None and quality < min_box_quality:
            record["unsure"] = True
    if min(height, width) < image_header.MIN_IMAGE_SIDE:
        record["warning"] = (
            f"image is {width}x{height}: under {image_header.MIN_IMAGE_SIDE} px a side "
            f"(training skips such images), the box means little"
        )
    return record


def predict_file(
    predictor,
    path,
    tta="none",
    refine=False,
    max_image_pixels=image_header.MAX_IMAGE_PIXELS,
    min_box_quality=None,
):
    """The prediction record for one file (raises OSError, ImageHeaderError or
    InvalidArgumentError).

    With a box-quality model the record has `"box_quality"`; below
    `min_box_quality` it also has `"unsure": true`.
    """
    image = read_image(path, max_image_pixels)
    box, probabilities, quality = predictor.predict_image(image, tta, refine)
    height, width = image.shape[:2]
    record = prediction_record(
        path, predictor.class_names, box, probabilities, quality, height, width, min_box_quality
    )
    return record, image


def draw(image, record, out_path):
    """Saves the image with the predicted box and label drawn (atomically: a kill leaves no half
    file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height, width = image.shape[:2]
    fig, ax = plt.subplots(figsize=(max(width, 16) / 100, max(height, 16) / 100), dpi=100)
    ax.imshow(image.numpy())
    xmin, ymin, xmax, ymax = record["box_pixels_xyxy"]
    # An unsure box (box quality under --min_box_quality): dashed and orange, marked "?".
    colour, style = ("darkorange", "--") if record.get("unsure") else ("red", "-")
    ax.add_patch(
        plt.Rectangle(
            (xmin, ymin),
            xmax - xmin,
            ymax - ymin,
            fill=False,
            color=colour,
            linewidth=2,
            linestyle=style,
        )
    )
    label = f"{record['class']} {record['score']:.2f}"
    if "box_quality" in record:
        label += f" box {record['box_quality']:.2f}{' ?' if record.get('unsure') else ''}"
    ax.text(xmin, max(ymin - 4, 8), label, color="white", fontsize=9, backgroundcolor=colour)
    ax.axis("off")
    fig.subplots_adjust(0, 0, 1, 1)
    files.atomic_write(
        out_path,
        lambda temporary: fig.savefig(
            temporary, format="png", metadata=files.mark_metadata(DRAWING_MARK)
        ),
    )
    plt.close(fig)


def run(
    model_path,
    paths,
    draw_dir=None,
    tta="none",
    out=sys.stdout,
    refine=False,
    max_image_pixels=image_header.MAX_IMAGE_PIXELS,
    min_box_quality=None,
    annotations=None,
    out_dir=None,
):
    """Predicts every image; writes JSON lines to `out`; returns the number of failures.

    Mistakes that concern the whole run (the model, the draw dir, the
    annotations' out dir, inputs that are only folders without image files)
    raise before any image is read; a folder without image files among inputs
    that have some is a `warning:` line on stderr. With `annotations` (a
    `pipelines.sources.writers.FORMATS` name) the predictions of every image
    that could be read are written to `out_dir` as label files once all are
    done, and a line on stderr says where.
    """
    annotations_lib.check_flags(annotations, out_dir, draw_dir)
    image_header.check_pixel_limit(max_image_pixels)
    if draw_dir:
        check_draw_dir(draw_dir, paths)
    found = {path: list(image_files([path])) for path in dict.fromkeys(paths)}
    empty = [path for path, names in found.items() if not names]
    listed = distinct_files(name for path in paths for name in found[path])
    if not listed:
        raise NoImagesError(f"{_no_images(empty)}; give image files, or a folder that holds them")
    if empty:
        print(
            f"warning: {_no_images(empty)}; nothing predicted from "
            f"{'it' if len(empty) == 1 else 'them'}",
            file=sys.stderr,
        )
    predictor = Predictor(model_path)
    check_min_box_quality(predictor, min_box_quality)
    drawings = drawing_names(listed)
    if draw_dir:
        check_drawings_are_ours(draw_dir, drawings.values())
        files.check_writable_folder(draw_dir, "draw dir")
    if annotations:
        # A file of a format predict does not read always fails: its stem takes no id.
        readable = [path for path in listed if not path.lower().endswith(UNSUPPORTED_EXTENSIONS)]
        annotations_lib.check_out_dir(annotations, out_dir, readable, predictor.class_names)
    failures, labels = 0, []
    for path in listed:
        try:
            record, image = predict_file(
                predictor, path, tta, refine, max_image_pixels, min_box_quality
            )
        except (OSError, image_header.ImageHeaderError, tf.errors.InvalidArgumentError) as error:
            failures += 1
            out.write(json.dumps({"file": path, "error": _one_line(error, path)}) + "\n")
            out.flush()
            continue
        if draw_dir:
            draw(image, record, os.path.join(draw_dir, drawings[path]))
        if annotations:
            labels.append(annotations_lib.label_of(record, predictor.class_names))
        out.write(json.dumps(record) + "\n")
        out.flush()
    if annotations:
        print(
            annotations_lib.write(annotations, out_dir, labels, predictor.class_names),
            file=sys.stderr,
        )
    return failures


LINE_BREAKS = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
"""What `str.splitlines` breaks at."""


def _one_line(error, path=None):
    """The error's message on one line, for predict's `"error"` field.

    File names in it (`path`, an OSError's file name) stay whole whatever
    characters they hold, their line breaks escaped (`printable`); the text
    around them is cut at its first line break (TensorFlow's messages go on
    with op details) and its runs of white space joined.
    """
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    filename = error.filename if isinstance(error, OSError) else None
    if isinstance(filename, bytes):
        filename = os.fsdecode(filename)
    elif filename is not None and not isinstance(filename, str):
        filename = str(filename)  # a file descriptor
    if isinstance(error, OSError) and error.strerror:
        strerror = " ".join(error.strerror.split())
        return f"{printable(filename)}: {strerror}" if filename else strerror
    names = sorted({name for name in (path, filename) if name}, key=len, reverse=True)
    pieces = re.split(f"({'|'.join(map(re.escape, names))})", message) if names else [message]
    kept = []  # (text, is a file name)
    for i, piece in enumerate(pieces):
        if i % 2:
            kept.append((printable(piece), True))
            continue
        if not any(text for text, _ in kept):
            piece = piece.lstrip()
        line_break = LINE_BREAKS.search(piece)
        kept.append(
            (re.sub(r"\s+", " ", piece[: line_break.start()] if line_break else piece), False)
        )
        if line_break:
            break
    if kept and not kept[-1][1]:
        kept[-1] = (kept[-1][0].rstrip(), False)
    return "".join(text for text, _ in kept) or type(error).__name__

"""The demo page (`python -m localizer.demo`): a Gradio page on which a person drops, pastes or
picks a photo and sees the model's answer, drawn, with predict's JSON record to download.

Gradio is the ML ecosystem's standard for such pages (Hugging Face Spaces, model cards), an
optional extra (`.[demo]`) imported only here and only when the page is built: a missing Gradio
is one error line. Analytics are turned off before the import (no calls home; the page works
offline) and the page listens on 127.0.0.1 unless told otherwise.

The model sees the user's own file: the photo's event takes Gradio's upload as it arrived
(`preprocess=False`: the uploaded file's path and name), because `gr.Image`'s preprocessing opens
the file with Pillow first and, unless asked for the file unchanged, turns it by its EXIF tag and
encodes it again. The answer comes from `demo_model.DemoModel`, whose header checks turn a
file that is not an image, damaged or over the pixel limit into a message on the page.
"""

import json
import logging
import os
import re
import socket
import sys
import tempfile
import traceback
from typing import NamedTuple

import tensorflow as tf

from localizer.inference import image_files
from localizer.inference.demo_model import DemoModel
from pipelines import files, image_header
from pipelines.errors import FlagValueError, UserError

INSTALL_HINT = 'pip install -e ".[demo]"'
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
"""Gradio's usual port."""
MAX_EXAMPLES = 60
"""Example photos the page lists at most (each is copied into Gradio's cache at start)."""
CACHE_HOURS = 1
"""Gradio's copies of uploaded photos are deleted after this long (a page left running for days
keeps no pile of them)."""
IMAGE_HEIGHT = 420
"""Pixels of page height each photo takes (the photo and its drawing side by side)."""
RECORD_SUFFIX = ".pred.json"
"""The downloadable record is `<photo name>.pred.json`, beside predict's `<name>.pred.png`."""


class GradioMissingError(UserError, ImportError):
    """The `.[demo]` extra is not installed."""


class ExamplesError(UserError, ValueError):
    """`--examples` is not a folder, or holds no image file."""


class AddressError(UserError, OSError):
    """The page cannot listen at `--host`/`--port` (taken, or not this machine's)."""


def import_gradio():
    """The `gradio` module, analytics off; GradioMissingError (one line) when it is not
    installed."""
    # Read by Gradio at import: no analytics and no version check over the network.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio
    except ImportError as error:
        raise GradioMissingError(
            f"the demo page needs Gradio, which cannot be imported ({error}); install the demo "
            f"extra: {INSTALL_HINT}"
        ) from None
    return gradio


def example_photos(folder):
    """The image files in `folder` (sorted, at most MAX_EXAMPLES, the rest named in a warning)."""
    if not os.path.isdir(folder):
        raise ExamplesError(
            f"--examples={folder} is not a folder; give a folder of photos, or leave --examples out"
        )
    photos = [
        path
        for path in image_files.image_files([folder])
        if path.lower().endswith(image_header.IMAGE_EXTENSIONS) and os.path.isfile(path)
    ]
    if not photos:
        raise ExamplesError(
            f"--examples={folder} holds no image file ("
            f"{' '.join(image_header.IMAGE_EXTENSIONS)}, subfolders not searched); give a folder "
            "of photos, or leave --examples out"
        )
    if len(photos) > MAX_EXAMPLES:
        print(
            f"warning: --examples={folder} holds {len(photos)} photos; the page lists the first "
            f"{MAX_EXAMPLES}",
            file=sys.stderr,
        )
    return photos[:MAX_EXAMPLES]


def check_address(host, port):
    """Refuses a port outside 1..65535, and a host/port the page could not listen on (taken by
    another program, or an address not of this machine), before the model loads."""
    if not 1 <= port <= 65535:
        raise FlagValueError(f"--port={port} must be in 1..65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            # As the web server binds (uvicorn): a port just freed, in TIME_WAIT, is usable.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        raise AddressError(_address_problem(host, port, error)) from None


def _address_problem(host, port, error):
    reason = " ".join(str(getattr(error, "strerror", None) or error).split())
    return (
        f"the page cannot listen on --host={host} --port={port} ({reason}); the port may be "
        "taken (another demo?): pass another --port, or a --host of this machine"
    )


class Answer(NamedTuple):
    """What the page shows for one photo (the outputs of the photo's event, in this order)."""

    drawing: str | None = None
    """A PNG: the photo upright with the box and label drawn (`image_files.draw`)."""
    message: str = ""
    """Markdown: why the photo could not be used, or the record's warning; empty otherwise."""
    class_name: str = ""
    box_quality: str = ""
    """The predicted IoU of the box, with the unsure mark; or why there is none."""
    top5: dict | None = None
    """`{class: probability}` for `gr.Label`."""
    record: str = ""
    """The JSON line `predict` prints for the photo."""
    record_file: str | None = None
    """The same line in a `<name>.pred.json` file to download."""


def _uploaded(upload):
    """`(path, name)` of Gradio's unprocessed upload (a FileData dict, or the object)."""
    get = upload.get if isinstance(upload, dict) else lambda key: getattr(upload, key, None)
    path = get("path")
    return path, os.path.basename(get("orig_name") or path)


def page_message(error, path, name):
    """The error's first line, the upload's cache path in it replaced by the photo's name."""
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    text = text.replace(path, name)
    return " ".join((text.strip().splitlines() or [""])[0].split()) or type(error).__name__


def quality_text(record, model):
    """The box quality with the unsure mark, as the page shows it."""
    if "box_quality" not in record:
        return "none: this model has no box-quality head"
    text = f"{record['box_quality']:.4f}"
    if record.get("unsure"):
        text += (
            f"  UNSURE: under {model.min_box_quality:g}, the model expects this box to miss the "
            "object (drawn dashed)"
        )
    return text


def _file_name(name, suffix):
    """`name` + `suffix`, safe to write in a folder of ours: no separators or odd characters, and
    short enough for the file system (`files.fitting_name`)."""
    return files.fitting_name((re.sub(r"[^\w.-]", "_", name) or "photo") + suffix)


def answer(model, upload, work_dir):
    """The `Answer` for one upload (None: the photo was cleared). Never raises for a bad photo:
    a file predict would refuse gets its message; a bug gets a line on the page and its traceback
    on the terminal, and the page goes on with the next photo."""
    if not upload:
        return Answer()
    path, name = _uploaded(upload)
    try:
        record, image = model.predict(path, name)
    except (OSError, image_header.ImageHeaderError, tf.errors.InvalidArgumentError) as error:
        return Answer(message=f"**Cannot use this photo.** {page_message(error, path, name)}")
    except Exception as error:  # a bug: its traceback where the demo runs, the page goes on
        traceback.print_exc()
        return Answer(
            message=f"**The model failed on this photo** ({type(error).__name__}: a bug; the "
            "traceback is in the terminal running the demo)."
        )
    folder = tempfile.mkdtemp(dir=work_dir)  # one per answer: two photos of one name never mix
    drawing = os.path.join(folder, _file_name(name, image_files.DRAWING_SUFFIX))
    image_files.draw(image, record, drawing)
    line = json.dumps(record)
    record_file = os.path.join(folder, _file_name(name, RECORD_SUFFIX))
    with open(record_file, "w", encoding="utf-8") as f:
        f.write(line + "\n")
    return Answer(
        drawing=drawing,
        message=f"**Note:** {record['warning']}" if "warning" in record else "",
        class_name=f"{record['class']} (score {record['score']:.4f})",
        box_quality=quality_text(record, model),
        top5={entry["class"]: entry["score"] for entry in record["top5"]},
        record=line,
        record_file=record_file,
    )


def _introduction(model):
    unsure = (
        f" A box whose quality (the model's predicted IoU) is under {model.min_box_quality:g} is "
        "marked unsure and drawn dashed."
        if model.min_box_quality is not None
        else ""
    )
    return (
        f"## localizer: {model.path}\n"
        f"Drop, paste or pick a photo: the page shows it upright with the model's box, the class "
        f"and the top 5, and the JSON record `python -m localizer.predict` prints for it. "
        f"Classes: {', '.join(model.class_names)}. Answers come from {model.runs}.{unsure}"
    )


def build_page(gradio, model, work_dir, examples=()):
    """The Gradio page (a `gr.Blocks`) over `model` (`DemoModel`); answers written in
    `work_dir`."""
    gr = gradio
    with gr.Blocks(
        title="localizer demo", delete_cache=(CACHE_HOURS * 3600, CACHE_HOURS * 3600)
    ) as page:
        gr.Markdown(_introduction(model))
        with gr.Row():
            photo = gr.Image(
                type="filepath",
                image_mode=None,
                sources=["upload", "clipboard"],
                label="Photo: drop, paste or click to pick",
                height=IMAGE_HEIGHT,
                elem_id="photo",
            )
            drawing = gr.Image(
                label="The model's box",
                interactive=False,
                format="png",
                height=IMAGE_HEIGHT,
                elem_id="drawing",
            )
        message = gr.Markdown(elem_id="message")
        with gr.Row():
            class_name = gr.Textbox(label="Class", elem_id="class")
            box_quality = gr.Textbox(label="Box quality (predicted IoU)", elem_id="box_quality")
        top5 = gr.Label(num_top_classes=5, label="Top 5", elem_id="top5")
        record = gr.Textbox(
            label="JSON record (the line predict prints)", buttons=["copy"], elem_id="record"
        )
        record_file = gr.File(label="Download the JSON record", elem_id="record_file")
        if examples:
            gr.Examples(
                examples=[[path] for path in examples], inputs=[photo], label="Example photos"
            )
        photo.change(
            lambda upload: tuple(answer(model, upload, work_dir)),
            inputs=photo,
            outputs=[drawing, message, class_name, box_quality, top5, record, record_file],
            preprocess=False,  # the user's own file, not Gradio's re-encoded copy
            show_progress="minimal",
        )
    return page


def launch(page, host, port):
    """Starts the page's server without blocking; returns its URL."""
    # Gradio checks its own start with httpx, whose INFO lines absl's logging would print.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        _, url, _ = page.launch(
            server_name=host,
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            share=False,
            ssr_mode=False,  # no Node server beside Python: one process, one port
            footer_links=["gradio", "settings"],
        )
    except OSError as error:  # taken between the check and the start
        raise AddressError(_address_problem(host, port, error)) from None
    return url


def run(
    model_path,
    host=DEFAULT_HOST,
    port=DEFAULT_PORT,
    examples_folder=None,
    min_box_quality=None,
    max_image_pixels=image_header.MAX_IMAGE_PIXELS,
):
    """Checks everything that can be wrong (Gradio, --examples, the address) before the model
    loads, then serves the page until Ctrl+C; prints its URL."""
    gradio = import_gradio()
    examples = example_photos(examples_folder) if examples_folder else []
    check_address(host, port)
    model = DemoModel(model_path, min_box_quality, max_image_pixels)
    with tempfile.TemporaryDirectory(prefix="localizer-demo-") as work_dir:
        page = build_page(gradio, model, work_dir, examples)
        url = launch(page, host, port)
        print(f"localizer demo of {model_path}: open {url} (Ctrl+C stops it)", flush=True)
        try:
            page.block_thread()
        finally:
            page.close()

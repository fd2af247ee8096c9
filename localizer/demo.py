"""Try a model in a browser: `python -m localizer.demo`.

    python -m localizer.demo --model=models/localizer/1 [--examples=photos/] [--port=7860]

Serves a local web page (Gradio, the `.[demo]` extra: pip install -e ".[demo]") on which a
person drops, pastes or picks a photo and sees it upright with the predicted box and label, the
class, the top 5, the box quality with the unsure mark, and downloads the JSON record
`python -m localizer.predict` prints for it. An export's version folder answers through its
`serving_default` signature (what TF Serving serves); a .keras file as predict runs it. Listens
on 127.0.0.1 unless --host says otherwise; Ctrl+C stops it.

Flags and `main` only: the page is `localizer.inference.demo_page`, what answers
`localizer.inference.demo_model`.
"""

from absl import flags

from localizer.inference import demo_model, demo_page
from pipelines import cli, dataset_flags

FLAGS = flags.FLAGS


def main(argv):
    if argv[1:]:
        raise cli.UserError(
            f"unexpected argument {argv[1]}; the page takes the photos: "
            "python -m localizer.demo --model=MODEL [--examples=FOLDER]"
        )
    demo_page.run(
        FLAGS.model,
        host=FLAGS.host,
        port=FLAGS.port,
        examples_folder=FLAGS.examples,
        min_box_quality=FLAGS.min_box_quality,
        max_image_pixels=FLAGS.max_image_pixels,
    )


def define_flags():
    flags.DEFINE_string(
        "model",
        None,
        "An exported SavedModel version folder (answers through serving_default), or a .keras "
        "file or an export's .tflite or .onnx file (answers as predict does).",
        required=True,
    )
    flags.DEFINE_integer("port", demo_page.DEFAULT_PORT, "The port the page listens on.")
    flags.DEFINE_string(
        "host",
        demo_page.DEFAULT_HOST,
        "The address the page listens on: this machine only by default; 0.0.0.0 opens it to "
        "the network (anyone who reaches it can run the model).",
    )
    flags.DEFINE_string(
        "examples", None, "A folder of photos the page offers as examples to click."
    )
    flags.DEFINE_float(
        "min_box_quality",
        None,
        "Mark boxes whose predicted IoU (box_quality) is below this as unsure (as predict's "
        "flag). Default for a model with a box-quality head: "
        f"{demo_model.DEFAULT_MIN_BOX_QUALITY:g}, the IoU at which a box counts as found, so the "
        "mark flags the boxes the model itself expects to miss.",
    )
    dataset_flags.define_pixel_limit_flag()


if __name__ == "__main__":
    cli.run(main, define_flags)

"""Export a localizer for TF Serving: `python -m localizer.export` (or `make export`).

    python -m localizer.export --model=work/quickstart/best.keras --export_dir=models/localizer [--version=N]

Flags and `main` only: the work is `localizer.serving.export_lib.export_saved_model`.
"""

import os

from absl import flags, logging

from localizer import cli, files
from localizer.inference.predictor import load_keras_model
from localizer.serving import export_lib
from localizer.serving.signatures import (
    BYTES_INPUT, IMAGES_INPUT, IMAGES_SIGNATURE, SERVING_SIGNATURE, TFLITE_FILE, load_metadata,
)
from pipelines import cli as dataset_cli
from pipelines.image_header import check_pixel_limit

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected argument {argv[1]!r}; every option is a --flag (see --helpshort)")
    logging.set_verbosity(logging.WARNING)  # SavedModel's INFO lines about renamed captures
    max_image_pixels = check_pixel_limit(FLAGS.max_image_pixels)
    if FLAGS.version is not None:
        cli.require_positive(FLAGS.version, "version")
    model = load_keras_model(FLAGS.model, hint="pass --model=<a .keras file from training>")
    files.check_writable_folder(FLAGS.export_dir, "export dir")
    path = export_lib.export_saved_model(
        model, FLAGS.export_dir, version=FLAGS.version, max_image_pixels=max_image_pixels,
        tflite=FLAGS.tflite, refine=FLAGS.refine,
    )
    metadata = load_metadata(path)
    print(f"Exported {FLAGS.model} -> {path}")
    print(f"  {len(metadata['class_names'])} classes, {metadata['resize_mode']} to {metadata['image_size']} px")
    print(f"  signatures: {SERVING_SIGNATURE} ({BYTES_INPUT}: string [B]), "
          f"{IMAGES_SIGNATURE} ({IMAGES_INPUT}: uint8 [B, {metadata['image_size']}, {metadata['image_size']}, 3])")
    if FLAGS.tflite:
        print(f"  TFLite (predict_images only): {os.path.join(path, TFLITE_FILE)}")
    print(f"  serve: tensorflow_model_server --rest_api_port=8501 --model_name=localizer "
          f"--model_base_path={os.path.dirname(path)}")


def define_flags():
    flags.DEFINE_string("model", None, "The .keras model to export.", required=True)
    flags.DEFINE_string("export_dir", "models/localizer", "Model base path; the version folder goes inside.")
    flags.DEFINE_integer("version", None, "Version number (default: the next free one).")
    dataset_cli.define_pixel_limit_flag()
    flags.DEFINE_boolean("tflite", False, "Also write assets.extra/localizer.tflite (predict_images, checked).")
    flags.DEFINE_boolean("refine", True, "serving_default takes a second, zoomed look around the first box "
                         "(--norefine: one look, about half the compute).")


if __name__ == "__main__":
    cli.run(main, define_flags)

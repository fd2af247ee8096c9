"""Export a localizer for TF Serving: `python -m localizer.export` (or `make export`).

    python -m localizer.export --model=work/quickstart/best.keras --export_dir=models/localizer [--version=N]

Flags and `main` only: the work is `localizer.serving.export_lib.export_saved_model`.
"""

import os
import sys

from absl import app, flags, logging

from localizer.serving import export_lib, verify
from localizer.serving.signatures import (
    BYTES_INPUT, IMAGES_INPUT, IMAGES_SIGNATURE, SERVING_SIGNATURE, TFLITE_FILE, load_metadata,
)
from pipelines.image_header import MAX_IMAGE_PIXELS

FLAGS = flags.FLAGS


def main(argv):
    del argv
    import keras

    logging.set_verbosity(logging.WARNING)  # SavedModel's INFO lines about renamed captures
    model = keras.models.load_model(FLAGS.model, compile=False)
    try:
        path = export_lib.export_saved_model(
            model, FLAGS.export_dir, version=FLAGS.version, max_image_pixels=FLAGS.max_image_pixels,
            tflite=FLAGS.tflite, refine=FLAGS.refine,
        )
    except (FileExistsError, ValueError, verify.ExportVerificationError) as error:
        sys.exit(f"Export failed: {error}")
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
    flags.DEFINE_string("model", None, "The .keras model to export.")
    flags.DEFINE_string("export_dir", "models/localizer", "Model base path; the version folder goes inside.")
    flags.DEFINE_integer("version", None, "Version number (default: the next free one).")
    flags.DEFINE_integer("max_image_pixels", MAX_IMAGE_PIXELS,
                         "serving_default refuses JPEG/PNG images with more pixels (0: no limit).")
    flags.DEFINE_boolean("tflite", False, "Also write assets.extra/localizer.tflite (predict_images, checked).")
    flags.DEFINE_boolean("refine", True, "serving_default takes a second, zoomed look around the first box "
                         "(--norefine: one look, about half the compute).")
    flags.mark_flag_as_required("model")


if __name__ == "__main__":
    define_flags()
    app.run(main)

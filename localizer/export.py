"""Export a localizer for TF Serving: `python -m localizer.export` (or `make export`).

    python -m localizer.export --model=work/quickstart/best.keras --export_dir=models/localizer [--version=N]

Flags and `main` only: the work is `localizer.serving.export_lib.export_saved_model`.
"""

import os

from absl import flags, logging

from localizer import cli, files
from localizer.inference.predictor import load_keras_model
from localizer import model as model_lib
from localizer.serving import calibration, export_lib
from localizer.serving.signatures import (
    BYTES_INPUT, IMAGES_INPUT, IMAGES_SIGNATURE, SERVING_SIGNATURE, TFLITE_FILE, TFLITE_INT8_FILE, load_metadata,
)
from localizer.training import data as data_lib
from localizer.training import workdir
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
    int8_images = None
    if FLAGS.tflite_int8:
        cli.require_positive(FLAGS.calibration_images, "calibration_images")
        metadata = model_lib.model_metadata(model)
        source, split = _training_data(model, max_image_pixels)
        int8_images = calibration.calibration_and_check_images(
            source, split, metadata["image_size"], metadata["resize_mode"], count=FLAGS.calibration_images)
    path = export_lib.export_saved_model(
        model, FLAGS.export_dir, version=FLAGS.version, max_image_pixels=max_image_pixels,
        tflite=FLAGS.tflite, refine=FLAGS.refine, tflite_int8=int8_images,
    )
    metadata = load_metadata(path)
    print(f"Exported {FLAGS.model} -> {path}")
    print(f"  {len(metadata['class_names'])} classes, {metadata['resize_mode']} to {metadata['image_size']} px")
    print(f"  signatures: {SERVING_SIGNATURE} ({BYTES_INPUT}: string [B]), "
          f"{IMAGES_SIGNATURE} ({IMAGES_INPUT}: uint8 [B, {metadata['image_size']}, {metadata['image_size']}, 3])")
    if FLAGS.tflite:
        print(f"  TFLite (predict_images only): {os.path.join(path, TFLITE_FILE)}")
    if FLAGS.tflite_int8:
        print(f"  TFLite int8 (predict_images only, {len(int8_images[0])} calibration images): "
              f"{os.path.join(path, TFLITE_INT8_FILE)}")
    print(f"  serve: tensorflow_model_server --rest_api_port=8501 --model_name=localizer "
          f"--model_base_path={os.path.dirname(path)}")


DATA_FLAGS = ("dataset", "data_dir", "split")


def _training_data(model, max_image_pixels):
    """`(source, split)` to calibrate int8 on: the dataset flags if given, else the run's recorded data."""
    if any(FLAGS[name].present for name in DATA_FLAGS):
        source, split = dataset_cli.source_from_flags(FLAGS), FLAGS.split
    else:
        data = workdir.recorded_data(FLAGS.model)
        if data is None:
            raise cli.UserError(
                f"--tflite_int8 calibrates on the model's training data, and no work-dir "
                f"{workdir.CONFIG_FILE} beside {FLAGS.model} names it; pass --dataset=... --data_dir=... "
                f"(and --split, default train)")
        source, split = data_lib.build_source(data, max_image_pixels), data.train_split
    class_names = model_lib.model_metadata(model)["class_names"]
    if list(source.class_names) != class_names:
        raise cli.UserError(f"the calibration dataset {source.name} has classes {list(source.class_names)}, the "
                            f"model {FLAGS.model} {class_names}; pass the dataset it was trained on (--dataset, "
                            f"--data_dir)")
    return source, split


def define_flags():
    flags.DEFINE_string("model", None, "The .keras model to export.", required=True)
    flags.DEFINE_string("export_dir", "models/localizer", "Model base path; the version folder goes inside.")
    flags.DEFINE_integer("version", None, "Version number (default: the next free one).")
    dataset_cli.define_dataset_flags(default_split="train")  # --tflite_int8's calibration data
    flags.DEFINE_boolean("tflite", False, "Also write assets.extra/localizer.tflite (predict_images, checked).")
    flags.DEFINE_boolean("tflite_int8", False, "Also write assets.extra/localizer_int8.tflite: predict_images "
                         "quantized to full integer, calibrated on the training split (the work dir's config.json "
                         "beside --model names it, or --dataset/--data_dir/--split), checked.")
    flags.DEFINE_integer("calibration_images", calibration.CALIBRATION_IMAGES,
                         "--tflite_int8: training images (a seeded sample) that calibrate the int8 ranges.")
    flags.DEFINE_boolean("refine", True, "serving_default takes a second, zoomed look around the first box "
                         "(--norefine: one look, about half the compute).")


if __name__ == "__main__":
    cli.run(main, define_flags)

"""Export a localizer for TF Serving: `python -m localizer.export` (or `make export`).

    python -m localizer.export --model=work/quickstart/best.keras --export_dir=models/localizer
    [--version=N] [--tflite] [--tflite_int8] [--onnx]

Flags and `main` only: the work is `localizer.serving.export_lib.export_saved_model`.
"""

import os
import sys
import typing

import tensorflow as tf
from absl import flags, logging

from localizer import model as model_lib
from localizer.inference.predictor import load_keras_model
from localizer.serving import calibration, export_lib, onnx_export, verify
from localizer.serving.signatures import (
    BYTES_INPUT,
    IMAGES_INPUT,
    IMAGES_SIGNATURE,
    ONNX_FILE,
    SERVING_SIGNATURE,
    TFLITE_FILE,
    TFLITE_INT8_FILE,
)
from localizer.serving.verify import ExportVerificationError
from localizer.training import data as data_lib
from localizer.training import workdir
from pipelines import cli, dataset_flags, files
from pipelines.image_header import check_pixel_limit
from pipelines.sources.source import DatasetError

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(
            f"unexpected argument {argv[1]!r}; every option is a --flag (see --helpshort)"
        )
    logging.set_verbosity(logging.WARNING)  # SavedModel's INFO lines about renamed captures
    max_image_pixels = check_pixel_limit(FLAGS.max_image_pixels)
    if FLAGS.version is not None:
        cli.require_positive(FLAGS.version, "version")
    if FLAGS.tflite_int8:
        cli.require_positive(FLAGS.calibration_images, "calibration_images")
    if FLAGS.onnx:  # before the model is loaded: a missing package fails at once
        onnx_export.require(onnx_export.CONVERTER_PACKAGES, "--onnx")
    files.check_writable_folder(FLAGS.export_dir, "export dir", todo="choose another --export_dir")
    model = load_keras_model(FLAGS.model, hint="pass --model=<a .keras file from training>")
    metadata = model_lib.model_metadata(model)
    data = _data(max_image_pixels)
    int8_images = None
    if FLAGS.tflite_int8:
        data = _calibration_data(model, data)
        try:
            int8_images = calibration.calibration_and_check_images(
                data.source,
                data.calibration_split,
                metadata["image_size"],
                metadata["resize_mode"],
                count=FLAGS.calibration_images,
            )
        except UNREADABLE_DATA as error:  # the data the user named, or the run recorded
            raise cli.as_user_error(error) from error
    check_images = _check_images(data, metadata["image_size"])
    checks = []
    path = _export(model, max_image_pixels, int8_images, check_images, checks.append)
    print(f"Exported {FLAGS.model} -> {path}")
    print(
        f"  {len(metadata['class_names'])} classes, {metadata['resize_mode']} to "
        f"{metadata['image_size']} px"
    )
    print(
        f"  signatures: {SERVING_SIGNATURE} ({BYTES_INPUT}: string [B]), {IMAGES_SIGNATURE} "
        f"({IMAGES_INPUT}: uint8 [B, {metadata['image_size']}, {metadata['image_size']}, 3])"
    )
    if FLAGS.tflite:
        print(f"  TFLite (predict_images only): {os.path.join(path, TFLITE_FILE)}")
    if FLAGS.tflite_int8:
        print(
            f"  TFLite int8 (predict_images only, {len(int8_images[0])} calibration images): "
            f"{os.path.join(path, TFLITE_INT8_FILE)}"
        )
    if FLAGS.onnx:
        print(f"  ONNX (predict_images only): {os.path.join(path, ONNX_FILE)}")
    for check in checks:
        print(f"  checked: {check.line()}")
    print(
        f"  serve: tensorflow_model_server --rest_api_port=8501 --model_name=localizer "
        f"--model_base_path={os.path.dirname(path)}"
    )


def _export(model, max_image_pixels, int8_images, check_images, on_check):
    """`export_lib.export_saved_model` with the flags; a failed check or a full disk is one error
    line."""
    try:
        return export_lib.export_saved_model(
            model,
            FLAGS.export_dir,
            version=FLAGS.version,
            max_image_pixels=max_image_pixels,
            refine=FLAGS.refine,
            tflite=FLAGS.tflite,
            tflite_int8=int8_images,
            onnx=FLAGS.onnx,
            checks=export_lib.ExportChecks(images=check_images, on_check=on_check),
        )
    except ExportVerificationError as error:
        raise cli.UserError(f"export of {FLAGS.model} failed its check: {error}") from error
    except Exception as error:
        if not files.is_disk_full(error) or isinstance(error, files.DiskFullError):
            raise
        # Python's writes name no file, TensorFlow's one inside the temporary version folder: name
        # the export
        # dir, or the file elsewhere (a temporary asset) that did not fit.
        path = getattr(error, "filename", None)
        where = path if path and not files.inside(path, FLAGS.export_dir) else FLAGS.export_dir
        raise files.DiskFullError(
            where,
            todo="free space there, or pass another --export_dir, and export again; "
            "nothing was published",
        ) from error


DATA_FLAGS = ("dataset", "data_dir", "split")


class _Data(typing.NamedTuple):
    """The model's data: `source`, the split int8 calibrates on, the split the export is checked on,
    and
    whether the dataset flags named it (else the run's config.json did).
    """

    source: object
    calibration_split: str
    check_split: str
    named: bool


UNREADABLE_DATA = (DatasetError, OSError, tf.errors.OpError)
"""What reading a dataset raises when its files are missing or unreadable."""


def _data(max_image_pixels):
    """The dataset flags' data (one split for both), else the run's recorded data, else None.

    Only --tflite_int8 needs the data: for a plain export, recorded data that
    cannot be read (moved, another machine) is left out with a note.
    """
    if any(FLAGS[name].present for name in DATA_FLAGS):
        return _Data(dataset_flags.source_from_flags(FLAGS), FLAGS.split, FLAGS.split, named=True)
    data = workdir.recorded_data(FLAGS.model)
    if data is None:
        return None
    try:
        source = data_lib.build_source(data, max_image_pixels)
    except UNREADABLE_DATA as error:
        if FLAGS.tflite_int8:
            raise cli.as_user_error(error) from error
        return _without_data(data.dataset, error)
    return _Data(source, data.train_split, data.val_split, named=False)


def _without_data(what, error):
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    print(
        f"note: the run's data ({what}) cannot be read ({first}); the export is checked on "
        "generated images instead",
        file=sys.stderr,
    )
    return None


def _calibration_data(model, data):
    """The data int8 calibrates on: the model's training data, with the model's classes."""
    if data is None:
        raise cli.UserError(
            "--tflite_int8 calibrates on the model's training data, and no work-dir "
            f"{workdir.CONFIG_FILE} beside {FLAGS.model} names it; pass --dataset=... "
            "--data_dir=... (and --split, default train)"
        )
    class_names = model_lib.model_metadata(model)["class_names"]
    if list(data.source.class_names) != class_names:
        raise cli.UserError(
            f"the calibration dataset {data.source.name} has classes "
            f"{list(data.source.class_names)}, the model {FLAGS.model} {class_names}; pass the "
            "dataset it was trained on (--dataset, --data_dir)"
        )
    return data


def _check_images(data, image_size):
    """The images the export is checked on: photos of the model's data (`data.check_split`), else
    generated
    photo-like ones; both with two noise images.
    """
    if data is not None:
        try:
            return verify.dataset_check_images(data.source, data.check_split, image_size)
        except UNREADABLE_DATA as error:
            if data.named or FLAGS.tflite_int8:
                raise cli.as_user_error(error) from error
            _without_data(f"{data.source.name} {data.check_split}", error)
    return verify.generated_check_images(image_size)


def define_flags():
    flags.DEFINE_string("model", None, "The .keras model to export.", required=True)
    flags.DEFINE_string(
        "export_dir", "models/localizer", "Model base path; the version folder goes inside."
    )
    flags.DEFINE_integer("version", None, "Version number (default: the next free one).")
    dataset_flags.define_dataset_flags(default_split="train")  # --tflite_int8's calibration data
    flags.DEFINE_boolean(
        "tflite", False, "Also write assets.extra/localizer.tflite (predict_images, checked)."
    )
    flags.DEFINE_boolean(
        "tflite_int8",
        False,
        "Also write assets.extra/localizer_int8.tflite: predict_images "
        "quantized to full integer, calibrated on the training split (the work dir's config.json "
        "beside --model names it, or --dataset/--data_dir/--split), checked.",
    )
    flags.DEFINE_boolean(
        "onnx",
        False,
        "Also write assets.extra/localizer.onnx (predict_images converted with tf2onnx, run by "
        'onnxruntime and checked; needs pip install -e ".[onnx]").',
    )
    flags.DEFINE_integer(
        "calibration_images",
        calibration.CALIBRATION_IMAGES,
        "--tflite_int8: training images (a seeded sample) that calibrate the int8 ranges.",
    )
    flags.DEFINE_boolean(
        "refine",
        True,
        "serving_default takes a second, zoomed look around the first box "
        "(--norefine: one look, about half the compute).",
    )


if __name__ == "__main__":
    cli.run(main, define_flags)

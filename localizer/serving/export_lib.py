"""Exports a localizer as a versioned SavedModel that TF Serving serves as is.

    python -m localizer.export --model=work/quickstart/best.keras --export_dir=models/localizer
    [--version=N]
    (or `make export MODEL=...`)

writes `<export_dir>/<version>/`, the layout `tensorflow_model_server
--model_base_path=<export_dir>` (and the `tensorflow/serving` Docker image)
expects: one numbered folder per version, the highest served by default.

Signatures (see `saved_model_cli show --all --dir <export_dir>/<version>`):

  serving_default
    in:  image_bytes  string [B]   encoded JPEG/PNG/GIF/BMP images, any size
    out: class_id     int32 [B]    the predicted class
         class_name   string [B]   its name
         score        float32 [B]  its softmax probability
         box          float32 [B, 4]  normalized [ymin, xmin, ymax, xmax] of the
                                   ORIGINAL image (the letterbox is undone)
         probabilities float32 [B, C]
    Inside the graph (`localizer.serving.graph`): decode, render exactly as in
    training (the model's `resize_mode` and `image_size`), the model, the box
    mapped back to the photo: the computation evaluate and predict run.
    The input's name ends in `_bytes` by the Cloud ML Engine convention TF
    Serving follows; TF Serving's REST API base64-decodes `{"b64": "..."}`
    values for any string input (see the README).

  predict_images
    in:  images        uint8 [B, S, S, 3]  already resized model inputs
    out: class_logits  float32 [B, C]
         probabilities float32 [B, C]
         box           float32 [B, 4]  in the input's frame

Errors: an image that does not decode, or whose header announces more than
`max_image_pixels` pixels (JPEG and PNG headers are read before decoding; GIF
and BMP are not checked), fails the whole request with InvalidArgument; the
server keeps serving. An empty batch gives empty outputs.

The class names travel inside the SavedModel: as a constant in the graph (the
`class_name` output), and as the assets `class_names.txt` (one per line) and
`metadata.json` (`class_names`, `resize_mode`, `image_size`,
`max_image_pixels`).

The export is atomic: it is written to `<export_dir>/.tmp-<pid>-<hex>` (a name
TF Serving ignores, as it is not a number), loaded back and checked against
the Keras model (eagerly, and in a TF1 session the way TF Serving's C++
loads it) on photos like those it is for (the run's validation split, else
generated ones) and two noise images, then renamed to its number. A killed export leaves only a
temporary folder, which the next export removes.

`--tflite` also writes `<version>/assets.extra/localizer.tflite`:
`predict_images` converted to TFLite (uint8 model inputs; decoding and
resizing stay with the caller) and checked against the SavedModel.
`--tflite_int8` writes `<version>/assets.extra/localizer_int8.tflite`, the same
signature quantized to full integer (int8 weights and activations, uint8
images in, float32 outputs), calibrated on a seeded sample of the training
split (`--calibration_images`) rendered as the model sees it. The training
data is the run's own (the work dir's config.json beside --model) unless
--dataset/--data_dir/--split name it.

`--onnx` also writes `<version>/assets.extra/localizer.onnx`: `predict_images`
converted to ONNX with tf2onnx (uint8 `images` `[batch, S, S, 3]` in, the same
float32 outputs; the class names, image size and resize mode in the file's
metadata_props), run by onnxruntime and checked against the SavedModel
(`localizer.serving.onnx_export`; needs the extra `.[onnx]`).
"""

import dataclasses
import json
import os
import shutil
import tempfile
import uuid

import tensorflow as tf

from localizer.serving import onnx_export, versions
from localizer.serving.graph import LocalizerServing
from localizer.serving.signatures import (
    CLASS_NAMES_ASSET,
    METADATA_ASSET,
    ONNX_FILE,
    TFLITE_FILE,
    TFLITE_INT8_FILE,
)
from localizer.serving.tflite import export_tflite, export_tflite_int8
from localizer.serving.verify import generated_check_images, verify_export
from pipelines.image_header import MAX_IMAGE_PIXELS


@dataclasses.dataclass(frozen=True)
class ExportChecks:
    """How an export checks itself before it is published (`export_saved_model`).

    Attributes:
      verify: load the written SavedModel back (with `tf.saved_model.load`
        and with the TF1 session loader TF Serving's C++ uses) and check it
        against the model on `images` before publishing it.
      images: `[verify.CheckImage]`, encoded images like those the model is
        for (`verify.dataset_check_images`); default: `verify.generated_check_images`.
        The TFLite and ONNX files are checked on them too.
      on_check: called with each passed check's `verify.CheckFigures`.
    """

    verify: bool = True
    images: object = None
    on_check: object = None


def export_saved_model(
    model,
    export_dir,
    version=None,
    max_image_pixels=MAX_IMAGE_PIXELS,
    refine=False,
    tflite=False,
    tflite_int8=None,
    onnx=False,
    checks=None,
):
    """Exports `model` to `<export_dir>/<version>/`; returns that path.

    Args:
      model: a localizer (`localizer.model.build_model` or a loaded `.keras`).
      export_dir: the model base path TF Serving is pointed at.
      version: positive integer; default: one more than the highest existing
        version (1 in an empty folder). An existing version is refused.
      max_image_pixels: see `pipelines.image_header.MAX_IMAGE_PIXELS` (0: off).
      refine: serving_default takes the second, zoomed look around the first
        box (`localizer.ops.views`; ~2x the compute per image).
      tflite: also write `assets.extra/localizer.tflite` in the version
        folder: `predict_images` (uint8 model inputs) converted to TFLite,
        checked against the SavedModel. Decoding and resizing stay with the
        caller (TFLite has no image decoding ops).
      tflite_int8: `(calibration images, check images)`, uint8 `[N, S, S, 3]`
        rendered from the training split (`localizer.serving.calibration`):
        also write `assets.extra/localizer_int8.tflite`, `predict_images`
        quantized to full integer on the first, checked against the
        SavedModel on the second and the check images (`localizer.serving.tflite`).
      onnx: also write `assets.extra/localizer.onnx`: `predict_images` converted to ONNX,
        run by onnxruntime and checked against the SavedModel (`localizer.serving.onnx_export`;
        needs the extra `.[onnx]`).
      checks: `ExportChecks`: whether and on what the export checks itself (default: verify
        on generated images).

    Raises:
      FileExistsError: `version` exists already.
      ExportVerificationError: the loaded export disagrees with the model.
    """
    export_dir = os.path.abspath(export_dir)
    os.makedirs(export_dir, exist_ok=True)
    versions.remove_stale_temporaries(export_dir)
    if version is not None:
        version = versions.check_version(version)
        if version in versions.existing_versions(export_dir):
            raise versions.version_taken(export_dir, version)

    module = LocalizerServing(model, max_image_pixels, refine)
    checks = checks or ExportChecks()
    check_images = checks.images
    if check_images is None and (checks.verify or tflite or onnx or tflite_int8 is not None):
        check_images = generated_check_images(module.metadata()["image_size"])
    report = checks.on_check or (lambda figures: None)
    temporary = os.path.join(
        export_dir, f"{versions.TEMPORARY_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    )
    versions.ACTIVE.add(temporary)
    try:
        _write(module, temporary)
        if checks.verify:
            report(verify_export(temporary, model, check_images, refine=refine))
        if tflite:
            report(export_tflite(temporary, os.path.join(temporary, TFLITE_FILE), check_images))
        if tflite_int8 is not None:
            report(
                export_tflite_int8(
                    temporary, os.path.join(temporary, TFLITE_INT8_FILE), *tflite_int8, check_images
                )
            )
        if onnx:
            report(
                onnx_export.export_onnx(
                    model, temporary, os.path.join(temporary, ONNX_FILE), check_images
                )
            )
        return versions.publish(temporary, export_dir, version)
    finally:
        versions.ACTIVE.discard(temporary)
        if os.path.exists(temporary):
            shutil.rmtree(temporary, ignore_errors=True)


def _write(module, path):
    """The SavedModel with its signatures and the two assets."""
    metadata = module.metadata()
    with tempfile.TemporaryDirectory() as assets:
        names_file = os.path.join(assets, CLASS_NAMES_ASSET)
        with open(names_file, "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in metadata["class_names"]))
        metadata_file = os.path.join(assets, METADATA_ASSET)
        with open(metadata_file, "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=2)
        module.class_names_file = tf.saved_model.Asset(names_file)
        module.metadata_file = tf.saved_model.Asset(metadata_file)
        tf.saved_model.save(module, path, signatures=module.signatures())

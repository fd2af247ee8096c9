"""Predict class and box for images: `python -m localizer.predict`.

    python -m localizer.predict --model=work/realmix_default/best.keras photo.jpg folder/
    [--draw_dir=out]

Prints one JSON line per image: file, class, score, top-5, the box normalized
yxyx and in original-image pixels xyxy, and for models with a box-quality
head `box_quality` (the predicted IoU of the box, in [0, 1]; with
`--min_box_quality=X`, `"unsure": true` below X, drawn dashed orange). A file that cannot be read,
is not a
supported image or announces more pixels than `--max_image_pixels` gets a line
with its error; the others still run, and the exit code is 1. Drawings are
`<name>.<ext>.pred.png` in `--draw_dir`, which must not hold the inputs.

    python -m localizer.predict --model=M photos/ --annotations=labelstudio --out=preannotated

also writes the predictions of every photo it could read as label files a labelling tool
imports (voc, coco, yolo or labelstudio; `pipelines.sources.writers`), boxes upright, those
under `--min_box_quality` marked for review where the format allows.

Flags and `main` only: the work is `localizer.inference.image_files`.
"""

import sys

from absl import flags

from localizer.inference import image_files
from localizer.ops import views
from pipelines import cli, dataset_flags
from pipelines.sources import writers

FLAGS = flags.FLAGS


def main(argv):
    paths = argv[1:]
    if not paths:
        raise cli.UserError(
            "no image given; usage: python -m localizer.predict --model=MODEL IMAGE_OR_FOLDER..."
        )
    failures = image_files.run(
        FLAGS.model,
        paths,
        FLAGS.draw_dir,
        FLAGS.tta,
        refine=FLAGS.refine,
        max_image_pixels=FLAGS.max_image_pixels,
        min_box_quality=FLAGS.min_box_quality,
        annotations=FLAGS.annotations,
        out_dir=FLAGS.out,
    )
    sys.exit(cli.EXIT_SOME_FILES_FAILED if failures else 0)


def define_flags():
    flags.DEFINE_string(
        "model",
        None,
        "A .keras file, an exported SavedModel version folder, or a .tflite or .onnx file in its "
        "assets.extra/ (.onnx: needs the extra .[onnx]).",
        required=True,
    )
    flags.DEFINE_string(
        "draw_dir",
        None,
        "Write each image with its box and label drawn here (not among the inputs).",
    )
    flags.DEFINE_enum("tta", "none", list(views.TTA_MODES), "Test-time augmentation.")
    flags.DEFINE_boolean(
        "refine",
        True,
        "A second, zoomed look around the first box (small objects); "
        "--norefine: one look, about half the compute.",
    )
    flags.DEFINE_float(
        "min_box_quality",
        None,
        "Mark boxes whose predicted IoU (box_quality) is below this "
        'as unsure ("unsure": true, drawn dashed); needs a model with a box-quality head.',
    )
    flags.DEFINE_enum(
        "annotations",
        None,
        list(writers.FORMATS),
        "Also write the predictions as label files a labelling tool imports (pre-annotations), "
        "into --out: voc (LabelImg, CVAT), coco (CVAT, Roboflow), yolo (Ultralytics, CVAT, "
        "Roboflow) or labelstudio (tasks with predictions); boxes under --min_box_quality are "
        "marked for review where the format allows.",
    )
    flags.DEFINE_string(
        "out",
        None,
        "The folder --annotations writes to: new, or one it wrote before (not among the photos).",
    )
    dataset_flags.define_pixel_limit_flag()


if __name__ == "__main__":
    cli.run(main, define_flags)

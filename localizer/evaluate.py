"""Evaluate a localizer: `python -m localizer.evaluate` (or `make evaluate`).

    python -m localizer.evaluate --model=work/mine/best.keras \
        --dataset=voc_dir --data_dir=/data/my_voc_folder --split=val \
        --report_dir=reports/mine --tta=multicrop

`--model` is a `.keras` file, an exported SavedModel version folder, or a
`.tflite` file an export wrote (`<version>/assets.extra/localizer.tflite` or
`localizer_int8.tflite`: the export's metadata gives its classes, size and
resize mode), or its `.onnx` file (`localizer.onnx`, run by onnxruntime on the
CPU: needs the extra `.[onnx]`; its classes, size and resize mode are in the
file and must agree with the export's); every `--tta` and `--refine` runs
through the same views code on each (a TFLite file runs its `predict_images`
with XNNPACK). Boxes
are compared in the original image (the letterbox undone). Writes into the
report dir (checked writable before the evaluation starts; its files are
replaced atomically): metrics.json, report.md (the same as Markdown tables),
iou_histogram.png, per_class.png, confusion_matrix.png, examples.png (the
best and worst examples with true and predicted boxes) and risk_coverage.png
(mean IoU of the most confident boxes: how well the class probability `score`,
and the model's `box_quality` where it has one, rank the boxes; metrics.json
gives their AUROC for IoU >= 0.5, Spearman correlation and a risk-coverage table).

Flags and `main` only: `localizer.inference.evaluation`, `localizer.inference.report`.
"""

import os

from absl import flags

from localizer.inference import evaluation, report
from localizer.inference.predictor import ONNX_SUFFIX, TFLITE_SUFFIX, Predictor
from localizer.ops import views
from localizer.serving import signatures
from pipelines import cli, dataset_flags, files

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(
            f"unexpected argument {argv[1]!r}; every option is a --flag (see --helpshort)"
        )
    cli.require_positive(FLAGS.batch_size, "batch_size")
    report_dir = FLAGS.report_dir or default_report_dir(FLAGS.model, FLAGS.split)
    report.check_report_dir(report_dir, FLAGS.data_dir)
    files.check_writable_folder(report_dir, "report dir")
    predictor = Predictor(FLAGS.model)
    source = dataset_flags.source_from_flags(FLAGS)
    result = evaluation.evaluate(
        predictor, source, FLAGS.split, FLAGS.tta, FLAGS.batch_size, refine=FLAGS.refine
    )
    paths = report.write_report(result, predictor.class_names, report_dir)
    print(report.markdown_report(result.summary))
    print(f"Report: {paths['report']}\nMetrics: {paths['metrics']}\nPlots: {report_dir}/*.png")


REPORTS_ROOT = "reports"
"""Where reports on exports go by default (beside work/, as `make clean` knows)."""


def default_report_dir(model, split):
    """A `.keras` file's: beside it (in its work dir). An export's (a version folder, or a `.tflite`
    or `.onnx` file in it): `reports/<export dir name>-<version>[-<file>]-<split>`, never inside
    the export or its base path, which TF Serving watches and a new export is published into.
    `<file>` is a TFLite file's name without `.tflite` (`localizer`, `localizer_int8`), an ONNX
    file's name with `-onnx` for its suffix (`localizer-onnx`: the float TFLite file has the same
    stem, and its report would be replaced).
    """
    path = os.path.normpath(os.path.abspath(model))
    stem, suffix = os.path.splitext(os.path.basename(path))
    file_in_export = suffix in (TFLITE_SUFFIX, ONNX_SUFFIX)
    version_dir = signatures.export_of_model_file(path) if file_in_export else None
    if version_dir is None and not os.path.isdir(path):
        return os.path.join(os.path.dirname(path), f"report-{split}")
    parts = [
        os.path.basename(os.path.dirname(version_dir or path)),
        os.path.basename(version_dir or path),
    ]
    if version_dir:
        parts.append(stem if suffix == TFLITE_SUFFIX else f"{stem}-{suffix[1:]}")
    return os.path.join(REPORTS_ROOT, "-".join(parts + [split]))


def define_flags():
    dataset_flags.define_dataset_flags(default_split="val")
    flags.DEFINE_string(
        "model",
        None,
        "A .keras file, an exported SavedModel version folder, or a .tflite or .onnx file "
        "in its assets.extra/ (.onnx: needs the extra .[onnx]).",
        required=True,
    )
    flags.DEFINE_string(
        "report_dir",
        None,
        "Where the report goes (default: beside a .keras model; for an "
        "export, reports/<export dir name>-<version>[-<tflite or onnx file>]-<split>).",
    )
    flags.DEFINE_enum("tta", "none", list(views.TTA_MODES), "Test-time augmentation.")
    flags.DEFINE_boolean(
        "refine",
        True,
        "A second, zoomed look around the first box (small objects); "
        "--norefine: one look, about half the compute.",
    )
    flags.DEFINE_integer("batch_size", 16, "Images per batch.")


if __name__ == "__main__":
    cli.run(main, define_flags)

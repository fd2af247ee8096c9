"""The real-model check: a short real recipe trained, exported and scored through every runtime.

Tiny random models hide real failures (an export whose self-check trips only
on a trained model's boxes, photos read sideways). This trains the default
recipe with a short fine-tuning stage on a real VOC-format folder, exports it
with `--tflite --tflite_int8 --onnx`, and scores the same `val` photos through:

  keras        python -m localizer.evaluate --model=best.keras
  savedmodel   python -m localizer.evaluate --model=<export version>
  tflite       python -m localizer.evaluate --model=.../localizer.tflite
  int8         python -m localizer.evaluate --model=.../localizer_int8.tflite
  onnx         python -m localizer.evaluate --model=.../localizer.onnx (onnxruntime)
  serving      serving_default in a TF1 session (as TF Serving runs it), fed the JPEG bytes
  predict      python -m localizer.predict on the photo folder
  and, on EXIF-tagged copies of the same photos (each stored turned by one of
  orientations 2-8, re-encoded, tagged): keras, onnx, serving and predict again.

It fails (exit 1) when any two runtimes disagree beyond their budgets
(`BUDGETS`); every figure goes to `experiments/results/real_model_check.json`.
Run it before resolving anything that touches inference, serving, export or
decoding (about 15 minutes on 2 cores):

    make real-check                      # ../shared/data/realmix when present
    python -m experiments.real_model_check --data_dir=/data/my_voc --fine_tune_epochs=6
    python -m experiments.real_model_check --model=work/realmix_default/best.keras   # skip training
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

from experiments import common

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "data_dir", common.REALMIX_DIR, "A VOC-format folder with train and val splits."
)
flags.DEFINE_string(
    "model",
    None,
    "Check this .keras model instead of training one (its classes must be the data's).",
)
flags.DEFINE_integer(
    "fine_tune_epochs", 6, "Fine-tuning epochs of the short recipe (the default recipe has 40)."
)
flags.DEFINE_string(
    "workdir",
    None,
    "Where to train, export and write reports (default: a temporary folder, removed).",
)
flags.DEFINE_string(
    "out",
    os.path.join(common.REPO_ROOT, "experiments", "results", "real_model_check.json"),
    "Where the figures go.",
)

FIGURES = ("macro_mean_iou", "mean_iou", "localization_accuracy", "classification_accuracy")

BUDGETS = {
    # (runtime, reference): largest |difference| of any figure in FIGURES. The same computation on
    # the same
    # pixels (graph vs eager, float TFLite): rounding only, a box or two at a threshold.
    ("savedmodel", "keras"): 0.01,
    ("tflite", "keras"): 0.01,
    ("onnx", "keras"): 0.01,
    ("serving", "keras"): 0.01,
    ("predict", "keras"): 0.01,
    # int8 weights and activations (the README's int8 figures are within 0.01 of float).
    ("int8", "tflite"): 0.04,
    # EXIF-tagged copies are re-encoded turned (JPEG at quality 95): the pixels move a little.
    ("keras_tagged", "keras"): 0.03,
    ("onnx_tagged", "onnx"): 0.03,
    ("serving_tagged", "serving"): 0.03,
    ("predict_tagged", "predict"): 0.03,
}

TAGGED_QUALITY = 95
_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _run(args, **kwargs):
    """Runs a command of the project as a user would; its output is kept only when it fails."""
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=common.REPO_ROOT,
        env=_ENV,
        capture_output=True,
        text=True,
        **kwargs,
    )
    print(f"  {' '.join(args[:2])} ... {time.time() - started:.0f} s", flush=True)
    if result.returncode != 0:
        sys.exit(
            f"error: {' '.join(args)} failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-3000:]}"
        )
    return result.stdout


def train(data_dir, workdir, fine_tune_epochs):
    """Trains the default recipe, fine-tuning shortened, on `data_dir`; returns best.keras."""
    _run(
        [
            "localizer.train",
            "--dataset=voc_dir",
            f"--data_dir={data_dir}",
            f"--workdir={workdir}",
            f"--set=fine_tune_epochs={fine_tune_epochs}",
        ]
    )
    return os.path.join(workdir, "best.keras")


def export(model, export_dir):
    """Exports with both TFLite files and the ONNX file (each checked by the export itself);
    returns the version folder."""
    output = _run(
        [
            "localizer.export",
            f"--model={model}",
            f"--export_dir={export_dir}",
            "--tflite",
            "--tflite_int8",
            "--onnx",
        ]
    )
    print("\n".join("    " + line for line in output.strip().splitlines()))
    versions = sorted(int(name) for name in os.listdir(export_dir) if name.isdigit())
    return os.path.join(export_dir, str(versions[-1]))


def evaluate(model, data_dir, report_dir):
    """`python -m localizer.evaluate` on `val`; its metrics.json figures."""
    _run(
        [
            "localizer.evaluate",
            f"--model={model}",
            "--dataset=voc_dir",
            f"--data_dir={data_dir}",
            "--split=val",
            f"--report_dir={report_dir}",
        ]
    )
    with open(os.path.join(report_dir, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    return {name: metrics[name] for name in FIGURES}


def truth(data_dir):
    """`{file name: (label, box)}` of `val` as the project's index reads it (upright, normalized
    yxyx)."""
    import pipelines
    from pipelines.sources.source import BOX, ID, LABEL

    index = pipelines.get_source("voc_dir", data_dir=data_dir).index("val")
    ids = index[ID]
    return {
        f"{example_id}.jpg": (int(label), np.asarray(box))
        for example_id, label, box in zip(ids, index[LABEL], index[BOX], strict=True)
    }


def score(predictions, targets, class_names):
    """FIGURES of `{file name: (box, probabilities)}` against `targets` (`truth`)."""
    from localizer.ops import statistics

    names = sorted(targets)
    boxes = np.stack([predictions[n][0] for n in names])
    probabilities = np.stack([predictions[n][1] for n in names])
    summary = statistics.summarize(
        np.stack([targets[n][1] for n in names]),
        np.array([targets[n][0] for n in names]),
        boxes,
        probabilities,
        class_names,
    )
    return {name: summary[name] for name in FIGURES}


def serve(version_dir, image_dir, names, batch=16):
    """serving_default in a TF1 session (TF Serving's loader) on the JPEG bytes: `{name: (box,
    probabilities)}`."""
    from localizer.serving import verify

    found = {}
    with verify.tf1_session(version_dir, "serving_default") as run:  # loaded once, as a server does
        for start in range(0, len(names), batch):
            chunk = names[start : start + batch]
            data = []
            for name in chunk:
                with open(os.path.join(image_dir, name), "rb") as f:
                    data.append(f.read())
            outputs = run({"image_bytes": data})
            for i, name in enumerate(chunk):
                found[name] = (outputs["box"][i], outputs["probabilities"][i])
    return found


def predict(model, image_dir, class_names):
    """`python -m localizer.predict` on a folder: `{name: (box, probabilities)}` (top-5 spread, rest
    zero)."""
    found = {}
    for line in _run(["localizer.predict", f"--model={model}", image_dir]).splitlines():
        record = json.loads(line)
        probabilities = np.zeros(len(class_names), np.float32)
        for entry in record["top5"]:
            probabilities[class_names.index(entry["class"])] = entry["score"]
        found[os.path.basename(record["file"])] = (
            np.asarray(record["box"], np.float32),
            probabilities,
        )
    return found


def tagged_copy(data_dir, out_dir):
    """A copy of the VOC folder's val photos, each stored turned and tagged with an orientation 2-8
    (cycling),
    annotations unchanged (they are drawn on the upright view, as on a phone's photo).
    """
    import io

    from PIL import Image

    from pipelines import orientation as orientation_lib

    inverse = {6: 8, 8: 6}
    for sub in ("Annotations", os.path.join("ImageSets", "Main")):
        shutil.copytree(os.path.join(data_dir, sub), os.path.join(out_dir, sub))
    if os.path.exists(os.path.join(data_dir, "labels.txt")):
        shutil.copy(os.path.join(data_dir, "labels.txt"), out_dir)
    os.makedirs(os.path.join(out_dir, "JPEGImages"))
    with open(os.path.join(data_dir, "ImageSets", "Main", "val.txt"), encoding="utf-8") as f:
        ids = [line.strip() for line in f if line.strip()]
    for i, example_id in enumerate(ids):
        orientation = 2 + i % 7
        with Image.open(os.path.join(data_dir, "JPEGImages", f"{example_id}.jpg")) as image:
            upright = np.asarray(image.convert("RGB"))
        stored = orientation_lib.transpose(upright, inverse.get(orientation, orientation)).numpy()
        exif = Image.Exif()
        exif[orientation_lib.ORIENTATION_TAG] = orientation
        buffer = io.BytesIO()
        Image.fromarray(stored).save(buffer, "JPEG", quality=TAGGED_QUALITY, exif=exif.tobytes())
        with open(os.path.join(out_dir, "JPEGImages", f"{example_id}.jpg"), "wb") as f:
            f.write(buffer.getvalue())
    return out_dir


def val_images(data_dir, target_dir):
    """The val photos (links) in one folder, as a user would point predict at them."""
    os.makedirs(target_dir, exist_ok=True)
    with open(os.path.join(data_dir, "ImageSets", "Main", "val.txt"), encoding="utf-8") as f:
        for example_id in (line.strip() for line in f if line.strip()):
            os.symlink(
                os.path.abspath(os.path.join(data_dir, "JPEGImages", f"{example_id}.jpg")),
                os.path.join(target_dir, f"{example_id}.jpg"),
            )
    return target_dir


def disagreements(results):
    """`[(runtime, reference, figure, difference, budget)]` over BUDGETS."""
    found = []
    for (runtime, reference), budget in BUDGETS.items():
        for figure in FIGURES:
            difference = abs(results[runtime][figure] - results[reference][figure])
            if difference > budget:
                found.append((runtime, reference, figure, difference, budget))
    return found


def main(argv):
    del argv
    data_dir = os.path.abspath(FLAGS.data_dir)
    if not os.path.isdir(os.path.join(data_dir, "JPEGImages")):
        sys.exit(
            f"error: --data_dir={FLAGS.data_dir} is not a VOC-format folder (no JPEGImages/); pass "
            "one, e.g. a copy of realmix"
        )
    started = time.time()
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="real_model_check-")
    try:
        results = check(data_dir, workdir)
    finally:
        if not FLAGS.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    failed = disagreements(results)
    from localizer import provenance

    record = {
        "command": "python -m experiments.real_model_check " + " ".join(sys.argv[1:]),
        "code": provenance.code_version(),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "data_dir": FLAGS.data_dir,
        "model": FLAGS.model or "trained",
        "fine_tune_epochs": None if FLAGS.model else FLAGS.fine_tune_epochs,
        "seconds": round(time.time() - started),
        "results": results,
        "budgets": [
            {"runtime": r, "reference": ref, "budget": b} for (r, ref), b in BUDGETS.items()
        ],
        "passed": not failed,
    }
    os.makedirs(os.path.dirname(FLAGS.out), exist_ok=True)
    with open(FLAGS.out, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    print(table(results))
    print(f"Figures: {FLAGS.out} ({record['seconds']} s)")
    for runtime, reference, figure, difference, budget in failed:
        print(
            f"error: {runtime} vs {reference}: {figure} differs by {difference:.4f}, over its "
            f"budget {budget}",
            file=sys.stderr,
        )
    sys.exit(1 if failed else 0)


def check(data_dir, workdir):
    print(f"Real-model check on {data_dir} in {workdir}", flush=True)
    model = FLAGS.model or train(data_dir, os.path.join(workdir, "train"), FLAGS.fine_tune_epochs)
    version_dir = export(model, os.path.join(workdir, "models"))
    from localizer.serving import signatures

    tflite = os.path.join(version_dir, signatures.TFLITE_FILE)
    int8 = os.path.join(version_dir, signatures.TFLITE_INT8_FILE)
    onnx = os.path.join(version_dir, signatures.ONNX_FILE)
    tagged_dir = tagged_copy(data_dir, os.path.join(workdir, "tagged"))
    results = {}
    for name, path, folder in (
        ("keras", model, data_dir),
        ("savedmodel", version_dir, data_dir),
        ("tflite", tflite, data_dir),
        ("int8", int8, data_dir),
        ("onnx", onnx, data_dir),
        ("keras_tagged", model, tagged_dir),
        ("onnx_tagged", onnx, tagged_dir),
    ):
        results[name] = evaluate(path, folder, os.path.join(workdir, "reports", name))
    targets = truth(data_dir)
    tagged_targets = truth(tagged_dir)
    box_change = max(float(np.max(np.abs(targets[n][1] - tagged_targets[n][1]))) for n in targets)
    if box_change > 1e-5:
        sys.exit(
            f"error: the index reads the tagged copies' boxes {box_change:.2e} away from the "
            "originals'"
        )
    class_names = json.load(
        open(os.path.join(version_dir, "assets", "metadata.json"), encoding="utf-8")
    )["class_names"]
    plain_images = val_images(data_dir, os.path.join(workdir, "val_images"))
    tagged_images = os.path.join(tagged_dir, "JPEGImages")
    names = sorted(targets)
    results["serving"] = score(serve(version_dir, plain_images, names), targets, class_names)
    results["serving_tagged"] = score(
        serve(version_dir, tagged_images, names), targets, class_names
    )
    results["predict"] = score(predict(model, plain_images, class_names), targets, class_names)
    results["predict_tagged"] = score(
        predict(model, tagged_images, class_names), targets, class_names
    )
    return results


def table(results):
    lines = ["| runtime | " + " | ".join(FIGURES) + " |", "|---" * (len(FIGURES) + 1) + "|"]
    for name, figures in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{figures[f]:.4f}" for f in FIGURES) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    app.run(main)

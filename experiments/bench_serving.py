"""Serving throughput: the exported SavedModel from JPEG bytes vs the model on ready tensors.

    python -m experiments.bench_serving [--data_dir=../shared/data/realmix/JPEGImages] [--runs=5]

Builds the default-size localizer (EfficientNet-Lite0, 224 px, 9 classes;
random weights: only the time matters), exports it with
`localizer.export_lib.export_saved_model` and loads it back, then times, in one
process, at batch 1 and 32:

  savedmodel_from_bytes   serving_default on encoded JPEG bytes: decode +
                          letterbox resize + model + box mapping, all in the graph
  keras_direct_call       the Keras model, called in a `tf.function`, on images
                          already decoded and resized (same preprocessing)
  keras_predict_on_batch  `model.predict_on_batch` on the same tensors
  savedmodel_tensors      the export's `predict_images` on the same tensors

Within a run the paths take turns call by call, so they share the machine's
load. The report gives, per path, the median over runs of images/s, p50/p99
over all calls' latencies, and the median over runs of the ratio to
keras_direct_call measured in the same run (robust to load that drifts
between runs on a shared machine). JPEGs come from
`../shared/data/realmix/JPEGImages` when it exists, else are generated.
Results go to `experiments/results/bench_serving.json`.

With `--int8_model=WORKDIR/best.keras` (a model trained on realmix, e.g.
`python -m localizer.train --experiment=realmix_default --workdir=work/realmix_default`),
the same run also measures what full-integer TFLite costs: the model is exported
with `--tflite` and `--tflite_int8` (calibrated on its own training split, as
`localizer.export` does), then evaluated on realmix `val` as a Keras model, as
the float TFLite file and as the int8 file (the same evaluation code,
`--refine` on as in `localizer.evaluate`); batch-1 latency of the SavedModel's
`predict_images`, the float and the int8 file (XNNPACK on, all cores), taking
turns call by call; file sizes. Results: `experiments/results/bench_int8.json`.
`--noserving_throughput` skips the throughput part above.
"""

import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_JPEGS = os.path.join(REPO_ROOT, "..", "shared", "data", "realmix", "JPEGImages")
RESULTS = os.path.join(REPO_ROOT, "experiments", "results", "bench_serving.json")
INT8_RESULTS = os.path.join(REPO_ROOT, "experiments", "results", "bench_int8.json")
REALMIX = os.path.join(REPO_ROOT, "..", "shared", "data", "realmix")
INT8_IOU_MARGIN = 0.015
"""The int8 file's class-averaged IoU must stay within this of the float model's (issue 13)."""
CLASS_NAMES = (
    "abyssinian",
    "airplane",
    "american_bulldog",
    "bengal",
    "kangaroo",
    "license_plate",
    "microcontroller",
    "pistol",
    "raccoon",
)
FROM_BYTES = "savedmodel_from_bytes"
TENSOR_BASELINE = "keras_direct_call"


def load_jpegs(folder, count):
    """`count` JPEG files spread over the sorted folder (all classes), as bytes."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".jpeg")))
    step = max(1, len(names) // count)
    picked = names[::step][:count]
    data = []
    for name in picked:
        with open(os.path.join(folder, name), "rb") as f:
            data.append(f.read())
    return data


def generated_jpegs(count, seed=0):
    """Synthetic scenes of about 480x360 for machines without realmix."""
    import tensorflow as tf

    from pipelines.sources import synthetic

    return [
        tf.io.encode_jpeg(
            synthetic.render_example(tf.constant([seed, i], tf.int64), (360, 480))["image"]
        ).numpy()
        for i in range(count)
    ]


def build_paths(model, loaded, encoded, image_size, resize_mode):
    """`{path name: (callable(batch_index_slice) -> None, inputs per batch)}` for the benchmark."""
    import tensorflow as tf

    from pipelines import decode, render

    images = tf.stack(
        [
            render.resize_image(decode.decode_image_bytes(tf.constant(d)), image_size, resize_mode)[
                0
            ]
            for d in encoded
        ]
    )
    encoded = tf.constant(encoded)
    serve = loaded.signatures["serving_default"]
    predict_images = loaded.signatures["predict_images"]
    direct = tf.function(lambda x: model(x, training=False))

    return {
        FROM_BYTES: lambda i, j: serve(image_bytes=encoded[i:j])["box"].numpy(),
        TENSOR_BASELINE: lambda i, j: direct(images[i:j])["box"].numpy(),
        "keras_predict_on_batch": lambda i, j: model.predict_on_batch(images[i:j]),
        "savedmodel_tensors": lambda i, j: predict_images(images=images[i:j])["box"].numpy(),
    }


def run_benchmark(paths, num_images, batch_sizes, runs, calls):
    """Per batch size and path: images/s of each run and every call's latency.

    Within a run the paths take turns call by call (the order rotating), so
    every path sees the same machine load: on a shared machine the load drifts
    between runs, and the per-run ratios stay comparable where separate
    blocks of calls would not.
    """
    names = list(paths)
    results = {}
    for batch_size in batch_sizes:
        per_path = {name: {"throughput_runs": [], "latencies": []} for name in names}
        for name in names:  # warm-up: tracing, first-call allocations
            for _ in range(2):
                paths[name](0, batch_size)
        start = 0
        for _ in range(runs):
            latencies = {name: [] for name in names}
            for call in range(calls[batch_size]):
                if start + batch_size > num_images:
                    start = 0
                shift = call % len(names)
                for name in names[shift:] + names[:shift]:
                    begin = time.perf_counter()
                    paths[name](start, start + batch_size)
                    latencies[name].append(time.perf_counter() - begin)
                start += batch_size
            for name in names:
                per_path[name]["latencies"] += latencies[name]
                per_path[name]["throughput_runs"].append(
                    batch_size * len(latencies[name]) / sum(latencies[name])
                )
        results[batch_size] = per_path
    return results


def summarize(raw, data, batch_sizes, runs, calls):
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "load_average_at_start": data["load"],
        "tensorflow": data["tf_version"],
        "model": "efficientnet_lite0 (weights=None), 224 px, 9 classes, letterbox",
        "data": data["source"],
        "command": "python -m experiments.bench_serving",
        "runs": runs,
        "calls_per_run": {str(b): calls[b] for b in batch_sizes},
        "batches": {},
    }
    for batch_size in batch_sizes:
        rows = {}
        for name, values in raw[batch_size].items():
            latencies_ms = np.array(values["latencies"]) * 1000.0
            rows[name] = {
                "images_per_s_median": round(statistics.median(values["throughput_runs"]), 1),
                "latency_ms_p50": round(float(np.percentile(latencies_ms, 50)), 2),
                "latency_ms_p99": round(float(np.percentile(latencies_ms, 99)), 2),
                "images_per_s_runs": [round(x, 1) for x in values["throughput_runs"]],
            }
        baseline_runs = raw[batch_size][TENSOR_BASELINE]["throughput_runs"]
        for name, row in rows.items():
            ratios = [
                a / b
                for a, b in zip(
                    raw[batch_size][name]["throughput_runs"], baseline_runs, strict=True
                )
            ]
            row["ratio_to_keras_direct_call"] = round(statistics.median(ratios), 3)
            row["ratio_to_keras_direct_call_runs"] = [round(r, 3) for r in ratios]
        summary["batches"][str(batch_size)] = rows
    return summary


def folder_bytes(path):
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(path)
        for name in names
    )


def int8_benchmark(model_path, data_dir, runs, calls, calibration_images):
    """The int8 comparison (see the module docstring) as a JSON-able dict."""
    import tensorflow as tf

    import pipelines
    from localizer import model as model_lib
    from localizer.inference import evaluation
    from localizer.inference.predictor import Predictor, load_keras_model
    from localizer.serving import calibration, export_lib, signatures, tflite
    from localizer.training import data as data_lib
    from localizer.training import workdir

    model = load_keras_model(model_path)
    metadata = model_lib.model_metadata(model)
    data = workdir.recorded_data(model_path)
    train_source = data_lib.build_source(data)
    images = calibration.calibration_and_check_images(
        train_source,
        data.train_split,
        metadata["image_size"],
        metadata["resize_mode"],
        count=calibration_images or calibration.CALIBRATION_IMAGES,
    )
    val_source = pipelines.source_with_options("voc_dir", data_dir)
    result = {
        "model": model_path,
        "data": f"realmix val ({val_source.num_examples('val')} images)",
        "calibration_images": len(images[0]),
        "calibration_split": f"{data.dataset} {data.train_split}",
    }
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        version = export_lib.export_saved_model(model, tmp, tflite=True, tflite_int8=images)
        result["export_s"] = round(time.perf_counter() - started, 1)
        files = {
            "savedmodel": version,
            "tflite_float": os.path.join(version, signatures.TFLITE_FILE),
            "tflite_int8": os.path.join(version, signatures.TFLITE_INT8_FILE),
        }
        sizes = {name: os.path.getsize(files[name]) for name in ("tflite_float", "tflite_int8")}
        sizes["savedmodel"] = folder_bytes(version) - sum(
            sizes.values()
        )  # without the TFLite files inside it
        result["size_mb"] = {name: round(size / 1e6, 2) for name, size in sizes.items()}
        result["float_ops_in_int8"] = tflite.float_ops(open(files["tflite_int8"], "rb").read())
        result["evaluation"] = {}
        for name, path in (
            ("keras", model_path),
            ("tflite_float", files["tflite_float"]),
            ("tflite_int8", files["tflite_int8"]),
        ):
            started = time.perf_counter()
            summary = evaluation.evaluate(
                Predictor(path), val_source, "val", "none", 16, progress=False, refine=True
            ).summary
            result["evaluation"][name] = {
                key: round(summary[key], 4)
                for key in (
                    "macro_mean_iou",
                    "mean_iou",
                    "localization_accuracy",
                    "classification_accuracy",
                )
            }
            result["evaluation"][name]["seconds"] = round(time.perf_counter() - started, 1)
        gap = (
            result["evaluation"]["keras"]["macro_mean_iou"]
            - result["evaluation"]["tflite_int8"]["macro_mean_iou"]
        )
        result["int8_macro_iou_drop"] = round(gap, 4)
        result["int8_within_margin"] = abs(gap) <= INT8_IOU_MARGIN
        inputs = calibration.rendered_images(
            val_source, "val", range(32), metadata["image_size"], metadata["resize_mode"]
        )
        predict_images = tf.saved_model.load(version).signatures[signatures.IMAGES_SIGNATURE]
        runners = {
            name: tflite.interpreter(
                path=files[name], num_threads=os.cpu_count()
            ).get_signature_runner(signatures.IMAGES_SIGNATURE)
            for name in ("tflite_float", "tflite_int8")
        }
        tensors = tf.constant(inputs)
        paths = {
            "savedmodel_predict_images": lambda i, j: predict_images(images=tensors[i:j])[
                "box"
            ].numpy(),
            "tflite_float": lambda i, j: runners["tflite_float"](images=inputs[i:j])["box"],
            "tflite_int8": lambda i, j: runners["tflite_int8"](images=inputs[i:j])["box"],
        }
        raw = run_benchmark(paths, len(inputs), [1], runs, {1: calls})[1]
    baseline = raw["savedmodel_predict_images"]["latencies"]
    result["latency_batch_1"] = {}
    for name, values in raw.items():
        per_run = np.array(values["latencies"]).reshape(runs, calls) * 1000.0
        ratios = np.median(per_run, axis=1) / np.median(
            np.array(baseline).reshape(runs, calls) * 1000.0, axis=1
        )
        result["latency_batch_1"][name] = {
            "ms_median": round(float(np.median(per_run)), 2),
            "ms_median_runs": [round(float(x), 2) for x in np.median(per_run, axis=1)],
            "x_savedmodel_median": round(float(np.median(ratios)), 3),
        }
    return result


def write_int8(result, load):
    import tensorflow as tf

    from localizer import provenance

    result.update(
        {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "load_average_at_start": load,
            "tensorflow": tf.__version__,
            "code": provenance.code_version(),
            "command": "python -m experiments.bench_serving --noserving_throughput "
            "--int8_model=<realmix_default work dir>/best.keras"
            + "".join(
                f" --{name}={FLAGS[name].value}"
                for name in ("runs", "int8_calls", "calibration_images")
                if FLAGS[name].present
            ),
        }
    )
    os.makedirs(os.path.dirname(INT8_RESULTS), exist_ok=True)
    with open(INT8_RESULTS, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    print(f"Wrote {INT8_RESULTS}")


def main(argv):
    del argv
    if FLAGS.int8_model:
        load = round(os.getloadavg()[0], 2)
        write_int8(
            int8_benchmark(
                FLAGS.int8_model,
                FLAGS.realmix_dir,
                FLAGS.runs,
                FLAGS.int8_calls,
                FLAGS.calibration_images,
            ),
            load,
        )
    if FLAGS.serving_throughput:
        serving_throughput()


def serving_throughput():
    import keras
    import tensorflow as tf
    from absl import logging

    from localizer import model as model_lib
    from localizer.serving import export_lib

    logging.set_verbosity(logging.WARNING)  # SavedModel's INFO lines while exporting
    load = round(os.getloadavg()[0], 2)
    folder = FLAGS.data_dir or (DEFAULT_JPEGS if os.path.isdir(DEFAULT_JPEGS) else None)
    batch_sizes = [int(b) for b in FLAGS.batch_sizes]
    count = max(FLAGS.num_images, max(batch_sizes))
    if folder:
        encoded = load_jpegs(folder, count)
        source = f"{len(encoded)} JPEGs from {os.path.relpath(os.path.abspath(folder), REPO_ROOT)}"
    else:
        encoded = generated_jpegs(count)
        source = f"{len(encoded)} generated 480x360 JPEGs"
    keras.utils.set_random_seed(0)
    model = model_lib.build_model(
        model_lib.ModelConfig(
            num_classes=len(CLASS_NAMES),
            class_names=CLASS_NAMES,
            weights="none",
            image_size=FLAGS.image_size,
        )
    )
    metadata = model_lib.model_metadata(model)
    calls = {b: max(1, FLAGS.images_per_run // b) for b in batch_sizes}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        path = export_lib.export_saved_model(model, tmp)
        export_s = time.perf_counter() - started
        loaded = tf.saved_model.load(path)
        paths = build_paths(model, loaded, encoded, metadata["image_size"], metadata["resize_mode"])
        raw = run_benchmark(paths, len(encoded), batch_sizes, FLAGS.runs, calls)
    summary = summarize(
        raw,
        {"load": load, "tf_version": tf.__version__, "source": source},
        batch_sizes,
        FLAGS.runs,
        calls,
    )
    summary["export_and_verify_s"] = round(export_s, 1)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(summary, f, indent=2)

    print(
        f"Serving throughput, {summary['model']}; {source}; {summary['machine']} "
        f"(load average {load} at start); {FLAGS.runs} runs, medians"
    )
    print(
        "| batch | path | images/s | p50 ms | p99 ms | x keras_direct_call (same run) "
        "|\n|---|---|---|---|---|---|"
    )
    for batch_size, rows in summary["batches"].items():
        for name, row in rows.items():
            print(
                f"| {batch_size} | {name} | {row['images_per_s_median']} | {row['latency_ms_p50']} "
                f"| {row['latency_ms_p99']} | {row['ratio_to_keras_direct_call']} |"
            )
    print(f"Wrote {RESULTS}")


if __name__ == "__main__":
    flags.DEFINE_string(
        "data_dir", None, "Folder of JPEGs (default: ../shared/data/realmix/JPEGImages if present)."
    )
    flags.DEFINE_integer("runs", 5, "Runs; medians over them are reported.")
    flags.DEFINE_list("batch_sizes", ["1", "32"], "Batch sizes to time.")
    flags.DEFINE_integer(
        "images_per_run", 96, "Images per path per run (calls = this / batch size)."
    )
    flags.DEFINE_integer("num_images", 64, "Distinct JPEGs to cycle through.")
    flags.DEFINE_integer("image_size", 224, "Model input size.")
    flags.DEFINE_boolean(
        "serving_throughput", True, "Time serving_default and the Keras paths (random weights)."
    )
    flags.DEFINE_string(
        "int8_model", None, "A realmix-trained best.keras in its work dir: measure int8 TFLite."
    )
    flags.DEFINE_string(
        "realmix_dir", os.path.normpath(REALMIX), "realmix (VOC layout), whose val split is used."
    )
    flags.DEFINE_integer(
        "int8_calls", 40, "Batch-1 calls per path per run in the int8 latency comparison."
    )
    flags.DEFINE_integer(
        "calibration_images",
        None,
        "Calibration images of the int8 export (default: the "
        "export's, localizer.serving.calibration.CALIBRATION_IMAGES).",
    )
    app.run(main)

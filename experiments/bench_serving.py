"""Serving speed on CPU: every runtime of one export, on the same images, in one process.

    python -m experiments.bench_serving [--model=<realmix_default work dir>/best.keras]
        [--runs=5] [--record]

Exports the model (`localizer.serving.export_lib`, with `--tflite`, `--onnx` and, for a model
whose work dir names its training data, `--tflite_int8` calibrated on that split as
`localizer.export` does: a model with random weights has no int8 row, as its outputs do not
survive quantization and the export's int8 check refuses it), and also saves the serving graph
as it was before it was optimized (`LocalizerServing(optimize=False)`: the Keras model reading
its variables). Without --model it builds the default-size localizer with random weights (only
the time matters then). Then times,
at batch 1 and 32, on photos rendered as the model sees them (realmix JPEGs when
../shared/data/realmix exists, else generated ones):

  predict_images   of the SavedModel before and after, each run in a TF1 session as TF Serving
                   runs it, and after through `tf.saved_model.load` (TF2 Python);
                   the float and int8 TFLite files (XNNPACK, all cores); the ONNX file
                   (onnxruntime, all cores);
                   the same optimized computation under XLA (`jit_compile=True`), a candidate
                   that is not shipped;
  serving_default  from the JPEG bytes (decode, render, both looks, box mapping), before and
                   after, in a TF1 session.

The paths take turns call by call, so they share the machine's load; the table gives medians of
the runs: latency per call, images/s, and the share of the CPU's peak that the model's FLOPs
(counted by TF's profiler on the computation at batch 1) run at, where the peak is a large
float32 matmul measured in the same process. `serving_default` is also given as a multiple of
its model compute: the optimized predict_images' time for the looks it takes (2 with refine).
Results: `experiments/results/bench_serving.json` (with --record).

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

import contextlib
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


def run_benchmark(paths, num_images, batch_sizes, runs, calls, batch_1_only=()):
    """Per batch size and path: images/s of each run and every call's latency (the paths named in
    `batch_1_only` at batch 1 only).

    Within a run the paths take turns call by call (the order rotating), so
    every path sees the same machine load: on a shared machine the load drifts
    between runs, and the per-run ratios stay comparable where separate
    blocks of calls would not.
    """
    results = {}
    for batch_size in batch_sizes:
        names = [name for name in paths if batch_size == 1 or name not in batch_1_only]
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
    from localizer.training import workdir

    model = load_keras_model(model_path)
    metadata = model_lib.model_metadata(model)
    data = workdir.recorded_data(model_path)
    images = training_calibration(model, data, calibration_images)
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
        result["size_mb"] = _file_sizes(version)
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
    import tensorflow as tf
    from absl import logging

    from experiments import common
    from localizer import model as model_lib
    from localizer.serving import export_lib, signatures
    from localizer.serving.graph import LocalizerServing
    from localizer.serving.verify import tf1_session

    logging.set_verbosity(logging.WARNING)  # SavedModel's INFO lines while exporting
    facts = common.benchmark_facts(_command())
    facts["load_average_at_start"] = round(os.getloadavg()[0], 2)
    batch_sizes = [int(b) for b in FLAGS.batch_sizes]
    model, model_name = _model()
    metadata = model_lib.model_metadata(model)
    encoded, source = _photos(max(FLAGS.num_images, max(batch_sizes)))
    rendered = _rendered(encoded, metadata)
    onnx = _onnx_installed()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        after = export_lib.export_saved_model(
            model,
            os.path.join(tmp, "after"),
            refine=True,
            tflite=True,
            tflite_int8=_int8_images(model),
            onnx=onnx,
        )
        export_s = time.perf_counter() - started
        before = os.path.join(tmp, "before")
        module = LocalizerServing(model, refine=True, optimize=False)
        tf.saved_model.save(module, before, signatures=module.signatures())
        with contextlib.ExitStack() as open_sessions:
            sessions = {
                f"{kind}_{name}": open_sessions.enter_context(tf1_session(path, signature))
                for name, path in (("before", before), ("after", after))
                for kind, signature in (
                    ("images", signatures.IMAGES_SIGNATURE),
                    ("bytes", signatures.SERVING_SIGNATURE),
                )
            }
            paths = _paths(after, model, rendered, encoded, sessions, onnx)
            calls = {b: max(1, FLAGS.images_per_run // b) for b in batch_sizes}
            raw = run_benchmark(
                paths, len(encoded), batch_sizes, FLAGS.runs, calls, batch_1_only=[XLA_CANDIDATE]
            )
        peak = peak_flops()
        flops = model_flops(model, metadata["image_size"])
        sizes = _file_sizes(after)
    result = {
        **facts,
        "model": model_name,
        "data": source,
        "runs": FLAGS.runs,
        "calls_per_run": {str(b): calls[b] for b in batch_sizes},
        "export_s": round(export_s, 1),
        "model_gflops_per_image": round(flops / 1e9, 3),
        "peak_gflops_per_s": round(peak / 1e9, 1),
        "looks_per_photo": LOOKS,
        "size_mb": sizes,
        "batches": summarize(raw, flops, peak),
    }
    print_table(result)
    if FLAGS.record:
        common.write_benchmark(RESULTS, result)


LOOKS = 2
"""Model calls per photo in serving_default with refine (the first look and the zoomed one)."""

XLA_CANDIDATE = "xla_candidate"
"""Timed at batch 1 only: at batch 32 one call takes seconds (measured 5.8 s)."""

SAVEDMODEL_AFTER = "savedmodel_session"
"""The row the other paths are compared with: what TF Serving runs, as exported."""

PATH_LABELS = {
    "savedmodel_session_before": "SavedModel predict_images, TF1 session, before (not optimized)",
    SAVEDMODEL_AFTER: "SavedModel predict_images, TF1 session (as TF Serving runs it)",
    "savedmodel_tf2": "SavedModel predict_images, tf.saved_model.load",
    XLA_CANDIDATE: "the same computation with jit_compile=True (XLA; not shipped)",
    "tflite_float": "TFLite float32 (XNNPACK)",
    "tflite_int8": "TFLite int8 (XNNPACK)",
    "onnxruntime": "ONNX Runtime (CPU)",
    "serving_default_before": "SavedModel serving_default from JPEG bytes, before",
    "serving_default": "SavedModel serving_default from JPEG bytes (both looks)",
}


def _command():
    flags_given = "".join(
        f" --{name}={FLAGS[name].value}"
        for name in ("model", "runs", "batch_sizes", "images_per_run", "num_images")
        if FLAGS[name].present
    )
    if FLAGS.model:
        flags_given = flags_given.replace(FLAGS.model, "<realmix_default work dir>/best.keras")
    return "python -m experiments.bench_serving" + flags_given


def _model():
    """The model to time and its description: --model, else the default localizer with random
    weights."""
    import keras

    from localizer import model as model_lib
    from localizer.inference.predictor import load_keras_model

    if FLAGS.model:
        return load_keras_model(FLAGS.model), f"{os.path.basename(FLAGS.model)} (trained)"
    keras.utils.set_random_seed(0)
    model = model_lib.build_model(
        model_lib.ModelConfig(num_classes=len(CLASS_NAMES), class_names=CLASS_NAMES, weights="none")
    )
    return model, "the default localizer (efficientnet_lite0, random weights)"


def _photos(count):
    folder = FLAGS.data_dir or (DEFAULT_JPEGS if os.path.isdir(DEFAULT_JPEGS) else None)
    if folder:
        encoded = load_jpegs(folder, count)
        return (
            encoded,
            f"{len(encoded)} JPEGs of {os.path.relpath(os.path.abspath(folder), REPO_ROOT)}",
        )
    return generated_jpegs(count), f"{count} generated 480x360 JPEGs"


def _rendered(encoded, metadata):
    """The photos as the model sees them: uint8 `[N, S, S, 3]`."""
    from localizer.serving.verify import render_encoded

    return np.stack(
        [
            render_encoded(data, metadata["image_size"], metadata["resize_mode"]).numpy()
            for data in encoded
        ]
    )


def training_calibration(model, data, count=None):
    """`(calibration, check)` images for the int8 file from the model's training split as its
    work dir recorded it (`data`), as `localizer.export` calibrates."""
    from localizer import model as model_lib
    from localizer.serving import calibration
    from localizer.training import data as data_lib

    metadata = model_lib.model_metadata(model)
    return calibration.calibration_and_check_images(
        data_lib.build_source(data),
        data.train_split,
        metadata["image_size"],
        metadata["resize_mode"],
        count=count or calibration.CALIBRATION_IMAGES,
    )


def _int8_images(model):
    """`(calibration, check)` images for the int8 file from the model's training split when its
    work dir names one; else None (no int8 file)."""
    from localizer.training import workdir

    data = workdir.recorded_data(FLAGS.model) if FLAGS.model else None
    if data is None:
        print("note: no int8 row: int8 is calibrated on a trained model's training data (--model)")
        return None
    return training_calibration(model, data)


def _batch_runner(runner, images):
    """`callable(start, stop)` running a TFLite signature runner on `images[start:stop]`."""
    return lambda i, j: runner(images=images[i:j])


def _paths(version, model, rendered, encoded, sessions, onnx):
    """`{path name: callable(start, stop)}`, each running one batch of the photos."""
    import tensorflow as tf

    from localizer.serving import onnx_export, signatures, tflite
    from localizer.serving.graph import inference_function

    images = tf.constant(rendered)
    predict_images = tf.saved_model.load(version).signatures[signatures.IMAGES_SIGNATURE]
    spec = tf.TensorSpec([None, *rendered.shape[1:]], tf.uint8)
    xla = tf.function(inference_function(model, spec), jit_compile=True)
    runners = {
        name: tflite.interpreter(
            path=os.path.join(version, file), num_threads=os.cpu_count()
        ).get_signature_runner(signatures.IMAGES_SIGNATURE)
        for name, file in (
            ("tflite_float", signatures.TFLITE_FILE),
            ("tflite_int8", signatures.TFLITE_INT8_FILE),
        )
        if os.path.exists(os.path.join(version, file))
    }

    def session_path(run, inputs, name):
        return lambda i, j: run({name: inputs[i:j]})

    encoded = np.array(encoded, object)

    paths = {
        "savedmodel_session_before": session_path(
            sessions["images_before"], rendered, signatures.IMAGES_INPUT
        ),
        SAVEDMODEL_AFTER: session_path(sessions["images_after"], rendered, signatures.IMAGES_INPUT),
        "savedmodel_tf2": lambda i, j: predict_images(images=images[i:j])["box"].numpy(),
        XLA_CANDIDATE: lambda i, j: xla(images[i:j])["box"].numpy(),
        **{name: _batch_runner(runner, rendered) for name, runner in runners.items()},
        "serving_default_before": session_path(
            sessions["bytes_before"], encoded, signatures.BYTES_INPUT
        ),
        "serving_default": session_path(sessions["bytes_after"], encoded, signatures.BYTES_INPUT),
    }
    if onnx:
        session = onnx_export.session(os.path.join(version, signatures.ONNX_FILE))
        paths["onnxruntime"] = lambda i, j: onnx_export.run(session, rendered[i:j])
    return {name: paths[name] for name in PATH_LABELS if name in paths}


def _onnx_installed():
    from localizer.serving import onnx_export

    try:
        onnx_export.require(onnx_export.CONVERTER_PACKAGES, "the ONNX row")
    except onnx_export.MissingPackageError as error:
        print(f"note: no ONNX row: {error}")
        return False
    return True


def _file_sizes(version):
    from localizer.serving import signatures

    extra = {
        "tflite_float": signatures.TFLITE_FILE,
        "tflite_int8": signatures.TFLITE_INT8_FILE,
        "onnx": signatures.ONNX_FILE,
    }
    sizes = {
        name: os.path.getsize(os.path.join(version, file))
        for name, file in extra.items()
        if os.path.exists(os.path.join(version, file))
    }
    sizes["savedmodel"] = folder_bytes(version) - sum(sizes.values())
    return {name: round(size / 1e6, 2) for name, size in sizes.items()}


def peak_flops(size=2048, repeats=10):
    """This CPU's float32 peak as TensorFlow reaches it: FLOP/s of a large matmul (median)."""
    import tensorflow as tf

    a = tf.random.stateless_normal([size, size], seed=[0, 0])
    matmul = tf.function(lambda x: tf.matmul(x, x))
    matmul(a).numpy()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        matmul(a).numpy()
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times)


def model_flops(model, image_size):
    """FLOPs of one image through the model (multiply-adds count 2), by TF's profiler."""
    import tensorflow as tf

    function = tf.function(lambda images: model(images, training=False))
    graph = function.get_concrete_function(
        tf.TensorSpec([1, image_size, image_size, 3], tf.uint8)
    ).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


def summarize(raw, flops, peak):
    """Per batch size and path: latency, images/s, share of peak, and ratios (medians of runs)."""
    table = {}
    for batch_size, per_path in raw.items():
        reference = per_path[SAVEDMODEL_AFTER]["throughput_runs"]
        rows = {}
        for name, values in per_path.items():
            latencies_ms = np.array(values["latencies"]) * 1000.0
            images_per_s = statistics.median(values["throughput_runs"])
            looks = LOOKS if name.startswith("serving_default") else 1
            rows[name] = {
                "latency_ms_p50": round(float(np.percentile(latencies_ms, 50)), 2),
                "latency_ms_p99": round(float(np.percentile(latencies_ms, 99)), 2),
                "images_per_s": round(images_per_s, 1),
                "share_of_peak": round(images_per_s * looks * flops / peak, 3),
                "x_savedmodel_time": round(
                    statistics.median(
                        r / v for r, v in zip(reference, values["throughput_runs"], strict=True)
                    ),
                    2,
                ),
            }
        for name in ("serving_default", "serving_default_before"):
            if name in rows:
                rows[name]["x_model_compute"] = round(rows[name]["x_savedmodel_time"] / LOOKS, 2)
        table[str(batch_size)] = rows
    return table


def print_table(result):
    print(
        f"Serving speed: {result['model']}; {result['data']}; {result['machine']} (load "
        f"{result['load_average_at_start']} at start); {result['runs']} runs, medians; model "
        f"{result['model_gflops_per_image']} GFLOPs/image, peak {result['peak_gflops_per_s']} "
        "GFLOP/s"
    )
    print(
        "| batch | runtime | p50 ms | images/s | share of peak | x SavedModel time |\n"
        "|---|---|---|---|---|---|"
    )
    for batch_size, rows in result["batches"].items():
        for name, row in rows.items():
            print(
                f"| {batch_size} | {PATH_LABELS[name]} | {row['latency_ms_p50']} | "
                f"{row['images_per_s']} | {row['share_of_peak']:.1%} | "
                f"{row['x_savedmodel_time']} |"
            )


if __name__ == "__main__":
    flags.DEFINE_string(
        "data_dir", None, "Folder of JPEGs (default: ../shared/data/realmix/JPEGImages if present)."
    )
    flags.DEFINE_integer("runs", 5, "Runs; medians over them are reported.")
    flags.DEFINE_list("batch_sizes", ["1", "32"], "Batch sizes to time.")
    flags.DEFINE_integer(
        "images_per_run", 64, "Images per path per run (calls = this / batch size)."
    )
    flags.DEFINE_integer("num_images", 64, "Distinct JPEGs to cycle through.")
    flags.DEFINE_string(
        "model",
        None,
        "A trained .keras (e.g. the realmix_default work dir's best.keras; int8 calibrates on its "
        "training split); default: the default localizer with random weights.",
    )
    flags.DEFINE_boolean("record", False, f"Write {os.path.relpath(RESULTS, REPO_ROOT)}.")
    flags.DEFINE_boolean(
        "serving_throughput", True, "Time every runtime of one export (the table above)."
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

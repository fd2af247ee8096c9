"""Input-pipeline throughput: our tf.data pipeline vs a tutorial-style Python loader.

    python -m experiments.bench_pipeline [--data_dir=../shared/data/realmix] [--runs=5]
    (or `make bench`)

Measures images/s for decode + augment + resize (224 px) + batch over one pass
of a VOC-format folder: `../shared/data/realmix` when it exists, else a
generated folder of JPEGs. The baseline is the per-example loader of the
popular Keras localization tutorials: parse each XML, `PIL.Image.open`,
convert, resize, `np.asarray`, append to Python lists, `np.stack` into
batches (no augmentation, which flatters it). The two alternate within one
process, several runs each; the report gives medians and their ratio.
Results go to `experiments/results/bench_pipeline.json`.
"""

import json
import os
import platform
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REALMIX = os.path.join(REPO_ROOT, "..", "shared", "data", "realmix")
RESULTS = os.path.join(REPO_ROOT, "experiments", "results", "bench_pipeline.json")


def generated_voc_folder(root, count=300, seed=0):
    """A VOC folder of synthetic JPEGs (about 480x360) for machines without realmix."""
    import tensorflow as tf

    from pipelines.sources import synthetic
    from pipelines.sources.voc_dir import voc_xml

    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    ids = []
    for i in range(count):
        example = synthetic.render_example(tf.constant([seed, i], tf.int64), (320, 480))
        height, width = example["image"].shape[:2]
        ymin, xmin, ymax, xmax = (example["box"].numpy() * [height, width, height, width]).tolist()
        name = synthetic.SHAPES[int(example["label"])]
        ids.append(f"gen{i:04d}")
        tf.io.write_file(
            os.path.join(root, "JPEGImages", f"{ids[-1]}.jpg"), tf.io.encode_jpeg(example["image"])
        )
        with open(os.path.join(root, "Annotations", f"{ids[-1]}.xml"), "w") as f:
            f.write(voc_xml(f"{ids[-1]}.jpg", [(name, (xmin, ymin, xmax, ymax))]))
    with open(os.path.join(root, "ImageSets", "Main", "trainval.txt"), "w") as f:
        f.write("\n".join(ids) + "\n")
    return root


def python_loader_pass(data_dir, split, image_size, batch_size):
    """The tutorials' loader: one example at a time in Python. Returns #images."""
    from PIL import Image

    with open(os.path.join(data_dir, "ImageSets", "Main", f"{split}.txt")) as f:
        ids = [line.split()[0] for line in f if line.strip()]
    images, boxes, labels, count = [], [], [], 0
    for example_id in ids:
        root = ET.parse(os.path.join(data_dir, "Annotations", f"{example_id}.xml")).getroot()
        obj = root.find("object")
        image = Image.open(os.path.join(data_dir, "JPEGImages", f"{example_id}.jpg")).convert("RGB")
        width, height = image.size
        bb = obj.find("bndbox")
        xmin, ymin, xmax, ymax = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        images.append(np.asarray(image.resize((image_size, image_size)), np.uint8))
        boxes.append([ymin / height, xmin / width, ymax / height, xmax / width])
        labels.append(obj.findtext("name"))
        if len(images) == batch_size:
            np.stack(images), np.array(boxes, np.float32)
            count += len(images)
            images, boxes = [], []
    return count


def tfdata_pass(dataset):
    """Iterates one epoch of a tf.data pipeline. Returns #images."""
    return sum(int(image.shape[0]) for image, _ in dataset)


def timed(fn):
    start = time.perf_counter()
    count = fn()
    return count / (time.perf_counter() - start)


def run_benchmark(data_dir, split, runs, image_size=224, batch_size=32):
    """Alternates the loaders `runs` times; returns a dict of per-run images/s."""
    import pipelines
    from pipelines import input_pipeline

    source = pipelines.get_source("voc_dir", data_dir=data_dir)
    num_examples = source.num_examples(split)
    uncached = input_pipeline.PipelineConfig(
        image_size=image_size, resize_mode="letterbox", batch_size=batch_size, cache="none", seed=0
    )
    cached = input_pipeline.PipelineConfig(
        image_size=image_size,
        resize_mode="letterbox",
        batch_size=batch_size,
        cache="memory",
        seed=0,
    )
    from_files = input_pipeline.make_dataset(source, split, uncached, training=True)
    from_cache = input_pipeline.make_dataset(source, split, cached, training=True)
    tfdata_pass(from_cache)  # fills the cache once; later passes are steady-state epochs
    results = {"python_loader": [], "tfdata_from_jpeg": [], "tfdata_cached_epoch": []}
    for _ in range(runs):
        results["python_loader"].append(
            timed(lambda: python_loader_pass(data_dir, split, image_size, batch_size))
        )
        results["tfdata_from_jpeg"].append(timed(lambda: tfdata_pass(from_files)))
        results["tfdata_cached_epoch"].append(timed(lambda: tfdata_pass(from_cache)))
    return {"num_examples": num_examples, "runs": results}


def summarize(raw, data_dir, split):
    medians = {k: statistics.median(v) for k, v in raw["runs"].items()}
    base = medians["python_loader"]
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "data": f"{os.path.relpath(os.path.abspath(data_dir), REPO_ROOT)} [{split}], "
        f"{raw['num_examples']} images",
        "command": "python -m experiments.bench_pipeline",
        "images_per_s_median": {k: round(v, 1) for k, v in medians.items()},
        "ratio_to_python_loader": {k: round(v / base, 2) for k, v in medians.items()},
        "images_per_s_runs": {k: [round(x, 1) for x in v] for k, v in raw["runs"].items()},
    }


def main(argv):
    del argv
    data_dir = FLAGS.data_dir or (DEFAULT_REALMIX if os.path.isdir(DEFAULT_REALMIX) else None)
    split = FLAGS.split
    with tempfile.TemporaryDirectory() as tmp:
        if data_dir is None:
            data_dir, split = generated_voc_folder(os.path.join(tmp, "voc")), "trainval"
        summary = summarize(run_benchmark(data_dir, split, FLAGS.runs), data_dir, split)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"Input pipeline, {summary['data']}, {summary['machine']}")
    print("| loader | images/s (median) | x python loader |\n|---|---|---|")
    for name, value in summary["images_per_s_median"].items():
        print(f"| {name} | {value} | {summary['ratio_to_python_loader'][name]} |")
    print(f"Wrote {RESULTS}")


if __name__ == "__main__":
    flags.DEFINE_string(
        "data_dir", None, "VOC-format folder (default: ../shared/data/realmix if present)."
    )
    flags.DEFINE_string("split", "trainval", "Split to read.")
    flags.DEFINE_integer("runs", 5, "Runs per loader; the medians are reported.")
    app.run(main)

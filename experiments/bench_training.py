"""Training throughput: real JPEGs through the pipeline vs in-memory tensors.

    python -m experiments.bench_training [--data_dir=../shared/data/realmix] [--runs=3]

Builds the default model (EfficientNet-Lite0, 224 px), unfreezes the top 30%
of the backbone as the fine-tuning stage does (the stage that reads images),
compiles it once, then alternates timed runs of `steps` train steps
(`train_on_batch`, the compiled step) fed
(a) by the input pipeline from the JPEG folder, with augmentation, and (b) by
one batch already in memory, repeated. Same model, same compiled step, one
process. The ratio (a)/(b) near 1 means the input pipeline never limits
training.

It also measures what the frozen stage's feature cache saves: (c) a train
step of the frozen-backbone model on in-memory images against (d) the heads
alone on cached features of the same batch.
Results go to experiments/results/bench_training.json.
"""

import dataclasses
import json
import os
import platform
import statistics
import time

from absl import app, flags

FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "bench_training.json")


def timed_steps(model, batches, steps):
    """Steps/s of `model.train_on_batch` (the compiled train step) over `steps` batches.

    `batches` is an iterator, so the input pipeline's own work counts when it
    feeds the step; an in-memory feed yields the same tensors again.
    """
    start = time.perf_counter()
    for _ in range(steps):
        x, y = next(batches)
        model.train_on_batch(x, y)
    return steps / (time.perf_counter() - start)


def repeated(batch):
    while True:
        yield batch


def main(argv):
    del argv
    import pipelines
    from experiments.common import REALMIX_DIR
    from localizer import model as model_lib
    from localizer.training import config as config_lib
    from localizer.training import objective
    from pipelines import input_pipeline

    data_dir = FLAGS.data_dir or REALMIX_DIR
    source = pipelines.get_source("voc_dir", data_dir=data_dir)
    config = config_lib.default_config()
    model_config = dataclasses.replace(config.model, num_classes=len(source.class_names))
    pipeline = dataclasses.replace(config.input_pipeline(), batch_size=FLAGS.batch_size)
    model = model_lib.build_model(model_config)
    model_lib.unfreeze_top_of_backbone(model, config.fine_tune_fraction)
    view = model_lib.training_view(model)
    objective.compile_model(view, config, 1e-4, steps_per_epoch=FLAGS.steps, epochs=100)
    to_targets = objective.training_targets(per_class=False)
    from_jpeg = iter(
        input_pipeline.make_dataset(source, "train", pipeline, training=True)
        .map(to_targets)
        .repeat()
    )
    one_batch = next(from_jpeg)
    in_memory = repeated(one_batch)
    timed_steps(view, from_jpeg, 3)  # compile and warm up both feeds
    timed_steps(view, in_memory, 3)
    runs = {"pipeline_from_jpeg": [], "in_memory_tensors": []}
    for _ in range(FLAGS.runs):
        runs["pipeline_from_jpeg"].append(timed_steps(view, from_jpeg, FLAGS.steps))
        runs["in_memory_tensors"].append(timed_steps(view, in_memory, FLAGS.steps))
    # Frozen stage: the whole model with a frozen backbone vs the heads on cached features.
    model_lib.freeze_backbone(model)
    frozen_view = model_lib.training_view(model)
    objective.compile_model(frozen_view, config, 1e-3, steps_per_epoch=FLAGS.steps, epochs=100)
    features = model.get_layer("backbone")(one_batch[0], training=False)
    heads_view = model_lib.features_training_view(model)
    objective.compile_model(heads_view, config, 1e-3, steps_per_epoch=FLAGS.steps, epochs=100)
    cached = repeated((features, one_batch[1]))
    timed_steps(frozen_view, in_memory, 3)
    timed_steps(heads_view, cached, 3)
    runs["frozen_backbone_on_images"] = []
    runs["heads_on_cached_features"] = []
    for _ in range(FLAGS.runs):
        runs["frozen_backbone_on_images"].append(timed_steps(frozen_view, in_memory, FLAGS.steps))
        runs["heads_on_cached_features"].append(timed_steps(heads_view, cached, FLAGS.steps))
    medians = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "command": "python -m experiments.bench_training",
        "model": f"{model_config.backbone} {model_config.image_size}px, top "
        f"{config.fine_tune_fraction:.0%} unfrozen, "
        f"batch {FLAGS.batch_size}",
        "steps_per_s_median": {k: round(v, 3) for k, v in medians.items()},
        "images_per_s_median": {k: round(v * FLAGS.batch_size, 1) for k, v in medians.items()},
        "ratio_pipeline_to_in_memory": round(
            medians["pipeline_from_jpeg"] / medians["in_memory_tensors"], 3
        ),
        "feature_cache_speedup": round(
            medians["heads_on_cached_features"] / medians["frozen_backbone_on_images"], 1
        ),
        "steps_per_s_runs": {k: [round(x, 3) for x in v] for k, v in runs.items()},
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    flags.DEFINE_string("data_dir", None, "VOC-format folder (default: ../shared/data/realmix).")
    flags.DEFINE_integer("steps", 20, "Train steps per timed epoch.")
    flags.DEFINE_integer("runs", 3, "Timed epochs per feed; medians are reported.")
    flags.DEFINE_integer("batch_size", 32, "Batch size.")
    app.run(main)

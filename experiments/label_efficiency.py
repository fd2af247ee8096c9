"""How much does `localizer.select` save? Label-efficiency curves, select vs random, in simulation.

The train split plays the unlabelled pool: a seeded `--start` share of it is
labelled at first; each step labels `--step` more of it, chosen by
`localizer.curation.selection` (the model of the step before looks at every
unlabelled photo file, both looks, and `choose` takes the most valuable,
near-duplicates skipped) or at random; after each step the heads train
again on the labelled photos' frozen backbone features (the default recipe's
frozen stage: the backbone runs once per photo and pass, so a step costs a head
training) and are scored on val (class-averaged IoU of the plain output, IoU
taken in the model's input frame: the letterbox is a scale and a shift, which
leave an IoU unchanged).

    python -m experiments.label_efficiency --data_dir=../shared/data/realmix --seeds=0,1,2 \
        --record

writes experiments/results/label_efficiency.json and label_efficiency.png (the curve in
RESULTS.md, "What to label next").
"""

import json
import os
import time

import numpy as np
from absl import app, flags, logging

import pipelines
from experiments import common
from localizer import model as model_lib
from localizer.curation import out_of_sample, selection
from localizer.inference.predictor import Predictor
from localizer.ops import statistics
from localizer.training import config as config_lib

STRATEGIES = ("select", "random")
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
RECORD_FILE = "label_efficiency.json"
PLOT_FILE = "label_efficiency.png"


def initial_pool(count, fraction, seed):
    """Positions of the examples labelled at the start: a seeded random `fraction`."""
    rng = np.random.default_rng(seed)
    return sorted(rng.permutation(count)[: int(round(fraction * count))].tolist())


def score_on_val(model, val, class_names):
    """Figures of the model's plain output on the val features (`out_of_sample.SplitFeatures`)."""
    outputs = model.get_layer("heads").predict(val.features, batch_size=64, verbose=0)
    logits = np.asarray(outputs[model_lib.CLASS_LOGITS])
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    summary = statistics.summarize(
        val.boxes, val.labels, np.asarray(outputs[model_lib.BOX]), probabilities, class_names
    )
    return {
        key: round(float(summary[key]), 4)
        for key in ("macro_mean_iou", "mean_iou", "localization_accuracy")
    }


def pick(strategy, model, pool, budget, files, seed):
    """Positions (of `pool`) to label next."""
    if strategy == "random":
        rng = np.random.default_rng(seed)
        return rng.permutation(pool)[:budget].tolist()
    predictor = Predictor.from_model(model, name="step model")
    candidates, failures = selection.candidates_from_files(
        predictor, [files[i] for i in pool], progress=False
    )
    if failures:
        raise RuntimeError(f"{len(failures)} pool photos could not be read: {failures[0]}")
    by_path = {files[position]: position for position in pool}
    return [by_path[candidates.paths[i]] for i in selection.choose(candidates, budget)]


def simulate(config, train, val, files, seed, start, step, steps, class_names):
    """`{strategy: [row per step]}` for one seed; the first model (the same labelled photos for
    every strategy) is trained once."""
    labelled = {name: initial_pool(len(train.ids), start, seed) for name in STRATEGIES}
    curves = {name: [] for name in STRATEGIES}
    budget = int(round(step * len(train.ids)))
    for number in range(steps + 1):
        for name in STRATEGIES:
            began = time.time()
            if number == 0 and name != STRATEGIES[0]:
                row = dict(curves[STRATEGIES[0]][0])
            else:
                rows = np.isin(train.example, labelled[name])
                model = out_of_sample.train_heads(
                    config, train.features[rows], train.labels[rows], train.boxes[rows], seed
                )
                row = {
                    "labelled": len(labelled[name]),
                    "fraction": round(len(labelled[name]) / len(train.ids), 3),
                    **score_on_val(model, val, class_names),
                }
            if number < steps:
                pool = sorted(set(range(len(train.ids))) - set(labelled[name]))
                labelled[name] = sorted(
                    labelled[name] + pick(name, model, pool, budget, files, seed + number)
                )
            row["seconds"] = round(time.time() - began, 1)
            curves[name].append(row)
            logging.info("seed %d %s step %d: %s", seed, name, number, row)
    return curves


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for name, colour in zip(STRATEGIES, ("tab:green", "tab:grey"), strict=True):
        runs = [seed_curves[name] for seed_curves in result["seeds"].values()]
        fractions = [row["fraction"] for row in runs[0]]
        values = np.array([[row["macro_mean_iou"] for row in run] for run in runs])
        for run in values:
            ax.plot(fractions, run, color=colour, alpha=0.3, linewidth=1)
        ax.plot(fractions, values.mean(0), color=colour, linewidth=2.5, label=f"{name} (mean)")
    ax.set_xlabel("share of train labelled")
    ax.set_ylabel("val class-averaged IoU (plain output)")
    ax.set_title("Label efficiency on realmix: select vs random")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


FLAGS = flags.FLAGS


def main(argv):
    del argv
    facts = common.benchmark_facts(  # the code as the run starts
        "python -m experiments.label_efficiency --data_dir=../shared/data/realmix "
        f"--seeds={','.join(FLAGS.seeds)} --start={FLAGS.start} --step={FLAGS.step} "
        f"--steps={FLAGS.steps} --feature_passes={FLAGS.feature_passes} --record"
    )
    source = pipelines.source_with_options("voc_dir", FLAGS.data_dir)
    class_names = list(source.class_names)
    config = config_lib.apply_overrides(
        config_lib.default_config(), [f"feature_passes={FLAGS.feature_passes}"]
    ).resolve(class_names)
    backbone = model_lib.build_model(config.model).get_layer("backbone")
    pipeline = config.input_pipeline()
    train = out_of_sample.split_features(backbone, source, "train", pipeline, config.feature_passes)
    val = out_of_sample.split_features(backbone, source, "val", pipeline, 1)
    originals = source.original_files("train")
    files = [originals[example_id] for example_id in train.ids]
    began = time.time()
    seeds = {}
    for seed in (int(s) for s in FLAGS.seeds):
        seeds[str(seed)] = simulate(
            config, train, val, files, seed, FLAGS.start, FLAGS.step, FLAGS.steps, class_names
        )
    result = {
        **facts,
        "data": "realmix train (pool) / val",
        "start": FLAGS.start,
        "step": FLAGS.step,
        "feature_passes": FLAGS.feature_passes,
        "frozen_epochs": config.frozen_epochs,
        "seconds": round(time.time() - began, 1),
        "seeds": seeds,
    }
    print(json.dumps(result, indent=1))
    if FLAGS.record:
        common.write_benchmark(os.path.join(RESULTS_DIR, RECORD_FILE), result)
        plot(result, os.path.join(RESULTS_DIR, PLOT_FILE))


if __name__ == "__main__":
    flags.DEFINE_string("data_dir", None, "realmix (a Pascal VOC folder).", required=True)
    flags.DEFINE_list("seeds", ["0", "1", "2"], "One simulation per seed.")
    flags.DEFINE_float("start", 0.2, "The share of train labelled at first.")
    flags.DEFINE_float("step", 0.1, "The share of train labelled at each step.")
    flags.DEFINE_integer("steps", 3, "Steps after the first training.")
    flags.DEFINE_integer("feature_passes", 3, "Frozen feature passes (1 plain + augmented).")
    flags.DEFINE_boolean("record", False, "Write the JSON and the plot to experiments/results/.")
    app.run(main)

"""Train a localizer: `python -m localizer.train` (or `make train`).

    python -m localizer.train --dataset=voc_dir --data_dir=/data/my_voc_folder \
        --experiment=realmix_default --workdir=work/realmix

Flags and `main` only: the work is `localizer.training.trainer.train_and_evaluate`.
"""

import dataclasses
import os
import shlex
import sys

from absl import flags

from localizer.training import config as config_lib
from localizer.training import workdir as workdir_lib
from localizer.training.trainer import train_and_evaluate
from pipelines import cli, dataset_flags
from pipelines.image_header import check_pixel_limit

FLAGS = flags.FLAGS


_DATA_FLAGS = ("dataset", "data_dir", "policy", "voc_year", "manual_dir", "image_dir", "exif")


_SHORTCUTS = {
    "backbone": "model.backbone",
    "weights": "model.weights",
    "image_size": "model.image_size",
    "batch_size": "pipeline.batch_size",
    "strategy": "strategy",
    "precision": "precision",
    "jit_compile": "jit_compile",
    "seed": "seed",
}


def config_from_flags(flag_values):
    """The experiment's config, overridden only by the flags actually given, then `--set`."""
    config = config_lib.load_experiment(flag_values.experiment)
    given = {name: flag_values[name].value for name in _DATA_FLAGS if flag_values[name].present}
    given = {name: (value or None) for name, value in given.items()}  # --data_dir= clears it
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, **given))
    overrides = [
        f"{path}={flag_values[name].value}"
        for name, path in _SHORTCUTS.items()
        if flag_values[name].present
    ]
    return config_lib.apply_overrides(config, overrides + list(flag_values.set))


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(
            f"unexpected argument {argv[1]!r}; every option is a --flag (see --helpshort)"
        )
    config = config_from_flags(FLAGS)
    workdir = FLAGS.workdir or workdir_lib.default_workdir(
        FLAGS.dataset if FLAGS["dataset"].present else None,
        FLAGS.data_dir,
        FLAGS.experiment or None,
    )
    command = " ".join(["python -m localizer.train", shlex.join(sys.argv[1:])]).strip()
    summary = train_and_evaluate(
        config,
        workdir,
        command=command,
        overwrite=FLAGS.overwrite,
        max_image_pixels=check_pixel_limit(FLAGS.max_image_pixels),
    )
    if summary.get(
        "role"
    ):  # a worker other than the chief: the chief reports and writes the work dir
        print(f"\n{summary['role']}: done; the chief (worker 0) wrote {summary['workdir']}.")
        if summary.get("weights_digest"):
            print(f"Weights digest: {summary['weights_digest']}")
        return
    best, base = summary["best"], summary["constant_guess_baseline"]
    print()
    if best:
        print(
            f"Best epoch {best['epoch']}: localization accuracy {best['localization_accuracy']:.3f}, "
            f"mean IoU {best['mean_iou']:.3f}, class accuracy {best['classification_accuracy']:.3f} "
            f"(best constant guess: loc acc {base['localization_accuracy']:.3f}, mean IoU {base['mean_iou']:.3f})."
        )
    print(f"Trained in {summary['train_seconds']:.0f} s.")
    if summary.get("weights_digest"):  # every worker of a multi-worker run prints the same one
        print(f"Weights digest: {summary['weights_digest']}")
    print(f"Model:   {summary['best_model']}")
    print(f"Metrics: {summary['metrics_history']} (and metrics.csv, train_summary.json)")
    print(f"TensorBoard: tensorboard --logdir {os.path.join(summary['workdir'], 'tensorboard')}")


def define_flags():
    dataset_flags.define_dataset_flags(with_split=False)
    flags.DEFINE_string(
        "experiment", "", "Name of experiments/<name>.py (empty: the default recipe)."
    )
    flags.DEFINE_string(
        "workdir",
        "",
        "Output folder (default: work/<dataset>[-<data folder>-<digest of its "
        "path>][-<experiment>]).",
    )
    flags.DEFINE_boolean(
        "overwrite",
        False,
        "The work dir holds another run: move it aside (kept as "
        "<workdir>.replaced-<time>) and start afresh.",
    )
    flags.DEFINE_string("backbone", None, "Backbone name (see localizer.backbones.BACKBONES).")
    flags.DEFINE_string("weights", None, "imagenet, none, or a weights file.")
    flags.DEFINE_integer("image_size", None, "Model input size.")
    flags.DEFINE_integer("batch_size", None, "Per-replica batch size.")
    flags.DEFINE_enum("strategy", None, list(config_lib.STRATEGIES), "tf.distribute strategy.")
    flags.DEFINE_enum("precision", None, list(config_lib.PRECISIONS), "Keras dtype policy.")
    flags.DEFINE_boolean("jit_compile", None, "XLA-compile the train step.")
    flags.DEFINE_integer("seed", None, "Random seed.")
    flags.DEFINE_multi_string("set", [], "Override any config field: --set=model.attach=pooled.")


if __name__ == "__main__":
    cli.run(main, define_flags)

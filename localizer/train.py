"""Train a localizer: `python -m localizer.train` (or `make train`).

    python -m localizer.train --dataset=voc_dir --data_dir=../shared/data/realmix \
        --experiment=realmix_default --workdir=work/realmix

Two stages, as practitioners do: (1) the heads on a frozen backbone, by
default on backbone features computed once (a large saving on CPU); (2)
optionally the top of the backbone unfrozen with a lower learning rate,
BatchNorm kept in inference mode. AdamW with warm-up and cosine decay. Killed
and re-run with the same command, it resumes from the last completed epoch.

The work dir receives: config.json, metrics.jsonl / metrics.csv (the IoU
callback's full validation picture per epoch), tensorboard/, backup/
(resumable state), best.keras (best by `best_metric`), final.keras and
train_summary.json.
"""

import dataclasses
import os
import platform
import resource
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

import pipelines
from localizer import callbacks as callbacks_lib
from localizer import config as config_lib
from localizer import files
from localizer import losses, metrics
from localizer import model as model_lib
from localizer.model import BOX, CELL_BOXES, CENTRE_LOGITS, CLASS_BOXES, CLASS_LOGITS, LOCALIZATION
from pipelines import input_pipeline
from pipelines.source import LABEL, Subset, check_usable, write_problems

FROZEN, FINE_TUNE = "frozen", "fine_tune"
DATA_ISSUES = "data_issues.tsv"
"""Work-dir file listing every skipped or repaired example: split, file, action, reason."""


# ----------------------------------------------------------------------------
# Set-up: strategy, precision, data
# ----------------------------------------------------------------------------


def make_strategy(name):
    """A `tf.distribute` strategy: auto picks TPU, then several GPUs, then one device."""
    if name == "auto":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            return tf.distribute.TPUStrategy(resolver)
        except (ValueError, RuntimeError, tf.errors.NotFoundError):
            pass
        if len(tf.config.list_logical_devices("GPU")) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        logging.warning(
            "Keras 3's Model.fit does not yet train under MultiWorkerMirroredStrategy "
            "(keras-team/keras#20585; fails here with Keras 3.15): expect an error from fit."
        )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"Unknown strategy {name!r}; expected one of {config_lib.STRATEGIES}.")


def set_precision(precision, strategy):
    """Sets Keras' global dtype policy; "auto" is float16 on GPU, bfloat16 on TPU, float32 on CPU."""
    if precision == "auto":
        if isinstance(strategy, tf.distribute.TPUStrategy):
            precision = "mixed_bfloat16"
        elif tf.config.list_logical_devices("GPU"):
            precision = "mixed_float16"
        else:
            precision = "float32"
    keras.mixed_precision.set_global_policy(precision)
    return precision


def build_source(data):
    """The dataset source a `DataConfig` names."""
    source = pipelines.source_with_options(
        data.dataset, data.data_dir, policy=data.policy, voc_year=data.voc_year,
        manual_dir=data.manual_dir, image_dir=data.image_dir,
    )
    return Subset(source, data.max_examples) if data.max_examples else source


def check_data(source, data, workdir):
    """Lists every skipped or repaired file in the work dir; fails early on too many skips."""
    splits = dict.fromkeys((data.train_split, data.val_split))
    for split in splits:
        source.num_examples(split)  # builds the index
        splits[split] = source.index_stats(split)
    write_problems(os.path.join(workdir, DATA_ISSUES), splits)
    for split in splits:
        check_usable(source, split, data.max_skipped_fraction)


def training_targets(model_config):
    """Maps pipeline targets {"label", "box"} to one target per output of the training view."""
    per_class = model_config.regression == "per_class"
    dense = model_config.attach == "dense"

    def to_targets(inputs, targets):
        label = tf.cast(targets[LABEL], tf.int32)
        box = tf.cast(targets[BOX], tf.float32)
        packed = tf.concat([box, tf.cast(label, tf.float32)[..., None]], axis=-1)
        y = {CLASS_LOGITS: label, BOX: box, LOCALIZATION: packed}
        if per_class:
            y[CLASS_BOXES] = packed
        if dense:  # both auxiliary losses derive their per-cell targets from the box
            y[CENTRE_LOGITS] = box
            y[CELL_BOXES] = box
        return inputs, y

    return to_targets


def check_workdir(workdir):
    """Fails now, naming the path, if the work dir cannot be written (not hours later)."""
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write-test-{os.getpid()}")
        with open(probe, "wb") as f:
            f.write(b"\0" * 1024 * 1024)
        os.remove(probe)
    except OSError as error:
        raise OSError(f"Work dir {workdir!r} is not writable: {error.strerror or error}.") from None


# ----------------------------------------------------------------------------
# Compile
# ----------------------------------------------------------------------------


def learning_rate_schedule(peak, steps_per_epoch, epochs, warmup_epochs):
    """Linear warm-up to `peak`, then cosine decay to zero."""
    total = max(1, steps_per_epoch * epochs)
    warmup = min(int(steps_per_epoch * warmup_epochs), total - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak * 0.01 if warmup else peak,
        decay_steps=total - warmup,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


def compile_model(train_model, config, peak_lr, steps_per_epoch, epochs):
    """Compiles a training view with the multi-task loss and the IoU metrics."""
    per_class = CLASS_BOXES in train_model.output
    box_output = CLASS_BOXES if per_class else BOX
    box_loss = losses.PerClassBoxLoss(config.box_loss) if per_class else losses.BoxLoss(config.box_loss)
    loss = {CLASS_LOGITS: losses.ClassificationLoss(config.label_smoothing), box_output: box_loss}
    loss_weights = losses.combined_loss_weights(config.alpha, box_output)
    if CENTRE_LOGITS in train_model.output:
        # The dense head's per-cell supervision, on the box side of the alpha weighting.
        loss[CELL_BOXES] = losses.CellBoxLoss(config.box_loss)
        loss[CENTRE_LOGITS] = losses.CentreLoss()
        loss_weights[CELL_BOXES] = (1.0 - config.alpha) * config.cell_box_loss_weight
        loss_weights[CENTRE_LOGITS] = (1.0 - config.alpha) * config.centre_loss_weight
    train_model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=learning_rate_schedule(peak_lr, steps_per_epoch, epochs, config.warmup_epochs),
            weight_decay=config.weight_decay,
        ),
        loss=loss,
        loss_weights=loss_weights,
        metrics={
            CLASS_LOGITS: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            BOX: [metrics.MeanBoxIoU(), metrics.IoUAccuracy(0.5), metrics.IoUAccuracy(0.75), metrics.IoUAccuracy(0.9)],
            LOCALIZATION: [metrics.LocalizationAccuracy()],
        },
        jit_compile=config.jit_compile,
    )


# ----------------------------------------------------------------------------
# Features cache (frozen backbone, no augmentation)
# ----------------------------------------------------------------------------


def extract_features(backbone, dataset, description):
    """Runs the frozen backbone once over `dataset`; returns features, labels, boxes."""
    features, labels, boxes = [], [], []
    progress = keras.utils.Progbar(None, unit_name="batch", verbose=1 if sys.stdout.isatty() else 0)
    # Plain calls, not predict_on_batch: under a distribution strategy that runs
    # the whole batch on every replica. One traced function serves all batches.
    run_backbone = _backbone_function(backbone)
    for images, targets in dataset:
        features.append(run_backbone(images).numpy())
        labels.append(targets[LABEL].numpy())
        boxes.append(targets[BOX].numpy())
        progress.add(1)
    logging.info("Computed %s features for %d examples.", description, sum(len(b) for b in labels))
    return np.concatenate(features), np.concatenate(labels), np.concatenate(boxes)


def _backbone_function(backbone):
    if not hasattr(backbone, "_localizer_inference_fn"):
        backbone._localizer_inference_fn = tf.function(lambda images: backbone(images, training=False))
    return backbone._localizer_inference_fn


def extract_training_features(backbone, source, split, pipeline, passes):
    """Features of one plain pass over `split` plus `passes - 1` augmented ones.

    Each augmented pass draws new augmentations, so the heads see the objects
    at many positions and scales while the backbone still runs only once per
    image and pass.
    """
    plain = dataclasses.replace(pipeline, augment=input_pipeline.ops.AugmentConfig.off())
    parts = [extract_features(backbone, input_pipeline.make_dataset(source, split, plain, training=False), "train")]
    augmented = input_pipeline.make_dataset(source, split, pipeline, training=True)
    for i in range(1, passes):
        parts.append(extract_features(backbone, augmented, f"augmented train pass {i}"))
    return tuple(np.concatenate(arrays) for arrays in zip(*parts))


def collect_targets(dataset):
    labels, boxes = [], []
    for _, targets in dataset:
        labels.append(targets[LABEL].numpy())
        boxes.append(targets[BOX].numpy())
    return np.concatenate(labels), np.concatenate(boxes)


def constant_guess_baseline(labels, boxes, class_names):
    """The best constant guess on a split: its majority class and its mean box.

    Uses the split's own statistics, so it is an upper bound for any constant
    guess: the floor a localizer must clear by far.
    """
    num_classes = len(class_names)
    majority = np.bincount(labels, minlength=num_classes).argmax()
    logits = np.tile(np.eye(num_classes)[majority], (len(labels), 1))
    mean_box = np.tile(boxes.mean(axis=0), (len(labels), 1))
    return metrics.summarize(boxes, labels, mean_box, logits, class_names)


# ----------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------


def _fit_stage(stage, train_model, export_model, train_data, val_inputs, val_targets, config,
               class_names, workdir, peak_lr, steps_per_epoch, initial_epoch, epochs):
    """One stage: compile, fit with resumable backups and the IoU callback."""
    compile_model(train_model, config, peak_lr, steps_per_epoch, epochs - initial_epoch)
    iou_callback = callbacks_lib.IoUCallback(
        val_inputs, val_targets[0], val_targets[1], class_names, workdir, export_model,
        best_metric=config.best_metric, every=config.eval_every, stage=stage, total_epochs=epochs,
    )
    train_model.fit(
        train_data.repeat(),
        steps_per_epoch=steps_per_epoch,
        shuffle=False,  # the datasets shuffle themselves, seeded
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=[
            callbacks_lib.AtomicBackupAndRestore(os.path.join(workdir, "backup", stage)),
            keras.callbacks.TensorBoard(os.path.join(workdir, "tensorboard", stage)),
            iou_callback,
        ],
        verbose=1 if sys.stdout.isatty() else 2,
    )
    return iou_callback


def _stage_done_marker(workdir, stage):
    return os.path.join(workdir, f"{stage}.done.weights.h5")


def _mark_stage_done(model, workdir, stage):
    files.atomic_write(_stage_done_marker(workdir, stage), model.save_weights)


@dataclasses.dataclass
class _Run:
    """What both training stages share."""

    config: config_lib.TrainConfig
    workdir: str
    strategy: tf.distribute.Strategy
    source: pipelines.Source
    pipeline: input_pipeline.PipelineConfig
    model: keras.Model
    val_ds: tf.data.Dataset
    val_targets: tuple  # (labels [N], boxes [N, 4]) in the model-input frame
    steps_per_epoch: int

    @property
    def to_targets(self):
        return training_targets(self.config.model)

    def fit(self, stage, train_model, train_data, val_inputs, peak_lr, steps_per_epoch, initial_epoch, epochs):
        with self.strategy.scope():
            return _fit_stage(
                stage, train_model, self.model, train_data, val_inputs, self.val_targets, self.config,
                self.source.class_names, self.workdir, peak_lr, steps_per_epoch, initial_epoch, epochs,
            )


def _frozen_stage(run):
    """Stage 1: the heads on a frozen backbone (on cached features by default)."""
    config = run.config
    with run.strategy.scope():
        model_lib.freeze_backbone(run.model)
    if not config.cache_features:
        train_data = input_pipeline.make_dataset(run.source, config.data.train_split, run.pipeline, training=True)
        with run.strategy.scope():
            train_model = model_lib.training_view(run.model)
        run.fit(FROZEN, train_model, train_data.map(run.to_targets), run.val_ds.map(lambda images, _: images),
                config.frozen_lr, run.steps_per_epoch, 0, config.frozen_epochs)
        return
    backbone = run.model.get_layer("backbone")
    features, labels, boxes = extract_training_features(
        backbone, run.source, config.data.train_split, run.pipeline, config.feature_passes
    )
    val_features, _, _ = extract_features(backbone, run.val_ds, "val")
    train_data = (
        tf.data.Dataset.from_tensor_slices((features, {LABEL: labels, BOX: boxes}))
        .shuffle(len(labels), seed=config.seed, reshuffle_each_iteration=True)
        .batch(run.pipeline.batch_size, drop_remainder=True)
        .map(run.to_targets)
        .prefetch(tf.data.AUTOTUNE)
    )
    val_inputs = tf.data.Dataset.from_tensor_slices(val_features).batch(run.pipeline.batch_size)
    with run.strategy.scope():
        train_model = model_lib.features_training_view(run.model)
    run.fit(FROZEN, train_model, train_data, val_inputs, config.frozen_lr,
            run.steps_per_epoch * config.feature_passes, 0, config.frozen_epochs)


def _fine_tune_stage(run):
    """Stage 2: the top of the backbone unfrozen (BatchNorm frozen), with augmentation."""
    config = run.config
    train_data = input_pipeline.make_dataset(run.source, config.data.train_split, run.pipeline, training=True)
    with run.strategy.scope():
        unfrozen = model_lib.unfreeze_top_of_backbone(run.model, config.fine_tune_fraction)
        logging.info("Fine-tuning the top %d backbone layers (BatchNorm frozen).", unfrozen)
        train_model = model_lib.training_view(run.model)
    run.fit(FINE_TUNE, train_model, train_data.map(run.to_targets), run.val_ds.map(lambda images, _: images),
            config.fine_tune_lr, run.steps_per_epoch, config.frozen_epochs,
            config.frozen_epochs + config.fine_tune_epochs)


def train_and_evaluate(config, workdir):
    """Trains per `config`, writing everything into `workdir`; returns the summary dict."""
    config.validate()
    check_workdir(workdir)
    start = time.time()
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(config.strategy)
    precision = set_precision(config.precision, strategy)
    replicas = strategy.num_replicas_in_sync

    source = build_source(config.data)
    check_data(source, config.data, workdir)
    class_names = source.class_names
    model_config = dataclasses.replace(
        config.model, num_classes=len(class_names), class_names=tuple(class_names),
        resize_mode=config.pipeline.resize_mode,
    )
    pipeline = dataclasses.replace(
        config.pipeline, image_size=model_config.image_size, batch_size=config.pipeline.batch_size * replicas,
        seed=config.seed,
    )
    config = dataclasses.replace(config, model=model_config, pipeline=pipeline)
    files.write_json_atomically(os.path.join(workdir, "config.json"), {
        **config_lib.to_dict(config), "class_names": class_names, "replicas": replicas, "precision": precision,
    }, indent=2, sort_keys=True)
    logging.info("Training on %s (%d classes) with %d replica(s), %s.", source.name, len(class_names), replicas, precision)

    val_ds = input_pipeline.make_dataset(source, config.data.val_split, pipeline, training=False)
    with strategy.scope():
        model = model_lib.build_model(model_config)
    run = _Run(
        config=config, workdir=workdir, strategy=strategy, source=source, pipeline=pipeline, model=model,
        val_ds=val_ds, val_targets=collect_targets(val_ds),
        steps_per_epoch=max(1, source.num_examples(config.data.train_split) // pipeline.batch_size),
    )
    frozen_marker = _stage_done_marker(workdir, FROZEN)
    if config.frozen_epochs and os.path.exists(frozen_marker):
        model.load_weights(frozen_marker)
        logging.info("Stage %s already done; loaded %s.", FROZEN, frozen_marker)
    elif config.frozen_epochs:
        _frozen_stage(run)
        _mark_stage_done(model, workdir, FROZEN)
    if config.fine_tune_epochs:
        _fine_tune_stage(run)
    callbacks_lib.save_model_atomically(model, os.path.join(workdir, "final.keras"))
    summary = _summary(run, time.time() - start, replicas)
    files.write_json_atomically(os.path.join(workdir, "train_summary.json"), summary, indent=2, sort_keys=True)
    return summary


def _summary(run, seconds, replicas):
    workdir = os.path.abspath(run.workdir)
    history = callbacks_lib.read_history(workdir)
    metric = run.config.best_metric
    best = max(history, key=lambda r: r.get(metric) or -1) if history else None
    return {
        "workdir": workdir,
        "best_model": os.path.join(workdir, callbacks_lib.BEST_MODEL),
        "final_model": os.path.join(workdir, "final.keras"),
        "metrics_history": os.path.join(workdir, callbacks_lib.HISTORY_JSONL),
        "train_seconds": round(seconds, 1),
        # ru_maxrss is in KiB on Linux.
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {replicas} replica(s)",
        "best_metric": metric,
        "best_epoch": best["epoch"] if best else None,
        "best": {k: v for k, v in best.items() if k != "train"} if best else None,
        "last": {k: v for k, v in history[-1].items() if k != "train"} if history else None,
        "constant_guess_baseline": constant_guess_baseline(*run.val_targets, run.source.class_names),
    }


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------

FLAGS = flags.FLAGS


_DATA_FLAGS = ("dataset", "data_dir", "policy", "voc_year", "manual_dir", "image_dir")
_SHORTCUTS = {
    "backbone": "model.backbone", "weights": "model.weights", "image_size": "model.image_size",
    "batch_size": "pipeline.batch_size", "strategy": "strategy", "precision": "precision",
    "jit_compile": "jit_compile", "seed": "seed",
}


def config_from_flags(flag_values):
    """The experiment's config, overridden only by the flags actually given, then `--set`."""
    config = config_lib.load_experiment(flag_values.experiment)
    given = {name: flag_values[name].value for name in _DATA_FLAGS if flag_values[name].present}
    given = {name: (value or None) for name, value in given.items()}  # --data_dir= clears it
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, **given))
    overrides = [f"{path}={flag_values[name].value}" for name, path in _SHORTCUTS.items() if flag_values[name].present]
    return config_lib.apply_overrides(config, overrides + list(flag_values.set))


def main(argv):
    del argv
    config = config_from_flags(FLAGS)
    workdir = FLAGS.workdir or os.path.join("work", config.data.dataset + (f"-{FLAGS.experiment}" if FLAGS.experiment else ""))
    try:
        summary = train_and_evaluate(config, workdir)
    except (pipelines.DatasetError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    best, base = summary["best"], summary["constant_guess_baseline"]
    print()
    if best:
        print(
            f"Best epoch {best['epoch']}: localization accuracy {best['localization_accuracy']:.3f}, "
            f"mean IoU {best['mean_iou']:.3f}, class accuracy {best['classification_accuracy']:.3f} "
            f"(best constant guess: loc acc {base['localization_accuracy']:.3f}, mean IoU {base['mean_iou']:.3f})."
        )
    print(f"Trained in {summary['train_seconds']:.0f} s.")
    print(f"Model:   {summary['best_model']}")
    print(f"Metrics: {summary['metrics_history']} (and metrics.csv, train_summary.json)")
    print(f"TensorBoard: tensorboard --logdir {os.path.join(summary['workdir'], 'tensorboard')}")


def define_flags():
    from pipelines import cli

    cli.define_dataset_flags(with_split=False)
    flags.DEFINE_string("experiment", "", "Name of experiments/<name>.py (empty: the default recipe).")
    flags.DEFINE_string("workdir", "", "Output folder (default: work/<dataset>[-<experiment>]).")
    flags.DEFINE_string("backbone", None, "Backbone name (see localizer.backbones.BACKBONES).")
    flags.DEFINE_string("weights", None, "imagenet, none, or a weights file.")
    flags.DEFINE_integer("image_size", None, "Model input size.")
    flags.DEFINE_integer("batch_size", None, "Per-replica batch size.")
    flags.DEFINE_enum("strategy", None, list(config_lib.STRATEGIES), "tf.distribute strategy.")
    flags.DEFINE_enum("precision", None, list(config_lib.PRECISIONS), "Keras dtype policy.")
    flags.DEFINE_boolean("jit_compile", None, "XLA-compile the train step.")
    flags.DEFINE_integer("seed", None, "Random seed.")
    flags.DEFINE_multi_string("set", [], "Override any config field: --set=model.attach=fc.")


if __name__ == "__main__":
    define_flags()
    app.run(main)

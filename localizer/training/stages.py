"""The two training stages: (1) the heads on a frozen backbone, by default on
cached features; (2) the top of the backbone fine-tuned, BatchNorm frozen.

Each stage is a `Model.fit` with resumable backups, TensorBoard and the IoU
callback, or under MultiWorkerMirroredStrategy the same compiled model and
callbacks driven by `localizer.training.loop`; `StageInputs` holds what both
read, a `Stage` what one fits. Across workers, what the chief restores from the work dir (a finished
stage, a backup) reaches the others through `localizer.training.cluster`.
"""

import dataclasses
import os
import sys
from collections.abc import Callable

import keras
import tensorflow as tf
from absl import logging

from localizer import model as model_lib
from localizer.training import backups, cluster, feature_cache, iou_callback, loop, weight_average
from localizer.training import config as config_lib
from localizer.training.objective import compile_model, training_targets
from pipelines import input_pipeline
from pipelines.sources.source import BOX, LABEL, Source

FROZEN, FINE_TUNE = "frozen", "fine_tune"


@dataclasses.dataclass(frozen=True)
class Stage:
    """What one training stage fits: its `name` ("frozen", "fine_tune"), the view of the model it
    trains, its training batches (`dataset_fn(batch_size)`: this worker's shard under several
    workers), the validation inputs in the view's input form, its peak learning rate and epochs."""

    name: str
    train_model: keras.Model
    dataset_fn: Callable[[int], tf.data.Dataset]
    val_inputs: tf.data.Dataset
    peak_lr: float
    epochs: loop.Epochs


def fit_epochs(train_model, strategy, dataset_fn, global_batch, schedule, callbacks, verbose=None):
    """Trains a compiled model over the `loop.Epochs` of `schedule`: `Model.fit`, or across workers
    `localizer.training.loop`."""
    verbose = (1 if sys.stdout.isatty() else 2) if verbose is None else verbose
    if cluster.is_multi_worker(strategy):
        # Outside the strategy's scope: what only the chief does (restore a backup, save a
        # model) may create throwaway variables, which inside the scope would start a
        # broadcast that the other workers never join.
        return loop.fit_across_workers(
            train_model, strategy, dataset_fn, global_batch, schedule, callbacks, verbose
        )
    with strategy.scope():
        return train_model.fit(
            dataset_fn(global_batch).repeat(),
            steps_per_epoch=schedule.steps_per_epoch,
            shuffle=False,  # the datasets shuffle themselves, seeded
            epochs=schedule.epochs,
            initial_epoch=schedule.initial_epoch,
            callbacks=callbacks,
            verbose=verbose,
        )


@dataclasses.dataclass
class StageInputs:
    """What both training stages read: the resolved config, the work dir, the
    strategy, the data, the model being trained and the validation set.
    """

    config: config_lib.TrainConfig
    workdir: str
    strategy: tf.distribute.Strategy
    source: Source
    pipeline: input_pipeline.PipelineConfig
    model: keras.Model
    val_ds: tf.data.Dataset
    val_targets: tuple  # (labels [N], boxes [N, 4]) in the model-input frame
    steps_per_epoch: int  # global steps: examples // global batch
    role: cluster.Role = cluster.Role()
    preview: tuple = None  # (positions, images) of val examples drawn into TensorBoard

    @property
    def to_targets(self):
        return training_targets(self.config.model)

    def training_images(self, batch_size):
        """Augmented training batches of this worker's shard, with one target per output."""
        pipeline = dataclasses.replace(self.pipeline, batch_size=batch_size)
        return input_pipeline.make_dataset(
            self.source,
            self.config.data.train_split,
            pipeline,
            training=True,
            shard=self.role.shard,
        ).map(self.to_targets)

    def fit(self, stage):
        """One `Stage`: compile, then fit with resumable backups and the IoU callback; returns the
        IoU callback. `config.pipeline.batch_size` is the global batch."""
        config, workdir, schedule = self.config, self.workdir, stage.epochs
        with self.strategy.scope():
            compile_model(
                stage.train_model,
                config,
                stage.peak_lr,
                schedule.steps_per_epoch,
                schedule.epochs - schedule.initial_epoch,
            )
        validation_set = iou_callback.ValidationSet(
            stage.val_inputs,
            labels=self.val_targets[0],
            boxes=self.val_targets[1],
            class_names=tuple(self.source.class_names),
            preview=self.preview,
        )
        validation = iou_callback.IoUCallback(
            validation_set,
            workdir,
            self.model,
            best_metric=config.best_metric,
            every=config.eval_every,
            stage=stage.name,
            total_epochs=schedule.epochs,
        )
        # The epoch's validation row and best.keras are written before its backup: a kill
        # in between redoes the epoch (its row is replaced), never skips its row.
        validated = [validation]
        if config.ema_momentum > 0:
            validated = [
                weight_average.ValidateWithAverage(),
                validation,
                weight_average.RestoreTrainedWeights(),
            ]
        callbacks = [
            *validated,
            keras.callbacks.TensorBoard(os.path.join(workdir, "tensorboard", stage.name)),
            backups.AtomicBackupAndRestore(backup_dir(workdir, stage.name)),
        ]
        fit_epochs(
            stage.train_model,
            self.strategy,
            stage.dataset_fn,
            config.pipeline.batch_size,
            schedule,
            callbacks,
        )
        return validation


def backup_dir(workdir, stage):
    return os.path.join(workdir, "backup", stage)


def frozen_stage(run):
    """Stage 1: the heads on a frozen backbone (on cached features by default)."""
    config = run.config
    with run.strategy.scope():
        model_lib.freeze_backbone(run.model)
    done, weights = backups.completed_epochs(backup_dir(run.workdir, FROZEN))
    (done,) = cluster.agree(run.strategy, [done])  # the chief's backup decides for every worker
    if done >= config.frozen_epochs:
        # Killed after the stage's last epoch, before its completion marker: its weights are in the
        # backup.
        with run.strategy.scope():
            make_view = (
                model_lib.features_training_view
                if config.cache_features
                else model_lib.training_view
            )
            view = make_view(run.model)
        if run.role.is_chief:
            view.load_weights(weights)
        cluster.share_variables(run.strategy, view.variables)
        logging.info(
            "Stage %s had finished (%d epochs); its weights come from %s.", FROZEN, done, weights
        )
        return
    if not config.cache_features:
        with run.strategy.scope():
            train_model = model_lib.training_view(run.model)
        run.fit(
            Stage(
                FROZEN,
                train_model,
                run.training_images,
                run.val_ds.map(lambda images, _: images),
                config.frozen_lr,
                loop.Epochs(run.steps_per_epoch, config.frozen_epochs),
            )
        )
        return
    backbone = run.model.get_layer("backbone")
    features, labels, boxes = feature_cache.extract_training_features(
        backbone,
        run.source,
        config.data.train_split,
        run.pipeline,
        config.feature_passes,
        shard=run.role.shard,
    )
    val_features, _, _ = feature_cache.extract_features(backbone, run.val_ds, "val")

    def cached_features(batch_size):
        return (
            tf.data.Dataset.from_tensor_slices((features, {LABEL: labels, BOX: boxes}))
            .shuffle(len(labels), seed=config.seed, reshuffle_each_iteration=True)
            .batch(batch_size, drop_remainder=True)
            .map(run.to_targets)
            .prefetch(tf.data.AUTOTUNE)
        )

    val_inputs = tf.data.Dataset.from_tensor_slices(val_features).batch(run.pipeline.batch_size)
    with run.strategy.scope():
        train_model = model_lib.features_training_view(run.model)
    run.fit(
        Stage(
            FROZEN,
            train_model,
            cached_features,
            val_inputs,
            config.frozen_lr,
            loop.Epochs(run.steps_per_epoch * config.feature_passes, config.frozen_epochs),
        )
    )


def fine_tune_stage(run):
    """Stage 2: the top of the backbone unfrozen (BatchNorm frozen), with augmentation."""
    config = run.config
    with run.strategy.scope():
        unfrozen = model_lib.unfreeze_top_of_backbone(run.model, config.fine_tune_fraction)
        logging.info("Fine-tuning the top %d backbone layers (BatchNorm frozen).", unfrozen)
        train_model = model_lib.training_view(run.model)
    run.fit(
        Stage(
            FINE_TUNE,
            train_model,
            run.training_images,
            run.val_ds.map(lambda images, _: images),
            config.fine_tune_lr,
            loop.Epochs(
                steps_per_epoch=run.steps_per_epoch,
                epochs=config.frozen_epochs + config.fine_tune_epochs,
                initial_epoch=config.frozen_epochs,
            ),
        )
    )

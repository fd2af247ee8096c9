"""`Model.fit`'s epoch loop on the public `tf.distribute` API, for training across workers.

Keras 3's `fit` fails under `MultiWorkerMirroredStrategy`
(keras-team/keras#20585: it reduces a data batch across workers to build the
model, then reduces scalar metrics on axis 0). This loop is what `fit` does,
without those two steps, and everything else stays shared with the
single-machine path (`localizer.training.stages`): the compiled model
supplies the loss (`Model.compute_loss`, which already divides by the replica
count), the metrics (`Model.compute_metrics`), the optimizer and its
schedule; the same callbacks run (the IoU callback, TensorBoard, the
resumable backup). The optimizer all-reduces the gradients itself.

Each worker reads its own shard of the data (`dataset_fn(per_replica_batch)`
through `distribute_datasets_from_function`), so a global batch is the
per-replica batch times the replicas and `steps_per_epoch` counts global steps.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from localizer.training import cluster

# What a collective raises when a peer has gone (killed, crashed, refused the run).
_PEER_FAILURES = (
    tf.errors.UnavailableError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
    tf.errors.DeadlineExceededError,
    tf.errors.InternalError,
)


@dataclasses.dataclass(frozen=True)
class Epochs:
    """Which epochs a fit runs, counted as `Model.fit` counts them: `steps_per_epoch` global steps
    each, from `initial_epoch` (the epochs before it are done) up to `epochs` (exclusive)."""

    steps_per_epoch: int
    epochs: int
    initial_epoch: int = 0


def fit_across_workers(
    train_model, strategy, dataset_fn, global_batch_size, schedule, callbacks, verbose
):
    """Trains `train_model` (compiled in `strategy.scope()`) like `Model.fit(...)` would.

    Args:
      train_model: the Keras model to train, compiled in `strategy.scope()`.
      strategy: the `tf.distribute` strategy the model was built in.
      dataset_fn: `per_replica_batch_size -> tf.data.Dataset` of `(inputs, targets)`
        batches of this worker's shard; repeated here.
      global_batch_size: examples per step across all replicas; each replica's batch is
        this divided by `strategy.num_replicas_in_sync`.
      schedule: `Epochs`: the epochs to run and their steps.
      callbacks: Keras callbacks; a backup callback with a `resumed_epoch`
        attribute (`AtomicBackupAndRestore`) decides, on the chief, where to resume.
      verbose: Keras' verbosity for the progress bar (0 silent, 1 bar, 2 a line per epoch).

    Raises:
      cluster.WorkerLostError: a collective failed because another worker stopped.
    """
    if getattr(train_model, "jit_compile", False):
        logging.warning(
            "jit_compile is not applied across workers: the step is a plain tf.function."
        )
    try:
        return _fit(
            train_model, strategy, dataset_fn, global_batch_size, schedule, callbacks, verbose
        )
    except _PEER_FAILURES as error:
        raise cluster.WorkerLostError(
            f"training across workers stopped: another worker is gone ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:300]}); rerun every worker with the same command to "
            "resume after the last completed epoch"
        ) from error


def _fit(train_model, strategy, dataset_fn, global_batch_size, schedule, callbacks, verbose):
    steps_per_epoch, epochs = schedule.steps_per_epoch, schedule.epochs
    distributed = strategy.distribute_datasets_from_function(
        lambda context: dataset_fn(context.get_per_replica_batch_size(global_batch_size)).repeat()
    )
    iterator = iter(distributed)
    _build(train_model, strategy, dataset_fn)
    callback_list = keras.callbacks.CallbackList(
        callbacks,
        add_history=True,
        add_progbar=verbose != 0,
        verbose=verbose,
        epochs=epochs,
        steps=steps_per_epoch,
        model=train_model,
    )
    train_step = _train_step(train_model, strategy)
    train_model.stop_training = False
    callback_list.on_train_begin()
    # The chief restored its backup in on_train_begin; every worker resumes from there.
    resumed = max(
        [schedule.initial_epoch] + [getattr(c, "resumed_epoch", 0) or 0 for c in callbacks]
    )
    initial_epoch = int(cluster.agree(strategy, [resumed])[0])
    cluster.share_variables(strategy, train_model.variables + list(train_model.optimizer.variables))
    logs = {}
    for epoch in range(initial_epoch, epochs):
        train_model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        losses = []
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            step_logs = train_step(iterator)
            losses.append(float(step_logs.pop("loss")))
            logs = {"loss": float(np.mean(losses)), **{k: float(v) for k, v in step_logs.items()}}
            callback_list.on_train_batch_end(step, logs)
        callback_list.on_epoch_end(epoch, dict(logs))
        if train_model.stop_training:
            break
    callback_list.on_train_end(logs)
    return train_model.history


def _build(train_model, strategy, dataset_fn):
    """Creates the optimizer's and the compiled metrics' variables before the step is traced
    (variables cannot be created inside `strategy.run`): one eager pass on a batch of zeros
    shaped like the data, so no training example is consumed.
    """
    spec = dataset_fn(1).element_spec
    x, y = tf.nest.map_structure(lambda s: tf.zeros([1] + s.shape[1:].as_list(), s.dtype), spec)
    with strategy.scope():
        train_model.optimizer.build(train_model.trainable_variables)
        y_pred = train_model(x, training=False)
        train_model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
        train_model.compute_metrics(x, y, y_pred)
    train_model.reset_metrics()


def _train_step(train_model, strategy):
    """One global step: `strategy.run` of the replica step; the loss summed over replicas
    (each is already divided by their count), the metrics averaged over them.
    """

    def replica_step(data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = train_model(x, training=True)
            loss = train_model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
            scaled = train_model.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, train_model.trainable_weights)
        train_model.optimizer.apply_gradients(
            zip(gradients, train_model.trainable_weights, strict=True)
        )
        metrics = train_model.compute_metrics(x, y, y_pred)
        return loss, {k: v for k, v in metrics.items() if k != "loss"}

    @tf.function
    def step(iterator):
        loss, metrics = strategy.run(replica_step, args=(next(iterator),))
        reduced = {
            k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
            for k, v in metrics.items()
        }
        reduced["loss"] = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        return reduced

    return step

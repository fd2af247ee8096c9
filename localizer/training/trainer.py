"""Train a localizer: `train_and_evaluate(config, workdir)`, what `python -m localizer.train` calls.

Two stages, as practitioners do (`localizer.training.stages`): (1) the heads
on a frozen backbone, by default on backbone features computed once (a large
saving on CPU); (2) optionally the top of the backbone unfrozen with a lower
learning rate, BatchNorm kept in inference mode. AdamW with warm-up and
cosine decay. Killed and re-run with the same command, it resumes from the
last completed epoch.

The work dir receives: config.json, metrics.jsonl / metrics.csv (the IoU
callback's full validation picture per epoch), tensorboard/, backup/
(resumable state), best.keras (best by `best_metric`), final.keras and
train_summary.json.

Under MultiWorkerMirroredStrategy every worker runs this with the same
config; only the chief writes the work dir (`localizer.training.cluster`).
"""

import dataclasses
import json
import os
import platform
import resource
import shutil
import time

import keras
import tensorflow as tf
from absl import logging

from localizer import model as model_lib
from localizer import provenance
from localizer.training import backups, cluster, iou_callback, stages
from localizer.training import config as config_lib
from localizer.training import data as data_lib
from localizer.training import history as history_lib
from localizer.training import workdir as workdir_lib
from localizer.training.strategy import make_strategy, set_precision
from localizer.training.workdir import CONFIG_FILE, mark_stage_done, stage_done_marker
from pipelines import files, input_pipeline
from pipelines.errors import UserError
from pipelines.image_header import MAX_IMAGE_PIXELS
from pipelines.sources.source import digest_of_arrays

SUMMARY_FILE = "train_summary.json"
FINAL_MODEL = "final.keras"


RESUME_TODO = (
    "free space there (or choose another --workdir) and run the same command again: a run resumes "
    "after its last completed epoch"
)
"""What to do about a full disk during training (every write is atomic, so nothing half-written is
kept)."""


def train_and_evaluate(
    config, workdir, command=None, overwrite=False, max_image_pixels=MAX_IMAGE_PIXELS
):
    """Trains per `config`, writing everything into `workdir`; returns the summary dict.

    `workdir` is resumed when it holds an interrupted run of the same
    fingerprint (`localizer.training.workdir`), refused when it holds another
    one, unless `overwrite` moves that aside. `command`: the command line that
    asked for it, kept in the summary (and so in run records) beside the code
    version. `max_image_pixels`: images whose header announces more are
    skipped at index time (0: no limit).

    A full disk, whichever writer meets it (work dir files, backups, metrics,
    TensorBoard), raises `files.DiskFullError` naming the file (or else the
    work dir) and saying to free space and resume.
    """
    try:
        return _train_and_evaluate(config, workdir, command, overwrite, max_image_pixels)
    except Exception as error:
        if not files.is_disk_full(error):
            raise
        path = getattr(error, "path", None) or getattr(error, "filename", None) or workdir
        raise files.DiskFullError(path, RESUME_TODO) from error


def _train_and_evaluate(config, workdir, command, overwrite, max_image_pixels):
    config.validate()
    # First: collective ops (multi-worker) must be configured before any other TF op runs.
    strategy = make_strategy(config.strategy)
    role = cluster.role_of(strategy)
    workdir_lib.check_not_inside(
        workdir, config.data.data_dir, config.data.image_dir, config.data.manual_dir
    )
    if role.is_chief:
        workdir_lib.check_workdir(workdir)
    start = time.time()
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    precision = set_precision(config.precision, strategy)
    replicas = strategy.num_replicas_in_sync

    source = data_lib.build_source(config.data, max_image_pixels)
    class_names = source.class_names
    config = config.resolve(class_names, replicas)
    model_config, pipeline = config.model, config.pipeline
    with strategy.scope():
        model = model_lib.build_model(
            model_config
        )  # before the work dir is touched: fails fast on bad weights
    issues = data_lib.index_splits(source, config.data)
    try:  # before the work dir is claimed: a refused run leaves it free for the corrected command
        data_lib.check_usable_splits(source, config.data)
        data_lib.check_enough_for_a_batch(
            source, config.data.train_split, pipeline.batch_size, replicas
        )
    except ValueError:
        if role.is_chief and workdir_lib.is_unclaimed(workdir):
            data_lib.write_issues(workdir, issues)
        raise
    identity = {split: source.identity(split) for split in issues}
    finished = _claim_on_chief(
        strategy,
        role,
        workdir,
        workdir_lib.fingerprint(config_lib.to_dict(config), identity, model),
        overwrite,
    )
    if finished is not None:
        return finished
    setup = RunSetup(config, strategy, role, source, model, precision, issues)
    with cluster.own_workdir(role, workdir) as own:
        summary = _train(setup, own, start, command)
    if not role.is_chief:  # its files are gone with its temporary folder; the chief's are the run's
        summary.update(workdir=os.path.abspath(workdir), role=str(role))
    return summary


def _claim_on_chief(strategy, role, workdir, fingerprint, overwrite):
    """Claims the work dir (on the chief); returns the finished run's summary, or None to train.

    The chief tells the others what it found: train, finished (they stop too)
    or refused (they stop at once instead of waiting for it).
    """
    refused, finished = -1, None
    verdict = 0
    if role.is_chief:
        try:
            resumed = workdir_lib.claim(workdir, fingerprint, overwrite)
        except BaseException:
            cluster.agree(strategy, [refused])
            raise
        finished = _read_json(os.path.join(workdir, SUMMARY_FILE)) if resumed else None
        verdict = 1 if finished is not None else 0
        if resumed:
            logging.info(
                "%s the run in %s (same config, data and model; %s).",
                "Found complete" if finished else "Resuming",
                workdir,
                workdir_lib.code_line(workdir_lib.read_fingerprint(workdir) or {}, fingerprint),
            )
    (verdict,) = cluster.agree(strategy, [verdict])
    if verdict == refused:  # the chief's own error line says why, and what to do
        raise UserError(f"the chief (worker 0) refused the work dir {workdir}; see its error")
    if verdict == 1:
        if role.is_chief:
            shutil.rmtree(os.path.join(workdir, "backup"), ignore_errors=True)
            return finished
        return {"workdir": os.path.abspath(workdir), "role": str(role), "best": None}
    return None


@dataclasses.dataclass(frozen=True)
class RunSetup:
    """A run as set up before training: its resolved config, where it runs, its data (with the
    index's issues) and the model built for it."""

    config: config_lib.TrainConfig
    strategy: tf.distribute.Strategy
    role: cluster.Role
    source: object
    model: keras.Model
    precision: str
    issues: object


def _train(setup, workdir, start, command):
    """Both stages into `workdir` (this process's own: the work dir on the chief)."""
    config, strategy, role, source = setup.config, setup.strategy, setup.role, setup.source
    model, precision, issues = setup.model, setup.precision, setup.issues
    class_names = source.class_names
    replicas = strategy.num_replicas_in_sync
    pipeline = config.pipeline
    data_lib.write_issues(workdir, issues)
    files.write_json_atomically(
        os.path.join(workdir, CONFIG_FILE),
        {
            **config_lib.to_dict(config),
            "class_names": class_names,
            "replicas": replicas,
            "resolved_precision": precision,
            "code": provenance.code_version(),
        },
        indent=2,
        sort_keys=True,
    )
    logging.info(
        "Training on %s (%d classes) with %d replica(s), %s; %s.",
        source.name,
        len(class_names),
        replicas,
        precision,
        role,
    )

    val_ds = input_pipeline.make_dataset(source, config.data.val_split, pipeline, training=False)
    val_targets = data_lib.collect_targets(val_ds)
    run = stages.StageInputs(
        config=config,
        workdir=workdir,
        strategy=strategy,
        source=source,
        pipeline=pipeline,
        model=model,
        val_ds=val_ds,
        val_targets=val_targets,
        steps_per_epoch=max(1, source.num_examples(config.data.train_split) // pipeline.batch_size),
        role=role,
        preview=data_lib.preview_examples(
            val_ds, val_targets[0], iou_callback.PREVIEW_IMAGES, config.seed or 0
        ),
    )
    frozen_marker = stage_done_marker(workdir, stages.FROZEN)
    (frozen_done,) = cluster.agree(strategy, [os.path.exists(frozen_marker)])
    if config.frozen_epochs and frozen_done:
        if role.is_chief:
            model.load_weights(frozen_marker)
        cluster.share_variables(strategy, model.variables)
        logging.info("Stage %s already done; loaded %s.", stages.FROZEN, frozen_marker)
    elif config.frozen_epochs:
        stages.frozen_stage(run)
        mark_stage_done(model, workdir, stages.FROZEN)
    if config.fine_tune_epochs:
        stages.fine_tune_stage(run)
    backups.save_model_atomically(model, os.path.join(workdir, FINAL_MODEL))
    summary = _summary(run, time.time() - start, replicas)
    summary.update(
        {
            "command": command,
            "code": provenance.code_version(),
            "weights_digest": weights_digest(model),
        }
    )
    files.write_json_atomically(
        os.path.join(workdir, SUMMARY_FILE), summary, indent=2, sort_keys=True
    )
    shutil.rmtree(
        os.path.join(workdir, "backup"), ignore_errors=True
    )  # the run is complete: no resume needed
    return summary


def weights_digest(model):
    """A digest of the model's weights, in order: equal on every worker of a run that trained
    together."""
    return digest_of_arrays(
        {f"{i:05d}": keras.ops.convert_to_numpy(w) for i, w in enumerate(model.weights)}
    )


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


def _summary(run, seconds, replicas):
    workdir = os.path.abspath(run.workdir)
    history = history_lib.read_history(workdir)
    metric = run.config.best_metric
    best = max(history, key=lambda r: r.get(metric) or -1) if history else None
    return {
        "workdir": workdir,
        "best_model": os.path.join(workdir, iou_callback.BEST_MODEL),
        "final_model": os.path.join(workdir, FINAL_MODEL),
        "metrics_history": os.path.join(workdir, history_lib.HISTORY_JSONL),
        "train_seconds": round(seconds, 1),
        # ru_maxrss is in KiB on Linux.
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {replicas} replica(s)",
        "best_metric": metric,
        "best_epoch": best["epoch"] if best else None,
        "best": {k: v for k, v in best.items() if k != "train"} if best else None,
        "last": {k: v for k, v in history[-1].items() if k != "train"} if history else None,
        "constant_guess_baseline": data_lib.constant_guess_baseline(
            *run.val_targets, run.source.class_names
        ),
    }

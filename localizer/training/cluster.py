"""Who this process is in a multi-worker run, and what the workers agree on.

Under `tf.distribute.MultiWorkerMirroredStrategy` every worker runs the same
command with its own `TF_CONFIG`. The chief (task type "chief", or worker 0
when the cluster has none) owns the work dir: it claims it, resumes from it
and writes every file. The other workers write to a temporary folder they
remove, so it does not matter whether the work dir is one shared folder or a
folder per machine. What a worker would otherwise read from the work dir
(is the run finished, which stage is done, after which epoch to resume, the
restored weights) it receives from the chief through the strategy's
collectives: `agree` and `share_variables`.

A single process (any other strategy) is `Role()`: the chief of one, and
`agree` / `share_variables` return at once.
"""

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile

import tensorflow as tf

from pipelines.errors import UserError

EXIT_WORKER_LOST = 3
"""The exit code of a command whose peer worker is gone (`WorkerLostError`)."""

TF_CONFIG = "TF_CONFIG"
_TASK_TYPES = ("chief", "worker")  # the tasks that train; "evaluator" and "ps" do not


class TFConfigError(UserError, ValueError):
    """The TF_CONFIG environment variable is not a cluster this command can train in."""


class WorkerLostError(UserError):
    """A worker of a multi-worker run stopped (killed, crashed or refused the run).

    Not a bug of this process: one line, and its own exit code (rerun every worker to resume).
    """

    exit_code = EXIT_WORKER_LOST


@dataclasses.dataclass(frozen=True)
class Role:
    """This process's place among the workers that train together: index 0 is the chief."""

    workers: int = 1
    index: int = 0

    @property
    def is_chief(self):
        return self.index == 0

    @property
    def shard(self):
        """`(count, index)` of this worker's part of the training data; None for one worker."""
        return (self.workers, self.index) if self.workers > 1 else None

    def __str__(self):
        return f"worker {self.index} of {self.workers}" + (" (chief)" if self.is_chief else "")


def parse_tf_config(text):
    """`(cluster {task type: [addresses]}, task type, task index)` of a TF_CONFIG value.

    Raises:
      TFConfigError (a ValueError): one line naming what is wrong, when TF_CONFIG is not the
        JSON that Kubeflow's TFJob, Vertex AI and `localizer.launch` set.
    """
    try:
        value = json.loads(text)
        cluster, task = value["cluster"], value["task"]
        task_type, index = task["type"], int(task["index"])
        if not isinstance(cluster, dict) or not all(isinstance(v, list) for v in cluster.values()):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise TFConfigError(
            f"{TF_CONFIG} is not valid: expected JSON like "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", '
            '"index": 0}}; '
            f"got {text[:200]!r}"
        ) from None
    if task_type not in cluster or not 0 <= index < len(cluster[task_type]):
        raise TFConfigError(
            f"{TF_CONFIG}: task {task_type} {index} is not in its cluster {cluster}"
        )
    return cluster, task_type, index


def training_tasks(environ=None):
    """How many processes train together per TF_CONFIG (chief + workers); 1 when it is not set."""
    text = (os.environ if environ is None else environ).get(TF_CONFIG, "").strip()
    if not text:
        return 1
    cluster, _, _ = parse_tf_config(text)
    return _task_count(cluster)


def _task_count(cluster):
    return sum(len(cluster.get(kind, ())) for kind in _TASK_TYPES)


def role_from_tf_config(text):
    """The `Role` that TF_CONFIG gives this process: the chief first, then the workers in order."""
    return _role(*parse_tf_config(text))


def _role(cluster, task_type, index):
    if task_type not in _TASK_TYPES:
        raise TFConfigError(
            f"{TF_CONFIG}: task type {task_type!r} does not train; this command runs the "
            f"{' and '.join(_TASK_TYPES)} tasks"
        )
    chiefs = len(cluster.get("chief", ()))
    position = index if task_type == "chief" else chiefs + index
    return Role(workers=_task_count(cluster), index=position)


def role_of(strategy):
    """This process's `Role` under `strategy` (`Role()` unless it spans several workers)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return Role()
    resolver = strategy.cluster_resolver
    return _role(resolver.cluster_spec().as_dict(), resolver.task_type, resolver.task_id)


def is_multi_worker(strategy):
    """True for `MultiWorkerMirroredStrategy`, which `localizer.training.loop` trains under instead
    of `fit`."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _spans_workers(strategy):
    return is_multi_worker(strategy) and role_of(strategy).workers > 1


@contextlib.contextmanager
def own_workdir(role, workdir):
    """The folder this process writes: the work dir for the chief, else a temporary one, removed
    after."""
    if role.is_chief:
        yield workdir
        return
    temporary = tempfile.mkdtemp(prefix=f"localizer-worker{role.index}-")
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _from_replica_zero(tensors):
    """In a replica context: every replica gets global replica 0's values (which live on the
    chief)."""
    context = tf.distribute.get_replica_context()
    first = tf.equal(context.replica_id_in_sync_group, 0)
    tensors = [tf.convert_to_tensor(t) for t in tensors]
    result = [None] * len(tensors)
    for dtype in {
        t.dtype for t in tensors
    }:  # one all-reduce per dtype: a traced one packs its tensors
        positions = [i for i, t in enumerate(tensors) if t.dtype == dtype]
        reduced = context.all_reduce(
            tf.distribute.ReduceOp.SUM,
            [tf.where(first, tensors[i], tf.zeros_like(tensors[i])) for i in positions],
        )
        for i, value in zip(positions, reduced, strict=True):
            result[i] = value
    return result


_BROADCASTS = {}


def _broadcast_function(strategy):
    """`tensors -> global replica 0's tensors`, traced once per strategy and input signature
    (eager collectives are slow, and each new trace logs its all-reduces).
    """
    if id(strategy) not in _BROADCASTS:
        _BROADCASTS[id(strategy)] = tf.function(
            lambda tensors: strategy.run(_from_replica_zero, args=(tensors,)), autograph=False
        )
    return _BROADCASTS[id(strategy)]


def agree(strategy, values):
    """The chief's `values` (a list of numbers), on every worker.

    A worker that gets -1 for a value the chief uses as "failed" can stop
    at once instead of waiting for a collective that never comes.
    """
    if not _spans_workers(strategy):
        return list(values)
    result = _broadcast_function(strategy)([tf.constant(float(v), tf.float64) for v in values])
    return [float(strategy.experimental_local_results(r)[0].numpy()) for r in result]


def share_variables(strategy, variables):
    """Sets `variables` (Keras variables) to the chief's values on every worker.

    For weights the chief restored from the work dir (a backup, a finished
    stage), which the other workers cannot read.
    """
    if not _spans_workers(strategy) or not variables:
        return
    values = _broadcast_function(strategy)([v.value for v in variables])
    for variable, value in zip(variables, values, strict=True):
        variable.assign(strategy.experimental_local_results(value)[0])

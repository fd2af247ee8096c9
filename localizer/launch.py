"""Try multi-worker training on one machine: N `localizer.train` processes, one cluster.

    python -m localizer.launch --workers=2 -- --experiment=quickstart --workdir=work/two-workers

Everything after `--` goes to every worker (`python -m localizer.train
--helpshort`), with `{worker}` replaced by the worker's index (e.g.
`--workdir=work/run-{worker}`: a work dir per worker, as on machines without
a shared filesystem). Each worker gets a free port on 127.0.0.1
and its own `TF_CONFIG`, which makes the train command's default strategy
MultiWorkerMirroredStrategy; worker 0 is the chief and the only one that
writes the work dir. Output lines are prefixed with `[worker i]`. When a
worker fails, the others get `--grace_seconds` to stop on their own (they
do, once their next collective finds the peer gone), then are stopped. The
exit code is the worst worker's. On a real cluster the launcher is
Kubernetes (TFJob), Vertex AI or Slurm setting `TF_CONFIG`: see the README.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from absl import flags

from pipelines import cli

FLAGS = flags.FLAGS


def free_ports(count, host="127.0.0.1"):
    """`count` ports free on `host` now (bound together, so distinct, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(addresses):
    """One TF_CONFIG value per worker of a cluster of `addresses` ("host:port"); worker 0 is the
    chief."""
    cluster = {"worker": list(addresses)}
    return [
        json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        for i in range(len(addresses))
    ]


def worker_args(args, index):
    """The train arguments of worker `index`: `{worker}` replaced by its index."""
    return [arg.replace("{worker}", str(index)) for arg in args]


def worst_exit_code(codes):
    """0 when every worker succeeded; else the largest failure (a signal -N counts as 128 + N)."""
    failures = [128 - code if code < 0 else code for code in codes if code != 0]
    return max(failures, default=0)


def _relay(stream, prefix, lock):
    for line in iter(stream.readline, ""):
        with lock:
            sys.stdout.write(f"{prefix}{line}")
            sys.stdout.flush()
    stream.close()


class _Stopped(Exception):
    """The launcher got SIGTERM or SIGHUP: its workers must stop with it."""


def _raise_stopped(signum, frame):
    raise _Stopped(signum)


def launch(train_args, workers, threads_per_worker, grace_seconds, host="127.0.0.1"):
    """Runs the workers to the end; returns their exit codes in worker order.

    Ctrl-C, SIGTERM or SIGHUP to the launcher stops every worker (each runs in
    its own session, so a terminal's signal reaches the launcher alone).
    """
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_stopped)
    addresses = [f"{host}:{port}" for port in free_ports(workers, host)]
    lock = threading.Lock()
    processes, relays = [], []
    try:
        _start(processes, relays, train_args, addresses, threads_per_worker, lock)
        _wait(processes, grace_seconds)
    except (KeyboardInterrupt, _Stopped):
        print("[launch] interrupted; stopping the workers", flush=True)
        _stop(processes)
    for relay in relays:
        relay.join(timeout=10)
    return [p.returncode for p in processes]


def _start(processes, relays, train_args, addresses, threads_per_worker, lock):
    """Starts one `localizer.train` per address, appending each as it starts (so a signal stops
    those)."""
    for index, tf_config in enumerate(tf_configs(addresses)):
        env = {**os.environ, "TF_CONFIG": tf_config, "PYTHONUNBUFFERED": "1"}
        if threads_per_worker:
            env.setdefault("TF_NUM_INTRAOP_THREADS", str(threads_per_worker))
            env.setdefault("TF_NUM_INTEROP_THREADS", str(threads_per_worker))
        process = subprocess.Popen(
            [sys.executable, "-m", "localizer.train", *worker_args(train_args, index)],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append(process)
        relay = threading.Thread(
            target=_relay, args=(process.stdout, f"[worker {index}] ", lock), daemon=True
        )
        relay.start()
        relays.append(relay)


def _wait(processes, grace_seconds):
    """Waits for all; once one has failed, the rest get `grace_seconds` before they are stopped."""
    failed_at = None
    while any(p.poll() is None for p in processes):
        if failed_at is None and any(p.returncode not in (None, 0) for p in processes):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > grace_seconds:
            print(
                f"[launch] a worker failed {grace_seconds} s ago; stopping the others", flush=True
            )
            _stop(processes)
            return
        time.sleep(0.2)


def _stop(processes):
    """SIGTERM to every running worker's process group, SIGKILL to those still there 10 s later."""
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()


def _signal_group(process, signum):
    if process.poll() is None:
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:  # it ended in between
            pass


def main(argv):
    cli.require_positive(FLAGS.workers, "workers")
    if FLAGS.threads_per_worker is not None and FLAGS.threads_per_worker < 0:
        raise cli.UserError(
            f"--threads_per_worker={FLAGS.threads_per_worker} must be 0 (TF decides) or more"
        )
    if os.environ.get("TF_CONFIG"):
        raise cli.UserError(
            "TF_CONFIG is set already: this launcher sets it per worker; unset it, or run "
            "python -m localizer.train directly on each machine of your cluster"
        )
    threads = FLAGS.threads_per_worker
    if threads is None:  # share the cores: no worker's thread pool competes with another's
        threads = max(1, (os.cpu_count() or 1) // FLAGS.workers)
    codes = launch(argv[1:], FLAGS.workers, threads, FLAGS.grace_seconds)
    worst = worst_exit_code(codes)
    summary = ", ".join(f"worker {i}: {code}" for i, code in enumerate(codes))
    print(f"[launch] exit codes: {summary}", flush=True)
    sys.exit(worst)


def define_flags():
    flags.DEFINE_integer("workers", 2, "How many worker processes (worker 0 is the chief).")
    flags.DEFINE_integer(
        "threads_per_worker",
        None,
        "TF intra-/inter-op threads per worker (default: CPU cores / workers; 0: TF's default).",
    )
    flags.DEFINE_integer(
        "grace_seconds", 120, "After a worker fails, how long the others may take to stop."
    )


if __name__ == "__main__":
    cli.run(main, define_flags)

"""Training throughput across workers: one process against two workers on this machine.

    python -m experiments.bench_distributed [--steps=20] [--warmup=4]
    [--backbone=efficientnet_lite0]

Times the fine-tuning stage's train step (the default model, top of the
backbone unfrozen, synthetic images through the real input pipeline,
augmentation on) in three set-ups, each in fresh processes:

  one_process_1_thread   one process, one intra-op thread, batch B
  one_process_all_cores  one process, every core, batch B
  two_workers_1_thread   two workers on 127.0.0.1 (MultiWorkerMirroredStrategy,
                         the multi-worker loop), one thread each, batch B per
                         worker: global batch 2B

Each process trains `warmup + steps` steps through the same path as
`localizer.train` (`stages.fit_epochs`); a callback stamps every step's end and
the median of the timed steps' durations is the step time. Scaling efficiency
= two workers' images/s / (2 x one process's images/s at one thread). Results go
to experiments/results/bench_distributed.json; the table is in RESULTS.md.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "bench_distributed.json")
REPO_ROOT = os.path.dirname(HERE)
_RESULT_PREFIX = "BENCH_RESULT "


def _step_times(args):
    """In a child process: trains and returns the timed steps' durations (seconds)."""
    import dataclasses

    import keras

    from localizer import model as model_lib
    from localizer.training import cluster, loop, objective, stages
    from localizer.training import config as config_lib
    from localizer.training.strategy import make_strategy
    from pipelines import input_pipeline
    from pipelines.sources.synthetic import SyntheticSource

    strategy = make_strategy("auto")  # multi-worker when TF_CONFIG names two workers
    role = cluster.role_of(strategy)
    source = SyntheticSource(sizes={"train": 256})
    config = config_lib.apply_overrides(
        config_lib.default_config(),
        [
            f"model.backbone={args['backbone']}",
            f"model.weights={args['weights']}",
            f"pipeline.batch_size={args['batch_size']}",
        ],
    ).resolve(source.class_names, strategy.num_replicas_in_sync)
    with strategy.scope():
        model = model_lib.build_model(config.model)
        model_lib.unfreeze_top_of_backbone(model, config.fine_tune_fraction)
        view = model_lib.training_view(model)
        objective.compile_model(view, config, config.fine_tune_lr, 100, 1)
    to_targets = objective.training_targets(config.model)

    def dataset_fn(batch_size):
        pipeline = dataclasses.replace(config.pipeline, batch_size=batch_size)
        return input_pipeline.make_dataset(
            source, "train", pipeline, training=True, shard=role.shard
        ).map(to_targets)

    class StepClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    clock = StepClock()
    steps = args["warmup"] + args["steps"]
    stages.fit_epochs(
        view,
        strategy,
        dataset_fn,
        config.pipeline.batch_size,
        loop.Epochs(steps_per_epoch=steps, epochs=1),
        [clock],
        verbose=0,
    )
    durations = [
        b - a
        for a, b in zip(
            clock.ends[args["warmup"] - 1 :], clock.ends[args["warmup"] :], strict=False
        )
    ]
    return {
        "role": str(role),
        "global_batch": config.pipeline.batch_size,
        "step_seconds": durations,
    }


def _run_setup(name, workers, threads, args):
    """Runs one set-up's processes to the end; returns the chief's measurement."""
    from localizer import launch

    addresses = [f"127.0.0.1:{port}" for port in launch.free_ports(workers)] if workers > 1 else []
    processes = []
    for index in range(workers):
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "TF_NUM_INTEROP_THREADS": str(threads or 0),
        }
        env.pop("TF_CONFIG", None)
        if threads:
            env["TF_NUM_INTRAOP_THREADS"] = str(threads)
        if workers > 1:
            env["TF_CONFIG"] = launch.tf_configs(addresses)[index]
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "experiments.bench_distributed",
                    f"--child={json.dumps(args)}",
                ],
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=3600) for p in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            raise RuntimeError(f"{name}: a process failed ({process.returncode}):\n{err[-3000:]}")
    results = [
        json.loads(line[len(_RESULT_PREFIX) :])
        for out, _ in outputs
        for line in out.splitlines()
        if line.startswith(_RESULT_PREFIX)
    ]
    chief = results[0]
    step = statistics.median(chief["step_seconds"])
    return {
        "processes": workers,
        "intra_op_threads": threads or "TF default (all cores)",
        "global_batch": chief["global_batch"],
        "median_step_seconds": round(step, 4),
        "steps_per_s": round(1 / step, 3),
        "images_per_s": round(chief["global_batch"] / step, 2),
        "step_seconds_runs": [round(s, 4) for s in chief["step_seconds"]],
    }


def main(argv):
    del argv
    args = {
        "backbone": FLAGS.backbone,
        "weights": FLAGS.weights,
        "batch_size": FLAGS.batch_size,
        "steps": FLAGS.steps,
        "warmup": FLAGS.warmup,
    }
    if FLAGS.child:
        print(_RESULT_PREFIX + json.dumps(_step_times(json.loads(FLAGS.child))), flush=True)
        return
    from localizer import provenance

    setups = {
        "one_process_1_thread": (1, 1),
        "one_process_all_cores": (1, 0),
        "two_workers_1_thread": (2, 1),
    }
    measured = {}
    for name, (workers, threads) in setups.items():
        measured[name] = _run_setup(name, workers, threads, args)
        print(name, json.dumps(measured[name]), flush=True)
    single = measured["one_process_1_thread"]["images_per_s"]
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "command": "python -m experiments.bench_distributed",
        "code": provenance.code_version(),
        "model": f"{FLAGS.backbone} (weights {FLAGS.weights}), default fine-tuning stage, batch "
        f"{FLAGS.batch_size} per process, synthetic images through the input pipeline; "
        f"{FLAGS.steps} timed steps after {FLAGS.warmup}",
        "setups": measured,
        "scaling_efficiency": round(
            measured["two_workers_1_thread"]["images_per_s"] / (2 * single), 3
        ),
        "speedup_over_one_process_all_cores": round(
            measured["two_workers_1_thread"]["images_per_s"]
            / measured["one_process_all_cores"]["images_per_s"],
            3,
        ),
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    flags.DEFINE_string("backbone", "efficientnet_lite0", "Backbone.")
    flags.DEFINE_string("weights", "none", "Backbone weights (throughput does not depend on them).")
    flags.DEFINE_integer("batch_size", 16, "Per-process (per-replica) batch size.")
    flags.DEFINE_integer("steps", 20, "Timed train steps.")
    flags.DEFINE_integer("warmup", 4, "Untimed steps first (tracing, the pipeline filling).")
    flags.DEFINE_string(
        "child", "", "Internal: run one measuring process with these JSON arguments."
    )
    app.run(main)

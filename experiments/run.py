"""Runs named experiments one after another, records each, regenerates RESULTS.md.

    python -m experiments.run frozen_fc_head frozen_per_class   # named ones
    python -m experiments.run --all                             # every experiment not yet
    reproduced
    python -m experiments.run --rerun realmix_default           # even if already run

Each experiment trains in its own process (`python -m localizer.train
--experiment=NAME --workdir=work/NAME`), so its peak-memory figure is its own.
An experiment whose work dir already holds a train_summary.json is only
recorded again, not retrained, unless --rerun is given (which deletes the old
work dir first: training would otherwise resume from its backups). `--all`
takes every experiment whose record is missing, names no commit, or no longer
matches today's config; it can be stopped and started again, in pieces. A
failed run is reported and the next one still runs; the exit code says
whether any failed.
"""

import glob
import os
import shutil
import subprocess
import sys

from experiments import results

WORK_ROOT = "work"
NOT_EXPERIMENTS = {"__init__", "common", "results", "run", "tta_effect", "real_model_check"}
"""Modules of experiments/ that are not experiments (benchmarks start with bench_)."""


def experiment_names():
    """Every experiments/<name>.py with a get_config()."""
    return sorted(
        name
        for name in (
            os.path.splitext(os.path.basename(p))[0]
            for p in glob.glob(os.path.join(results.HERE, "*.py"))
        )
        if name not in NOT_EXPERIMENTS and not name.startswith("bench_")
    )


def needs_run(name, runs):
    """True when `name` has no record, a record without a commit, or one today's config does not
    reproduce."""
    run = runs.get(name)
    return (
        run is None
        or not (run.get("code") or {}).get("commit")
        or bool(results.config_mismatches(run))
    )


def run_experiment(name, rerun=False):
    """Trains `name` (unless already done) and records it; returns True on success."""
    workdir = os.path.join(WORK_ROOT, name)
    summary = os.path.join(workdir, "train_summary.json")
    if rerun and os.path.exists(workdir):
        shutil.rmtree(workdir)  # a fresh run: train.py would otherwise resume the old one
    if rerun or not os.path.exists(summary):
        command = [
            sys.executable,
            "-m",
            "localizer.train",
            f"--experiment={name}",
            f"--workdir={workdir}",
        ]
        print("$", " ".join(command), flush=True)
        if subprocess.call(command) != 0:
            print(f"experiment {name} failed; see the output above.", file=sys.stderr)
            return False
    print(results.record(workdir, name), flush=True)
    return True


def main(argv):
    names = [a for a in argv[1:] if not a.startswith("--")]
    rerun = "--rerun" in argv
    if "--all" in argv:
        runs = results.read_runs()
        names = [name for name in experiment_names() if needs_run(name, runs)]
        print("to run:", " ".join(names) or "nothing", flush=True)
    elif not names:
        print(__doc__)
        return 2
    failed = [name for name in names if not run_experiment(name, rerun)]
    print(results.write_results())
    if failed:
        print("failed:", " ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Runs named experiments one after another, records each, regenerates RESULTS.md.

    python -m experiments.run frozen_fc_head frozen_per_class   # named ones
    python -m experiments.run --all                             # every experiment not yet recorded
    python -m experiments.run --rerun realmix_default           # even if already run

Names are `experiments.names`': a file's own (`quickstart`) or a sweep variant's
(`frozen_alpha_025` = `experiments/frozen.py:alpha_025`). Each experiment trains
in its own process (`python -m localizer.train --config=experiments/frozen.py:alpha_025
--workdir=work/frozen_alpha_025`), so its peak-memory figure is its own. An
experiment whose work dir already holds a train_summary.json is only recorded
again, not retrained, unless --rerun is given (which deletes the old work dir
first: training would otherwise resume from its backups). `--all` takes every
experiment without a record (or whose record names no commit); it can be
stopped and started again, in pieces. A record is never compared with today's
config: to see what a changed default does, rerun with --rerun. A failed run
is reported and the next one still runs; the exit code says whether any failed.
"""

import os
import shutil
import subprocess
import sys

from experiments import names, records, results

WORK_ROOT = "work"


def experiment_names():
    """Every named experiment (`experiments.names`: files and sweep variants)."""
    return sorted(names.experiments())


def needs_run(name, runs):
    """True when `name` has no record yet, or one that names no commit."""
    run = runs.get(name)
    return run is None or not run.get("commit")


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
            f"--config={names.spec(name)}",
            f"--workdir={workdir}",
        ]
        print("$", " ".join(command), flush=True)
        if subprocess.call(command) != 0:
            print(f"experiment {name} failed; see the output above.", file=sys.stderr)
            return False
    print(records.record(workdir, name, names.spec(name), names.describe(name)), flush=True)
    return True


def main(argv):
    names = [a for a in argv[1:] if not a.startswith("--")]
    rerun = "--rerun" in argv
    if "--all" in argv:
        runs = records.read_runs()
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

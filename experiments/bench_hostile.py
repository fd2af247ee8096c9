"""Peak memory on hostile inputs: decompression bombs.

    python -m experiments.bench_hostile

Each case runs in its own process; its peak resident memory (getrusage of the
child) is recorded with its exit code and output, in
experiments/results/bench_hostile.json (and RESULTS.md). The image bombs are
real (the PNG inflates to all the pixels it announces) and each is followed by
a good image in the same `predict` call, which must still get its line.
(Records before the `.pth` reader shrank also hold a zip-bomb `.pth` case: now
no user `.pth` is read, and the packaged one only once its SHA-256 matches.)
"""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results", "bench_hostile.json")

_MEASURE = """
import resource, subprocess, sys
result = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(result.returncode)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.stdout.write(result.stdout[-4000:] + "\\n---\\n" + result.stderr[-4000:])
"""


def measure(command):
    """`(exit code, peak RSS in MB, output)` of `command` run in a fresh child process."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=900,
    ).stdout
    code, rss, rest = out.split("\n", 2)
    return int(code), round(int(rss) / 1024), rest


def main():
    sys.path.insert(0, REPO_ROOT)
    from localizer import model as model_lib
    from tests import fixtures

    cases = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "tiny.keras")
        model_lib.build_model(
            model_lib.ModelConfig(
                num_classes=3,
                class_names=fixtures.CLASSES,
                backbone="tiny",
                weights="none",
                image_size=32,
            )
        ).save(model)
        good = os.path.join(tmp, "zz_good.png")
        fixtures.write_image(good, fixtures.make_image(60, 80, [("cat", (10, 10, 50, 40))]))
        bombs = {
            "png (20000x20000 RGBA, inflates to 1.6 GB)": (
                "bomb.png",
                fixtures.png_bomb(real=True),
            ),
            "gif (65535x65535)": ("bomb.gif", fixtures.gif_bomb()),
            "webp (16383x16383)": ("bomb.webp", fixtures.webp_bomb()),
        }
        for name, (filename, data) in bombs.items():
            path = os.path.join(tmp, filename)
            with open(path, "wb") as f:
                f.write(data)
            code, rss, output = measure(
                [
                    sys.executable,
                    "-m",
                    "localizer.predict",
                    f"--model={model}",
                    "--norefine",
                    path,
                    good,
                ]
            )
            lines = [
                json.loads(line)
                for line in output.split("\n---\n")[0].splitlines()
                if line.startswith("{")
            ]
            cases[name] = {
                "file_bytes": len(data),
                "exit_code": code,
                "peak_rss_mb": rss,
                "bomb_line": next(
                    (line.get("error") for line in lines if line["file"] == path), None
                ),
                "good_file_predicted": any(
                    line["file"] == good and "class" in line for line in lines
                ),
            }
    summary = {
        "command": "python -m experiments.bench_hostile",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "cases": cases,
    }
    from localizer import provenance

    summary["code"] = provenance.code_version()
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(summary, f, indent=2)
    for name, case in cases.items():
        print(
            f"{name}: peak {case['peak_rss_mb']} MB, exit {case['exit_code']}, good file: "
            f"{case['good_file_predicted']}, {case['bomb_line']}"
        )
    print(f"Wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

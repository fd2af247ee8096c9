"""Peak memory on hostile inputs: decompression bombs and a zip-bomb `.pth`.

    python -m experiments.bench_hostile

Each case runs in its own process; its peak resident memory (getrusage of the
child) is recorded with its exit code and output, in
experiments/results/bench_hostile.json (and RESULTS.md). The image bombs are
real (the PNG inflates to all the pixels it announces) and each is followed by
a good image in the same `predict` call, which must still get its line.
"""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile

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


def pth_bomb(path, floats=400_000_000):
    """A zip .pth whose one tensor declares `floats` float32 values, deflated to a small file."""
    sys.path.insert(0, REPO_ROOT)
    from tests.test_efficientnet_lite import _state_dict_pickle

    class Declared:
        dtype = __import__("numpy").dtype("f4")
        size = floats

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr(
            "archive/data.pkl",
            _state_dict_pickle(
                {"w": ("0", 0, (floats,), (1,), False)}, {"0": Declared}, legacy=False
            ),
        )
        zf.writestr("archive/byteorder", "little")
        with zf.open("archive/data/0", "w", force_zip64=True) as member:
            chunk = b"\0" * (1 << 24)
            for _ in range(floats * 4 // len(chunk)):
                member.write(chunk)
    return path


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
        pth = pth_bomb(os.path.join(tmp, "bomb.pth"))
        code, rss, output = measure(
            [
                sys.executable,
                "-c",
                (
                    "import sys\nfrom localizer.model.torch_weights import load_state_dict\n"
                    "try:\n    load_state_dict(sys.argv[1])\nexcept ValueError as e:\n    print('error:', e)\n"
                ),
                pth,
            ]
        )
        cases[".pth zip bomb (declares 400M floats = 1.6 GB)"] = {
            "file_bytes": os.path.getsize(pth),
            "exit_code": code,
            "peak_rss_mb": rss,
            "bomb_line": next(
                (line for line in output.splitlines() if line.startswith("error:")), None
            ),
            "good_file_predicted": None,
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

"""Known label errors, made on purpose: how many does `localizer.audit` find?

`inject` writes a copy of a Pascal VOC folder (photos hard-linked, not
copied, where the file system allows) in which a fraction of one split's
labels is made wrong, a third of them each way:

- `wrong_class`: the class swapped for another one, the box kept;
- `box_elsewhere`: the box moved, same size, to where it overlaps the
  original by at most `ELSEWHERE_MAX_IOU`;
- `box_grown`: the box grown around the object to most of the photo (at
  least `GROWN_MIN_AREA` of it), which leaves the original an IoU under 0.5
  (so the error matters by the localization metric).

An example only gets a box error its box allows (a box already covering most
of the photo cannot be grown by much), so the kinds keep their shares.
`recall_at` then reads `suspects.csv` against the list of what was made wrong.

    python -m experiments.label_noise --data_dir=../shared/data/realmix --seed=0 \
        --out=/tmp/realmix_noisy --report_dir=/tmp/audit_noisy

runs the whole benchmark: inject, audit (`localizer.audit` on the copy),
recall by kind within the first 10% of the suspects; figures to
experiments/results/label_audit.json (`--record`, one entry per seed).
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import numpy as np
from absl import app, flags

from experiments import common
from localizer.curation.audit_report import SUSPECTS_FILE
from pipelines import boxes as box_lib
from pipelines.sources import voc_dir

KINDS = ("wrong_class", "box_elsewhere", "box_grown")
ELSEWHERE_MAX_IOU = 0.1
GROWN_MIN_AREA = 0.7
INJECTED_FILE = "injected.json"
RECORD_FILE = "label_audit.json"
"""The list of what was made wrong, written beside the copy (not inside it)."""


def _read_box(obj):
    box = obj.find("bndbox")
    return [float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]


def _write_box(obj, xyxy):
    box = obj.find("bndbox")
    for key, value in zip(("xmin", "ymin", "xmax", "ymax"), xyxy, strict=True):
        box.find(key).text = str(int(round(value)))


def _size(root, image_path):
    from PIL import Image, ImageOps

    with Image.open(image_path) as image:
        return ImageOps.exif_transpose(image).size  # (width, height): the frame boxes are in


def moved_box(xyxy, width, height, rng, tries=200):
    """The box moved, same size, to where it overlaps the original by at most ELSEWHERE_MAX_IOU;
    None when the photo has no such place."""
    xmin, ymin, xmax, ymax = xyxy
    w, h = xmax - xmin, ymax - ymin
    for _ in range(tries):
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        moved = [x, y, x + w, y + h]
        if _iou(moved, xyxy) <= ELSEWHERE_MAX_IOU:
            return moved
    return None


def grown_box(xyxy, width, height, rng):
    """The box grown, around itself, to most of the photo; None when that would leave the original
    an IoU of 0.5 or more with it (the box already covers most of the photo)."""
    xmin, ymin, xmax, ymax = xyxy
    side = np.sqrt(rng.uniform(GROWN_MIN_AREA, 0.95))  # of each axis
    new_w, new_h = max(side * width, xmax - xmin), max(side * height, ymax - ymin)
    x = np.clip(rng.uniform(xmax - new_w, xmin), 0, width - new_w)
    y = np.clip(rng.uniform(ymax - new_h, ymin), 0, height - new_h)
    grown = [x, y, x + new_w, y + new_h]
    return grown if _iou(grown, xyxy) < 0.5 else None


def _iou(a, b):
    def yxyx(box):
        return np.array([box[1], box[0], box[3], box[2]], np.float32)

    return float(box_lib.iou(yxyx(a), yxyx(b)))


def inject(data_dir, out_dir, split="train", fraction=0.05, seed=0):
    """Writes the corrupted copy of the VOC folder `data_dir` to `out_dir`; returns the list of
    `{"id", "kind", "given", "true"}` made wrong (also written to `<out_dir>.injected.json`)."""
    if os.path.exists(out_dir):
        raise FileExistsError(f"{out_dir} exists; choose a new folder")
    source = voc_dir.VocDirSource(data_dir)
    class_names = source.class_names
    ids = source.split_ids(split)
    rng = np.random.default_rng(seed)
    count = int(round(fraction * len(ids)))
    per_kind = {
        kind: count // len(KINDS) + (i < count % len(KINDS)) for i, kind in enumerate(KINDS)
    }
    os.makedirs(os.path.join(out_dir, "Annotations"))
    _link_tree(os.path.join(data_dir, "JPEGImages"), os.path.join(out_dir, "JPEGImages"))
    shutil.copytree(os.path.join(data_dir, "ImageSets"), os.path.join(out_dir, "ImageSets"))
    if os.path.isfile(os.path.join(data_dir, "labels.txt")):
        shutil.copy(os.path.join(data_dir, "labels.txt"), out_dir)
    trees = {}
    for name in os.listdir(os.path.join(data_dir, "Annotations")):
        trees[os.path.splitext(name)[0]] = ET.parse(os.path.join(data_dir, "Annotations", name))
    injected = []
    order = list(rng.permutation(ids))
    for kind in KINDS:
        made = 0
        while made < per_kind[kind] and order:
            example_id = order.pop()
            root = trees[example_id].getroot()
            objects = root.findall("object")
            if len(objects) != 1:
                continue
            obj = objects[0]
            given = _read_box(obj)
            name = obj.findtext("name")
            if kind == "wrong_class":
                others = [c for c in class_names if c != name]
                obj.find("name").text = str(rng.choice(others))
                change = {"given_class": obj.findtext("name"), "true_class": name}
            else:
                image = os.path.join(data_dir, "JPEGImages", root.findtext("filename"))
                width, height = _size(root, image)
                new = (moved_box if kind == "box_elsewhere" else grown_box)(
                    given, width, height, rng
                )
                if new is None:
                    continue
                _write_box(obj, new)
                change = {"given_box": _read_box(obj), "true_box": given}
            injected.append({"id": example_id, "kind": kind, **change})
            made += 1
    for example_id, tree in trees.items():
        tree.write(os.path.join(out_dir, "Annotations", f"{example_id}.xml"))
    with open(f"{out_dir.rstrip(os.sep)}.{INJECTED_FILE}", "w") as f:
        json.dump(injected, f, indent=1)
    return injected


def _link_tree(source, target):
    os.makedirs(target)
    for name in os.listdir(source):
        try:
            os.link(os.path.join(source, name), os.path.join(target, name))
        except OSError:  # another file system
            shutil.copy2(os.path.join(source, name), os.path.join(target, name))


def recall_at(suspects_csv, injected, fraction=0.1):
    """`{kind: found / injected}` within the first `fraction` of the suspects' rows, plus "all"."""
    with open(suspects_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    top = {row["id"] for row in rows[: int(round(fraction * len(rows)))]}
    recall = {}
    for kind in (*KINDS, "all"):
        members = [e for e in injected if kind in ("all", e["kind"])]
        if members:
            recall[kind] = sum(e["id"] in top for e in members) / len(members)
    return recall


FLAGS = flags.FLAGS


def main(argv):
    del argv
    facts = common.benchmark_facts(  # the code as the run starts
        "python -m experiments.label_noise --data_dir=../shared/data/realmix "
        f"--seed={FLAGS.seed} --fraction={FLAGS.fraction} --folds={FLAGS.folds} "
        "--out=NEW_FOLDER --report_dir=NEW_FOLDER --record"
    )
    injected = inject(FLAGS.data_dir, FLAGS.out, FLAGS.split, FLAGS.fraction, FLAGS.seed)
    command = [
        sys.executable,
        "-m",
        "localizer.audit",  # the command, as a user runs it
        "--dataset=voc_dir",
        f"--data_dir={FLAGS.out}",
        f"--split={FLAGS.split}",
        f"--report_dir={FLAGS.report_dir}",
        f"--folds={FLAGS.folds}",
    ]
    start = time.time()
    subprocess.run(command, check=True, cwd=common.REPO_ROOT)
    seconds = time.time() - start
    recall = recall_at(os.path.join(FLAGS.report_dir, SUSPECTS_FILE), injected)
    result = {
        "seed": FLAGS.seed,
        "fraction": FLAGS.fraction,
        "examples": len(voc_dir.VocDirSource(FLAGS.out).split_ids(FLAGS.split)),
        "injected": {kind: sum(e["kind"] == kind for e in injected) for kind in KINDS},
        "recall_at_10_percent": recall,
        "seconds": round(seconds, 1),
        "folds": FLAGS.folds,
    }
    print(json.dumps(result, indent=1))
    if FLAGS.record:
        path = os.path.join(common.REPO_ROOT, "experiments", "results", RECORD_FILE)
        recorded = json.load(open(path)) if os.path.exists(path) else {"runs": {}}
        recorded["runs"][f"seed {FLAGS.seed}"] = {
            **facts,
            **result,
        }
        common.write_benchmark(path, recorded)


if __name__ == "__main__":
    flags.DEFINE_string("data_dir", None, "A Pascal VOC folder (realmix).", required=True)
    flags.DEFINE_string("out", None, "Where the corrupted copy goes (a new folder).", required=True)
    flags.DEFINE_string("report_dir", None, "Where the audit writes.", required=True)
    flags.DEFINE_string("split", "train", "The split made wrong and audited.")
    flags.DEFINE_float("fraction", 0.05, "The share of the split made wrong.")
    flags.DEFINE_integer("seed", 0, "Which examples, and how.")
    flags.DEFINE_integer("folds", 5, "The audit's folds.")
    flags.DEFINE_boolean("record", False, "Add the figures to experiments/results/.")
    app.run(main)

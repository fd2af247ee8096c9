"""What the audit writes: suspects.csv, report.html with thumbnails, and the corrections.

suspects.csv      every example, most suspect first (`COLUMNS`); boxes in pixels xyxy of
                  the upright photo (the frame labelling tools show)
report.html       the first `REPORT_ROWS` rows, each with the photo, the given box (red) and
                  the suggested one (green, dashed), and the evidence
thumbnails/       the report's pictures
corrections/      the suggested labels of the suspects in the dataset's own format
                  (`CORRECTION_FORMATS`; `pipelines.sources.writers`), to review and copy in
audit.json        the figures of the run (split, folds, counts by kind, time): also the mark
                  that the folder is the audit's, whose files a new run may replace
"""

import csv
import html
import io
import json
import os
import re
import sys

import numpy as np
from PIL import Image, ImageDraw

from localizer.curation import suspects as suspects_lib
from pipelines import boxes as box_lib
from pipelines import files
from pipelines.sources import writers

SUSPECTS_FILE = "suspects.csv"
REPORT_FILE = "report.html"
SUMMARY_FILE = "audit.json"
THUMBNAILS = "thumbnails"
CORRECTIONS = "corrections"
REPORT_ROWS = 50
THUMBNAIL_SIDE = 320
MIN_THUMBNAIL_SIDE = 160

CORRECTION_FORMATS = {"voc_dir": "voc", "coco": "coco", "yolo": "yolo"}
"""The writer format of each dataset kind whose own format can be written; a CSV dataset gets a
COCO file, which every labelling tool imports (datasets without files, generated or TFDS, get
none)."""

COLUMNS = (
    "rank",
    "id",
    "kind",
    "score",
    "given_class",
    "given_xmin",
    "given_ymin",
    "given_xmax",
    "given_ymax",
    "suggested_class",
    "suggested_xmin",
    "suggested_ymin",
    "suggested_xmax",
    "suggested_ymax",
    "given_class_probability",
    "iou_given_vs_model",
    "box_quality",
    "image_width",
    "image_height",
    "file",
    "evidence",
)


class AuditDirError(files.OutputFolderError):
    """The report dir holds files the audit did not write, or lies inside the dataset."""


def check_report_dir(report_dir, data_dir=None):
    """Refuses a report dir inside the dataset or holding files of its own; proves it writable."""
    if data_dir and files.inside(report_dir, data_dir):
        raise AuditDirError(
            f"report dir {report_dir} is inside the dataset folder {data_dir}; the audit never "
            "writes into the dataset: choose another --report_dir"
        )
    files.check_not_a_file(report_dir, "report dir", "choose another --report_dir")
    if os.path.isdir(report_dir) and os.listdir(report_dir) and not _an_audits(report_dir):
        raise AuditDirError(
            f"report dir {report_dir} holds files an audit did not write; choose a new or "
            "empty --report_dir"
        )
    return files.check_writable_folder(report_dir, "report dir", todo="choose another --report_dir")


WRITTEN_BY = "localizer.audit"


def _an_audits(report_dir):
    """Whether `audit.json` there says an audit wrote the folder."""
    try:
        with open(os.path.join(report_dir, SUMMARY_FILE), encoding="utf-8") as f:
            return json.load(f).get("written_by") == WRITTEN_BY
    except (OSError, ValueError, AttributeError):
        return False


def mark_report_dir(report_dir):
    """Marks the folder as the audit's before anything else is written there: a run killed
    halfway leaves a folder the next run takes as its own."""
    if not _an_audits(report_dir):
        write_summary(report_dir, {"status": "running"})


def rows(ranking, class_names, original_files):
    """`suspects.csv`'s rows (dicts keyed by `COLUMNS`), in rank order."""
    looks = ranking.looks
    given_vs_model = suspects_lib._iou(looks.given_boxes, looks.boxes)
    table = []
    for i, example_id in enumerate(looks.ids):
        size = looks.sizes[i]
        given = box_lib.rounded_pixel_xyxy(looks.given_boxes[i], *size)
        suggested = box_lib.rounded_pixel_xyxy(ranking.suggested_boxes[i], *size)
        label = int(looks.labels[i])
        table.append(
            {
                "rank": i + 1,
                "id": example_id,
                "kind": ranking.kinds[i],
                "score": f"{ranking.scores[i]:.4f}",
                "given_class": class_names[label],
                **dict(zip(COLUMNS[5:9], given, strict=True)),
                "suggested_class": class_names[int(ranking.suggested_labels[i])],
                **dict(zip(COLUMNS[10:14], suggested, strict=True)),
                "given_class_probability": f"{looks.probabilities[i, label]:.4f}",
                "iou_given_vs_model": f"{given_vs_model[i]:.4f}",
                "box_quality": "" if looks.quality is None else f"{looks.quality[i]:.4f}",
                "image_width": int(size[1]),
                "image_height": int(size[0]),
                "file": (original_files or {}).get(example_id, ""),
                "evidence": ranking.evidence[i],
            }
        )
    return table


def write_suspects_csv(path, table):
    def write(temporary):
        with open(temporary, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            writer.writerows(table)

    files.atomic_write(path, write)


def thumbnail(image, given, suggested, kind):
    """PNG bytes: the photo (uint8 `[H, W, 3]`) scaled to `THUMBNAIL_SIDE`, the given box in red,
    the suggested one (when it differs) in green, dashed."""
    picture = Image.fromarray(np.asarray(image))
    # Large photos shrink to THUMBNAIL_SIDE; small ones grow (pixels kept square) until the box
    # lines no longer hide them.
    scale = THUMBNAIL_SIDE / max(picture.size)
    scale = scale if scale < 1.0 else max(1, int(MIN_THUMBNAIL_SIDE // max(picture.size)))
    picture = picture.resize(
        (max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
        Image.Resampling.LANCZOS if scale < 1.0 else Image.Resampling.NEAREST,
    )
    draw = ImageDraw.Draw(picture)
    draw.rectangle([v * scale for v in given], outline=(230, 30, 30), width=3)
    if kind != suspects_lib.NONE and suggested != given:
        _dashed_rectangle(draw, [v * scale for v in suggested], (30, 200, 60))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def _dashed_rectangle(draw, box, colour, dash=8, width=3):
    xmin, ymin, xmax, ymax = box
    for (x0, y0), (x1, y1) in (
        ((xmin, ymin), (xmax, ymin)),
        ((xmax, ymin), (xmax, ymax)),
        ((xmax, ymax), (xmin, ymax)),
        ((xmin, ymax), (xmin, ymin)),
    ):
        length = max(abs(x1 - x0), abs(y1 - y0))
        steps = max(1, int(length // dash))
        for step in range(0, steps, 2):
            a, b = step / steps, min(1.0, (step + 1) / steps)
            draw.line(
                [
                    (x0 + (x1 - x0) * a, y0 + (y1 - y0) * a),
                    (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b),
                ],
                fill=colour,
                width=width,
            )


def thumbnail_name(row):
    return f"{row['rank']:04d}.png"


THUMBNAIL_NAME = re.compile(r"\d{4,}\.png")


def write_report(report_dir, table, images, title):
    """report.html over the first `REPORT_ROWS` rows; `images`: `{id: uint8 [H, W, 3]}` of those
    rows (upright)."""
    folder = os.path.join(report_dir, THUMBNAILS)
    os.makedirs(folder, exist_ok=True)
    for old in os.listdir(folder):  # an earlier audit's: the folder is the audit's (its mark)
        if THUMBNAIL_NAME.fullmatch(old):
            os.remove(os.path.join(folder, old))
    lines = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif}td{vertical-align:top;padding:4px}"
        "tr:nth-child(even){background:#f4f4f4}</style>",
        f"<h1>{html.escape(title)}</h1>",
        "<p>Red: the given box. Green, dashed: the suggested box. Every example is in "
        f"<a href='{SUSPECTS_FILE}'>{SUSPECTS_FILE}</a>; the suggested labels of the suspects are "
        f"in <code>{CORRECTIONS}/</code>.</p>",
        "<table><tr><th>rank</th><th>photo</th><th>id, kind, score</th><th>given</th>"
        "<th>suggested</th><th>evidence</th></tr>",
    ]
    for row in table[:REPORT_ROWS]:
        name = thumbnail_name(row)
        given = [row[c] for c in COLUMNS[5:9]]
        suggested = [row[c] for c in COLUMNS[10:14]]
        png = thumbnail(images[row["id"]], given, suggested, row["kind"])
        files.write_bytes_atomically(os.path.join(report_dir, THUMBNAILS, name), png)
        lines.append(
            f"<tr><td>{row['rank']}</td><td><img src='{THUMBNAILS}/{name}'></td>"
            f"<td><b>{html.escape(row['id'])}</b><br>{row['kind']}<br>{row['score']}</td>"
            f"<td>{html.escape(row['given_class'])}<br>{given}</td>"
            f"<td>{html.escape(row['suggested_class'])}<br>{suggested}</td>"
            f"<td>{html.escape(row['evidence'])}</td></tr>"
        )
    lines.append("</table>")
    text = "\n".join(lines) + "\n"
    files.write_bytes_atomically(os.path.join(report_dir, REPORT_FILE), text.encode())


def correction_format(dataset_kind):
    return CORRECTION_FORMATS.get(dataset_kind, "coco")


def correction_labels(ranking, original_files):
    """`writers.Label`s of the suspects: their suggested class and box, marked for review, each
    named by its photo's file stem (as VOC and YOLO name label files)."""
    looks = ranking.looks
    labels = []
    for i in range(ranking.suspects):
        example_id = looks.ids[i]
        labels.append(
            writers.Label(
                image_path=original_files[example_id],
                height=int(looks.sizes[i][0]),
                width=int(looks.sizes[i][1]),
                label=int(ranking.suggested_labels[i]),
                box=ranking.suggested_boxes[i],
                score=float(looks.probabilities[i].max()),
                box_quality=None if looks.quality is None else float(looks.quality[i]),
                review=True,
            )
        )
    return labels


def write_corrections(report_dir, ranking, original_files, class_names, dataset_kind, split):
    """Writes the suspects' corrections (`corrections/`); returns `{"format", "count"}`, or None
    where there are none to write: a dataset without files (generated, TFDS), or labels its
    format cannot hold (a `warning:` line says why; suspects.csv has them all)."""
    if original_files is None:
        return None
    fmt = correction_format(dataset_kind)
    folder = os.path.join(report_dir, CORRECTIONS)
    labels = correction_labels(ranking, original_files)
    try:
        if labels or os.path.isdir(folder):  # none: an earlier audit's corrections are removed
            writers.write_labels(fmt, folder, labels, class_names, split)
    except (writers.LabelsFormatError, writers.LabelsOutputError) as error:
        print(
            f"warning: no corrections written ({error}); suspects.csv lists them", file=sys.stderr
        )
        return None
    return {"format": fmt, "count": len(labels)}


def write_summary(report_dir, summary):
    files.write_json_atomically(
        os.path.join(report_dir, SUMMARY_FILE), {"written_by": WRITTEN_BY, **summary}, indent=1
    )


def counts_by_kind(ranking):
    kinds, counts = np.unique(ranking.kinds, return_counts=True)
    return {str(k): int(c) for k, c in zip(kinds, counts, strict=True)}


def summary_json(ranking, **facts):
    return json.loads(
        json.dumps({**facts, "suspects": ranking.suspects, "kinds": counts_by_kind(ranking)})
    )

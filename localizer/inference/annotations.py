"""Predict's pre-annotation files: `--annotations=voc|coco|yolo|labelstudio --out=DIR`.

Each photo predict could read becomes a `pipelines.sources.writers.Label` (its upright size and
box, as the JSON line prints them; `"unsure"` becomes `review`), written once every photo is
done; the out dir is checked before the first photo is predicted.
"""

import numpy as np

from pipelines import files
from pipelines.errors import UserError
from pipelines.sources import writers

SPLIT = "train"
"""The split predict's labels are written as: new photos, once corrected, are training data."""


class AnnotationFlagsError(UserError, ValueError):
    """`--annotations` without `--out` or the reverse, or a draw dir inside the out dir."""


def check_flags(annotations, out_dir, draw_dir=None):
    """Refuses flags that do not go together (one line each)."""
    if annotations and not out_dir:
        raise AnnotationFlagsError(
            f"--annotations={annotations} needs --out=DIR, the folder its label files go to; "
            "add --out, or drop --annotations"
        )
    if out_dir and not annotations:
        raise AnnotationFlagsError(
            f"--out={out_dir} needs --annotations=FORMAT ({'|'.join(writers.FORMATS)}), the "
            "format of the label files; add it, or drop --out"
        )
    if out_dir and draw_dir and files.inside(draw_dir, out_dir):
        raise AnnotationFlagsError(
            f"--draw_dir={draw_dir} lies inside --out={out_dir}, which holds only label files; "
            "choose a --draw_dir outside it"
        )


def check_out_dir(annotations, out_dir, image_paths, class_names):
    """What writing the labels of `image_paths` would refuse, refused now (before predicting)."""
    writers.check_output(annotations, out_dir, image_paths, class_names, split=SPLIT, what="--out")


def label_of(record, class_names):
    """The `writers.Label` of one of predict's records (its class, box and size as printed)."""
    height, width = record["image_size"]
    return writers.Label(
        image_path=record["file"],
        height=height,
        width=width,
        label=list(class_names).index(record["class"]),
        box=np.array(record["box"], np.float64),
        score=record["score"],
        box_quality=record.get("box_quality"),
        review=bool(record.get("unsure", False)),
    )


def write(annotations, out_dir, labels, class_names):
    """Writes the labels; returns a line for stderr saying what was written and what next."""
    writers.write_labels(annotations, out_dir, labels, class_names, split=SPLIT)
    return (
        f"wrote {annotations} labels of {len(labels)} "
        f"{'photo' if len(labels) == 1 else 'photos'} to {out_dir}; "
        f"{writers.next_step(annotations, out_dir, SPLIT)}"
    )

"""Predictions for image files: one JSON record per file, optionally drawn."""

import json
import os
import sys

import numpy as np
import tensorflow as tf

from localizer import boxes as box_lib
from localizer.inference.predictor import Predictor
from pipelines import decode


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def image_files(paths):
    """Files named directly, plus the images inside named folders (sorted)."""
    for path in paths:
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                if name.lower().endswith(IMAGE_EXTENSIONS):
                    yield os.path.join(path, name)
        else:
            yield path


def predict_file(predictor, path, tta="none", refine=False):
    """The prediction record for one file (raises OSError / InvalidArgumentError)."""
    with open(path, "rb") as f:
        image = decode.decode_image_bytes(f.read())
    box, probabilities = predictor.predict_image(image, tta, refine)
    height, width = image.shape[:2]
    top = np.argsort(probabilities)[::-1][:5]
    names = predictor.class_names
    return {
        "file": path,
        "class": names[int(top[0])],
        "score": round(float(probabilities[top[0]]), 4),
        "top5": [{"class": names[int(i)], "score": round(float(probabilities[i]), 4)} for i in top],
        "box": [round(float(v), 4) for v in box],
        "box_pixels_xyxy": [round(float(v), 1) for v in box_lib.from_internal(box, box_lib.PIXEL_XYXY, height, width)],
        "image_size": [int(height), int(width)],
    }, image


def draw(image, record, out_path):
    """Saves the image with the predicted box and label drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height, width = image.shape[:2]
    fig, ax = plt.subplots(figsize=(width / 100, height / 100), dpi=100)
    ax.imshow(image.numpy())
    xmin, ymin, xmax, ymax = record["box_pixels_xyxy"]
    ax.add_patch(plt.Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, fill=False, color="red", linewidth=2))
    ax.text(xmin, max(ymin - 4, 8), f"{record['class']} {record['score']:.2f}", color="white",
            fontsize=9, backgroundcolor="red")
    ax.axis("off")
    fig.subplots_adjust(0, 0, 1, 1)
    fig.savefig(out_path)
    plt.close(fig)


def run(model_path, paths, draw_dir=None, tta="none", out=sys.stdout, refine=False):
    """Predicts every image; writes JSON lines to `out`; returns the number of failures."""
    predictor = Predictor(model_path)
    failures = 0
    for path in image_files(paths):
        try:
            record, image = predict_file(predictor, path, tta, refine)
        except (OSError, tf.errors.InvalidArgumentError) as error:
            failures += 1
            message = getattr(error, "message", None) or str(error)
            out.write(json.dumps({"file": path, "error": message.splitlines()[0]}) + "\n")
            continue
        if draw_dir:
            os.makedirs(draw_dir, exist_ok=True)
            draw(image, record, os.path.join(draw_dir, os.path.splitext(os.path.basename(path))[0] + ".png"))
        out.write(json.dumps(record) + "\n")
        out.flush()
    return failures

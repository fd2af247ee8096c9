"""Calibrates the near-duplicate thresholds of `localizer.curation.selection` on real photos.

    python -m experiments.near_duplicates --model=work/realmix_default/best.keras [--limit=N]

For every photo of realmix (../shared/data/realmix/JPEGImages, its class from
Annotations/), both kinds of embedding (`selection.FEATURES` through the model's
backbone, `selection.THUMBNAIL`) of the photo and of three copies of it, made
in memory: re-encoded as JPEG at quality 75, resized to 80% of its side (then
JPEG 90), mirrored left-right. Prints, per kind, percentiles of the cosine
similarity of each photo with each of its copies, and of each photo with the
nearest other photo of its class (the closest a distinct photo comes); how many
copies each threshold misses and how many photos it would merge with another;
and the pairs of photos at or above today's threshold, to be looked at (realmix
holds a few near-duplicates of its own). Writes nothing: the figures go into
`selection`'s docstring.
"""

import os
import xml.etree.ElementTree as ET

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
COPIES = ("jpeg75", "resized80", "mirrored")
COPY_PERCENTILES = (0, 0.5, 1, 5, 50)
OTHER_PERCENTILES = (50, 90, 95, 99, 100)


def copies(image):
    """`{name: uint8 image}`: the copies of one decoded photo."""
    import tensorflow as tf

    from pipelines import decode

    def jpeg(picture, quality):
        return decode.decode_image_bytes(tf.io.encode_jpeg(picture, quality=quality).numpy())

    height, width = image.shape[:2]
    smaller = [max(1, round(height * 0.8)), max(1, round(width * 0.8))]
    resized = tf.cast(tf.round(tf.image.resize(image, smaller, antialias=True)), tf.uint8)
    return {"jpeg75": jpeg(image, 75), "resized80": jpeg(resized, 90), "mirrored": image[:, ::-1]}


def percentiles(values, which):
    return " ".join(
        f"p{q:g}={v:.4f}" for q, v in zip(which, np.percentile(values, which), strict=True)
    )


def main(argv):
    del argv
    from experiments.common import REALMIX_DIR
    from localizer.curation import selection
    from localizer.inference import image_files
    from localizer.inference.predictor import Predictor

    predictor = Predictor(FLAGS.model)
    folder = os.path.join(FLAGS.data_dir or REALMIX_DIR, "JPEGImages")
    names = sorted(os.listdir(folder))[: FLAGS.limit or None]
    annotations = os.path.join(folder, "..", "Annotations")
    classes = np.array(
        [
            ET.parse(os.path.join(annotations, f"{os.path.splitext(name)[0]}.xml")).findtext(
                "object/name"
            )
            for name in names
        ]
    )
    embed = selection.embedder(predictor)[1]
    kinds = {selection.FEATURES: [], selection.THUMBNAIL: []}  # per photo: [1 + copies, D]
    for number, name in enumerate(names, 1):
        image = image_files.read_image(os.path.join(folder, name))
        images = [image, *copies(image).values()]
        kinds[selection.FEATURES].append(selection.embed_images(predictor, images, embed))
        kinds[selection.THUMBNAIL].append(
            np.stack([selection.thumbnail_embedding(i) for i in images])
        )
        if number % 100 == 0:
            print(f"{number}/{len(names)} photos", flush=True)
    same_class = classes[:, None] == classes[None, :]
    np.fill_diagonal(same_class, False)
    for kind, rows in kinds.items():
        rows = np.stack(rows)  # [N, 1 + copies, D]
        originals = rows[:, 0]
        to_copies = np.einsum("nd,ncd->nc", originals, rows[:, 1:])
        threshold = selection.DUPLICATE_SIMILARITY[kind]
        print(f"\n{kind} ({rows.shape[-1]} dims), {len(names)} photos, threshold {threshold}")
        for i, copy in enumerate(COPIES):
            print(f"  photo vs its {copy} copy: {percentiles(to_copies[:, i], COPY_PERCENTILES)}")
        similarity = originals @ originals.T
        nearest = np.where(same_class, similarity, -np.inf).max(axis=1)
        nearest = nearest[np.isfinite(nearest)]
        print(
            "  photo vs the nearest other photo of its class: "
            f"{percentiles(nearest, OTHER_PERCENTILES)}"
        )
        for at in sorted({*FLAGS.thresholds, threshold}):
            missed = dict(zip(COPIES, (to_copies < at).sum(axis=0).tolist(), strict=True))
            print(
                f"  at {at}: copies missed {missed}; photos with another photo of their class "
                f"at or above it: {int(np.sum(nearest >= at))}"
            )
        np.fill_diagonal(similarity, -np.inf)
        first, second = np.nonzero(np.triu(similarity >= threshold))
        for a, b in sorted(zip(first, second, strict=True), key=lambda pair: -similarity[pair]):
            print(f"    {similarity[a, b]:.4f} {names[a]} {names[b]}")


def define_flags():
    flags.DEFINE_string(
        "model", None, "A .keras model (its backbone gives the features).", required=True
    )
    flags.DEFINE_string("data_dir", None, "A VOC folder (default: ../shared/data/realmix).")
    flags.DEFINE_integer("limit", 0, "Only the first N photos (0: all).")
    flags.DEFINE_multi_float(
        "thresholds", [0.9, 0.95, 0.96, 0.97, 0.98, 0.99], "Thresholds to count at."
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)

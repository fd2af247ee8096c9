"""Images for full-integer quantization: a seeded sample of the training split, rendered as the
model sees it.

Calibration fixes each tensor's int8 range from these images, so they are
the training split's photos decoded and resized exactly as in training and
serving (`pipelines.render.resize_image`, no augmentation); a second, disjoint
sample checks the converted file.
"""

import numpy as np
import tensorflow as tf

from pipelines import input_pipeline, render
from pipelines.sources.source import ID, IMAGE, DatasetError

CALIBRATION_IMAGES = 200
"""Images calibrating the int8 ranges (a few hundred, as TFLite suggests; 200 is what the bench in
experiments/RESULTS.md ran with)."""

CHECK_IMAGES = 16
"""Further images of the split on which the int8 file is compared with the SavedModel."""

SEED = 0


def sample_indices(total, calibration, check, seed=SEED):
    """`(calibration indices, check indices)` into a split of `total` examples: disjoint, seeded.

    A split smaller than both samples gives all its examples to calibration,
    and the check reuses the first of them.
    """
    order = np.random.default_rng(seed).permutation(total)
    picked, rest = order[:calibration], order[calibration : calibration + check]
    return sorted(picked.tolist()), sorted((rest if len(rest) else picked[:check]).tolist())


def decoded_images(source, split, indices):
    """Yields `(example id, uint8 image [H, W, 3])` of the split's examples at `indices` (source
    order),
    decoded as training decodes them, one at a time (photos may be large).

    Only the chosen examples are decoded; ones the pipeline drops as
    unusable are left out.
    """
    wanted = tf.constant(sorted(indices), tf.int64)
    chosen = source.load(split).enumerate().filter(lambda i, _: tf.reduce_any(tf.equal(i, wanted)))
    decoded = input_pipeline.decode_and_sanitize(chosen.map(lambda _, element: element))
    for features in decoded:
        yield features[ID].numpy().decode(errors="replace"), features[IMAGE]


def rendered_images(source, split, indices, image_size, resize_mode):
    """uint8 `[len(indices), S, S, 3]`: the split's examples at `indices` (source order),
    rendered."""
    images = [
        render.resize_image(image, image_size, resize_mode)[0].numpy()
        for _, image in decoded_images(source, split, indices)
    ]
    return np.stack(images) if images else np.zeros([0, image_size, image_size, 3], np.uint8)


def split_size(source, split):
    """How many examples `split` has (counted when the source does not say)."""
    total = source.num_examples(split)
    return sum(1 for _ in source.load(split)) if total is None else total


def calibration_and_check_images(
    source, split, image_size, resize_mode, count=CALIBRATION_IMAGES, check=CHECK_IMAGES, seed=SEED
):
    """`(calibration images, check images)` of `split`, rendered; a split without examples is
    refused."""
    total = split_size(source, split)
    if not total:
        raise DatasetError(
            f"split {split!r} of {source.name} has no examples to calibrate int8 on; "
            f"pass the model's training data (--dataset, --data_dir, --split)"
        )
    calibration, checks = sample_indices(total, count, check, seed)
    return (
        rendered_images(source, split, calibration, image_size, resize_mode),
        rendered_images(source, split, checks, image_size, resize_mode),
    )

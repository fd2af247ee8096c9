"""The frozen-backbone feature cache: the backbone runs once per image and pass,
the heads then train on the stored features (stage 1).
"""

import dataclasses
import sys

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from pipelines import augment, input_pipeline
from pipelines.sources.source import BOX, ID, LABEL


def extract_features(backbone, dataset, description, with_ids=False):
    """Runs the frozen backbone once over `dataset`; returns features, labels, boxes (and with
    `with_ids` the examples' ids, as text: the targets then hold ID)."""
    features, labels, boxes, ids = [], [], [], []
    progress = keras.utils.Progbar(None, unit_name="batch", verbose=1 if sys.stdout.isatty() else 0)
    # Plain calls, not predict_on_batch: under a distribution strategy that runs
    # the whole batch on every replica. One traced function serves all batches.
    run_backbone = _backbone_function(backbone)
    for images, targets in dataset:
        features.append(run_backbone(images).numpy())
        labels.append(targets[LABEL].numpy())
        boxes.append(targets[BOX].numpy())
        if with_ids:
            ids += [example_id.decode() for example_id in targets[ID].numpy()]
        progress.add(1)
    logging.info("Computed %s features for %d examples.", description, sum(len(b) for b in labels))
    arrays = (np.concatenate(features), np.concatenate(labels), np.concatenate(boxes))
    return (*arrays, np.array(ids, dtype=object).astype(str)) if with_ids else arrays


def _backbone_function(backbone):
    if not hasattr(backbone, "_localizer_inference_fn"):
        backbone._localizer_inference_fn = tf.function(
            lambda images: backbone(images, training=False)
        )
    return backbone._localizer_inference_fn


def extract_training_features(backbone, source, split, pipeline, passes, shard=None):
    """Features of one plain pass over `split` plus `passes - 1` augmented ones.

    Each augmented pass draws new augmentations, so the heads see the objects
    at many positions and scales while the backbone still runs only once per
    image and pass. `shard=(count, index)`: only this worker's part of the
    split (each worker of a multi-worker run caches its own).
    """
    plain = dataclasses.replace(pipeline, augment=augment.AugmentConfig.off())
    parts = [
        extract_features(
            backbone,
            input_pipeline.make_dataset(source, split, plain, training=False, shard=shard),
            "train",
        )
    ]
    augmented = input_pipeline.make_dataset(source, split, pipeline, training=True, shard=shard)
    for i in range(1, passes):
        parts.append(extract_features(backbone, augmented, f"augmented train pass {i}"))
    return tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))

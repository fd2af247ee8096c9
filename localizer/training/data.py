"""Training data: the source a config names, its checks before training, the
validation targets and the floor a model must clear (the best constant guess).
"""

import os

import numpy as np

import pipelines
from localizer.ops import statistics
from pipelines.image_header import MAX_IMAGE_PIXELS
from pipelines.sources.source import (
    BOX,
    LABEL,
    DatasetError,
    Subset,
    check_usable,
    stratified_indices,
    write_problems,
)

DATA_ISSUES = "data_issues.tsv"
"""Work-dir file listing every skipped or repaired example: split, file, action, reason."""


def build_source(data, max_image_pixels=MAX_IMAGE_PIXELS):
    """The dataset source a `DataConfig` names (images over `max_image_pixels` skipped; 0: no
    limit)."""
    source = pipelines.source_with_options(
        data.dataset,
        data.data_dir,
        max_image_pixels=max_image_pixels,
        **pipelines.options_of(data),
    )
    return Subset(source, data.max_examples) if data.max_examples else source


def index_splits(source, data):
    """Builds the training and validation indexes; returns `{split: IndexStats or None}`."""
    splits = dict.fromkeys((data.train_split, data.val_split))
    for split in splits:
        source.num_examples(split)  # builds the index
        splits[split] = source.index_stats(split)
    return splits


def check_usable_splits(source, data):
    """Fails early when a split has too many unusable examples (`data.max_skipped_fraction`)."""
    for split in dict.fromkeys((data.train_split, data.val_split)):
        check_usable(source, split, data.max_skipped_fraction)


def write_issues(workdir, stats_by_split):
    """Lists every skipped or repaired file of each split in the work dir's data_issues.tsv."""
    write_problems(os.path.join(workdir, DATA_ISSUES), stats_by_split)


def check_enough_for_a_batch(source, split, global_batch_size, replicas=1):
    """Training drops the last partial batch: fewer examples than one batch would train on
    nothing."""
    count = source.num_examples(split)
    if count is not None and count < global_batch_size:
        per_replica = (
            f" ({replicas} replicas x {global_batch_size // replicas})" if replicas > 1 else ""
        )
        raise DatasetError(
            f"split {split!r} of {source.name} has {count} usable examples, fewer than one "
            f"training batch of {global_batch_size}{per_replica}; lower --batch_size or add "
            "examples"
        )


def collect_targets(dataset):
    labels, boxes = [], []
    for _, targets in dataset:
        labels.append(targets[LABEL].numpy())
        boxes.append(targets[BOX].numpy())
    return np.concatenate(labels), np.concatenate(boxes)


def preview_examples(dataset, labels, count, seed=0):
    """A fixed sample of `dataset`'s images across the classes: `(positions, images [count, H, W,
    3])`.

    `dataset` yields batches of `(images, targets)` in the order of `labels`;
    iteration stops once the last chosen position has been read.
    """
    positions = stratified_indices(labels, count, seed)
    if not positions:
        return [], None
    wanted, found, start = set(positions), {}, 0
    for images, _ in dataset:
        for offset in range(len(images)):
            if start + offset in wanted:
                found[start + offset] = images[offset].numpy()
        start += len(images)
        if start > max(positions):
            break
    return positions, np.stack([found[p] for p in positions])


def constant_guess_baseline(labels, boxes, class_names):
    """The best constant guess on a split: its majority class and its mean box.

    Uses the split's own statistics, so it is an upper bound for any constant
    guess: the floor a localizer must clear by far.
    """
    num_classes = len(class_names)
    majority = np.bincount(labels, minlength=num_classes).argmax()
    logits = np.tile(np.eye(num_classes)[majority], (len(labels), 1))
    mean_box = np.tile(boxes.mean(axis=0), (len(labels), 1))
    return statistics.summarize(boxes, labels, mean_box, logits, class_names)

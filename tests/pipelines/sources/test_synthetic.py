"""Tests of pipelines/sources/synthetic.py: the bundled default dataset."""

import numpy as np
import tensorflow as tf

import pipelines
from pipelines.sources import synthetic
from pipelines.sources.source import (
    BOX,
    IMAGE,
    LABEL,
)


def test_synthetic_is_deterministic_for_a_seed():
    def first(seed, count=3):
        source = pipelines.get_source("synthetic", seed=seed, sizes={"val": count})
        return list(source.load("val"))

    a, b, c = first(5), first(5), first(6)
    for x, y in zip(a, b, strict=False):
        np.testing.assert_array_equal(x[IMAGE], y[IMAGE])
        np.testing.assert_array_equal(x[BOX], y[BOX])
    # Another seed draws other objects: boxes (always [4]) and pixels differ.
    assert not np.allclose(np.stack([x[BOX] for x in a]), np.stack([x[BOX] for x in c]))
    assert any(
        x[IMAGE].shape != y[IMAGE].shape or not np.array_equal(x[IMAGE], y[IMAGE])
        for x, y in zip(a, c, strict=False)
    )


def test_synthetic_examples_are_valid_and_varied():
    source = pipelines.get_source("synthetic", sizes={"train": 60})
    elements = list(source.load("train"))
    labels = {int(e[LABEL]) for e in elements}
    assert labels == set(range(len(source.class_names)))
    boxes = np.stack([e[BOX].numpy() for e in elements])
    assert np.all(boxes[:, :2] < boxes[:, 2:]) and boxes.min() >= 0 and boxes.max() <= 1
    # Varied positions and sizes: a constant box cannot fit them all.
    assert boxes.std(axis=0).min() > 0.1
    for index in range(5):
        # The box is tight on the object drawn: each of its edge rows and
        # columns holds object pixels, and none lie outside it.
        example = synthetic.render_example(tf.constant([7, index], tf.int64), with_mask=True)
        mask = example[synthetic.OBJECT_MASK].numpy()
        height, width = mask.shape
        ymin, xmin, ymax, xmax = np.round(
            example[BOX].numpy() * [height, width, height, width]
        ).astype(int)
        inside = mask[ymin:ymax, xmin:xmax]
        assert mask.sum() == inside.sum() > 0
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
        assert example[IMAGE].dtype == tf.uint8 and example[IMAGE].shape == (height, width, 3)

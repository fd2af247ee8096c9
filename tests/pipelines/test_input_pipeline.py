"""The assembled tf.data pipeline: shapes, determinism, dropping, preview."""

import numpy as np
import pytest
import tensorflow as tf

import pipelines
from pipelines import input_pipeline, render
from pipelines.sources.source import BOX, ID, IMAGE, LABEL
from tests import fixtures

CONFIG = input_pipeline.PipelineConfig(
    image_size=32, resize_mode="letterbox", batch_size=4, shuffle_buffer=16, seed=3
)


def _synthetic(count=12):
    return pipelines.get_source(
        "synthetic", sizes={"train": count, "val": count}, image_size_range=(40, 64)
    )


def test_training_batches_are_model_ready():
    ds = input_pipeline.make_dataset(_synthetic(10), "train", CONFIG, training=True)
    batches = list(ds)
    assert len(batches) == 2  # 10 examples, batch 4, drop_remainder
    image, targets = batches[0]
    assert image.shape == (4, 32, 32, 3) and image.dtype == tf.uint8
    assert targets[LABEL].shape == (4,) and targets[BOX].shape == (4, 4)
    boxes = targets[BOX].numpy()
    assert np.all(boxes >= 0) and np.all(boxes <= 1) and np.all(boxes[:, :2] < boxes[:, 2:])


def test_eval_keeps_every_example_in_order_with_metadata():
    source = _synthetic(10)
    batches = list(input_pipeline.batched_examples(source, "val", CONFIG, training=False))
    ids = [i.decode() for b in batches for i in b[ID].numpy()]
    assert ids == [f"synthetic/val/{i}" for i in range(10)]
    first = batches[0]
    # Boxes map back to the source's boxes exactly.
    raw = [e[BOX].numpy() for e in source.load("val").take(4)]
    np.testing.assert_allclose(
        render.to_original_frame(first[BOX], first[render.WINDOW]), raw, atol=1e-5
    )


def test_same_seed_same_batches_different_seed_different():
    def run(seed):
        config = input_pipeline.PipelineConfig(
            image_size=32, resize_mode="letterbox", batch_size=4, shuffle_buffer=16, seed=seed
        )
        return [
            b[0].numpy()
            for b in input_pipeline.make_dataset(_synthetic(), "train", config, training=True)
        ]

    a, b, c = run(1), run(1), run(2)
    for x, y in zip(a, b, strict=False):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c, strict=False))


def test_epochs_reshuffle_and_redraw_augmentation():
    ds = input_pipeline.make_dataset(_synthetic(), "train", CONFIG, training=True)
    first, second = [b[0].numpy() for b in ds], [b[0].numpy() for b in ds]
    assert not all(np.array_equal(x, y) for x, y in zip(first, second, strict=False))


@pytest.mark.parametrize("cache", ["memory", "none"])
def test_cache_modes_give_all_examples(cache):
    config = input_pipeline.PipelineConfig(
        image_size=32, resize_mode="letterbox", batch_size=4, cache=cache, seed=0
    )
    ds = input_pipeline.make_dataset(_synthetic(12), "train", config, training=True)
    labels = sorted(int(label) for _, t in ds for label in t[LABEL])
    expected = sorted(int(e[LABEL]) for e in _synthetic(12).load("train"))
    assert labels == expected


class _DegenerateSource(pipelines.Source):
    name = "degenerate"
    class_names = ["a"]

    def load(self, split):
        boxes = tf.constant([[0.1, 0.1, 0.5, 0.5], [0.3, 0.3, 0.3, 0.8], [0.9, 0.9, 0.2, 0.2]])
        return tf.data.Dataset.from_tensor_slices(
            {
                IMAGE: tf.zeros((3, 8, 8, 3), tf.uint8),
                LABEL: tf.zeros(3, tf.int32),
                BOX: boxes,
                ID: tf.constant(["a", "b", "c"]),
            }
        )


def test_degenerate_boxes_are_dropped_and_counted():
    counter = input_pipeline.DropCounter()
    ds = input_pipeline.make_dataset(
        _DegenerateSource(), "train", CONFIG, training=False, drop_counter=counter
    )
    targets = [t for _, t in ds]
    assert sum(len(t[LABEL]) for t in targets) == 2  # the inverted one is repaired
    assert counter.value == 1


def test_preview_writes_png(tmp_path, voc_folder):
    from pipelines import show

    source = pipelines.get_source("voc_dir", data_dir=voc_folder)
    path = show.preview_grid(source, "train", CONFIG, 4, str(tmp_path / "grid.png"), columns=2)
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_file_caches_are_per_split_and_per_data(tmp_path):
    from pipelines import input_pipeline

    root = fixtures.make_voc_folder(tmp_path / "voc")
    source = pipelines.get_source("voc_dir", data_dir=root)
    train, val = (input_pipeline.cache_file("c", source, split) for split in ("train", "val"))
    assert train != val and train.startswith("c.train.")

"""localizer.curation.selection: the value of labelling a photo and the greedy choice, on
synthetic signals; the embeddings of decoded images."""

import numpy as np
import pytest

from localizer.curation import selection
from tests import fixtures

BOX = [0.2, 0.2, 0.6, 0.6]


def candidates(count=3, quality=0.9, top=0.95, refined=None, embeddings=None, **changes):
    """`count` photos that agree on everything (confident class, good box, looks that agree,
    orthogonal embeddings) but for `changes` (`Candidates` fields)."""
    probabilities = np.full([count, 3], (1.0 - top) / 2, np.float32)
    probabilities[:, 0] = top
    fields = {
        "paths": [f"photo{i}.jpg" for i in range(count)],
        "probabilities": probabilities,
        "box_quality": np.full([count], quality, np.float32),
        "first_boxes": np.tile(np.array(BOX, np.float32), [count, 1]),
        "refined_boxes": np.tile(np.array(BOX, np.float32), [count, 1]),
        "embeddings": np.eye(count, dtype=np.float32) if embeddings is None else embeddings,
    }
    return selection.Candidates(**{**fields, **changes})


def test_each_signal_alone_orders_the_photos():
    box = candidates(box_quality=np.array([0.9, 0.3, 0.6], np.float32))
    assert selection.choose(box, 3) == [1, 2, 0]
    probabilities = np.array([[0.9, 0.05, 0.05], [0.98, 0.01, 0.01], [0.4, 0.35, 0.25]])
    uncertain = candidates(probabilities=probabilities)
    assert selection.choose(uncertain, 3) == [2, 0, 1]
    refined = np.array([BOX, [0.4, 0.4, 0.8, 0.8], [0.25, 0.25, 0.65, 0.65]], np.float32)
    looks = candidates(refined_boxes=refined)
    assert selection.choose(looks, 3) == [1, 2, 0]
    scores = selection.value_scores(looks)
    assert scores.reasons()[1] == selection.REASONS[selection.LOOKS]
    assert scores.parts[selection.LOOKS][0] == pytest.approx(0.0, abs=1e-6)


def test_value_is_the_weighted_mean_of_the_doubts():
    photos = candidates(count=1, quality=0.4, top=0.7, refined=None)
    scores = selection.value_scores(photos)
    assert scores.parts[selection.BOX] == pytest.approx([0.6], abs=1e-5)
    assert scores.parts[selection.CLASS] == pytest.approx([0.3], abs=1e-5)
    assert scores.values == pytest.approx([(0.6 + 0.3 + 0.0) / 3], abs=1e-5)
    assert scores.reasons() == [selection.REASONS[selection.BOX]]


def test_models_without_box_quality_drop_that_term():
    photos = candidates(count=2, box_quality=None, top=0.6)
    scores = selection.value_scores(photos)
    assert list(scores.parts) == [selection.CLASS, selection.LOOKS]
    # (0.4 + 0) / 2: no box term to dilute the others.
    assert scores.values == pytest.approx([0.2, 0.2], abs=1e-5)
    assert selection.choose(photos, 5) == [0, 1]


def test_near_duplicates_of_a_chosen_photo_are_skipped():
    quality = np.array([0.1, 0.2, 0.3, 0.9], np.float32)  # photo 0 most valuable
    copy = np.array([1.0, 0.0, 0.0], np.float32)
    embeddings = np.stack([copy, copy * 0.999 + [0, 0.0447, 0], [0, 1, 0], [0, 0, 1]])
    embeddings /= np.linalg.norm(embeddings, axis=-1, keepdims=True)
    photos = candidates(count=4, box_quality=quality, embeddings=embeddings.astype(np.float32))
    chosen, skipped = selection.choose_explained(photos, 3, duplicate_similarity=0.99)
    assert chosen == [0, 2, 3] and skipped == {1: 0}
    # A threshold above their similarity keeps both; the default is the kind's calibrated one.
    assert selection.choose(photos, 3, duplicate_similarity=0.9999) == [0, 1, 2]
    assert selection.choose(photos, 3) == chosen


def test_a_budget_larger_than_the_pool_takes_every_distinct_photo():
    photos = candidates(count=3, embeddings=np.tile(np.eye(3, dtype=np.float32)[:1], [3, 1]))
    assert selection.choose(photos, 10) == [0]  # three copies of one photo
    assert selection.choose(candidates(count=3), 10) == [0, 1, 2]
    assert selection.choose(candidates(count=3), 1) == [0]


def test_an_empty_pool_chooses_nothing():
    photos = candidates(count=0, embeddings=np.zeros([0, 4], np.float32))
    assert len(selection.value_scores(photos).values) == 0
    assert selection.choose(photos, 3) == []


def test_thumbnails_find_copies_not_other_photos():
    image = fixtures.make_image(48, 64, [("cat", (10, 8, 40, 36))], seed=1)
    other = fixtures.make_image(48, 64, [("dog", (30, 4, 60, 30))], seed=2)
    embed = selection.thumbnail_embedding
    original = embed(image)
    assert np.linalg.norm(original) == pytest.approx(1.0, abs=1e-5)
    assert original @ embed(image[:, ::-1]) == pytest.approx(1.0, abs=1e-5)  # mirrored
    assert original @ embed(other) < selection.DUPLICATE_SIMILARITY[selection.THUMBNAIL]


def test_features_of_a_keras_model_pool_its_backbone():
    from localizer.inference.predictor import Predictor

    predictor = Predictor.from_model(fixtures.tiny_model(randomize=True))
    image = fixtures.make_image(48, 64, [("cat", (10, 8, 40, 36))], seed=1)
    other = fixtures.make_image(40, 40, [("plate", (2, 2, 30, 30))], seed=3)
    kind, embed = selection.embedder(predictor)
    assert kind == selection.FEATURES
    embeddings = selection.embed_images(predictor, [image, image[:, ::-1], other], embed)
    # The tiny backbone's 32 channels, not the 4 x 32 of the stride-16 map packed after them.
    assert embeddings.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1), 1.0, atol=1e-5)
    assert embeddings[0] @ embeddings[1] == pytest.approx(1.0, abs=1e-4)


def test_files_through_a_model_without_a_backbone_to_ask(tmp_path):
    """An export or its TFLite file: thumbnails; a file that cannot be read is its failure."""
    from localizer.inference.predictor import Predictor

    predictor = Predictor.from_model(fixtures.tiny_model(randomize=True))
    predictor.keras_model = None  # as for an exported SavedModel or a .tflite file
    paths = []
    for seed, name in enumerate(["a.png", "b.jpg"]):
        image = fixtures.make_image(48, 64, [("cat", (10 + 20 * seed, 8, 40, 36))], seed=seed)
        paths.append(str(tmp_path / name))
        fixtures.write_image(paths[-1], image)
    (tmp_path / "a copy.png").write_bytes((tmp_path / "a.png").read_bytes())
    names = [*paths, str(tmp_path / "a copy.png"), str(tmp_path / "missing.jpg")]
    found, failures = selection.candidates_from_files(predictor, names, batch_size=2)
    assert found.embedding_kind == selection.THUMBNAIL and len(found) == 3
    assert [failure.path for failure in failures] == [names[3]]
    assert "missing.jpg: no such file" in failures[0].message
    assert found.embeddings.shape == (3, selection.THUMBNAIL_SIDE**2)
    assert found.probabilities.shape == (3, 3) and found.box_quality.shape == (3,)
    assert found.first_boxes.shape == found.refined_boxes.shape == (3, 4)
    chosen = selection.choose(found, 3)
    assert len(chosen) == 2 and {0, 2} & set(chosen) != {0, 2}  # a.png or its copy, not both

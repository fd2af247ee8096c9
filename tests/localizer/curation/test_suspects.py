"""The ranking of label suspects from out-of-sample looks (pure numpy)."""

import numpy as np
import pytest

from localizer.curation import out_of_sample
from localizer.curation import suspects as suspects_lib

NAMES = ["cat", "dog", "plate"]
CENTRE = [0.3, 0.3, 0.7, 0.7]


def looks(
    given_boxes,
    boxes,
    probabilities,
    labels,
    quality=None,
    zoom_boxes=None,
    check_boxes=None,
    embeddings=None,
):
    """`Looks` of `len(labels)` examples; by default both looks give `boxes`, and the look around
    the given box finds the model's box."""
    count = len(labels)
    boxes = np.array(boxes, np.float32)
    return out_of_sample.Looks(
        ids=np.array([f"img{i}" for i in range(count)]),
        labels=np.array(labels),
        given_boxes=np.array(given_boxes, np.float32),
        sizes=np.full([count, 2], 100),
        first_boxes=boxes,
        zoom_boxes=boxes if zoom_boxes is None else np.array(zoom_boxes, np.float32),
        boxes=boxes,
        probabilities=np.array(probabilities, np.float32),
        quality=None if quality is None else np.array(quality, np.float32),
        check_boxes=boxes if check_boxes is None else np.array(check_boxes, np.float32),
        check_probabilities=np.array(probabilities, np.float32),
        embeddings=np.eye(count, 8, dtype=np.float32) if embeddings is None else embeddings,
    )


def result(looks_):
    return out_of_sample.OutOfSample(looks_, np.zeros(len(looks_.ids), int))


def test_the_class_score_is_one_minus_the_given_class_probability():
    scores = suspects_lib.class_scores(
        looks([CENTRE] * 2, [CENTRE] * 2, [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]], [0, 0])
    )
    np.testing.assert_allclose(scores, [0.1, 0.9], atol=1e-6)


def test_the_box_score_is_one_minus_the_best_look_at_the_given_box():
    elsewhere = [0.0, 0.0, 0.2, 0.2]
    found = looks(
        given_boxes=[elsewhere, elsewhere, CENTRE],
        boxes=[CENTRE] * 3,
        probabilities=[[1.0, 0.0, 0.0]] * 3,
        labels=[0, 0, 0],
        # Around the given box the model finds: nothing like it; that very box; the centre.
        check_boxes=[[0.1, 0.1, 0.4, 0.4], elsewhere, CENTRE],
    )
    scores = suspects_lib.box_scores(found)
    overlap = 0.01 / (0.04 + 0.09 - 0.01)  # the given box and the one found around it
    np.testing.assert_allclose(scores, [1.0 - overlap, 0.0, 0.0], atol=1e-5)


def test_the_box_quality_does_not_change_the_ranking():
    elsewhere = [0.0, 0.0, 0.2, 0.2]
    sure = looks([elsewhere], [CENTRE], [[1, 0, 0]], [0], quality=[0.9])
    unsure = looks([elsewhere], [CENTRE], [[1, 0, 0]], [0], quality=[0.1])
    assert suspects_lib.box_scores(sure) == suspects_lib.box_scores(unsure)


@pytest.mark.parametrize(
    "given, model, kind",
    [
        ([0.0, 0.0, 0.95, 0.95], CENTRE, suspects_lib.BOX_TOO_LOOSE),
        ([0.45, 0.45, 0.55, 0.55], CENTRE, suspects_lib.BOX_TOO_TIGHT),
        ([0.0, 0.0, 0.2, 0.2], CENTRE, suspects_lib.BOX_ELSEWHERE),
        ([0.4, 0.4, 0.9, 0.9], CENTRE, suspects_lib.BOX_OFF),
    ],
)
def test_box_kinds_follow_how_the_boxes_lie(given, model, kind):
    assert suspects_lib.box_kind(np.array(given), np.array(model)) == kind


def test_the_ranking_puts_wrong_labels_first_with_kinds_and_suggestions():
    clean = ([CENTRE, [1.0, 0.0, 0.0]], 0)
    found = looks(
        given_boxes=[CENTRE, CENTRE, [0.0, 0.0, 0.2, 0.2], CENTRE],
        boxes=[CENTRE] * 4,
        probabilities=[[0.95, 0.03, 0.02], [0.02, 0.96, 0.02], [0.9, 0.05, 0.05], clean[0][1]],
        labels=[0, 0, 0, 0],
        quality=[0.8, 0.8, 0.8, 0.8],
    )
    ranking = suspects_lib.rank(result(found), NAMES)
    assert list(ranking.looks.ids[:2]) == ["img2", "img1"]  # box score 1.0, class score 0.98
    assert list(ranking.kinds[:2]) == [suspects_lib.BOX_ELSEWHERE, suspects_lib.WRONG_CLASS]
    assert set(ranking.kinds[2:]) == {suspects_lib.NONE}
    assert ranking.suspects == 2
    assert list(ranking.suggested_labels[:2]) == [0, 1]
    np.testing.assert_allclose(ranking.suggested_boxes[0], CENTRE)  # the model's box
    np.testing.assert_allclose(ranking.suggested_boxes[1], CENTRE)  # the class was wrong
    np.testing.assert_allclose(ranking.scores, sorted(ranking.scores, reverse=True))


def test_near_duplicates_given_other_classes_are_suspects_both():
    embeddings = np.eye(3, 8, dtype=np.float32)
    embeddings[1] = embeddings[0]
    found = looks(
        [CENTRE] * 3,
        [CENTRE] * 3,
        [[0.6, 0.4, 0.0], [0.4, 0.6, 0.0], [1, 0, 0]],
        [0, 1, 0],
        embeddings=embeddings,
    )
    ranking = suspects_lib.rank(result(found), NAMES)
    assert set(ranking.looks.ids[:2]) == {"img0", "img1"}
    assert list(ranking.kinds[:2]) == [suspects_lib.DUPLICATE] * 2
    assert "near-duplicate of img1" in ranking.evidence[list(ranking.looks.ids).index("img0")]


def test_near_duplicates_with_one_class_are_no_suspects():
    embeddings = np.ones([2, 4], np.float32) / 2
    assert suspects_lib.near_duplicates(embeddings, np.array([1, 1])) == {}


def test_each_half_of_a_label_changes_on_its_own_evidence():
    elsewhere = [0.0, 0.0, 0.2, 0.2]
    found = looks(
        given_boxes=[elsewhere, elsewhere],
        boxes=[CENTRE] * 2,
        # Both doubted; the box alone (the class kept: p(given) 0.6).
        probabilities=[[0.1, 0.3, 0.6], [0.6, 0.3, 0.1]],
        labels=[0, 0],
    )
    ranking = suspects_lib.rank(result(found), NAMES)
    by_id = {example_id: i for i, example_id in enumerate(ranking.looks.ids)}
    both, box_only = by_id["img0"], by_id["img1"]
    assert ranking.kinds[both] == ranking.kinds[box_only] == suspects_lib.BOX_ELSEWHERE
    assert ranking.suggested_labels[both] == 2 and ranking.suggested_labels[box_only] == 0
    np.testing.assert_allclose(ranking.suggested_boxes[[both, box_only]], [CENTRE, CENTRE])


def test_near_duplicates_are_found_across_blocks(monkeypatch):
    monkeypatch.setattr(out_of_sample, "SIMILARITY_BLOCK", 2)
    embeddings = np.eye(5, 8, dtype=np.float32)
    embeddings[4] = embeddings[0]  # in another block than its twin
    found = suspects_lib.near_duplicates(embeddings, np.array([0, 1, 2, 0, 1]))
    assert found == {0: [4], 4: [0]}

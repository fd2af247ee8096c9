"""Tests of pipelines/show.py: the preview command's choice of examples."""

import pipelines
from pipelines.sources import source as source_lib
from pipelines.sources.source import (
    ID,
    LABEL,
)
from tests import fixtures


def test_show_samples_across_classes_not_the_first_examples(tmp_path):
    from pipelines import show

    # Sorted by class, as many datasets are: the first five are all cats.
    items = [
        (f"{name}{i}", 16, 16, [(name, (2, 2, 12, 12))], ())
        for name, count in (("cat", 6), ("dog", 2), ("plate", 3))
        for i in range(count)
    ]
    source = pipelines.get_source(
        "voc_dir", data_dir=fixtures.make_voc_folder(tmp_path / "v", {"train": items})
    )
    assert [int(e[LABEL]) for e in source.load("train").take(5)] == [0] * 5

    def sampled(count, seed):
        return [
            (e[ID].numpy().decode(), int(e[LABEL]))
            for e in show.sample_across_classes(source, "train", count, seed)
        ]

    first = sampled(5, seed=0)
    labels = [label for _, label in first]
    assert sorted(labels[:3]) == [0, 1, 2]  # every class before any twice
    assert labels[3:5] == labels[0:2]  # then the next round, in the same class order
    assert len({i for i, _ in first}) == 5
    assert sampled(5, seed=0) == first  # seeded
    assert any(sampled(5, seed=s) != first for s in (1, 2, 3))
    assert len(sampled(50, seed=0)) == len(items)  # never more than the split holds
    picks = source_lib.stratified_indices([2, 2, 2, 0], 3, seed=4)
    assert (
        3 in picks[:2] and len(set(picks)) == 3
    )  # the rare class's one example comes in the first round

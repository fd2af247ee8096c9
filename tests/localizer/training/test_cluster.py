"""Tests of localizer/training/cluster.py: roles from TF_CONFIG."""

import json

import pytest

from localizer.training import cluster


def test_roles_from_tf_config():
    def role(cluster_spec, task_type, index):
        return cluster.role_from_tf_config(
            json.dumps({"cluster": cluster_spec, "task": {"type": task_type, "index": index}})
        )

    workers = {"worker": ["a:1", "b:1", "c:1"]}
    assert role(workers, "worker", 0) == cluster.Role(3, 0) and role(workers, "worker", 0).is_chief
    assert role(workers, "worker", 2) == cluster.Role(3, 2) and role(
        workers, "worker", 2
    ).shard == (3, 2)
    with_chief = {"chief": ["a:1"], "worker": ["b:1", "c:1"], "ps": ["d:1"]}
    assert role(with_chief, "chief", 0) == cluster.Role(3, 0)
    assert (
        role(with_chief, "worker", 0) == cluster.Role(3, 1)
        and not role(with_chief, "worker", 0).is_chief
    )
    with pytest.raises(ValueError, match="does not train"):
        role(with_chief, "ps", 0)
    with pytest.raises(ValueError, match="not in its cluster"):
        role(workers, "worker", 3)
    assert cluster.training_tasks({}) == 1
    assert (
        cluster.training_tasks(
            {
                "TF_CONFIG": json.dumps(
                    {"cluster": with_chief, "task": {"type": "chief", "index": 0}}
                )
            }
        )
        == 3
    )
    for bad in (
        "not json",
        "[]",
        '{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}',
    ):
        with pytest.raises(ValueError, match="TF_CONFIG is not valid"):
            cluster.parse_tf_config(bad)
    assert cluster.Role().shard is None and str(cluster.Role(2, 1)) == "worker 1 of 2"

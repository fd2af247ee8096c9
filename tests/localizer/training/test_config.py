"""Tests of localizer/training/config.py: every field checked, overrides, config files."""

import json
import types

import pytest

from localizer.training import config as config_lib
from pipelines import fields
from tests import fixtures


def test_every_config_field_has_a_rule():
    leaves = list(fields.leaves(config_lib.default_config()))
    assert len(leaves) > 60
    for path, value, field in leaves:
        assert isinstance(field.metadata.get(fields.RULE), fields.Rule), path
        assert fields.problem(field, value) is None, path  # the defaults keep their own rules


NUMERIC = {
    path: field.metadata[fields.RULE]
    for path, _, field in fields.leaves(config_lib.default_config())
    if isinstance(field.metadata[fields.RULE], fields.Number)
}


@pytest.mark.parametrize("path", sorted(NUMERIC))
@pytest.mark.parametrize("value", [0, -1, 10**12])
def test_numeric_fields_at_zero_minus_one_and_absurd(path, value):
    rule = NUMERIC[path]
    value = value if rule.whole else float(value)
    accepted = (
        (rule.low is None or value >= rule.low)
        and (rule.high is None or value <= rule.high)
        and not (rule.multiple and value % rule.multiple)
    )
    config = config_lib.replace_fields(config_lib.default_config(), {path: value})
    if accepted:
        fields.check(config)
    else:
        with pytest.raises(fields.ConfigError, match=path.replace(".", r"\.")):
            fields.check(config)


def test_wrong_types_and_contradictions_are_refused():
    base = config_lib.default_config()
    for path, value in (
        ("frozen_epochs", "3"),
        ("alpha", True),
        ("cache_features", 1),
        ("model.attach", "ring"),
    ):
        with pytest.raises(ValueError, match=path.replace(".", r"\.")):
            config_lib.replace_fields(base, {path: value}).validate()
    with pytest.raises(ValueError, match="contradicts model.image_size"):
        config_lib.apply_overrides(
            base, ["model.image_size=64", "pipeline.image_size=96"]
        ).validate()
    with pytest.raises(ValueError, match="Nothing to train"):
        config_lib.apply_overrides(base, ["frozen_epochs=0", "fine_tune_epochs=0"]).validate()


def test_experiment_names_and_field_groups_give_clear_errors():
    from localizer import train

    for name in ("common", "__init__", "../x", "nope.sub", "nope"):
        with pytest.raises(fields.ConfigError, match="no experiment"):
            train.load_experiment(name)
    with pytest.raises(ValueError, match="group of fields"):
        config_lib.apply_overrides(config_lib.default_config(), ["model=1"])


def test_overrides_parse_by_type_and_name_bad_fields():
    config = config_lib.apply_overrides(
        config_lib.default_config(),
        [
            "model.attach=pooled",
            "alpha=0.25",
            "cache_features=false",
            "data.data_dir=none",
            "frozen_epochs=3",
        ],
    )
    assert (config.model.attach, config.alpha, config.cache_features, config.frozen_epochs) == (
        "pooled",
        0.25,
        False,
        3,
    )
    with pytest.raises(ValueError, match="no field"):
        config_lib.apply_overrides(config, ["model.nope=1"])
    with pytest.raises(ValueError, match="frozen_epochs='many' must be a whole number"):
        config_lib.apply_overrides(config, ["frozen_epochs=many"])
    round_trip = config_lib.from_dict(json.loads(config_lib.to_json(config)))
    assert round_trip == config


def test_override_values_are_yaml_read_as_the_field_and_checked_by_its_rule():
    config = config_lib.apply_overrides(
        config_lib.default_config(),
        [
            "data.voc_year=2012",  # a text field keeps the text as written
            "alpha=1",  # a whole number for a real field
            "jit_compile=1",
            "deterministic=yes",
            "data.data_dir=/data/my folder",
            "seed=null",
            "model.weights=none",  # "none" is a weights value, not a cleared field
            "pipeline.augment.crop_area_range=[0.1, 0.9]",
            "frozen_lr=3e-3",  # YAML 1.1 reads an exponent without a dot as text
            "fine_tune_lr=1E-4",
            "pipeline.augment.crop_aspect_ratio_range=[5e-1, 2]",
        ],
    )
    assert (config.frozen_lr, config.fine_tune_lr) == (3e-3, 1e-4)
    assert (config.data.voc_year, config.alpha, config.jit_compile, config.deterministic) == (
        "2012",
        1.0,
        True,
        True,
    )
    assert (config.data.data_dir, config.seed, config.model.weights) == (
        "/data/my folder",
        None,
        "none",
    )
    augment = config.pipeline.augment
    assert (augment.crop_area_range, augment.crop_aspect_ratio_range) == ((0.1, 0.9), (0.5, 2))
    for override, message in (
        ("alpha=2", "alpha=2.0 must be at most 1.0"),
        ("model.image_size=100", "must be a multiple of 32"),
        ("model.attach=ring", "must be one of"),
        ("cache_features=2", "must be true or false"),
        ("data.dataset=nope", "must be one of"),
        ("pipeline.augment.crop_area_range=[0.5, 2]", "<= 1"),
        ("alpha", "must look like field.path=value"),
    ):
        with pytest.raises(config_lib.ConfigError, match=message):
            config_lib.apply_overrides(config_lib.default_config(), [override])


class _Given:
    """Flag values as `localizer.train.config_from_flags` reads them: only `given` are present."""

    def __init__(self, **given):
        self._given = {"experiment": "", "config": "", "set": [], **given}

    def __getattr__(self, name):
        return self._given.get(name)

    def __getitem__(self, name):
        return types.SimpleNamespace(present=name in self._given, value=self._given.get(name))


def test_config_files_json_records_and_py_with_an_argument(tmp_path):
    from localizer import train as train_command

    # A resolved config (a work dir's config.json, a run record's "config") reruns as it ran.
    for replicas in (1, 2):
        ran = fixtures.tiny_config().resolve(["cat", "dog"], replicas)
        record = {"command": "x", "config": {**config_lib.to_dict(ran), "replicas": replicas}}
        path = tmp_path / f"record{replicas}.json"
        path.write_text(json.dumps(record))
        loaded = train_command.load_config_file(str(path))
        assert loaded.resolve(["cat", "dog"], replicas) == ran
    assert ran.resolve(["cat", "dog"], 1) == ran.resolve(["cat", "dog"], 1).resolve(["cat", "dog"])
    sweep = tmp_path / "sweep.py"
    sweep.write_text(
        "from localizer.training import config\n"
        "def get_config(arg='0'):\n"
        "    return config.replace_fields(config.default_config(), {'seed': int(arg)})\n"
    )
    assert train_command.load_config_file(f"{sweep}:7").seed == 7
    assert train_command.load_config_file(str(sweep)).seed == 0
    (tmp_path / "empty.py").write_text("x = 1\n")
    typo = config_lib.to_dict(ran)
    typo["model"]["atach"] = typo["model"].pop("attach")
    (tmp_path / "typo.json").write_text(json.dumps({**typo, "alpah": 0.3}))
    for spec, message in (
        (str(tmp_path / "typo.json"), "names fields no config has: alpah, model.atach"),
        (str(tmp_path / "empty.py"), "get_config"),
        (str(tmp_path / "missing.json"), "no such file"),
        (str(tmp_path / "sweep.txt"), "no such file"),
    ):
        with pytest.raises(config_lib.ConfigError, match=message):
            train_command.load_config_file(spec)
    with pytest.raises(config_lib.ConfigError, match="--config and --experiment"):
        train_command.config_from_flags(_Given(config=str(sweep), experiment="quickstart"))


def test_dataset_and_shortcut_flags_set_their_fields_then_set_overrides():
    from localizer import train as train_command

    assert {name for name, _, _ in train_command.shortcut_flags()} == {
        "backbone",
        "weights",
        "image_size",
        "batch_size",
        "strategy",
        "precision",
        "jit_compile",
        "seed",
    }
    config = train_command.config_from_flags(
        _Given(
            dataset="csv",
            data_dir="",  # --data_dir= clears it
            image_dir="/images",
            image_size=64,
            jit_compile=True,
            set=["model.image_size=96"],
        )
    )
    assert (config.data.dataset, config.data.data_dir, config.data.image_dir) == (
        "csv",
        None,
        "/images",
    )
    assert (config.model.image_size, config.jit_compile) == (96, True)
    with pytest.raises(config_lib.ConfigError, match="must be a multiple of 32"):
        train_command.config_from_flags(_Given(image_size=100))

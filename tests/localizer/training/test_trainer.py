"""Training: every configuration steps, the model learns, runs repeat, resume and distribute."""

import glob
import json
import os
import signal
import subprocess
import sys
import time
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import pipelines
from localizer import model as model_lib
from localizer.model import losses
from localizer.training import config as config_lib
from localizer.training import iou_callback, objective, weight_average
from localizer.training import trainer as train
from pipelines import input_pipeline

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**changes):
    """A tiny, fast synthetic run: 32 px, tiny backbone, few examples."""
    overrides = {
        "model.backbone": "tiny",
        "model.weights": "none",
        "model.image_size": "32",
        "model.head_units": "32",
        "pipeline.batch_size": "16",
        "data.max_examples": "64",
        "frozen_epochs": "1",
        "fine_tune_epochs": "1",
        "fine_tune_fraction": "1.0",
        "feature_passes": "1",
    }
    overrides.update(changes)
    return config_lib.apply_overrides(
        config_lib.default_config(), [f"{k}={v}" for k, v in overrides.items()]
    )


@pytest.fixture(scope="module")
def synthetic_batch():
    source = pipelines.get_source("synthetic", sizes={"train": 16}, image_size_range=(40, 60))
    config = input_pipeline.PipelineConfig(
        image_size=32, resize_mode="letterbox", batch_size=16, seed=0
    )
    return next(iter(input_pipeline.make_dataset(source, "train", config, training=True)))


ALL_CONFIGURATIONS = [
    (*head, loss) for head in model_lib.HEAD_CONFIGURATIONS for loss in losses.BOX_LOSSES
]
# The fast suite: every head configuration once and every box loss at least once; `make test-slow`
# all pairs.
FAST_CONFIGURATIONS = [
    (*head, losses.BOX_LOSSES[i % len(losses.BOX_LOSSES)])
    for i, head in enumerate(model_lib.HEAD_CONFIGURATIONS)
]
CONFIGURATIONS = FAST_CONFIGURATIONS + [
    pytest.param(*c, marks=pytest.mark.slow)
    for c in ALL_CONFIGURATIONS
    if c not in FAST_CONFIGURATIONS
]


@pytest.mark.parametrize("attach,regression,box_loss", CONFIGURATIONS)
def test_one_fit_step_per_configuration(synthetic_batch, attach, regression, box_loss):
    model_config = model_lib.ModelConfig(
        num_classes=6,
        backbone="tiny",
        weights="none",
        image_size=32,
        attach=attach,
        regression=regression,
        head_units=32,
    )
    model = model_lib.build_model(model_config)
    view = model_lib.training_view(model)
    config = config_lib.TrainConfig(box_loss=box_loss)
    objective.compile_model(view, config, 1e-2, steps_per_epoch=1, epochs=1)
    images, targets = objective.training_targets(model_config)(*synthetic_batch)
    heads = model.get_layer("heads").trainable_weights
    before = [w.numpy().copy() for w in heads]
    logs = view.train_on_batch(images, targets, return_dict=True)
    assert np.isfinite(logs["loss"]) and np.isfinite(logs["quality_and_box_loss"])
    assert any(not np.allclose(b, a.numpy()) for b, a in zip(before, heads))
    # The box-quality head learns in the same step.
    assert any(
        not np.allclose(b, a.numpy())
        for b, a in zip(before, heads)
        if a.path.startswith("quality_")
    )


def test_compile_model_weights_every_loss_as_configured(synthetic_batch):
    """The trainer's compile_model on the centre-weighted head: alpha, and the per-cell weights."""
    model_config = model_lib.ModelConfig(
        num_classes=6,
        backbone="tiny",
        weights="none",
        image_size=32,
        head_units=32,
        feature_stride=16,
    )
    view = model_lib.training_view(model_lib.build_model(model_config))
    config = config_lib.TrainConfig(
        alpha=0.3,
        label_smoothing=0.0,
        box_loss="giou",
        cell_box_loss_weight=0.7,
        centre_loss_weight=0.4,
        box_quality_loss_weight=0.6,
    )
    objective.compile_model(view, config, 1e-3, steps_per_epoch=1, epochs=1)
    images, targets = objective.training_targets(model_config)(*synthetic_batch)
    logs = view.test_on_batch(images, targets, return_dict=True)
    outputs = view(images, training=False)
    part = {
        "class_logits": losses.ClassificationLoss(0.0)(
            targets["class_logits"], outputs["class_logits"]
        ),
        "box": losses.BoxLoss("giou")(targets["box"], outputs["box"]),
        "cell_boxes": losses.CellBoxLoss("giou")(targets["cell_boxes"], outputs["cell_boxes"]),
        "centre_logits": losses.CentreLoss()(targets["centre_logits"], outputs["centre_logits"]),
        "quality_and_box": losses.BoxQualityLoss()(
            targets["quality_and_box"], outputs["quality_and_box"]
        ),
    }
    part = {name: float(value) for name, value in part.items()}
    for name, value in part.items():
        np.testing.assert_allclose(logs[f"{name}_loss"], value, rtol=1e-4, err_msg=name)
    expected = 0.3 * part["class_logits"] + 0.7 * (
        part["box"]
        + 0.7 * part["cell_boxes"]
        + 0.4 * part["centre_logits"]
        + 0.6 * part["quality_and_box"]
    )
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-4)


@pytest.mark.slow
def test_learns_far_better_than_a_constant_guess(tmp_path):
    # The real recipe at a small size: pretrained EfficientNet-Lite0 (offline
    # weights), frozen, heads on cached features.
    config = tiny_config(
        **{
            "model.backbone": "efficientnet_lite0",
            "model.weights": "imagenet",
            "model.image_size": "96",
            "model.head_units": "128",
            "data.max_examples": "600",
            "frozen_epochs": "8",
            "fine_tune_epochs": "0",
            "frozen_lr": "3e-3",
            "pipeline.batch_size": "32",
        }
    )
    summary = train.train_and_evaluate(config, str(tmp_path))
    best, baseline = summary["best"], summary["constant_guess_baseline"]
    assert best["mean_iou"] > baseline["mean_iou"] + 0.1, (best["mean_iou"], baseline["mean_iou"])
    assert best["classification_accuracy"] > 2 * baseline["classification_accuracy"]
    for name in (
        "best.keras",
        "final.keras",
        "config.json",
        "metrics.jsonl",
        "metrics.csv",
        "train_summary.json",
    ):
        assert os.path.exists(tmp_path / name), name
    loaded = keras.models.load_model(str(tmp_path / "best.keras"), safe_mode=True)
    assert set(loaded.output) == {"class_logits", "box", "box_quality"}
    # Every evaluation logged one preview grid (3 x 3 val images of 96 px) to TensorBoard.
    grids = _summary_images(
        tmp_path / "tensorboard" / "validation_full", "val_predictions/true_green_predicted_red"
    )
    assert [step for step, _ in grids] == list(range(1, 9))
    assert all(image.shape == (288, 288, 3) for _, image in grids)
    assert not np.array_equal(
        grids[0][1], grids[-1][1]
    )  # the predicted boxes moved as the heads learned


def _summary_images(folder, tag):
    """`(step, decoded image)` of every image summary `tag` in the event files under `folder`."""
    found = []
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    encoded = tf.make_ndarray(value.tensor)[2]  # [width, height, png]
                    found.append((event.step, tf.io.decode_png(encoded).numpy()))
    return found


def test_prediction_grid_draws_true_green_and_predicted_red():
    images = np.zeros((4, 20, 20, 3), np.uint8)
    true = np.array([[0.1, 0.1, 0.5, 0.5]] * 4, np.float32)
    predicted = np.array([[0.5, 0.5, 0.9, 0.9]] * 4, np.float32)
    grid = iou_callback.prediction_grid(images, true, predicted, columns=3).numpy()[0]
    assert grid.shape == (40, 60, 3)  # 2 rows of 3, the sixth tile empty
    tile = grid[:20, :20]
    assert np.allclose(tile[1, 5], [0, 1, 0]) and np.allclose(
        tile[5, 1], [0, 1, 0]
    )  # the true box's edges
    assert np.allclose(tile[17, 13], [1, 0, 0]) and np.allclose(
        tile[13, 17], [1, 0, 0]
    )  # the predicted one's
    assert np.allclose(tile[5, 5], 0) and np.allclose(tile[13, 13], 0)  # inside the outlines
    assert np.allclose(grid[20:, 40:], 0)  # the padding tile


def _run_cli(workdir, *extra, env=None, wait=True):
    command = [
        sys.executable,
        "-m",
        "localizer.train",
        f"--workdir={workdir}",
        "--backbone=tiny",
        "--weights=none",
        "--image_size=32",
        "--set=data.max_examples=96",
        "--set=model.head_units=32",
        "--batch_size=16",
        "--set=feature_passes=1",
        *extra,
    ]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    if not wait:
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    return subprocess.run(
        command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=600
    )


def _weights(path):
    model = keras.models.load_model(path, safe_mode=True)
    return [w.numpy() for w in model.weights]


@pytest.mark.slow
def test_same_seed_same_weights_in_separate_runs(tmp_path):
    runs = []
    for name in ("a", "b"):
        result = _run_cli(
            tmp_path / name,
            "--seed=3",
            "--set=deterministic=true",
            "--set=frozen_epochs=1",
            "--set=fine_tune_epochs=1",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        runs.append(_weights(str(tmp_path / name / "final.keras")))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
    script = f"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from localizer.training import config as config_lib, trainer as train
from tests.test_train import tiny_config
summary = train.train_and_evaluate(tiny_config(strategy="mirrored"), {str(tmp_path)!r})
print("REPLICAS", tf.distribute.MirroredStrategy().num_replicas_in_sync)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["replicas"] == 2
    # The global batch is the per-replica batch times the replicas.
    assert saved["pipeline"]["batch_size"] == 32
    assert os.path.exists(tmp_path / "best.keras")


def _history_epochs(workdir):
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line)["epoch"] for line in f if line.strip()]


@pytest.mark.slow  # the fast suite kills at a stage boundary (tests/test_commands.py)
def test_resumes_after_sigkill_from_last_completed_epoch(tmp_path):
    workdir = str(tmp_path / "run")
    args = ("--set=frozen_epochs=3", "--set=fine_tune_epochs=4", "--set=data.max_examples=256")
    process = _run_cli(workdir, *args, wait=False)
    deadline = time.time() + 300
    # Kill it in the middle of the fine-tuning stage (epochs 4..7).
    while time.time() < deadline and process.poll() is None and len(_history_epochs(workdir)) < 5:
        time.sleep(0.2)
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = _history_epochs(workdir)
    assert 5 <= len(done_before) < 7
    result = _run_cli(workdir, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    epochs = _history_epochs(workdir)
    # No epoch was trained twice and the run reached the end.
    assert epochs[-1] == 7 and len(epochs) == len(set(epochs))
    assert epochs[: len(done_before)] == done_before
    assert os.path.exists(os.path.join(workdir, "final.keras"))
    # The same command never interrupted ends within noise of the resumed run.
    straight = str(tmp_path / "straight")
    assert _run_cli(straight, *args).returncode == 0
    resumed_iou = json.loads(open(os.path.join(workdir, "train_summary.json")).read())["last"][
        "mean_iou"
    ]
    straight_iou = json.loads(open(os.path.join(straight, "train_summary.json")).read())["last"][
        "mean_iou"
    ]
    assert abs(resumed_iou - straight_iou) < 0.05, (resumed_iou, straight_iou)


def test_a_failed_model_write_keeps_the_previous_file(tmp_path):
    from localizer.training import backups

    model = model_lib.build_model(
        model_lib.ModelConfig(num_classes=3, backbone="tiny", weights="none", image_size=32)
    )
    path = str(tmp_path / "best.keras")
    backups.save_model_atomically(model, path)
    before = open(path, "rb").read()

    class Killed(Exception):
        pass

    def save_then_die(target, *args, **kwargs):
        with open(target, "wb") as f:
            f.write(b"half a zip file")
        raise Killed()

    original_save = model.save
    model.save = save_then_die
    with pytest.raises(Killed):
        backups.save_model_atomically(model, path)
    model.save = original_save
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["best.keras"]  # no temporary left behind
    keras.models.load_model(path, safe_mode=True)


def test_unwritable_workdir_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="not writable"):
        train.train_and_evaluate(tiny_config(), str(blocker / "work"))


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
        ran = tiny_config().resolve(["cat", "dog"], replicas)
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
    for spec, message in (
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


class _WeightsAtEpochEnd(keras.callbacks.Callback):
    """Records the model's weights and the optimizer's moving averages at each epoch's end."""

    def __init__(self):
        super().__init__()
        self.weights, self.averages = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([w.numpy() for w in self.model.trainable_weights])
        self.averages.append(
            [a.numpy() for a in self.model.optimizer._model_variables_moving_average]
        )


def _ema_fit(initial, callbacks, epochs=3):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.set_weights(initial)
    model.compile(
        optimizer=keras.optimizers.AdamW(0.05, use_ema=True, ema_momentum=0.5), loss="mse"
    )
    x = np.linspace(-1, 1, 48, dtype=np.float32).reshape(16, 3)
    model.fit(
        x,
        x.sum(axis=1, keepdims=True),
        batch_size=4,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )
    return model


def test_validating_with_the_average_leaves_training_on_the_trained_weights():
    keras.utils.set_random_seed(0)
    initial = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)]
    ).get_weights()
    plain = _WeightsAtEpochEnd()
    reference = _ema_fit(initial, [plain])  # the moving average computed, never swapped in
    validated, after = _WeightsAtEpochEnd(), _WeightsAtEpochEnd()
    model = _ema_fit(
        initial,
        [
            weight_average.ValidateWithAverage(),
            validated,
            weight_average.RestoreTrainedWeights(),
            after,
        ],
    )
    for epoch in range(3):
        # Between the two callbacks the model holds the average of that moment ...
        for seen, average in zip(validated.weights[epoch], plain.averages[epoch]):
            np.testing.assert_allclose(seen, average, rtol=1e-5, atol=1e-6)
        if epoch < 2:  # ... and after them the trained weights, so training goes on unchanged.
            for seen, trained in zip(after.weights[epoch], plain.weights[epoch]):
                np.testing.assert_allclose(seen, trained, rtol=1e-5, atol=1e-6)
    assert not np.allclose(
        plain.weights[0][0], plain.averages[0][0]
    )  # the test can tell them apart
    # After the last epoch the average stays, in the model as in the reference's finalize.
    for final, expected in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(final, expected, rtol=1e-5, atol=1e-6)
    for seen, average in zip(after.weights[2], plain.averages[2]):
        np.testing.assert_allclose(seen, average, rtol=1e-5, atol=1e-6)


def test_training_with_weight_averaging_end_to_end(tmp_path):
    result = _run_cli(
        tmp_path / "w",
        "--set=ema_momentum=0.9",
        "--set=frozen_epochs=1",
        "--set=fine_tune_epochs=2",
        "--set=cache_features=false",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = json.loads((tmp_path / "w" / "config.json").read_text())
    assert config["ema_momentum"] == 0.9
    keras.models.load_model(str(tmp_path / "w" / "best.keras"), safe_mode=True)

"""Tests of localizer/training/objective.py: targets, losses and metrics as compiled."""

import numpy as np
import pytest

import pipelines
from localizer import model as model_lib
from localizer.model import losses
from localizer.training import config as config_lib
from localizer.training import objective
from pipelines import input_pipeline


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
    assert any(not np.allclose(b, a.numpy()) for b, a in zip(before, heads, strict=False))
    # The box-quality head learns in the same step.
    assert any(
        not np.allclose(b, a.numpy())
        for b, a in zip(before, heads, strict=False)
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

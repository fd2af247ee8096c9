"""The model: every head configuration builds, round-trips, and gives valid boxes."""

import keras
import numpy as np
import pytest

from localizer import model as model_lib
from localizer.model import backbones
from localizer.model import layers as layers_lib
from tests import roundtrip

TINY = {"num_classes": 3, "backbone": "tiny", "weights": "none", "image_size": 32}


CONFIGS = list(model_lib.HEAD_CONFIGURATIONS)


def _images(n=2, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype("uint8")


@pytest.mark.parametrize("attach,regression", CONFIGS)
def test_builds_round_trips_and_has_no_lambda(tmp_path, attach, regression):
    model = model_lib.build_model(
        model_lib.ModelConfig(attach=attach, regression=regression, **TINY)
    )
    outputs = model(_images())
    assert set(outputs) == {"class_logits", "box", "box_quality"}
    assert outputs["class_logits"].shape == (2, 3) and outputs["box"].shape == (2, 4)
    quality = np.asarray(outputs["box_quality"])
    assert (
        quality.shape == (2,)
        and quality.dtype == np.float32
        and np.all((quality >= 0) & (quality <= 1))
    )
    roundtrip.assert_model_round_trips(model, _images(), str(tmp_path / "m.keras"))


@pytest.mark.parametrize("attach", model_lib.ATTACH_MODES)
def test_a_model_without_box_quality_has_the_two_outputs_and_round_trips(tmp_path, attach):
    model = model_lib.build_model(model_lib.ModelConfig(attach=attach, box_quality=False, **TINY))
    assert set(model(_images())) == {"class_logits", "box"}
    assert not [
        layer.name for layer in model_lib.leaf_layers(model) if layer.name.startswith("quality")
    ]
    assert "quality_and_box" not in model_lib.training_view(model).output
    roundtrip.assert_model_round_trips(model, _images(), str(tmp_path / "m.keras"))


@pytest.mark.parametrize("attach", model_lib.ATTACH_MODES)
def test_box_quality_loss_trains_the_quality_head_alone(attach):
    """The quality's target is the box's IoU: its gradient must reach neither the box nor the class
    head."""
    import tensorflow as tf

    from localizer.model import losses

    model = model_lib.build_model(model_lib.ModelConfig(attach=attach, **TINY))
    view = model_lib.training_view(model)
    true_boxes = tf.constant([[0.1, 0.1, 0.6, 0.7], [0.3, 0.2, 0.9, 0.5]])
    with tf.GradientTape() as tape:
        outputs = view(_images(), training=True)
        loss = tf.reduce_mean(losses.box_quality_loss(true_boxes, outputs["quality_and_box"]))
    weights = view.trainable_weights
    gradients = dict(zip((w.path for w in weights), tape.gradient(loss, weights), strict=False))
    quality = {path for path in gradients if path.startswith("quality_")}
    assert quality and all(gradients[path] is not None for path in quality)
    assert any(np.any(gradients[path].numpy() != 0) for path in quality)
    others = {path: g for path, g in gradients.items() if path not in quality and g is not None}
    assert all(not np.any(g.numpy()) for g in others.values()), sorted(others)
    # And the packed box and quality are the model's.
    inference = model(_images(), training=False)
    packed = view(_images(), training=False)["quality_and_box"]
    np.testing.assert_allclose(packed[:, 1:], inference["box"], atol=1e-6)
    np.testing.assert_allclose(packed[:, 0], inference["box_quality"], atol=1e-6)


@pytest.mark.parametrize("attach,regression", CONFIGS)
def test_training_views_share_weights(attach, regression):
    model = model_lib.build_model(
        model_lib.ModelConfig(attach=attach, regression=regression, **TINY)
    )
    view = model_lib.training_view(model)
    outputs = view(_images())
    expected = {"class_logits", "box", "localization"} | (
        {"class_boxes"} if regression == "per_class" else set()
    )
    expected |= {"centre_logits", "cell_boxes"} if attach == "centre_weighted" else set()
    expected |= {"quality_and_box"}
    assert set(outputs) == expected
    np.testing.assert_allclose(outputs["box"], model(_images())["box"], atol=1e-6)
    np.testing.assert_allclose(outputs["localization"][:, :4], outputs["box"], atol=1e-6)
    features_view = model_lib.features_training_view(model)
    features = model.get_layer("backbone")(_images())
    np.testing.assert_allclose(features_view(features)["box"], outputs["box"], atol=1e-5)
    assert {w.path for w in features_view.weights} <= {w.path for w in model.weights}


def test_unfreeze_top_keeps_batchnorm_frozen():
    model = model_lib.build_model(model_lib.ModelConfig(**TINY))
    model_lib.freeze_backbone(model)
    assert not model.get_layer("backbone").trainable_weights
    count = model_lib.unfreeze_top_of_backbone(model, 0.5)
    leaves = [
        layer for layer in model_lib.leaf_layers(model.get_layer("backbone")) if layer.weights
    ]
    assert count >= 1
    assert not any(
        layer.trainable for layer in leaves if isinstance(layer, keras.layers.BatchNormalization)
    )
    assert leaves[-2].trainable and not leaves[0].trainable  # top conv trainable, bottom frozen


def test_unknown_names_are_clear():
    with pytest.raises(ValueError, match="Unknown backbone"):
        backbones.build_backbone("nope", 32)
    with pytest.raises(ValueError, match="attach"):
        model_lib.build_model(
            model_lib.ModelConfig(num_classes=3, attach="x", backbone="tiny", weights="none")
        )


def test_model_carries_its_metadata_through_keras_files(tmp_path):
    config = model_lib.ModelConfig(
        class_names=("cat", "dog", "plate"), resize_mode="stretch", **TINY
    )
    model = model_lib.build_model(config)
    loaded = roundtrip.assert_model_round_trips(model, _images(), str(tmp_path / "m.keras"))
    expected = {"class_names": ["cat", "dog", "plate"], "resize_mode": "stretch", "image_size": 32}
    # The model's own, in its config: not hidden in a head layer.
    assert isinstance(loaded, model_lib.Localizer) and loaded.metadata == expected
    assert model_lib.model_metadata(loaded) == expected
    assert not hasattr(loaded.get_layer("heads").get_layer("class_logits"), "class_names")


def test_a_model_saved_with_its_metadata_in_the_class_logits_layer_still_loads(
    tmp_path, monkeypatch
):
    """Models saved before `Localizer` are plain functional models whose `class_logits` layer
    (`layers.ModelMetadata`) holds the metadata: they load, with the same metadata and outputs."""
    config = model_lib.ModelConfig(
        class_names=("cat", "dog", "plate"), resize_mode="stretch", **TINY
    )

    def metadata_layer(dtype, name):  # what the heads built before
        return layers_lib.ModelMetadata(
            config.class_names, config.resize_mode, config.image_size, dtype=dtype, name=name
        )

    with monkeypatch.context() as patch:
        patch.setattr(keras.layers, "Identity", metadata_layer)
        built = model_lib.build_model(config)
    old = keras.Model(built.input, built.output, name="localizer")  # a plain Functional, as then
    assert isinstance(old.get_layer("heads").get_layer("class_logits"), layers_lib.ModelMetadata)
    path = str(tmp_path / "old.keras")
    old.save(path)
    loaded = keras.models.load_model(path, safe_mode=True, compile=False)
    assert not isinstance(loaded, model_lib.Localizer)
    assert model_lib.model_metadata(loaded) == {
        "class_names": ["cat", "dog", "plate"],
        "resize_mode": "stretch",
        "image_size": 32,
    }
    images = _images()
    for name, value in old(images).items():
        np.testing.assert_array_equal(loaded(images)[name], value)
    from localizer.inference.predictor import Predictor

    assert Predictor(path).class_names == ["cat", "dog", "plate"]


@pytest.mark.parametrize("attach", ["centre_weighted", "flattened"])
def test_stride_16_features_reach_the_heads(tmp_path, attach):
    config = model_lib.ModelConfig(**{**TINY, "image_size": 64}, attach=attach, feature_stride=16)
    model = model_lib.build_model(config)
    backbone = model.get_layer("backbone")
    # tiny: 4 stride-2 convs -> 4x4x32 final map; its 8x8x32 map is packed in.
    assert backbone.output.shape[1:] == (4, 4, 32 + 4 * 32)
    assert backbones.fine_feature_channels(backbone) == 32
    view = model_lib.training_view(model)
    outputs = view(_images(size=64))
    if attach == "centre_weighted":
        assert outputs["cell_boxes"].shape == (2, 8, 8, 4)  # the stride-16 grid
    roundtrip.assert_model_round_trips(model, _images(size=64), str(tmp_path / "m.keras"))


def test_dense_head_refuses_per_class_regression():
    with pytest.raises(ValueError, match="centre_weighted"):
        model_lib.build_model(
            model_lib.ModelConfig(**TINY, attach="centre_weighted", regression="per_class")
        )


def test_legacy_head_names_still_load():
    for old, new in model_lib.LEGACY_ATTACH_NAMES.items():
        assert model_lib.ModelConfig(attach=old).attach == new
    from localizer.training import config as config_lib

    saved = config_lib.to_dict(config_lib.default_config())
    saved["model"]["attach"] = "dense"  # a config.json written before the rename
    assert config_lib.from_dict(saved).model.attach == model_lib.CENTRE_WEIGHTED

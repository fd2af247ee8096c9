"""The model: every head configuration builds, round-trips, and gives valid boxes."""

import keras
import numpy as np
import pytest

from localizer import model as model_lib
from localizer.model import backbones, box_layers
from localizer.model import layers as layers_lib
from localizer.model.box_layers import BoxFromLogits, SelectClassBox
from localizer.model.layers import ImagePreprocessing
from tests import roundtrip

TINY = dict(num_classes=3, backbone="tiny", weights="none", image_size=32)
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
    gradients = dict(zip((w.path for w in weights), tape.gradient(loss, weights)))
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
    assert set(w.path for w in features_view.weights) <= set(w.path for w in model.weights)


def test_box_from_logits_is_always_a_valid_box_inside_the_image():
    logits = np.random.default_rng(0).normal(0, 10, (1000, 4)).astype("float32")
    boxes = np.asarray(BoxFromLogits()(logits))
    assert np.all(boxes >= 0) and np.all(boxes <= 1)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    # Zero logits: a centred box of half the image.
    np.testing.assert_allclose(
        BoxFromLogits()(np.zeros((1, 4), "float32")), [[0.25, 0.25, 0.75, 0.75]]
    )


def test_select_class_box_takes_the_predicted_class():
    class_boxes = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4)
    logits = np.array([[0.1, 2.0, 0.3], [5.0, 0.0, 1.0]], "float32")
    np.testing.assert_allclose(
        SelectClassBox()([class_boxes, logits]), [class_boxes[0, 1], class_boxes[1, 0]]
    )


@pytest.mark.parametrize(
    "mode,expected",
    [
        ("none", [255.0, 0.0, 127.5]),
        ("tf", [1.0, -1.0, 0.0]),
        ("caffe", [127.5 - 103.939, 0 - 116.779, 255 - 123.68]),
    ],
)
def test_preprocessing_modes(mode, expected):
    pixel = np.array([[[[255.0, 0.0, 127.5]]]], "float32")
    np.testing.assert_allclose(
        np.asarray(ImagePreprocessing(mode)(pixel))[0, 0, 0], expected, atol=1e-4
    )


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


@pytest.mark.parametrize(
    "name", ["mobilenet_v2", "mobilenet_v3_small", "resnet50", "efficientnet_lite0"]
)
def test_backbones_build_without_weights(name):
    backbone = backbones.build_backbone(name, 64, weights=None)
    features = backbone(np.zeros((1, 64, 64, 3), "float32"))
    assert features.shape[0] == 1 and features.shape[1] == 2


def test_missing_imagenet_weights_give_one_line_alternatives(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]"
        )

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline)
    with pytest.raises(backbones.WeightsUnavailableError) as error:
        backbones.build_backbone("mobilenet_v2", 64, weights="imagenet")
    message = str(error.value)
    assert "\n" not in message and "efficientnet_lite0" in message and "--weights" in message


def test_unknown_names_are_clear():
    with pytest.raises(ValueError, match="Unknown backbone"):
        backbones.build_backbone("nope", 32)
    with pytest.raises(ValueError, match="attach"):
        model_lib.build_model(
            model_lib.ModelConfig(num_classes=3, attach="x", backbone="tiny", weights="none")
        )


def test_attention_box_pooling_hand_cases():
    from localizer.model.box_layers import AttentionBoxPooling

    zeros = np.zeros((1, 2, 2, 1), "float32")
    # Uniform attention over a 2x2 grid, sigmoid(0) = 0.5 everywhere:
    # cell boxes average to the centred half-size box.
    np.testing.assert_allclose(
        AttentionBoxPooling()([zeros, np.zeros((1, 2, 2, 4), "float32")]),
        [[0.25, 0.25, 0.75, 0.75]],
        atol=1e-6,
    )
    # All attention on the bottom-right cell (centre 0.75, 0.75): its box.
    peaked = zeros.copy()
    peaked[0, 1, 1, 0] = 50.0
    box = AttentionBoxPooling()([peaked, np.zeros((1, 2, 2, 4), "float32")])
    np.testing.assert_allclose(box, [[0.375, 0.375, 0.875, 0.875]], atol=1e-5)
    # Any logits: valid boxes inside the image; per-class shape.
    rng = np.random.default_rng(0)
    boxes = np.asarray(
        AttentionBoxPooling(3)(
            [
                rng.normal(0, 5, (4, 3, 5, 3)).astype("float32"),
                rng.normal(0, 5, (4, 3, 5, 12)).astype("float32"),
            ]
        )
    )
    assert boxes.shape == (4, 3, 4) and boxes.min() >= 0 and boxes.max() <= 1
    assert np.all(boxes[..., 2] > boxes[..., 0]) and np.all(boxes[..., 3] > boxes[..., 1])


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


def test_fine_features_pack_and_unpack_exactly():
    from localizer.model.layers import PackFineFeatures, UnpackFineFeatures

    rng = np.random.default_rng(0)
    coarse, fine = rng.random((2, 3, 4, 5), "float32"), rng.random((2, 6, 8, 7), "float32")
    packed = PackFineFeatures()([coarse, fine])
    assert packed.shape == (2, 3, 4, 5 + 4 * 7)
    got_coarse, got_fine = UnpackFineFeatures(7)(packed)
    np.testing.assert_array_equal(got_coarse, coarse)
    np.testing.assert_array_equal(got_fine, fine)


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


def test_fine_feature_layer_of_efficientnet_lite0_is_a_block_output():
    backbone = backbones.build_backbone("efficientnet_lite0", 224, "none", feature_stride=16)
    assert backbone.output.shape[1:] == (7, 7, 1280 + 4 * 112)
    inner = [layer for layer in backbone.layers if isinstance(layer, keras.Model)][0]
    assert (
        backbones.fine_feature_layer(keras.Model(inner.input, inner.output[0])).name
        == "block10_add"
    )


def test_dense_head_refuses_per_class_regression():
    with pytest.raises(ValueError, match="centre_weighted"):
        model_lib.build_model(
            model_lib.ModelConfig(**TINY, attach="centre_weighted", regression="per_class")
        )


def test_dense_box_votes_near_the_peak_at_inference_and_everywhere_in_training():
    from localizer.model.box_layers import CentreWeightedBox

    # Two peaks: cell (0, 0) slightly higher than cell (3, 3), each with its own box.
    logits = np.full((1, 4, 4, 1), -10.0, "float32")
    logits[0, 0, 0, 0], logits[0, 3, 3, 0] = 5.0, 4.9
    boxes = np.zeros((1, 4, 4, 4), "float32")
    boxes[0, :2, :2] = [0.0, 0.0, 0.3, 0.3]
    boxes[0, 2:, 2:] = [0.7, 0.7, 1.0, 1.0]
    layer = CentreWeightedBox(peak_radius=1)
    np.testing.assert_allclose(
        layer([logits, boxes], training=False)[0], [0.0, 0.0, 0.3, 0.3], atol=1e-4
    )
    # Far cells are filled with a value near the peak (int8 can hold it), not -1e9.
    kept = np.asarray(box_layers._keep_near_peak(logits, 1))
    assert kept.min() == 5.0 - box_layers.FAR_FROM_PEAK and kept[0, 3, 3, 0] == kept.min()
    # Training averages both peaks: a box between the two objects.
    between = np.asarray(layer([logits, boxes], training=True)[0])
    assert 0.3 < between[0] < 0.4 and 0.6 < between[2] < 0.7
    assert roundtrip.assert_object_round_trips(layer).peak_radius == 1


LAYERS = [
    layers_lib.ImagePreprocessing("torch"),
    box_layers.BoxFromLogits(),
    layers_lib.ModelMetadata(["cat", "dog"], "stretch", 64),
    layers_lib.LabelledLogits(["cat", "dog"], "letterbox", 32),  # the former name of ModelMetadata
    box_layers.CellBoxes(),
    layers_lib.UnpackFineFeatures(7),
    layers_lib.StopGradient(),
    layers_lib.Squeeze(),
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: type(layer).__name__)
def test_custom_layers_round_trip(layer):
    inputs = {
        "ImagePreprocessing": _images().astype("float32"),
        "BoxFromLogits": np.random.default_rng(1).normal(size=(3, 4)).astype("float32"),
        "ModelMetadata": np.ones((2, 2), "float32"),
        "LabelledLogits": np.ones((2, 2), "float32"),
        "CellBoxes": np.random.default_rng(2).normal(size=(1, 2, 3, 4)).astype("float32"),
        "UnpackFineFeatures": None,
        "StopGradient": np.ones((2, 3), "float32"),
        "Squeeze": np.ones((2, 1), "float32"),
    }[type(layer).__name__]
    roundtrip.assert_object_round_trips(layer, inputs)


def test_legacy_head_names_still_load():
    for old, new in model_lib.LEGACY_ATTACH_NAMES.items():
        assert model_lib.ModelConfig(attach=old).attach == new
    from localizer.training import config as config_lib

    saved = config_lib.to_dict(config_lib.default_config())
    saved["model"]["attach"] = "dense"  # a config.json written before the rename
    assert config_lib.from_dict(saved).model.attach == model_lib.CENTRE_WEIGHTED


def test_vote_agreement_and_looked_at_features_by_hand():
    # Two cells, softmax weights 3/4 and 1/4; their boxes differ in ymax only, by 0.4.
    cell_boxes = np.array(
        [[[[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.1, 0.5]]]], "float32"
    )  # [1, 1, 2, 4]
    logits = np.array([[[[np.log(3.0)], [0.0]]]], "float32")
    peak, spread = np.asarray(box_layers.VoteAgreement()([logits, cell_boxes]))[0]
    # Weighted mean ymax 0.4: variance 3/4 * 0.1^2 + 1/4 * 0.3^2 = 0.03.
    assert peak == pytest.approx(0.75) and spread == pytest.approx(0.03, abs=1e-6)
    features = np.array([[[[4.0, 0.0], [0.0, 8.0]]]], "float32")  # [1, 1, 2, 2]
    looked_at = np.asarray(box_layers.CentreWeightedFeatures()([logits, features]))
    np.testing.assert_allclose(looked_at, [[3.0, 2.0]], atol=1e-6)

"""BatchNormalization folded into the convolution before it (`localizer.serving.folding`)."""

import keras
import numpy as np
import pytest

from localizer import model as model_lib
from localizer.serving import folding
from tests import fixtures


def _randomize_norms(model, rng):
    """Moving statistics, scales and shifts far from their initial 0/1, so a wrong fold shows."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _randomize_norms(layer, rng)
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights(
                [
                    _draw(rng, variable.path.split("/")[-1], variable.shape)
                    for variable in layer.weights
                ]
            )


def _draw(rng, name, shape):
    if name in ("gamma", "moving_variance"):
        return rng.uniform(0.2, 3.0, shape).astype("float32")
    return rng.normal(0.0, 1.0, shape).astype("float32")


def _norms(model):
    """Names of the BatchNormalization layers left in `model` and the models nested in it."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += _norms(layer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer.name)
    return found


def _zoo():
    """A model with every case: foldable pairs and pairs that must stay apart."""
    inputs = keras.Input([12, 12, 3])
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="plain")(inputs)
    x = keras.layers.BatchNormalization(name="plain_bn")(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="with_bias")(x)
    x = keras.layers.BatchNormalization(center=False, name="no_shift_bn")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="depthwise")(x)
    x = keras.layers.BatchNormalization(scale=False, name="no_scale_bn")(x)
    # Not foldable: the convolution has its own activation between it and the normalization.
    x = keras.layers.Conv2D(6, 1, activation="relu", name="activated")(x)
    x = keras.layers.BatchNormalization(name="after_relu_bn")(x)
    # Not foldable: the convolution's output is also read by the Add.
    y = keras.layers.Conv2D(6, 1, name="shared_output")(x)
    z = keras.layers.BatchNormalization(name="shared_output_bn")(y)
    x = keras.layers.Add()([y, z])
    inner_in = keras.Input([6, 6, 6])
    inner = keras.layers.BatchNormalization(name="inner_bn")(
        keras.layers.Conv2D(5, 3, padding="same", name="inner_conv")(inner_in)
    )
    x = keras.Model(inner_in, inner, name="nested")(x)
    outputs = {"pooled": keras.layers.GlobalAveragePooling2D()(x), "map": x}
    return keras.Model(inputs, outputs, name="zoo")


def test_folding_keeps_the_outputs_and_removes_only_the_foldable_norms():
    keras.utils.set_random_seed(0)
    model = _zoo()
    rng = np.random.default_rng(0)
    _randomize_norms(model, rng)
    folded = folding.fold_batch_norms(model)
    assert sorted(_norms(folded)) == ["after_relu_bn", "shared_output_bn"]
    images = rng.uniform(0, 1, [3, 12, 12, 3]).astype("float32")
    expected, found = model(images, training=False), folded(images, training=False)
    assert set(found) == set(expected)
    for name in expected:
        np.testing.assert_allclose(found[name], expected[name], rtol=1e-5, atol=1e-5)
    # The original is untouched: its convolutions keep their kernels, its norms their statistics.
    assert not model.get_layer("plain").use_bias
    assert sorted(_norms(model)) == sorted(
        [
            "plain_bn",
            "no_shift_bn",
            "no_scale_bn",
            "after_relu_bn",
            "shared_output_bn",
            "inner_bn",
        ]
    )


@pytest.mark.parametrize(
    "randomize, changes",
    [
        (True, {}),
        ({"box_raw": 0.5, "class_dense": 0.5}, {"attach": "flattened", "box_quality": False}),
    ],
)
def test_a_folded_localizer_answers_as_the_localizer(randomize, changes):
    model = fixtures.tiny_model(randomize=randomize, **changes)
    _randomize_norms(model, np.random.default_rng(1))
    folded = folding.fold_batch_norms(model)
    assert _norms(folded) == []
    assert model_lib.model_metadata(folded) == model_lib.model_metadata(model)
    images = np.random.default_rng(2).integers(0, 256, [4, 32, 32, 3], dtype=np.uint8)
    expected, found = model(images, training=False), folded(images, training=False)
    assert set(found) == set(expected)
    for name in expected:
        np.testing.assert_allclose(found[name], expected[name], rtol=1e-4, atol=1e-5)


def test_folded_weights_of_a_depthwise_convolution_scale_each_output_channel():
    conv = keras.layers.DepthwiseConv2D(1, depth_multiplier=2, use_bias=False)
    norm = keras.layers.BatchNormalization(epsilon=0.0)
    conv.build([None, 1, 1, 2])
    norm.build([None, 1, 1, 4])
    conv.set_weights([np.ones([1, 1, 2, 2], "float32")])
    # Output channels in order (input 0, m 0), (0, 1), (1, 0), (1, 1).
    norm.set_weights(
        [
            np.array([1, 2, 3, 4], "float32"),  # gamma
            np.array([0, 0, 0, 1], "float32"),  # beta
            np.array([1, 0, 0, 0], "float32"),  # moving mean
            np.array([1, 1, 4, 4], "float32"),  # moving variance
        ]
    )
    kernel, bias = folding.folded_weights(conv, norm)
    np.testing.assert_allclose(kernel.reshape(-1), [1, 2, 1.5, 2])
    np.testing.assert_allclose(bias, [-1, 0, 0, 1])

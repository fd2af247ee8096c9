"""Tests of localizer/model/layers.py: preprocessing, fine features, round trips."""

import numpy as np
import pytest

from localizer.model import box_layers
from localizer.model import layers as layers_lib
from localizer.model.layers import ImagePreprocessing
from tests import roundtrip


def _images(n=2, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype("uint8")


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


def test_fine_features_pack_and_unpack_exactly():
    from localizer.model.layers import PackFineFeatures, UnpackFineFeatures

    rng = np.random.default_rng(0)
    coarse, fine = rng.random((2, 3, 4, 5), "float32"), rng.random((2, 6, 8, 7), "float32")
    packed = PackFineFeatures()([coarse, fine])
    assert packed.shape == (2, 3, 4, 5 + 4 * 7)
    got_coarse, got_fine = UnpackFineFeatures(7)(packed)
    np.testing.assert_array_equal(got_coarse, coarse)
    np.testing.assert_array_equal(got_fine, fine)


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

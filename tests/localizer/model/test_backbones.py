"""Tests of localizer/model/backbones.py."""

import keras
import numpy as np
import pytest

from localizer.model import backbones


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


def test_fine_feature_layer_of_efficientnet_lite0_is_a_block_output():
    backbone = backbones.build_backbone("efficientnet_lite0", 224, "none", feature_stride=16)
    assert backbone.output.shape[1:] == (7, 7, 1280 + 4 * 112)
    inner = [layer for layer in backbone.layers if isinstance(layer, keras.Model)][0]
    assert (
        backbones.fine_feature_layer(keras.Model(inner.input, inner.output[0])).name
        == "block10_add"
    )

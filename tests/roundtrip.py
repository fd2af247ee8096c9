"""One round-trip harness for the project's Keras objects: models, layers, losses, metrics.

A model must come back from a `.keras` file with `safe_mode=True` (no Lambda
layers) computing the same outputs; a layer, loss or metric must come back
from its config and from Keras' registered serialization as the same object.
"""

import keras
import numpy as np

from localizer import model as model_lib

PACKAGE = "localizer"


def _as_dict(outputs):
    return outputs if isinstance(outputs, dict) else {"output": outputs}


def assert_model_round_trips(model, inputs, path, atol=1e-6):
    """Saves `model` to `path` (.keras), loads it safely, and compares its outputs on `inputs`."""
    assert not [
        layer.name
        for layer in model_lib.leaf_layers(model)
        if isinstance(layer, keras.layers.Lambda)
    ]
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    expected, got = (
        _as_dict(model(inputs, training=False)),
        _as_dict(loaded(inputs, training=False)),
    )
    assert set(got) == set(expected)
    for key in expected:
        np.testing.assert_allclose(
            np.asarray(got[key]), np.asarray(expected[key]), atol=atol, err_msg=key
        )
    return loaded


def assert_object_round_trips(obj, inputs=None, atol=1e-6):
    """`obj` (layer, loss or metric) survives `from_config` and registered (de)serialization.

    With `inputs`, the restored layer also computes the same outputs.
    """
    config = obj.get_config()
    clone = type(obj).from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(obj)
    assert serialized["registered_name"] == f"{PACKAGE}>{type(obj).__name__}"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is type(obj) and restored.get_config() == config
    if inputs is not None:
        np.testing.assert_allclose(np.asarray(restored(inputs)), np.asarray(obj(inputs)), atol=atol)
    return restored

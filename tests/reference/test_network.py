"""The network (``reference/network.py``): input description and normalization, size
limits, layer construction, default names, shape inference, forward and backward through
the chain, prediction, ``info`` and ``graph_json``. Expected values are worked out by hand
or with plain loops, not read back from the code under test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convc.reference.network import (MAX_CHANNELS, MAX_PARAMS, MAX_SIDE, MAX_VALUES, InputSpec, Network,
                                     build_layer, check_sizes)


# ---- input description ----------------------------------------------------------------
def test_input_spec_defaults_to_identity_normalization():
    spec = InputSpec((3, 4, 5))
    assert spec.shape == (3, 4, 5)
    assert spec.mean == [0.0, 0.0, 0.0] and spec.std == [1.0, 1.0, 1.0]
    x = np.arange(60, dtype=np.float32).reshape(1, 3, 4, 5)
    np.testing.assert_array_equal(spec.normalize(x), x)


def test_input_spec_normalizes_each_channel_by_hand():
    spec = InputSpec([2, 1, 2], mean=[1, -2], std=[2, 0.5])     # a list shape and int means are taken
    assert spec.shape == (2, 1, 2) and spec.mean == [1.0, -2.0] and all(isinstance(v, float) for v in spec.mean)
    x = np.array([[[[3.0, 5.0]], [[-2.0, 0.0]]]], dtype=np.float32)
    # channel 0: (3-1)/2 = 1, (5-1)/2 = 2; channel 1: (-2+2)/0.5 = 0, (0+2)/0.5 = 4
    want = np.array([[[[1.0, 2.0]], [[0.0, 4.0]]]], dtype=np.float32)
    got = spec.normalize(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    assert spec.to_json() == {"shape": [2, 1, 2], "mean": [1.0, -2.0], "std": [2.0, 0.5]}


@pytest.mark.parametrize("kwargs, words", [
    (dict(shape=(3, 4)), "three positive whole numbers"),
    (dict(shape=(1, 0, 4)), "three positive whole numbers"),
    (dict(shape=(1, 2.0, 4)), "three positive whole numbers"),
    (dict(shape=(True, 2, 4)), "three positive whole numbers"),
    (dict(shape=(MAX_CHANNELS + 1, 1, 1)), "beyond the limits"),
    (dict(shape=(1, MAX_SIDE + 1, 1)), "beyond the limits"),
    (dict(shape=(2, MAX_SIDE, MAX_SIDE)), "beyond the limits"),            # 2**29 values > MAX_VALUES
    (dict(shape=(2, 1, 1), mean=[0.0]), "mean must have one value per channel (2), got 1"),
    (dict(shape=(1, 1, 1), std=[1.0, 2.0]), "std must have one value per channel (1), got 2"),
    (dict(shape=(1, 1, 1), mean=[float("nan")]), "mean has a value that is not finite"),
    (dict(shape=(1, 1, 1), std=[float("inf")]), "std has a value that is not finite"),
    (dict(shape=(2, 1, 1), std=[1.0, 0.0]), "std must be positive"),
    (dict(shape=(1, 1, 1), std=[-1.0]), "std must be positive"),
    (dict(shape=(1, 1, 1), mean=[True]), "mean must be a list of numbers"),
    (dict(shape=(1, 1, 1), mean="0"), "mean must be a list of numbers"),
])
def test_input_spec_refusals(kwargs, words):
    with pytest.raises(ValueError) as info:
        InputSpec(**kwargs)
    assert words in str(info.value)


def test_input_spec_at_the_limits_is_accepted():
    assert MAX_SIDE * MAX_SIDE // 2 == MAX_VALUES
    InputSpec((1, MAX_SIDE, MAX_SIDE // 2))            # exactly MAX_VALUES values
    InputSpec((MAX_CHANNELS, 1, 1))


# ---- size limits of a layer's attributes ------------------------------------------------
def test_check_sizes_limits_and_names():
    check_sizes("conv2d", {"in_channels": MAX_CHANNELS, "kernel": MAX_SIDE}, "here")   # at the limit
    with pytest.raises(ValueError, match=r"layer 2 'c': kernel 16,385 is beyond the limit of 16,384"):
        check_sizes("conv2d", {"kernel": MAX_SIDE + 1}, "layer 2 'c'")
    with pytest.raises(ValueError, match=r"x: out_features 16,777,217 is beyond"):
        check_sizes("linear", {"out_features": (1 << 24) + 1}, "x")
    # a conv2d's weights: in * out * k * k (2**14 * 2**14 * 1 = 2**28 passes, one more map does not)
    check_sizes("conv2d", {"in_channels": 1 << 14, "out_channels": 1 << 14, "kernel": 1}, "x")
    with pytest.raises(ValueError, match=r"x: 268,451,840 weights, beyond the limit of 268,435,456"):
        check_sizes("conv2d", {"in_channels": (1 << 14) + 1, "out_channels": 1 << 14, "kernel": 1}, "x")
    check_sizes("conv2d", {"in_channels": 64, "out_channels": 64, "kernel": 256}, "x")  # 2**12 * 256**2 = 2**28
    with pytest.raises(ValueError, match="weights, beyond"):
        check_sizes("conv2d", {"in_channels": 64, "out_channels": 64, "kernel": 257}, "x")
    with pytest.raises(ValueError, match="weights, beyond"):
        check_sizes("linear", {"in_features": 1 << 14, "out_features": (1 << 14) + 1}, "x")
    # not whole numbers (bools, floats, missing) are left to the layer's own checks
    check_sizes("conv2d", {"in_channels": True, "kernel": 1e9, "out_channels": None}, "x")
    check_sizes("relu", {}, "x")


# ---- layer construction -----------------------------------------------------------------
def test_build_layer_makes_the_named_type():
    layer = build_layer("conv2d", {"in_channels": 2, "out_channels": 3, "kernel": 3, "padding": 1}, "L")
    assert layer.type == "conv2d" and (layer.in_channels, layer.out_channels, layer.kernel) == (2, 3, 3)
    assert layer.output_shape((2, 5, 7)) == (3, 5, 7)


def test_build_layer_refusals_name_where():
    with pytest.raises(ValueError) as info:
        build_layer("dropout", {}, "layer 3 'd'")
    msg = str(info.value)
    assert msg.startswith("layer 3 'd': unknown layer type 'dropout'")
    for t in ("conv2d", "linear", "relu", "maxpool2d", "logsoftmax"):
        assert t in msg
    with pytest.raises(ValueError) as info:
        build_layer("linear", {"in_features": 3, "out_featurez": 2}, "layer 1 'fc'")
    msg = str(info.value)
    assert msg.startswith("layer 1 'fc' (linear): bad attributes ['in_features', 'out_featurez']")
    assert "'out_features'" in msg            # the allowed attributes are listed
    with pytest.raises(ValueError) as info:    # the layer's own ValueError, prefixed with where
        build_layer("linear", {"in_features": 0, "out_features": 2}, "layer 1 'fc'")
    assert str(info.value).startswith("layer 1 'fc': ") and "in_features" in str(info.value)


# ---- the chain ---------------------------------------------------------------------------
def _layers():
    return [build_layer("conv2d", {"in_channels": 2, "out_channels": 3, "kernel": 3}, "a"),
            build_layer("relu", {}, "b"),
            build_layer("maxpool2d", {"kernel": 2}, "c"),
            build_layer("conv2d", {"in_channels": 3, "out_channels": 2, "kernel": 1}, "d"),
            build_layer("flatten", {}, "e"),
            build_layer("linear", {"in_features": 2 * 3 * 3, "out_features": 4}, "f")]


def _net(seed=1, mean=(0.5, -1.0), std=(2.0, 0.25)):
    net = Network(InputSpec((2, 8, 8), list(mean), list(std)), _layers(), name="t", classes=4,
                  meta={"dataset": "none"})
    net.init_params(seed=seed)
    return net


def test_default_names_count_each_type():
    net = _net()
    assert net.names == ["conv2d1", "relu1", "maxpool2d1", "conv2d2", "flatten1", "linear1"]


def test_names_are_checked():
    with pytest.raises(ValueError, match="one name per layer"):
        Network(InputSpec((2, 8, 8)), _layers(), names=["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        Network(InputSpec((2, 8, 8)), _layers(), names=["a", "b", "c", "d", "e", "a"])


def test_shapes_by_hand():
    net = _net()
    # 8x8 -> conv 3x3 -> 6x6 -> pool 2 -> 3x3 -> 1x1 conv -> 3x3 -> 18 -> 4
    assert net.shapes == [(2, 8, 8), (3, 6, 6), (3, 6, 6), (3, 3, 3), (2, 3, 3), (18,), (4,)]
    assert net.output_shape == (4,)


def test_inconsistent_shapes_name_the_layer():
    layers = _layers()
    layers[5] = build_layer("linear", {"in_features": 17, "out_features": 4}, "f")
    with pytest.raises(ValueError) as info:
        Network(InputSpec((2, 8, 8)), layers)
    assert str(info.value).startswith("layer 5 'linear1': ") and "17" in str(info.value)


def test_outputs_and_parameters_beyond_the_limits_are_refused_before_allocation():
    # 1 x 8192 x 8192 = 2**26 values in; a 1x1 convolution to 4 maps makes 2**28 > MAX_VALUES
    big = build_layer("conv2d", {"in_channels": 1, "out_channels": 4, "kernel": 1}, "a")
    with pytest.raises(ValueError) as info:
        Network(InputSpec((1, 8192, 8192)), [big], names=["wide"])
    msg = str(info.value)
    assert msg.startswith("layer 0 'wide': output [4, 8192, 8192] holds 268,435,456 values")
    assert f"{MAX_VALUES:,}" in msg
    # 2**14 x (2**14 + 1) weights + biases: beyond MAX_PARAMS (no array is allocated)
    fc = build_layer("linear", {"in_features": 1 << 14, "out_features": (1 << 14) + 1}, "f")
    with pytest.raises(ValueError) as info:
        Network(InputSpec((1 << 14, 1, 1)), [build_layer("flatten", {}, "x"), fc])
    params = (1 << 14) * ((1 << 14) + 1) + (1 << 14) + 1
    assert str(info.value).startswith(f"layer 1 'linear1': {params:,} parameters, beyond the limit of "
                                      f"{MAX_PARAMS:,}")
    assert not fc.params


def _naive_forward(net: Network, x: np.ndarray) -> np.ndarray:
    """The same network written as loops over every output value."""
    p = net.arrays()
    out = []
    for xs in x.astype(np.float64):
        h = np.empty_like(xs)
        for c in range(2):
            h[c] = (xs[c] - net.input.mean[c]) / net.input.std[c]
        w1, b1 = p["conv2d1.weight"], p["conv2d1.bias"]
        a = np.zeros((3, 6, 6))
        for o in range(3):
            for i in range(6):
                for j in range(6):
                    s = b1[o]
                    for c in range(2):
                        for u in range(3):
                            for v in range(3):
                                s += w1[o, c, u, v] * h[c, i + u, j + v]
                    a[o, i, j] = max(s, 0.0)
        m = np.zeros((3, 3, 3))
        for o in range(3):
            for i in range(3):
                for j in range(3):
                    m[o, i, j] = max(a[o, 2 * i + u, 2 * j + v] for u in range(2) for v in range(2))
        w2, b2 = p["conv2d2.weight"], p["conv2d2.bias"]
        z = np.zeros((2, 3, 3))
        for o in range(2):
            for i in range(3):
                for j in range(3):
                    z[o, i, j] = b2[o] + sum(w2[o, c, 0, 0] * m[c, i, j] for c in range(3))
        flat = [z[o, i, j] for o in range(2) for i in range(3) for j in range(3)]
        w3, b3 = p["linear1.weight"], p["linear1.bias"]
        out.append([b3[k] + sum(w3[k, f] * flat[f] for f in range(18)) for k in range(4)])
    return np.array(out)


def _nonzero_biases(net):
    rng = np.random.default_rng(7)
    for layer in net.layers:
        if "bias" in layer.params:
            layer.params["bias"] = rng.normal(size=layer.params["bias"].shape).astype(np.float32)


def test_forward_matches_loops():
    net = _net()
    _nonzero_biases(net)
    x = np.random.default_rng(0).normal(size=(3, 2, 8, 8)).astype(np.float32) * 3
    got = net.forward(x)
    assert got.shape == (3, 4) and got.dtype == np.float32
    np.testing.assert_allclose(got, _naive_forward(net, x), rtol=1e-4, atol=1e-4)
    # without normalization: the caller's input goes in as it is
    xn = ((x - np.float32([0.5, -1.0]).reshape(1, 2, 1, 1)) / np.float32([2.0, 0.25]).reshape(1, 2, 1, 1))
    np.testing.assert_allclose(net.forward(xn, normalize=False), got, rtol=1e-5, atol=1e-5)
    assert not np.allclose(net.forward(x, normalize=False), got)


def test_forward_all_gives_every_layer():
    net = _net()
    _nonzero_biases(net)
    x = np.random.default_rng(1).normal(size=(2, 2, 8, 8)).astype(np.float32)
    outs = net.forward_all(x)
    assert len(outs) == len(net.layers) + 1
    assert [o.shape[1:] for o in outs] == net.shapes
    np.testing.assert_allclose(outs[0][:, 1], (x[:, 1] + 1.0) / 0.25, rtol=1e-6)
    np.testing.assert_array_equal(outs[2], np.maximum(outs[1], 0))      # the ReLU's output
    np.testing.assert_array_equal(outs[-1], net.forward(x))


def test_init_params_is_seeded():
    a, b, c = _net(seed=5), _net(seed=5), _net(seed=6)
    assert sorted(a.arrays()) == ["conv2d1.bias", "conv2d1.weight", "conv2d2.bias", "conv2d2.weight",
                                  "linear1.bias", "linear1.weight"]
    for k, v in a.arrays().items():
        np.testing.assert_array_equal(v, b.arrays()[k])
        assert v.dtype == np.float32
    assert not np.array_equal(a.arrays()["conv2d1.weight"], c.arrays()["conv2d1.weight"])
    half = Network(InputSpec((2, 8, 8)), _layers())
    half.init_params(seed=5, dtype=np.float64)
    assert half.arrays()["linear1.weight"].dtype == np.float64


def test_backward_is_the_gradient_of_the_forward():
    """d(sum(g * f(x)))/dx by central differences (float64) equals backward(g) at a few inputs."""
    net = Network(InputSpec((2, 8, 8)), _layers())
    net.init_params(seed=2, dtype=np.float64)
    _nonzero_biases(net)
    for layer in net.layers:
        for k in layer.params:
            layer.params[k] = layer.params[k].astype(np.float64)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 2, 8, 8))
    g = rng.normal(size=(1, 4))
    net.forward(x, normalize=False)
    dx = net.backward(g)
    assert dx.shape == x.shape
    eps = 1e-6
    for idx in [(0, 0, 0, 0), (0, 1, 3, 4), (0, 0, 7, 7), (0, 1, 5, 2), (0, 0, 2, 6)]:
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        num = (np.sum(g * net.forward(xp, normalize=False)) - np.sum(g * net.forward(xm, normalize=False))) / (2 * eps)
        assert abs(num - dx[idx]) < 1e-5, (idx, num, dx[idx])


def test_predict_is_the_argmax_in_any_batch_size():
    net = _net()
    _nonzero_biases(net)
    x = np.random.default_rng(4).normal(size=(7, 2, 8, 8)).astype(np.float32)
    want = [int(np.argmax(row)) for row in _naive_forward(net, x)]
    assert net.predict(x).tolist() == want
    assert net.predict(x, batch_size=3).tolist() == want           # 3 + 3 + 1
    assert net.predict(x, batch_size=1).tolist() == want
    empty = net.predict(x[:0])
    assert empty.shape == (0,) and empty.dtype.kind == "i"


def test_info_by_hand():
    rows = _net().info()
    # conv 2->3 3x3 on 8x8: 3*2*9 + 3 = 57 params, 3*6*6 * 2*9 = 1944 MACs
    # 1x1 conv 3->2 on 3x3: 2*3 + 2 = 8 params, 2*3*3 * 3 = 54 MACs; linear 18->4: 76, 72
    assert [(r.index, r.name, r.type, r.params, r.macs) for r in rows] == [
        (0, "conv2d1", "conv2d", 57, 1944), (1, "relu1", "relu", 0, 0), (2, "maxpool2d1", "maxpool2d", 0, 0),
        (3, "conv2d2", "conv2d", 8, 54), (4, "flatten1", "flatten", 0, 0), (5, "linear1", "linear", 76, 72)]
    assert rows[2].in_shape == (3, 6, 6) and rows[2].out_shape == (3, 3, 3)
    # before init_params the counts come from the parameter shapes
    bare = Network(InputSpec((2, 8, 8)), _layers()).info()
    assert [r.params for r in bare] == [r.params for r in rows]


def test_graph_json():
    net = _net()
    g = net.graph_json()
    assert g["name"] == "t" and g["classes"] == 4 and g["meta"] == {"dataset": "none"}
    assert g["input"] == {"shape": [2, 8, 8], "mean": [0.5, -1.0], "std": [2.0, 0.25]}
    assert [(l["name"], l["type"]) for l in g["layers"]] == list(zip(net.names, [l.type for l in net.layers]))
    first = g["layers"][0]["attrs"]
    assert (first["in_channels"], first["out_channels"], first["kernel"]) == (2, 3, 3)
    assert g["layers"][5]["attrs"]["in_features"] == 18
    # meta is the network's own copy
    meta = {"k": 1}
    n2 = Network(InputSpec((2, 8, 8)), _layers(), meta=meta)
    meta["k"] = 2
    assert n2.meta == {"k": 1} and n2.path is None and math.prod(n2.output_shape) == 4

"""Vectorized reference layers against the loop implementations in ``naive``.

Everything is float64 and compared with a tight tolerance: both sides compute
the same sums, only in a different order.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conv_cases import make_conv
from convc.reference import naive
from convc.reference.layers import (
    LAYER_TYPES,
    Abs,
    AvgPool2d,
    Conv2d,
    Flatten,
    L2Pool2d,
    Layer,
    Linear,
    LocalContrastNorm,
    LocalResponseNorm,
    LogSoftmax,
    MaxPool2d,
    PixelLogSoftmax,
    PyramidDown,
    ReLU,
    Tanh,
    Upsample,
    nll_loss,
    random_table,
)

RTOL = 1e-12
ATOL = 1e-12


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------
# Conv2d
# ---------------------------------------------------------------------------

# (N, C_in, C_out, H, W, K, stride, padding, fan_in or None)
CONV_CASES = [
    (2, 1, 3, 6, 6, 3, 1, 0, None),      # one input map
    (2, 4, 5, 7, 7, 3, 1, 1, None),      # many maps, padding
    (1, 3, 2, 8, 7, 3, 2, 0, None),      # stride 2, non-square
    (2, 2, 3, 9, 9, 4, 3, 2, None),      # stride 3, even kernel, padding 2
    (2, 3, 4, 5, 5, 5, 1, 0, None),      # kernel equal to the image -> 1x1
    (1, 2, 2, 4, 6, 4, 1, 0, None),      # kernel equal to H only
    (2, 2, 3, 3, 3, 5, 1, 1, None),      # kernel equal to the padded image
    (2, 6, 4, 6, 6, 3, 1, 1, 3),         # connection table
    (1, 5, 7, 7, 6, 3, 2, 1, 2),         # table + stride + padding
    (2, 4, 3, 5, 5, 2, 2, 0, 1),         # table with fan_in 1, stride == kernel
    # block-structured tables (one matmul per run of outputs reading one range of maps)
    (2, 4, 6, 6, 7, 3, 1, 1, [[0, 1]] * 3 + [[2, 3]] * 3),            # grouped, 2 groups
    (2, 6, 4, 7, 6, 3, 2, 0, [[0, 1, 2]] * 2 + [[3, 4, 5]] * 2),      # grouped, stride 2
    (1, 4, 5, 6, 6, 3, 1, 0, [[0, 1], [0, 1], [2, 3], [1, 2], [0, 1]]),  # runs overlap
    (2, 5, 6, 6, 6, 2, 1, 0, [[1, 2], [1, 2], [3, 4], [3, 4], [1, 2], [3, 4]]),  # map 0 unread
    (2, 3, 3, 7, 8, 5, 2, 2, [[0], [1], [2]]),                     # depthwise
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(c) for c in CONV_CASES])
def test_conv2d_matches_naive(case):
    n, cin, cout, h, w, k, s, p, fan_in = case
    layer, x, rng = make_conv(*case)
    y = layer.forward(x)
    assert y.shape == (n,) + layer.output_shape((cin, h, w))
    assert y.dtype == np.float64
    weight, bias = layer.params["weight"], layer.params["bias"]
    close(y, naive.conv2d_forward(x, weight, bias, s, p))

    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    ndx, ndw, ndb = naive.conv2d_backward(x, weight, s, p, dy)
    mask = layer.connection_mask()[:, :, None, None]
    assert dx.shape == x.shape
    close(dx, ndx)
    close(layer.grads["weight"], ndw * mask)
    close(layer.grads["bias"], ndb)
    if fan_in is not None:
        # held at exactly zero outside the table
        assert np.all(layer.params["weight"][~layer.connection_mask()] == 0)
        assert np.all(layer.grads["weight"][~layer.connection_mask()] == 0)


@pytest.mark.parametrize("table", [2, [[0, 1], [2, 3], [2, 3]]], ids=["random", "grouped"])
def test_conv2d_forward_ignores_weights_outside_table(table):
    layer, x, rng = make_conv(2, 4, 3, 5, 5, 3, 1, 1, table)
    y0 = layer.forward(x)
    dy = rng.standard_normal(y0.shape)
    dx0 = layer.backward(dy)
    layer.params["weight"][~layer.connection_mask()] = 123.0
    close(layer.forward(x), y0)
    close(layer.backward(dy), dx0)
    assert np.all(layer.grads["weight"][~layer.connection_mask()] == 0)


def test_conv2d_block_tables():
    """Grouped and depthwise tables run as one matmul per run of outputs; others dense."""
    assert Conv2d(4, 6, 3, table=[[0, 1]] * 3 + [[2, 3]] * 3)._blocks == [
        (slice(0, 3), slice(0, 2)), (slice(3, 6), slice(2, 4))]
    assert Conv2d(3, 3, 3, table=[[0], [1], [2]])._blocks == [
        (slice(0, 1), slice(0, 1)), (slice(1, 2), slice(1, 2)), (slice(2, 3), slice(2, 3))]
    assert Conv2d(4, 2, 3, table=[[0, 2], [1, 3]])._blocks is None      # not a range
    assert Conv2d(2, 2, 3, table=[[0, 1], [0, 1]])._blocks is None      # full: dense
    assert Conv2d(2, 2, 3)._blocks is None


def test_conv2d_init_and_shapes():
    rng = np.random.default_rng(1)
    layer = Conv2d(6, 16, 5, table=random_table(16, 6, 3, rng))
    assert layer.param_shapes() == {"weight": (16, 6, 5, 5), "bias": (16,)}
    layer.init_params(rng)
    w = layer.params["weight"]
    assert w.dtype == np.float32 and layer.params["bias"].dtype == np.float32
    assert w.shape == (16, 6, 5, 5)
    bound = 1 / np.sqrt(3 * 25)
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.8 * bound
    assert np.all(layer.params["bias"] == 0)
    mask = layer.connection_mask()
    assert mask.shape == (16, 6) and mask.sum() == 16 * 3
    assert np.all(w[~mask] == 0)
    assert set(layer.grads) == {"weight", "bias"}
    assert all(np.all(g == 0) for g in layer.grads.values())
    assert layer.output_shape((6, 14, 14)) == (16, 10, 10)
    assert layer.macs((6, 14, 14)) == 16 * 10 * 10 * 3 * 25
    full = Conv2d(6, 16, 5)
    assert full.macs((6, 14, 14)) == 16 * 10 * 10 * 6 * 25
    assert full.connection_mask().all()
    # default stride/padding and odd shapes
    assert Conv2d(1, 1, 3, stride=2, padding=1).output_shape((1, 8, 5)) == (1, 4, 3)


def test_conv2d_float32_stays_float32():
    rng = np.random.default_rng(2)
    layer = Conv2d(3, 4, 3, padding=1)
    layer.init_params(rng)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layer.grads.values())


def test_conv2d_shape_errors():
    layer = Conv2d(3, 8, 7)
    with pytest.raises(ValueError, match=r"conv2d: kernel 7 larger than padded input 5x5"):
        layer.output_shape((3, 5, 5))
    with pytest.raises(ValueError, match=r"conv2d: expected 3 input maps, got 16"):
        layer.output_shape((16, 32, 32))
    with pytest.raises(ValueError, match=r"conv2d: .*\(C, H, W\)"):
        layer.output_shape((3, 32))
    layer.init_params(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"conv2d: expected 3 input maps, got 2"):
        layer.forward(np.zeros((1, 2, 9, 9), np.float32))
    with pytest.raises(ValueError, match=r"conv2d: parameter 'weight' has shape"):
        layer.params["weight"] = np.zeros((8, 3, 5, 5), np.float32)
        layer.forward(np.zeros((1, 3, 9, 9), np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        Conv2d(1, 1, 1).backward(np.zeros((1, 1, 1, 1)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(in_channels=0, out_channels=1, kernel=3), r"conv2d: in_channels .* got 0"),
        (dict(in_channels=1, out_channels=-2, kernel=3), r"conv2d: out_channels .* got -2"),
        (dict(in_channels=1, out_channels=1, kernel=2.5), r"conv2d: kernel .* got 2.5"),
        (dict(in_channels=1, out_channels=1, kernel=3, stride=0), r"conv2d: stride .* got 0"),
        (dict(in_channels=1, out_channels=1, kernel=3, padding=-1), r"conv2d: padding .* got -1"),
        (dict(in_channels=1, out_channels=1, kernel=True), r"conv2d: kernel .* got True"),
        (dict(in_channels=3, out_channels=2, kernel=3, table=[[0, 1]]), r"conv2d: table has 1 rows"),
        (dict(in_channels=3, out_channels=2, kernel=3, table=[[0, 1], [2]]), r"same length"),
        (dict(in_channels=3, out_channels=2, kernel=3, table=[[0, 3], [1, 2]]),
         r"conv2d: table\[0\] entry 3 out of range"),
        (dict(in_channels=3, out_channels=2, kernel=3, table=[[0, 0], [1, 2]]), r"repeated"),
        (dict(in_channels=3, out_channels=2, kernel=3, table=[[1, 0], [1, 2]]), r"sorted"),
        (dict(in_channels=3, out_channels=1, kernel=3, table=[[]]), r"empty"),
    ],
)
def test_conv2d_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Conv2d(**kwargs)


def test_conv2d_table_accepts_numpy_ints():
    layer = Conv2d(3, 2, 3, table=[np.array([0, 2]), (1, 2)])
    assert layer.table == [[0, 2], [1, 2]]
    assert all(type(v) is int for row in layer.table for v in row)
    json.dumps(layer.attrs())


@pytest.mark.parametrize("out_c, in_c, fan_in", [(16, 6, 3), (7, 5, 2), (4, 4, 4), (3, 8, 1), (1, 1, 1)])
def test_random_table(out_c, in_c, fan_in):
    table = random_table(out_c, in_c, fan_in, np.random.default_rng(5))
    assert len(table) == out_c
    counts = np.zeros(in_c, int)
    for row in table:
        assert len(row) == fan_in and len(set(row)) == fan_in
        assert row == sorted(row)
        assert all(type(v) is int and 0 <= v < in_c for v in row)
        counts[row] += 1
    assert counts.max() - counts.min() <= 1
    assert table == random_table(out_c, in_c, fan_in, np.random.default_rng(5))
    Conv2d(in_c, out_c, 3, table=table)  # accepted as a table


def test_random_table_errors():
    with pytest.raises(ValueError, match="fan_in 4 larger than in_channels 3"):
        random_table(2, 3, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="fan_in"):
        random_table(2, 3, 0, np.random.default_rng(0))


# ---------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------

# (N, C, H, W, kernel, stride)
POOL_CASES = [
    (2, 3, 6, 6, 2, None),   # classic non-overlapping
    (1, 2, 7, 7, 2, 2),      # odd size: last row/col dropped
    (2, 1, 7, 8, 3, 2),      # overlapping windows
    (1, 2, 6, 6, 3, 1),      # heavy overlap
    (2, 2, 9, 9, 2, 3),      # stride > kernel (gaps)
    (1, 3, 4, 4, 4, None),   # kernel equal to the image
    (1, 1, 5, 3, 3, 1),      # kernel equal to W only
]

POOLS = [
    (MaxPool2d, naive.maxpool2d_forward, naive.maxpool2d_backward),
    (AvgPool2d, naive.avgpool2d_forward, naive.avgpool2d_backward),
    (L2Pool2d, naive.l2pool2d_forward, naive.l2pool2d_backward),
]


@pytest.mark.parametrize("pool", POOLS, ids=lambda p: p[0].type)
@pytest.mark.parametrize("case", POOL_CASES, ids=[str(c) for c in POOL_CASES])
def test_pool_matches_naive(pool, case):
    cls, nf, nb = pool
    n, c, h, w, k, s = case
    layer = cls(k, s)
    stride = k if s is None else s
    assert layer.stride == stride and layer.attrs() == {"kernel": k, "stride": stride}
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, c, h, w))
    y = layer.forward(x)
    assert y.shape == (n,) + layer.output_shape((c, h, w))
    close(y, nf(x, k, stride))
    dy = rng.standard_normal(y.shape)
    close(layer.backward(dy), nb(x, k, stride, dy))
    assert layer.params == {} and layer.grads == {} and layer.param_shapes() == {}
    assert layer.macs((c, h, w)) == 0


@pytest.mark.parametrize("k, s", [(2, 2), (3, 1), (3, 2)])
def test_maxpool_ties_go_to_first_max(k, s):
    # Small integers produce many ties; both sides must pick the first max
    # in raster order, and overlapping windows must accumulate.
    rng = np.random.default_rng(4)
    x = rng.integers(0, 3, size=(2, 2, 7, 7)).astype(np.float64)
    layer = MaxPool2d(k, s)
    y = layer.forward(x)
    close(y, naive.maxpool2d_forward(x, k, s))
    dy = rng.standard_normal(y.shape)
    close(layer.backward(dy), naive.maxpool2d_backward(x, k, s, dy))
    # constant input: every window's gradient lands on its top-left element
    layer = MaxPool2d(2)
    layer.forward(np.ones((1, 1, 4, 4)))
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    expected = np.zeros((1, 1, 4, 4))
    expected[..., ::2, ::2] = 1
    close(dx, expected)


def test_l2pool_zero_window_has_zero_gradient():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0] = 3.0
    x[0, 0, 0, 1] = 4.0
    layer = L2Pool2d(2)
    y = layer.forward(x)
    close(y[0, 0], [[5.0, 0.0], [0.0, 0.0]])
    dx = layer.backward(np.ones_like(y))
    assert np.all(np.isfinite(dx))
    close(dx[0, 0, 0, :2], [0.6, 0.8])
    assert np.count_nonzero(dx) == 2


@pytest.mark.parametrize("cls", [MaxPool2d, AvgPool2d, L2Pool2d])
def test_pool_dtype_and_errors(cls):
    layer = cls(3)
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32
    with pytest.raises(ValueError, match=rf"{cls.type}: kernel 3 larger than input 2x5"):
        layer.output_shape((4, 2, 5))
    with pytest.raises(ValueError, match=rf"{cls.type}: kernel .* got 0"):
        cls(0)
    with pytest.raises(ValueError, match=rf"{cls.type}: stride .* got -1"):
        cls(2, -1)


# ---------------------------------------------------------------------------
# LCN
# ---------------------------------------------------------------------------

# (N, C, H, W, kernel, sigma)
LCN_CASES = [
    (2, 1, 6, 6, 3, None),    # one map
    (2, 3, 7, 5, 5, None),    # many maps, non-square
    (1, 4, 5, 5, 5, 2.0),     # kernel equal to the image
    (1, 2, 3, 4, 7, 1.5),     # kernel larger than the image
    (1, 2, 6, 6, 1, None),    # 1x1 window
    (2, 3, 1, 1, 3, None),    # 1x1 image: s == mean(s) exactly (tie rule)
]


@pytest.mark.parametrize("case", LCN_CASES, ids=[str(c) for c in LCN_CASES])
def test_lcn_matches_naive(case):
    n, c, h, w, k, sigma = case
    layer = LocalContrastNorm(k, sigma)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((n, c, h, w)) * rng.uniform(0.2, 3.0, size=(n, 1, 1, 1))
    y = layer.forward(x)
    assert y.shape == x.shape
    win = layer.window()
    close(y, naive.lcn_forward(x, win, LocalContrastNorm.EPS))
    dy = rng.standard_normal(y.shape)
    close(layer.backward(dy), naive.lcn_backward(x, win, LocalContrastNorm.EPS, dy))


def test_lcn_all_three_floor_branches():
    # sample 0: random (s and mean branches); sample 1: locally flat patch
    # (s == 0 on part of the image, mean branch); sample 2: tiny values
    # (eps branch everywhere); sample 3: all zero (y == 0).
    rng = np.random.default_rng(7)
    x = np.zeros((4, 2, 7, 7))
    x[0] = rng.standard_normal((2, 7, 7))
    x[1, :, :, 4:] = rng.standard_normal((2, 7, 3))
    x[2] = 1e-7 * rng.standard_normal((2, 7, 7))
    layer = LocalContrastNorm(3)
    y = layer.forward(x)
    g, v, s, d, use_s, use_mean = layer._cache
    assert use_s[0].any() and use_mean[0].any()
    assert (s[1] == 0).any() and use_mean[1].any()
    assert not (use_s[2] | use_mean[2]).any()
    assert np.all(y[3] == 0)
    win = layer.window()
    close(y, naive.lcn_forward(x, win, layer.EPS))
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    assert np.all(np.isfinite(dx))
    close(dx, naive.lcn_backward(x, win, layer.EPS, dy))


def test_lcn_tie_goes_to_s():
    # kernel 1, two maps x = a +- 1/2 (dyadic, so exact): v = +-1/2 and
    # s = 1/2 at every pixel, hence s == mean(s) exactly everywhere.  The
    # documented tie rule takes d = s, so the gradient follows the local path
    # only (taking d = mean(s) instead gives a different dx).
    rng = np.random.default_rng(14)
    a = rng.integers(-8, 8, size=(2, 1, 4, 5)) / 4
    sign = rng.choice([-0.5, 0.5], size=(2, 1, 4, 5))
    x = np.concatenate([a + sign, a - sign], axis=1)
    layer = LocalContrastNorm(1)
    y = layer.forward(x)
    _, _, s, _, use_s, use_mean = layer._cache
    assert np.all(s == 0.5) and use_s.all() and not use_mean.any()
    close(y, naive.lcn_forward(x, layer.window(), layer.EPS))
    dy = rng.standard_normal(y.shape)
    close(layer.backward(dy), naive.lcn_backward(x, layer.window(), layer.EPS, dy))


def test_lcn_window_and_attrs():
    layer = LocalContrastNorm()
    assert layer.attrs() == {"kernel": 9, "sigma": 2.25}
    assert isinstance(layer.sigma, float)
    win = layer.window()
    assert win.shape == (9, 9) and win.dtype == np.float64
    assert abs(win.sum() - 1) < 1e-15
    close(win, win.T)
    close(win, win[::-1, ::-1])
    assert win.argmax() == 40
    assert LocalContrastNorm(5, 1).sigma == 1.0
    assert LocalContrastNorm(1).window().tolist() == [[1.0]]
    assert layer.output_shape((3, 10, 12)) == (3, 10, 12)
    assert layer.macs((3, 10, 12)) == 2 * 3 * 10 * 12 * 81


def test_lcn_output_statistics():
    # y is zero-mean-ish and unit-scale locally: a sanity check of the layer
    # semantics, not of the implementation.
    rng = np.random.default_rng(8)
    x = 5.0 + 10.0 * rng.standard_normal((1, 1, 32, 32))
    y = LocalContrastNorm(9).forward(x)
    assert abs(y[0, 0, 8:-8, 8:-8].mean()) < 0.2
    assert 0.5 < y[0, 0, 8:-8, 8:-8].std() < 1.5


def test_lcn_float32():
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    layer = LocalContrastNorm(5)
    y = layer.forward(x)
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32
    np.testing.assert_allclose(y, LocalContrastNorm(5).forward(x.astype(np.float64)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kernel=4), r"lcn: kernel must be odd, got 4"),
        (dict(kernel=0), r"lcn: kernel .* got 0"),
        (dict(kernel=5, sigma=0.0), r"lcn: sigma .* got 0.0"),
        (dict(kernel=5, sigma=-1), r"lcn: sigma .* got -1"),
        (dict(kernel=5, sigma="2"), r"lcn: sigma .* got '2'"),
    ],
)
def test_lcn_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LocalContrastNorm(**kwargs)


def test_lcn_shape_error():
    with pytest.raises(ValueError, match=r"lcn: .*\(C, H, W\)"):
        LocalContrastNorm().output_shape((10,))


# ---------------------------------------------------------------------------
# LRN
# ---------------------------------------------------------------------------

# (N, C, H, W, size, alpha, beta, bias)
LRN_CASES = [
    (2, 7, 3, 4, 5, 2.0, 0.75, 1.0),      # odd size, window clipped at both ends
    (2, 6, 3, 3, 4, 1.5, 0.75, 2.0),      # even size: one more map after than before
    (1, 5, 2, 3, 2, 3.0, 0.5, 1.0),       # size 2: the map and the next one
    (2, 3, 4, 2, 9, 4.0, 1.25, 0.5),      # size larger than C: every window is all maps
    (2, 4, 3, 3, 7, 2.0, 0.75, 1.0),      # size 2C - 1: window reaches every map from every map
    (2, 1, 4, 5, 3, 2.0, 0.75, 1.0),      # one map
    (1, 1, 3, 3, 4, 2.0, 0.75, 1.0),      # one map, even size
    (2, 4, 3, 3, 1, 5.0, 0.75, 1.0),      # size 1: elementwise
    (1, 5, 3, 3, 3, 1e-4, 0.75, 1.0),     # the defaults (AlexNet uses size 5, alpha 1e-4, beta 0.75, bias 2)
    (1, 4, 2, 2, 3, 2.0, -0.5, 1.0),      # negative beta
    (1, 4, 2, 2, 3, 0.0, 0.75, 2.0),      # alpha 0: y = x / bias^beta
    (1, 4, 2, 2, 3, 2.0, 0.0, 1.0),       # beta 0: identity
]


@pytest.mark.parametrize("case", LRN_CASES, ids=[str(c) for c in LRN_CASES])
def test_lrn_matches_naive(case):
    n, c, h, w, size, alpha, beta, bias = case
    layer = LocalResponseNorm(size, alpha, beta, bias)
    rng = np.random.default_rng(15)
    x = rng.standard_normal((n, c, h, w)) * rng.uniform(0.2, 3.0, size=(n, 1, 1, 1))
    y = layer.forward(x)
    assert y.shape == x.shape and y.dtype == np.float64
    close(y, naive.lrn_forward(x, size, alpha, beta, bias))
    dy = rng.standard_normal(y.shape)
    close(layer.backward(dy), naive.lrn_backward(x, size, alpha, beta, bias, dy))
    assert layer.params == {} and layer.grads == {} and layer.param_shapes() == {}


def test_lrn_special_cases():
    rng = np.random.default_rng(16)
    x = rng.standard_normal((2, 4, 3, 3))
    close(LocalResponseNorm(3, alpha=2.0, beta=0.0).forward(x), x)
    close(LocalResponseNorm(3, alpha=0.0, beta=0.5, bias=4.0).forward(x), x / 2)
    # size 1: y = x / (bias + alpha x^2)^beta elementwise
    close(LocalResponseNorm(1, alpha=3.0, beta=1.0, bias=2.0).forward(x), x / (2 + 3 * x * x))
    # every size >= 2C - 1 sums all maps, so they all agree
    y7 = LocalResponseNorm(7, alpha=2.0).forward(x)
    close(LocalResponseNorm(50, alpha=2.0 * 50 / 7).forward(x), y7)
    # an absurd size (a JSON integer of hundreds of digits) is only a tiny
    # alpha / size, not an overflow: d == bias, and macs count the maps there are
    huge = LocalResponseNorm(10**400, alpha=1.0)
    close(huge.forward(x), x)
    assert huge.macs((4, 3, 3)) == 9 * 4 * 4
    # all-zero input: y = 0, dx = dy / bias^beta
    layer = LocalResponseNorm(3, bias=4.0, beta=0.5)
    close(layer.forward(np.zeros((1, 3, 2, 2))), np.zeros((1, 3, 2, 2)))
    dy = rng.standard_normal((1, 3, 2, 2))
    close(layer.backward(dy), dy / 2)


def test_lrn_hand_computed():
    # one pixel, C = 3, x = (1, 2, 3): squares (1, 4, 9)
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
    # size 3 (one map each side): S = (1+4, 1+4+9, 4+9) = (5, 14, 13);
    # alpha / size = 1, bias 1: d = (6, 15, 14)
    y = LocalResponseNorm(3, alpha=3.0, beta=1.0, bias=1.0).forward(x)
    np.testing.assert_allclose(y.ravel(), [1 / 6, 2 / 15, 3 / 14], rtol=1e-15)
    y = LocalResponseNorm(3, alpha=3.0, beta=0.5, bias=1.0).forward(x)
    np.testing.assert_allclose(y.ravel(), [1 / np.sqrt(6), 2 / np.sqrt(15), 3 / np.sqrt(14)], rtol=1e-15)
    # size 2 (ONNX: floor(1/2) = 0 maps before, ceil(1/2) = 1 after):
    # S = (1+4, 4+9, 9) = (5, 13, 9); alpha / size = 1: d = (6, 14, 10)
    y = LocalResponseNorm(2, alpha=2.0, beta=1.0, bias=1.0).forward(x)
    np.testing.assert_allclose(y.ravel(), [1 / 6, 2 / 14, 3 / 10], rtol=1e-15)
    # size 4 (1 before, 2 after): S = (1+4+9, 1+4+9, 4+9) = (14, 14, 13);
    # alpha / size = 1/2, bias 2: d = (9, 9, 8.5)
    y = LocalResponseNorm(4, alpha=2.0, beta=1.0, bias=2.0).forward(x)
    np.testing.assert_allclose(y.ravel(), [1 / 9, 2 / 9, 3 / 8.5], rtol=1e-15)
    # gradient of size 3, beta 1: y_c = x_c / d_c, d_c = 1 + S_c,
    # dy_c/dx_k = [c == k] / d_c - 2 x_c x_k / d_c^2 for k in window(c).
    layer = LocalResponseNorm(3, alpha=3.0, beta=1.0, bias=1.0)
    layer.forward(x)
    dx = layer.backward(np.array([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1))
    # only y_0 (window {0, 1}): dx = (1/6 - 2/36, -2*1*2/36, 0)
    np.testing.assert_allclose(dx.ravel(), [1 / 6 - 2 / 36, -4 / 36, 0.0], rtol=1e-15, atol=1e-17)


def test_lrn_attrs_shapes_macs():
    layer = LocalResponseNorm(5)
    assert layer.attrs() == {"size": 5, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}
    assert (layer.before, layer.after) == (2, 2)
    assert (LocalResponseNorm(4).before, LocalResponseNorm(4).after) == (1, 2)
    assert (LocalResponseNorm(1).before, LocalResponseNorm(1).after) == (0, 0)
    ints = LocalResponseNorm(np.int64(3), alpha=1, beta=np.float32(0.5), bias=2)
    assert type(ints.size) is int
    assert all(type(v) is float for v in (ints.alpha, ints.beta, ints.bias))
    assert ints.attrs() == {"size": 3, "alpha": 1.0, "beta": 0.5, "bias": 2.0}
    json.dumps(ints.attrs())
    assert layer.output_shape((3, 10, 12)) == (3, 10, 12)
    # macs: H * W * (number of existing maps in every window)
    assert LocalResponseNorm(3).macs((5, 2, 3)) == 6 * (2 + 3 + 3 + 3 + 2)
    assert LocalResponseNorm(4).macs((6, 2, 2)) == 4 * (3 + 4 + 4 + 4 + 3 + 2)
    assert LocalResponseNorm(9).macs((3, 4, 4)) == 16 * 3 * 3
    assert LocalResponseNorm(1).macs((3, 4, 4)) == 16 * 3
    assert layer.macs((64, 8, 8)) <= 64 * 8 * 8 * 5
    with pytest.raises(ValueError, match=r"lrn: .*\(C, H, W\)"):
        layer.output_shape((10,))
    with pytest.raises(ValueError, match=r"lrn: expected a batched input"):
        layer.forward(np.zeros((3, 4, 4)))
    with pytest.raises(RuntimeError, match="before forward"):
        LocalResponseNorm(3).backward(np.zeros((1, 1, 1, 1)))


def test_lrn_float32():
    rng = np.random.default_rng(17)
    x = (3 * rng.standard_normal((2, 6, 5, 5))).astype(np.float32)
    layer = LocalResponseNorm(5, alpha=1.0, beta=0.75, bias=2.0)
    y = layer.forward(x)
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32
    np.testing.assert_allclose(y, LocalResponseNorm(5, 1.0, 0.75, 2.0).forward(x.astype(np.float64)),
                               rtol=1e-5, atol=1e-6)
    # a small window next to huge maps keeps its relative accuracy (no
    # cancellation between running sums over all maps)
    x = np.zeros((1, 6, 1, 1), np.float32)
    x[0, :3, 0, 0] = 1e4
    x[0, 5, 0, 0] = 1e-2
    y = LocalResponseNorm(2, alpha=2.0, beta=1.0, bias=1e-6).forward(x)
    np.testing.assert_allclose(y[0, 5, 0, 0], 1e-2 / (1e-6 + 1e-4), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(size=0), r"lrn: size must be an integer >= 1, got 0"),
        (dict(size=2.0), r"lrn: size .* got 2.0"),
        (dict(size=True), r"lrn: size .* got True"),
        (dict(size=3, alpha=-1e-4), r"lrn: alpha must be a finite number >= 0, got -0.0001"),
        (dict(size=3, alpha=float("nan")), r"lrn: alpha .* got nan"),
        (dict(size=3, alpha="1e-4"), r"lrn: alpha .* got '1e-4'"),
        (dict(size=3, beta=float("inf")), r"lrn: beta must be a finite number, got inf"),
        (dict(size=3, beta=None), r"lrn: beta .* got None"),
        (dict(size=3, bias=0), r"lrn: bias must be a finite number > 0, got 0$"),
        (dict(size=3, bias=-1.0), r"lrn: bias .* got -1.0"),
        (dict(size=3, bias=False), r"lrn: bias .* got False"),
        (dict(size=3, bias=float("-inf")), r"lrn: bias .* got -inf"),
    ],
)
def test_lrn_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LocalResponseNorm(**kwargs)


def test_lrn_model_file_round_trip(tmp_path):
    from convc.errors import ConvcError
    from convc.reference.modelfile import load_model, network_from_graph, save_model

    spec = {"name": "lrn_net", "input": {"shape": [3, 8, 8]}, "classes": 3, "layers": [
        {"name": "conv1", "type": "conv2d", "attrs": {"out_channels": 6, "kernel": 3}},
        {"name": "relu1", "type": "relu"},
        {"name": "norm1", "type": "lrn", "attrs": {"size": 4, "alpha": 0.5, "beta": 0.75, "bias": 2}},
        {"name": "norm2", "type": "lrn", "attrs": {"size": 5}},
        {"name": "flatten", "type": "flatten"},
        {"name": "fc", "type": "linear", "attrs": {"out_features": 3}},
        {"name": "logsoftmax", "type": "logsoftmax"}]}
    net = network_from_graph(spec, "spec")
    net.init_params(seed=2)
    back = load_model(save_model(net, tmp_path / "lrn.npz"))
    assert back.names == net.names
    for a, b in zip(back.layers, net.layers):
        assert type(a) is type(b) and a.attrs() == b.attrs()
    assert back.layers[2].attrs() == {"size": 4, "alpha": 0.5, "beta": 0.75, "bias": 2.0}
    assert back.layers[3].attrs() == {"size": 5, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}
    x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
    np.testing.assert_array_equal(back.forward(x), net.forward(x))
    bad = dict(spec, layers=[{"type": "lrn", "attrs": {"size": 3, "bias": 0}}])
    with pytest.raises(ConvcError, match=r"lrn: bias must be a finite number > 0, got 0$"):
        network_from_graph(bad, "spec")


# ---------------------------------------------------------------------------
# elementwise, linear, flatten, logsoftmax, nll
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "cls, nf, nb",
    [
        (ReLU, naive.relu_forward, naive.relu_backward),
        (Tanh, naive.tanh_forward, naive.tanh_backward),
        (Abs, naive.abs_forward, naive.abs_backward),
    ],
    ids=["relu", "tanh", "abs"],
)
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 7)])
def test_elementwise_matches_naive(cls, nf, nb, shape):
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape)
    x.flat[::5] = 0.0  # exercise the x == 0 convention
    layer = cls()
    y = layer.forward(x)
    close(y, nf(x))
    dy = rng.standard_normal(shape)
    close(layer.backward(dy), nb(x, dy))
    assert layer.output_shape(shape[1:]) == shape[1:]
    assert layer.attrs() == {} and layer.macs(shape[1:]) == 0
    y32 = cls().forward(x.astype(np.float32))
    assert y32.dtype == np.float32


@pytest.mark.parametrize("n, fin, fout", [(1, 1, 1), (3, 7, 4), (4, 20, 10)])
def test_linear_matches_naive(n, fin, fout):
    rng = np.random.default_rng(10)
    layer = Linear(fin, fout)
    layer.init_params(rng, dtype=np.float64)
    layer.params["bias"] = rng.standard_normal(fout)
    x = rng.standard_normal((n, fin))
    y = layer.forward(x)
    close(y, naive.linear_forward(x, layer.params["weight"], layer.params["bias"]))
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    ndx, ndw, ndb = naive.linear_backward(x, layer.params["weight"], dy)
    close(dx, ndx)
    close(layer.grads["weight"], ndw)
    close(layer.grads["bias"], ndb)
    assert layer.macs((fin,)) == fin * fout


def test_linear_init_and_errors():
    layer = Linear(400, 120)
    layer.init_params(np.random.default_rng(0))
    assert layer.param_shapes() == {"weight": (120, 400), "bias": (120,)}
    assert layer.params["weight"].dtype == np.float32
    assert np.abs(layer.params["weight"]).max() <= 1 / 20
    assert np.all(layer.params["bias"] == 0)
    with pytest.raises(ValueError, match=r"linear: expected 400 input features, got 120"):
        layer.output_shape((120,))
    with pytest.raises(ValueError, match=r"linear: .*\(F,\)"):
        layer.output_shape((16, 5, 5))
    with pytest.raises(ValueError, match=r"linear: in_features .* got 0"):
        Linear(0, 3)
    with pytest.raises(RuntimeError, match=r"linear: parameter 'weight' not set"):
        Linear(2, 3).forward(np.zeros((1, 2)))


def test_flatten_matches_naive():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 4, 5))
    layer = Flatten()
    y = layer.forward(x)
    close(y, naive.flatten_forward(x))
    assert layer.output_shape((3, 4, 5)) == (60,)
    dy = rng.standard_normal(y.shape)
    close(layer.backward(dy), naive.flatten_backward(x.shape, dy))


def test_logsoftmax_matches_naive_and_is_stable():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 10)) * 5
    layer = LogSoftmax()
    y = layer.forward(x)
    close(y, naive.logsoftmax_forward(x))
    dy = rng.standard_normal(y.shape)
    close(layer.backward(dy), naive.logsoftmax_backward(x, dy))
    big = np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32)
    yb = LogSoftmax().forward(big)
    assert yb.dtype == np.float32 and np.all(np.isfinite(yb))
    np.testing.assert_allclose(yb, [[0.0, -1000.0, -2000.0]])


def test_nll_loss_matches_naive():
    rng = np.random.default_rng(13)
    logp = LogSoftmax().forward(rng.standard_normal((5, 4)))
    labels = rng.integers(0, 4, size=5)
    loss, grad = nll_loss(logp, labels)
    nloss, ngrad = naive.nll_loss(logp, labels)
    assert isinstance(loss, float)
    assert abs(loss - nloss) < 1e-12
    close(grad, ngrad)
    with pytest.raises(ValueError, match="label 4 out of range"):
        nll_loss(logp, np.array([0, 1, 2, 3, 4]))
    with pytest.raises(ValueError, match="integers"):
        nll_loss(logp, np.zeros(5))


# ---------------------------------------------------------------------------
# registry and serialization
# ---------------------------------------------------------------------------

EXAMPLES = [
    Conv2d(6, 16, 5, table=random_table(16, 6, 3, 0)),
    Conv2d(1, 6, 5, stride=2, padding=2),
    MaxPool2d(2),
    AvgPool2d(3, 2),
    L2Pool2d(2),
    LocalContrastNorm(7),
    LocalResponseNorm(5),
    LocalResponseNorm(4, alpha=0.5, beta=1.5, bias=2.0),
    ReLU(),
    Tanh(),
    Abs(),
    Linear(10, 3),
    Flatten(),
    LogSoftmax(),
    PyramidDown(),
    PyramidDown(3),
    PyramidDown(3, edge="zero"),
    Upsample(2),
    PixelLogSoftmax(),
]


def test_registry_complete():
    assert {type(layer) for layer in EXAMPLES} == set(LAYER_TYPES.values())
    for name, cls in LAYER_TYPES.items():
        assert cls.type == name and issubclass(cls, Layer)


@pytest.mark.parametrize("layer", EXAMPLES, ids=lambda layer: layer.type)
def test_attrs_roundtrip(layer):
    attrs = layer.attrs()
    text = json.dumps({"type": layer.type, "attrs": attrs})
    back = json.loads(text)
    clone = LAYER_TYPES[back["type"]](**back["attrs"])
    assert clone.attrs() == attrs
    assert clone.param_shapes() == layer.param_shapes()
    # attrs() is a copy: mutating it does not change the layer
    if "table" in attrs and attrs["table"] is not None:
        attrs["table"][0][0] = -1
        assert layer.table[0][0] != -1


def test_instances_do_not_share_state():
    a, b = Linear(2, 2), Linear(2, 2)
    a.init_params(np.random.default_rng(0))
    assert b.params == {} and a != b and a == a

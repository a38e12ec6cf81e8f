"""Scene-parsing layers: pyramid step, nearest upsampling, concatenation, per-pixel
log-softmax and the per-pixel NLL loss with an ignore label.

Each is held to the loop implementation in ``naive`` (float64, tight tolerance), to
hand-computed small cases, and to central finite differences (the helpers of
``test_gradcheck``).  Model files save and load the chain layers; ``concat`` is
multi-input and refused in a chain.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_gradcheck import TOL, check_layer, numeric_grad, rel_error

from convc.errors import ConvcError
from convc.reference import naive
from convc.reference.layers import (
    IGNORE_LABEL,
    LAYER_TYPES,
    MULTI_INPUT_TYPES,
    Concat,
    Conv2d,
    Layer,
    LogSoftmax,
    PixelLogSoftmax,
    PyramidDown,
    Tanh,
    Upsample,
    nll_loss,
    pixel_nll_loss,
)
from convc.reference.modelfile import load_model, save_model
from convc.reference.network import InputSpec, Network


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# pyramid step
# ---------------------------------------------------------------------------

PYR_CASES = [  # (N, C, H, W)
    (2, 2, 6, 6),
    (1, 3, 7, 5),      # odd sizes: ceil(H/2)
    (2, 1, 1, 4),      # one row: every row tap clamps to it
    (1, 2, 2, 1),      # smaller than the 5-tap filter's reach both ways
    (1, 1, 3, 9),
]


@pytest.mark.parametrize("edge", PyramidDown.EDGES)
@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("shape", PYR_CASES, ids=str)
def test_pyrdown_matches_naive(kernel, shape, edge):
    rng = np.random.default_rng(20)
    x = rng.standard_normal(shape)
    layer = PyramidDown(kernel, edge=edge)
    y = layer.forward(x)
    n, c, h, w = shape
    assert y.shape == (n, c, (h + 1) // 2, (w + 1) // 2) and y.dtype == np.float64
    assert y.shape[1:] == layer.output_shape(shape[1:])
    close(y, naive.pyrdown_forward(x, kernel, edge))
    dy = rng.standard_normal(y.shape)
    close(layer.backward(dy), naive.pyrdown_backward(x.shape, kernel, dy, edge))
    assert layer.params == {} and layer.grads == {} and layer.param_shapes() == {}


@pytest.mark.parametrize("edge", PyramidDown.EDGES)
@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("shape", [(2, 2, 5, 6), (1, 2, 1, 3), (2, 1, 4, 2)], ids=str)
def test_pyrdown_gradcheck(kernel, shape, edge):
    check_layer(PyramidDown(kernel, edge=edge), np.random.default_rng(21).standard_normal(shape))


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("shape", [(2, 3, 9, 8), (1, 2, 1, 4), (2, 1, 2, 7), (1, 4, 16, 11)], ids=str)
def test_pyrdown_zero_is_depthwise_conv(kernel, shape):
    """edge="zero" is the accelerator's form: a depthwise conv2d (table row c = [c]) with
    kernel outer(g, g), stride 2, padding kernel // 2 and no bias; forward and backward."""
    rng = np.random.default_rng(23)
    x = rng.standard_normal(shape)
    c = shape[1]
    pyr = PyramidDown(kernel, edge="zero")
    conv = Conv2d(c, c, kernel, stride=2, padding=kernel // 2, table=[[i] for i in range(c)])
    g = pyr.taps()
    weight = np.zeros((c, c, kernel, kernel))
    weight[np.arange(c), np.arange(c)] = np.outer(g, g)
    conv.params = {"weight": weight, "bias": np.zeros(c)}
    y = pyr.forward(x)
    close(y, conv.forward(x))
    dy = rng.standard_normal(y.shape)
    close(pyr.backward(dy), conv.backward(dy))
    # the replicated edge gives the same outputs wherever the window stays inside the image
    rep = PyramidDown(kernel).forward(x)
    r = kernel // 2
    inner_rows = [i for i in range(y.shape[2]) if 2 * i - r >= 0 and 2 * i + r < shape[2]]
    inner_cols = [j for j in range(y.shape[3]) if 2 * j - r >= 0 and 2 * j + r < shape[3]]
    close(rep[:, :, inner_rows][:, :, :, inner_cols], y[:, :, inner_rows][:, :, :, inner_cols])


def test_pyrdown_zero_hand_computed():
    # kernel 3, g = (1, 2, 1) / 4, zero padding. One row: the row pass keeps g[1] = 1/2 of it;
    # the column pass gives y0 = (0 + 2 x0 + x1) / 4 = 2, y1 = (x1 + 2 x2 + x3) / 4 = 1.
    x = np.array([4.0, 0.0, 0.0, 4.0]).reshape(1, 1, 1, 4)
    layer = PyramidDown(3, edge="zero")
    close(layer.forward(x).ravel(), [1.0, 0.5])
    # backward of a single corner output: no folding, the padding's share is lost
    layer.forward(np.zeros((1, 1, 3, 3)))
    dy = np.zeros((1, 1, 2, 2))
    dy[0, 0, 0, 0] = 16.0
    close(layer.backward(dy)[0, 0], 16 * np.outer([0.5, 0.25, 0], [0.5, 0.25, 0]))


def test_pyrdown_attrs_and_errors():
    assert PyramidDown().attrs() == {"kernel": 5, "edge": "replicate"}
    assert PyramidDown(np.int64(3)).attrs() == {"kernel": 3, "edge": "replicate"}
    assert PyramidDown(3, edge="zero").attrs() == {"kernel": 3, "edge": "zero"}
    for bad in ("reflect", "Zero", "", None, 0):
        with pytest.raises(ValueError, match=rf"pyrdown: edge must be one of 'replicate', 'zero', got {bad!r}"):
            PyramidDown(edge=bad)
    np.testing.assert_array_equal(PyramidDown(3).taps() * 4, [1, 2, 1])
    np.testing.assert_array_equal(PyramidDown(5).taps() * 16, [1, 4, 6, 4, 1])
    assert PyramidDown(5).macs((3, 8, 10)) == 5 * 3 * 4 * (10 + 5)
    for bad in (4, 7, 1):
        with pytest.raises(ValueError, match="pyrdown: kernel must be 3 or 5"):
            PyramidDown(bad)
    with pytest.raises(ValueError, match="pyrdown: kernel"):
        PyramidDown(2.0)
    with pytest.raises(ValueError, match=r"pyrdown: expected a batched input"):
        PyramidDown().forward(np.zeros((3, 4, 4)))
    with pytest.raises(RuntimeError, match="before forward"):
        PyramidDown().backward(np.zeros((1, 1, 1, 1)))


def test_pyrdown_float32():
    x = np.random.default_rng(22).standard_normal((2, 3, 9, 8)).astype(np.float32)
    layer = PyramidDown()
    y = layer.forward(x)
    assert y.dtype == np.float32 and layer.backward(np.ones_like(y)).dtype == np.float32
    np.testing.assert_allclose(y, PyramidDown().forward(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# upsampling
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("factor, shape", [(1, (2, 2, 3, 3)), (2, (2, 3, 3, 4)), (3, (1, 2, 2, 1)),
                                           (4, (1, 1, 1, 1))], ids=str)
def test_upsample_matches_naive(factor, shape):
    rng = np.random.default_rng(23)
    x = rng.standard_normal(shape)
    layer = Upsample(factor)
    y = layer.forward(x)
    n, c, h, w = shape
    assert y.shape == (n, c, h * factor, w * factor) == (n,) + layer.output_shape(shape[1:])
    close(y, naive.upsample_forward(x, factor))
    dy = rng.standard_normal(y.shape)
    close(layer.backward(dy), naive.upsample_backward(x.shape, factor, dy))
    check_layer(Upsample(factor), x)


def test_upsample_hand_computed_and_errors():
    x = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    layer = Upsample(2)
    y = layer.forward(x)
    np.testing.assert_array_equal(y[0, 0], [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    dy = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(layer.backward(dy)[0, 0], [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7],
                                                             [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]])
    assert y.flags.writeable   # a real array, not a broadcast view
    assert Upsample(3).attrs() == {"factor": 3} and Upsample().factor == 2
    assert Upsample(2).forward(x.astype(np.float32)).dtype == np.float32
    for bad, match in ((0, "got 0"), (1.5, "got 1.5"), (True, "got True")):
        with pytest.raises(ValueError, match=f"upsample: factor must be an integer >= 1, {match}"):
            Upsample(bad)


# ---------------------------------------------------------------------------
# concatenation (multi-input)
# ---------------------------------------------------------------------------

def test_concat_matches_naive_and_gradcheck():
    rng = np.random.default_rng(24)
    xs = [rng.standard_normal((2, c, 3, 4)) for c in (2, 1, 3)]
    layer = Concat()
    assert layer.multi_input and not Layer.multi_input and not Conv2d.multi_input
    y = layer.forward_multi(xs)
    assert y.shape == (2, 6, 3, 4) and (6, 3, 4) == layer.output_shape([x.shape[1:] for x in xs])
    close(y, naive.concat_forward(xs))
    close(y[:, 2:3], xs[1])
    r = rng.standard_normal(y.shape)
    dxs = layer.backward(r)
    assert isinstance(dxs, list) and len(dxs) == 3
    for dx, ndx in zip(dxs, naive.concat_backward([2, 1, 3], r)):
        close(dx, ndx)
    for x, dx in zip(xs, dxs):
        num = numeric_grad(lambda: float(np.sum(layer.forward_multi(xs) * r)), x)
        assert rel_error(dx, num) < TOL
    # the gradients are copies: writing one leaves dy alone
    dxs[0][...] = 0
    assert np.any(r[:, :2] != 0)
    assert layer.params == {} and layer.grads == {} and layer.attrs() == {}
    assert layer.macs([(2, 3, 4), (1, 3, 4)]) == 0
    # one input is a copy
    close(Concat().forward_multi([xs[0]]), xs[0])


def test_concat_errors():
    layer = Concat()
    a, b = np.zeros((2, 1, 3, 3)), np.zeros((2, 2, 3, 4))
    with pytest.raises(ValueError, match=r"concat: inputs must have the same height and width.*\[2, 3, 4\]"):
        layer.forward_multi([a, b])
    with pytest.raises(ValueError, match="concat: inputs have different batch sizes"):
        layer.forward_multi([a, np.zeros((1, 1, 3, 3))])
    with pytest.raises(ValueError, match="concat: inputs have different dtypes"):
        layer.forward_multi([a, a.astype(np.float32)])
    with pytest.raises(ValueError, match="concat: needs at least one input"):
        layer.forward_multi([])
    with pytest.raises(ValueError, match="concat: expected a list of per-sample input shapes"):
        layer.output_shape(5)
    with pytest.raises(ValueError, match=r"concat: .*\(C, H, W\)"):
        layer.output_shape((3, 4, 4))          # one shape, not a list of shapes
    with pytest.raises(TypeError, match="forward_multi"):
        layer.forward(a)
    with pytest.raises(RuntimeError, match="before forward"):
        Concat().backward(a)


# ---------------------------------------------------------------------------
# per-pixel log-softmax and NLL
# ---------------------------------------------------------------------------

def test_pixel_logsoftmax_matches_naive_and_gradcheck():
    rng = np.random.default_rng(25)
    x = 3 * rng.standard_normal((2, 4, 3, 5))
    layer = PixelLogSoftmax()
    y = layer.forward(x)
    close(y, naive.pixel_logsoftmax_forward(x))
    close(np.exp(y).sum(axis=1), np.ones((2, 3, 5)))
    # at each pixel it is the vector LogSoftmax of the maps
    close(y.transpose(0, 2, 3, 1).reshape(-1, 4),
          LogSoftmax().forward(x.transpose(0, 2, 3, 1).reshape(-1, 4)))
    dy = rng.standard_normal(y.shape)
    close(layer.backward(dy), naive.pixel_logsoftmax_backward(x, dy))
    check_layer(PixelLogSoftmax(), x)
    # no overflow for huge scores
    big = np.array([1000.0, 0.0]).reshape(1, 2, 1, 1)
    close(PixelLogSoftmax().forward(big).ravel(), [0.0, -1000.0])
    assert PixelLogSoftmax().output_shape((8, 4, 5)) == (8, 4, 5)
    with pytest.raises(ValueError, match=r"pixel_logsoftmax: .*\(C, H, W\)"):
        PixelLogSoftmax().output_shape((8,))
    with pytest.raises(ValueError, match="pixel_logsoftmax: expected a batched input"):
        PixelLogSoftmax().forward(np.zeros((2, 8)))


def test_pixel_nll_hand_computed():
    # 1 image, 2 classes, 1 x 3 pixels; labels (0, ignore, 1)
    logp = np.log(np.array([[0.5, 0.9, 0.25], [0.5, 0.1, 0.75]])).reshape(1, 2, 1, 3)
    labels = np.array([[[0, IGNORE_LABEL, 1]]])
    loss, grad = pixel_nll_loss(logp, labels)
    assert isinstance(loss, float)
    assert abs(loss - (-np.log(0.5) - np.log(0.75)) / 2) < 1e-15
    expected = np.zeros((1, 2, 1, 3))
    expected[0, 0, 0, 0] = expected[0, 1, 0, 2] = -0.5
    np.testing.assert_array_equal(grad, expected)
    # a different ignore label: -1 is then out of range, 0 is ignored
    loss, grad = pixel_nll_loss(logp, np.array([[[0, 1, 1]]]), ignore_label=0)
    assert abs(loss - (-np.log(0.1) - np.log(0.75)) / 2) < 1e-15
    assert np.all(grad[..., 0] == 0)
    with pytest.raises(ValueError, match=r"label -1 out of range 0..1 \(ignore label 0\)"):
        pixel_nll_loss(logp, labels, ignore_label=0)


def test_pixel_nll_matches_naive_and_gradcheck():
    rng = np.random.default_rng(26)
    logp = PixelLogSoftmax().forward(rng.standard_normal((2, 5, 3, 4)))
    labels = rng.integers(-1, 5, size=(2, 3, 4))
    assert (labels == IGNORE_LABEL).any() and (labels != IGNORE_LABEL).any()
    loss, grad = pixel_nll_loss(logp, labels)
    nloss, ngrad = naive.pixel_nll_loss(logp, labels)
    assert abs(loss - nloss) < 1e-12
    close(grad, ngrad)
    ignored = np.broadcast_to((labels == IGNORE_LABEL)[:, None], grad.shape)
    assert np.all(grad[ignored] == 0)
    assert abs(grad.sum() + 1.0) < 1e-12     # -1/M at each of M pixels
    num = numeric_grad(lambda: pixel_nll_loss(logp, labels)[0], logp)
    assert rel_error(grad, num) < TOL
    # without ignored pixels it is nll_loss over every pixel as a sample
    full = rng.integers(0, 5, size=(2, 3, 4))
    a, ga = pixel_nll_loss(logp, full)
    b, gb = nll_loss(logp.transpose(0, 2, 3, 1).reshape(-1, 5), full.reshape(-1))
    assert abs(a - b) < 1e-12
    close(ga, gb.reshape(2, 3, 4, 5).transpose(0, 3, 1, 2))


def test_pixel_nll_all_ignored_and_errors():
    logp = np.zeros((1, 3, 2, 2), np.float32)
    loss, grad = pixel_nll_loss(logp, np.full((1, 2, 2), -1))
    assert loss == 0.0 and grad.dtype == np.float32 and not grad.any()
    with pytest.raises(ValueError, match=r"label 3 out of range 0..2"):
        pixel_nll_loss(logp, np.array([[[0, 3], [1, 1]]]))
    with pytest.raises(ValueError, match=r"label -2 out of range"):
        pixel_nll_loss(logp, np.array([[[0, -2], [1, 1]]]))
    with pytest.raises(ValueError, match="integers"):
        pixel_nll_loss(logp, np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match=r"labels must have shape \(1, 2, 2\)"):
        pixel_nll_loss(logp, np.zeros((1, 2, 3), np.int64))
    with pytest.raises(ValueError, match=r"logp must be \(N, K, H, W\)"):
        pixel_nll_loss(np.zeros((2, 3)), np.zeros(2, np.int64))


# ---------------------------------------------------------------------------
# a small two-scale net, end to end
# ---------------------------------------------------------------------------

def test_two_scale_net_gradient():
    """x -> [conv | pyrdown -> conv (the same weights) -> upsample] -> concat -> 1x1 conv
    -> per-pixel log-softmax -> NLL with ignored pixels: d loss / d (input, every
    parameter), the shared convolution's gradient summed over its two uses."""
    rng = np.random.default_rng(27)
    shared = Conv2d(2, 3, 3, padding=1)
    shared.init_params(rng, np.float64)
    shared.params["bias"] = rng.standard_normal(3)
    shared2 = Conv2d(2, 3, 3, padding=1)
    shared2.params = shared.params       # weights shared (same arrays)
    act, act2 = Tanh(), Tanh()
    down, up, cat = PyramidDown(5), Upsample(2), Concat()
    head = Conv2d(6, 4, 1)
    head.init_params(rng, np.float64)
    head.params["bias"] = rng.standard_normal(4)
    lsm = PixelLogSoftmax()
    x = rng.standard_normal((2, 2, 6, 6))
    labels = rng.integers(-1, 4, size=(2, 6, 6))

    def forward():
        a = act.forward(shared.forward(x))
        b = up.forward(act2.forward(shared2.forward(down.forward(x))))
        return lsm.forward(head.forward(cat.forward_multi([a, b])))

    def loss():
        return pixel_nll_loss(forward(), labels)[0]

    _, g = pixel_nll_loss(forward(), labels)
    da, db = cat.backward(head.backward(lsm.backward(g)))
    dx = shared.backward(act.backward(da))
    dx = dx + down.backward(shared2.backward(act2.backward(up.backward(db))))
    analytic = {("head", k): v.copy() for k, v in head.grads.items()}
    for k in shared.params:
        analytic[("shared", k)] = shared.grads[k] + shared2.grads[k]
    assert rel_error(dx, numeric_grad(loss, x)) < TOL
    for (which, k), grad in analytic.items():
        params = head.params if which == "head" else shared.params
        err = rel_error(grad, numeric_grad(loss, params[k]))
        assert err < TOL, f"{which}.{k}: {err:.2e}"


# ---------------------------------------------------------------------------
# registry and model files
# ---------------------------------------------------------------------------

def test_registry():
    for cls in (PyramidDown, Upsample, PixelLogSoftmax):
        assert LAYER_TYPES[cls.type] is cls and not cls.multi_input
    assert MULTI_INPUT_TYPES == {"concat": Concat}
    assert "concat" not in LAYER_TYPES
    for layer in (PyramidDown(3), Upsample(4), PixelLogSoftmax()):
        back = json.loads(json.dumps({"type": layer.type, "attrs": layer.attrs()}))
        assert LAYER_TYPES[back["type"]](**back["attrs"]).attrs() == layer.attrs()


def test_model_file_round_trip(tmp_path):
    layers = [PyramidDown(5), Conv2d(3, 4, 3, padding=1), Tanh(), Upsample(2), Conv2d(4, 5, 1),
              PixelLogSoftmax()]
    net = Network(InputSpec((3, 8, 6), mean=[0.1, 0.2, 0.3], std=[1.0, 2.0, 3.0]), layers,
                  names=["pyr", "conv", "tanh", "up", "cls", "lsm"], name="tiny-seg", classes=5)
    net.init_params(3)
    assert net.output_shape == (5, 8, 6)
    back = load_model(save_model(net, tmp_path / "seg.npz"))
    assert [type(layer) for layer in back.layers] == [type(layer) for layer in layers]
    assert back.layers[0].kernel == 5 and back.layers[3].factor == 2
    x = np.random.default_rng(28).random((2, 3, 8, 6)).astype(np.float32)
    np.testing.assert_array_equal(back.forward(x), net.forward(x))


def test_spec_errors_name_the_layer(tmp_path):
    # (A chain used to refuse 'concat'; since graph specs (model format version 2) a
    # concat reads the inputs it names, and graphs are tested with the network.)
    from convc.reference.modelfile import network_from_graph
    graph = {"input": {"shape": [2, 4, 4]}}
    graph["layers"] = [{"name": "up", "type": "upsample", "attrs": {"factor": 10**30}}]
    with pytest.raises(ConvcError, match=r"spec: layer 0 'up': output .* beyond the limit"):
        network_from_graph(graph, "spec")
    graph["layers"] = [{"name": "p", "type": "pyrdown", "attrs": {"kernel": 4}}]
    with pytest.raises(ConvcError, match=r"spec: layer 0 'p': pyrdown: kernel must be 3 or 5"):
        network_from_graph(graph, "spec")
    graph["layers"] = [{"name": "p", "type": "pyrdown", "attrs": {"edge": "reflect"}}]
    with pytest.raises(ConvcError, match=r"spec: layer 0 'p': pyrdown: edge must be one of 'replicate', "
                                         r"'zero', got 'reflect'"):
        network_from_graph(graph, "spec")
    graph["layers"] = [{"name": "p", "type": "pyrdown", "attrs": {"kernel": 3, "edge": "zero"}}]
    assert network_from_graph(graph, "spec").layers[0].edge == "zero"

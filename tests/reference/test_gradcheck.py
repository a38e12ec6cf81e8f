"""Central finite-difference gradient checks of every layer, in float64.

For a layer ``f`` and a fixed random projection ``R`` the scalar
``L(x, theta) = sum(f(x; theta) * R)`` is differentiated numerically,

    dL/dz ~ (L(z + h) - L(z - h)) / (2 h)      for every element z,

and compared with the analytic gradient from ``backward(R)`` for the input
and for every parameter.  The error measure is

    max |analytic - numeric| / max(max |analytic|, max |numeric|, 1e-8),

required to be below 1e-6 (central differences with ``h = 1e-6`` on O(1)
data give about 1e-9).  Inputs are random continuous values so max-pool
windows and the LCN floor are not at a tie.
"""

from __future__ import annotations

import numpy as np
import pytest

from conv_cases import make_conv
from convc.reference.layers import (
    Abs,
    AvgPool2d,
    Conv2d,
    Flatten,
    L2Pool2d,
    Linear,
    LocalContrastNorm,
    LocalResponseNorm,
    LogSoftmax,
    MaxPool2d,
    ReLU,
    Tanh,
    nll_loss,
    random_table,
)

TOL = 1e-6
H = 1e-6


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), 1e-8)
    return float(np.abs(a - b).max(initial=0.0) / scale)


def numeric_grad(f, z: np.ndarray, h: float = H) -> np.ndarray:
    """Central differences of scalar ``f()`` with respect to array ``z`` (in place)."""
    g = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        old = z[idx]
        z[idx] = old + h
        fp = f()
        z[idx] = old - h
        fm = f()
        z[idx] = old
        g[idx] = (fp - fm) / (2 * h)
    return g


def check_layer(layer, x: np.ndarray, seed: int = 0, h: float = H) -> None:
    """Check dx and every parameter gradient of ``layer`` at ``x``."""
    rng = np.random.default_rng(seed)
    y = layer.forward(x)
    r = rng.standard_normal(y.shape)
    dx = layer.backward(r)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    assert set(grads) == set(layer.params)

    def loss() -> float:
        return float(np.sum(layer.forward(x) * r))

    err = rel_error(dx, numeric_grad(loss, x, h))
    assert err < TOL, f"{layer.type}: input gradient relative error {err:.2e}"
    for name, p in layer.params.items():
        err = rel_error(grads[name], numeric_grad(loss, p, h))
        assert err < TOL, f"{layer.type}: {name} gradient relative error {err:.2e}"


def away_from_zero(rng, shape, margin=0.05):
    """Normal samples pushed at least ``margin`` away from 0 (kinks of relu/abs)."""
    x = rng.standard_normal(shape)
    return np.where(x >= 0, x + margin, x - margin)


# ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "n, cin, cout, h, w, k, s, p, fan_in",
    [
        (2, 1, 3, 5, 5, 3, 1, 0, None),
        (2, 3, 2, 6, 5, 3, 2, 1, None),
        (1, 2, 2, 4, 4, 4, 1, 0, None),   # kernel equal to the image
        (2, 4, 3, 5, 5, 3, 1, 1, 2),      # connection table
        (1, 5, 4, 7, 7, 2, 3, 2, 3),      # table, stride 3, even kernel
        (2, 4, 6, 5, 6, 3, 1, 1, [[0, 1]] * 3 + [[2, 3]] * 3),          # grouped table
        (1, 4, 4, 6, 5, 3, 1, 0, [[0, 1], [2, 3], [1, 2], [0, 1]]),     # runs overlap
        (2, 3, 3, 6, 7, 3, 2, 1, [[0], [1], [2]]),                     # depthwise, stride 2
    ],
)
def test_conv2d(n, cin, cout, h, w, k, s, p, fan_in):
    layer, x, _ = make_conv(n, cin, cout, h, w, k, s, p, fan_in, seed=1)
    check_layer(layer, x)
    if layer.table is not None:
        assert np.all(layer.grads["weight"][~layer.connection_mask()] == 0)


@pytest.mark.parametrize("cls", [MaxPool2d, AvgPool2d, L2Pool2d], ids=lambda c: c.type)
@pytest.mark.parametrize("k, s", [(2, None), (3, 2), (3, 1), (2, 3)])
def test_pools(cls, k, s):
    rng = np.random.default_rng(2)
    check_layer(cls(k, s), rng.standard_normal((2, 2, 7, 6)))


@pytest.mark.parametrize(
    "n, c, h, w, k, sigma",
    [
        (2, 1, 6, 6, 3, None),
        (2, 3, 6, 5, 5, None),
        (1, 2, 5, 5, 5, 2.0),     # kernel equal to the image
        (1, 2, 4, 5, 7, 1.0),     # kernel larger than the image
    ],
)
def test_lcn(n, c, h, w, k, sigma):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, c, h, w)) * rng.uniform(0.3, 3.0, size=(n, 1, 1, 1))
    layer = LocalContrastNorm(k, sigma)
    layer.forward(x)
    _, _, _, _, use_s, use_mean = layer._cache
    assert use_s.any() and use_mean.any()  # both s and mean(s) paths are checked
    check_layer(layer, x)


def test_lcn_eps_branch():
    # Tiny inputs: s < eps everywhere, so d = eps and y = v / eps is linear.
    rng = np.random.default_rng(4)
    x = 1e-7 * rng.standard_normal((2, 2, 5, 5))
    layer = LocalContrastNorm(3)
    layer.forward(x)
    _, _, _, _, use_s, use_mean = layer._cache
    assert not (use_s | use_mean).any()
    check_layer(layer, x, h=1e-10)


@pytest.mark.parametrize(
    "n, c, h, w, size, alpha, beta, bias",
    [
        (2, 5, 3, 3, 3, 2.0, 0.75, 1.0),
        (2, 6, 3, 2, 4, 1.5, 0.75, 2.0),     # even size: asymmetric window
        (1, 5, 2, 3, 2, 3.0, 1.5, 0.5),      # size 2
        (2, 3, 3, 3, 9, 4.0, 0.75, 1.0),     # size larger than C
        (2, 1, 4, 4, 5, 2.0, 0.75, 1.0),     # one map
        (1, 4, 3, 3, 1, 2.0, 0.75, 1.0),     # size 1
        (1, 4, 3, 3, 5, 2.0, -0.5, 1.0),     # negative beta
    ],
)
def test_lrn(n, c, h, w, size, alpha, beta, bias):
    # alpha large enough that alpha/size * sum x^2 is O(1): the cross-map
    # term of the gradient is not negligible next to dy * d^-beta.
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, c, h, w)) * rng.uniform(0.5, 2.0, size=(n, 1, 1, 1))
    check_layer(LocalResponseNorm(size, alpha, beta, bias), x)


@pytest.mark.parametrize("cls", [ReLU, Tanh, Abs], ids=lambda c: c.type)
def test_elementwise(cls):
    rng = np.random.default_rng(5)
    check_layer(cls(), away_from_zero(rng, (2, 3, 4, 4)))
    check_layer(cls(), away_from_zero(rng, (3, 6)))


def test_linear():
    rng = np.random.default_rng(6)
    layer = Linear(7, 4)
    layer.init_params(rng, dtype=np.float64)
    layer.params["bias"] = rng.standard_normal(4)
    check_layer(layer, rng.standard_normal((3, 7)))


def test_flatten():
    check_layer(Flatten(), np.random.default_rng(7).standard_normal((2, 3, 2, 4)))


def test_logsoftmax():
    check_layer(LogSoftmax(), 3 * np.random.default_rng(8).standard_normal((4, 6)))


def test_nll_loss():
    rng = np.random.default_rng(9)
    logp = rng.standard_normal((5, 4))
    labels = rng.integers(0, 4, size=5)
    _, grad = nll_loss(logp, labels)
    num = numeric_grad(lambda: nll_loss(logp, labels)[0], logp)
    assert rel_error(grad, num) < TOL


def test_small_network_end_to_end():
    """Chain every layer type and check d loss / d (input, all params)."""
    rng = np.random.default_rng(10)
    layers = [
        Conv2d(2, 4, 3, padding=1),
        Tanh(),
        LocalContrastNorm(3),
        LocalResponseNorm(2, alpha=2.0, beta=0.75, bias=1.0),
        MaxPool2d(2),
        Conv2d(4, 3, 2, table=random_table(3, 4, 2, rng)),
        Abs(),
        L2Pool2d(2, 1),
        AvgPool2d(1),
        ReLU(),
        Flatten(),
        Linear(3 * 1 * 1, 5),
        LogSoftmax(),
    ]
    shape = (2, 6, 6)
    for layer in layers:
        layer.init_params(rng, dtype=np.float64)
        shape = layer.output_shape(shape)
    assert shape == (5,)
    layers[-2].params["bias"] = rng.standard_normal(5)
    x = rng.standard_normal((3, 2, 6, 6))
    labels = np.array([0, 3, 4])

    def loss() -> float:
        a = x
        for layer in layers:
            a = layer.forward(a)
        return nll_loss(a, labels)[0]

    loss()
    a = x
    for layer in layers:
        a = layer.forward(a)
    _, g = nll_loss(a, labels)
    for layer in reversed(layers):
        g = layer.backward(g)
    analytic = {(i, k): v.copy() for i, layer in enumerate(layers) for k, v in layer.grads.items()}

    assert rel_error(g, numeric_grad(loss, x)) < TOL
    for (i, k), grad in analytic.items():
        err = rel_error(grad, numeric_grad(loss, layers[i].params[k]))
        assert err < TOL, f"layer {i} ({layers[i].type}) {k}: {err:.2e}"

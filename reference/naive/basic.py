"""Elementwise nonlinearities, the linear layer, flatten, log-softmax and the NLL loss by loops."""

from __future__ import annotations

import math

import numpy as np


# ---------------------------------------------------------------------------
# elementwise
# ---------------------------------------------------------------------------

def _map(x, f):
    y = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        y[idx] = f(x[idx])
    return y


def relu_forward(x):
    return _map(x, lambda v: v if v > 0 else 0.0)


def relu_backward(x, dy):
    dx = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        dx[idx] = dy[idx] if x[idx] > 0 else 0.0
    return dx


def tanh_forward(x):
    return _map(x, math.tanh)


def tanh_backward(x, dy):
    dx = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        dx[idx] = dy[idx] * (1 - math.tanh(x[idx]) ** 2)
    return dx


def abs_forward(x):
    return _map(x, abs)


def abs_backward(x, dy):
    dx = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        v = x[idx]
        dx[idx] = dy[idx] * (1.0 if v > 0 else -1.0 if v < 0 else 0.0)
    return dx


# ---------------------------------------------------------------------------
# vector layers
# ---------------------------------------------------------------------------

def linear_forward(x, weight, bias):
    """``y[n, o] = b[o] + sum_f W[o, f] x[n, f]``."""
    n_, f_ = x.shape
    o_ = weight.shape[0]
    y = np.zeros((n_, o_), dtype=x.dtype)
    for n in range(n_):
        for o in range(o_):
            acc = bias[o]
            for f in range(f_):
                acc += weight[o, f] * x[n, f]
            y[n, o] = acc
    return y


def linear_backward(x, weight, dy):
    """Returns ``(dx, dweight, dbias)``."""
    n_, f_ = x.shape
    o_ = weight.shape[0]
    dx = np.zeros_like(x)
    dw = np.zeros_like(weight)
    db = np.zeros(o_, dtype=weight.dtype)
    for n in range(n_):
        for o in range(o_):
            db[o] += dy[n, o]
            for f in range(f_):
                dw[o, f] += dy[n, o] * x[n, f]
                dx[n, f] += dy[n, o] * weight[o, f]
    return dx, dw, db


def flatten_forward(x):
    """Copy each sample into a vector in C (row-major) order."""
    n_ = x.shape[0]
    per = x.shape[1:]
    y = np.zeros((n_, int(np.prod(per))), dtype=x.dtype)
    for n in range(n_):
        for k, idx in enumerate(np.ndindex(per)):
            y[n, k] = x[(n,) + idx]
    return y


def flatten_backward(x_shape, dy):
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for n in range(x_shape[0]):
        for k, idx in enumerate(np.ndindex(tuple(x_shape[1:]))):
            dx[(n,) + idx] = dy[n, k]
    return dx


def logsoftmax_forward(x):
    """Row-wise ``y_k = x_k - log(sum_j exp(x_j))`` (max-shifted)."""
    n_, k_ = x.shape
    y = np.zeros_like(x)
    for n in range(n_):
        mx = max(x[n, k] for k in range(k_))
        lse = mx + math.log(sum(math.exp(x[n, k] - mx) for k in range(k_)))
        for k in range(k_):
            y[n, k] = x[n, k] - lse
    return y


def logsoftmax_backward(x, dy):
    """``dx_k = dy_k - softmax_k * sum_j dy_j``."""
    y = logsoftmax_forward(x)
    n_, k_ = x.shape
    dx = np.zeros_like(x)
    for n in range(n_):
        total = sum(dy[n, k] for k in range(k_))
        for k in range(k_):
            dx[n, k] = dy[n, k] - math.exp(y[n, k]) * total
    return dx


def nll_loss(logp, labels):
    """Mean negative log-likelihood and its gradient wrt ``logp``."""
    n_ = logp.shape[0]
    loss = 0.0
    grad = np.zeros_like(logp)
    for n in range(n_):
        loss -= logp[n, labels[n]]
        grad[n, labels[n]] = -1.0 / n_
    return loss / n_, grad

"""Pooling by loops: max, average and L2."""

from __future__ import annotations

import math

import numpy as np


# ---------------------------------------------------------------------------
# pooling (no padding; out = (H - k) // s + 1)
# ---------------------------------------------------------------------------

def _pool_out(x, kernel, stride):
    _, _, h_, w_ = x.shape
    return (h_ - kernel) // stride + 1, (w_ - kernel) // stride + 1


def _window(x, n, c, i, j, kernel, stride):
    """List of ((r, s), value) of one pooling window in raster order."""
    out = []
    for p in range(kernel):
        for q in range(kernel):
            r, s = i * stride + p, j * stride + q
            out.append(((r, s), x[n, c, r, s]))
    return out


def _pool_outputs(x, kernel, stride):
    """Every pooling output ``(n, c, i, j)`` of ``x``, in order, by plain loops."""
    n_, c_ = x.shape[:2]
    oh, ow = _pool_out(x, kernel, stride)
    for n in range(n_):
        for c in range(c_):
            for i in range(oh):
                for j in range(ow):
                    yield n, c, i, j


def _pool_forward(x, kernel, stride, reduce):
    """``y[n, c, i, j] = reduce(values of the window)`` for every window."""
    y = np.zeros(x.shape[:2] + _pool_out(x, kernel, stride), dtype=x.dtype)
    for n, c, i, j in _pool_outputs(x, kernel, stride):
        y[n, c, i, j] = reduce([v for _, v in _window(x, n, c, i, j, kernel, stride)])
    return y


def maxpool2d_forward(x, kernel, stride):
    """``y = max over the window``."""
    return _pool_forward(x, kernel, stride, max)


def maxpool2d_backward(x, kernel, stride, dy):
    """Gradient to the first maximum of each window in raster order; accumulates."""
    dx = np.zeros_like(x)
    for n, c, i, j in _pool_outputs(x, kernel, stride):
        best_pos, best = None, None
        for pos, v in _window(x, n, c, i, j, kernel, stride):
            if best is None or v > best:  # strict: keeps the first max
                best_pos, best = pos, v
        dx[(n, c) + best_pos] += dy[n, c, i, j]
    return dx


def avgpool2d_forward(x, kernel, stride):
    """``y = sum over the window / kernel^2``."""
    return _pool_forward(x, kernel, stride, lambda vs: sum(vs) / (kernel * kernel))


def avgpool2d_backward(x, kernel, stride, dy):
    dx = np.zeros_like(x)
    for n, c, i, j in _pool_outputs(x, kernel, stride):
        for pos, _ in _window(x, n, c, i, j, kernel, stride):
            dx[(n, c) + pos] += dy[n, c, i, j] / (kernel * kernel)
    return dx


def l2pool2d_forward(x, kernel, stride):
    """``y = sqrt(sum over the window of x^2)`` (a sum, not a mean)."""
    return _pool_forward(x, kernel, stride, lambda vs: math.sqrt(sum(v * v for v in vs)))


def l2pool2d_backward(x, kernel, stride, dy):
    """``dx += dy * x / y`` over each window; nothing where ``y == 0``."""
    y = l2pool2d_forward(x, kernel, stride)
    dx = np.zeros_like(x)
    for n, c, i, j in _pool_outputs(x, kernel, stride):
        if y[n, c, i, j] == 0:
            continue
        for pos, v in _window(x, n, c, i, j, kernel, stride):
            dx[(n, c) + pos] += dy[n, c, i, j] * v / y[n, c, i, j]
    return dx

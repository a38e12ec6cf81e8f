"""Convolution by loops: :func:`conv2d_forward`, :func:`conv2d_backward`."""

from __future__ import annotations

import numpy as np


# ---------------------------------------------------------------------------
# convolution
# ---------------------------------------------------------------------------

def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _taps(i, j, k, stride, padding, h_, w_):
    """``(p, q, r, s)`` for each tap ``(p, q)`` of output ``(i, j)``'s ``k x k`` window whose
    input pixel ``(r, s) = (i * stride + p - padding, j * stride + q - padding)`` lies inside
    the ``h_ x w_`` input (the rest read zero padding)."""
    for p in range(k):
        for q in range(k):
            r, s = i * stride + p - padding, j * stride + q - padding
            if 0 <= r < h_ and 0 <= s < w_:
                yield p, q, r, s


def conv2d_forward(x, weight, bias, stride, padding):
    """``y[n,o,i,j] = b[o] + sum_{c,p,q} W[o,c,p,q] * x[n, c, s*i+p-pad, s*j+q-pad]``.

    Out-of-range input positions count as zero (zero padding).

    Parameters
    ----------
    x : (N, C, H, W)
    weight : (O, C, K, K)
    bias : (O,)
    stride, padding : int

    Returns
    -------
    y : (N, O, OH, OW)
    """
    n_, c_, h_, w_ = x.shape
    o_, _, k, _ = weight.shape
    oh, ow = _conv_out(h_, k, stride, padding), _conv_out(w_, k, stride, padding)
    y = np.zeros((n_, o_, oh, ow), dtype=x.dtype)
    for n in range(n_):
        for o in range(o_):
            for i in range(oh):
                for j in range(ow):
                    acc = bias[o]
                    for c in range(c_):
                        for p, q, r, s in _taps(i, j, k, stride, padding, h_, w_):
                            acc += weight[o, c, p, q] * x[n, c, r, s]
                    y[n, o, i, j] = acc
    return y


def conv2d_backward(x, weight, stride, padding, dy):
    """Gradients of :func:`conv2d_forward`.

    Returns
    -------
    dx : (N, C, H, W)
    dweight : (O, C, K, K)  (unmasked; mask it for connection tables)
    dbias : (O,)
    """
    n_, c_, h_, w_ = x.shape
    o_, _, k, _ = weight.shape
    _, _, oh, ow = dy.shape
    dx = np.zeros_like(x)
    dw = np.zeros_like(weight)
    db = np.zeros(o_, dtype=weight.dtype)
    for n in range(n_):
        for o in range(o_):
            for i in range(oh):
                for j in range(ow):
                    g = dy[n, o, i, j]
                    db[o] += g
                    for c in range(c_):
                        for p, q, r, s in _taps(i, j, k, stride, padding, h_, w_):
                            dw[o, c, p, q] += g * x[n, c, r, s]
                            dx[n, c, r, s] += g * weight[o, c, p, q]
    return dx, dw, db

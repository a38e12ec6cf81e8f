"""The scene-parsing layers by loops: pyramid step, upsampling, concatenation, the
per-pixel log-softmax and NLL loss."""

from __future__ import annotations

import math

import numpy as np


# ---------------------------------------------------------------------------
# scene parsing: pyramid step, upsampling, concatenation, per-pixel classifier
# ---------------------------------------------------------------------------

def _binomial(kernel):
    """Row ``kernel - 1`` of Pascal's triangle over its sum, ``2**(kernel-1)``."""
    return [math.comb(kernel - 1, p) / 2 ** (kernel - 1) for p in range(kernel)]


def _clamp(v, n):
    return min(max(v, 0), n - 1)


def _pyr_index(v, n, edge):
    """Input index of tap position ``v`` on an axis of ``n``: clamped (``"replicate"``),
    or None outside the image (``"zero"``: the padding contributes nothing)."""
    if edge == "replicate":
        return _clamp(v, n)
    if edge == "zero":
        return v if 0 <= v < n else None
    raise ValueError(f"pyrdown: unknown edge {edge!r}")


def pyrdown_forward(x, kernel, edge="replicate"):
    """``y[n,c,i,j] = sum_{p,q} g[p] g[q] x[n, c, clamp(2i+p-r), clamp(2j+q-r)]``,
    ``g`` binomial with ``kernel`` taps, ``r = kernel // 2``; output ``ceil(H/2) x ceil(W/2)``.
    With ``edge="zero"`` the terms whose position falls outside the image are dropped
    instead of clamped (zero padding)."""
    n_, c_, h_, w_ = x.shape
    g = _binomial(kernel)
    r = kernel // 2
    oh, ow = (h_ + 1) // 2, (w_ + 1) // 2
    y = np.zeros((n_, c_, oh, ow), dtype=x.dtype)
    for n in range(n_):
        for c in range(c_):
            for i in range(oh):
                for j in range(ow):
                    acc = 0.0
                    for p in range(kernel):
                        for q in range(kernel):
                            a = _pyr_index(2 * i + p - r, h_, edge)
                            b = _pyr_index(2 * j + q - r, w_, edge)
                            if a is not None and b is not None:
                                acc += g[p] * g[q] * x[n, c, a, b]
                    y[n, c, i, j] = acc
    return y


def pyrdown_backward(x_shape, kernel, dy, edge="replicate"):
    """Gradient of :func:`pyrdown_forward` (scatter form: each term pushes its weight
    to the clamped input position, so border positions collect several; with
    ``edge="zero"`` the terms on the padding push nothing)."""
    n_, c_, h_, w_ = x_shape
    g = _binomial(kernel)
    r = kernel // 2
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for n in range(n_):
        for c in range(c_):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    for p in range(kernel):
                        for q in range(kernel):
                            a = _pyr_index(2 * i + p - r, h_, edge)
                            b = _pyr_index(2 * j + q - r, w_, edge)
                            if a is not None and b is not None:
                                dx[n, c, a, b] += g[p] * g[q] * dy[n, c, i, j]
    return dx


def upsample_forward(x, factor):
    """``y[n, c, i, j] = x[n, c, i // factor, j // factor]``."""
    n_, c_, h_, w_ = x.shape
    y = np.zeros((n_, c_, h_ * factor, w_ * factor), dtype=x.dtype)
    for n in range(n_):
        for c in range(c_):
            for i in range(h_ * factor):
                for j in range(w_ * factor):
                    y[n, c, i, j] = x[n, c, i // factor, j // factor]
    return y


def upsample_backward(x_shape, factor, dy):
    """``dx[n, c, a, b] = sum of dy over the block it was copied to``."""
    dx = np.zeros(x_shape, dtype=dy.dtype)
    n_, c_, oh, ow = dy.shape
    for n in range(n_):
        for c in range(c_):
            for i in range(oh):
                for j in range(ow):
                    dx[n, c, i // factor, j // factor] += dy[n, c, i, j]
    return dx


def concat_forward(xs):
    """Maps of ``xs[0]``, then of ``xs[1]``, ... at every pixel."""
    n_, _, h_, w_ = xs[0].shape
    total = sum(x.shape[1] for x in xs)
    y = np.zeros((n_, total, h_, w_), dtype=xs[0].dtype)
    for n in range(n_):
        k = 0
        for x in xs:
            for c in range(x.shape[1]):
                for i in range(h_):
                    for j in range(w_):
                        y[n, k, i, j] = x[n, c, i, j]
                k += 1
    return y


def concat_backward(channels, dy):
    """List of ``dx_m``: the maps of ``dy`` that input ``m`` (``channels[m]`` maps) filled."""
    out = []
    k0 = 0
    for cm in channels:
        dx = np.zeros((dy.shape[0], cm) + dy.shape[2:], dtype=dy.dtype)
        for n in range(dy.shape[0]):
            for c in range(cm):
                for i in range(dy.shape[2]):
                    for j in range(dy.shape[3]):
                        dx[n, c, i, j] = dy[n, k0 + c, i, j]
        out.append(dx)
        k0 += cm
    return out


def pixel_logsoftmax_forward(x):
    """At every ``(n, i, j)``: ``y[k] = x[k] - log(sum_l exp(x[l]))`` over the maps (max-shifted)."""
    n_, k_, h_, w_ = x.shape
    y = np.zeros_like(x)
    for n, i, j in np.ndindex(n_, h_, w_):
        mx = max(x[n, k, i, j] for k in range(k_))
        lse = mx + math.log(sum(math.exp(x[n, k, i, j] - mx) for k in range(k_)))
        for k in range(k_):
            y[n, k, i, j] = x[n, k, i, j] - lse
    return y


def pixel_logsoftmax_backward(x, dy):
    """``dx[k] = dy[k] - softmax[k] * sum_l dy[l]`` at every pixel."""
    y = pixel_logsoftmax_forward(x)
    n_, k_, h_, w_ = x.shape
    dx = np.zeros_like(x)
    for n, i, j in np.ndindex(n_, h_, w_):
        total = sum(dy[n, k, i, j] for k in range(k_))
        for k in range(k_):
            dx[n, k, i, j] = dy[n, k, i, j] - math.exp(y[n, k, i, j]) * total
    return dx


def pixel_nll_loss(logp, labels, ignore_label=-1):
    """Mean of ``-logp[n, t, i, j]`` over the pixels whose label ``t`` is not
    ``ignore_label``, and its gradient (0.0 and zeros when no pixel is labelled)."""
    n_, _, h_, w_ = logp.shape
    count = 0
    for n in range(n_):
        for i in range(h_):
            for j in range(w_):
                if labels[n, i, j] != ignore_label:
                    count += 1
    loss = 0.0
    grad = np.zeros_like(logp)
    for n in range(n_):
        for i in range(h_):
            for j in range(w_):
                t = labels[n, i, j]
                if t != ignore_label:
                    loss -= logp[n, t, i, j]
                    grad[n, t, i, j] = -1.0 / count
    return (loss / count if count else 0.0), grad

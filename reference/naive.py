"""Slow, loop-based reference implementations of every layer.

Used only by the tests, on tiny shapes, to hold the vectorized layers of
:mod:`convc.reference.layers` to the equations written out element by
element.  Nothing here is vectorized beyond allocating the output arrays; no
im2col, no sliding windows, no filtering helpers are shared with the fast
code.  Arrays follow the layer conventions: maps are ``(N, C, H, W)``,
vectors ``(N, F)``; results have the dtype of ``x``.

Every function takes the parameters explicitly.  Connection tables are *not*
handled here: the caller passes a weight that is already masked and masks
``dweight`` itself.

The LCN backward (:func:`lcn_backward`) is written with explicit loops and
the chain rule in *scatter* form (each forward term pushes its gradient to its
inputs), independent of the vectorized adjoint-filter form; it is also
verified by the finite-difference checks.  The LRN backward
(:func:`lrn_backward`) is likewise in scatter form, while the vectorized layer
gathers over the mirrored window.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "conv2d_forward",
    "conv2d_backward",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
    "l2pool2d_forward",
    "l2pool2d_backward",
    "lcn_forward",
    "lcn_backward",
    "lrn_forward",
    "lrn_backward",
    "relu_forward",
    "relu_backward",
    "tanh_forward",
    "tanh_backward",
    "abs_forward",
    "abs_backward",
    "linear_forward",
    "linear_backward",
    "flatten_forward",
    "flatten_backward",
    "logsoftmax_forward",
    "logsoftmax_backward",
    "nll_loss",
    "pyrdown_forward",
    "pyrdown_backward",
    "upsample_forward",
    "upsample_backward",
    "concat_forward",
    "concat_backward",
    "pixel_logsoftmax_forward",
    "pixel_logsoftmax_backward",
    "pixel_nll_loss",
]


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


# ---------------------------------------------------------------------------
# local contrast normalization
# ---------------------------------------------------------------------------

def _lcn_window_sum(a, window):
    """``out[i, j] = sum_{c,p,q} window[p, q] / C * a[c, i+p-r, j+q-r]`` (zero outside), by
    loops: the window sum of LCN's mean (``a = x``) and of its variance (``a = v**2``)."""
    c_, h_, w_ = a.shape
    k = window.shape[0]
    r = k // 2
    out = np.zeros((h_, w_))
    for i in range(h_):
        for j in range(w_):
            acc = 0.0
            for c in range(c_):
                for p in range(k):
                    for q in range(k):
                        y, x = i + p - r, j + q - r
                        if 0 <= y < h_ and 0 <= x < w_:
                            acc += window[p, q] / c_ * a[c, y, x]
            out[i, j] = acc
    return out


def _lcn_terms(x, window, eps):
    """All intermediate values of the LCN forward, by loops.

    ``window`` is the ``(K, K)`` Gaussian summing to 1; each map is weighted by
    ``window / C``.  Returns per sample lists of ``m, v, s, mean, d``.
    """
    n_, c_, h_, w_ = x.shape
    out = []
    for n in range(n_):
        m = _lcn_window_sum(x[n], window)
        v = np.zeros((c_, h_, w_))
        for c in range(c_):
            for i in range(h_):
                for j in range(w_):
                    v[c, i, j] = x[n, c, i, j] - m[i, j]
        s2 = _lcn_window_sum(v ** 2, window)
        s = np.zeros((h_, w_))
        for i in range(h_):
            for j in range(w_):
                s[i, j] = math.sqrt(s2[i, j])
        mean = sum(s[i, j] for i in range(h_) for j in range(w_)) / (h_ * w_)
        d = np.zeros((h_, w_))
        branch = {}
        for i in range(h_):
            for j in range(w_):
                # tie rule: first of (s, mean, eps) attaining the maximum
                if s[i, j] >= mean and s[i, j] >= eps:
                    d[i, j], branch[i, j] = s[i, j], "s"
                elif mean >= eps:
                    d[i, j], branch[i, j] = mean, "mean"
                else:
                    d[i, j], branch[i, j] = eps, "eps"
        out.append((m, v, s, mean, d, branch))
    return out


def lcn_forward(x, window, eps):
    """Local contrast normalization, ``y = v / max(s, mean(s), eps)``.

    See :class:`convc.reference.layers.LocalContrastNorm` for the equations.

    Parameters
    ----------
    x : (N, C, H, W)
    window : (K, K) Gaussian summing to 1 (per-map weight is ``window / C``)
    eps : float

    Returns
    -------
    y : (N, C, H, W)
    """
    n_, c_, h_, w_ = x.shape
    y = np.zeros_like(x)
    for n, (_, v, _, _, d, _) in enumerate(_lcn_terms(x, window, eps)):
        for c in range(c_):
            for i in range(h_):
                for j in range(w_):
                    y[n, c, i, j] = v[c, i, j] / d[i, j]
    return y


def lcn_backward(x, window, eps, dy):
    """Gradient of :func:`lcn_forward` by loops and the chain rule (scatter form).

    Same tie rule as the vectorized layer; ``d sqrt(S)/dS`` taken as 0 where
    ``s == 0``.
    """
    n_, c_, h_, w_ = x.shape
    k = window.shape[0]
    r = k // 2
    dx = np.zeros_like(x)
    for n, (m, v, s, mean, d, branch) in enumerate(_lcn_terms(x, window, eps)):
        # y = v / d
        dv = np.zeros((c_, h_, w_))
        dd = np.zeros((h_, w_))
        for c in range(c_):
            for i in range(h_):
                for j in range(w_):
                    dv[c, i, j] += dy[n, c, i, j] / d[i, j]
                    dd[i, j] += -dy[n, c, i, j] * v[c, i, j] / d[i, j] ** 2
        # d = max(s, mean, eps); mean = sum(s) / (H W)
        ds = np.zeros((h_, w_))
        dmean = 0.0
        for i in range(h_):
            for j in range(w_):
                if branch[i, j] == "s":
                    ds[i, j] += dd[i, j]
                elif branch[i, j] == "mean":
                    dmean += dd[i, j]
        for i in range(h_):
            for j in range(w_):
                ds[i, j] += dmean / (h_ * w_)
        # s(i,j) = sqrt(sum w/C v[c, i+p-r, j+q-r]^2): push to each v term
        for i in range(h_):
            for j in range(w_):
                if s[i, j] == 0:
                    continue
                g = ds[i, j] / (2 * s[i, j])
                for c in range(c_):
                    for p in range(k):
                        for q in range(k):
                            a, b = i + p - r, j + q - r
                            if 0 <= a < h_ and 0 <= b < w_:
                                dv[c, a, b] += g * window[p, q] / c_ * 2 * v[c, a, b]
        # v = x - m
        dm = np.zeros((h_, w_))
        for c in range(c_):
            for i in range(h_):
                for j in range(w_):
                    dx[n, c, i, j] += dv[c, i, j]
                    dm[i, j] -= dv[c, i, j]
        # m(i,j) = sum w/C x[c, i+p-r, j+q-r]: push to each x term
        for i in range(h_):
            for j in range(w_):
                for c in range(c_):
                    for p in range(k):
                        for q in range(k):
                            a, b = i + p - r, j + q - r
                            if 0 <= a < h_ and 0 <= b < w_:
                                dx[n, c, a, b] += dm[i, j] * window[p, q] / c_
    return dx


# ---------------------------------------------------------------------------
# local response normalization (across maps)
# ---------------------------------------------------------------------------

def _lrn_window(c, c_, size):
    """Maps of the window of output map ``c``, exactly as written in ONNX ``LRN``:
    ``max(0, c - floor((size-1)/2)) .. min(C-1, c + ceil((size-1)/2))``."""
    lo = max(0, c - math.floor((size - 1) / 2))
    hi = min(c_ - 1, c + math.ceil((size - 1) / 2))
    return range(lo, hi + 1)


def _lrn_divisor(x, n, c, i, j, size, alpha, bias):
    """``d = bias + alpha / size * sum over the window of x^2`` at one position."""
    c_ = x.shape[1]
    acc = 0.0
    for k in _lrn_window(c, c_, size):
        acc += x[n, k, i, j] ** 2
    return bias + alpha / size * acc


def lrn_forward(x, size, alpha, beta, bias):
    """Local response normalization across maps, ``y = x / d^beta``.

    See :class:`convc.reference.layers.LocalResponseNorm` for the equations.

    Parameters
    ----------
    x : (N, C, H, W)
    size : int
    alpha, beta, bias : float

    Returns
    -------
    y : (N, C, H, W)
    """
    y = np.zeros_like(x)
    for n, c, i, j in np.ndindex(*x.shape):
        d = _lrn_divisor(x, n, c, i, j, size, alpha, bias)
        y[n, c, i, j] = x[n, c, i, j] / d ** beta
    return y


def lrn_backward(x, size, alpha, beta, bias, dy):
    """Gradient of :func:`lrn_forward` by the chain rule (scatter form).

    ``y[c] = x[c] * d[c]^-beta`` pushes ``dy * d^-beta`` to ``x[c]`` and
    ``dy * x[c] * (-beta) d^(-beta-1) * alpha/size * 2 x[k]`` to every ``x[k]``
    of its window.
    """
    c_ = x.shape[1]
    dx = np.zeros_like(x)
    for n, c, i, j in np.ndindex(*x.shape):
        d = _lrn_divisor(x, n, c, i, j, size, alpha, bias)
        g = dy[n, c, i, j]
        dx[n, c, i, j] += g * d ** (-beta)
        dd = g * x[n, c, i, j] * (-beta) * d ** (-beta - 1)
        for k in _lrn_window(c, c_, size):
            dx[n, k, i, j] += dd * alpha / size * 2 * x[n, k, i, j]
    return dx


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
    for n in range(n_):
        for i in range(h_):
            for j in range(w_):
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
    for n in range(n_):
        for i in range(h_):
            for j in range(w_):
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

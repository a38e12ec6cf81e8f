"""Local contrast and local response normalization by loops."""

from __future__ import annotations

import math

import numpy as np


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

r"""The discrete minimax (Chebyshev) straight line, the line solver of the PWL fitter
(:mod:`convc.compiler.pwl_fit`): :func:`minimax_line` through sampled points, and
:func:`stab_line` through intervals (a weighted minimax problem), both by Stiefel's
single-point exchange on a 3-point alternating reference.
"""

from __future__ import annotations

import numpy as np

__all__ = ["minimax_line", "stab_line"]


def minimax_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Discrete Chebyshev (minimax) line ``y ~ a*x + b`` over sorted points.

    Stiefel's single-point exchange on a 3-point reference (de la Vallée
    Poussin: the levelled error ``|h|`` of any alternating reference is a lower
    bound of the minimax error, and the exchange increases it until the max
    residual equals it).  Returns ``(a, b, err)`` where ``err`` is the *actual*
    max residual of the returned line (honest even if the iteration cap hits).
    """
    n = x.shape[0]
    if n == 1:
        return 0.0, float(y[0]), 0.0
    if n == 2:
        a = float((y[1] - y[0]) / (x[1] - x[0]))
        b = float(y[0] - a * x[0])
        return a, b, float(np.max(np.abs(y - (a * x + b))))
    tol = 1e-13 * (1.0 + float(np.max(np.abs(y))))

    def solve(i0, i1, i2):
        a = float((y[i2] - y[i0]) / (x[i2] - x[i0]))
        c0 = float(y[i0] - a * x[i0])
        c1 = float(y[i1] - a * x[i1])
        b = 0.5 * (c0 + c1)
        return a, b, 0.5 * (c0 - c1), y - a * x - b

    return _exchange_loop(n, solve, tol)


def _exchange_loop(n: int, solve, tol: float, decided=None) -> tuple[float, float, float]:
    """Stiefel's single-point exchange, shared by :func:`minimax_line` and :func:`stab_line`.

    ``solve(i0, i1, i2) -> (a, b, h, res)`` levels the line on the alternating reference
    (``h``: the levelled error, a lower bound of the optimum) and gives the residuals
    ``res`` of every point. The worst point joins the reference (:func:`_exchange`) until
    it is no worse than ``|h|`` (converged), ``decided(worst, h)`` says so, or it is
    already in the reference (rounding noise). Returns ``(a, b, worst)``: the actual
    worst residual of the returned line."""
    i0, i1, i2 = 0, n // 2, n - 1
    a = b = worst = 0.0
    for _ in range(100):
        a, b, h, res = solve(i0, i1, i2)
        k = int(np.argmax(np.abs(res)))
        worst = float(abs(res[k]))
        if worst <= abs(h) * (1.0 + 1e-9) + tol:
            break
        if decided is not None and decided(worst, h):
            break
        if k in (i0, i1, i2):  # numerical stall (rounding noise)
            break
        i0, i1, i2 = _exchange(i0, i1, i2, k, (res[k] > 0) == (h >= 0))
    return a, b, worst


def _exchange(i0: int, i1: int, i2: int, k: int, same_as_i0: bool):
    """Single-point exchange of an alternating 3-point reference.

    ``same_as_i0``: the new point ``k`` violates on the same side as ``i0``
    (and ``i2``); the new reference keeps alternation."""
    if k < i0:
        return (k, i1, i2) if same_as_i0 else (k, i0, i1)
    if k < i1:
        return (k, i1, i2) if same_as_i0 else (i0, k, i2)
    if k < i2:
        return (i0, i1, k) if same_as_i0 else (i0, k, i2)
    return (i0, i1, k) if same_as_i0 else (i1, i2, k)


def stab_line(
    x: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    slack: float = 0.0,
    decide: bool = False,
) -> tuple[float, float, float, bool]:
    r"""Line ``L = a*x + b`` through the intervals ``[lo_j - slack, hi_j + slack]``.

    Solved as the weighted Chebyshev problem

    .. math:: \min_{a,b} \; r(L) = \max_j |L(x_j) - m_j| / w_j, \qquad
              m_j = (lo_j + hi_j)/2,\; w_j = (hi_j - lo_j)/2 + slack > 0

    so that the line meets every interval iff ``r <= 1``.  Same exchange as
    :func:`minimax_line`: an alternating reference ``x0 < x1 < x2`` solves
    ``m_i - L(x_i) = (+h, -h, +h) * w_i``; ``|h|`` is a lower bound of the
    optimum (de la Vallée Poussin) and rises until the worst point is in the
    reference.  With ``decide=True`` it returns as soon as ``r <= 1`` is
    decided (``|h| > 1``: impossible; current ``r <= 1``: found).  Returns
    ``(a, b, r, r <= 1)`` with ``r`` the actual value of the returned line.
    """
    n = x.shape[0]
    m = 0.5 * (lo + hi)
    w = 0.5 * (hi - lo) + slack
    if n <= 2:
        if n == 1:
            return 0.0, float(m[0]), 0.0, True
        a = float((m[1] - m[0]) / (x[1] - x[0]))
        return a, float(m[0] - a * x[0]), 0.0, True
    tol = 1e-12

    def solve(i0, i1, i2):
        x0, x1, x2 = float(x[i0]), float(x[i1]), float(x[i2])
        m0, m1, m2 = float(m[i0]), float(m[i1]), float(m[i2])
        w0, w1, w2 = float(w[i0]), float(w[i1]), float(w[i2])
        det = (x1 - x0) * (w2 - w0) + (w1 + w0) * (x2 - x0)  # > 0
        a = ((m1 - m0) * (w2 - w0) + (w1 + w0) * (m2 - m0)) / det
        h = ((x1 - x0) * (m2 - m0) - (x2 - x0) * (m1 - m0)) / det
        b = m0 - a * x0 - w0 * h
        return a, b, h, (m - (a * x + b)) / w

    a, b, r = _exchange_loop(n, solve, tol, (lambda worst, h: worst <= 1.0 or abs(h) > 1.0) if decide else None)
    return a, b, r, r <= 1.0

"""Normalization: local contrast (:class:`LocalContrastNorm`) and local response across
maps (:class:`LocalResponseNorm`)."""

from __future__ import annotations

import fractions
import math
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .base import Layer, _check_batch, _check_int, _check_map_shape


# ---------------------------------------------------------------------------
# local contrast normalization
# ---------------------------------------------------------------------------

def _filter_same(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Zero-padded "same" 2-D correlation of every ``a[n]`` with ``outer(g, g)``, odd ``len(g)``.

    ``out[n, i, j] = sum_{p, q} g[p] g[q] a[n, i + p - r, j + q - r]``, ``r = K // 2``,
    out-of-range terms being zero.  Separable: filtered along the rows, then
    along the columns (``2 K`` passes instead of ``K^2`` products).  Its adjoint
    is the same operation with ``g[::-1]``.
    """
    k = g.shape[0]
    r = k // 2
    n, h, w = a.shape
    ap = np.zeros((n, h, w + 2 * r), dtype=np.result_type(a, g))
    ap[:, :, r:r + w] = a
    t = np.zeros((n, h + 2 * r, w), dtype=ap.dtype)
    rows = t[:, r:r + h]
    for q in range(k):
        rows += g[q] * ap[:, :, q:q + w]
    out = g[0] * t[:, 0:h]
    for p in range(1, k):
        out += g[p] * t[:, p:p + h]
    return out


@dataclass(eq=False)
class LocalContrastNorm(Layer):
    r"""Local (subtractive + divisive) contrast normalization.

    After Jarrett et al. 2009 and Torch7 ``SpatialContrastiveNormalization``,
    but with plain zero padding and *without* Torch's border coefficient
    correction.  Output has the input's shape.  No parameters.

    With ``g`` the normalized ``K x K`` Gaussian of :meth:`window` (sums to 1),
    ``C`` the number of maps, and sums over ``c`` and ``p, q in [-r, r]``
    (``r = K // 2``, zero outside the image):

    .. math::

        m(i,j) &= \sum_{c,p,q} \frac{g_{pq}}{C}\, x[c, i+p, j+q] \\
        v[c,i,j] &= x[c,i,j] - m(i,j) \\
        s(i,j) &= \sqrt{\sum_{c,p,q} \frac{g_{pq}}{C}\, v[c, i+p, j+q]^2} \\
        d(i,j) &= \max\bigl(s(i,j),\ \overline{s},\ \varepsilon\bigr) \\
        y[c,i,j] &= v[c,i,j] / d(i,j)

    where :math:`\overline{s}` is the mean of ``s`` over the whole ``H x W``
    map of the sample and :math:`\varepsilon` = :attr:`EPS` = 1e-4.

    Backward is exact, including the path through :math:`\overline{s}`.  At
    ties the maximum is attributed to the *first* argument attaining it in the
    order ``(s, mean(s), eps)``: ``d = s`` where ``s >= mean(s)`` and
    ``s >= eps``; else ``d = mean(s)`` where ``mean(s) >= eps``; else
    ``d = eps`` (constant).  Where ``s == 0`` (an all-zero neighbourhood of
    ``v``) the derivative of the square root is taken as 0, the subgradient of
    the norm at the origin.

    Parameters
    ----------
    kernel : int, default 9
        Odd window size ``K``.
    sigma : float, optional
        Standard deviation of the Gaussian in pixels; default ``kernel / 4``,
        stored resolved.
    """

    type: ClassVar[str] = "lcn"
    EPS: ClassVar[float] = 1e-4

    kernel: int = 9
    sigma: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kernel = _check_int(self.type, "kernel", self.kernel, 1)
        if self.kernel % 2 != 1:
            raise ValueError(f"{self.type}: kernel must be odd, got {self.kernel}")
        if self.sigma is None:
            self.sigma = self.kernel / 4
        if isinstance(self.sigma, (bool, np.bool_)) or not isinstance(self.sigma, numbers.Real):
            raise ValueError(f"{self.type}: sigma must be a positive number, got {self.sigma!r}")
        self.sigma = float(self.sigma)
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"{self.type}: sigma must be a positive number, got {self.sigma!r}")

    def _gaussian(self) -> np.ndarray:
        """The 1-D float64 Gaussian, not normalized."""
        r = (self.kernel - 1) / 2
        t = np.arange(self.kernel, dtype=np.float64) - r
        return np.exp(-(t * t) / (2.0 * self.sigma * self.sigma))

    def window(self) -> np.ndarray:
        """Normalized ``(kernel, kernel)`` float64 Gaussian (sums to 1, before ``/C``)."""
        g = self._gaussian()
        w = np.outer(g, g)
        return w / w.sum()

    def _taps(self) -> np.ndarray:
        """The 1-D float64 Gaussian ``g`` (sums to 1): ``window() == outer(g, g)`` up
        to rounding; the layer filters with it separably."""
        g = self._gaussian()
        return g / g.sum()

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return _check_map_shape(self.type, in_shape)

    def macs(self, in_shape: tuple[int, ...]) -> int:
        """``2 * C * H * W * K * K``: the two Gaussian-weighted sums (mean and
        variance) counted in the direct form of the equations above.  Squares,
        the square root and the division are not counted."""
        c, h, w = self.output_shape(in_shape)
        return 2 * c * h * w * self.kernel * self.kernel

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_batch(self.type, x, 4)
        self.output_shape(x.shape[1:])
        n, c, h, w = x.shape
        # The window is the same for every map, so the sum over maps can be
        # taken first: one 2-D filter per sample instead of C.  The window is
        # outer(g, g) / C, filtered separably (the 1/C goes on the sums).
        ftype = np.dtype(x.dtype if x.dtype.kind == "f" else np.float64)
        g = self._taps().astype(ftype)
        inv_c = ftype.type(1.0 / c)
        m = _filter_same(x.sum(axis=1) * inv_c, g)
        v = x - m[:, None]
        s = np.sqrt(_filter_same(np.einsum("nchw,nchw->nhw", v, v) * inv_c, g))
        smean = s.mean(axis=(1, 2), keepdims=True)
        eps = x.dtype.type(self.EPS) if x.dtype.kind == "f" else self.EPS
        use_s = (s >= smean) & (s >= eps)
        use_mean = ~use_s & (smean >= eps)
        d = np.where(use_s, s, np.where(use_mean, smean, eps))
        y = v / d[:, None]
        self._cache = ((g, inv_c), v, s, d, use_s, use_mean)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        (g, inv_c), v, s, d, use_s, use_mean = self._require_cache()
        n, c, h, w = v.shape
        gflip = g[::-1]  # adjoint of the correlation; g is symmetric anyway
        zero = s.dtype.type(0)
        # y = v / d
        dv = dy / d[:, None]
        dd = -np.einsum("nchw,nchw->nhw", dy, v) / (d * d)
        # d = max(s, mean(s), eps)
        dmean = np.where(use_mean, dd, zero).sum(axis=(1, 2), keepdims=True)
        ds = np.where(use_s, dd, zero) + dmean / (h * w)
        # s = sqrt(S2), d s / d S2 = 1 / (2 s); 0 at s == 0 (see class notes)
        ds2 = np.zeros_like(s)
        np.divide(ds, 2 * s, out=ds2, where=s > 0)
        # S2 = filter(sum_c v^2 / C)
        dq = _filter_same(ds2, gflip) * inv_c
        dv += 2 * v * dq[:, None]
        # v = x - m, m = filter(sum_c x / C)
        dm = -dv.sum(axis=1)
        dx = dv + (_filter_same(dm, gflip) * inv_c)[:, None]
        self.grads = {}
        return dx


# ---------------------------------------------------------------------------
# local response normalization (across maps)
# ---------------------------------------------------------------------------

def _check_real(layer: str, name: str, value: Any, what: str, ok) -> float:
    """Return ``value`` as a Python float if it is a finite real with ``ok(v)``,
    else raise ValueError naming the field, the requirement ``what`` and the value."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{layer}: {name} must be {what}, got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and ok(number)):
        raise ValueError(f"{layer}: {name} must be {what}, got {value!r}")
    return number


def _map_window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """``out[:, c] = sum(a[:, i] for i in [max(0, c - before), min(C - 1, c + after)])``.

    Summed one map offset at a time (``i = c - before`` upward, as the naive
    loops do), so the result is a sum of the window's own terms only.  A
    cumulative sum along the maps with differences would be cheaper for huge
    windows, but its rounding error scales with the sum over *all* earlier
    maps: in float32 a small window next to large maps could come out wrong or
    even negative.  Offsets past the last map contribute nothing and are
    skipped, so the cost is ``min(before + after + 1, 2 C - 1)`` passes.
    """
    c = a.shape[1]
    out = np.zeros_like(a)
    for d in range(-min(before, c - 1), min(after, c - 1) + 1):
        # out[:, k] += a[:, k + d] for every k with 0 <= k + d < C
        if d >= 0:
            out[:, :c - d] += a[:, d:]
        else:
            out[:, -d:] += a[:, :c + d]
    return out


@dataclass(eq=False)
class LocalResponseNorm(Layer):
    r"""Local response normalization across maps (Krizhevsky et al. 2012).

    Same definition as ONNX ``LRN``, Caffe ``LRN`` (``ACROSS_CHANNELS``) and
    PyTorch ``nn.LocalResponseNorm``.  Each value is divided by a power of the
    sum of squares of the values at the same pixel in ``size`` neighbouring
    maps.  Output has the input's shape.  No parameters.

    With ``C`` maps, :math:`l = \lfloor (size - 1) / 2 \rfloor` maps before and
    :math:`u = \lceil (size - 1) / 2 \rceil` maps after (the window is
    asymmetric for even ``size``: one more map after than before), clipped to
    the maps that exist:

    .. math::

        S[c,i,j] &= \sum_{c' = \max(0,\, c - l)}^{\min(C - 1,\, c + u)} x[c', i, j]^2 \\
        d[c,i,j] &= \mathit{bias} + \frac{\alpha}{\mathit{size}}\, S[c,i,j] \\
        y[c,i,j] &= x[c,i,j]\, d[c,i,j]^{-\beta}

    The divisor is ``alpha / size`` even where the window is clipped at the
    first or last map (as in ONNX, Caffe and PyTorch).

    Backward is exact: with :math:`c \in W(c')` iff
    :math:`c' - l \le c \le c' + u`,

    .. math::

        \frac{\partial L}{\partial x[c]} = g[c]\, d[c]^{-\beta}
            - \frac{2 \alpha \beta}{\mathit{size}}\, x[c]
              \sum_{c' :\, c \in W(c')} g[c']\, x[c']\, d[c']^{-\beta - 1}

    at every pixel, ``g = dL/dy``.  Since ``bias > 0`` and ``alpha >= 0``,
    ``d >= bias > 0`` everywhere (as long as ``bias`` does not underflow in the
    compute dtype), so no window, not even an all-zero one, needs a special case.

    Parameters
    ----------
    size : int
        Number of maps in the window, ``>= 1`` (may exceed the number of maps).
    alpha : float, default 1e-4
        Scale, ``>= 0``; divided by ``size``.
    beta : float, default 0.75
        Exponent, any finite value.
    bias : float, default 1.0
        Additive constant ``k``, ``> 0``.
    """

    type: ClassVar[str] = "lrn"

    size: int
    alpha: float = 1e-4
    beta: float = 0.75
    bias: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        t = self.type
        self.size = _check_int(t, "size", self.size, 1)
        self.alpha = _check_real(t, "alpha", self.alpha, "a finite number >= 0", lambda v: v >= 0)
        self.beta = _check_real(t, "beta", self.beta, "a finite number", lambda v: True)
        self.bias = _check_real(t, "bias", self.bias, "a finite number > 0", lambda v: v > 0)

    @property
    def before(self) -> int:
        """Maps before ``c`` in its window: ``floor((size - 1) / 2)``."""
        return (self.size - 1) // 2

    @property
    def after(self) -> int:
        """Maps after ``c`` in its window: ``ceil((size - 1) / 2)``."""
        return self.size - 1 - self.before

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return _check_map_shape(self.type, in_shape)

    def macs(self, in_shape: tuple[int, ...]) -> int:
        """``H * W * sum_c |W(c)|``: one multiply-accumulate (``x^2`` added to
        ``S``) per map of each output's window, counting only the maps that
        exist, so at most ``C * H * W * size``.  The scaling, the power and
        the final multiplication are not counted."""
        c, h, w = self.output_shape(in_shape)
        idx = np.arange(c)
        # windows reach at most C - 1 maps either side (keeps a huge size in int64)
        before, after = min(self.before, c - 1), min(self.after, c - 1)
        terms = np.minimum(idx + after, c - 1) - np.maximum(idx - before, 0) + 1
        return h * w * int(terms.sum())

    def _scalars(self, dtype: np.dtype) -> tuple[Any, Any, Any]:
        """``(alpha / size, beta, bias)`` in ``dtype`` (no silent upcast)."""
        # Exact quotient, correctly rounded (the same float as alpha / size),
        # without an OverflowError for a size of hundreds of digits.
        scale = float(fractions.Fraction(self.alpha) / self.size)
        vals = (scale, self.beta, self.bias)
        if dtype.kind == "f":
            return tuple(dtype.type(v) for v in vals)
        return vals

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_batch(self.type, x, 4)
        self.output_shape(x.shape[1:])
        scale, beta, bias = self._scalars(x.dtype)
        s = _map_window_sum(x * x, self.before, self.after)
        d = bias + scale * s
        p = d ** -beta
        self._cache = (x, d, p)
        return x * p

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x, d, p = self._require_cache()
        scale, beta, _ = self._scalars(x.dtype)
        # t[c'] = g[c'] x[c'] d[c']^(-beta - 1); output c' reads maps c'-l..c'+u,
        # so map c is read by outputs c-u..c+l: the same window sum, mirrored.
        t = dy * x * p / d
        back = _map_window_sum(t, self.after, self.before)
        dx = dy * p - (2 * scale * beta) * x * back
        self.grads = {}
        return dx

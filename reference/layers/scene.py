"""The scene-parsing layers (multiscale, Farabet et al. 2013): the pyramid step,
nearest upsampling, concatenation (the one layer with several inputs), the per-pixel
log-softmax and the per-pixel NLL loss with an ignore label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import Layer, _check_batch, _check_int, _check_map_shape


# ---------------------------------------------------------------------------
# scene parsing: pyramid step, upsampling, concatenation, per-pixel classifier
# ---------------------------------------------------------------------------
#
# Multi-input layers.  Every layer above takes one input: ``forward(x)`` and
# ``backward(dy) -> dx``, and a Network is a chain of them.  A layer that reads
# several tensors (today only :class:`Concat`) sets the class variable
# ``multi_input = True`` and offers instead
#
# * ``output_shape(in_shapes)``: a list of per-sample shapes -> one shape,
# * ``forward_multi(xs)``: a list of batches -> one batch,
# * ``backward(dy)``: returns a *list* of gradients, one per input, in order.
#
# Its ``forward(x)`` raises TypeError.  Such layers are registered in
# :data:`MULTI_INPUT_TYPES`, not in :data:`LAYER_TYPES`, because a chain model
# file (format version 1) cannot hold them; a graph (DAG) format will.

#: Label of pixels that count in no loss and no metric (Stanford Background's
#: "unknown" is -1, and loaders map it here).
IGNORE_LABEL = -1

# Binomial smoothing taps: rows of Pascal's triangle over their sum.  The
# 5-tap one is Burt and Adelson's generating kernel with a = 0.375 (the
# REDUCE step of their Gaussian and Laplacian pyramids).
_BINOMIAL_TAPS = {3: (0.25, 0.5, 0.25), 5: (0.0625, 0.25, 0.375, 0.25, 0.0625)}


@dataclass(eq=False)
class PyramidDown(Layer):
    r"""One step of a Gaussian pyramid: binomial smoothing, then decimation by 2.

    Each map is filtered on its own with the separable binomial filter
    ``g = [1, 2, 1] / 4`` (``kernel=3``) or ``g = [1, 4, 6, 4, 1] / 16``
    (``kernel=5``, the default: Burt and Adelson's REDUCE, 1983), with the
    edge replicated (index clamping, ``edge="replicate"``, the default) or
    the input zero-padded (``edge="zero"``), and every second pixel is kept,
    starting with the first:

    .. math::

        y[c, i, j] = \sum_{p, q} g[p]\, g[q]\,
                     x[c,\ \mathrm{clamp}(2i + p - r, 0, H-1),\ \mathrm{clamp}(2j + q - r, 0, W-1)]

    with ``r = kernel // 2``; with ``edge="zero"`` the terms outside the
    image are zero instead of clamped, so the layer is a depthwise
    :class:`Conv2d` with kernel ``outer(g, g)``, stride 2 and padding ``r``
    (how the accelerator runs it).  Output ``(C, ceil(H/2), ceil(W/2))``.
    No parameters.  Since ``g`` sums to 1, a constant map stays constant
    (with ``edge="replicate"``; zero padding darkens the border).

    The seed (Farabet et al. 2013) feeds its network a Laplacian pyramid of
    the input; each level there is a Gaussian level with its local mean
    removed, which the network's LCN of each scale does here.  So this layer
    is the Gaussian step, ``x -> REDUCE(x)``, and a multiscale net is
    ``x``, ``pyrdown(x)``, ``pyrdown(pyrdown(x))``, each followed by LCN.

    Backward is the transpose: ``dy`` scattered to the even positions, the
    (symmetric) filter applied, and, with ``edge="replicate"``, the gradient
    that fell on the replicated border folded back onto the first and last
    row and column (with ``edge="zero"`` it is dropped: padding has no input).

    Parameters
    ----------
    kernel : int, default 5
        3 or 5 taps.
    edge : str, default "replicate"
        ``"replicate"`` (clamp indices) or ``"zero"`` (zero padding).
    """

    type: ClassVar[str] = "pyrdown"
    EDGES: ClassVar[tuple[str, ...]] = ("replicate", "zero")

    kernel: int = 5
    edge: str = "replicate"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kernel = _check_int(self.type, "kernel", self.kernel, 1)
        if self.kernel not in _BINOMIAL_TAPS:
            raise ValueError(f"{self.type}: kernel must be 3 or 5 (binomial taps), got {self.kernel}")
        if not isinstance(self.edge, str) or self.edge not in self.EDGES:
            raise ValueError(f"{self.type}: edge must be one of {', '.join(map(repr, self.EDGES))}, "
                             f"got {self.edge!r}")

    def taps(self, dtype=np.float64) -> np.ndarray:
        """The 1-D filter ``g`` (sums to 1)."""
        return np.array(_BINOMIAL_TAPS[self.kernel], dtype=dtype)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        c, h, w = _check_map_shape(self.type, in_shape)
        return (c, (h + 1) // 2, (w + 1) // 2)

    def macs(self, in_shape: tuple[int, ...]) -> int:
        """Separable: ``kernel`` multiply-accumulates per row-filtered value
        (``C * OH * W`` of them) and per output (``C * OH * OW``)."""
        c, h, w = _check_map_shape(self.type, in_shape)
        _, oh, ow = self.output_shape(in_shape)
        return self.kernel * c * oh * (w + ow)

    def _dtype_taps(self, dtype: np.dtype) -> np.ndarray:
        return self.taps(dtype if dtype.kind == "f" else np.float64)

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_batch(self.type, x, 4)
        _, oh, ow = self.output_shape(x.shape[1:])
        g = self._dtype_taps(x.dtype)
        k, r = self.kernel, self.kernel // 2
        mode = "edge" if self.edge == "replicate" else "constant"
        xp = np.pad(x, ((0, 0), (0, 0), (r, r), (r, r)), mode=mode)
        # rows: only the even output rows are computed
        t = g[0] * xp[:, :, 0:2 * oh - 1:2, :]
        for p in range(1, k):
            t = t + g[p] * xp[:, :, p:p + 2 * oh - 1:2, :]
        y = g[0] * t[:, :, :, 0:2 * ow - 1:2]
        for q in range(1, k):
            y = y + g[q] * t[:, :, :, q:q + 2 * ow - 1:2]
        self._cache = (x.shape, xp.shape, t.shape)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape, xp_shape, t_shape = self._require_cache()
        g = self._dtype_taps(dy.dtype)
        k, r = self.kernel, self.kernel // 2
        oh, ow = dy.shape[2], dy.shape[3]
        dt = np.zeros(t_shape, dtype=dy.dtype)
        for q in range(k):
            dt[:, :, :, q:q + 2 * ow - 1:2] += g[q] * dy
        dxp = np.zeros(xp_shape, dtype=dy.dtype)
        for p in range(k):
            dxp[:, :, p:p + 2 * oh - 1:2, :] += g[p] * dt
        h, w = x_shape[2], x_shape[3]
        self.grads = {}
        if self.edge == "zero":
            # the padding is no input: its gradient is dropped
            return dxp[:, :, r:r + h, r:r + w].copy()
        # fold the replicated border back onto the edge rows, then columns
        rows = dxp[:, :, r:r + h, :].copy()
        rows[:, :, 0, :] += dxp[:, :, :r, :].sum(axis=2)
        rows[:, :, h - 1, :] += dxp[:, :, r + h:, :].sum(axis=2)
        dx = rows[:, :, :, r:r + w].copy()
        dx[:, :, :, 0] += rows[:, :, :, :r].sum(axis=3)
        dx[:, :, :, w - 1] += rows[:, :, :, r + w:].sum(axis=3)
        self.grads = {}
        return dx


@dataclass(eq=False)
class Upsample(Layer):
    r"""Nearest-neighbour upsampling by an integer ``factor``.

    ``y[c, i, j] = x[c, i // factor, j // factor]``; output
    ``(C, factor H, factor W)``.  Backward sums ``dy`` over each
    ``factor x factor`` block.  No parameters.
    """

    type: ClassVar[str] = "upsample"

    factor: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        self.factor = _check_int(self.type, "factor", self.factor, 1)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        c, h, w = _check_map_shape(self.type, in_shape)
        return (c, h * self.factor, w * self.factor)

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_batch(self.type, x, 4)
        self.output_shape(x.shape[1:])
        f = self.factor
        n, c, h, w = x.shape
        self._cache = x.shape
        y = np.broadcast_to(x[:, :, :, None, :, None], (n, c, h, f, w, f))
        return y.reshape(n, c, h * f, w * f)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        n, c, h, w = self._require_cache()
        f = self.factor
        self.grads = {}
        return dy.reshape(n, c, h, f, w, f).sum(axis=(3, 5))


@dataclass(eq=False)
class Concat(Layer):
    r"""Concatenation along the maps of several inputs (a multi-input layer).

    Inputs ``(N, C_k, H, W)``, same ``N``, ``H``, ``W`` and dtype; output
    ``(N, sum C_k, H, W)`` with input 0's maps first.  See the multi-input
    API above: :meth:`forward_multi` takes the list of inputs,
    :meth:`backward` returns the list of their gradients (slices of ``dy``).
    No attributes, no parameters.
    """

    type: ClassVar[str] = "concat"
    multi_input: ClassVar[bool] = True

    def output_shape(self, in_shapes) -> tuple[int, ...]:
        try:
            shapes = [tuple(s) for s in in_shapes]
        except TypeError:
            raise ValueError(f"{self.type}: expected a list of per-sample input shapes (C, H, W), "
                             f"got {in_shapes!r}") from None
        if not shapes:
            raise ValueError(f"{self.type}: needs at least one input")
        checked = [_check_map_shape(self.type, s) for s in shapes]
        hw = {(h, w) for _, h, w in checked}
        if len(hw) != 1:
            raise ValueError(f"{self.type}: inputs must have the same height and width, got "
                             f"{[list(s) for s in checked]}")
        _, h, w = checked[0]
        return (sum(c for c, _, _ in checked), h, w)

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise TypeError(f"{self.type}: takes several inputs; call forward_multi([x0, x1, ...])")

    def forward_multi(self, xs) -> np.ndarray:
        xs = list(xs)
        for x in xs:
            _check_batch(self.type, x, 4)
        self.output_shape([x.shape[1:] for x in xs])
        if len({x.shape[0] for x in xs}) != 1:
            raise ValueError(f"{self.type}: inputs have different batch sizes {[x.shape[0] for x in xs]}")
        if len({x.dtype for x in xs}) != 1:
            raise ValueError(f"{self.type}: inputs have different dtypes {[str(x.dtype) for x in xs]}")
        self._cache = [x.shape[1] for x in xs]
        return np.concatenate(xs, axis=1)

    def backward(self, dy: np.ndarray) -> list[np.ndarray]:
        counts = self._require_cache()
        self.grads = {}
        bounds = np.cumsum([0] + counts)
        return [dy[:, a:b].copy() for a, b in zip(bounds[:-1], bounds[1:])]


@dataclass(eq=False)
class PixelLogSoftmax(Layer):
    r"""Log-softmax over the maps at every pixel: the per-pixel classifier's output.

    Input ``(N, K, H, W)`` scores of ``K`` classes (for example from a 1x1
    :class:`Conv2d`); ``y[n, k, i, j] = x[n, k, i, j] - log sum_l exp x[n, l, i, j]``,
    computed after subtracting the maximum over the maps.  Backward:
    ``dx = dy - exp(y) * sum_k dy[k]`` at every pixel.  Pair it with
    :func:`pixel_nll_loss`.
    """

    type: ClassVar[str] = "pixel_logsoftmax"

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return _check_map_shape(self.type, in_shape)

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_batch(self.type, x, 4)
        self.output_shape(x.shape[1:])
        z = x - x.max(axis=1, keepdims=True)
        y = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        self._cache = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._require_cache()
        self.grads = {}
        return dy - np.exp(y) * dy.sum(axis=1, keepdims=True)


def pixel_nll_loss(logp: np.ndarray, labels: np.ndarray,
                   ignore_label: int = IGNORE_LABEL) -> tuple[float, np.ndarray]:
    r"""Per-pixel negative log-likelihood, mean over the labelled pixels.

    .. math::

        L = -\frac{1}{M} \sum_{(n,i,j):\ t \ne \mathrm{ignore}} \mathrm{logp}[n, t, i, j],
        \qquad t = \mathrm{labels}[n, i, j],

    with ``M`` the number of pixels whose label is not ``ignore_label``.  The
    gradient is ``-1/M`` at ``(n, t, i, j)`` of every labelled pixel and zero
    elsewhere, in particular at every map of an ignored pixel.  With no
    labelled pixel at all the loss is 0.0 and the gradient zero (PyTorch
    gives NaN there).

    Parameters
    ----------
    logp : ndarray, shape (N, K, H, W)
        Per-pixel log-probabilities (output of :class:`PixelLogSoftmax`).
    labels : ndarray of int, shape (N, H, W)
        Class indices in ``0..K-1``, or ``ignore_label``.
    ignore_label : int, default :data:`IGNORE_LABEL` (-1)

    Returns
    -------
    loss : float
    dlogp : ndarray, shape (N, K, H, W), dtype of ``logp``
    """
    logp = np.asarray(logp)
    labels = np.asarray(labels)
    if logp.ndim != 4:
        raise ValueError(f"pixel_nll_loss: logp must be (N, K, H, W), got shape {logp.shape}")
    n, k, h, w = logp.shape
    if labels.shape != (n, h, w):
        raise ValueError(f"pixel_nll_loss: labels must have shape ({n}, {h}, {w}), got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"pixel_nll_loss: labels must be integers, got dtype {labels.dtype}")
    valid = labels != ignore_label
    bad = valid & ((labels < 0) | (labels >= k))
    if bad.any():
        raise ValueError(f"pixel_nll_loss: label {int(labels[bad][0])} out of range 0..{k - 1} "
                         f"(ignore label {ignore_label})")
    grad = np.zeros_like(logp)
    m = int(valid.sum())
    if m == 0:
        return 0.0, grad
    t = np.where(valid, labels, 0).astype(np.intp)[:, None]
    picked = np.take_along_axis(logp, t, axis=1)[:, 0]
    loss = -float(picked[valid].sum()) / m
    onehot = np.zeros(logp.shape, dtype=bool)
    np.put_along_axis(onehot, t, True, axis=1)
    onehot &= valid[:, None]
    grad[onehot] = -1.0 / m
    return loss, grad

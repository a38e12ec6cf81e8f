"""Pooling: :class:`MaxPool2d`, :class:`AvgPool2d`, :class:`L2Pool2d`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .base import Layer, _check_batch, _check_int, _check_map_shape


# ---------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------

@dataclass(eq=False)
class _Pool2d(Layer):
    """Shared shape logic for square pooling windows without padding.

    Output size is ``floor((H - kernel) / stride) + 1``; ``stride`` defaults to
    ``kernel`` and is stored resolved.
    """

    kernel: int
    stride: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kernel = _check_int(self.type, "kernel", self.kernel, 1)
        if self.stride is None:
            self.stride = self.kernel
        self.stride = _check_int(self.type, "stride", self.stride, 1)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        c, h, w = _check_map_shape(self.type, in_shape)
        if self.kernel > h or self.kernel > w:
            raise ValueError(f"{self.type}: kernel {self.kernel} larger than input {h}x{w}")
        return (c, (h - self.kernel) // self.stride + 1, (w - self.kernel) // self.stride + 1)

    def _windows(self, x: np.ndarray) -> np.ndarray:
        """Read-only view ``(N, C, OH, OW, K, K)`` of the pooling windows."""
        _check_batch(self.type, x, 4)
        self.output_shape(x.shape[1:])
        k, s = self.kernel, self.stride
        return sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]

    def _slab(self, a: np.ndarray, i: int, j: int, oh: int, ow: int) -> np.ndarray:
        """Strided view of the elements at offset (i, j) of every window."""
        s = self.stride
        return a[:, :, i:i + s * oh:s, j:j + s * ow:s]


@dataclass(eq=False)
class MaxPool2d(_Pool2d):
    """Max pooling.

    ``y = max over the K x K window``.  Backward routes each output gradient
    to the *first* maximum of its window in raster order (row by row), and
    accumulates where overlapping windows (stride < kernel) share an input.
    """

    type: ClassVar[str] = "maxpool2d"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._windows(x)  # validate
        k = self.kernel
        _, oh, ow = self.output_shape(x.shape[1:])
        # Running maximum over the K*K window offsets in raster order.  Offset
        # ``pos`` takes over only where it is strictly greater than all before
        # it, so ``idx`` is the first maximum (argmax's raster-order tie rule);
        # since ``pos`` exceeds every earlier index, the update is a maximum.
        # Arrays keep the input's memory layout.
        y = self._slab(x, 0, 0, oh, ow).copy(order="K")
        idx = np.zeros_like(y, dtype=np.uint8 if k * k <= 256 else np.intp)
        better = np.empty_like(y, dtype=bool)
        step = np.empty_like(idx)
        for pos in range(1, k * k):
            s = self._slab(x, pos // k, pos % k, oh, ow)
            np.greater(s, y, out=better)
            np.maximum(y, s, out=y)
            np.multiply(better, idx.dtype.type(pos), out=step)
            np.maximum(idx, step, out=idx)
        if y.dtype.kind == "f" and np.isnan(y).any():
            return self._forward_argmax(x)
        self._cache = (idx, x)
        return y

    def _forward_argmax(self, x: np.ndarray) -> np.ndarray:
        """The NaN-aware path: argmax takes the first NaN as the maximum."""
        win = self._windows(x)
        n, c, oh, ow, k, _ = win.shape
        flat = win.reshape(n, c, oh, ow, k * k)
        idx = flat.argmax(axis=-1)  # argmax returns the first max: raster-order tie rule
        y = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
        self._cache = (idx, x)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        idx, x = self._require_cache()
        k, s = self.kernel, self.stride
        oh, ow = idx.shape[2:]
        dtype = np.result_type(dy, x.dtype)
        hit = np.empty_like(idx, dtype=bool)
        if s >= k and np.isfinite(dy).all():
            # Windows do not overlap: every input is written once, dy times 1 at
            # its window's first maximum and times 0 elsewhere.  Positions no
            # window covers (a remainder row or column) stay 0.
            covered = k * oh == x.shape[2] and k * ow == x.shape[3] and s == k
            dx = (np.empty_like if covered else np.zeros_like)(x, dtype=dtype)
            for pos in range(k * k):
                np.equal(idx, pos, out=hit)
                np.multiply(hit, dy, out=self._slab(dx, pos // k, pos % k, oh, ow))
        else:
            dx = np.zeros_like(x, dtype=dtype)
            zero = dx.dtype.type(0)
            for pos in range(k * k):
                np.equal(idx, pos, out=hit)
                self._slab(dx, pos // k, pos % k, oh, ow)[...] += np.where(hit, dy, zero)
        self.grads = {}
        return dx


@dataclass(eq=False)
class AvgPool2d(_Pool2d):
    """Average pooling: ``y = (1 / K^2) * sum over the K x K window``."""

    type: ClassVar[str] = "avgpool2d"

    def forward(self, x: np.ndarray) -> np.ndarray:
        win = self._windows(x)
        self._cache = (x.shape, x.dtype)
        return win.mean(axis=(-2, -1))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape, dtype = self._require_cache()
        k = self.kernel
        oh, ow = dy.shape[2:]
        g = dy / (k * k)
        dx = np.zeros(x_shape, dtype=np.result_type(g, dtype))
        for i in range(k):
            for j in range(k):
                self._slab(dx, i, j, oh, ow)[...] += g
        self.grads = {}
        return dx


@dataclass(eq=False)
class L2Pool2d(_Pool2d):
    """L2 pooling: ``y = sqrt(sum over the K x K window of x^2)``.

    This is the *sum* (an L2 norm), not the root-mean-square; divide by ``K``
    to get the RMS.  Gradient ``dy/dx = x / y``, taken as 0 where ``y == 0``
    (the subgradient of the norm at the origin).
    """

    type: ClassVar[str] = "l2pool2d"

    def forward(self, x: np.ndarray) -> np.ndarray:
        win = self._windows(x)
        y = np.sqrt(np.einsum("ncijpq,ncijpq->ncij", win, win))
        self._cache = (x, y)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x, y = self._require_cache()
        k = self.kernel
        oh, ow = y.shape[2:]
        g = np.zeros(np.broadcast_shapes(dy.shape, y.shape), dtype=np.result_type(dy, y))
        np.divide(dy, y, out=g, where=y > 0)
        dx = np.zeros(x.shape, dtype=np.result_type(g, x))
        for i in range(k):
            for j in range(k):
                self._slab(dx, i, j, oh, ow)[...] += g * self._slab(x, i, j, oh, ow)
        self.grads = {}
        return dx

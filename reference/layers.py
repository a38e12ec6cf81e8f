"""Vectorized NumPy reference layers (forward and backward).

These layers define the floating-point semantics that the rest of convc
(training, quantization, the compiler and the hardware simulator) is measured
against.  Every layer works on a batch:

* feature maps are ``(N, C, H, W)``,
* vectors are ``(N, F)``.

Shapes passed to :meth:`Layer.output_shape` and :meth:`Layer.macs` are
*per sample* (no batch dimension): ``(C, H, W)`` or ``(F,)``.

Layers compute in the dtype of their input and parameters (``float32`` for
training, ``float64`` for gradient checks); nothing is upcast silently.

Each concrete layer is a ``@dataclass(eq=False)`` whose dataclass fields are
exactly its attributes as written to model files (see :meth:`Layer.attrs`).
Parameters, gradients and forward caches are plain instance attributes set in
``__post_init__``.

The slow loop implementations in :mod:`convc.reference.naive` state the same
equations element by element and are used by the tests.

Scene parsing (multiscale, Farabet et al. 2013) adds :class:`PyramidDown`,
:class:`Upsample`, :class:`PixelLogSoftmax` with :func:`pixel_nll_loss` (ignore
label :data:`IGNORE_LABEL`), and :class:`Concat`, the one layer with several
inputs (``multi_input``: ``forward_multi(xs)``, ``backward`` returns a list;
registered in :data:`MULTI_INPUT_TYPES`, not in :data:`LAYER_TYPES`).
"""

from __future__ import annotations

import copy
import dataclasses
import fractions
import math
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "Layer",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "L2Pool2d",
    "LocalContrastNorm",
    "LocalResponseNorm",
    "ReLU",
    "Tanh",
    "Abs",
    "Linear",
    "Flatten",
    "LogSoftmax",
    "PyramidDown",
    "Upsample",
    "Concat",
    "PixelLogSoftmax",
    "IGNORE_LABEL",
    "LAYER_TYPES",
    "MULTI_INPUT_TYPES",
    "nll_loss",
    "pixel_nll_loss",
    "random_table",
]


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------

def _check_int(layer: str, name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as a Python int, or raise ValueError naming the field."""
    # bool is an int subclass; ``kernel=True`` is always a mistake.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{layer}: {name} must be an integer >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{layer}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_map_shape(layer: str, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    in_shape = tuple(in_shape)
    if len(in_shape) != 3:
        raise ValueError(f"{layer}: expected a per-sample input shape (C, H, W), got {in_shape}")
    c, h, w = (int(v) for v in in_shape)
    if c < 1 or h < 1 or w < 1:
        raise ValueError(f"{layer}: input shape must be positive, got {in_shape}")
    return c, h, w


def _check_batch(layer: str, x: np.ndarray, ndim: int) -> None:
    if x.ndim != ndim:
        what = "(N, C, H, W)" if ndim == 4 else "(N, F)"
        raise ValueError(f"{layer}: expected a batched input {what}, got shape {x.shape}")


# ---------------------------------------------------------------------------
# base class
# ---------------------------------------------------------------------------

class Layer:
    """Base class of all reference layers.

    Attributes
    ----------
    type : str
        Name of the layer in model files (class variable), e.g. ``"conv2d"``.
    params : dict[str, ndarray]
        Trainable arrays; ``{}`` for layers without parameters.
    grads : dict[str, ndarray]
        Gradients of the loss with respect to ``params`` (same keys), written
        by :meth:`backward`.
    multi_input : bool
        False (class variable) except for layers with several inputs; see the
        multi-input API before :class:`PyramidDown`.
    """

    type: ClassVar[str] = ""
    #: True for a layer that reads several inputs (:class:`Concat`): it has
    #: ``forward_multi(xs)`` and its ``backward`` returns a list of gradients.
    multi_input: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._cache: Any = None

    # -- parameters ---------------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Expected shape of each parameter array, from the attributes."""
        return {}

    def init_params(self, rng: np.random.Generator, dtype=np.float32) -> None:
        """Fill ``params`` with fresh random values and ``grads`` with zeros."""
        self.params = {}
        self.grads = {}

    def _zero_grads(self) -> None:
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _require_params(self) -> None:
        # Cheap check so that a wrongly loaded model fails loudly, not with a
        # broadcasting error deep inside a matmul.
        for name, shape in self.param_shapes().items():
            p = self.params.get(name)
            if p is None:
                raise RuntimeError(
                    f"{self.type}: parameter {name!r} not set; call init_params() or load weights"
                )
            if p.shape != shape:
                raise ValueError(
                    f"{self.type}: parameter {name!r} has shape {p.shape}, expected {shape}"
                )

    def _require_cache(self) -> Any:
        if self._cache is None:
            raise RuntimeError(f"{self.type}: backward() called before forward()")
        return self._cache

    # -- shapes and cost ----------------------------------------------------
    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample output shape for per-sample input shape ``in_shape``."""
        raise NotImplementedError

    def macs(self, in_shape: tuple[int, ...]) -> int:
        """Multiply-accumulates per sample (0 unless overridden)."""
        self.output_shape(in_shape)  # validate
        return 0

    # -- computation --------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Compute the output for batch ``x`` and cache what backward needs."""
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Return dL/dx for dL/dy ``dy`` of the last forward; set ``grads``."""
        raise NotImplementedError

    # -- serialization ------------------------------------------------------
    def attrs(self) -> dict:
        """JSON-serializable attributes (the dataclass fields)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}


# ---------------------------------------------------------------------------
# convolution
# ---------------------------------------------------------------------------

def random_table(out_channels: int, in_channels: int, fan_in: int,
                 rng: np.random.Generator | int | None = None) -> list[list[int]]:
    """Random connection table for :class:`Conv2d`.

    Each output map reads ``fan_in`` distinct input maps, and the input maps
    are used as evenly as possible: over the whole table, the number of
    output maps reading any two input maps differs by at most one.

    Rows are built greedily: each picks the ``fan_in`` least-used input maps
    so far, breaking ties at random.  This keeps the usage spread <= 1 after
    every row.

    Parameters
    ----------
    out_channels, in_channels, fan_in : int
        ``1 <= fan_in <= in_channels``.
    rng : numpy.random.Generator or int or None
        Random source (an int is used as a seed).

    Returns
    -------
    list of list of int
        ``out_channels`` sorted rows of ``fan_in`` input-map indices.
    """
    out_channels = _check_int("random_table", "out_channels", out_channels, 1)
    in_channels = _check_int("random_table", "in_channels", in_channels, 1)
    fan_in = _check_int("random_table", "fan_in", fan_in, 1)
    if fan_in > in_channels:
        raise ValueError(
            f"random_table: fan_in {fan_in} larger than in_channels {in_channels}"
        )
    rng = np.random.default_rng(rng)
    used = np.zeros(in_channels, dtype=np.int64)
    table = []
    for _ in range(out_channels):
        # lexsort: last key is primary -> least used first, random tie-break.
        order = np.lexsort((rng.random(in_channels), used))
        row = np.sort(order[:fan_in])
        used[row] += 1
        table.append([int(i) for i in row])
    return table


@dataclass(eq=False)
class Conv2d(Layer):
    r"""2-D convolution (cross-correlation) with optional connection table.

    .. math::

        y[n, o, i, j] = b[o] + \sum_{c, p, q} W[o, c, p, q]\,
                        x_{pad}[n, c, s i + p, s j + q]

    with ``x_pad`` the input zero-padded by ``padding`` on each side and
    ``s = stride``.  Output size is ``floor((H + 2 pad - K) / s) + 1``.

    Parameters
    ----------
    in_channels, out_channels, kernel : int
        Number of input and output maps, square kernel size ``K``.
    stride : int, default 1
    padding : int, default 0
        Zero padding on each side.
    table : list of list of int, optional
        Torch7 ``SpatialConvolutionMap``-style connection table: ``table[o]``
        is the sorted list of input maps read by output map ``o``; all rows
        have the same length ``fan_in``.  Weights outside the table are held
        at zero: :meth:`init_params` zeroes them, :meth:`forward` multiplies
        the weights by the mask (so a wrongly loaded nonzero value has no
        effect) and :meth:`backward` returns an exactly zero gradient for
        them.  ``None`` means fully connected.

    Notes
    -----
    ``params = {"weight": (out_channels, in_channels, K, K), "bias": (out_channels,)}``.
    Forward is im2col (:func:`sliding_window_view`, rows ``(c, p, q)``,
    columns ``(n, i, j)``) followed by one BLAS matmul; backward computes
    ``dW`` with one matmul and ``dx`` with a col2im that loops over the
    ``K*K`` kernel offsets only (for stride 1 each offset is one contiguous
    run per map).  Outputs and input gradients are kept maps-outermost in
    memory (a transposed view), which spares the transposing copies between
    convolutions.  A block-structured table (grouped or depthwise: runs of
    outputs reading one contiguous range of maps) runs one matmul per run
    over its connected maps only; any other table is a dense matmul with the
    masked weights.
    """

    type: ClassVar[str] = "conv2d"

    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    table: list[list[int]] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        t = self.type
        self.in_channels = _check_int(t, "in_channels", self.in_channels, 1)
        self.out_channels = _check_int(t, "out_channels", self.out_channels, 1)
        self.kernel = _check_int(t, "kernel", self.kernel, 1)
        self.stride = _check_int(t, "stride", self.stride, 1)
        self.padding = _check_int(t, "padding", self.padding, 0)
        if self.table is not None:
            self.table = self._check_table(self.table)
        self._mask = self._build_mask()
        self._blocks = self._build_blocks()

    def _check_table(self, table: Any) -> list[list[int]]:
        t = self.type
        try:
            rows = [list(r) for r in table]
        except TypeError:
            raise ValueError(f"{t}: table must be a list of lists of int, got {table!r}") from None
        if len(rows) != self.out_channels:
            raise ValueError(
                f"{t}: table has {len(rows)} rows, expected out_channels={self.out_channels}"
            )
        fan_in = len(rows[0])
        clean = []
        for o, row in enumerate(rows):
            if len(row) != fan_in:
                raise ValueError(
                    f"{t}: table rows must all have the same length; row 0 has {fan_in}, "
                    f"row {o} has {len(row)}"
                )
            if fan_in == 0:
                raise ValueError(f"{t}: table row {o} is empty")
            vals = []
            for v in row:
                if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                    raise ValueError(f"{t}: table[{o}] entry {v!r} is not an integer")
                v = int(v)
                if not 0 <= v < self.in_channels:
                    raise ValueError(
                        f"{t}: table[{o}] entry {v} out of range 0..{self.in_channels - 1}"
                    )
                vals.append(v)
            if len(set(vals)) != len(vals):
                raise ValueError(f"{t}: table[{o}] has repeated input maps: {vals}")
            if vals != sorted(vals):
                raise ValueError(f"{t}: table[{o}] must be sorted, got {vals}")
            clean.append(vals)
        return clean

    def _build_mask(self) -> np.ndarray | None:
        if self.table is None:
            return None
        mask = np.zeros((self.out_channels, self.in_channels), dtype=bool)
        for o, row in enumerate(self.table):
            mask[o, row] = True
        return mask

    def _build_blocks(self) -> list[tuple[slice, slice]] | None:
        """``(outputs, inputs)`` slice pairs when the table is block structured.

        That is when every row is a contiguous range of input maps and
        consecutive outputs with the same range form runs (a grouped table, as
        :func:`~convc.reference.archs.grouped_table` builds, or a depthwise
        one): then each run is one matmul over only its connected maps, instead
        of one dense matmul whose out-of-table weights are zero.  ``None`` for
        no table, a full table, or any other table (dense with the mask).
        """
        if self.table is None or self.fan_in == self.in_channels:
            return None
        runs: list[list] = []
        for o, row in enumerate(self.table):
            if row[-1] - row[0] + 1 != len(row):
                return None
            if runs and runs[-1][1] == row[0]:
                runs[-1][0] = slice(runs[-1][0].start, o + 1)
            else:
                runs.append([slice(o, o + 1), row[0]])
        f = self.fan_in
        return [(outs, slice(c0, c0 + f)) for outs, c0 in runs]

    @property
    def fan_in(self) -> int:
        """Number of input maps read by each output map."""
        return self.in_channels if self.table is None else len(self.table[0])

    def connection_mask(self) -> np.ndarray:
        """Boolean ``(out_channels, in_channels)``: True where ``o`` reads ``c``."""
        if self._mask is None:
            return np.ones((self.out_channels, self.in_channels), dtype=bool)
        return self._mask.copy()

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        k = self.kernel
        return {
            "weight": (self.out_channels, self.in_channels, k, k),
            "bias": (self.out_channels,),
        }

    def init_params(self, rng: np.random.Generator, dtype=np.float32) -> None:
        """LeCun-style uniform init ``U(-1/sqrt(fan_in K^2), +1/sqrt(fan_in K^2))``, bias 0.

        Weights outside the connection table are set to exactly zero.
        """
        bound = 1.0 / math.sqrt(self.fan_in * self.kernel * self.kernel)
        w = rng.uniform(-bound, bound, size=self.param_shapes()["weight"])
        if self._mask is not None:
            w *= self._mask[:, :, None, None]
        self.params = {
            "weight": w.astype(dtype),
            "bias": np.zeros(self.out_channels, dtype=dtype),
        }
        self._zero_grads()

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        c, h, w = _check_map_shape(self.type, in_shape)
        if c != self.in_channels:
            raise ValueError(f"{self.type}: expected {self.in_channels} input maps, got {c}")
        hp, wp = h + 2 * self.padding, w + 2 * self.padding
        if self.kernel > hp or self.kernel > wp:
            raise ValueError(
                f"{self.type}: kernel {self.kernel} larger than padded input {hp}x{wp}"
            )
        return (
            self.out_channels,
            (hp - self.kernel) // self.stride + 1,
            (wp - self.kernel) // self.stride + 1,
        )

    def macs(self, in_shape: tuple[int, ...]) -> int:
        """``out_c * out_h * out_w * fan_in * K * K`` (connected maps only)."""
        oc, oh, ow = self.output_shape(in_shape)
        return oc * oh * ow * self.fan_in * self.kernel * self.kernel

    def _effective_weight(self) -> np.ndarray:
        w = self.params["weight"]
        if self._mask is not None:
            w = w * self._mask[:, :, None, None].astype(w.dtype)
        return w

    def _weight_blocks(self) -> list[tuple[slice, slice, np.ndarray]]:
        """``(outputs, im2col rows, weight matrix)`` of each matmul of the layer."""
        o, c, kk = self.out_channels, self.in_channels, self.kernel * self.kernel
        if self._blocks is None:
            return [(slice(0, o), slice(0, c * kk), self._effective_weight().reshape(o, c * kk))]
        w = self.params["weight"]
        return [(outs, slice(ins.start * kk, ins.stop * kk),
                 w[outs, ins].reshape(outs.stop - outs.start, -1)) for outs, ins in self._blocks]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x (N, C_in, H, W) -> y (N, C_out, OH, OW)``.

        ``y`` is a transposed view of a ``(C_out, N, OH, OW)`` array (maps outermost
        in memory); the elementwise and pooling layers keep that layout, and the
        next convolution and :meth:`backward` read it without a copy.
        """
        _check_batch(self.type, x, 4)
        _, oh, ow = self.output_shape(x.shape[1:])
        self._require_params()
        n, c, h, wd = x.shape
        o, k, s, p = self.out_channels, self.kernel, self.stride, self.padding
        if p:
            # pad into a maps-outermost (C, N, H', W') buffer; logically (N, C, H', W')
            buf = np.zeros((c, n, h + 2 * p, wd + 2 * p), dtype=x.dtype)
            buf[:, :, p:p + h, p:p + wd] = x.transpose(1, 0, 2, 3)
            xp = buf.transpose(1, 0, 2, 3)
        else:
            xp = x
        # im2col with rows = (c, p, q) to match the weight and columns = (n, i, j):
        # one strided copy whose inner runs are rows of the output grid.
        win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]
        cols = np.empty((c, k, k, n, oh, ow), dtype=x.dtype)
        np.copyto(cols, win.transpose(1, 4, 5, 0, 2, 3))
        cols = cols.reshape(c * k * k, n * oh * ow)
        blocks = self._weight_blocks()
        if len(blocks) == 1 and self._blocks is None:
            y = blocks[0][2] @ cols
        else:
            y = np.empty((o, cols.shape[1]), dtype=np.result_type(blocks[0][2], cols))
            for outs, rows, wm in blocks:
                np.matmul(wm, cols[rows], out=y[outs])
        y += self.params["bias"][:, None]
        self._cache = (cols, xp.shape, blocks)
        return y.reshape(o, n, oh, ow).transpose(1, 0, 2, 3)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Return ``dx``; set ``grads["weight"]`` (masked) and ``grads["bias"]``."""
        cols, xp_shape, blocks = self._require_cache()
        n, c, hp, wp = xp_shape
        o = self.out_channels
        k, s, p = self.kernel, self.stride, self.padding
        oh, ow = dy.shape[2], dy.shape[3]
        # (C_out, N*OH*OW): a view when dy is maps-outermost (as this layer's output)
        dyr = dy.transpose(1, 0, 2, 3).reshape(o, n * oh * ow)
        wshape = (o, c, k, k)
        if self._blocks is None:
            dw = (dyr @ cols.T).reshape(wshape)
            if self._mask is not None:
                dw *= self._mask[:, :, None, None]
        else:   # only the connected weights get a gradient; the others are exactly 0
            dw = np.zeros(wshape, dtype=np.result_type(dyr, cols))
            for (outs, ins), (_, rows, _) in zip(self._blocks, blocks):
                dw[outs, ins] = (dyr[outs] @ cols[rows].T).reshape(outs.stop - outs.start, -1, k, k)
        self.grads = {
            "weight": dw.astype(self.params["weight"].dtype, copy=False),
            "bias": dyr.sum(axis=1).astype(self.params["bias"].dtype, copy=False),
        }
        if s == 1 and k > 1:
            dxp = self._col2im_flat(blocks, dyr, n, c, hp, wp, oh, ow)
        else:
            # col2im: each kernel offset (p, q) scatters one strided slab, in a
            # maps-outermost (C, N, H', W') buffer that matches the rows of dcols.
            dcols = self._dcols(blocks, dyr).reshape(c, k, k, n, oh, ow)
            dxp = np.zeros((c, n, hp, wp), dtype=dcols.dtype)
            for i in range(k):
                for j in range(k):
                    dxp[:, :, i:i + s * oh:s, j:j + s * ow:s] += dcols[:, i, j]
        if p:
            dxp = dxp[:, :, p:hp - p, p:wp - p]
        return dxp.transpose(1, 0, 2, 3)

    def _dcols(self, blocks, d: np.ndarray) -> np.ndarray:
        """``W^T d``: the im2col-shaped gradient ``(C*K*K, M)`` for ``d (C_out, M)``."""
        if self._blocks is None:
            return blocks[0][2].T @ d
        kk = self.kernel * self.kernel
        dtype = np.result_type(blocks[0][2], d)
        ranges = sorted((ins.start, ins.stop) for _, ins in self._blocks)
        disjoint = all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:]))
        if not disjoint:   # some input maps are read by several runs: accumulate
            dcols = np.zeros((self.in_channels * kk, d.shape[1]), dtype=dtype)
            for outs, rows, wm in blocks:
                dcols[rows] += wm.T @ d[outs]
            return dcols
        covered = sum(b - a for a, b in ranges) == self.in_channels
        dcols = (np.empty if covered else np.zeros)((self.in_channels * kk, d.shape[1]), dtype=dtype)
        for outs, rows, wm in blocks:
            np.matmul(wm.T, d[outs], out=dcols[rows])
        return dcols

    def _col2im_flat(self, blocks, dyr, n, c, hp, wp, oh, ow) -> np.ndarray:
        """col2im for stride 1 with contiguous slabs: ``(C, N, H', W')``.

        ``dy`` is widened to ``W'`` columns with zeros, so the columns of ``dcols``
        for kernel offset ``(p, q)`` land on one contiguous run of ``OH * W'``
        values of each flattened input map, starting at ``p W' + q``.  The extra
        columns are exact zeros (added past the row's end, onto the next row's
        start or, for the last map, onto spare slots), so every input value is
        the same sum as with the strided scatter, term for term.
        """
        k = self.kernel
        o = dyr.shape[0]
        dyw = np.zeros((o, n, oh, wp), dtype=dyr.dtype)
        dyw[..., :ow] = dyr.reshape(o, n, oh, ow)
        dcols = self._dcols(blocks, dyw.reshape(o, n * oh * wp)).reshape(c, k, k, n, oh * wp)
        plane, run = hp * wp, oh * wp
        flat = np.zeros((c * n + 1) * plane, dtype=dcols.dtype)     # one spare map
        for i in range(k):
            for j in range(k):
                off = i * wp + j
                flat[off:off + c * n * plane].reshape(c, n, plane)[:, :, :run] += dcols[:, i, j]
        return flat[:c * n * plane].reshape(c, n, hp, wp)


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


# ---------------------------------------------------------------------------
# elementwise nonlinearities
# ---------------------------------------------------------------------------

@dataclass(eq=False)
class _Elementwise(Layer):
    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(int(v) for v in in_shape)


@dataclass(eq=False)
class ReLU(_Elementwise):
    """``y = max(x, 0)``; gradient 1 where ``x > 0`` else 0."""

    type: ClassVar[str] = "relu"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._cache = x > 0
        return np.where(self._cache, x, x.dtype.type(0))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        pos = self._require_cache()
        self.grads = {}
        return np.where(pos, dy, dy.dtype.type(0))


@dataclass(eq=False)
class Tanh(_Elementwise):
    """``y = tanh(x)``; gradient ``1 - y^2``."""

    type: ClassVar[str] = "tanh"

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.tanh(x)
        self._cache = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._require_cache()
        self.grads = {}
        g = y * y
        if np.result_type(dy, g) != g.dtype or dy.shape != g.shape:
            return dy * (1 - g)
        np.subtract(1, g, out=g)       # the same two roundings, without temporaries
        return np.multiply(dy, g, out=g)


@dataclass(eq=False)
class Abs(_Elementwise):
    """``y = |x|``; gradient ``sign(x)`` (0 at ``x == 0``)."""

    type: ClassVar[str] = "abs"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._cache = np.sign(x)
        return np.abs(x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        sign = self._require_cache()
        self.grads = {}
        return dy * sign


# ---------------------------------------------------------------------------
# vector layers
# ---------------------------------------------------------------------------

@dataclass(eq=False)
class Linear(Layer):
    r"""Fully connected layer ``y = x W^T + b``.

    ``params = {"weight": (out_features, in_features), "bias": (out_features,)}``;
    input ``(N, in_features)``, output ``(N, out_features)``.  Init is
    ``U(-1/sqrt(in_features), +1/sqrt(in_features))``, bias 0.
    """

    type: ClassVar[str] = "linear"

    in_features: int
    out_features: int

    def __post_init__(self) -> None:
        super().__post_init__()
        self.in_features = _check_int(self.type, "in_features", self.in_features, 1)
        self.out_features = _check_int(self.type, "out_features", self.out_features, 1)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"weight": (self.out_features, self.in_features), "bias": (self.out_features,)}

    def init_params(self, rng: np.random.Generator, dtype=np.float32) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        w = rng.uniform(-bound, bound, size=(self.out_features, self.in_features))
        self.params = {
            "weight": w.astype(dtype),
            "bias": np.zeros(self.out_features, dtype=dtype),
        }
        self._zero_grads()

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        in_shape = tuple(int(v) for v in in_shape)
        if len(in_shape) != 1:
            raise ValueError(
                f"{self.type}: expected a per-sample vector shape (F,), got {in_shape}; "
                "insert a flatten layer"
            )
        if in_shape[0] != self.in_features:
            raise ValueError(
                f"{self.type}: expected {self.in_features} input features, got {in_shape[0]}"
            )
        return (self.out_features,)

    def macs(self, in_shape: tuple[int, ...]) -> int:
        """``in_features * out_features``."""
        self.output_shape(in_shape)
        return self.in_features * self.out_features

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_batch(self.type, x, 2)
        self.output_shape(x.shape[1:])
        self._require_params()
        self._cache = x
        y = x @ self.params["weight"].T
        y += self.params["bias"]
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x = self._require_cache()
        w = self.params["weight"]
        self.grads = {
            "weight": (dy.T @ x).astype(w.dtype, copy=False),
            "bias": dy.sum(axis=0).astype(self.params["bias"].dtype, copy=False),
        }
        return dy @ w


@dataclass(eq=False)
class Flatten(Layer):
    """``(N, C, H, W) -> (N, C*H*W)`` in C order (any per-sample shape works)."""

    type: ClassVar[str] = "flatten"

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        in_shape = tuple(int(v) for v in in_shape)
        if len(in_shape) < 1:
            raise ValueError(f"{self.type}: expected a per-sample shape, got {in_shape}")
        return (math.prod(in_shape),)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 2:
            raise ValueError(f"{self.type}: expected a batched input, got shape {x.shape}")
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        shape = self._require_cache()
        self.grads = {}
        return dy.reshape(shape)


@dataclass(eq=False)
class LogSoftmax(Layer):
    r"""``y_k = x_k - log(sum_j exp(x_j))`` over the last axis.

    Computed as ``z = x - max(x)``, ``y = z - log(sum exp z)`` so that it does
    not overflow.  Backward: ``dx = dy - exp(y) * sum_k dy_k``.
    """

    type: ClassVar[str] = "logsoftmax"

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        in_shape = tuple(int(v) for v in in_shape)
        if len(in_shape) < 1:
            raise ValueError(f"{self.type}: expected a per-sample shape (F,), got {in_shape}")
        return in_shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        z = x - x.max(axis=-1, keepdims=True)
        y = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        self._cache = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._require_cache()
        self.grads = {}
        return dy - np.exp(y) * dy.sum(axis=-1, keepdims=True)


def nll_loss(logp: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    r"""Mean negative log-likelihood and its gradient.

    .. math::

        L = -\frac{1}{N} \sum_n \mathrm{logp}[n, \mathrm{labels}[n]], \qquad
        \frac{\partial L}{\partial \mathrm{logp}[n, k]} = -\frac{[k = \mathrm{labels}[n]]}{N}

    Parameters
    ----------
    logp : ndarray, shape (N, K)
        Log-probabilities (output of :class:`LogSoftmax`).
    labels : ndarray of int, shape (N,)
        Class indices in ``0..K-1``.

    Returns
    -------
    loss : float
    dlogp : ndarray, shape (N, K), dtype of ``logp``
    """
    logp = np.asarray(logp)
    labels = np.asarray(labels)
    if logp.ndim != 2:
        raise ValueError(f"nll_loss: logp must be (N, K), got shape {logp.shape}")
    n, k = logp.shape
    if labels.shape != (n,):
        raise ValueError(f"nll_loss: labels must have shape ({n},), got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"nll_loss: labels must be integers, got dtype {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= k):
        bad = labels[(labels < 0) | (labels >= k)][0]
        raise ValueError(f"nll_loss: label {int(bad)} out of range 0..{k - 1}")
    rows = np.arange(n)
    loss = -float(logp[rows, labels].sum()) / n
    grad = np.zeros_like(logp)
    grad[rows, labels] = -1.0 / n
    return loss, grad


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


LAYER_TYPES: dict[str, type[Layer]] = {
    cls.type: cls
    for cls in (
        Conv2d,
        MaxPool2d,
        AvgPool2d,
        L2Pool2d,
        LocalContrastNorm,
        LocalResponseNorm,
        ReLU,
        Tanh,
        Abs,
        Linear,
        Flatten,
        LogSoftmax,
        PyramidDown,
        Upsample,
        PixelLogSoftmax,
    )
}

#: Layers that read several inputs (``multi_input``); a chain cannot hold them.
MULTI_INPUT_TYPES: dict[str, type[Layer]] = {cls.type: cls for cls in (Concat,)}

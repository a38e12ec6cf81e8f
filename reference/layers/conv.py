"""Convolution: :class:`Conv2d` (dense or through a connection table) and
:func:`random_table`."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .base import Layer, _check_batch, _check_int, _check_map_shape


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

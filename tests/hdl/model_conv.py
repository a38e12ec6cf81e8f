"""The numpy model of the convolution engine (hdl/conv.py), built only from
compiler/numeric.py (``round_shift``, ``requantize``, ``check_acc``, ``QFormat``): the
``acc`` and ``z`` part of OP_CONV (compiler/isa.py) for one band.

Shared by the Amaranth-simulation tests (tests/hdl/test_conv.py), the cocotb testbench
(tests/hdl/cocotb/test_conv_tb.py) and the bench (bench/bench_conv_engine.py).

Shapes (``G`` input groups, ``Pi`` input lanes, ``Po`` output lanes)::

    bias     (Po,)                 int32
    weights  (G, Po, Pi, K, K)     signed bits
    pixels   (G, Pi, R, Wp)        signed bits (padding already in)
    acc, z   (conv_h, conv_w, Po)  raster order of the engine's output stream
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convc.compiler.numeric import QFormat, check_acc, requantize, round_shift

__all__ = ["Band", "conv_band", "random_band", "band_streams", "expected_outputs"]


@dataclass
class Band:
    """One band: configuration and data."""

    kernel: int
    stride: int
    acc_shift: int
    bias_shift: int
    bits: int
    bias: np.ndarray      # (Po,)
    weights: np.ndarray   # (G, Po, Pi, K, K)
    pixels: np.ndarray    # (G, Pi, R, Wp)
    preload: bool = False  # feed each group's first K-1 rows on the preload stream ``ip``

    @property
    def groups(self) -> int:
        return self.pixels.shape[0]

    @property
    def rows(self) -> int:
        return self.pixels.shape[2]

    @property
    def width(self) -> int:
        return self.pixels.shape[3]

    @property
    def conv_h(self) -> int:
        return (self.rows - self.kernel) // self.stride + 1

    @property
    def conv_w(self) -> int:
        return (self.width - self.kernel) // self.stride + 1

    def config(self) -> dict:
        """The engine's configuration inputs."""
        return {"kernel": self.kernel, "stride": self.stride, "width": self.width, "rows": self.rows,
                "groups": self.groups, "acc_shift": self.acc_shift, "bias_shift": self.bias_shift,
                "preload": int(self.preload)}


def conv_band(band: Band):
    """Returns ``(z, acc, saturations, overflows)``: ``acc`` exact (int64), ``z =
    requantize(acc, acc_shift, bits)``; ``overflows`` counts accs outside 48 bits (the
    hardware wraps there: a compiler error)."""
    K, S = band.kernel, band.stride
    G, Po, Pi = band.weights.shape[:3]
    ch, cw = band.conv_h, band.conv_w
    w = np.asarray(band.weights, dtype=np.int64)
    x = np.asarray(band.pixels, dtype=np.int64)
    bterm = round_shift(np.asarray(band.bias, dtype=np.int64), -band.bias_shift)  # B << bias_shift
    acc = np.zeros((ch, cw, Po), dtype=np.int64) + bterm[None, None, :]
    for g in range(G):
        for i in range(Pi):
            for p in range(K):
                for q in range(K):
                    xs = x[g, i, p:p + (ch - 1) * S + 1:S, q:q + (cw - 1) * S + 1:S]  # (ch, cw)
                    acc += xs[:, :, None] * w[g, :, i, p, q][None, None, :]
    z, sat = requantize(acc, band.acc_shift, QFormat(band.bits, 0))
    return z, acc, sat, check_acc(acc)


def random_band(rng: np.random.Generator, *, Pi: int, Po: int, bits: int, kernel: int, stride: int,
                rows: int, width: int, groups: int, acc_shift: int | None = None,
                bias_shift: int = 0, full_range: bool = True, preload: bool = False) -> Band:
    """Random weights/pixels/biases (full ``bits`` range, extremes included when
    ``full_range``).  ``acc_shift`` default: about the accumulator's spread minus
    ``bits`` + 2, so that some outputs saturate at both ends and most do not."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    w = rng.integers(lo, hi + 1, size=(groups, Po, Pi, kernel, kernel), dtype=np.int64)
    x = rng.integers(lo, hi + 1, size=(groups, Pi, rows, width), dtype=np.int64)
    if full_range:  # extremes appear
        w.flat[rng.integers(0, w.size, size=max(1, w.size // 16))] = lo
        x.flat[rng.integers(0, x.size, size=max(1, x.size // 16))] = rng.choice([lo, hi])
    bmax = 1 << 31
    b = rng.integers(-bmax, bmax, size=Po, dtype=np.int64)
    if acc_shift is None:
        terms = groups * Pi * kernel * kernel
        spread = int(np.ceil(np.log2(max(terms, 1)) / 2)) + 2 * bits - 2
        acc_shift = max(spread - bits, -128)
    # keep the bias term comparable to the products (and inside 48 bits)
    b >>= max(0, 31 + bias_shift - max(acc_shift + bits - 2, 1))
    return Band(kernel=kernel, stride=stride, acc_shift=acc_shift, bias_shift=bias_shift,
                bits=bits, bias=b, weights=w, pixels=x, preload=preload)


def band_streams(band: Band):
    """The input streams of a band, in the engine's orders: ``(bias, weights, pixels,
    preload)``: bias a list of Po ints; weights a flat list (group, o, i, p, q); pixels
    (stream ``i``) and preload (stream ``ip``) lists of ``(lanes list, first, last)``.

    Without ``band.preload`` (or with K = 1): ``i`` carries every row of every group,
    ``first``/``last`` on a group's first/last element; ``ip`` nothing.  With it: ``ip``
    carries each group's rows 0..K-2 and ``i`` rows K-1..R-1, each with ``first`` on its
    first element of the group and ``last`` on its last."""
    bias = [int(v) for v in band.bias]
    weights = [int(v) for v in band.weights.reshape(-1)]
    G, Pi, R, Wp = band.pixels.shape
    split = band.kernel - 1 if band.preload else 0

    def elements(g, r0, r1):
        n = (r1 - r0) * Wp
        return [([int(v) for v in band.pixels[g, :, r0 + k // Wp, k % Wp]], int(k == 0), int(k == n - 1))
                for k in range(n)]

    pixels, preload = [], []
    for g in range(G):
        preload += elements(g, 0, split)
        pixels += elements(g, split, R)
    return bias, weights, pixels, preload


def expected_outputs(band: Band):
    """The output elements: list of ``(data list of Po codes, first, last)``."""
    z = conv_band(band)[0]
    ch, cw, _ = z.shape
    return [([int(v) for v in z[y, x]], int(y == 0 and x == 0), int(y == ch - 1 and x == cw - 1))
            for y in range(ch) for x in range(cw)]

"""numpy model of the fully connected engine (hdl/fc.py), built only from numeric.py:
one band of ``G`` input groups, ``P`` pixels::

    acc[o][p] = wrap48((B[o] << bias_shift) + sum_g sum_i W[g][o][i] * x[g][p][i])
    z[o][p]   = requantize(acc, acc_shift, QFormat(bits, 0))

(``wrap`` is what the 48-bit hardware accumulator does; the golden model reports a sum
outside 48 bits as an overflow, ``check_acc``.)"""

from __future__ import annotations

import numpy as np

from convc.compiler.numeric import ACC_BITS, QFormat, check_acc, requantize, round_shift, wrap

__all__ = ["fc_model", "fc_acc", "make_band", "band_expected", "band_saturations"]


def fc_acc(x, w, b, bias_shift: int) -> np.ndarray:
    """Exact accumulators ``(P, OL)``: ``x`` (G, P, IL), ``w`` (G, OL, IL), ``b`` (OL,)."""
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    dots = np.einsum("goi,gpi->po", w, x)
    return round_shift(b, -int(bias_shift))[None, :] + dots


def fc_model(x, w, b, acc_shift: int, bias_shift: int, bits: int):
    """Output codes ``(P, OL)``, the saturation count and the 48-bit overflow count."""
    acc = fc_acc(x, w, b, bias_shift)
    ovf = check_acc(acc, ACC_BITS)
    # a left shift by more than ``bits`` saturates every nonzero value whatever its size
    # and keeps 0: clamp it so numeric.round_shift stays within int64 (same result)
    shift = max(int(acc_shift), -bits - 1)
    z, sat = requantize(wrap(acc, ACC_BITS), shift, QFormat(bits, 0))
    return np.asarray(z, dtype=np.int64).reshape(acc.shape), sat, ovf


# ----------------------------------------------------------------------------
# stimulus (shared by test_fc.py and cocotb/test_fc_tb.py)
# ----------------------------------------------------------------------------
def make_band(rng: np.random.Generator, il: int, ol: int, bits: int, G: int, P: int, *,
              extreme: str | None = None, bias_shift: int | None = None,
              acc_shift: int | None = None, bias=None) -> dict:
    """A random band.  ``extreme``: "max" / "min" drives every product to the largest
    positive / negative value (saturating outputs), "mixed" mixes extremes in."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    x = rng.integers(lo, hi + 1, size=(G, P, il))
    w = rng.integers(lo, hi + 1, size=(G, ol, il))
    b = rng.integers(-(1 << 31), 1 << 31, size=ol) if bias is None else np.asarray(bias)
    if extreme == "max":
        x[:], w[:] = lo, lo
        b[:] = (1 << 31) - 1
    elif extreme == "min":
        x[:], w[:] = lo, hi
        b[:] = -(1 << 31)
    elif extreme == "mixed":
        mask = rng.random(x.shape) < 0.5
        x[mask] = rng.choice([lo, hi], size=int(mask.sum()))
        mask = rng.random(w.shape) < 0.5
        w[mask] = rng.choice([lo, hi], size=int(mask.sum()))
    if bias_shift is None:
        bias_shift = int(rng.integers(0, 12))
    if acc_shift is None:
        acc = fc_acc(x, w, b, bias_shift)
        mag = int(np.abs(acc).max()).bit_length()
        acc_shift = int(np.clip(mag - bits + int(rng.integers(-2, 3)), -128, 127))
    return {"G": G, "P": P, "x": x, "w": w, "b": b, "acc_shift": acc_shift,
            "bias_shift": bias_shift, "bits": bits}


def band_expected(band) -> list[tuple[list[int], int, int]]:
    z, _, ovf = fc_model(band["x"], band["w"], band["b"], band["acc_shift"], band["bias_shift"],
                         band["bits"])
    assert ovf == 0, "test band overflows the 48-bit accumulator"
    P = band["P"]
    return [([int(v) for v in z[p]], int(p == 0), int(p == P - 1)) for p in range(P)]


def band_saturations(band) -> int:
    return fc_model(band["x"], band["w"], band["b"], band["acc_shift"], band["bias_shift"],
                    band["bits"])[1]



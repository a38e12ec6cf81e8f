"""numpy model of the pooling engine (hdl/pool.py), built only from numeric.py: one
``H x W`` frame of ``lanes`` codes a pixel::

    Ho, Wo = (H - k)//s + 1, (W - k)//s + 1
    POOL_MAX:  out[y][x] = max over the k x k window at (y*s, x*s)
    POOL_AVG:  out[y][x] = requantize(sum over the window * avg_mul, avg_shift, bits)
    POOL_NONE: out = in

(isa's OP_CONV pooling step, as in sim/golden.py.)"""

from __future__ import annotations

import numpy as np

from convc.compiler import isa
from convc.compiler.numeric import QFormat, requantize

__all__ = ["pool_model", "pool_outputs", "random_frame"]


def avg_constants(k: int) -> tuple[int, int]:
    """The compiler's average constants (compiler/passes/quantize.py)."""
    n = k * k
    if n & (n - 1) == 0:
        return 1, n.bit_length() - 1
    shift = 17 + (n.bit_length() - 1)
    return int(round(2 ** shift / n)), shift


def pool_model(frame, kind: int, k: int, s: int, avg_mul: int, avg_shift: int, bits: int):
    """``frame`` (H, W, lanes) codes -> ((Ho, Wo, lanes) codes, saturation count)."""
    x = np.asarray(frame, dtype=np.int64)
    if kind == isa.POOL_NONE:
        return x.copy(), 0
    H, W, _ = x.shape
    Ho, Wo = (H - k) // s + 1, (W - k) // s + 1
    win = np.stack([x[p:p + (Ho - 1) * s + 1:s, q:q + (Wo - 1) * s + 1:s]
                    for p in range(k) for q in range(k)])            # (k*k, Ho, Wo, lanes)
    if kind == isa.POOL_MAX:
        return win.max(axis=0), 0
    if kind == isa.POOL_AVG:
        out, sat = requantize(win.sum(axis=0) * int(avg_mul), int(avg_shift), QFormat(bits, 0))
        return np.asarray(out, dtype=np.int64), sat
    raise ValueError(f"unknown pool kind {kind}")


def pool_outputs(frame, kind, k, s, avg_mul, avg_shift, bits) -> list[tuple[list[int], int, int]]:
    """The engine's output elements for one frame: ``(lanes codes, first, last)``."""
    out, _ = pool_model(frame, kind, k, s, avg_mul, avg_shift, bits)
    flat = out.reshape(-1, out.shape[-1])
    n = len(flat)
    return [([int(v) for v in flat[j]], int(j == 0), int(j == n - 1)) for j in range(n)]


def random_frame(rng: np.random.Generator, H: int, W: int, lanes: int, bits: int,
                 extreme: str | None = None) -> np.ndarray:
    """Random codes; ``extreme``: "max" / "min" fills with the largest / smallest code,
    "mixed" puts both extremes in at random."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    f = rng.integers(lo, hi + 1, size=(H, W, lanes))
    if extreme == "max":
        f[:] = hi
    elif extreme == "min":
        f[:] = lo
    elif extreme == "mixed":
        mask = rng.random(f.shape) < 0.5
        f[mask] = rng.choice([lo, hi], size=int(mask.sum()))
    return f

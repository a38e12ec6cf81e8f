r"""Exact integer matrix products of the golden model (:mod:`convc.sim.golden`).

A CONV / FC record's dot products, and an LCN record's window sums, are
integer matrix products ``W @ cols`` over im2col columns (:func:`im2col`).
They are done in float64 (BLAS) when that is exact (:func:`f64_exact`):
every product ``w*x`` and every partial sum of a dot product of length
``L`` is an integer of magnitude at most ``max|w| * max|x| * L``; if that
bound is below ``2**53`` every intermediate float64 value is an exactly
representable integer, whatever the summation order (FMA included), so the
result is exact.  Otherwise the product is done in int64, exact below
``2**63`` (checked; ``OverflowError`` otherwise).

The columns are built in chunks of images / rows (:func:`chunk_steps`) that
bound temporary memory.
"""

from __future__ import annotations

import numpy as np

__all__ = ["I64_LIMIT", "chunk_steps", "exact_matmul", "f64_exact", "im2col", "max_abs"]

#: float64 represents every integer of magnitude below this exactly.
_F64_EXACT = 1 << 53
#: int64 holds every integer of magnitude below this.
I64_LIMIT = 1 << 63
#: Largest im2col block (elements) built at once; bounds temporary memory
#: (2 MiB of float64: buffers the allocator reuses, no fresh pages to fault in).
_CHUNK_ELEMS = 1 << 18


def max_abs(a: np.ndarray) -> int:
    """``max |a|`` as a Python int (0 when ``a`` is empty)."""
    return int(np.abs(a).max()) if a.size else 0


def f64_exact(max_a: int, max_b: int, length: int) -> bool:
    r"""Whether float64 computes every dot product of ``length`` terms
    ``a_i * b_i`` exactly, for integers ``|a_i| <= max_a``, ``|b_i| <= max_b``.

    Every product and every partial sum, in any order (FMA included), is an
    integer of magnitude at most :math:`B = \max|a| \cdot \max|b| \cdot L`.
    float64 has a 53-bit significand, so it represents every integer of
    magnitude below :math:`2^{53}`; if :math:`B < 2^{53}` no rounding ever
    happens and the float64 result is the exact integer.
    """
    return max_a * max_b * length < _F64_EXACT


def exact_matmul(a: np.ndarray, b: np.ndarray, max_a: int, max_b: int) -> np.ndarray:
    """Exact integer ``a @ b`` (int64 result) for int64 ``a`` (M, L), ``b`` (L, n),
    ``max_a`` / ``max_b`` bounding their magnitudes.

    float64 (BLAS) when :func:`f64_exact` proves it exact, else int64 (exact
    below ``2**63``, which is checked).
    """
    if f64_exact(max_a, max_b, a.shape[1]):
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    if max_a * max_b * a.shape[1] >= I64_LIMIT:
        raise OverflowError(f"a dot product of length {a.shape[1]} may reach "
                            f"{max_a * max_b * a.shape[1]}, beyond int64")
    return a.astype(np.int64) @ b.astype(np.int64)


def chunk_steps(per_row: int, rows: int) -> tuple[int, int]:
    """Rows and images per im2col chunk, for ``rows`` output rows of
    ``per_row`` column elements each: ``(rows_step, imgs_step)``.

    A chunk holds at most :data:`_CHUNK_ELEMS` elements (at least one row);
    several images go in one chunk only when all their rows fit.
    """
    per_row = max(per_row, 1)
    rows_step = max(1, min(rows, _CHUNK_ELEMS // per_row))
    imgs_step = max(1, _CHUNK_ELEMS // (per_row * rows)) if rows_step == rows else 1
    return rows_step, imgs_step


def im2col(band: np.ndarray, K: int, sel_r: np.ndarray, sel_c: np.ndarray, dtype) -> np.ndarray:
    """Columns for a matrix product: (m*K*K, n*len(sel_r)*len(sel_c)) of ``dtype``,
    row ``(j*K + p)*K + q`` (the weight layout), column ``(i*ny + y)*nx + x``
    holding ``band[i, j, sel_r[y] + p, sel_c[x] + q]``.

    Built by K*K block copies whose inner rows are contiguous (basic slicing
    when the needed rows / columns are evenly spaced, which they are unless
    pool_s > pool_k); several times faster than gathering a strided
    sliding-window view.
    """
    n, m = band.shape[:2]
    bt = band.transpose(1, 0, 2, 3)
    cols = np.empty((m, K, K, n, sel_r.size, sel_c.size), dtype=dtype)
    rs, cs = _as_slice(sel_r), _as_slice(sel_c)
    for p in range(K):
        rows = bt[:, :, _shift(rs, p)] if rs is not None else bt[:, :, sel_r + p]
        for q in range(K):
            cols[:, p, q] = rows[..., _shift(cs, q)] if cs is not None else rows[..., sel_c + q]
    return cols.reshape(m * K * K, -1)


def _shift(sl: slice, d: int) -> slice:
    return slice(sl.start + d, sl.stop + d, sl.step)


def _as_slice(idx: np.ndarray) -> slice | None:
    """``idx`` (increasing, non-empty) as an equivalent slice, if it is an
    arithmetic progression."""
    if idx.size == 1:
        return slice(int(idx[0]), int(idx[0]) + 1)
    step = int(idx[1] - idx[0])
    if step > 0 and np.all(np.diff(idx) == step):
        return slice(int(idx[0]), int(idx[-1]) + 1, step)
    return None

r"""The minimax piecewise-linear fitter: builds the :class:`~convc.compiler.pwl_table.PWLTable`
of a real function (tanh, square root, reciprocal, ``1/sqrt``) for given input
and output formats.

The tables it returns follow the numeric spec (:mod:`convc.compiler.numeric`,
:mod:`convc.compiler.pwl_table`): the evaluation rule of :class:`PWLTable` /
:func:`pwl_eval`, the 18-bit slope (DSP B port), the 25-bit input (A port) and
the 48-bit accumulator.  This module only *chooses* slopes, offsets and breakpoints; it defines no
arithmetic rule.  The error it reports is measured with :func:`pwl_eval` on
every input code of the fitted interval.

:func:`fit_pwl` is the minimax fitter; :func:`make_tanh` and
:func:`make_inv_sqrt` build the two nonlinearities of the project.
"""

from __future__ import annotations

import math
import operator
from typing import Callable

import numpy as np

from .minimax_line import minimax_line, stab_line
from .numeric import ACC_BITS, DSP_A_BITS, DSP_B_BITS, QFormat, requantize
from .pwl_table import ACC_MAX, ACC_MIN, SLOPE_MAX, SLOPE_MIN, PWLTable, a_port_bits, pwl_eval

__all__ = ["fit_pwl", "make_tanh", "make_inv_sqrt"]


def _greedy(ok: Callable[[int, int], bool], n: int, max_segs: int) -> list[int] | None:
    """Fewest segments such that ``ok(start, end)`` holds for each (greedy:
    each segment as long as possible, exponential then binary search for its
    end; optimal when feasibility only gets easier on a sub-range).  Returns
    the segment start indices, or None if more than ``max_segs`` are needed."""
    starts: list[int] = []
    start = 0
    while start < n:
        if len(starts) == max_segs:
            return None
        starts.append(start)
        if ok(start, n):
            break
        good, bad, length = start + 1, n, 2
        while start + length < n:
            if ok(start, start + length):
                good = start + length
                length *= 2
            else:
                bad = start + length
                break
        while bad - good > 1:
            mid = (good + bad) // 2
            if ok(start, mid):
                good = mid
            else:
                bad = mid
        start = good
    return starts


def _largest_frac(m: float, limit: float) -> int:
    """Largest f with m * 2**f <= limit (m > 0)."""
    f = math.floor(math.log2(limit) - math.log2(m))
    while math.ldexp(m, f) > limit:
        f -= 1
    while math.ldexp(m, f + 1) <= limit:
        f += 1
    return f


def _acc_bounds(y: np.ndarray, err: float, out_fmt: QFormat, shift: int):
    """Per input code, the inclusive accumulator range ``[A_lo, A_hi]`` whose
    output ``saturate(round_shift(acc, shift))`` is within ``err`` of ``y``.

    Output codes within ``err``: ``k in [kl, kh]``, ``kl = ceil((y-err)/lsb)``,
    ``kh = floor((y+err)/lsb)`` (clipped to the format).  For ``shift >= 1``,
    ``round_shift(acc) in [kl, kh]`` iff
    ``(kl - 1/2) 2**shift <= acc <= (kh + 1/2) 2**shift - 1``; for
    ``shift <= 0`` iff ``ceil(kl 2**shift) <= acc <= floor(kh 2**shift)``.
    Where ``kl`` (``kh``) is the format minimum (maximum), saturation makes
    any smaller (larger) accumulator acceptable; everything is clipped to the
    48-bit accumulator.  Returns None if some code admits no output (also
    when its admissible accumulators all lie outside 48 bits, which an
    explicit, too large ``slope_frac`` can cause).
    """
    sy = np.ldexp(y, out_fmt.frac)
    se = math.ldexp(err, out_fmt.frac)
    kl = np.maximum(np.ceil(sy - se), out_fmt.min_int)
    kh = np.minimum(np.floor(sy + se), out_fmt.max_int)
    if np.any(kl > kh):
        return None
    if shift >= 1:
        a_lo = np.ldexp(kl - 0.5, shift)
        a_hi = np.ldexp(kh + 0.5, shift) - 1.0
    else:
        a_lo = np.ceil(np.ldexp(kl, shift))
        a_hi = np.floor(np.ldexp(kh, shift))
    # Saturation: below the minimum / above the maximum code anything goes.
    # A line with an 18-bit slope cannot move more than 2**17 * span within
    # the fitted codes, so extending by that much (instead of to the 48-bit
    # limit) loses no line and keeps the numbers well conditioned.
    ext = float(1 << (DSP_B_BITS - 1)) * float(y.shape[0]) + 1.0
    sat_lo, sat_hi = kl <= out_fmt.min_int, kh >= out_fmt.max_int
    ref_lo = float(np.min(np.where(sat_lo, a_hi, a_lo)))
    ref_hi = float(np.max(np.where(sat_hi, a_lo, a_hi)))
    a_lo = np.where(sat_lo, np.minimum(a_lo, ref_lo - ext), a_lo)
    a_hi = np.where(sat_hi, np.maximum(a_hi, ref_hi + ext), a_hi)
    # one-sided: an interval entirely outside 48 bits must stay empty (a
    # two-sided clip would turn it into [ACC_MAX, ACC_MAX], a false "feasible")
    a_lo = np.maximum(a_lo, float(ACC_MIN))
    a_hi = np.minimum(a_hi, float(ACC_MAX))
    if np.any(a_lo > a_hi):
        return None
    return a_lo.astype(np.int64), a_hi.astype(np.int64)


def _slope_candidates(a: float, below: int, above: int) -> list[int]:
    """Integer slopes to try next to a real slope ``a``: ``floor(a') - below``
    .. ``floor(a') + above`` where ``a'`` is ``a`` clamped to the 18-bit slope
    range, nearest first (and clipped to that range).

    Why clamping is needed and sufficient: the integer lines meeting a set of
    integer accumulator intervals are exactly the integer slopes ``S`` of the
    real feasible slope interval ``I`` (for an integer ``S`` the offset bounds
    ``max(a_lo - S*c)`` / ``min(a_hi - S*c)`` are integers), and ``I`` is an
    interval.  If ``a`` lies in ``I`` but outside the slope range -- a flat
    function on a coarse output grid admits very steep lines -- every integer
    next to ``a`` is out of range, yet any in-range integer of ``I`` lies
    between ``a`` and the nearest range end ``a'``, so ``a'`` is in ``I`` too.
    """
    if not math.isfinite(a):
        a = 0.0
    f0 = math.floor(min(max(a, float(SLOPE_MIN)), float(SLOPE_MAX)))
    order = sorted(range(-below, above + 1), key=lambda d: (abs(d - 0.5), d))
    return [f0 + d for d in order if SLOPE_MIN <= f0 + d <= SLOPE_MAX]


def _int_lines(
    cs: np.ndarray, a_lo: np.ndarray, a_hi: np.ndarray, slopes, first: bool = False
) -> list[tuple[int, int, int]]:
    """For each integer slope ``S``, the integer offsets ``O`` with
    ``a_lo <= S*cs + O <= a_hi`` on every code: ``[o_lo, o_hi]``.  Returns
    ``(S, o_lo, o_hi)`` for the slopes where that range is non-empty (only
    the first one if ``first``)."""
    out = []
    for S in slopes:
        if not SLOPE_MIN <= S <= SLOPE_MAX:
            continue
        sx = S * cs
        o_lo = int((a_lo - sx).max())
        o_hi = int((a_hi - sx).min())
        if o_lo <= o_hi:
            out.append((S, o_lo, o_hi))
            if first:
                break
    return out


def fit_pwl(
    func: Callable[[np.ndarray], np.ndarray],
    lo: float,
    hi: float,
    segments: int,
    in_fmt: QFormat,
    out_fmt: QFormat,
    slope_frac: int | None = None,
) -> tuple[PWLTable, float]:
    r"""Fit a minimax piecewise-linear table to ``func`` on ``[lo, hi]``.

    The objective is the *final* error, after integer slopes/offsets and
    output rounding:
    ``max_c |to_float(pwl_eval(table, c)) - func(c * 2**-in_fmt.frac)|`` over
    every input code ``c`` of ``in_fmt`` in ``[lo, hi]``.

    Parameters
    ----------
    func : callable
        Vectorized real function (float64 array -> float64 array); must be
        finite on ``[lo, hi]``.
    lo, hi : float
        Fitting interval (real units), ``lo <= hi``.
    segments : int
        Number of segments ``N >= 1``; there must be at least ``N`` codes in
        the interval.
    in_fmt, out_fmt : QFormat
        Input (must fit the signed 25-bit A port) and output formats.
    slope_frac : int, optional
        Fraction bits of the slopes; chosen automatically if None.

    Returns
    -------
    table : PWLTable
    max_err : float
        Measured maximum absolute error in real units over the codes of
        ``[lo, hi]``, including output rounding and saturation.

    Raises
    ------
    ValueError
        Bad arguments, or a table whose accumulator would not fit 48 bits
        over the whole input range (only possible with an explicit, too large
        ``slope_frac``).

    Notes
    -----
    Method:

    1. Sample ``func`` at every code of ``[lo, hi]`` (clipped to the format).
    2. ``slope_frac`` (if None): the largest value such that the steepest
       slope of ``func`` between neighbouring codes, times
       ``2**slope_frac``, fits a signed 18-bit integer; lowered if needed so
       the accumulator stays well inside 48 bits.
    3. For a target error ``E``, code ``c`` admits the output codes ``k`` with
       ``|k * lsb - f(c)| <= E``; this is an exact integer interval
       ``[A_lo(c), A_hi(c)]`` for the accumulator ``S*c + O`` (round-half-up
       and saturation included, see ``_acc_bounds``).  A segment is feasible
       iff some integer slope ``S`` (18-bit) and offset ``O`` meet all its
       intervals: a Remez-type exchange finds a real line through the
       intervals (the discrete minimax line with interval targets,
       :func:`~convc.compiler.minimax_line.stab_line`), then the integer
       slopes next to it -- next to its slope *clamped to the 18-bit range*:
       a flat function on a coarse output grid admits real lines far
       steeper than any B-port slope -- are checked exactly; this finds an
       integer line whenever one exists (see ``_slope_candidates``).
       Segments need not be continuous, so the greedy sweep (each segment as
       long as possible, exponential + binary search for its end) uses the
       fewest segments for that ``E``; ``E`` is bisected to the smallest
       value needing ``<= segments`` (resolution
       ``max(1e-3 * E, out_fmt.lsb / 64)``).  If fewer segments suffice, the
       longest are split so the table has exactly ``segments``.  (With wide
       outputs this is the classic "minimax line per segment, bisect eps"
       fit; the interval form also exploits the output grid, which matters
       for coarse outputs such as Q8.8 and for flat segments.)
    4. Per segment, among the feasible integer slopes near the minimax line,
       the one with the smallest exact error is kept, with the offset in the
       middle of its feasible range.
    5. The returned error is *measured* with :func:`pwl_eval` on every code of
       ``[lo, hi]`` (it is ``<= E`` by construction).

    Outside ``[lo, hi]`` the first and last segments simply extend (that is
    what the evaluation rule does); the error there is NOT measured or
    bounded.  To bound the error for every input the hardware can see, fit
    over the whole input range (as :func:`make_tanh` does by default).

    Cost: linear in the number of codes times ``segments`` times about 10
    bisection steps; a 16-bit input (65,536 codes) takes about 0.2-0.5 s,
    a 20-bit input several seconds.
    """
    segments = operator.index(segments)
    if segments < 1:
        raise ValueError(f"segments must be >= 1, got {segments}")
    if a_port_bits(in_fmt) > DSP_A_BITS:
        raise ValueError(
            f"PWL input {in_fmt} does not fit the signed {DSP_A_BITS}-bit A port"
        )
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"need finite lo <= hi, got [{lo}, {hi}]")
    fi, fo = in_fmt.frac, out_fmt.frac
    c_lo = max(math.ceil(math.ldexp(lo, fi)), in_fmt.min_int)
    c_hi = min(math.floor(math.ldexp(hi, fi)), in_fmt.max_int)
    n = c_hi - c_lo + 1
    if n < segments:
        raise ValueError(
            f"[{lo}, {hi}] holds {max(n, 0)} codes of {in_fmt}, fewer than "
            f"{segments} segments"
        )
    codes = np.arange(c_lo, c_hi + 1, dtype=np.int64)
    xf = codes.astype(np.float64)
    y = np.asarray(func(np.ldexp(xf, -fi)), dtype=np.float64)
    if y.shape != codes.shape:
        raise ValueError("func must map an array to an array of the same shape")
    if not np.all(np.isfinite(y)):
        raise ValueError("func is not finite on every code of [lo, hi]")
    lsb = out_fmt.lsb

    # -- slope format -------------------------------------------------------------
    if slope_frac is None:
        dmax = math.ldexp(float(np.max(np.abs(np.diff(y)))), fi) if n > 1 else 0.0
        if dmax > 0:
            sf = _largest_frac(dmax, float(SLOPE_MAX))
        else:
            sf = max(fo - fi, 0) + DSP_B_BITS - 1
        # accumulator: |y| plus (twice) the steepest slope over the whole input
        # span must stay below 2**46 (half the 48-bit range) in product units
        mag = float(np.max(np.abs(y))) + 2.0 * dmax * (
            in_fmt.max_value - in_fmt.min_value
        ) + lsb
        sf = min(sf, _largest_frac(mag, math.ldexp(1.0, ACC_BITS - 2)) - fi)
    else:
        sf = operator.index(slope_frac)
    shift = fi + sf - fo

    # -- segmentation: bisect the target error, greedy sweep ----------------------
    def seg_lines(bnd, s: int, t: int):
        """Integer lines (S, o_lo, o_hi) meeting every interval of codes s..t-1,
        searched next to a real line through the intervals ([] if none).

        The real line meets the intervals widened by ``slack = 1``; its slope
        is then within 2 of the exact feasible slope interval (widening both
        ends by 1 lets the slope drift by at most 2 / (code distance) <= 2),
        so ``floor(a) - 3 .. floor(a) + 4`` (``a`` clamped to the 18-bit
        range) contains an integer of that interval whenever it has one:
        the check is exact, not a heuristic (one more slope on each side
        covers the float rounding of ``r <= 1`` at 48-bit magnitudes)."""
        a_lo, a_hi, f_lo, f_hi = bnd
        a, _, _, ok = stab_line(xf[s:t], f_lo[s:t], f_hi[s:t], slack=1.0, decide=True)
        if not ok:
            return []
        return _int_lines(
            codes[s:t], a_lo[s:t], a_hi[s:t], _slope_candidates(a, 3, 4), True
        )

    def bounds(err: float):
        bnd = _acc_bounds(y, err, out_fmt, shift)
        if bnd is None:
            return None
        return (*bnd, bnd[0].astype(np.float64), bnd[1].astype(np.float64))

    def attempt(err: float):
        bnd = bounds(err)
        if bnd is None:
            return None
        return _greedy(lambda s, t: bool(seg_lines(bnd, s, t)), n, segments)

    cuts = np.linspace(0, n, segments + 1).round().astype(int)
    e_hi = lsb + max(
        minimax_line(xf[s:t], y[s:t])[2] for s, t in zip(cuts[:-1], cuts[1:])
    )
    starts = None
    for _ in range(64):
        starts = attempt(e_hi)
        if starts is not None:
            break
        e_hi *= 2.0
    if starts is None:
        raise ValueError(f"cannot fit: slope_frac {sf} / {out_fmt} too coarse")
    e_lo = 0.0
    while e_hi - e_lo > max(1e-3 * e_hi, lsb / 64.0):
        mid = 0.5 * (e_lo + e_hi)
        s = attempt(mid)
        if s is None:
            e_lo = mid
        else:
            e_hi, starts = mid, s
    bnd = bounds(e_hi)
    a_lo, a_hi, f_lo, f_hi = bnd
    # integer slopes verified for each greedy segment (a single code needs none:
    # any slope works); a split half can always reuse its parent's slopes
    verified = {}
    for s, t in zip(starts, starts[1:] + [n]):
        verified[s] = [c[0] for c in seg_lines(bnd, s, t)] or [0]
    while len(starts) < segments:  # pad by splitting the longest segments
        ends = starts[1:] + [n]
        j = max(range(len(starts)), key=lambda i: ends[i] - starts[i])
        mid = (starts[j] + ends[j]) // 2
        verified[mid] = verified[starts[j]]
        starts.insert(j + 1, mid)
    ends = starts[1:] + [n]

    # -- integer slope / offset per segment ---------------------------------------------
    slopes: list[int] = []
    offsets: list[int] = []
    for s, t in zip(starts, ends):
        cs, ys = codes[s:t], y[s:t]
        lo_s, hi_s = a_lo[s:t], a_hi[s:t]
        a = stab_line(xf[s:t], f_lo[s:t], f_hi[s:t], slack=1.0)[0]
        cands = _int_lines(
            cs, lo_s, hi_s, sorted({*_slope_candidates(a, 4, 5), *verified[s]})
        )
        if not cands:  # cannot happen: the verified slopes fit the segment
            raise RuntimeError("fit_pwl: no integer line for a verified segment")
        best = None
        for S, o_lo, o_hi in cands:
            O = (o_lo + o_hi) // 2
            yq, _ = requantize(S * cs + O, shift, out_fmt)
            err = float(np.max(np.abs(np.ldexp(yq.astype(np.float64), -fo) - ys)))
            if best is None or err < best[0]:
                best = (err, S, O)
        slopes.append(best[1])
        offsets.append(best[2])

    table = PWLTable(
        in_fmt=in_fmt,
        out_fmt=out_fmt,
        slope_frac=sf,
        breakpoints=tuple(int(codes[s]) for s in starts[1:]),
        slopes=tuple(slopes),
        offsets=tuple(offsets),
    )
    # -- honest measurement -----------------------------------------------------------
    yq, _ = pwl_eval(table, codes)
    err = float(np.max(np.abs(out_fmt.to_float(yq) - y)))
    return table, err


def make_tanh(segments: int, in_fmt: QFormat, out_fmt: QFormat, lo: float | None = None,
              hi: float | None = None, slope_frac: int | None = None) -> tuple[PWLTable, float]:
    """Minimax PWL ``tanh`` table (NeuFlow: 8 segments, Q8.8).

    Range: by default the *whole* input range ``[in_fmt.min_value,
    in_fmt.max_value]``.  tanh saturates, so the fitter spends the first and
    last segments on (nearly) flat lines at -1 / +1 from about where
    ``|tanh|`` is within an output LSB of 1; fitting the whole range makes the
    returned error an honest bound for *every* input code (a table fitted
    only up to the saturation point would extrapolate its last, sloped
    segment beyond it).  Pass ``lo``/``hi`` to restrict the fit.

    Returns
    -------
    (PWLTable, float)
        The table and its measured max error (see :func:`fit_pwl`).
    """
    lo = in_fmt.min_value if lo is None else lo
    hi = in_fmt.max_value if hi is None else hi
    return fit_pwl(np.tanh, lo, hi, segments, in_fmt, out_fmt, slope_frac)


def _inv_sqrt(x: np.ndarray) -> np.ndarray:
    return 1.0 / np.sqrt(x)


def make_inv_sqrt(segments: int, in_fmt: QFormat, out_fmt: QFormat, lo: float, hi: float,
                  slope_frac: int | None = None) -> tuple[PWLTable, float]:
    """Minimax PWL ``1/sqrt(x)`` table on ``[lo, hi]``, ``0 < lo <= hi`` (the
    divisor of local contrast normalization); returns as :func:`make_tanh`.

    Inputs below ``lo`` / above ``hi`` extend the first / last segment (not
    measured); callers should clamp the input (e.g. the variance floor of the
    normalization) into ``[lo, hi]``.
    """
    if not lo > 0:
        raise ValueError(f"inv_sqrt needs lo > 0, got {lo}")
    return fit_pwl(_inv_sqrt, lo, hi, segments, in_fmt, out_fmt, slope_frac)

r"""The piecewise-linear (PWL) table of the numeric spec: :class:`PWLTable`, its
evaluation rule :func:`pwl_eval` and the lookup :func:`pwl_lut` of every input code.

The PWL rule is part of the one numeric spec (:mod:`convc.compiler.numeric` holds the
formats, the rounding, saturation and the accumulator); like those rules it is defined
here once, and the golden model, the compiler and the HDL's PWL unit
(:mod:`convc.hdl.pwl`) import it.

Evaluation
----------
A :class:`PWLTable` with ``N`` segments is evaluated on an input code ``x``
exactly as the hardware does (one DSP48E1)::

    i   = number of breakpoints b with x >= b            # 0 .. N-1
    acc = slopes[i] * x + offsets[i]                     # fraction in.frac + slope_frac
    y   = requantize(acc, in.frac + slope_frac - out.frac, out_fmt)

The input code goes on the multiplier's A port (so ``in_fmt.width <= 25``,
``DSP_A_BITS``) and the segment slope on the B port (signed 18 bits,
``DSP_B_BITS``); ``acc`` fits the 48-bit accumulator for every code of the segment.

The tables themselves are fitted by :mod:`convc.compiler.pwl_fit`
(``fit_pwl``, the minimax fitter, its error measured on every input code;
``make_tanh`` / ``make_inv_sqrt``, the two nonlinearities of the project).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .numeric import ACC_BITS, DSP_A_BITS, DSP_B_BITS, QFormat, as_int64, requantize, round_shift, signed_range

__all__ = ["PWL_LUT_MAX_BITS", "SLOPE_MIN", "SLOPE_MAX", "ACC_MIN", "ACC_MAX", "PWLTable", "pwl_eval",
           "pwl_lut", "a_port_bits"]

#: The slopes a table may have (a signed ``DSP_B_BITS``-bit B port).
SLOPE_MIN, SLOPE_MAX = signed_range(DSP_B_BITS)
#: What ``slope*x + offset`` may reach (the signed ``ACC_BITS``-bit accumulator).
ACC_MIN, ACC_MAX = signed_range(ACC_BITS)


def a_port_bits(fmt: QFormat) -> int:
    """Signed bits needed to carry codes of ``fmt`` on a multiplier port."""
    return fmt.width if fmt.signed else fmt.width + 1


def _as_int_tuple(v: Any, name: str) -> tuple[int, ...]:
    out = []
    for e in v:
        if isinstance(e, bool) or not isinstance(e, (int, np.integer)):
            raise TypeError(f"PWLTable.{name} must contain ints, got {e!r}")
        out.append(int(e))
    return tuple(out)


@dataclass(frozen=True)
class PWLTable:
    r"""A piecewise-linear function on fixed-point codes, exactly as the
    hardware evaluates it (one DSP48E1: 25x18 multiply, 48-bit add).

    Evaluation rule (:func:`pwl_eval`; this pseudo-code *is* the spec)::

        # x: input code in in_fmt;  N = len(slopes) segments
        i   = count(b in breakpoints if x >= b)        # segment index, 0..N-1
        acc = slopes[i] * x + offsets[i]               # exact; fraction
                                                       #   F = in_fmt.frac + slope_frac
        y   = requantize(acc, F - out_fmt.frac, out_fmt)
            = saturate(round_shift(acc, F - out_fmt.frac), out_fmt)

    Segment ``i`` covers codes ``[breakpoints[i-1], breakpoints[i] - 1]``;
    segment 0 extends down to ``in_fmt.min_int`` and segment ``N-1`` up to
    ``in_fmt.max_int``.

    Parameters
    ----------
    in_fmt : QFormat
        Input format; its codes must fit the signed 25-bit A port
        (``width <= 25`` signed, ``<= 24`` unsigned).
    out_fmt : QFormat
        Output format.
    slope_frac : int
        Fraction bits of the slope integers.
    breakpoints : tuple of int
        ``N-1`` strictly increasing input codes, each in
        ``(in_fmt.min_int, in_fmt.max_int]`` (so no segment is empty).
    slopes : tuple of int
        ``N`` slopes, ``real_slope = slopes[i] * 2**-slope_frac``; each must
        fit a signed 18-bit DSP B port.
    offsets : tuple of int
        ``N`` offsets in the product format (fraction ``F``), each fitting
        signed 48 bits.  In addition ``slopes[i]*x + offsets[i]`` must fit 48
        bits for every code ``x`` of segment ``i`` (checked at the segment's
        end points), so :func:`pwl_eval` never overflows the accumulator.

    Raises
    ------
    ValueError
        On any violated constraint.
    """

    in_fmt: QFormat
    out_fmt: QFormat
    slope_frac: int
    breakpoints: tuple[int, ...]
    slopes: tuple[int, ...]
    offsets: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.in_fmt, QFormat) or not isinstance(self.out_fmt, QFormat):
            raise TypeError("in_fmt and out_fmt must be QFormat")
        if a_port_bits(self.in_fmt) > DSP_A_BITS:
            raise ValueError(
                f"PWL input {self.in_fmt} does not fit the signed {DSP_A_BITS}-bit "
                f"DSP48E1 A port"
            )
        sf = self.slope_frac
        if isinstance(sf, bool) or not isinstance(sf, (int, np.integer)):
            raise TypeError(f"slope_frac must be an int, got {sf!r}")
        object.__setattr__(self, "slope_frac", int(sf))
        bps = _as_int_tuple(self.breakpoints, "breakpoints")
        slopes = _as_int_tuple(self.slopes, "slopes")
        offsets = _as_int_tuple(self.offsets, "offsets")
        object.__setattr__(self, "breakpoints", bps)
        object.__setattr__(self, "slopes", slopes)
        object.__setattr__(self, "offsets", offsets)
        n = len(slopes)
        if n < 1:
            raise ValueError("a PWL table needs at least one segment")
        if len(offsets) != n or len(bps) != n - 1:
            raise ValueError(
                f"need N slopes, N offsets and N-1 breakpoints; got "
                f"{len(slopes)}, {len(offsets)}, {len(bps)}"
            )
        lo, hi = self.in_fmt.min_int, self.in_fmt.max_int
        for j, b in enumerate(bps):
            if not lo < b <= hi:
                raise ValueError(
                    f"breakpoint[{j}] = {b} outside ({lo}, {hi}] of {self.in_fmt}"
                )
            if j and b <= bps[j - 1]:
                raise ValueError(f"breakpoints must be strictly increasing: {bps}")
        for j, s in enumerate(slopes):
            if not SLOPE_MIN <= s <= SLOPE_MAX:
                raise ValueError(
                    f"slope[{j}] = {s} does not fit a signed {DSP_B_BITS}-bit "
                    f"DSP B port [{SLOPE_MIN}, {SLOPE_MAX}]"
                )
        for j, o in enumerate(offsets):
            if not ACC_MIN <= o <= ACC_MAX:
                raise ValueError(f"offset[{j}] = {o} does not fit {ACC_BITS} bits")
        edges = [lo, *bps, hi + 1]
        for j in range(n):
            for x in (edges[j], edges[j + 1] - 1):
                acc = slopes[j] * x + offsets[j]
                if not ACC_MIN <= acc <= ACC_MAX:
                    raise ValueError(
                        f"segment {j}: slope*x + offset = {acc} at x = {x} "
                        f"does not fit the {ACC_BITS}-bit accumulator"
                    )

    @property
    def segments(self) -> int:
        """Number of segments ``N``."""
        return len(self.slopes)

    @property
    def acc_frac(self) -> int:
        """Fraction bits of the accumulator: ``in_fmt.frac + slope_frac``."""
        return self.in_fmt.frac + self.slope_frac

    @property
    def acc_shift(self) -> int:
        """Requantization shift ``acc_frac - out_fmt.frac``."""
        return self.acc_frac - self.out_fmt.frac

    def to_json(self) -> dict:
        """A JSON-able dict (lists for the tuples, dicts for the formats)."""
        return {
            "in_fmt": self.in_fmt.to_json(),
            "out_fmt": self.out_fmt.to_json(),
            "slope_frac": self.slope_frac,
            "breakpoints": list(self.breakpoints),
            "slopes": list(self.slopes),
            "offsets": list(self.offsets),
        }

    @classmethod
    def from_json(cls, d: dict) -> "PWLTable":
        """Inverse of :meth:`to_json`."""
        return cls(
            in_fmt=QFormat.from_json(d["in_fmt"]),
            out_fmt=QFormat.from_json(d["out_fmt"]),
            slope_frac=int(d["slope_frac"]),
            breakpoints=tuple(int(v) for v in d["breakpoints"]),
            slopes=tuple(int(v) for v in d["slopes"]),
            offsets=tuple(int(v) for v in d["offsets"]),
        )


def pwl_eval(table: PWLTable, x: Any) -> tuple[Any, int]:
    """Evaluate a :class:`PWLTable` on input codes (vectorized).

    Implements exactly the rule in :class:`PWLTable`: segment index by
    ``np.searchsorted(breakpoints, x, side="right")`` (= number of breakpoints
    ``b`` with ``x >= b``), ``acc = slope*x + offset``, then
    :func:`requantize`.

    Parameters
    ----------
    table : PWLTable
    x : array_like of int
        Codes of ``table.in_fmt`` (``ValueError`` if out of its range).

    Returns
    -------
    y : int64 ndarray (numpy int64 for scalar input)
        Codes of ``table.out_fmt``.
    saturations : int
        Number of outputs clamped to ``out_fmt``.
    """
    xa = as_int64(x, "x")
    fmt = table.in_fmt
    if xa.size and (int(xa.min()) < fmt.min_int or int(xa.max()) > fmt.max_int):
        raise ValueError(f"pwl_eval: input codes outside {fmt}")
    return requantize(_pwl_acc(table, xa), table.acc_shift, table.out_fmt)


def _pwl_acc(table: PWLTable, xa: np.ndarray) -> np.ndarray:
    """``slopes[i]*x + offsets[i]`` of :func:`pwl_eval`, before requantize."""
    bp = np.asarray(table.breakpoints, dtype=np.int64)
    idx = np.searchsorted(bp, xa, side="right")
    slopes = np.asarray(table.slopes, dtype=np.int64)
    offsets = np.asarray(table.offsets, dtype=np.int64)
    return slopes[idx] * xa + offsets[idx]


#: :func:`pwl_lut` tabulates inputs of at most this many bits.
PWL_LUT_MAX_BITS = 16


def pwl_lut(table: PWLTable) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pwl_eval` on every input code, for lookup instead of search.

    Returns
    -------
    y : int64 ndarray, shape (2**in_fmt.width,)
        ``y[x - in_fmt.min_int]`` is the output code of input code ``x``.
    clamped : bool ndarray, same shape
        Whether that output was saturated (so ``pwl_eval(table, x)`` equals
        ``(y[x - min_int], count_nonzero(clamped[x - min_int]))``).

    Raises
    ------
    ValueError
        If ``in_fmt`` is wider than :data:`PWL_LUT_MAX_BITS`.
    """
    fmt = table.in_fmt
    if fmt.width > PWL_LUT_MAX_BITS:
        raise ValueError(f"pwl_lut: {fmt} is wider than {PWL_LUT_MAX_BITS} bits")
    codes = np.arange(fmt.min_int, fmt.max_int + 1, dtype=np.int64)
    r = round_shift(_pwl_acc(table, codes), table.acc_shift)
    out = table.out_fmt
    return np.clip(r, out.min_int, out.max_int), (r < out.min_int) | (r > out.max_int)

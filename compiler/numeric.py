r"""The numeric specification of convc: fixed-point formats, rounding, saturation,
accumulator limits and piecewise-linear (PWL) nonlinearities.

This module is the *one* place where an arithmetic rule is defined.  The
compiler, the bit-exact golden model, the cycle model and the HDL generator all
import it; none of them re-derives a rule.  Every function is vectorized over
numpy ``int64`` arrays and also accepts Python ints / numpy scalars (a scalar in
gives a numpy scalar out).

Number representation
---------------------
A value is stored as a two's-complement integer *code* ``q`` of ``width`` bits
with ``frac`` fraction bits (:class:`QFormat`)::

    value(q) = q * 2**(-frac)
    signed:   q in [-2**(width-1), 2**(width-1) - 1]
    unsigned: q in [0, 2**width - 1]

The project default is Q8.8: 16 bits (``DEFAULT_BITS``), 8 fraction bits, the
NeuFlow format.  ``frac`` may be any integer (negative: the LSB is worth more
than 1; larger than ``width``: all codes are small fractions).

Rounding -- the ONE rounding mode
---------------------------------
``ROUNDING = "round-half-up"``: round to nearest, ties toward +infinity::

    round(v) = floor(v + 1/2)          e.g. 2.5 -> 3, -2.5 -> -2, -2.6 -> -3

In integer form, dividing an integer ``a`` by ``2**s`` (``s > 0``) is::

    round_shift(a, s) = (a + (1 << (s - 1))) >> s        (arithmetic shift)

which is exactly what the hardware does: the constant ``1 << (s-1)`` is
preloaded into the DSP48E1 accumulator (C port / rounding constant) and the
result is taken ``s`` bits up (a wire shift).  ``s < 0`` is an exact left shift
``a << -s`` and ``s == 0`` is the identity.  The same rule is used for
quantizing real numbers (``QFormat.quantize``), for requantizing accumulators
(:func:`requantize`) and inside PWL evaluation (:func:`pwl_eval`).

Saturation
----------
Narrowing a value to a format clamps it to ``[fmt.min_int, fmt.max_int]``.
Saturation is never silent: every function that may saturate returns the
*number* of clamped elements next to the result, and callers (golden model,
compiler statistics) are expected to report it.

Accumulator
-----------
``ACC_BITS = 48`` is the width of the DSP48E1 P register (and of a cascade of
DSP48E1 slices via PCOUT/PCIN).  A convolution of a Q(f_in) activation with a
Q(f_w) weight accumulates products exactly, in fraction ``f_acc = f_in + f_w``::

    acc = round_shift(bias, f_bias - f_acc) + sum_k x_k * w_k      (integers)

(the bias alignment is an exact left shift in the usual case
``f_bias <= f_acc``; the products and the sum are always exact).
    out = requantize(acc, f_acc - f_out, out_fmt)
        = saturate(round_shift(acc, f_acc - f_out), out_fmt)

If ``acc`` leaves the signed 48-bit range the hardware wraps (:func:`wrap`);
the golden model counts such values with :func:`check_acc` and reports them as
overflow -- they are a compiler error, not a numeric mode.

Multiplier ports
----------------
The DSP48E1 multiplier is 25 x 18 bits (``DSP_A_BITS``, ``DSP_B_BITS``).  PWL
tables put the input code on the A port (so ``in_fmt.width <= 25``) and the
segment slope on the B port (signed 18 bits).

Piecewise-linear functions
--------------------------
A :class:`PWLTable` with ``N`` segments is evaluated on an input code ``x``
exactly as the hardware does (one DSP48E1)::

    i   = number of breakpoints b with x >= b            # 0 .. N-1
    acc = slopes[i] * x + offsets[i]                     # fraction in.frac + slope_frac
    y   = requantize(acc, in.frac + slope_frac - out.frac, out_fmt)

The tables themselves are fitted by :mod:`convc.compiler.pwl_fit`
(``fit_pwl``, the minimax fitter, its error measured on every input code;
``make_tanh`` / ``make_inv_sqrt``, the two nonlinearities of the project).

Range limits
------------
All integer arithmetic is done in numpy ``int64``.  Inputs must fit ``int64``
(Python ints that do not raise ``OverflowError``); :func:`round_shift` is exact
for every ``int64`` input and every ``s >= 0``, and raises ``OverflowError`` if a
left shift (``s < 0``) would not fit ``int64``.  Hardware-relevant values are
much narrower (accumulators are 48-bit, activations 16-bit).
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ROUNDING",
    "ACC_BITS",
    "DEFAULT_BITS",
    "PWL_LUT_MAX_BITS",
    "DSP_A_BITS",
    "DSP_B_BITS",
    "DSP_P_BITS",
    "signed_range",
    "QFormat",
    "round_shift",
    "saturate",
    "requantize",
    "check_acc",
    "wrap",
    "frac_for_range",
    "PWLTable",
    "pwl_eval",
    "pwl_lut",
    "a_port_bits",
]

#: The one rounding mode of the project (see module docstring).
ROUNDING = "round-half-up"
#: Accumulator width: the DSP48E1 P register.
ACC_BITS = 48
#: Default activation / weight width (Q8.8).
DEFAULT_BITS = 16
#: DSP48E1 multiplier A-port width (signed); PWL input codes go here.
DSP_A_BITS = 25
#: DSP48E1 multiplier B-port width (signed); PWL slopes go here.
DSP_B_BITS = 18
#: DSP48E1 P-register width: the accumulator (:data:`ACC_BITS`).
DSP_P_BITS = ACC_BITS

_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
def _as_int64(a: Any, name: str = "a") -> np.ndarray:
    """Convert integer input (array, numpy or Python scalar) to an int64 array.

    Floats are rejected (``TypeError``) rather than silently truncated; Python
    ints that do not fit int64 raise ``OverflowError``.
    """
    arr = np.asarray(a)
    kind = arr.dtype.kind
    if arr.dtype == np.int64:
        return arr
    if kind in "iub":
        if arr.dtype == np.uint64 and arr.size and int(arr.max()) > _INT64_MAX:
            raise OverflowError(f"{name}: value does not fit int64")
        return arr.astype(np.int64)
    if kind == "O":
        flat = arr.ravel()
        for v in flat:
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise TypeError(f"{name} must be integer, got {type(v).__name__}")
            if not (_INT64_MIN <= int(v) <= _INT64_MAX):
                raise OverflowError(f"{name}: value {int(v)} does not fit int64")
        return arr.astype(np.int64)
    raise TypeError(f"{name} must be an integer array/scalar, got dtype {arr.dtype}")


def _ret(arr: np.ndarray):
    """Return a numpy scalar for 0-d arrays, the array otherwise."""
    return arr[()] if arr.ndim == 0 else arr


def signed_range(bits: int) -> tuple[int, int]:
    """``(-2**(bits-1), 2**(bits-1) - 1)``: the codes a signed ``bits``-wide integer holds."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _round_half_up_float(v: float) -> int:
    """floor(v + 1/2) of a finite Python float, exactly (no double rounding)."""
    fl = math.floor(v)
    return int(fl) + (1 if v - fl >= 0.5 else 0)


# ----------------------------------------------------------------------------
# QFormat
# ----------------------------------------------------------------------------
_QSTR_RE = re.compile(r"^(U?)Q(?:(-?\d+)\.(-?\d+)|\((\d+),f(-?\d+)\))$")


@dataclass(frozen=True)
class QFormat:
    r"""A fixed-point format: ``width`` bits, ``frac`` fraction bits.

    Value of a code ``q``: ``q * 2**-frac``.  Signed formats are two's
    complement.

    Parameters
    ----------
    width : int
        Total number of bits including the sign bit, ``2 <= width <= 48``
        (48 = ``ACC_BITS``, the widest register of the datapath).
    frac : int
        Number of fraction bits; any integer (negative or larger than
        ``width`` are allowed).
    signed : bool, default True
        Two's complement if True, unsigned otherwise.

    Notes
    -----
    String form (``str(fmt)``, parsed back by :meth:`parse`):

    * signed, ``0 <= frac < width``: ``"Q{width-frac}.{frac}"`` -- integer
      bits *including* the sign bit, then fraction bits: ``Q8.8`` (16 bits),
      ``Q1.15``, ``Q2.14``.
    * unsigned, ``0 <= frac <= width``: ``"UQ{width-frac}.{frac}"``
      (``UQ0.16`` is a pure fraction).
    * anything else (negative ``frac``, or ``frac >= width`` for signed):
      ``"Q({width},f{frac})"`` / ``"UQ({width},f{frac})"``, e.g. ``Q(16,f18)``
      or ``Q(16,f-2)``.
    """

    width: int
    frac: int
    signed: bool = True

    def __post_init__(self) -> None:
        for name in ("width", "frac"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"QFormat.{name} must be an int, got {v!r}")
            object.__setattr__(self, name, int(v))
        if not isinstance(self.signed, (bool, np.bool_)):
            raise TypeError(f"QFormat.signed must be a bool, got {self.signed!r}")
        object.__setattr__(self, "signed", bool(self.signed))
        if not (2 <= self.width <= ACC_BITS):
            raise ValueError(
                f"QFormat.width must be in [2, {ACC_BITS}], got {self.width}"
            )

    # -- ranges ---------------------------------------------------------------
    @property
    def min_int(self) -> int:
        """Smallest code: ``-2**(width-1)`` (signed) or ``0`` (unsigned)."""
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        """Largest code: ``2**(width-1) - 1`` (signed) or ``2**width - 1``."""
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def scale(self) -> float:
        """Codes per unit: ``2.0**frac``."""
        return math.ldexp(1.0, self.frac)

    @property
    def lsb(self) -> float:
        """Value of one code step: ``2.0**-frac``."""
        return math.ldexp(1.0, -self.frac)

    @property
    def min_value(self) -> float:
        """Smallest representable value, ``min_int * lsb``."""
        return math.ldexp(float(self.min_int), -self.frac)

    @property
    def max_value(self) -> float:
        """Largest representable value, ``max_int * lsb``."""
        return math.ldexp(float(self.max_int), -self.frac)

    # -- text / json ------------------------------------------------------------
    def __str__(self) -> str:
        u = "" if self.signed else "U"
        hi = self.width - 1 if self.signed else self.width
        if 0 <= self.frac <= hi:
            return f"{u}Q{self.width - self.frac}.{self.frac}"
        return f"{u}Q({self.width},f{self.frac})"

    @classmethod
    def parse(cls, text: str) -> "QFormat":
        """Inverse of ``str``: ``"Q8.8"``, ``"UQ0.16"``, ``"Q(16,f18)"``.

        ``"Qm.n"`` always means ``width = m + n``, ``frac = n``.
        """
        m = _QSTR_RE.match(text.strip())
        if not m:
            raise ValueError(f"not a Q format string: {text!r}")
        signed = m.group(1) == ""
        if m.group(2) is not None:
            i, f = int(m.group(2)), int(m.group(3))
            return cls(i + f, f, signed)
        return cls(int(m.group(4)), int(m.group(5)), signed)

    def to_json(self) -> dict:
        """``{"width": w, "frac": f, "signed": s}``."""
        return {"width": self.width, "frac": self.frac, "signed": self.signed}

    @classmethod
    def from_json(cls, d: dict) -> "QFormat":
        """Inverse of :meth:`to_json`."""
        return cls(int(d["width"]), int(d["frac"]), bool(d.get("signed", True)))

    # -- conversion ---------------------------------------------------------------
    def quantize(self, x: Any) -> tuple[Any, int]:
        r"""Real values -> codes, rounding half up, then saturating.

        .. math:: q = \mathrm{clamp}(\lfloor x \cdot 2^{frac} + 1/2 \rfloor,
                  \mathrm{min\_int}, \mathrm{max\_int})

        Parameters
        ----------
        x : array_like of float (or int)
            Real values (converted to float64).  ``x * 2**frac`` is computed
            exactly (power-of-two scaling) and the rounding has no double-rounding error.
            ``+-inf`` saturates (and is counted); NaN raises ``ValueError``.

        Returns
        -------
        q : int64 ndarray (numpy int64 for scalar input)
        saturations : int
            Number of elements that were clamped.
        """
        v = np.asarray(x, dtype=np.float64)
        if np.isnan(v).any():
            raise ValueError("cannot quantize NaN")
        with np.errstate(over="ignore"):  # +-inf saturates below
            t = np.ldexp(v, self.frac)
        fl = np.floor(t)
        with np.errstate(invalid="ignore"):  # inf - inf for infinite inputs
            r = fl + ((t - fl) >= 0.5)
        r = np.where(np.isinf(t), t, r)
        lo, hi = float(self.min_int), float(self.max_int)  # exact: width <= 48
        count = int(np.count_nonzero((r < lo) | (r > hi)))
        q = np.clip(r, lo, hi).astype(np.int64)
        return _ret(q), count

    def to_float(self, q: Any):
        """Codes -> real values, ``q * 2**-frac`` as float64 (exact for
        ``|q| < 2**53``)."""
        qa = _as_int64(q, "q")
        return _ret(np.ldexp(qa.astype(np.float64), -self.frac))


# ----------------------------------------------------------------------------
# integer rules
# ----------------------------------------------------------------------------
def round_shift(a: Any, s: int):
    r"""Divide by ``2**s`` with round-half-up (``s > 0``), or multiply by
    ``2**-s`` exactly (``s < 0``).

    .. math::
        \mathrm{round\_shift}(a, s) =
        \begin{cases}
          \lfloor a / 2^s + 1/2 \rfloor = (a + 2^{s-1}) \gg s & s > 0 \\
          a & s = 0 \\
          a \cdot 2^{-s} = a \ll (-s) & s < 0
        \end{cases}

    Parameters
    ----------
    a : array_like of int
        Integers that fit int64.
    s : int
        Shift amount (a Python/numpy integer, not an array).

    Returns
    -------
    int64 ndarray (numpy int64 for scalar input)

    Raises
    ------
    OverflowError
        If ``s < 0`` and ``a << -s`` does not fit int64.

    Notes
    -----
    The hardware computes ``(a + (1 << (s-1))) >> s`` in a 48-bit
    accumulator.  This function computes the same value for *every* int64
    ``a`` without the risk of overflowing the addition, using the identity
    (``q = floor(a / 2**(s-1))``)::

        floor((a + 2**(s-1)) / 2**s) = floor((q + 1) / 2) = (q >> 1) + (q & 1)

    (write ``a = q*2**(s-1) + r`` with ``0 <= r < 2**(s-1)``; then
    ``(a + 2**(s-1)) / 2**s = (q+1)/2 + r/2**s`` and ``r/2**s < 1/2`` never
    carries past the next integer).  For ``s - 1 >= 63``, ``a >> 63`` already
    equals ``floor(a / 2**(s-1))`` for int64 ``a``.
    """
    s = operator.index(s)
    arr = _as_int64(a)
    if s == 0:
        return _ret(arr.copy())
    if s > 0:
        q = arr >> min(s - 1, 63)
        return _ret((q >> 1) + (q & 1))
    k = -s
    if k >= 64:
        if np.any(arr != 0):
            raise OverflowError(f"left shift by {k} does not fit int64")
        return _ret(arr.copy())
    out = arr << k
    if np.any((out >> k) != arr):
        raise OverflowError(f"left shift by {k} does not fit int64")
    return _ret(out)


def saturate(a: Any, fmt: QFormat) -> tuple[Any, int]:
    """Clamp codes to ``[fmt.min_int, fmt.max_int]`` and count the clamps.

    Parameters
    ----------
    a : array_like of int
    fmt : QFormat

    Returns
    -------
    clamped : int64 ndarray (numpy int64 for scalar input)
    count : int
        Number of elements outside the range (never silent).
    """
    arr = _as_int64(a)
    lo, hi = fmt.min_int, fmt.max_int
    count = int(np.count_nonzero((arr < lo) | (arr > hi)))
    return _ret(np.clip(arr, lo, hi)), count


def requantize(acc: Any, shift: int, fmt: QFormat) -> tuple[Any, int]:
    r"""Wide accumulator -> narrow format: round_shift, then saturate.

    .. math:: out = \mathrm{clamp}(\mathrm{round\_shift}(acc, shift))

    with ``shift = f_acc - f_out`` (fraction bits of the accumulator minus
    fraction bits of ``fmt``).

    Returns
    -------
    out : int64 ndarray (numpy int64 for scalar input)
    count : int
        Number of saturated elements.
    """
    return saturate(round_shift(acc, shift), fmt)


def check_acc(acc: Any, bits: int = ACC_BITS) -> int:
    """Number of values that do not fit a signed ``bits``-bit accumulator.

    The golden model reports a nonzero count as accumulator overflow.

    Parameters
    ----------
    acc : array_like of int
    bits : int, default ACC_BITS (48)
        ``2 <= bits <= 64``.
    """
    bits = operator.index(bits)
    if not 2 <= bits <= 64:
        raise ValueError(f"bits must be in [2, 64], got {bits}")
    arr = _as_int64(acc, "acc")
    lo, hi = signed_range(bits)
    return int(np.count_nonzero((arr < lo) | (arr > hi)))


def wrap(a: Any, bits: int = ACC_BITS):
    """Two's-complement wrap-around to ``bits`` bits (what a hardware register
    of that width does on overflow).

    ``wrap(a) = ((a + 2**(bits-1)) mod 2**bits) - 2**(bits-1)``.
    """
    bits = operator.index(bits)
    if not 2 <= bits <= 64:
        raise ValueError(f"bits must be in [2, 64], got {bits}")
    arr = _as_int64(a)
    k = 64 - bits  # sign-extend from bit (bits - 1): shift up, arithmetic down
    return _ret((arr << k) >> k)


def frac_for_range(max_abs: float, width: int, signed: bool = True) -> int:
    r"""Largest fraction-bit count ``f`` such that quantizing any value in
    ``[-max_abs, max_abs]`` to ``QFormat(width, f, signed)`` does not saturate.

    Quantization is monotone, so only the end points matter.  With
    round-half-up, ``max_abs * 2**f`` rounds *up* at a tie, so the positive
    side is the binding one:

    .. math::
        \lfloor m 2^f + 1/2 \rfloor \le 2^{w-1} - 1
        \iff m 2^f < 2^{w-1} - 1/2

    (the negative side, :math:`\lfloor -m 2^f + 1/2 \rfloor \ge -2^{w-1}
    \iff m 2^f \le 2^{w-1} + 1/2`, is looser: it has one more code).
    For unsigned formats the range is ``[0, max_abs]`` and the condition is
    :math:`m 2^f < 2^w - 1/2`.

    Parameters
    ----------
    max_abs : float
        Finite, ``>= 0``.
    width : int
    signed : bool

    Returns
    -------
    int
        May be negative (huge ranges) or larger than ``width`` (tiny ranges).
        For ``max_abs == 0`` every ``f`` works; the cap ``width - 1`` (signed,
        i.e. Q1.(w-1)) or ``width`` (unsigned, UQ0.w) is returned.
    """
    m = float(max_abs)
    if not math.isfinite(m) or m < 0:
        raise ValueError(f"max_abs must be finite and >= 0, got {max_abs!r}")
    width = operator.index(width)
    QFormat(width, 0, signed)  # validates width
    if m == 0.0:
        return width - 1 if signed else width
    limit = math.ldexp(1.0, width - 1 if signed else width) - 0.5  # exact
    f = math.floor(math.log2(limit) - math.log2(m))

    def ok(ff: int) -> bool:
        try:
            return math.ldexp(m, ff) < limit  # exact power-of-two scaling
        except OverflowError:
            return False

    while not ok(f):
        f -= 1
    while ok(f + 1):
        f += 1
    return f


# ----------------------------------------------------------------------------
# Piecewise-linear functions
# ----------------------------------------------------------------------------
_SLOPE_MIN, _SLOPE_MAX = signed_range(DSP_B_BITS)
_ACC_MIN, _ACC_MAX = signed_range(ACC_BITS)


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
            if not _SLOPE_MIN <= s <= _SLOPE_MAX:
                raise ValueError(
                    f"slope[{j}] = {s} does not fit a signed {DSP_B_BITS}-bit "
                    f"DSP B port [{_SLOPE_MIN}, {_SLOPE_MAX}]"
                )
        for j, o in enumerate(offsets):
            if not _ACC_MIN <= o <= _ACC_MAX:
                raise ValueError(f"offset[{j}] = {o} does not fit {ACC_BITS} bits")
        edges = [lo, *bps, hi + 1]
        for j in range(n):
            for x in (edges[j], edges[j + 1] - 1):
                acc = slopes[j] * x + offsets[j]
                if not _ACC_MIN <= acc <= _ACC_MAX:
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
    xa = _as_int64(x, "x")
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

r"""The numeric specification of convc: fixed-point formats, rounding, saturation
and accumulator limits.

This module and :mod:`convc.compiler.pwl_table` (the piecewise-linear (PWL)
nonlinearities, built on the rules here) are the *one* place where an arithmetic
rule is defined.  The compiler, the bit-exact golden model, the cycle model and
the HDL generator all import them; none of them re-derives a rule.  Every
function is vectorized over numpy ``int64`` arrays and also accepts Python ints /
numpy scalars (a scalar in gives a numpy scalar out).

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
(:func:`requantize`) and inside PWL evaluation
(:func:`~convc.compiler.pwl_table.pwl_eval`).

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
:mod:`convc.compiler.pwl_table`: a ``PWLTable`` of ``N`` segments is evaluated on
an input code ``x`` as the hardware does (one DSP48E1): ``slopes[i] * x +
offsets[i]`` of the segment ``i`` that holds ``x``, then :func:`requantize`.

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
    "as_int64",
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
def as_int64(a: Any, name: str = "a") -> np.ndarray:
    """Convert integer input (array, numpy or Python scalar) to an int64 array: how every
    rule of the spec (here and in :mod:`convc.compiler.pwl_table`) takes its integers.

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
        qa = as_int64(q, "q")
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
    arr = as_int64(a)
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
    arr = as_int64(a)
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
    arr = as_int64(acc, "acc")
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
    arr = as_int64(a)
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

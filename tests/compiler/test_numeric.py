"""Tests of convc.compiler.numeric, the one numeric spec of the project.

Reference implementations here use exact Python ints / fractions.Fraction, so
they are independent of the numpy code under test.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from convc.compiler import numeric as nm
from convc.compiler.numeric import (
    ACC_BITS,
    DEFAULT_BITS,
    ROUNDING,
    QFormat,
    check_acc,
    frac_for_range,
    requantize,
    round_shift,
    saturate,
    wrap,
)
from convc.compiler.pwl_table import PWLTable, pwl_eval, pwl_lut

SETTINGS = settings(max_examples=150, deadline=None)
Q88 = QFormat(16, 8)
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


# -- exact references --------------------------------------------------------------
def ref_round(v: Fraction) -> int:
    """Round half up: floor(v + 1/2)."""
    return math.floor(v + Fraction(1, 2))


def ref_round_shift(a: int, s: int) -> int:
    if s >= 0:
        return ref_round(Fraction(a, 2**s))
    return a * 2 ** (-s)


def ref_saturate(v: int, fmt: QFormat) -> tuple[int, int]:
    c = min(max(v, fmt.min_int), fmt.max_int)
    return c, int(c != v)


formats = st.builds(
    QFormat,
    width=st.integers(2, 48),
    frac=st.integers(-20, 60),
    signed=st.booleans(),
)


# -- constants ----------------------------------------------------------------------
def test_constants():
    assert ROUNDING == "round-half-up"
    assert ACC_BITS == 48
    assert DEFAULT_BITS == 16
    assert nm.DSP_A_BITS == 25 and nm.DSP_B_BITS == 18


# -- QFormat ----------------------------------------------------------------------------
def test_qformat_ranges_q88():
    assert (Q88.min_int, Q88.max_int) == (-32768, 32767)
    assert Q88.scale == 256.0 and Q88.lsb == 1 / 256
    assert Q88.min_value == -128.0
    assert Q88.max_value == 127.99609375
    u = QFormat(8, 8, signed=False)
    assert (u.min_int, u.max_int) == (0, 255)
    assert u.max_value == 255 / 256
    w = QFormat(48, 0)
    assert (w.min_int, w.max_int) == (-(2**47), 2**47 - 1)


@pytest.mark.parametrize("width", [1, 0, -3, 49, 64])
def test_qformat_bad_width(width):
    with pytest.raises(ValueError, match=str(width)):
        QFormat(width, 0)


def test_qformat_types_and_any_frac():
    with pytest.raises(TypeError):
        QFormat(16.0, 8)
    with pytest.raises(TypeError):
        QFormat(16, 8.5)
    QFormat(16, -7)  # negative frac is fine
    QFormat(16, 30)  # frac > width is fine
    f = QFormat(np.int64(16), np.int32(8))
    assert type(f.width) is int and f == Q88
    assert hash(f) == hash(Q88)
    with pytest.raises(Exception):
        Q88.width = 3  # frozen


@pytest.mark.parametrize(
    "fmt,text",
    [
        (QFormat(16, 8), "Q8.8"),
        (QFormat(16, 15), "Q1.15"),
        (QFormat(16, 14), "Q2.14"),
        (QFormat(16, 0), "Q16.0"),
        (QFormat(16, 8, False), "UQ8.8"),
        (QFormat(16, 16, False), "UQ0.16"),
        (QFormat(16, 16), "Q(16,f16)"),
        (QFormat(16, 18), "Q(16,f18)"),
        (QFormat(16, -2), "Q(16,f-2)"),
        (QFormat(12, -1, False), "UQ(12,f-1)"),
    ],
)
def test_qformat_str(fmt, text):
    assert str(fmt) == text
    assert QFormat.parse(text) == fmt


@given(formats)
@SETTINGS
def test_qformat_str_json_roundtrip(fmt):
    assert QFormat.parse(str(fmt)) == fmt
    assert QFormat.from_json(fmt.to_json()) == fmt


def test_qformat_parse_rejects():
    with pytest.raises(ValueError):
        QFormat.parse("Q8")


# -- quantize / to_float -------------------------------------------------------------
def test_quantize_ties_round_half_up():
    f = QFormat(16, 0)
    q, n = f.quantize([2.5, -2.5, 1.5, -1.5, 0.5, -0.5, 2.4999, -2.5001])
    assert q.tolist() == [3, -2, 2, -1, 1, 0, 2, -3]
    assert n == 0
    # the same ties in LSB terms of Q8.8
    q, _ = Q88.quantize(np.array([2.5, -2.5]) / 256)
    assert q.tolist() == [3, -2]


def test_quantize_extremes_and_saturation():
    q, n = Q88.quantize([Q88.max_value, Q88.min_value])
    assert q.tolist() == [32767, -32768] and n == 0
    # max + half an LSB rounds up to 32768: saturates; min - half LSB rounds to min
    q, n = Q88.quantize([Q88.max_value + Q88.lsb / 2, Q88.min_value - Q88.lsb / 2])
    assert q.tolist() == [32767, -32768] and n == 1
    q, n = Q88.quantize([1e9, -1e9, np.inf, -np.inf, 0.0])
    assert q.tolist() == [32767, -32768, 32767, -32768, 0] and n == 4
    assert q.dtype == np.int64
    with pytest.raises(ValueError):
        Q88.quantize([np.nan])


def test_quantize_scalar_in_scalar_out():
    q, n = Q88.quantize(1.0)
    assert q == 256 and isinstance(q, np.int64) and n == 0
    v = Q88.to_float(q)
    assert v == 1.0 and isinstance(v, np.float64)
    assert Q88.to_float([1, -1]).tolist() == [1 / 256, -1 / 256]


@given(
    fmt=formats,
    x=st.floats(allow_nan=False, allow_infinity=False, width=64),
)
@SETTINGS
def test_quantize_matches_exact_reference(fmt, x):
    q, n = fmt.quantize(np.array([x]))
    exact = ref_round(Fraction(x) * Fraction(2) ** fmt.frac)
    c, sat = ref_saturate(exact, fmt)
    assert int(q[0]) == c and n == sat


@given(
    fmt=st.builds(QFormat, width=st.integers(2, 48), frac=st.integers(-8, 40)),
    u=st.floats(0, 1),
)
@SETTINGS
def test_quantize_roundtrip_half_lsb(fmt, u):
    x = fmt.min_value + u * (fmt.max_value - fmt.min_value)
    q, n = fmt.quantize(x)
    assert n == 0
    assert abs(float(fmt.to_float(q)) - x) <= fmt.lsb / 2


# -- round_shift ---------------------------------------------------------------------
def test_round_shift_examples():
    a = np.array([5, -5, 6, -6, 7, -7, 0, 1, -1, 2, -2, 3, -3])
    # a / 2 : 2.5 -> 3, -2.5 -> -2, 3 -> 3, -3 -> -3, 3.5 -> 4, -3.5 -> -3, ...
    assert round_shift(a, 1).tolist() == [3, -2, 3, -3, 4, -3, 0, 1, 0, 1, -1, 2, -1]
    assert round_shift(a, 0).tolist() == a.tolist()
    assert round_shift(a, -3).tolist() == (a * 8).tolist()
    assert round_shift(10, 2) == 3  # 2.5 -> 3
    assert round_shift(-10, 2) == -2  # -2.5 -> -2
    assert round_shift(-11, 2) == -3  # -2.75 -> -3
    assert isinstance(round_shift(7, 1), np.int64)


def test_round_shift_is_hardware_formula():
    rng = np.random.default_rng(1)
    a = rng.integers(-(2**47), 2**47, size=10_000)
    for s in (1, 2, 7, 8, 16, 30):
        hw = (a + (1 << (s - 1))) >> s  # constant into the accumulator, shift
        assert np.array_equal(round_shift(a, s), hw)


def test_round_shift_extremes_and_errors():
    a = np.array([INT64_MIN, INT64_MAX, -1, 0, 1], dtype=np.int64)
    for s in (1, 2, 62, 63, 64, 65, 200):
        got = round_shift(a, s).tolist()
        assert got == [ref_round_shift(int(v), s) for v in a]
    with pytest.raises(OverflowError):
        round_shift(1 << 62, -1)
    with pytest.raises(OverflowError):
        round_shift(1, -64)
    assert round_shift(-1, -63) == INT64_MIN
    assert round_shift(0, -100) == 0
    with pytest.raises(TypeError):
        round_shift(np.array([1.5]), 1)
    with pytest.raises(OverflowError):
        round_shift(2**70, 1)
    assert round_shift([2**40, -(2**40)], 40).tolist() == [1, -1]


@given(a=st.integers(INT64_MIN, INT64_MAX), s=st.integers(0, 70))
@SETTINGS
def test_round_shift_property_right(a, s):
    assert int(round_shift(a, s)) == ref_round_shift(a, s)
    assert int(round_shift(np.array([a]), s)[0]) == ref_round_shift(a, s)


@given(a=st.integers(-(2**40), 2**40), s=st.integers(-22, -1))
@SETTINGS
def test_round_shift_property_left(a, s):
    assert int(round_shift(a, s)) == a * 2 ** (-s)


@given(
    acc=st.lists(st.integers(-(2**47), 2**47 - 1), min_size=1, max_size=20),
    shift=st.integers(-6, 40),
    fmt=st.builds(QFormat, width=st.integers(2, 24), frac=st.integers(-4, 20),
                  signed=st.booleans()),
)
@SETTINGS
def test_requantize_property(acc, shift, fmt):
    assume(shift >= 0 or all(abs(v) < 2**56 for v in acc))
    out, count = requantize(np.array(acc, dtype=np.int64), shift, fmt)
    exp, sat = zip(*(ref_saturate(ref_round_shift(v, shift), fmt) for v in acc))
    assert out.tolist() == list(exp)
    assert count == sum(sat)


# -- saturate / check_acc / wrap --------------------------------------------------------
def test_saturate_counts():
    out, n = saturate([40000, -40000, 5, 32767, -32768, 32768], Q88)
    assert out.tolist() == [32767, -32768, 5, 32767, -32768, 32767]
    assert n == 3
    out, n = saturate(-1, QFormat(8, 0, signed=False))
    assert out == 0 and n == 1
    out, n = saturate(np.zeros((2, 3), dtype=np.int64), Q88)
    assert out.shape == (2, 3) and n == 0


def test_check_acc():
    top, bot = 2**47 - 1, -(2**47)
    assert check_acc([top, bot, 0]) == 0
    assert check_acc([top + 1, bot - 1, 0, top]) == 2
    assert check_acc([127, -128, 128], bits=8) == 1
    assert check_acc([INT64_MAX, INT64_MIN], bits=64) == 0
    with pytest.raises(ValueError):
        check_acc([0], bits=65)


@given(a=st.integers(INT64_MIN, INT64_MAX), bits=st.integers(2, 64))
@SETTINGS
def test_wrap_property(a, bits):
    m = 1 << bits
    exp = ((a + (m >> 1)) % m) - (m >> 1)
    assert int(wrap(a, bits)) == exp
    assert check_acc(wrap(a, bits), bits) == 0


# -- frac_for_range ----------------------------------------------------------------------
def test_frac_for_range_examples():
    assert frac_for_range(1.0, 16) == 14  # Q2.14
    assert frac_for_range(Q88.max_value, 16) == 8  # exactly Q8.8
    assert frac_for_range(128.0, 16) == 7  # +128 does not fit Q8.8
    # tie: 32767.5 / 256 rounds half up to 32768 -> must drop a bit
    assert frac_for_range(32767.5 / 256, 16) == 7
    assert frac_for_range(32767.4 / 256, 16) == 8
    assert frac_for_range(0.0, 16) == 15
    assert frac_for_range(0.0, 16, signed=False) == 16
    assert frac_for_range(255.0, 8, signed=False) == 0
    assert frac_for_range(1e6, 16) < 0
    assert frac_for_range(1e-6, 16) > 16
    with pytest.raises(ValueError):
        frac_for_range(-1.0, 16)
    with pytest.raises(ValueError):
        frac_for_range(math.inf, 16)


@given(
    m=st.floats(1e-30, 1e30, allow_nan=False),
    width=st.integers(2, 48),
    signed=st.booleans(),
)
@SETTINGS
def test_frac_for_range_property(m, width, signed):
    f = frac_for_range(m, width, signed)
    pts = np.array([-m, m]) if signed else np.array([0.0, m])
    _, n = QFormat(width, f, signed).quantize(pts)
    assert n == 0, "saturates at max_abs"
    _, n1 = QFormat(width, f + 1, signed).quantize(pts)
    assert n1 > 0, "f + 1 would not saturate: f is not the largest"


# -- PWLTable / pwl_eval ---------------------------------------------------------------
SMALL_TABLE = dict(
    in_fmt=Q88,
    out_fmt=Q88,
    slope_frac=4,
    breakpoints=(-256, 0, 256),
    slopes=(0, 8, 16, 0),
    offsets=(-4096, 0, 0, 4096),
)


def small_table() -> PWLTable:
    return PWLTable(**SMALL_TABLE)


def test_pwl_table_basics_and_json():
    t = small_table()
    assert t.segments == 4 and t.acc_frac == 12 and t.acc_shift == 4
    assert PWLTable.from_json(t.to_json()) == t
    import json

    assert PWLTable.from_json(json.loads(json.dumps(t.to_json()))) == t
    t2 = PWLTable(Q88, Q88, 4, [-256, 0, 256], [0, 8, 16, 0], [np.int64(-4096), 0, 0, 4096])
    assert t2 == t and isinstance(t2.breakpoints, tuple)


@pytest.mark.parametrize(
    "kw",
    [
        dict(slopes=(0, 8, 1 << 17, 0)),  # slope does not fit 18 bits
        dict(slopes=(0, 8, -(1 << 17) - 1, 0)),
        dict(offsets=(0, 0, 0, 1 << 47)),  # offset does not fit 48 bits
        dict(breakpoints=(0, -256, 256)),  # not sorted
        dict(breakpoints=(-256, 0, 0)),  # not strictly increasing
        dict(breakpoints=(-32768, 0, 256)),  # empty first segment
        dict(breakpoints=(-256, 0, 40000)),  # outside in_fmt
        dict(breakpoints=(-256, 0)),  # wrong count
        dict(in_fmt=QFormat(26, 8)),  # A port is 25 bits
        dict(in_fmt=QFormat(25, 8, signed=False)),
        # accumulator overflow at the far end of the last segment
        dict(slopes=(0, 8, 16, 1 << 16), offsets=(0, 0, 0, (1 << 47) - (1 << 20))),
    ],
)
def test_pwl_table_validation(kw):
    base = dict(SMALL_TABLE, **kw)
    with pytest.raises(ValueError):
        PWLTable(**base)


def slow_pwl(table: PWLTable, x: int) -> tuple[int, int]:
    """The docstring pseudo-code, with Python ints and Fractions."""
    i = sum(1 for b in table.breakpoints if x >= b)
    acc = table.slopes[i] * x + table.offsets[i]
    shift = table.in_fmt.frac + table.slope_frac - table.out_fmt.frac
    return ref_saturate(ref_round_shift(acc, shift), table.out_fmt)


def test_pwl_eval_small_table():
    t = small_table()
    x = np.arange(-32768, 32768, dtype=np.int64)
    y, n = pwl_eval(t, x)
    assert y[x < -256].tolist() == [-256] * int((x < -256).sum())  # -4096/16
    assert y[x >= 256].tolist() == [256] * int((x >= 256).sum())
    assert n == 0
    assert pwl_eval(t, 128)[0] == 128 and isinstance(pwl_eval(t, 128)[0], np.int64)
    assert pwl_eval(t, -128)[0] == -64  # slope 1/2
    with pytest.raises(ValueError):
        pwl_eval(t, 32768)


@st.composite
def tables(draw):
    in_fmt = QFormat(draw(st.integers(4, 16)), draw(st.integers(-2, 12)),
                     draw(st.booleans()))
    out_fmt = QFormat(draw(st.integers(2, 16)), draw(st.integers(-2, 14)),
                      draw(st.booleans()))
    nseg = draw(st.integers(1, 6))
    bps = sorted(draw(st.sets(st.integers(in_fmt.min_int + 1, in_fmt.max_int),
                              min_size=nseg - 1, max_size=nseg - 1)))
    nseg = len(bps) + 1
    slopes = draw(st.lists(st.integers(-(2**17), 2**17 - 1), min_size=nseg,
                           max_size=nseg))
    offsets = draw(st.lists(st.integers(-(2**40), 2**40), min_size=nseg,
                            max_size=nseg))
    return PWLTable(in_fmt, out_fmt, draw(st.integers(-4, 20)), tuple(bps),
                    tuple(slopes), tuple(offsets))


@given(t=tables(), data=st.data())
@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
def test_pwl_eval_matches_pseudocode(t, data):
    xs = data.draw(st.lists(st.integers(t.in_fmt.min_int, t.in_fmt.max_int),
                            min_size=1, max_size=30))
    xs += [t.in_fmt.min_int, t.in_fmt.max_int, *t.breakpoints,
           *[b - 1 for b in t.breakpoints]]
    y, n = pwl_eval(t, np.array(xs, dtype=np.int64))
    ref = [slow_pwl(t, x) for x in xs]
    assert y.tolist() == [r[0] for r in ref]
    assert n == sum(r[1] for r in ref)


@given(t=tables())
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
def test_pwl_lut_equals_pwl_eval(t):
    """The lookup table of every input code gives pwl_eval's outputs and, code
    by code, its clamp counts (random tables saturate often)."""
    y, clamped = pwl_lut(t)
    codes = np.arange(t.in_fmt.min_int, t.in_fmt.max_int + 1, dtype=np.int64)
    ref, n = pwl_eval(t, codes)
    assert y.tolist() == ref.tolist()
    assert int(clamped.sum()) == n
    for x in codes[::max(1, codes.size // 25)]:
        assert int(clamped[x - t.in_fmt.min_int]) == pwl_eval(t, x)[1]


def test_pwl_lut_refuses_wide_inputs():
    t = PWLTable(QFormat(20, 8), QFormat(16, 8), 0, (), (1,), (0,))
    with pytest.raises(ValueError, match="wider than 16 bits"):
        pwl_lut(t)

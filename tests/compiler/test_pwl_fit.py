"""Tests of convc.compiler.pwl_fit, the minimax piecewise-linear fitter: its private
helpers against brute force, the honesty of the error it reports (measured on every
input code), and the tanh / 1/sqrt tables of the project."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from convc.compiler import pwl_fit as pf
from convc.compiler.minimax_line import minimax_line, stab_line
from convc.compiler.numeric import QFormat
from convc.compiler.pwl_table import PWLTable, pwl_eval
from convc.compiler.pwl_fit import fit_pwl, make_inv_sqrt, make_tanh

Q88 = QFormat(16, 8)
Q214 = QFormat(16, 14)


# -- fitting helpers (private, the core of the fitter) ------------------------------------
@given(
    ys=st.lists(st.floats(-10, 10), min_size=3, max_size=25),
)
@settings(max_examples=60, deadline=None)
def test_minimax_line_is_optimal(ys):
    y = np.array(ys)
    x = np.arange(len(y), dtype=float)
    a, b, e = minimax_line(x, y)
    assert e == pytest.approx(float(np.max(np.abs(y - a * x - b))), abs=1e-12)
    # brute force: best half-width over a fine slope grid never beats it
    slopes = np.linspace(-25, 25, 20001)[:, None]
    r = y[None, :] - slopes * x[None, :]
    best = float(((r.max(1) - r.min(1)) / 2).min())
    assert e <= best + 1e-9


@given(
    m=st.lists(st.floats(-100, 100), min_size=3, max_size=20),
    w=st.lists(st.floats(0.01, 5), min_size=20, max_size=20),
)
@settings(max_examples=60, deadline=None)
def test_stab_line_is_optimal(m, w):
    mid = np.array(m)
    wid = np.array(w[: len(m)])
    x = np.arange(len(m), dtype=float)
    a, b, r, ok = stab_line(x, mid - wid, mid + wid)
    assert r == pytest.approx(float(np.max(np.abs(a * x + b - mid) / wid)), rel=1e-9)
    # brute force over slopes: for a fixed slope with residuals q = mid - a*x,
    # some b gives |q_j - b| <= t*wid_j for all j iff t >= (q_i - q_k) /
    # (wid_i + wid_k) for every pair, so the best level is the max over pairs
    slopes = np.linspace(-250, 250, 20001)[:, None, None]
    q = mid[None, :, None] - slopes * x[None, :, None]
    qt = np.swapaxes(q, 1, 2)
    lev = ((q - qt) / (wid[:, None] + wid[None, :])[None]).max(axis=(1, 2))
    assert r <= float(lev.min()) * (1 + 1e-9) + 1e-9
    assert ok == (r <= 1.0)


def test_acc_bounds_outside_48_bits_is_infeasible():
    # Regression: 550 and 936 in UQ(7,f-3) need output codes 69 and 117, i.e.
    # accumulators >= 68.5 * 2**41 > 2**47 with shift 41 (an explicit, too
    # large slope_frac).  A two-sided clip to 48 bits turned those empty
    # intervals into [ACC_MAX, ACC_MAX] and reported them feasible.
    out = QFormat(7, -3, signed=False)
    assert pf._acc_bounds(np.array([550.0, 936.0]), 2.0, out, 41) is None
    # when the admissible range straddles the limit it is clipped, not lost
    # (codes -130..-120 and 120..130, shift 40: 130.5 * 2**40 > 2**47)
    lo, hi = pf._acc_bounds(np.array([-1000.0, 1000.0]), 40.0, QFormat(12, -3), 40)
    assert lo.tolist() == [-(2**47), 119.5 * 2**40]
    assert hi.tolist() == [-119.5 * 2**40 - 1, 2**47 - 1]
    t, e = fit_pwl(lambda x: 2 * (x * 16) ** 2 + 4 * (x * 16) ** 3, 5 / 16, 6 / 16, 1,
                   QFormat(3, 4, signed=False), out, slope_frac=34)
    assert e == measured_error(t, lambda x: 2 * (x * 16) ** 2 + 4 * (x * 16) ** 3,
                               5 / 16, 6 / 16)


def test_greedy_is_optimal_against_dp():
    rng = np.random.default_rng(5)
    for trial in range(12):
        n = int(rng.integers(6, 16))
        nseg = int(rng.integers(1, 5))
        x = np.arange(n, dtype=float)
        y = rng.normal(size=n).cumsum() if trial % 2 else np.tanh((x - n / 2) / 3)
        err = {(s, t): minimax_line(x[s:t], y[s:t])[2]
               for s in range(n) for t in range(s + 1, n + 1)}
        memo: dict = {}

        def dp(s, k):
            if s == n:
                return 0.0
            if k == 0:
                return math.inf
            if (s, k) not in memo:
                memo[s, k] = min(max(err[s, t], dp(t, k - 1)) for t in range(s + 1, n + 1))
            return memo[s, k]

        opt = dp(0, nseg)
        ok = lambda eps: pf._greedy(lambda s, t: err[s, t] <= eps, n, nseg)
        assert ok(opt * (1 + 1e-12) + 1e-15) is not None
        if opt > 1e-9:
            assert ok(opt * (1 - 1e-6)) is None


# -- fit_pwl ------------------------------------------------------------------------------
def measured_error(table, func, lo, hi):
    """Independent recomputation of the max error over every code in [lo, hi]."""
    f = table.in_fmt
    c0 = max(math.ceil(lo * f.scale), f.min_int)
    c1 = min(math.floor(hi * f.scale), f.max_int)
    codes = np.arange(c0, c1 + 1)
    y, _ = pwl_eval(table, codes)
    return float(np.max(np.abs(y * table.out_fmt.lsb - func(codes * f.lsb))))


def test_fit_exact_linear_and_padding():
    # 0.5*x + 0.25 is exactly representable with one more output fraction bit
    f = lambda x: 0.5 * x + 0.25
    t, e = fit_pwl(f, -128, 128, 4, Q88, QFormat(18, 9))
    assert e == 0.0
    assert t.segments == 4  # padded to exactly the requested count
    assert measured_error(t, f, -128, 128) == 0.0
    # with the same output format the half-LSB values must round: 0.5 LSB
    t, e = fit_pwl(f, -128, 128, 1, Q88, Q88)
    assert e == Q88.lsb / 2


@pytest.mark.parametrize(
    "func,lo,hi,n,fi,fo",
    [
        (lambda x: x * x, -4, 4, 8, QFormat(16, 12), QFormat(16, 10)),
        (np.exp, -8, 4, 16, QFormat(16, 12), QFormat(20, 8)),
        (np.sin, -4, 4, 6, QFormat(12, 8), QFormat(10, 8)),
        (lambda x: np.where(x < 0, -1.0, 1.0), -2, 2, 2, Q88, Q88),
        (lambda x: 200 * np.tanh(x), -128, 128, 8, Q88, Q88),  # output saturates
        (np.sqrt, 0, 255, 8, QFormat(16, 8, False), QFormat(16, 11)),
        (lambda x: 1e-3 * x, -1e6, 1e6, 4, QFormat(16, -5), QFormat(16, 2)),
    ],
)
def test_fit_error_is_honest(func, lo, hi, n, fi, fo):
    t, e = fit_pwl(func, lo, hi, n, fi, fo)
    assert t.segments == n
    assert e == measured_error(t, func, lo, hi)
    assert PWLTable.from_json(t.to_json()) == t


def test_fit_respects_explicit_slope_frac():
    t, e = fit_pwl(np.tanh, -8, 8, 8, Q88, Q214, slope_frac=12)
    assert t.slope_frac == 12
    assert e == measured_error(t, np.tanh, -8, 8)
    # 30 slope fraction bits leave only tiny slopes (|a| < 2**-13): the fitter
    # still returns the best table under that constraint, honestly measured
    t, e = fit_pwl(np.tanh, -8, 8, 8, Q88, Q214, slope_frac=30)
    assert all(abs(s) < 2**17 for s in t.slopes)
    assert e == measured_error(t, np.tanh, -8, 8) and e > 0.1


def test_fit_argument_errors():
    with pytest.raises(ValueError):
        fit_pwl(np.tanh, 1, -1, 2, Q88, Q88)
    with pytest.raises(ValueError):
        fit_pwl(np.tanh, 0, 2 / 256, 4, Q88, Q88)  # 3 codes, 4 segments
    with pytest.raises(ValueError), np.errstate(divide="ignore"):
        fit_pwl(lambda x: 1 / np.sqrt(x), 0, 1, 4, Q88, Q88)  # inf at 0
    with pytest.raises(ValueError):
        fit_pwl(np.tanh, -1, 1, 4, QFormat(26, 8), Q88)
    with pytest.raises(ValueError):
        make_inv_sqrt(4, Q88, Q88, 0.0, 1.0)


@given(
    c=st.lists(st.floats(-2, 2), min_size=3, max_size=3),
    n=st.integers(1, 5),
    fi=st.integers(2, 6),
    fo=st.integers(2, 10),
)
@settings(max_examples=25, deadline=None)
# regression: a flat function on a coarse output grid admits very steep real
# lines (the first one found had slope 2**18, outside the 18-bit B port); only
# integer slopes next to it were tried, so the fitter "failed" at every error
# target up to 8192 and returned an error of 0.53125 instead of 0.03125
@example(c=[1.0, 0.015625, 0.0], n=1, fi=2, fo=2)
def test_fit_random_cubics_honest(c, n, fi, fo):
    func = lambda x: c[0] + c[1] * x + c[2] * x**3
    in_fmt, out_fmt = QFormat(10, fi), QFormat(16, fo)
    t, e = fit_pwl(func, -2, 2, n, in_fmt, out_fmt)
    assert e == measured_error(t, func, -2, 2)
    # never worse than the best single line plus rounding (n >= 1 segments)
    codes = np.arange(math.ceil(-2 * 2**fi), math.floor(2 * 2**fi) + 1)
    one = minimax_line(codes.astype(float), func(codes / 2**fi))[2]
    assert e <= one + out_fmt.lsb * (1 + 1 / 32) + 1e-12


def test_fit_flat_function_coarse_output_is_optimal():
    # Regression: on a coarse output grid a nearly flat function admits real
    # lines far steeper than any 18-bit slope (the first one the fitter found
    # had slope 2**18); the integer slopes next to it were all out of range,
    # so every error target looked infeasible.  The candidates are now taken
    # next to the slope clamped to the B-port range.
    f = lambda x: 1 + 0.015625 * x
    t, e = fit_pwl(f, -2, 2, 1, QFormat(10, 2), QFormat(16, 2))
    assert e == 0.03125  # output code 4 (1.0) everywhere: the optimum
    assert e == measured_error(t, f, -2, 2)
    # two codes, 2-bit output: the exact line 0 -> 0, 1 -> 1 (was 1.0 off)
    g = lambda x: x**3
    fmt_in, fmt_out = QFormat(3, 0, signed=False), QFormat(2, 0, signed=False)
    t, e = fit_pwl(g, 0, 1, 1, fmt_in, fmt_out)
    assert e == 0.0 and pwl_eval(t, np.array([0, 1]))[0].tolist() == [0, 1]


# -- tanh / inv_sqrt --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tanh_tables():
    out = {}
    for nseg, fo in [(8, Q88), (16, Q88), (8, Q214), (16, Q214)]:
        t0 = time.perf_counter()
        table, err = make_tanh(nseg, Q88, fo)
        out[nseg, str(fo)] = (table, err, time.perf_counter() - t0)
    return out


@pytest.mark.parametrize("nseg,fo", [(8, "Q8.8"), (16, "Q8.8"), (8, "Q2.14"), (16, "Q2.14")])
def test_tanh_tables_honest(tanh_tables, nseg, fo):
    table, err, dt = tanh_tables[nseg, fo]
    print(f"\ntanh {nseg} segments, Q8.8 -> {fo}: max error {err:.6f} "
          f"= {err * 256:.3f} * 2**-8  (fit {dt:.2f} s, slope_frac {table.slope_frac})")
    assert table.segments == nseg
    # every one of the 65,536 input codes
    assert err == measured_error(table, np.tanh, Q88.min_value, Q88.max_value)
    assert dt < 5.0  # typically ~0.3 s
    # odd function: the table is close to odd, ends flat at -1 / +1
    y, _ = pwl_eval(table, np.array([-32768, 32767]))
    assert abs(y[0] * table.out_fmt.lsb + 1) <= err
    assert abs(y[1] * table.out_fmt.lsb - 1) <= err


def test_tanh_16_segments_q214_within_2m8(tanh_tables):
    table, err, _ = tanh_tables[16, "Q2.14"]
    assert err <= 2**-8


@pytest.mark.xfail(
    strict=True,
    reason="16-segment tanh Q8.8 -> Q8.8 measures 0.004288 (1.098 * 2**-8): "
    "the half-LSB output rounding of Q8.8 leaves too little for 16 segments",
)
def test_tanh_16_segments_q88_within_2m8(tanh_tables):
    table, err, _ = tanh_tables[16, "Q8.8"]
    assert err <= 2**-8


def test_tanh_achieved_figures_do_not_regress(tanh_tables):
    # the measured values at the time of writing (+0.5 %); see the report
    assert tanh_tables[8, "Q8.8"][1] <= 0.01463 * 1.005
    assert tanh_tables[16, "Q8.8"][1] <= 0.004289 * 1.005
    assert tanh_tables[8, "Q2.14"][1] <= 0.013664 * 1.005
    assert tanh_tables[16, "Q2.14"][1] <= 0.003064 * 1.005


def test_inv_sqrt():
    out_fmt = QFormat(16, 12)
    table, err = make_inv_sqrt(16, Q88, out_fmt, 1 / 16, 64)
    print(f"\n1/sqrt 16 segments on [1/16, 64], Q8.8 -> Q4.12: max error {err:.6f}")
    f = lambda x: 1 / np.sqrt(x)
    assert err == measured_error(table, f, 1 / 16, 64)
    assert err < 0.05

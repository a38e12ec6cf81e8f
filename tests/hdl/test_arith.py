"""hdl/arith.py against the numeric spec (convc.compiler.numeric), in Amaranth simulation:
round_shift / saturate / requantize with constant and run-time shifts, on edge cases
(ties, extremes, shifts beyond the width, negative shifts) and random values; the
DSP-style multiply-add; parameter checks."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from convc.compiler import numeric
from convc.compiler.numeric import QFormat
from convc.hdl import arith


def _values(width: int, n_random: int, seed: int) -> list[int]:
    """Edge cases of a signed ``width``-bit range (extremes, 0, +-1, ties of every
    shift, both signs) plus random values."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    vals = {lo, lo + 1, hi, hi - 1, 0, 1, -1, 2, -2, 3, -3}
    for s in range(1, width):
        half = 1 << (s - 1)
        for k in (-3, -2, -1, 0, 1, 2, 5):
            for d in (-1, 0, 1):
                vals.add(k * (1 << s) + half + d)       # ties (d=0) and neighbours
                vals.add(-(k * (1 << s) + half + d))
        vals.add(hi - half)
        vals.add(lo + half)
    rng = random.Random(seed)
    vals.update(rng.randint(lo, hi) for _ in range(n_random))
    return sorted(v for v in vals if lo <= v <= hi)


def _run_comb(m, bench, clocked=False):
    sim = Simulator(m)
    if clocked:
        sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def _run_clocked(m, bench):
    _run_comb(m, bench, clocked=True)


def _model_requantize(v: int, s: int, width: int) -> int:
    """numeric.requantize; where a huge left shift overflows int64 (numeric raises),
    the exact result saturates to the sign's end of the range."""
    try:
        return int(numeric.requantize(v, s, QFormat(width, 0))[0])
    except OverflowError:
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        return 0 if v == 0 else (hi if v > 0 else lo)


def _model_flag(v: int, s: int, width: int) -> int:
    """numeric.requantize's saturation flag (1 where a huge left shift overflows int64)."""
    try:
        return int(numeric.requantize(v, s, QFormat(width, 0))[1])
    except OverflowError:
        return 1


def _sweep(m, shift, value, cases, check) -> list:
    """Simulate the combinational ``m``: ``shift`` set to each ``sh`` and ``value`` to each
    ``x`` of ``cases`` [(sh, values)]; returns the errors, the results of
    ``check(ctx, x, sh)`` that are not None."""
    errors = []

    async def bench(ctx):
        for sh, vals in cases:
            ctx.set(shift, sh)
            for x in vals:
                ctx.set(value, x)
                e = check(ctx, x, sh)
                if e is not None:
                    errors.append(e)

    _run_comb(m, bench)
    return errors


CONST_SHIFTS = list(range(-6, 0)) + [0] + list(range(1, 24))


def test_round_shift_and_requantize_constant_shift():
    width, out_w = 20, 9
    m = Module()
    v = Signal(signed(width))
    rs = {s: arith.round_shift_hdl(m, v, s) for s in CONST_SHIFTS}
    rq = {}
    flags = {}
    for s in CONST_SHIFTS:
        flags[s] = Signal(name=f"flag_{s + 10}")
        rq[s] = arith.requantize_hdl(m, v, s, out_w, flag=flags[s])
    sat = arith.saturate_hdl(m, v, out_w)
    vals = _values(width, 300, seed=1)
    errors = []

    async def bench(ctx):
        for x in vals:
            ctx.set(v, x)
            for s in CONST_SHIFTS:
                want = int(numeric.round_shift(x, s))
                got = ctx.get(rs[s])
                if got != want:
                    errors.append(("round_shift", x, s, got, want))
                want_q, n_sat = numeric.requantize(x, s, QFormat(out_w, 0))
                if ctx.get(rq[s]) != want_q or ctx.get(flags[s]) != n_sat:
                    errors.append(("requantize", x, s, ctx.get(rq[s]), int(want_q)))
            want_s, _ = numeric.saturate(x, QFormat(out_w, 0))
            if ctx.get(sat) != want_s:
                errors.append(("saturate", x, ctx.get(sat), int(want_s)))

    _run_comb(m, bench)
    assert not errors, errors[:10]


def test_round_shift_output_widths_are_tight_enough():
    """The declared result shapes hold every result (checked above) and are not
    gratuitously wide."""
    m = Module()
    m._MustUse__silence = True  # only shapes are checked: never elaborated
    v = Signal(signed(16))
    assert len(arith.round_shift_hdl(m, v, 1)) == 16
    assert len(arith.round_shift_hdl(m, v, 8)) == 9
    assert len(arith.round_shift_hdl(m, v, 40)) == 2
    assert len(arith.round_shift_hdl(m, v, 0)) == 16
    assert len(arith.round_shift_hdl(m, v, -3)) == 19
    assert len(arith.round_shift_var_hdl(m, v, Signal(signed(8)), max_left=4)) == 20


@pytest.mark.parametrize("shift_shape", [signed(7), 5], ids=["signed", "unsigned"])
def test_round_shift_runtime_shift(shift_shape):
    width, max_left = 18, 5
    m = Module()
    v = Signal(signed(width))
    s = Signal(shift_shape)
    out = arith.round_shift_var_hdl(m, v, s, max_left=max_left)
    shifts = [x for x in range(-max_left, 40) if s.shape().signed or x >= 0]
    shifts = [x for x in shifts if -(1 << (len(s) - 1)) <= x < (1 << (len(s) - (1 if s.shape().signed else 0)))]
    vals = _values(width, 150, seed=2)

    def check(ctx, x, sh):
        want = int(numeric.round_shift(x, sh))
        got = ctx.get(out)
        return (x, sh, got, want) if got != want else None

    errors = _sweep(m, s, v, [(sh, vals) for sh in shifts], check)
    assert not errors, errors[:10]


def test_round_shift_runtime_clamps_large_left_shifts():
    m = Module()
    v = Signal(signed(8))
    s = Signal(signed(6))
    out = arith.round_shift_var_hdl(m, v, s, max_left=3)

    async def bench(ctx):
        ctx.set(v, 5)
        ctx.set(s, -7)
        assert ctx.get(out) == 5 << 3  # clamped to max_left (documented)

    _run_comb(m, bench)


def test_requantize_runtime_shift_exact_for_every_shift():
    """48-bit accumulator -> 16 bits with an 8-bit signed shift (the acc_shift field):
    every shift value -128..127 is exact (huge left shifts saturate)."""
    acc_w, out_w = 48, 16
    m = Module()
    acc = Signal(signed(acc_w))
    s = Signal(signed(8))
    flag = Signal()
    out = arith.requantize_var_hdl(m, acc, s, out_w, flag=flag)
    # every shift on a few values, a wider value set on the shifts that matter
    few = [0, 1, -1, 2, -3, 1 << 20, -(1 << 33) + 5, (1 << 47) - 1, -(1 << 47)]
    many = _values(acc_w, 0, seed=3)[::9] + [(1 << 47) - 1, -(1 << 47), 1 << 30, -(1 << 30) - 1]
    cases = [(sh, few) for sh in range(-128, 128)]
    cases += [(sh, many) for sh in range(-17, 50)]

    def check(ctx, x, sh):
        want = _model_requantize(x, sh, out_w)
        got = ctx.get(out)
        if got != want or ctx.get(flag) != _model_flag(x, sh, out_w):
            return (x, sh, got, want)

    errors = _sweep(m, s, acc, cases, check)
    assert not errors, errors[:10]


@pytest.mark.parametrize("acc_shape, width, shift_shape", [
    (signed(9), 4, signed(5)), (signed(9), 4, 4), (8, 3, signed(6)), (signed(7), 6, signed(3))])
def test_requantize_runtime_shift_exhaustive_small(acc_shape, width, shift_shape):
    """Every accumulator value against every shift the signal can hold, on small widths
    (signed and unsigned sums and shifts): value and saturation flag as the spec's."""
    m = Module()
    acc, s, flag = Signal(acc_shape), Signal(shift_shape), Signal()
    out = arith.requantize_var_hdl(m, acc, s, width, flag=flag)
    shifts = (range(-(1 << (len(s) - 1)), 1 << (len(s) - 1)) if s.shape().signed
              else range(1 << len(s)))
    values = (range(-(1 << (len(acc) - 1)), 1 << (len(acc) - 1)) if acc.shape().signed
              else range(1 << len(acc)))

    def check(ctx, x, sh):
        want = _model_requantize(x, sh, width)
        if ctx.get(out) != want or ctx.get(flag) != _model_flag(x, sh, width):
            return (x, sh, ctx.get(out), want)

    errors = _sweep(m, s, acc, [(sh, values) for sh in shifts], check)
    assert not errors, errors[:10]


def test_requantize_runtime_shift_and_limits_exhaustive_small():
    """Run-time saturation limits (the PWL unit's table width): every 9-bit value, every
    5-bit signed shift, several limit pairs within 5 bits, against clamp(round_shift)."""
    m = Module()
    acc, s, flag = Signal(signed(9)), Signal(signed(5)), Signal()
    lo, hi = Signal(signed(5)), Signal(signed(5))
    out = arith.requantize_var_hdl(m, acc, s, 5, lo=lo, hi=hi, flag=flag)
    errors = []

    async def bench(ctx):
        for lim_lo, lim_hi in [(-16, 15), (-4, 3), (-1, 0), (0, 0), (2, 9)]:
            ctx.set(lo, lim_lo)
            ctx.set(hi, lim_hi)
            for sh in range(-16, 16):
                ctx.set(s, sh)
                for x in range(-256, 256):
                    ctx.set(acc, x)
                    r = int(numeric.round_shift(x, sh))
                    want = min(max(r, lim_lo), lim_hi)
                    if ctx.get(out) != want or ctx.get(flag) != int(want != r):
                        errors.append((lim_lo, lim_hi, x, sh, ctx.get(out), want))

    _run_comb(m, bench)
    assert not errors, errors[:10]


def test_registered_variants_and_enable():
    m = Module()
    v = Signal(signed(12))
    en = Signal()
    q = arith.requantize_hdl(m, v, 3, 6, domain="sync", en=en)
    d2 = arith.delay(m, v, 2, en=en)
    assert arith.delay(m, v, 0) is v

    async def bench(ctx):
        ctx.set(v, 100)
        ctx.set(en, 1)
        await ctx.tick()
        assert ctx.get(q) == int(numeric.requantize(100, 3, QFormat(6, 0))[0])
        ctx.set(v, -37)
        ctx.set(en, 0)
        await ctx.tick()  # hold
        assert ctx.get(q) == 13 and ctx.get(d2) == 0
        ctx.set(en, 1)
        await ctx.tick()
        assert ctx.get(q) == int(numeric.round_shift(-37, 3)) and ctx.get(d2) == 100
        await ctx.tick()
        assert ctx.get(d2) == -37

    _run_clocked(m, bench)


def test_mul_add_dsp_pipeline():
    """P = wrap48(a*b + c) two enabled cycles after the operands, all widths at the
    25 x 18 limits."""
    m = Module()
    a = Signal(signed(25))
    b = Signal(signed(18))
    c = Signal(signed(48))
    en = Signal()
    p = arith.mul_add_hdl(m, a, b, c, en=en)
    rng = random.Random(4)
    ops = [((1 << 24) - 1, (1 << 17) - 1, (1 << 47) - 1), (-(1 << 24), -(1 << 17), 0),
           (-(1 << 24), -(1 << 17), (1 << 47) - 1), (0, 0, -(1 << 47))]
    ops += [(rng.randint(-(1 << 24), (1 << 24) - 1), rng.randint(-(1 << 17), (1 << 17) - 1),
             rng.randint(-(1 << 47), (1 << 47) - 1)) for _ in range(200)]
    errors = []

    async def bench(ctx):
        pending = []  # operands in flight, oldest first
        k = 0
        for _ in range(600):
            e = rng.random() < 0.7
            if k < len(ops):
                ctx.set(a, ops[k][0]); ctx.set(b, ops[k][1]); ctx.set(c, ops[k][2])
            ctx.set(en, e)
            await ctx.tick()
            if e:
                if k < len(ops):
                    pending.append(ops[k])
                    k += 1
                else:
                    pending.append(None)
                if len(pending) > 2:
                    pending.pop(0)
                if len(pending) == 2 and pending[0] is not None:
                    x, y, z = pending[0]
                    want = int(numeric.wrap(np.int64(x) * y + z))
                    if ctx.get(p) != want:
                        errors.append((x, y, z, ctx.get(p), want))

    _run_clocked(m, bench)
    assert not errors, errors[:5]


def test_parameter_checks_name_the_value():
    m = Module()
    m._MustUse__silence = True  # never elaborated
    v = Signal(signed(8))
    with pytest.raises(ValueError, match="width=1"):
        arith.saturate_hdl(m, v, 1)
    with pytest.raises(TypeError, match="2.5"):
        arith.round_shift_hdl(m, v, 2.5)
    with pytest.raises(ValueError, match="max_left=-1"):
        arith.round_shift_var_hdl(m, v, Signal(4), max_left=-1)
    with pytest.raises(ValueError, match="26 x 18"):
        arith.mul_add_hdl(m, Signal(signed(26)), Signal(signed(18)), 0)
    with pytest.raises(ValueError, match="latency=0"):
        arith.stall_pipeline(m, None, None, 0)

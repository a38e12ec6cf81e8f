"""hdl/pwl.py (PWL unit) against numeric.pwl_eval in Amaranth simulation: tanh tables
from pwl_fit.make_tanh (8-bit exhaustive, 16-bit large sweep incl. every breakpoint
neighbourhood), random 32-segment tables (negative / zero / large acc_shift, run-time
output width), N = 1, table words loaded in random order and reloaded, idle cycles and
backpressure on the streams."""

from __future__ import annotations

import random

import numpy as np
import pytest

import streams
from convc.compiler import isa
from convc.compiler.numeric import QFormat
from convc.compiler.pwl_table import PWLTable, pwl_eval
from convc.compiler.pwl_fit import make_tanh
from convc.hdl.pwl import PWLCore, PWLUnit, load_table_words


def table_loader(dut, table: PWLTable, order_seed: int | None = None):
    """Testbench coroutine writing the table words through ``dut.table`` (in address
    order, or shuffled with ``order_seed``)."""
    words = load_table_words(table)
    if order_seed is not None:
        random.Random(order_seed).shuffle(words)

    async def load(ctx):
        for addr, word in words:
            ctx.set(dut.table.addr, addr)
            ctx.set(dut.table.data, word)
            ctx.set(dut.table.en, 1)
            await ctx.tick()
        ctx.set(dut.table.en, 0)
    return load


def random_table(rng: np.random.Generator, bits: int, segments: int, shift: int,
                 out_width: int) -> PWLTable:
    """A valid random table of ``bits``-bit input with ``acc_shift == shift``, scaled so
    that outputs are a mix of in-range and saturated values."""
    in_fmt = QFormat(bits, 0)
    out_fmt = QFormat(out_width, -shift)  # acc_shift = 0 + 0 - (-shift)
    lo, hi = in_fmt.min_int, in_fmt.max_int
    bps = np.sort(rng.choice(np.arange(lo + 1, hi + 1), size=segments - 1, replace=False))
    scale = 1 << max(shift + out_width, 1)
    smax = min((1 << 17) - 1, max(1, scale >> (bits - 1)))
    omax = min(scale, (1 << 47) - (1 << 35))
    slopes = rng.integers(-smax, smax, size=segments, endpoint=True)
    offsets = rng.integers(-omax, omax, size=segments, endpoint=True)
    return PWLTable(in_fmt, out_fmt, 0, tuple(int(b) for b in bps),
                    tuple(int(s) for s in slopes), tuple(int(o) for o in offsets))


def sweep_codes(table: PWLTable, bits: int, n_random: int, seed: int) -> list[int]:
    """Extremes, every breakpoint +-2, and random codes, shuffled."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    codes = {lo, lo + 1, hi, hi - 1, 0, 1, -1}
    for b in table.breakpoints:
        codes.update(c for c in range(b - 2, b + 3) if lo <= c <= hi)
    rng = random.Random(seed)
    codes = sorted(codes) + [rng.randint(lo, hi) for _ in range(n_random)]
    rng.shuffle(codes)
    return codes


def run_pwl(dut: PWLUnit, table: PWLTable, codes: list[int], *, seed=0, idle_prob=0.0,
            bp_prob=0.0, order_seed=None) -> None:
    dut.check_table(table)
    got = streams.run_stream_test(dut, dut.i, dut.o, codes, seed=seed, idle_prob=idle_prob,
                                  bp_prob=bp_prob, setup=table_loader(dut, table, order_seed))
    want, _ = pwl_eval(table, np.asarray(codes))
    bad = [(c, g, int(w)) for c, g, w in zip(codes, got, want) if g != w]
    assert len(got) == len(codes)
    assert not bad, f"{len(bad)} mismatches (code, got, want): {bad[:8]}"


def test_tanh_8bit_exhaustive():
    table, _ = make_tanh(6, QFormat(8, 5), QFormat(8, 6))
    codes = list(range(-128, 128))
    random.Random(5).shuffle(codes)
    run_pwl(PWLUnit(8), table, codes, seed=1, idle_prob=0.2, bp_prob=0.3)


def test_tanh_16bit_q88_sweep():
    table, err = make_tanh(8, QFormat(16, 8), QFormat(16, 8))
    assert err < 0.02
    run_pwl(PWLUnit(16), table, sweep_codes(table, 16, 1500, seed=2), seed=2,
            idle_prob=0.15, bp_prob=0.25)


@pytest.mark.parametrize("shift,out_width,seed", [(-3, 16, 10), (0, 12, 11), (23, 16, 12),
                                                  (41, 9, 13)])
def test_random_32_segment_tables(shift, out_width, seed):
    """Full-size tables: every comparator and memory row in use; negative, zero and large
    acc_shift; output widths below out_bits (saturation at the table's width)."""
    rng = np.random.default_rng(seed)
    table = random_table(rng, 16, isa.MAX_SEGMENTS, shift, out_width)
    codes = sweep_codes(table, 16, 250, seed=seed)
    run_pwl(PWLUnit(16), table, codes, seed=seed, idle_prob=0.1, bp_prob=0.1,
            order_seed=seed)


def test_single_segment_and_small_hardware():
    rng = np.random.default_rng(20)
    t1 = random_table(rng, 10, 1, 4, 10)
    run_pwl(PWLUnit(10, max_segments=1), t1, sweep_codes(t1, 10, 150, seed=20), seed=3)
    t3 = random_table(rng, 10, 3, 2, 10)
    run_pwl(PWLUnit(10, out_bits=12, max_segments=3), t3, sweep_codes(t3, 10, 150, seed=21),
            seed=4, bp_prob=0.5)


def test_reload_replaces_the_table():
    """A second load (fewer segments) fully replaces the first: unused breakpoint
    slots stop counting."""
    rng = np.random.default_rng(30)
    big = random_table(rng, 12, 32, 10, 12)
    small = random_table(rng, 12, 5, 6, 12)
    dut = PWLUnit(12)
    codes = sweep_codes(small, 12, 200, seed=30)
    load_big, load_small = table_loader(dut, big), table_loader(dut, small, order_seed=3)

    async def setup(ctx):
        await load_big(ctx)
        await load_small(ctx)

    got = streams.run_stream_test(dut, dut.i, dut.o, codes, seed=5, setup=setup, bp_prob=0.2)
    want, _ = pwl_eval(small, np.asarray(codes))
    assert got == [int(w) for w in want]


def test_latency_and_full_throughput():
    """With no backpressure, one result a cycle after ``latency`` cycles."""
    table, _ = make_tanh(4, QFormat(8, 5), QFormat(8, 6))
    dut = PWLUnit(8)
    assert dut.latency == PWLCore.LATENCY == 7
    codes = list(range(-50, 50))
    arrivals = []

    async def bench(ctx):
        await table_loader(dut, table)(ctx)
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        for k in range(len(codes) + dut.latency + 2):
            ctx.set(dut.i.payload, codes[k] if k < len(codes) else 0)
            ctx.set(dut.i.valid, k < len(codes))
            _, _, ready, valid, y = await ctx.tick().sample(dut.i.ready, dut.o.valid,
                                                            dut.o.payload)
            assert ready
            if valid:
                arrivals.append((k, y))

    from amaranth.sim import Simulator
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    want, _ = pwl_eval(table, np.asarray(codes))
    assert [y for _, y in arrivals] == [int(w) for w in want]
    assert [k for k, _ in arrivals] == list(range(dut.latency, dut.latency + len(codes)))


def test_stream_put_get_helpers():
    """streams.stream_put / stream_get, one element at a time (latency per element)."""
    from amaranth.sim import Simulator
    table, _ = make_tanh(4, QFormat(8, 5), QFormat(8, 6))
    dut = PWLUnit(8)
    codes = [-128, -5, 0, 7, 127]
    got = []

    async def bench(ctx):
        await table_loader(dut, table)(ctx)
        for c in codes:
            await streams.stream_put(ctx, dut.i, c)
            got.append(await streams.stream_get(ctx, dut.o))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == [int(v) for v in pwl_eval(table, np.asarray(codes))[0]]


def test_parameter_and_table_checks():
    with pytest.raises(ValueError, match="bits=17"):
        PWLUnit(17)
    with pytest.raises(ValueError, match="max_segments=33"):
        PWLUnit(16, max_segments=33)
    with pytest.raises(ValueError, match="out_bits=1"):
        PWLCore(8, 1)
    table, _ = make_tanh(8, QFormat(16, 8), QFormat(16, 8))
    for dut, msg in ((PWLUnit(16, max_segments=4), "max_segments=4"),
                     (PWLUnit(12), "bits=12"), (PWLUnit(16, out_bits=10), "out_bits=10")):
        dut._MustUse__silence = True  # never elaborated
        with pytest.raises(ValueError, match=msg):
            dut.check_table(table)

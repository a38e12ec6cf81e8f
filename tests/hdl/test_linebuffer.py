"""hdl/linebuffer.py (WindowGenerator) in Amaranth simulation against the numpy model
(tests/hdl/cocotb/test_linebuffer_tb.py: window_model): several (lanes, kmax, width,
rows) including kmax=1, width=1, width=max_width, rows < kmax; consecutive frames of
different widths (and a frame cut short by a new ``first``); random idle cycles and
backpressure; every output word compared.  Also latency/throughput, parameter checks,
the Verilog export and the Yosys block-RAM count.

The cocotb run on the exported Verilog is tests/hdl/test_linebuffer_cocotb.py."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from needs import needs_yosys
import streams
from convc.hdl.export import to_verilog
from convc.hdl.linebuffer import WindowGenerator, pixel_layout, window_layout
from test_linebuffer_tb import (expected_outputs, frame_inputs, random_frame, unpack_output,
                                window_model)


def _simulate(dut: WindowGenerator, frames, *, seed=0, idle_prob=0.0, bp_prob=0.0,
              inputs=None, widths=None):
    """Send the frames (``width`` right with each first element, garbage otherwise),
    collect with backpressure, check nothing extra comes out.  Returns the outputs as
    dicts (see ``unpack_output``)."""
    if inputs is None:
        inputs, widths = [], []
        for f in frames:
            inputs += frame_inputs(f)
            widths += [f.shape[2]] * (f.shape[1] * f.shape[2])
    layout = pixel_layout(dut.lanes, dut.bits)
    payloads = [layout.const({"data": px, "first": fi, "last": la}) for px, fi, la in inputs]
    got = []

    async def bench_in(ctx):
        rng = random.Random(seed * 2 + 1)
        wrng = random.Random(seed + 99)
        for k, p in enumerate(payloads):
            while idle_prob and rng.random() < idle_prob:
                ctx.set(dut.width, wrng.randint(0, dut.max_width))
                await ctx.tick()
            ctx.set(dut.width, widths[k] if inputs[k][1] else wrng.randint(0, dut.max_width))
            await streams.stream_put(ctx, dut.i, p)

    async def bench_out(ctx):
        out = await streams.collect(ctx, dut.o, len(payloads), rng=random.Random(seed * 2 + 2),
                                    bp_prob=bp_prob)
        got.extend(unpack_output(v.as_bits(), dut.lanes, dut.bits, dut.kmax) for v in out)
        await streams.expect_quiet(ctx, dut.o, dut.latency + 5)

    streams.run_testbenches(dut, [bench_in], bench_out)
    return got


def _check(got, want):
    assert len(got) == len(want), f"{len(got)} outputs, {len(want)} expected"
    bad = [k for k in range(len(want)) if got[k] != want[k]]
    assert not bad, (f"{len(bad)} of {len(want)} mismatches; first at #{bad[0]}:\n"
                     f"got  {got[bad[0]]}\nwant {want[bad[0]]}")


CASES = [  # lanes, bits, kmax, max_width, [(rows, width), ...]
    (1, 8, 3, 8, [(5, 8)]),                      # width = max_width
    (2, 16, 3, 16, [(4, 7), (3, 12)]),           # two frames, different widths
    (1, 8, 1, 4, [(3, 4), (2, 1)]),              # kmax = 1
    (3, 6, 5, 10, [(6, 1), (2, 1), (3, 3)]),     # width 1 (read/write same address), rows < kmax
    (2, 4, 7, 9, [(3, 9), (9, 5), (1, 2)]),      # rows < kmax, width = max_width
    (1, 16, 4, 1, [(6, 1), (2, 1)]),             # max_width = 1
    (4, 10, 3, 6, [(1, 1), (2, 2), (5, 6), (1, 6)]),
]


@pytest.mark.parametrize("lanes,bits,kmax,max_width,shapes", CASES,
                         ids=[f"L{c[0]}b{c[1]}k{c[2]}w{c[3]}" for c in CASES])
def test_windows_random_idle_backpressure(lanes, bits, kmax, max_width, shapes):
    rng = np.random.default_rng(lanes * 100 + kmax)
    frames = [random_frame(rng, lanes, r, w, bits) for r, w in shapes]
    dut = WindowGenerator(lanes=lanes, bits=bits, kmax=kmax, max_width=max_width)
    got = _simulate(dut, frames, seed=kmax, idle_prob=0.25, bp_prob=0.35)
    want = [o for f in frames for o in expected_outputs(f, kmax)]
    _check(got, want)


def test_windows_no_idle_no_backpressure():
    """Back-to-back, full throughput: a wide frame, then a narrow one (stale data in the
    block RAM from the first frame must not leak into the second)."""
    rng = np.random.default_rng(5)
    frames = [random_frame(rng, 2, 6, 20, 8), random_frame(rng, 2, 5, 3, 8),
              random_frame(rng, 2, 4, 1, 8), random_frame(rng, 2, 3, 20, 8)]
    dut = WindowGenerator(lanes=2, bits=8, kmax=5, max_width=20)
    got = _simulate(dut, frames, seed=3)
    _check(got, [o for f in frames for o in expected_outputs(f, 5)])


def test_frame_cut_short_by_new_first():
    """A new ``first`` mid-frame restarts the counters and the window (rows before it
    read as zeros)."""
    rng = np.random.default_rng(8)
    a = random_frame(rng, 1, 4, 6, 8)
    b = random_frame(rng, 1, 3, 4, 8)
    ina = frame_inputs(a)[:15]                  # 2.5 rows of a, no last
    inb = frame_inputs(b)
    dut = WindowGenerator(lanes=1, bits=8, kmax=3, max_width=8)
    got = _simulate(dut, None, seed=4, idle_prob=0.2, bp_prob=0.3, inputs=ina + inb,
                    widths=[6] * len(ina) + [4] * len(inb))
    want = expected_outputs(a, 3)[:15]
    want[-1]["last"] = 0
    _check(got, want + expected_outputs(b, 3))


def test_many_rows_row_counter():
    """More rows than kmax on a narrow frame; row/col fields checked throughout."""
    rng = np.random.default_rng(11)
    f = random_frame(rng, 1, 40, 2, 5)
    dut = WindowGenerator(lanes=1, bits=5, kmax=3, max_width=4)
    got = _simulate(dut, [f], seed=6, idle_prob=0.1, bp_prob=0.5)
    _check(got, expected_outputs(f, 3))


def test_model_sanity():
    """The model itself on a tiny hand-checked case."""
    f = np.arange(1, 7).reshape(1, 2, 3)   # [[1,2,3],[4,5,6]]
    w = window_model(f, 2)
    assert w[0, 0].tolist() == [[0, 0], [0, 1]]
    assert w[3, 0].tolist() == [[0, 1], [0, 4]]
    assert w[5, 0].tolist() == [[2, 3], [5, 6]]


def test_latency_and_throughput():
    """No backpressure: one element a cycle, each out exactly ``latency`` cycles after
    it went in; during a long output stall nothing is lost and the input is held off."""
    dut = WindowGenerator(lanes=1, bits=8, kmax=3, max_width=16)
    assert dut.latency == 2
    assert dut.line_buffer_depth == 16 and dut.line_buffers == 2
    rng = np.random.default_rng(2)
    f = random_frame(rng, 1, 6, 10, 8)
    ins = frame_inputs(f)
    want = expected_outputs(f, 3)
    layout = pixel_layout(1, 8)
    out_cycles, outs = [], []

    async def bench(ctx):
        ctx.set(dut.width, 10)
        n_in = 0
        for k in range(len(ins) + 40):
            if n_in < len(ins):
                px, fi, la = ins[n_in]
                ctx.set(dut.i.payload, layout.const({"data": px, "first": fi, "last": la}))
            ctx.set(dut.i.valid, n_in < len(ins))
            stall = 20 <= k < 35
            ctx.set(dut.o.ready, not stall)
            _, _, iready, ovalid, opay = await ctx.tick().sample(dut.i.ready, dut.o.valid, dut.o.payload)
            if k < 20:
                assert iready
            if 20 + 1 < k < 35:
                assert not iready
            if iready and n_in < len(ins):
                n_in += 1
            if ovalid and not stall:
                out_cycles.append(k)
                outs.append(unpack_output(opay.as_bits(), 1, 8, 3))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    _check(outs, want)
    assert out_cycles[:15] == list(range(dut.latency, dut.latency + 15))


def test_parameter_checks():
    good = dict(lanes=2, bits=8, kmax=3, max_width=64)
    for name, bad in [("lanes", 0), ("lanes", 65), ("bits", 1), ("bits", 17), ("kmax", 0),
                      ("kmax", 32), ("max_width", 0), ("max_width", 4096)]:
        with pytest.raises(ValueError, match=f"WindowGenerator: {name}={bad} outside"):
            WindowGenerator(**{**good, name: bad})
    dut = WindowGenerator(lanes=64, bits=16, kmax=31, max_width=4095)
    dut._MustUse__silence = True  # never elaborated
    assert (dut.lanes, dut.bits, dut.kmax, dut.max_width) == (64, 16, 31, 4095)


def test_layouts_and_verilog_ports():
    assert pixel_layout(3, 8).size == 3 * 8 + 2
    assert window_layout(2, 8, 3).size == 2 * 9 * 8 + 24 + 2
    text = to_verilog(WindowGenerator(lanes=2, bits=8, kmax=3, max_width=32), "linebuffer")
    for port in ("i__payload", "i__valid", "i__ready", "o__payload", "o__valid", "o__ready",
                 "width", "clk", "rst"):
        assert port in text
    assert "input [17:0] i__payload" in text
    assert f"output [{2 * 9 * 8 + 26 - 1}:0] o__payload" in text


@needs_yosys
def test_yosys_line_buffers_in_block_ram():
    """synth_xilinx -family xc6v (fast flow): kmax=7, max_width=512, lanes=2, 16 bits --
    the 6 line buffers (512 x 32 bits each) land in block RAM, no LUTRAM, no DSP."""
    from convc.hdl.synth import synthesize
    res = synthesize(WindowGenerator(lanes=2, bits=16, kmax=7, max_width=512), "linebuffer")
    bram = res["RAMB18E1"] + res["RAMB36E1"]
    print("yosys:", {k: res[k] for k in ("RAMB18E1", "RAMB36E1", "DSP48E1", "FF", "LUTRAM")})
    assert bram > 0
    assert res["RAMB18E1"] + 2 * res["RAMB36E1"] <= 6
    assert res["DSP48E1"] == 0


def test_width_zero_acts_as_one():
    """``width`` = 0 sampled with ``first`` behaves as width 1 (documented)."""
    rng = np.random.default_rng(13)
    f = random_frame(rng, 1, 5, 1, 8)
    ins = frame_inputs(f)
    dut = WindowGenerator(lanes=1, bits=8, kmax=3, max_width=4)
    got = _simulate(dut, None, seed=7, idle_prob=0.2, bp_prob=0.3, inputs=ins,
                    widths=[0] * len(ins))
    _check(got, expected_outputs(f, 3))


def test_row_field_wraps_mod_4096():
    """``row`` is 12 bits: it wraps after row 4095; the windows stay right."""
    rng = np.random.default_rng(14)
    f = random_frame(rng, 1, 4100, 1, 4)
    dut = WindowGenerator(lanes=1, bits=4, kmax=2, max_width=2)
    got = _simulate(dut, [f], seed=8)
    want = expected_outputs(f, 2)
    assert want[-1]["row"] == 4099 - 4096
    _check(got, want)

"""hdl/pointwise.py in Amaranth simulation: every activation mode against numeric.py
(saturate / pwl_eval) with random idle cycles and backpressure, the mode changing per
element, first/last framing, latency and throughput, parameter checks, the Verilog
export, and the Yosys resource count (one DSP48E1 for the PWL multiply).

The cocotb run on the exported Verilog is tests/hdl/test_pointwise_cocotb.py."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from needs import needs_yosys
import streams
from convc.compiler import isa
from convc.compiler.numeric import QFormat
from convc.compiler.pwl_fit import make_tanh
from convc.hdl.export import to_verilog, write_verilog
from convc.hdl.pointwise import PointwiseEngine, code_layout
from convc.hdl.pwl import load_table_words
from test_pointwise_tb import pointwise_model  # the cocotb testbench's model (numeric.py)

Q88 = QFormat(16, 8)


def _tanh16():
    return make_tanh(8, Q88, Q88)[0]


def _codes(bits: int, n: int, seed: int, table=None) -> list[int]:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    rng = random.Random(seed)
    codes = [lo, lo + 1, hi, hi - 1, 0, 1, -1]
    if table is not None:
        for b in table.breakpoints:
            codes += [c for c in (b - 1, b, b + 1) if lo <= c <= hi]
    codes += [rng.randint(lo, hi) for _ in range(n)]
    rng.shuffle(codes)
    return codes


def _frames(n: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    flags, k = [], 0
    while k < n:
        length = min(rng.randint(1, 25), n - k)
        flags += [(int(j == 0), int(j == length - 1)) for j in range(length)]
        k += length
    return flags


def _simulate(dut: PointwiseEngine, table, codes, acts, *, seed=0, idle_prob=0.0, bp_prob=0.0):
    """Drive (code, act) with random idle cycles, collect with backpressure; return
    (sent payload dicts, received payload dicts)."""
    flags = _frames(len(codes), seed)
    sent = [{"data": c, "first": f, "last": l} for c, (f, l) in zip(codes, flags)]
    got = []

    async def bench_in(ctx):
        for addr, word in load_table_words(table):
            ctx.set(dut.table.addr, addr)
            ctx.set(dut.table.data, word)
            ctx.set(dut.table.en, 1)
            await ctx.tick()
        ctx.set(dut.table.en, 0)
        rng = random.Random(seed + 1)
        for p, a in zip(sent, acts):
            while rng.random() < idle_prob:
                await ctx.tick()
            ctx.set(dut.act, a)
            await streams.stream_put(ctx, dut.i, p)
            ctx.set(dut.act, rng.randrange(4))  # garbage between elements must not matter

    async def bench_out(ctx):
        await ctx.tick().repeat(isa.TABLE_WORDS)
        out = await streams.collect(ctx, dut.o, len(sent), rng=random.Random(seed + 2),
                                    bp_prob=bp_prob)
        got.extend(streams.as_dict(v) for v in out)
        # nothing more may come out (no duplication)
        await streams.expect_quiet(ctx, dut.o, dut.latency + 3)

    streams.run_testbenches(dut, [bench_in], bench_out)
    return sent, got


def _check(sent, got, acts, bits, table):
    want = pointwise_model(np.asarray(acts), [p["data"] for p in sent], bits, table)
    assert len(got) == len(sent)
    bad = [(k, acts[k], sent[k]["data"], got[k], int(want[k])) for k in range(len(sent))
           if got[k] != {"data": int(want[k]), "first": sent[k]["first"], "last": sent[k]["last"]}]
    assert not bad, f"{len(bad)} mismatches (k, act, z, got, want): {bad[:6]}"


@pytest.mark.parametrize("act", sorted(isa.ACT_NAMES), ids=[isa.ACT_NAMES[a] for a in sorted(isa.ACT_NAMES)])
def test_each_mode_16bit(act):
    table = _tanh16()
    dut = PointwiseEngine(16)
    codes = _codes(16, 600, seed=act, table=table)
    acts = [act] * len(codes)
    sent, got = _simulate(dut, table, codes, acts, seed=act, idle_prob=0.2, bp_prob=0.3)
    _check(sent, got, acts, 16, table)


def test_mode_changes_per_element_8bit_exhaustive():
    """Every 8-bit code under every mode, the modes interleaved at random."""
    table = make_tanh(6, QFormat(8, 5), QFormat(8, 6))[0]
    dut = PointwiseEngine(8)
    pairs = [(z, a) for z in range(-128, 128) for a in isa.ACT_NAMES]
    random.Random(9).shuffle(pairs)
    codes, acts = [p[0] for p in pairs], [p[1] for p in pairs]
    sent, got = _simulate(dut, table, codes, acts, seed=9, idle_prob=0.1, bp_prob=0.4)
    _check(sent, got, acts, 8, table)


def test_abs_saturates_most_negative_code():
    table = _tanh16()
    codes = [-32768, -32767, 32767, -1, 0]
    acts = [isa.ACT_ABS] * 5
    sent, got = _simulate(PointwiseEngine(16), table, codes, acts)
    assert [g["data"] for g in got] == [32767, 32767, 32767, 1, 0]


def test_latency_and_throughput():
    """Without backpressure: one element a cycle, each out exactly ``latency`` cycles
    after it went in; the whole pipeline holds during a long stall."""
    table = _tanh16()
    dut = PointwiseEngine(16)
    assert dut.latency == 8
    codes = _codes(16, 60, seed=3)
    acts = [k % 4 for k in range(len(codes))]
    want = pointwise_model(np.asarray(acts), codes, 16, table)
    out_cycles, outs = [], []

    async def bench(ctx):
        for addr, word in load_table_words(table):
            ctx.set(dut.table.addr, addr); ctx.set(dut.table.data, word); ctx.set(dut.table.en, 1)
            await ctx.tick()
        ctx.set(dut.table.en, 0)
        ctx.set(dut.o.ready, 1)
        layout = code_layout(16)
        n_in = 0
        for k in range(len(codes) + 40):
            if n_in < len(codes):
                ctx.set(dut.i.payload, layout.const({"data": codes[n_in], "first": 0, "last": 0}))
                ctx.set(dut.act, acts[n_in])
            ctx.set(dut.i.valid, n_in < len(codes))
            stall = 20 <= k < 35  # o.ready low for 15 cycles mid-stream
            ctx.set(dut.o.ready, not stall)
            _, _, iready, ovalid, opay = await ctx.tick().sample(dut.i.ready, dut.o.valid, dut.o.payload)
            if k < 20:
                assert iready
            if 20 + 1 < k < 35:
                assert not iready  # full pipeline, output stalled: input held off
            if iready and n_in < len(codes):
                n_in += 1
            if ovalid and not stall:
                out_cycles.append(k)
                outs.append(opay.data)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert outs == [int(w) for w in want]
    assert out_cycles[:12] == list(range(dut.latency, dut.latency + 12))


def test_parameter_checks():
    with pytest.raises(ValueError, match="bits=17"):
        PointwiseEngine(17)
    with pytest.raises(ValueError, match="bits=1"):
        PointwiseEngine(1)
    with pytest.raises(ValueError, match="max_segments=0"):
        PointwiseEngine(16, max_segments=0)
    dut = PointwiseEngine(16, max_segments=4)
    dut._MustUse__silence = True  # never elaborated
    with pytest.raises(ValueError, match="max_segments=4"):
        dut.check_table(_tanh16())


def test_verilog_export_ports(tmp_path):
    text = to_verilog(PointwiseEngine(16), "pointwise")
    for port in ("i__payload", "i__valid", "i__ready", "o__payload", "o__valid", "o__ready",
                 "act", "table__addr", "table__data", "table__en", "clk", "rst"):
        assert port in text
    assert "input [17:0] i__payload" in text  # data 16 + first + last
    path = write_verilog(PointwiseEngine(16), tmp_path / "v" / "pw.v", "pointwise")
    mtime = path.stat().st_mtime_ns
    write_verilog(PointwiseEngine(16), path, "pointwise")  # identical: untouched
    assert path.read_text() == text and path.stat().st_mtime_ns == mtime
    dut = PointwiseEngine(8)
    dut._MustUse__silence = True  # rejected before elaboration
    with pytest.raises(ValueError, match="module name"):
        to_verilog(dut, "bad name")


@needs_yosys
def test_yosys_pointwise_uses_one_dsp48e1():
    """synth_xilinx -family xc6v (fast flow, up to map_luts): the PWL multiply-add packs
    into exactly one DSP48E1; no block RAM (the 32-row table is distributed RAM)."""
    from convc.hdl.synth import synthesize
    res = synthesize(PointwiseEngine(16), "pointwise")
    assert res["DSP48E1"] == 1
    assert res["RAMB18E1"] == 0 and res["RAMB36E1"] == 0
    assert 0 < res["FF"] < 1500
    assert res["LUT"] is None and not res["full"]


"""hdl/weights.py (ConvWeightLoader, FCWeightAssembler) in Amaranth simulation against a
Python model of the orders in its docstring.

The testbench plays the parameter reader: ``cmd`` taken with random backpressure, the
words (or wide beats) of the accepted commands back in order from a Python memory with
random gaps; the engine side takes ``weight``/``weights`` with random backpressure.
Checked for bands back to back: every weight in order (zeros for lanes past ``n_in`` or
``n_out``, no read for them), every read command, and ``busy`` falling only after the
last group."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from convc.compiler import isa
from convc.hdl.weights import ConvWeightLoader, FCWeightAssembler


def mem_word(addr: int) -> int:
    return (addr * 0x9E3779B1 + 0x1234) >> 7 & 0xFFFF


def sext(v: int, bits: int = 16) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def conv_model(Pi, Po, w_addr, n_in, n_out, K, groups):
    """(weights in order, read commands) of one OP_CONV band (the module docstring)."""
    kk = K * K
    ws, cmds = [], []
    for g in range(groups):
        for o in range(Po):
            for i in range(Pi):
                j = g * Pi + i
                if o < n_out and j < n_in:
                    a = w_addr + o * n_in * kk + j * kk
                    cmds.append((a, kk))
                    ws += [sext(mem_word(a + q)) for q in range(kk)]
                else:
                    ws += [0] * kk
    return ws, cmds


def _reader(ctx_state, dut, seed, gap, wide_words=None):
    """Bench processes playing the reader: commands and words (or beats of wide_words)."""
    words = ctx_state["words"]

    async def bench_cmd(ctx):
        rng = random.Random(seed * 7 + 1)
        while True:
            rdy = rng.random() >= 0.3
            ctx.set(dut.cmd.ready, rdy)
            _, _, v, a, n = await ctx.tick().sample(dut.cmd.valid, dut.cmd.payload.addr, dut.cmd.payload.length)
            if v and rdy:
                ctx_state["cmds"].append((a, n))
                if wide_words is None:
                    words.extend({"data": mem_word(a + k), "first": int(k == 0), "last": int(k == n - 1)}
                                 for k in range(n))
                else:
                    W = wide_words
                    assert a % W == 0 and n % W == 0, "FC weight blocks are whole beats"
                    for b in range(n // W):
                        data = sum(mem_word(a + b * W + k) << (16 * k) for k in range(W))
                        words.append({"data": data, "last": int(b == n // W - 1)})

    async def bench_word(ctx):
        rng = random.Random(seed * 7 + 2)
        port = dut.word if wide_words is None else dut.beat
        while True:
            if not words or rng.random() < gap:
                ctx.set(port.valid, 0)
                await ctx.tick()
                continue
            ctx.set(port.payload, words.pop(0))
            ctx.set(port.valid, 1)
            while True:
                _, _, r = await ctx.tick().sample(port.ready)
                if r:
                    break
            ctx.set(port.valid, 0)

    return bench_cmd, bench_word


async def _run_band(ctx, dut, cfg: dict):
    """Set the configuration, pulse ``start``, wait until ``busy`` falls (bounded)."""
    for name, val in cfg.items():
        ctx.set(getattr(dut, name), val)
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)
    assert ctx.get(dut.busy), "busy did not rise after start"
    for _ in range(5000):
        if not ctx.get(dut.busy):
            return
        await ctx.tick()
    raise AssertionError(f"{type(dut).__name__} never finished a band")


def _simulate(dut, processes, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for p in processes:
        sim.add_process(p)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("seed", [0, 1])
def test_conv_weight_loader_order_and_reads(seed):
    Pi, Po = 2, 3
    dut = ConvWeightLoader(in_lanes=Pi, out_lanes=Po)
    rng = random.Random(seed)
    bands = []
    for _ in range(3):
        K = rng.choice([1, 3, 5])
        n_in, n_out = rng.randint(1, 5), rng.randint(1, 4)
        bands.append(dict(w_addr=rng.randrange(1 << 20), n_in=n_in, n_out=n_out, K=K,
                          groups=-(-n_in // Pi)))
    want_w, want_c = [], []
    for b in bands:
        w, c = conv_model(Pi, Po, **b)
        want_w += w
        want_c += c
    st = {"words": [], "cmds": [], "got": []}
    bench_cmd, bench_word = _reader(st, dut, seed, 0.3)

    async def bench_sink(ctx):
        rng2 = random.Random(seed * 7 + 3)
        while True:
            rdy = rng2.random() >= 0.3
            ctx.set(dut.weight.ready, rdy)
            _, _, v, d = await ctx.tick().sample(dut.weight.valid, dut.weight.payload)
            if v and rdy:
                st["got"].append(d)

    async def bench_drive(ctx):
        for b in bands:
            K = b["K"]
            await _run_band(ctx, dut, {"w_addr": b["w_addr"], "n_in": b["n_in"], "n_out": b["n_out"],
                                       "kk": K * K, "n_kk": b["n_in"] * K * K, "groups": b["groups"]})

    _simulate(dut, (bench_cmd, bench_word, bench_sink), bench_drive)
    assert st["cmds"] == want_c
    assert st["got"] == want_w


def test_fc_weight_assembler_matrices():
    fi, fo, dw = 3, 4, 64
    W = dw // 16
    dut = FCWeightAssembler(in_lanes=fi, out_lanes=fo, data_width=dw)
    bands = [dict(w_addr=64, n_in=7, n_out=4), dict(w_addr=512, n_in=2, n_out=3)]
    want, want_c = [], []
    for b in bands:
        ld = isa.fc_ld(b["n_out"])
        G = -(-b["n_in"] // fi)
        for g in range(G):
            lanes = min(fi, b["n_in"] - g * fi)
            want_c.append((b["w_addr"] + g * fi * ld, lanes * ld))
            mat = [[0] * fi for _ in range(fo)]
            for i in range(lanes):
                j = g * fi + i
                for o in range(min(fo, ld)):       # the column's words (zeros past n_out in an image)
                    mat[o][i] = sext(mem_word(b["w_addr"] + j * ld + o))
            want.append(mat)
    st = {"words": [], "cmds": [], "got": []}
    bench_cmd, bench_word = _reader(st, dut, 5, 0.3, wide_words=W)

    async def bench_sink(ctx):
        rng = random.Random(9)
        while True:
            rdy = rng.random() >= 0.4
            ctx.set(dut.weights.ready, rdy)
            _, _, v, d = await ctx.tick().sample(dut.weights.valid, dut.weights.payload)
            if v and rdy:
                st["got"].append([[int(d[o][i]) for i in range(fi)] for o in range(fo)])

    async def bench_drive(ctx):
        for b in bands:
            ld = isa.fc_ld(b["n_out"])
            await _run_band(ctx, dut, {"w_addr": b["w_addr"], "n_in": b["n_in"], "ld": ld,
                                       "ld_beats": ld // W, "groups": -(-b["n_in"] // fi)})

    _simulate(dut, (bench_cmd, bench_word, bench_sink), bench_drive)
    assert st["cmds"] == want_c
    assert st["got"] == want


def test_timing_properties_and_bad_parameters():
    cw, fw = ConvWeightLoader(in_lanes=2, out_lanes=3), FCWeightAssembler(in_lanes=12, out_lanes=4)
    cw._MustUse__silence = fw._MustUse__silence = True       # not elaborated here
    assert cw.group_words(7) == 2 * 3 * 49
    assert fw.group_beats(12, 1) == 12
    with pytest.raises(ValueError, match="in_lanes"):
        ConvWeightLoader(in_lanes=0, out_lanes=1)

"""hdl/pool.py (PoolEngine) in Amaranth simulation against the numpy model
(model_pool.py, numeric.py only): max, average and pass-through; k = image size,
stride > 1, stride != k (smaller and larger), width = max_width, one lane and many,
kmax = 1; frames of different configurations back to back; average products that
saturate at both extremes and an avg_mul with bit 17 set; random idle cycles and
backpressure; every output word (all lanes, first, last) compared.  Also throughput,
latency, the held row-final output, parameter checks, the Verilog export and the Yosys
DSP48E1 count (one a lane: the average multiply).

The cocotb run on the exported Verilog is tests/hdl/test_pool_cocotb.py."""

from __future__ import annotations

import random

import numpy as np
import pytest

from needs import needs_yosys
import streams
from convc.compiler import isa
from convc.hdl.export import to_verilog
from convc.hdl.linebuffer import pixel_layout
from convc.hdl.pool import PoolEngine
from model_pool import avg_constants, pool_model, pool_outputs, random_frame

MAX, AVG, NONE = isa.POOL_MAX, isa.POOL_AVG, isa.POOL_NONE


def job(rng, H, W, lanes, bits, kind, k, s, *, extreme=None, avg=None) -> dict:
    mul, shift = avg if avg is not None else avg_constants(k)
    return {"frame": random_frame(rng, H, W, lanes, bits, extreme), "kind": kind, "k": k, "s": s,
            "avg_mul": mul, "avg_shift": shift}


def expected(jobs, bits):
    return [w for j in jobs for w in pool_outputs(j["frame"], j["kind"], j["k"], j["s"],
                                                  j["avg_mul"], j["avg_shift"], bits)]


def simulate(dut: PoolEngine, jobs, *, seed=0, idle_prob=0.0, bp_prob=0.0, trace=None):
    """Send the frames (config with each first element, garbage otherwise), collect with
    backpressure, check nothing extra comes out; returns [(data list, first, last)]."""
    lanes, bits = dut.lanes, dut.bits
    lay = pixel_layout(lanes, bits)
    n_out = len(expected(jobs, bits))
    got = []

    def set_cfg(ctx, j):
        ctx.set(dut.kind, j["kind"]); ctx.set(dut.k, j["k"]); ctx.set(dut.s, j["s"])
        ctx.set(dut.width, j["frame"].shape[1])
        ctx.set(dut.avg_mul, j["avg_mul"]); ctx.set(dut.avg_shift, j["avg_shift"])

    def garbage(ctx, rng):
        ctx.set(dut.kind, rng.randrange(4)); ctx.set(dut.k, rng.randrange(16))
        ctx.set(dut.s, rng.randrange(16)); ctx.set(dut.width, rng.randrange(dut.max_width + 1))
        ctx.set(dut.avg_mul, rng.randrange(1 << 18)); ctx.set(dut.avg_shift, rng.randrange(64))

    async def bench_in(ctx):
        rng = random.Random(seed * 5 + 1)
        grng = random.Random(seed * 5 + 2)
        for j in jobs:
            H, W, _ = j["frame"].shape
            for r in range(H):
                for c in range(W):
                    while idle_prob and rng.random() < idle_prob:
                        garbage(ctx, grng)
                        await ctx.tick()
                    first = r == 0 and c == 0
                    if first:
                        set_cfg(ctx, j)
                    else:
                        garbage(ctx, grng)
                    px = lay.const({"data": [int(v) for v in j["frame"][r, c]], "first": int(first),
                                    "last": int(r == H - 1 and c == W - 1)})
                    await streams.stream_put(ctx, dut.i, px)

    async def bench_out(ctx):
        n_in = sum(j["frame"].shape[0] * j["frame"].shape[1] for j in jobs)
        out = await streams.collect(ctx, dut.o, n_out, rng=random.Random(seed * 5 + 3),
                                    bp_prob=bp_prob, timeout=200 + 20 * n_in)
        for v in out:
            got.append(([int(v.data[l]) for l in range(lanes)], int(v.first), int(v.last)))
        await streams.expect_quiet(ctx, dut.o, dut.latency + 5)

    extra = [] if trace is None else [streams.trace_bench(dut, trace)]
    streams.run_testbenches(dut, [bench_in] + extra, bench_out)
    return got


def check(got, jobs, bits):
    want = expected(jobs, bits)
    streams.check_outputs(got, want)


# (lanes, bits, kmax, max_width), [(H, W, kind, k, s, extreme), ...]
CASES = [
    ((1, 8, 2, 8), [(6, 8, MAX, 2, 2, None), (4, 8, AVG, 2, 2, None), (5, 7, MAX, 2, 1, "mixed"),
                    (3, 3, NONE, 1, 1, None), (2, 2, AVG, 2, 2, "min")]),
    ((3, 16, 3, 12), [(7, 12, MAX, 3, 2, None), (3, 3, AVG, 3, 1, None), (9, 10, AVG, 3, 3, "mixed"),
                      (8, 11, MAX, 2, 3, None), (5, 6, NONE, 3, 2, None), (6, 12, MAX, 1, 2, "mixed"),
                      (4, 4, AVG, 2, 1, None)]),
    ((2, 6, 4, 10), [(10, 10, MAX, 4, 4, "mixed"), (9, 10, AVG, 4, 2, None), (4, 4, MAX, 4, 1, None),
                     (7, 9, AVG, 3, 2, "max"), (6, 5, MAX, 3, 3, "min"), (1, 1, NONE, 1, 1, None)]),
    ((4, 12, 1, 5), [(3, 5, MAX, 1, 2, None), (4, 5, AVG, 1, 3, "mixed"), (2, 4, NONE, 1, 1, None),
                     (5, 1, AVG, 1, 1, None)]),
    ((1, 16, 5, 16), [(16, 16, MAX, 5, 3, None), (5, 5, AVG, 5, 1, "mixed"), (12, 16, AVG, 5, 5, None),
                      (6, 16, MAX, 2, 7, None), (7, 1, MAX, 1, 15, None)]),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_pool_random_idle_backpressure(case):
    (lanes, bits, kmax, mw), shapes = CASES[case]
    rng = np.random.default_rng(200 + case)
    jobs = [job(rng, H, W, lanes, bits, kind, k, s, extreme=e) for H, W, kind, k, s, e in shapes]
    dut = PoolEngine(lanes=lanes, bits=bits, kmax=kmax, max_width=mw)
    got = simulate(dut, jobs, seed=case, idle_prob=0.25, bp_prob=0.3)
    check(got, jobs, bits)


def test_pool_avg_saturation_both_extremes():
    """Average products that saturate high and low (a large avg_mul with bit 17 set, a
    small shift), avg_mul = 2**18 - 1, avg_shift 0 and 63, mixed with normal frames."""
    rng = np.random.default_rng(5)
    lanes, bits = 2, 8
    jobs = [
        job(rng, 4, 4, lanes, bits, AVG, 2, 2, extreme="max", avg=(0x3FFFF, 10)),
        job(rng, 4, 4, lanes, bits, AVG, 2, 2, extreme="min", avg=(0x3FFFF, 10)),
        job(rng, 5, 6, lanes, bits, AVG, 3, 1, extreme="mixed", avg=(0x20001, 18)),
        job(rng, 4, 5, lanes, bits, AVG, 2, 1, avg=(0x3FFFF, 63)),
        job(rng, 3, 3, lanes, bits, AVG, 3, 3, avg=(3, 0)),
        job(rng, 6, 6, lanes, bits, AVG, 3, 2, avg=(0x2AAAA, 20)),
    ]
    sats = [pool_model(j["frame"], AVG, j["k"], j["s"], j["avg_mul"], j["avg_shift"], bits)[1]
            for j in jobs]
    assert sats[0] == 4 * lanes and sats[1] == 4 * lanes and sats[4] > 0
    dut = PoolEngine(lanes=lanes, bits=bits, kmax=3, max_width=8)
    got = simulate(dut, jobs, seed=4, idle_prob=0.3, bp_prob=0.4)
    check(got, jobs, bits)
    assert got[0][0] == [127, 127] and got[4][0] == [-128, -128]


def test_pool_throughput_latency_and_held_last():
    """No idle, no backpressure: one pixel a cycle in; an output that another output
    follows in its row comes ``latency`` cycles after its pixel; a row's last output
    waits for the next output (or, the frame's last, for the frame's end)."""
    rng = np.random.default_rng(9)
    dut = PoolEngine(lanes=2, bits=8, kmax=2, max_width=8)
    assert dut.latency == 2 + 5 + 2 + 1
    # 5 x 8, k=2 s=2: output rows from input rows 1, 3; input row 4 produces nothing
    jobs = [job(rng, 5, 8, 2, 8, MAX, 2, 2), job(rng, 3, 4, 2, 8, NONE, 1, 1)]
    trace = []
    got = simulate(dut, jobs, trace=trace)
    check(got, jobs, 8)
    fires = [c for c, iv, ir, _, _ in trace if iv and ir]
    outs = [c for c, _, _, ov, orr in trace if ov and orr]
    assert fires == list(range(fires[0], fires[0] + 5 * 8 + 3 * 4))  # no input stall
    L = dut.latency
    t = lambda r, c: fires[r * 8 + c]  # noqa: E731  (frame 0's pixel (r, c))
    # frame 0: outputs at pixels (1,1) (1,3) (1,5) (1,7) (3,1) ... (3,7)
    assert outs[0:3] == [t(1, 1) + L, t(1, 3) + L, t(1, 5) + L]
    assert outs[3] == t(3, 1) + L - 1            # (1,7) held until (3,1) came
    assert outs[4:7] == [t(3, 1) + L, t(3, 3) + L, t(3, 5) + L]
    assert outs[7] == t(4, 7) + L - 1            # (3,7) held until the frame's end
    # frame 1 (pass-through): a row's last output goes with the next pixel's candidate,
    # which comes right behind it; the frame's last carries last=1 itself
    f1 = fires[40:]
    assert outs[8:] == [c + L for c in f1]


def test_pool_parameter_checks():
    for kw, msg in [(dict(lanes=0), "lanes=0"), (dict(lanes=1, bits=1), "bits=1"),
                    (dict(lanes=1, kmax=16), "kmax=16"), (dict(lanes=1, kmax=0), "kmax=0"),
                    (dict(lanes=1, max_width=4096), "max_width=4096")]:
        with pytest.raises(ValueError, match=msg):
            PoolEngine(**kw)


def test_pool_verilog_export_ports():
    text = to_verilog(PoolEngine(lanes=3, bits=8, kmax=2, max_width=16), "pool")
    for port in ("i__payload", "i__valid", "i__ready", "o__payload", "o__valid", "o__ready",
                 "kind", "k", "s", "width", "avg_mul", "avg_shift", "clk", "rst"):
        assert port in text
    assert "input [25:0] i__payload" in text and "output [25:0] o__payload" in text


@needs_yosys
def test_yosys_pool_avg_multiply_in_dsp48e1():
    """synth_xilinx -family xc6v (fast flow): one DSP48E1 a lane (the average multiply,
    16-bit codes, 3x3 windows: a 20-bit sum times an 18-bit avg_mul).  A short
    max_width keeps the run short (the line buffers are then distributed RAM)."""
    from convc.hdl.synth import synthesize
    dut = PoolEngine(lanes=2, bits=16, kmax=3, max_width=64)
    res = synthesize(dut, "pool")
    assert res["DSP48E1"] == dut.dsp_count == 2, res["cells"]

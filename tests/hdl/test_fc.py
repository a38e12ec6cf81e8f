"""hdl/fc.py (FCEngine) in Amaranth simulation against the numpy model (model_fc.py,
numeric.py only): several (in_lanes, out_lanes, bits, psum_words), bands back to back
with G = 1 and > 1, P = 1 (a linear layer) and P = psum_words, odd adder trees, both
saturation extremes, negative acc_shift, large bias_shift; random idle cycles on every
input stream and random backpressure; every output word compared.  Also throughput (no
wait after a band's first group), latency, parameter checks, the Verilog export and the
Yosys DSP48E1 count (= in_lanes * out_lanes).

The cocotb run on the exported Verilog is tests/hdl/test_fc_cocotb.py."""

from __future__ import annotations

import random

import numpy as np
import pytest

from needs import needs_yosys
import streams
from convc.hdl.export import to_verilog
from convc.hdl.fc import FCEngine, bias_layout, weights_layout
from convc.hdl.linebuffer import pixel_layout
from model_fc import band_expected, band_saturations, make_band


# ----------------------------------------------------------------------------
# simulation
# ----------------------------------------------------------------------------
def simulate(dut: FCEngine, bands, *, seed=0, idle_prob=0.0, bp_prob=0.0, trace=None):
    """Drive bias, weights and pixels (each with its own random idle cycles), the config
    with each band's first pixel (garbage otherwise), collect with backpressure, check
    nothing extra comes out.  Returns [(data list, first, last)].  ``trace``: a list
    that gets (cycle, i.valid, i.ready, o.valid, o.ready) of every cycle."""
    il, ol, bits = dut.in_lanes, dut.out_lanes, dut.bits
    play, wlay, blay = pixel_layout(il, bits), weights_layout(il, ol, bits), bias_layout(ol)
    n_out = sum(b["P"] for b in bands)
    got = []

    async def idle(ctx, rng):
        while idle_prob and rng.random() < idle_prob:
            await ctx.tick()

    async def bench_bias(ctx):
        rng = random.Random(seed * 7 + 1)
        for band in bands:
            await idle(ctx, rng)
            await streams.stream_put(ctx, dut.bias, blay.const([int(v) for v in band["b"]]))

    async def bench_weights(ctx):
        rng = random.Random(seed * 7 + 2)
        for band in bands:
            for g in range(band["G"]):
                await idle(ctx, rng)
                await streams.stream_put(ctx, dut.weights,
                                         wlay.const([[int(v) for v in row] for row in band["w"][g]]))

    def garbage(ctx, rng):
        ctx.set(dut.groups, rng.randrange(1 << 16))
        ctx.set(dut.pixels, rng.randrange(dut.psum_words + 1))
        ctx.set(dut.acc_shift, rng.randrange(-128, 128))
        ctx.set(dut.bias_shift, rng.randrange(64))

    async def bench_pixels(ctx):
        rng = random.Random(seed * 7 + 3)
        for band in bands:
            G, P = band["G"], band["P"]
            for g in range(G):
                for p in range(P):
                    await idle(ctx, rng)
                    if g == 0 and p == 0:
                        ctx.set(dut.groups, G)
                        ctx.set(dut.pixels, P)
                        ctx.set(dut.acc_shift, band["acc_shift"])
                        ctx.set(dut.bias_shift, band["bias_shift"])
                    px = play.const({"data": [int(v) for v in band["x"][g, p]],
                                     "first": int(p == 0), "last": int(p == P - 1)})
                    await streams.stream_put(ctx, dut.i, px)
                    garbage(ctx, rng)

    async def bench_out(ctx):
        out = await streams.collect(ctx, dut.o, n_out, rng=random.Random(seed * 7 + 4),
                                    bp_prob=bp_prob, timeout=200 + 40 * sum(b["G"] * b["P"] + 4 for b in bands))
        for v in out:
            got.append(([int(v.data[o]) for o in range(ol)], int(v.first), int(v.last)))
        await streams.expect_quiet(ctx, dut.o, dut.latency + 5)

    extra = [] if trace is None else [streams.trace_bench(dut, trace)]
    streams.run_testbenches(dut, [bench_bias, bench_weights, bench_pixels] + extra, bench_out)
    return got


def check(got, bands):
    want = [w for band in bands for w in band_expected(band)]
    streams.check_outputs(got, want)


# ----------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------
CASES = [  # in_lanes, out_lanes, bits, psum_words, [(G, P, extreme), ...]
    (1, 1, 8, 4, [(1, 1, None), (3, 4, None), (5, 1, "max"), (2, 2, "min")]),
    (4, 3, 16, 16, [(1, 16, None), (4, 7, "mixed"), (2, 1, None), (3, 16, None), (1, 1, "max")]),
    (3, 2, 6, 8, [(6, 3, "mixed"), (1, 8, "min"), (7, 1, None), (2, 5, None)]),
    (8, 1, 16, 1, [(4, 1, None), (1, 1, "mixed"), (9, 1, "min"), (2, 1, None)]),
    (5, 4, 12, 6, [(3, 6, None), (1, 2, "max"), (2, 1, "mixed"), (4, 5, None)]),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_fc_random_idle_backpressure(case):
    il, ol, bits, pw, shapes = CASES[case]
    rng = np.random.default_rng(100 + case)
    bands = [make_band(rng, il, ol, bits, G, P, extreme=e) for G, P, e in shapes]
    dut = FCEngine(in_lanes=il, out_lanes=ol, bits=bits, psum_words=pw)
    got = simulate(dut, bands, seed=case, idle_prob=0.25, bp_prob=0.3)
    check(got, bands)


def test_fc_saturation_both_extremes_and_shifts():
    """Both saturation extremes, a negative acc_shift (left shift), a large bias_shift,
    acc_shift beyond the accumulator width."""
    rng = np.random.default_rng(7)
    il, ol, bits = 2, 2, 8
    bands = [
        make_band(rng, il, ol, bits, 2, 3, extreme="max", acc_shift=0),
        make_band(rng, il, ol, bits, 2, 3, extreme="min", acc_shift=0),
        make_band(rng, il, ol, bits, 1, 2, acc_shift=-5),
        make_band(rng, il, ol, bits, 3, 2, acc_shift=127),
        make_band(rng, il, ol, bits, 3, 2, acc_shift=-128),
    ]
    bands.append(make_band(rng, il, ol, bits, 2, 2, bias_shift=40, bias=[3, -2]))
    bands.append(make_band(rng, il, ol, bits, 1, 3, bias_shift=63, bias=[0, 0]))
    assert band_saturations(bands[0]) == 2 * 3 and band_saturations(bands[1]) == 2 * 3
    dut = FCEngine(in_lanes=il, out_lanes=ol, bits=bits, psum_words=4)
    got = simulate(dut, bands, seed=3, idle_prob=0.3, bp_prob=0.4)
    check(got, bands)
    assert got[0][0] == [127, 127] and got[3][0] == [-128, -128]


def test_fc_throughput_and_latency():
    """No idle, no backpressure: after a band's first pixel, one pixel a cycle (the
    weights for group g+1 load while group g streams, also with P = 1); each output
    ``latency`` cycles after its element."""
    rng = np.random.default_rng(11)
    il, ol, bits = 4, 2, 16
    bands = [make_band(rng, il, ol, bits, 6, 1), make_band(rng, il, ol, bits, 3, 5),
             make_band(rng, il, ol, bits, 1, 4)]
    dut = FCEngine(in_lanes=il, out_lanes=ol, bits=bits, psum_words=8)
    assert dut.latency == 6 + 2
    trace = []
    got = simulate(dut, bands, trace=trace)
    check(got, bands)
    fires = [c for c, iv, ir, _, _ in trace if iv and ir]
    outs = [c for c, _, _, ov, orr in trace if ov and orr]
    assert len(fires) == sum(b["G"] * b["P"] for b in bands)
    # once started, the three bands stream without a gap: 6 + 15 + 4 pixels in 25 cycles
    # (weights for group g+1 load while group g streams; the next band's bias loads with
    # the current band's last group-0 pixel)
    assert fires == list(range(fires[0], fires[0] + 25))
    # the outputs: the last group's element + latency
    last_group = [fires[5], *fires[16:21], *fires[21:25]]
    assert outs == [c + dut.latency for c in last_group]


def test_fc_parameter_checks():
    for kw, msg in [(dict(in_lanes=0, out_lanes=1), "in_lanes=0"),
                    (dict(in_lanes=1, out_lanes=0), "out_lanes=0"),
                    (dict(in_lanes=1, out_lanes=1, bits=17), "bits=17"),
                    (dict(in_lanes=1, out_lanes=1, psum_words=0), "psum_words=0")]:
        with pytest.raises(ValueError, match=msg):
            FCEngine(**kw)


def test_fc_verilog_export_ports():
    text = to_verilog(FCEngine(in_lanes=2, out_lanes=3, bits=8, psum_words=16), "fc")
    for port in ("i__payload", "i__valid", "i__ready", "weights__payload", "weights__valid",
                 "weights__ready", "bias__payload", "bias__valid", "bias__ready", "o__payload",
                 "o__valid", "o__ready", "groups", "pixels", "acc_shift", "bias_shift", "clk", "rst"):
        assert port in text
    assert "input [17:0] i__payload" in text       # 2 x 8 + first + last
    assert "input [47:0] weights__payload" in text  # 3 x 2 x 8
    assert "input [95:0] bias__payload" in text     # 3 x 32
    assert "output [25:0] o__payload" in text       # 3 x 8 + first + last


@needs_yosys
def test_yosys_fc_multiplies_in_dsp48e1():
    """synth_xilinx -family xc6v (fast flow): exactly in_lanes * out_lanes DSP48E1, the
    partial sums in block RAM."""
    from convc.hdl.synth import synthesize
    dut = FCEngine(in_lanes=3, out_lanes=2, bits=16, psum_words=512)
    res = synthesize(dut, "fc")
    assert res["DSP48E1"] == dut.dsp_count == 6, res["cells"]
    assert res["RAMB18E1"] + 2 * res["RAMB36E1"] >= 2, res["cells"]  # 2 x 512 x 48-bit psums

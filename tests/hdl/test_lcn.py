"""hdl/lcn.py (LCNEngine) in Amaranth simulation against convc.sim.golden (one-record
OP_LCN programs, tests/hdl/model_lcn.py): every a_o word (v[0..C-1], s) of sweep A,
the frame mean, and every b_o word (y[0..C-1]) of sweep B, for C=3 maps with K=3 and
K=5 (and K=1, even K=4, C < channels), frames from 1x1 to 12x16 (width = max_width
once), random windows and inputs (extremes too), random idle cycles and backpressure,
back-to-back frames; plus the padder alone, parameter checks, the Verilog export and
the Yosys DSP count.

The cocotb run on the exported Verilog is tests/hdl/test_lcn_cocotb.py."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from needs import needs_yosys
import streams
from convc.compiler import isa
from convc.hdl.export import to_verilog
from convc.hdl.framepad import FramePadder
from convc.hdl.lcn import LCNEngine, lcn_dsp_count
from model_lcn import LCNCase, golden_lcn, lcn_job, random_case


def _arr(view, n):
    return [int(view[k]) for k in range(n)]


def _a_dict(view, C):
    return {"v": _arr(view.v, C), "s": int(view.s), "first": int(view.first),
            "last": int(view.last)}


def _b_dict(view, C):
    return {"data": _arr(view.data, C), "first": int(view.first), "last": int(view.last)}


def _pad_maps(words, key, channels):
    """Expected words of a C-map frame on an engine with more channels (zeros)."""
    out = []
    for w in words:
        w = dict(w)
        w[key] = list(w[key]) + [0] * (channels - len(w[key]))
        out.append(w)
    return out


async def _configure(ctx, dut, case: LCNCase, load=True):
    ctx.set(dut.n_maps, case.C)
    ctx.set(dut.width, case.W)
    ctx.set(dut.k, case.K)
    for name in ("m_shift", "sq_shift", "s2_shift", "y_shift", "mean_mul", "mean_shift", "eps"):
        ctx.set(getattr(dut, name), getattr(case, name))
    if not load:
        return
    words = case.window_words()
    sq = isa.table_words(case.sqrt)
    rc = isa.table_words(case.recip)
    n = max(len(words), len(sq))
    order = list(range(len(words)))
    random.Random(len(words)).shuffle(order)          # any order
    for k in range(n):
        if k < len(words):
            a = order[k]
            ctx.set(dut.window.addr, a)
            ctx.set(dut.window.data, words[a] & 0xFFFF)
        ctx.set(dut.window.en, k < len(words))
        for port, tw in ((dut.sqrt_table, sq), (dut.recip_table, rc)):
            ctx.set(port.addr, k % len(tw))
            ctx.set(port.data, int(tw[k % len(tw)]))
            ctx.set(port.en, k < len(tw))
        await ctx.tick()
    ctx.set(dut.window.en, 0)
    ctx.set(dut.sqrt_table.en, 0)
    ctx.set(dut.recip_table.en, 0)


def simulate(dut: LCNEngine, jobs, *, seed=0, idle_prob=0.0, bp_prob=0.0):
    """``jobs``: lists of cases sharing one configuration (only ``x`` differs).  Per job:
    configure and load, sweep A of every frame back to back, then sweep B of the last
    frame (it uses the engine's mean of that frame).  Returns (a words, b words, means)
    received, one list per job."""
    C = dut.channels
    got_a, got_b, means = [], [], []
    sync = {"a_done": -1, "b_done": -1}

    async def driver(ctx):
        rng = random.Random(seed * 3 + 1)
        for j, job in enumerate(jobs):
            await _configure(ctx, dut, job[0])
            payloads = []
            for case in job:
                H, W = case.H, case.W
                for k in range(H * W):
                    px = [int(case.x[c, k // W, k % W]) for c in range(case.C)]
                    px += [rng.randint(-(1 << 15), (1 << 15) - 1) for _ in range(C - case.C)]
                    payloads.append({"data": px, "first": int(k == 0), "last": int(k == H * W - 1)})
            await streams.drive(ctx, dut.a_i, payloads, rng=rng, idle_prob=idle_prob)
            while sync["a_done"] < j:
                await ctx.tick()
            want = golden_lcn(job[-1])
            bin_ = [dict(w) for w in want.a_words()]
            for w in bin_:
                w["v"] = w["v"] + [0] * (C - len(w["v"]))
            await streams.drive(ctx, dut.b_i, bin_, rng=rng, idle_prob=idle_prob)
            while sync["b_done"] < j:
                await ctx.tick()

    async def collector(ctx):
        rng = random.Random(seed * 3 + 2)
        for j, job in enumerate(jobs):
            n = sum(case.H * case.W for case in job)
            out = await streams.collect(ctx, dut.a_o, n, rng=rng, bp_prob=bp_prob,
                                        timeout=400 + 40 * n)
            got_a.append([_a_dict(v, C) for v in out])
            for _ in range(20):                       # the mean follows in a few cycles
                if ctx.get(dut.mean_valid):
                    break
                await ctx.tick()
            assert ctx.get(dut.mean_valid), "mean_valid did not rise"
            means.append(ctx.get(dut.mean))
            sync["a_done"] = j
            n = job[-1].H * job[-1].W
            out = await streams.collect(ctx, dut.b_o, n, rng=rng, bp_prob=bp_prob,
                                        timeout=400 + 40 * n)
            got_b.append([_b_dict(v, C) for v in out])
            sync["b_done"] = j
        # nothing extra comes out
        ctx.set(dut.a_o.ready, 1)
        ctx.set(dut.b_o.ready, 1)
        for _ in range(60):
            _, _, va, vb = await ctx.tick().sample(dut.a_o.valid, dut.b_o.valid)
            assert not va and not vb, "extra output word"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(collector)
    sim.run()
    return got_a, got_b, means


def check(dut, jobs, got_a, got_b, means):
    C = dut.channels
    for j, job in enumerate(jobs):
        results = [golden_lcn(case) for case in job]
        for r in results:
            assert r.overflows == 0
        want_a = [w for r in results for w in _pad_maps(r.a_words(), "v", C)]
        want_b = _pad_maps(results[-1].b_words(), "data", C)
        for what, got, want in (("a_o", got_a[j], want_a), ("b_o", got_b[j], want_b)):
            assert len(got) == len(want), f"job {j} {what}: {len(got)} words, want {len(want)}"
            bad = [k for k in range(len(want)) if got[k] != want[k]]
            assert not bad, (f"job {j} {what}: {len(bad)} of {len(want)} words differ; first #{bad[0]}"
                             f"\n got  {got[bad[0]]}\n want {want[bad[0]]}")
        assert means[j] == results[-1].mean, f"job {j}: mean {means[j]} want {results[-1].mean}"
    return sum(len(g) for g in got_a) + sum(len(g) for g in got_b)


def test_k3_k5_small_frames_idle_backpressure():
    """C=3, K=3 and K=5 (kmax=5): 1x1 .. 12x16 (16 = max_width), random everything."""
    rng = random.Random(1)
    dut = LCNEngine(channels=3, bits=16, kmax=5, max_width=16)
    jobs = [
        lcn_job(rng, 3, 3, [(1, 1)]),
        lcn_job(rng, 3, 5, [(1, 1)]),
        lcn_job(rng, 3, 5, [(2, 3)]),
        lcn_job(rng, 3, 3, [(5, 4)]),
        lcn_job(rng, 3, 5, [(12, 16)]),                 # width = max_width
        lcn_job(rng, 3, 3, [(7, 9)], extreme=True),     # extremes: saturation everywhere
        lcn_job(rng, 3, 5, [(3, 16), (6, 16)]),         # back-to-back frames
        lcn_job(rng, 3, 5, [(4, 2)]),
        lcn_job(rng, 3, 5, [(9, 11)], gaussian=True),   # a compiler-like Gaussian window
    ]
    got = simulate(dut, jobs, seed=1, idle_prob=0.2, bp_prob=0.3)
    assert check(dut, jobs, *got) > 0
    assert any(golden_lcn(c).saturations for job in jobs for c in job)


def test_k1_even_k_fewer_maps_full_rate():
    """K=1 (no padding), even K=4, C=2 maps on a 3-channel engine (the third is
    ignored, its v is 0); no idle cycles or backpressure (full-rate handshakes)."""
    rng = random.Random(2)
    dut = LCNEngine(channels=3, bits=16, kmax=5, max_width=16)
    jobs = [
        lcn_job(rng, 3, 1, [(3, 5)]),
        lcn_job(rng, 3, 4, [(6, 7)]),
        lcn_job(rng, 2, 3, [(5, 6)]),
        lcn_job(rng, 1, 5, [(4, 3), (2, 3)]),
    ]
    got = simulate(dut, jobs, seed=2)
    check(dut, jobs, *got)


@pytest.mark.parametrize("K,H,W", [(5, 6, 10), (3, 4, 16), (1, 3, 3)])
def test_sweep_timing_full_rate(K, H, W):
    """No idle, no backpressure.  Sweep A: the first a_o word comes 2*D + latency_a
    cycles after pixel (0, 0) is accepted (D = hp*(W+hp) + hp: the centred windows of
    both stages), the last (H + 2hp)(W + hp) + hp - 1 + latency_a after it, one a_o word
    a cycle within each row of windows.  Sweep B: one element a cycle, each out exactly
    latency_b = 12 cycles after it went in."""
    dut = LCNEngine(channels=3, bits=16, kmax=5, max_width=16)
    case = random_case(random.Random(K), 3, H, W, K)
    want = golden_lcn(case)
    hp = K - 1 - K // 2
    D = hp * (W + hp) + hp
    a_in = [{"data": [int(case.x[c, k // W, k % W]) for c in range(3)], "first": int(k == 0),
             "last": int(k == H * W - 1)} for k in range(H * W)]
    b_in = want.a_words()
    res = {}

    async def run(ctx, i_port, o_port, payloads, key, conv):
        ctx.set(o_port.ready, 1)
        layout = i_port.payload.shape()
        n_in, t_in, t_out, outs = 0, [], [], []
        for cyc in range(4 * len(payloads) + 400):
            if n_in < len(payloads):
                ctx.set(i_port.payload, layout.const(payloads[n_in]))
            ctx.set(i_port.valid, n_in < len(payloads))
            _, _, ir, ov, op = await ctx.tick().sample(i_port.ready, o_port.valid, o_port.payload)
            if ir and n_in < len(payloads):
                t_in.append(cyc)
                n_in += 1
            if ov:
                t_out.append(cyc)
                outs.append(conv(op, 3))
            if len(outs) == len(payloads):
                break
        ctx.set(i_port.valid, 0)
        res[key] = (t_in, t_out, outs)

    async def bench(ctx):
        await _configure(ctx, dut, case)
        await run(ctx, dut.a_i, dut.a_o, a_in, "a", _a_dict)
        for _ in range(10):
            await ctx.tick()
        await run(ctx, dut.b_i, dut.b_o, b_in, "b", _b_dict)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    t_in, t_out, outs = res["a"]
    assert outs == want.a_words()
    assert t_out[0] - t_in[0] == 2 * D + dut.latency_a
    assert t_out[-1] - t_in[0] == (H + 2 * hp) * (W + hp) + hp - 1 + dut.latency_a
    for r in range(H):                                    # a row of windows: one a cycle
        row = t_out[r * W:(r + 1) * W]
        assert row == list(range(row[0], row[0] + W))
    t_in, t_out, outs = res["b"]
    assert outs == want.b_words()
    assert t_in == list(range(t_in[0], t_in[0] + H * W))
    assert [o - i for i, o in zip(t_in, t_out)] == [dut.latency_b] * (H * W)


def test_narrow_codes_unsplit_rows():
    """bits=6, one map: the column sums fit the 25-bit A port, so each row tap is one
    DSP (the unsplit path); narrow PWL tables; idle cycles and backpressure."""
    rng = random.Random(6)
    dut = LCNEngine(channels=1, bits=6, kmax=3, max_width=8, max_segments=4)
    assert not dut._w["split"] and dut.dsp_count == 2 * (3 + 3) + 1 + 1 + 4
    jobs = [lcn_job(rng, 1, 3, [(5, 8)], bits=6), lcn_job(rng, 1, 3, [(4, 3)], bits=6, extreme=True),
            lcn_job(rng, 1, 2, [(3, 5)], bits=6)]
    got = simulate(dut, jobs, seed=6, idle_prob=0.2, bp_prob=0.3)
    check(dut, jobs, *got)


def test_padder_alone():
    """FramePadder: (H + pad) x (W + pad) out, zeros appended, first/last placed."""
    dut = FramePadder(bits=8, max_width=8, max_pad=3)
    frames = [(3, 4, 2), (1, 1, 3), (2, 5, 0), (2, 2, 1)]
    payloads, want = [], []
    rng = random.Random(3)
    for H, W, pad in frames:
        x = [[rng.randint(-128, 127) for _ in range(W)] for _ in range(H)]
        for r in range(H):
            for c in range(W):
                payloads.append(({"data": x[r][c], "first": int(r == c == 0),
                                  "last": int(r == H - 1 and c == W - 1)}, W, pad))
        Hp, Wp = H + pad, W + pad
        for r in range(Hp):
            for c in range(Wp):
                want.append({"data": x[r][c] if r < H and c < W else 0,
                             "first": int(r == c == 0), "last": int(r == Hp - 1 and c == Wp - 1)})
    got = []

    async def bench_in(ctx):
        prng = random.Random(5)
        for p, W, pad in payloads:
            ctx.set(dut.width, W)
            ctx.set(dut.pad, pad)
            while prng.random() < 0.3:
                await ctx.tick()
            await streams.stream_put(ctx, dut.i, p)
            # hold width/pad through the padding of the frame's last row
            if p["last"]:
                for _ in range((pad + 1) * (W + pad) * 4 + 10):
                    await ctx.tick()

    async def bench_out(ctx):
        out = await streams.collect(ctx, dut.o, len(want), rng=random.Random(6), bp_prob=0.3)
        got.extend({"data": int(v.data), "first": int(v.first), "last": int(v.last)} for v in out)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench_in, background=True)
    sim.add_testbench(bench_out)
    sim.run()
    assert got == want


def test_parameter_checks_and_sizes():
    for kw, msg in ((dict(channels=0), "channels=0"), (dict(bits=17), "bits=17"),
                    (dict(kmax=32), "kmax=32"), (dict(max_width=0), "max_width=0"),
                    (dict(max_width=4095), "max_width=4095")):
        args = dict(channels=3, bits=16, kmax=9, max_width=328) | kw
        with pytest.raises(ValueError, match=msg):
            LCNEngine(**args)
    dut = LCNEngine(channels=3, bits=16, kmax=9, max_width=328)
    dut._MustUse__silence = True
    assert dut.max_pad == 4 and dut.fifo_depth == 4 * 328 + 4 + 8
    assert dut.latency_b == 12
    assert dut.dsp_count == lcn_dsp_count(3, 9) == 2 * (9 + 18) + 3 + 3 + 4


def test_verilog_export_ports():
    text = to_verilog(LCNEngine(channels=2, bits=8, kmax=3, max_width=8), "lcn")
    for port in ("a_i__payload", "a_i__valid", "a_i__ready", "a_o__payload", "b_i__payload",
                 "b_o__payload", "b_o__ready", "window__addr", "sqrt_table__en",
                 "recip_table__data", "mean_valid", "n_maps", "m_shift", "mean_mul", "clk", "rst"):
        assert port in text


@needs_yosys
def test_yosys_dsp_count_small():
    """Fast Yosys flow on a small engine (16-bit: the split row products): the DSP48E1
    count equals lcn_dsp_count (every multiplier packs into one slice).  For kmax=9,
    channels=3, max_width=328 it gives 64 DSP48E1 and 26 RAMB18E1 (about 3 min)."""
    from convc.hdl.synth import synthesize
    res = synthesize(LCNEngine(channels=1, bits=16, kmax=3, max_width=8, max_segments=4), "lcn")
    assert res["DSP48E1"] == lcn_dsp_count(1, 3) == 2 * (3 + 6) + 1 + 1 + 4

"""hdl/conv.py (ConvEngine) in Amaranth simulation against the numpy model
(tests/hdl/model_conv.py, numeric.py only): random weights, pixels and biases for
K = kmax and K < kmax, stride 1 and 2, K equal to the image (one output), one and several
input groups (partial sums on chip), Pi = 1 and > 1, saturating outputs (both extremes
checked), width = max_width, several bands back to back, with and without the preload
stream (second line-buffer bank), concurrent or serial pixel feeders, random idle cycles
on every input and random backpressure on the output; every output word compared.  Also
the latency, one pixel a cycle, the preload overlap, ``band_cycles`` against the
simulation, the configuration sampling, ``err``, parameter checks, the Verilog ports and
a small Yosys DSP count.  Slow (``-m slow``): 100 random configurations, and the Yosys
DSP count at the sceneparse size.

The cocotb run on the exported Verilog is tests/hdl/test_conv_cocotb.py; the measured
figures and the resource counts are in bench/bench_conv_engine.py."""

from __future__ import annotations

import random
import zlib

import numpy as np
import pytest
from amaranth.sim import Simulator

from needs import needs_yosys
import streams
from convc.compiler.hwconfig import HardwareConfig
from convc.hdl.conv import ConvEngine, bias_layout, conv_out_layout
from convc.hdl.convband import BandError
from convc.hdl.export import to_verilog
from convc.hdl.linebuffer import WindowGenerator, pixel_layout
from model_conv import Band, band_streams, conv_band, expected_outputs, random_band


def make_hw(Pi=2, Po=3, kmax=3, bits=8, max_width=16, psum_words=64) -> HardwareConfig:
    return HardwareConfig(board="test", clock_mhz=100.0, bits=bits, kmax=kmax, in_lanes=Pi,
                          out_lanes=Po, max_width=max_width, psum_words=psum_words)


def group_chunks(elements):
    """Split a stream's elements at its ``last`` flags (one chunk per group)."""
    chunks, cur = [], []
    for el in elements:
        cur.append(el)
        if el[2]:
            chunks.append(cur)
            cur = []
    assert not cur
    return chunks


def simulate(dut: ConvEngine, bands: list[Band], *, seed=0, idle_prob=0.0, bp_prob=0.0,
             timeout=None, trace=None, serial_pixels=False):
    """Drive every band (bias + config, weights, pixels: three concurrent drivers with
    random idle cycles; garbage on the config inputs except when the bias is offered;
    the pixel streams ``i`` and ``ip`` from two concurrent drivers, or with
    ``serial_pixels`` from one driver, group by group: ``ip`` part, then ``i`` part),
    collect the outputs with random backpressure, check nothing extra comes out.
    Returns the outputs as ``(data list, first, last)``.  ``trace`` (a dict) receives
    clock-edge numbers of every handshake: ``px_accept`` (``i``), ``ip_accept``, ``out``,
    ``bias_accept``, ``weight_accept``, and ``idle`` (``busy`` fell: a new bias can go in)."""
    Pi, Po = dut.in_lanes, dut.out_lanes
    blay, play = bias_layout(Po), pixel_layout(Pi, dut.bits)
    streams_ = [band_streams(b) for b in bands]
    n_out = sum(b.conv_h * b.conv_w for b in bands)
    got = []

    def garbage_cfg(ctx, rng):
        ctx.set(dut.kernel, rng.randrange(32))
        ctx.set(dut.stride, rng.randrange(16))
        ctx.set(dut.width, rng.randrange(4096))
        ctx.set(dut.rows, rng.randrange(4096))
        ctx.set(dut.groups, rng.randrange(1 << 16))
        ctx.set(dut.acc_shift, rng.randrange(-128, 128))
        ctx.set(dut.bias_shift, rng.randrange(64))
        ctx.set(dut.preload, rng.randrange(2))

    async def monitor(ctx):  # handshakes, sampled at each clock edge
        n = 0
        busy_prev = 0
        async for _, _, iv, ir, ov, orr, bv, br, wv, wr, pv, pr, busy in ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.o.valid, dut.o.ready, dut.bias.valid,
                dut.bias.ready, dut.weight.valid, dut.weight.ready, dut.ip.valid, dut.ip.ready,
                dut.busy):
            for key, hit in (("px_accept", iv and ir), ("out", ov and orr), ("ip_accept", pv and pr),
                             ("bias_accept", bv and br), ("weight_accept", wv and wr),
                             ("idle", busy_prev and not busy)):
                if hit:
                    trace.setdefault(key, []).append(n)
            n += 1
            busy_prev = busy

    async def drive_bias(ctx):
        rng = random.Random(seed * 7 + 1)
        for b, (bias, *_) in zip(bands, streams_):
            garbage_cfg(ctx, rng)
            while idle_prob and rng.random() < idle_prob:
                await ctx.tick()
                garbage_cfg(ctx, rng)
            for name, val in b.config().items():
                ctx.set(getattr(dut, name), val)
            await streams.stream_put(ctx, dut.bias, blay.const(bias))
            garbage_cfg(ctx, rng)

    async def drive_weights(ctx):
        words = [w for st in streams_ for w in st[1]]
        await streams.drive(ctx, dut.weight, words, rng=random.Random(seed * 7 + 2),
                            idle_prob=idle_prob)

    def drive_pixels(port, index, rng_seed):
        async def bench(ctx):
            rng = random.Random(rng_seed)
            for st in streams_:
                for px, fi, la in st[index]:
                    while idle_prob and rng.random() < idle_prob:
                        await ctx.tick()
                    ctx.set(port.valid, 1)
                    ctx.set(port.payload, play.const({"data": px, "first": fi, "last": la}))
                    await ctx.tick().until(port.ready)
                    ctx.set(port.valid, 0)
        return bench

    async def bench_out(ctx):
        rng = random.Random(seed * 7 + 4)
        limit = timeout or 2000 + 40 * sum(b.groups * b.rows * b.width + b.weights.size for b in bands)
        k = 0
        while len(got) < n_out:
            ready = not (bp_prob and rng.random() < bp_prob)
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                got.append(([int(payload.data[o]) for o in range(Po)], int(payload.first),
                             int(payload.last)))
            k += 1
            assert k < limit, f"timeout: {len(got)} of {n_out} outputs after {k} cycles"
        ctx.set(dut.o.ready, 1)
        for _ in range(dut.latency + 6):
            _, _, valid, busy = await ctx.tick().sample(dut.o.valid, dut.busy)
            assert not valid, "extra output word"
        assert not busy, "engine still busy after its last output"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    if trace is not None:
        sim.add_testbench(monitor, background=True)
    sim.add_testbench(drive_bias, background=True)
    sim.add_testbench(drive_weights, background=True)
    async def drive_serial(ctx):
        rng = random.Random(seed * 7 + 3)
        for st in streams_:
            pre = group_chunks(st[3])
            main = group_chunks(st[2])
            for g in range(len(main)):
                for port, els in ((dut.ip, pre[g] if pre else []), (dut.i, main[g])):
                    for px, fi, la in els:
                        while idle_prob and rng.random() < idle_prob:
                            await ctx.tick()
                        await streams.stream_put(ctx, port, play.const({"data": px, "first": fi, "last": la}))

    if serial_pixels:
        sim.add_testbench(drive_serial, background=True)
    else:
        sim.add_testbench(drive_pixels(dut.i, 2, seed * 7 + 3), background=True)
        sim.add_testbench(drive_pixels(dut.ip, 3, seed * 7 + 5), background=True)
    sim.add_testbench(bench_out)
    sim.run()
    return got


def check(got, bands):
    for b in bands:
        assert conv_band(b)[3] == 0, "test band overflows the 48-bit accumulator"
    want = [w for b in bands for w in expected_outputs(b)]
    streams.check_outputs(got, want)
    return want


def saturation_ends(bands):
    """(number of outputs at -2**(b-1), number at 2**(b-1)-1, number strictly inside)."""
    lo = hi = mid = 0
    for b in bands:
        z = conv_band(b)[0]
        assert conv_band(b)[3] == 0, "test band overflows 48 bits"
        lo += int((z == -(1 << (b.bits - 1))).sum())
        hi += int((z == (1 << (b.bits - 1)) - 1).sum())
        mid += int(((z > -(1 << (b.bits - 1))) & (z < (1 << (b.bits - 1)) - 1)).sum())
    return lo, hi, mid


# (Pi, Po, kmax, bits, max_width, psum_words, [band kwargs...])
CASES = {
    # K = kmax, stride 1, G = 1, width = max_width
    "k3_s1_g1_maxw": (2, 3, 3, 8, 10, 64, [dict(kernel=3, stride=1, rows=5, width=10, groups=1)]),
    # K < kmax, stride 2, G > 1 (partial sums), bias shift
    "k2of3_s2_g3": (2, 3, 3, 8, 12, 64, [dict(kernel=2, stride=2, rows=6, width=9, groups=3, bias_shift=3)]),
    # Pi = 1, K = kmax = image (one output per group), many groups: psum RAW guard
    "pi1_k_eq_image_g4": (1, 2, 3, 6, 8, 8, [dict(kernel=3, stride=1, rows=3, width=3, groups=4)]),
    # K = 1 (every pixel a window), stride 2, two bands of different shapes
    "k1_two_bands": (2, 2, 3, 8, 8, 32, [dict(kernel=1, stride=2, rows=5, width=8, groups=2),
                                         dict(kernel=3, stride=2, rows=7, width=7, groups=2,
                                              bias_shift=5)]),
    # 16 bits, kmax 4, K = 4 and then K = 2 (zero weights outside), stride 1, G = 2
    "b16_k4_then_k2": (2, 2, 4, 16, 9, 64, [dict(kernel=4, stride=1, rows=6, width=9, groups=2),
                                            dict(kernel=2, stride=1, rows=4, width=5, groups=3)]),
    # conv_w = 2, conv_h = 1 per group: psum guard with two outputs
    "two_outputs_g3": (2, 2, 3, 8, 8, 16, [dict(kernel=3, stride=2, rows=3, width=5, groups=3)]),
    # --- the same kinds of band with the preload stream (second line-buffer bank) ---
    "preload_k3_s1_g3_maxw": (2, 3, 3, 8, 10, 64, [dict(kernel=3, stride=1, rows=6, width=10, groups=3,
                                                        preload=True)]),
    "preload_k2of3_s2_g4": (2, 2, 3, 8, 12, 64, [dict(kernel=2, stride=2, rows=5, width=9, groups=4,
                                                      bias_shift=2, preload=True)]),
    # K = image: the main stream carries one row a group
    "preload_k_eq_image_g5": (1, 2, 3, 6, 8, 8, [dict(kernel=3, stride=1, rows=3, width=3, groups=5,
                                                      preload=True)]),
    # bands alternating preload / no preload / K = 1 (preload ignored), kmax 4
    "preload_mixed_bands": (2, 2, 4, 8, 9, 64, [dict(kernel=4, stride=1, rows=7, width=9, groups=3, preload=True),
                                                dict(kernel=3, stride=2, rows=7, width=8, groups=2),
                                                dict(kernel=1, stride=1, rows=2, width=9, groups=3, preload=True),
                                                dict(kernel=2, stride=1, rows=2, width=3, groups=4, preload=True)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_random_bands_idle_backpressure(name):
    Pi, Po, kmax, bits, mw, pw, kws = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    bands = [random_band(rng, Pi=Pi, Po=Po, bits=bits, **kw) for kw in kws]
    dut = ConvEngine(make_hw(Pi, Po, kmax, bits, mw, pw))
    for b in bands:
        dut.check_band(b.kernel, b.stride, b.width, b.rows, b.groups, b.acc_shift, b.bias_shift)
    got = simulate(dut, bands, seed=len(name), idle_prob=0.2, bp_prob=0.3)
    check(got, bands)


@pytest.mark.parametrize("rows,width", [(1, 1), (1, 2), (2, 1)])
def test_tiny_groups_psum_read_after_write(rows, width):
    """Groups of one or two pixels (K = 1, one weight word a group: nothing else slows
    the stream): group g+1 reads a partial sum right after group g wrote it, back to
    back (the read-after-write guard); then the same with idle cycles."""
    rng = np.random.default_rng(11 + rows * 3 + width)
    bands = [random_band(rng, Pi=1, Po=1, bits=8, kernel=1, stride=1, rows=rows, width=width,
                         groups=6, acc_shift=2) for _ in range(2)]
    dut = ConvEngine(make_hw(1, 1, 2, 8, 4, 4))
    check(simulate(dut, bands, seed=12), bands)
    check(simulate(dut, bands, seed=13, idle_prob=0.3, bp_prob=0.3), bands)


@pytest.mark.parametrize("preload", [False, True])
def test_serial_pixel_feeder(preload):
    """One driver feeds ``ip`` and ``i`` in sequence (group g's preload rows, then its
    other rows): the engine must not wait for both streams at once."""
    rng = np.random.default_rng(21)
    bands = [random_band(rng, Pi=2, Po=2, bits=8, kernel=3, stride=1, rows=4, width=6, groups=3,
                         preload=preload),
             random_band(rng, Pi=2, Po=2, bits=8, kernel=2, stride=2, rows=5, width=5, groups=2,
                         preload=preload)]
    dut = ConvEngine(make_hw(2, 2, 3, 8, 8, 32))
    check(simulate(dut, bands, seed=22, idle_prob=0.2, bp_prob=0.3, serial_pixels=True), bands)


def test_saturation_both_extremes_and_no_stalls():
    """Outputs saturate at both ends (and many do not); no idle cycles, no
    backpressure (the back-to-back path); three bands."""
    rng = np.random.default_rng(3)
    kw = dict(Pi=2, Po=3, bits=8, kernel=3, stride=1, rows=5, width=8, groups=2)
    bands = [random_band(rng, **kw, acc_shift=s) for s in (8, 12, 7)]
    lo, hi, mid = saturation_ends(bands)
    assert lo > 0 and hi > 0 and mid > 0, (lo, hi, mid)
    dut = ConvEngine(make_hw(2, 3, 3, 8, 8, 32))
    check(simulate(dut, bands, seed=5), bands)


def test_negative_and_large_shifts():
    """acc_shift < 0 (left shift: nearly everything saturates), 0, and a large right
    shift (everything rounds to 0 or -1 / 1); bias_shift large."""
    rng = np.random.default_rng(4)
    kw = dict(Pi=1, Po=2, bits=6, kernel=2, stride=1, rows=3, width=4, groups=1)
    bands = [random_band(rng, **kw, acc_shift=-3), random_band(rng, **kw, acc_shift=0),
             random_band(rng, **kw, acc_shift=40, bias_shift=20)]
    dut = ConvEngine(make_hw(1, 2, 2, 6, 6, 8))
    check(simulate(dut, bands, seed=6, idle_prob=0.1, bp_prob=0.2), bands)


def test_rounding_ties():
    """Accumulators at exact .5 ties: round half up (2.5 -> 3, -2.5 -> -2)."""
    K, bits = 1, 8
    # one pixel per output: acc = w * x + (b << 0); acc_shift 1 -> ties on odd acc
    xs = np.array([5, -5, 3, -3, 1, -1, 7, -7], dtype=np.int64)
    band = Band(kernel=K, stride=1, acc_shift=1, bias_shift=0, bits=bits,
                bias=np.array([0, 0], dtype=np.int64),
                weights=np.ones((1, 2, 1, 1, 1), dtype=np.int64),
                pixels=xs.reshape(1, 1, 1, 8))
    want = expected_outputs(band)
    assert [w[0][0] for w in want] == [3, -2, 2, -1, 1, 0, 4, -3]
    dut = ConvEngine(make_hw(1, 2, 1, bits, 8, 8))
    check(simulate(dut, [band], seed=7), [band])


def _throughput_run(dut, band):
    trace = {}
    got = simulate(dut, [band], trace=trace)
    check(got, [band])
    return trace


def test_latency_and_one_pixel_a_cycle():
    """No stalls: after the group-0 weights, one pixel a cycle for the whole band
    (weights of later groups load while the previous group streams: no gap between
    groups); the first output leaves ``latency`` cycles after the pixel that completes
    its window; outputs of a row come one a cycle (stride 1)."""
    hw = make_hw(2, 3, 3, 8, 12, 128)
    dut = ConvEngine(hw)
    rng = np.random.default_rng(8)
    band = random_band(rng, Pi=2, Po=3, bits=8, kernel=3, stride=1, rows=6, width=12, groups=3)
    tr = _throughput_run(dut, band)
    px = tr["px_accept"]
    assert len(px) == 3 * 6 * 12
    # the stream waits once, at group 0's first valid window, for the group-0 weights
    # (Po*Pi*K*K words, one a cycle); after that not a single stall
    # (the window generator takes the two pixels behind the waiting window)
    first_win = 2 * 12 + 2
    k0 = first_win + WindowGenerator.LATENCY
    assert px[-1] - px[k0] == len(px) - 1 - k0, "pixel stream stalled after group 0"
    assert px[k0] - px[0] <= band.weights[0].size + k0
    # first output: pixel (r=2, c=2) of the last group
    k = 2 * 6 * 12 + 2 * 12 + 2
    assert tr["out"][0] - px[k] == dut.latency
    row = tr["out"][:10]
    assert row == list(range(row[0], row[0] + 10))


def test_preload_throughput_is_the_ideal_band():
    """With the preload stream: group g+1's first K-1 rows go into the other line-buffer
    bank while group g streams, so after group 0 the main stream ``i`` never stops and
    the band takes (K-1)*Wp + G*(R-K+1)*Wp cycles plus the latency."""
    K, R, Wp, G = 3, 8, 12, 4     # 72 main pixels a group > 54 weight words a group
    dut = ConvEngine(make_hw(2, 3, 3, 8, 12, 128))
    rng = np.random.default_rng(18)
    band = random_band(rng, Pi=2, Po=3, bits=8, kernel=K, stride=1, rows=R, width=Wp, groups=G,
                       preload=True)
    tr = _throughput_run(dut, band)
    px, ip, out = tr["px_accept"], tr["ip_accept"], tr["out"]
    main_rows = R - K + 1
    assert len(px) == G * main_rows * Wp and len(ip) == G * (K - 1) * Wp
    # ip: group 0's preload is one pixel a cycle from the start; group g+1's during group g
    assert ip[:(K - 1) * Wp] == list(range(ip[0], ip[0] + (K - 1) * Wp))
    for g in range(1, G):
        pre = ip[g * (K - 1) * Wp:(g + 1) * (K - 1) * Wp]
        main_prev = px[(g - 1) * main_rows * Wp:g * main_rows * Wp]
        assert pre[0] >= main_prev[0] and pre[-1] <= main_prev[-1] + 1, f"group {g} preload not overlapped"
    # the main stream never stops once group 0's first window has its weights (54 words
    # load during the 24 preload pixels and a few of group 0's main pixels)
    k0 = K - 1 + WindowGenerator.LATENCY
    assert px[-1] - px[k0] == len(px) - 1 - k0, "main stream stalled"
    total = out[-1] - tr["bias_accept"][0] + 1
    cost_compute = (K - 1) * Wp + G * max(R - (K - 1), K - 1) * Wp   # the ideal band
    weight_wait = max(0, band.weights[0].size - ((K - 1) * Wp + K - 1))
    assert total <= cost_compute + weight_wait + dut.latency + 3, (total, cost_compute)


@pytest.mark.parametrize("kernel,stride,rows,width,groups,preload", [
    (3, 1, 8, 12, 4, True), (3, 1, 8, 12, 4, False), (2, 2, 5, 12, 3, True),
    (3, 1, 4, 12, 3, True),      # main part (2 rows) as long as the preload (2 rows)
    (3, 1, 3, 12, 3, True),      # main part (1 row) shorter than the preload
    (3, 1, 3, 5, 3, True),       # weight-bound: 54 words a group, 5 main pixels
    (1, 1, 3, 12, 2, True),      # K = 1: nothing to preload
])
def test_band_cycles_matches_simulation(kernel, stride, rows, width, groups, preload):
    """:meth:`ConvEngine.band_cycles` (the timing the bench and the cost comparison use)
    against the simulated band, no stalls from outside."""
    dut = ConvEngine(make_hw(2, 3, 3, 8, 12, 128))
    band = random_band(np.random.default_rng(rows * width), Pi=2, Po=3, bits=8, kernel=kernel,
                       stride=stride, rows=rows, width=width, groups=groups, preload=preload)
    tr = _throughput_run(dut, band)
    measured = tr["idle"][0] - tr["bias_accept"][0]
    model = dut.band_cycles(kernel, width, rows, groups, preload, stride)
    assert abs(measured - model) <= 3, (measured, model)


def test_weight_load_slower_than_a_group_stalls_only_at_group_start():
    """A tiny group (fewer pixels than weight words): the stream waits for the weights
    at the group start, and the results are still right."""
    dut = ConvEngine(make_hw(2, 3, 3, 8, 8, 16))
    rng = np.random.default_rng(9)
    band = random_band(rng, Pi=2, Po=3, bits=8, kernel=3, stride=1, rows=3, width=4, groups=3)
    check(simulate(dut, [band], seed=9, idle_prob=0.05, bp_prob=0.1), [band])


def test_err_flag_and_check_band():
    dut = ConvEngine(make_hw(2, 2, 3, 8, 8, 4))
    with pytest.raises(BandError, match="kernel=4"):
        dut.check_band(4, 1, 8, 8, 1)
    with pytest.raises(BandError, match="width=9"):
        dut.check_band(3, 1, 9, 8, 1)
    with pytest.raises(BandError, match="do not fit"):
        dut.check_band(3, 1, 8, 8, 2)          # 6x6 outputs > 4 words, 2 groups
    assert dut.check_band(3, 1, 8, 8, 1) == (6, 6)   # one group: no partial sums

    def run(cfg, expect_err):
        flags = {}

        async def bench(ctx):
            for name, val in cfg.items():
                ctx.set(getattr(dut, name), val)
            ctx.set(dut.bias.valid, 1)
            await ctx.tick()
            ctx.set(dut.bias.valid, 0)
            await ctx.tick()
            flags["err"] = ctx.get(dut.err)
            flags["busy"] = ctx.get(dut.busy)

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()
        # a band of 0 groups ends at once; any other stays busy (waits for its data)
        assert flags["err"] == expect_err and flags["busy"] == (cfg["groups"] != 0), flags

    good = dict(kernel=3, stride=1, width=8, rows=8, groups=1, acc_shift=0, bias_shift=0)
    run(good, 0)
    for bad in (dict(kernel=0), dict(kernel=4), dict(stride=0), dict(width=9), dict(width=2),
                dict(rows=2), dict(groups=0)):
        run({**good, **bad}, 1)


def test_psum_overflow_sets_err():
    """A band whose conv output exceeds the partial-sum buffer with G > 1 raises err
    while it runs (the hardware check of check_band)."""
    dut = ConvEngine(make_hw(1, 1, 2, 6, 8, 4))
    rng = np.random.default_rng(10)
    band = random_band(rng, Pi=1, Po=1, bits=6, kernel=2, stride=1, rows=3, width=4, groups=2)
    seen = {"err": 0}
    bias, weights, pixels, _ = band_streams(band)
    play = pixel_layout(1, 6)

    async def bench(ctx):
        for name, val in band.config().items():
            ctx.set(getattr(dut, name), val)
        await streams.stream_put(ctx, dut.bias, bias_layout(1).const(bias))
        await streams.drive(ctx, dut.weight, weights[:4])
        ctx.set(dut.o.ready, 1)
        for px, fi, la in pixels[:12]:
            await streams.stream_put(ctx, dut.i, play.const({"data": px, "first": fi, "last": la}))
        await ctx.tick().repeat(5)
        seen["err"] = ctx.get(dut.err)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert band.conv_h * band.conv_w == 6 > 4
    assert seen["err"] == 1


def test_parameters_properties_and_verilog_ports():
    hw = make_hw(2, 7, 7, 16, 328, 18432)
    dut = ConvEngine(hw)
    dut._MustUse__silence = True  # never elaborated
    assert dut.multipliers == dut.dsp == 2 * 7 * 49 == hw.dsp_conv
    assert dut.tree_levels == 7 and dut.mac_latency == 13 and dut.latency == 15
    assert dut.psum_words == dut.psum_depth == 18432
    assert dut.line_buffer_banks == 2 and dut.line_buffers == 12
    with pytest.raises(ValueError, match="ConvEngine: in_lanes=65 outside"):
        ConvEngine(HardwareConfig(**{**hw.__dict__, "in_lanes": 65}))
    with pytest.raises(TypeError):
        ConvEngine({"in_lanes": 2})
    text = to_verilog(ConvEngine(make_hw(2, 3, 3, 8, 16, 64)), "conv")
    for port in ("bias__payload", "bias__valid", "bias__ready", "weight__payload", "i__payload",
                 "i__ready", "ip__payload", "ip__valid", "ip__ready", "o__payload", "o__valid",
                 "o__ready", "kernel", "stride", "width", "rows", "groups", "acc_shift", "bias_shift",
                 "preload", "busy", "err", "clk", "rst"):
        assert port in text, port
    assert f"input [{2 * 8 + 2 - 1}:0] i__payload" in text
    assert f"output [{3 * 8 + 2 - 1}:0] o__payload" in text
    assert f"input [{3 * 32 - 1}:0] bias__payload" in text
    assert conv_out_layout(3, 8).size == 26


@needs_yosys
def test_yosys_small_engine_one_dsp_per_multiplier():
    """synth_xilinx -family xc6v (fast flow): a Pi=2, Po=2, kmax=2 engine maps its 16
    multipliers onto exactly 16 DSP48E1; the psum buffers are block RAM (the 64-word
    line buffers become LUTRAM).  (bench/bench_conv_engine.py: larger engines and the sceneparse size.)"""
    from convc.hdl.synth import synthesize
    dut = ConvEngine(make_hw(2, 2, 2, 16, 64, 1024))
    res = synthesize(dut, "conv")
    print("yosys:", {k: res[k] for k in ("DSP48E1", "RAMB18E1", "RAMB36E1", "FF", "LUTRAM", "seconds")})
    assert res["DSP48E1"] == dut.multipliers == 16
    assert res["RAMB18E1"] + 2 * res["RAMB36E1"] >= 2 * 3   # psum: 1024 x 48 a lane = 3 RAMB18


@pytest.mark.slow
@needs_yosys
def test_yosys_sceneparse_size_686_dsp():
    """The virtex6 size the compiler chooses for sceneparse (2 x 7 lanes, kmax 7, 16 bits,
    max_width 328, 18,432 psum words): 686 DSP48E1 = 2*7*49 multipliers, fits the
    XC6VLX240T (768 DSP48E1, 416 RAMB36, 301,440 FF).  About 10 minutes."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from bench_conv_engine import strip_zero_mem_init
    from convc.hdl.synth import synthesize
    dut = ConvEngine(make_hw(2, 7, 7, 16, 328, 18432))
    res = synthesize(strip_zero_mem_init(to_verilog(dut, "conv")), "conv")
    assert res["DSP48E1"] == dut.multipliers == 686
    assert res["RAMB36E1"] + res["RAMB18E1"] / 2 <= 416 and res["FF"] <= 301_440


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(4))
def test_random_configurations(chunk):
    """Random engines (Pi, Po 1..3, kmax 1..4, 4..16 bits, small psum buffers) and 1..3
    random bands each (K, S, R, Wp, G, bias_shift, preload), random idle cycles and
    backpressure, sometimes one serial pixel feeder: 25 configurations a chunk."""
    for t in range(chunk * 25, chunk * 25 + 25):
        r = random.Random(t)
        Pi, Po, kmax = r.randint(1, 3), r.randint(1, 3), r.randint(1, 4)
        bits, mw, pw = r.choice([4, 6, 8, 12, 16]), r.randint(kmax, 12), r.randint(1, 40)
        dut = ConvEngine(make_hw(Pi, Po, kmax, bits, mw, pw))
        rng = np.random.default_rng(t)
        bands = []
        for _ in range(r.randint(1, 3)):
            while True:
                K, S = r.randint(1, kmax), r.randint(1, 3)
                Wp, R, G = r.randint(K, mw), r.randint(K, K + 5), r.randint(1, 4)
                if G == 1 or ((R - K) // S + 1) * ((Wp - K) // S + 1) <= pw:
                    break
            bands.append(random_band(rng, Pi=Pi, Po=Po, bits=bits, kernel=K, stride=S, rows=R, width=Wp,
                                     groups=G, bias_shift=r.randint(0, 6), preload=r.random() < 0.5))
        got = simulate(dut, bands, seed=t, idle_prob=r.choice([0, 0.2, 0.5]), bp_prob=r.choice([0, 0.3, 0.6]),
                       serial_pixels=r.random() < 0.3)
        check(got, bands)

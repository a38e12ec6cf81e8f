"""hdl/feeder.py (MapFeeder) in Amaranth simulation against a Python model of the formula
in its docstring.

The testbench serves the feeder's list memory (a synchronous read port: data the cycle
after the address) and plays its MemReader: ``cmd`` is taken with random backpressure
(and at most a few commands buffered), the words of the accepted commands come back on
``word`` in order, from a Python memory, with random gaps (valid held until taken, as a
stream source must).  ``o`` is collected with random backpressure.

Checked for several bands back to back (start a random 0..3 cycles after ``busy``
falls, the configuration inputs garbage except in the ``start`` cycle): every output
pixel (data sign-extended from ``bits``, first, last), the read commands (exactly one a
row inside the map, address and length; none for padding rows or lanes without a map),
the stream rules on ``o`` and ``cmd`` (valid held, payload stable until taken), and
``busy`` (high from start until the band's last pixel has left).  Bands: padding 0..2,
rows starting above the map and running below it, all-padding bands, groups with
``j >= n_in`` (zeros, no reads), one row per group as FC uses it (``pad = 0``,
``width = in_w``), empty bands (``groups = 0`` / ``nr = 0``); and bands read upsampled
by ``2**up`` (``up`` 1..3: each stored row read once for each of its upsampled rows, each
word sent ``2**up`` times; padding, band rows and ``width`` in upsampled coordinates)."""

from __future__ import annotations

import random

import pytest
import streams
from convc.hdl.feeder import MapFeeder

M32 = (1 << 32) - 1


def mem_word(addr: int) -> int:
    """The Python memory behind the reader: a fixed pseudo-random 16-bit word per address."""
    addr &= M32
    return (addr * 0x9E3779B1 + (addr >> 13) * 0x85EB + 0x1234) >> 9 & 0xFFFF


def sext(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def band_model(cfg: dict, lst: list[int], bits: int):
    """(pixels [(data, first, last)], commands [(addr, length)]) of one band, straight from
    the docstring formula."""
    L, G, n_in, lane = cfg["lanes"], cfg["groups"], cfg["n_in"], cfg["lane"]
    rs, nr, pad, in_h, in_w = cfg["rs"], cfg["nr"], cfg["pad"], cfg["in_h"], cfg["in_w"]
    up = cfg.get("up", 0)
    wp = (in_w << up) + 2 * pad
    assert cfg["width"] == wp
    pix, cmds = [], []
    for g in range(G):
        j = g * L + lane
        for r in range(nr):
            rr = rs + r - pad                 # a row of the upsampled map
            row_in = j < n_in and 0 <= rr < in_h << up
            if row_in:                        # its stored row, read again for each copy
                cmds.append(((lst[j] + (rr >> up) * in_w) & M32, in_w))
            for c in range(wp):
                cc = c - pad
                if row_in and 0 <= cc < in_w << up:
                    v = sext(mem_word(lst[j] + (rr >> up) * in_w + (cc >> up)), bits)
                else:
                    v = 0
                pix.append((v, int(r == 0 and c == 0), int(r == nr - 1 and c == wp - 1)))
    return pix, cmds


def band(lane, lanes, groups, n_in, rs, nr, pad, in_h, in_w, *, width=None, up=0) -> dict:
    return {"lane": lane, "lanes": lanes, "groups": groups, "n_in": n_in, "rs": rs, "nr": nr,
            "pad": pad, "in_h": in_h, "in_w": in_w, "up": up,
            "width": (in_w << up) + 2 * pad if width is None else width}


def simulate(dut: MapFeeder, bands, lst, *, seed=0, word_gap=0.3, cmd_bp=0.3, o_bp=0.3,
             cmd_depth=3):
    bits = dut.bits
    models = [band_model(b, lst, bits) for b in bands]
    want_pix = [p for pix, _ in models for p in pix]
    want_cmd = [c for _, cmds in models for c in cmds]
    got_pix: list = []
    got_cmd: list = []
    words: list = []            # words of accepted commands, not yet delivered
    state = {"pending": 0, "done": False, "bands": 0}
    cfg_ports = ("lane", "lanes", "groups", "n_in", "rs", "nr", "pad", "in_h", "in_w", "up", "width")

    async def bench_list(ctx):
        """Synchronous read port: the data of the address seen at an edge, after it."""
        async for _, _, a in ctx.tick().sample(dut.list_addr):
            ctx.set(dut.list_data, lst[a] if a < len(lst) else 0xDEADBEEF)

    async def bench_cmd(ctx):
        rng = random.Random(seed * 11 + 1)
        prev = None
        while True:
            rdy = state["pending"] < cmd_depth and rng.random() >= cmd_bp
            ctx.set(dut.cmd.ready, rdy)
            _, _, v, a, n = await ctx.tick().sample(dut.cmd.valid, dut.cmd.payload.addr,
                                                    dut.cmd.payload.length)
            if prev is not None:
                assert v and (a, n) == prev, \
                    f"cmd changed before it was taken: {prev} -> valid {v} {(a, n)}"
            prev = None
            if v and rdy:
                got_cmd.append((a, n))
                assert n > 0, "zero-length read command"
                words.extend({"data": mem_word(a + k), "first": int(k == 0),
                              "last": int(k == n - 1)} for k in range(n))
                state["pending"] += 1
            elif v:
                prev = (a, n)

    async def bench_word(ctx):
        rng = random.Random(seed * 11 + 2)
        while True:
            if not words or rng.random() < word_gap:
                ctx.set(dut.word.valid, 0)
                await ctx.tick()
                continue
            w = words.pop(0)
            await streams.stream_put(ctx, dut.word, w)
            if w["last"]:
                state["pending"] -= 1

    async def bench_out(ctx):
        rng = random.Random(seed * 11 + 3)
        prev = None
        while not state["done"]:
            rdy = rng.random() >= o_bp
            ctx.set(dut.o.ready, rdy)
            _, _, v, d, f, l = await ctx.tick().sample(dut.o.valid, dut.o.payload.data,
                                                       dut.o.payload.first, dut.o.payload.last)
            if prev is not None:
                assert v and (d, f, l) == prev, \
                    f"o changed before it was taken: {prev} -> valid {v} {(d, f, l)}"
            prev = None
            if v and rdy:
                got_pix.append((d, f, l))
            elif v:
                prev = (d, f, l)

    async def bench_drive(ctx):
        rng = random.Random(seed * 11 + 4)

        def garbage():
            streams.randomize(ctx, rng, [getattr(dut, name) for name in cfg_ports])

        garbage()
        for _ in range(rng.randrange(4)):
            await ctx.tick()
        count = 0
        for b, (pix, _) in zip(bands, models):
            for name in cfg_ports:
                ctx.set(getattr(dut, name), b[name])
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            garbage()
            count += len(pix)
            cycles = 0
            ended = False       # the last pixel was taken at an edge where busy was high
            while True:
                _, _, busy = await ctx.tick().sample(dut.busy)
                cycles += 1
                if not busy:
                    break
                # (the collector may run before or after this process at an edge)
                assert not ended, "busy still high a cycle after the band's last pixel"
                ended = len(got_pix) == count
                assert cycles < 200 + 40 * len(pix), f"band {b}: stuck ({len(got_pix)} of {count})"
            assert len(got_pix) == count, \
                f"band {b}: busy fell with {len(got_pix)} of {count} pixels out"
            state["bands"] += 1
            for _ in range(rng.randrange(4)):
                await ctx.tick()
        # nothing more comes out, no stray command
        for _ in range(30):
            await ctx.tick()
        state["done"] = True
        await ctx.tick()

    streams.run_testbenches(dut, [bench_list, bench_cmd, bench_word, bench_out], bench_drive)
    return got_pix, want_pix, got_cmd, want_cmd


def check(got, want, what):
    assert len(got) == len(want), f"{len(got)} {what}, {len(want)} expected"
    bad = [k for k in range(len(want)) if got[k] != want[k]]
    assert not bad, (f"{len(bad)} of {len(want)} {what} differ; first: "
                     + "; ".join(f"#{k} got {got[k]} want {want[k]}" for k in bad[:4]))


def simulate_and_check(dut, bands, lst, **kw):
    """:func:`simulate` the bands, then check every read command and every pixel against
    :func:`band_model`."""
    got, want, gcmd, wcmd = simulate(dut, bands, lst, **kw)
    check(gcmd, wcmd, "read commands")
    check(got, want, "pixels")


def random_list(rng, n):
    return [rng.randrange(0, 1 << 32) if rng.random() < 0.3 else rng.randrange(0, 1 << 24)
            for _ in range(n)]


def random_bands(rng, count, *, max_lanes, max_groups, max_side, max_up=None, max_rows=None):
    """``count`` random bands: any lane of 1..max_lanes, 1..max_groups groups, any n_in,
    pad 0..2, maps of 1..max_side a side (upsampled by 0..max_up when given), a random
    band of rows (at most max_rows when given) of the padded map."""
    bands = []
    for _ in range(count):
        L = rng.randint(1, max_lanes)
        lane = rng.randrange(L)
        G = rng.randint(1, max_groups)
        n_in = rng.randint(0, G * L)
        pad = rng.randint(0, 2)
        up = 0 if max_up is None else rng.randint(0, max_up)
        in_h, in_w = rng.randint(1, max_side), rng.randint(1, max_side)
        hp = (in_h << up) + 2 * pad
        rs = rng.randrange(hp)
        nr = rng.randint(1, hp - rs if max_rows is None else min(hp - rs, max_rows))
        bands.append(band(lane, L, G, n_in, rs, nr, pad, in_h, in_w, up=up))
    return bands


# (lane, L, G, n_in, rs, nr, pad, in_h, in_w)
CONV_BANDS = [
    (0, 1, 2, 2, 0, 7, 1, 5, 6),       # whole padded map, both padding rows
    (1, 2, 3, 5, 0, 3, 2, 6, 4),       # rows above the map (rs < pad); j = 5 >= n_in: zeros
    (2, 3, 2, 4, 5, 5, 2, 6, 3),       # rows running below the map
    (0, 1, 1, 1, 0, 4, 0, 4, 7),       # no padding
    (1, 2, 2, 2, 2, 3, 1, 8, 5),       # lane 1: j = 1 < 2, j = 3 >= 2
    (3, 4, 2, 5, 0, 2, 2, 3, 3),       # top padding only
    (0, 3, 3, 9, 4, 3, 1, 5, 2),       # one map row, then bottom padding
    (2, 3, 2, 2, 1, 3, 0, 4, 4),       # lane without any map: all zeros, no reads
    (0, 2, 2, 3, 6, 2, 2, 4, 3),       # all rows inside the bottom padding
    (1, 2, 1, 2, 0, 1, 0, 1, 1),       # 1x1 map
]


@pytest.mark.parametrize("bits,seed", [(16, 1), (8, 2), (5, 3)])
def test_feeder_conv_bands(bits, seed):
    rng = random.Random(seed)
    lst = random_list(rng, 64)
    bands = [band(*t) for t in CONV_BANDS]
    rng.shuffle(bands)
    dut = MapFeeder(bits=bits, list_words=64)
    simulate_and_check(dut, bands, lst, seed=seed)


def test_feeder_fc_rows():
    """FC: pad 0, width = in_w, one row a group (nr = 1), many groups: the list lookup of
    each group is prefetched; some lanes run out of maps (j >= n_in)."""
    rng = random.Random(7)
    lst = random_list(rng, 128)
    bands = [band(lane, L, G, n_in, 0, 1, 0, 1, w)
             for lane, L, G, n_in, w in [(0, 1, 12, 12, 5), (2, 4, 8, 30, 3), (3, 4, 8, 30, 1),
                                        (1, 3, 10, 20, 7), (0, 2, 16, 31, 2), (1, 2, 16, 31, 1)]]
    bands.append(band(1, 2, 6, 11, 0, 2, 0, 2, 4))      # two rows a group
    dut = MapFeeder(bits=16, list_words=128)
    simulate_and_check(dut, bands, lst, seed=7, word_gap=0.2)


def test_feeder_random_bands():
    rng = random.Random(11)
    lst = random_list(rng, 256)
    bands = random_bands(rng, 14, max_lanes=5, max_groups=4, max_side=7)
    # empty bands: nothing out, no command
    bands.insert(3, band(0, 1, 0, 1, 0, 3, 1, 3, 3))
    bands.insert(8, band(0, 1, 2, 2, 0, 0, 1, 3, 3))
    dut = MapFeeder(bits=12, list_words=256)
    simulate_and_check(dut, bands, lst, seed=11, word_gap=0.4, cmd_bp=0.5, o_bp=0.4, cmd_depth=2)


def test_feeder_no_gaps():
    """A reader that always has data and a sink that is always ready: one pixel a cycle
    (padding and real pixels alike), within a band and across its groups."""
    rng = random.Random(5)
    lst = random_list(rng, 16)
    b = band(0, 2, 3, 6, 0, 6, 1, 4, 6)
    dut = MapFeeder(bits=16, list_words=16)
    n = len(band_model(b, lst, 16)[0])
    _, times = _run_unthrottled(dut, b, lst, n)
    assert len(times) == n
    # the first row waits for its first read; after that: one a cycle
    assert times[-1] - times[0] == n - 1, f"{n} pixels over {times[-1] - times[0] + 1} cycles"


# (lane, L, G, n_in, rs, nr, pad, in_h, in_w, up): rows in upsampled, padded coordinates
UP_BANDS = [
    (0, 1, 2, 2, 0, 14, 1, 6, 5, 1),     # whole 12x10 map of a 6x5 one, both padding rows
    (1, 2, 2, 4, 0, 26, 1, 6, 5, 2),     # whole 24x20 map of a 6x5 one
    (0, 1, 1, 1, 3, 5, 1, 6, 5, 2),      # a band starting inside a stored row's copies
    (2, 3, 2, 4, 0, 4, 2, 3, 3, 1),      # top padding rows, then the first stored row twice
    (0, 2, 3, 5, 9, 5, 2, 4, 2, 1),      # rows running into the bottom padding
    (1, 2, 2, 2, 0, 3, 1, 2, 2, 2),      # lane 1: j = 1 < 2, j = 3 >= 2 (zeros, no reads)
    (0, 1, 1, 1, 0, 10, 1, 1, 1, 3),     # a 1x1 map as 8x8
    (0, 1, 2, 2, 5, 9, 0, 2, 3, 2),      # no padding, a band from row 5 of 8
    (0, 2, 2, 3, 0, 3, 2, 3, 3, 1),      # all rows inside the top padding
]


@pytest.mark.parametrize("bits,seed", [(16, 21), (8, 22)])
def test_feeder_upsampled_bands(bits, seed):
    """``up`` 1..3: every pixel (each stored word sent 2**up times along the row, each stored
    row read once for every copy) and every read command, with random backpressure on the
    commands, the words and the pixels, bands of different ``up`` back to back."""
    rng = random.Random(seed)
    lst = random_list(rng, 64)
    bands = [band(*t[:9], up=t[9]) for t in UP_BANDS] + [band(*t) for t in CONV_BANDS[:3]]
    rng.shuffle(bands)
    dut = MapFeeder(bits=bits, list_words=64)
    simulate_and_check(dut, bands, lst, seed=seed)


def test_feeder_random_upsampled_bands():
    rng = random.Random(23)
    lst = random_list(rng, 256)
    bands = random_bands(rng, 12, max_lanes=4, max_groups=3, max_side=4, max_up=3, max_rows=12)
    dut = MapFeeder(bits=12, list_words=256)
    simulate_and_check(dut, bands, lst, seed=23, word_gap=0.4, cmd_bp=0.5, o_bp=0.4, cmd_depth=2)


def test_feeder_upsampled_no_gaps():
    """Upsampled, with a reader that always has data and a sink always ready: still one
    pixel a cycle (a stored word is taken on its last copy only)."""
    rng = random.Random(6)
    lst = random_list(rng, 16)
    for up in (1, 2):
        b = band(0, 2, 2, 4, 0, (3 << up) + 2, 1, 3, 4, up=up)
        dut = MapFeeder(bits=16, list_words=16)
        want = band_model(b, lst, 16)[0]
        got, times = _run_unthrottled(dut, b, lst, len(want))
        assert got == want
        assert times[-1] - times[0] == len(want) - 1, f"up={up}: {len(want)} pixels over " \
                                                      f"{times[-1] - times[0] + 1} cycles"


def _run_unthrottled(dut, b, lst, n):
    """Run one band with an always-ready sink and reader (commands taken at once, words
    valid as soon as read); returns the pixels and the cycle of each."""
    got, times = [], []

    async def bench(ctx):
        for name, v in b.items():
            ctx.set(getattr(dut, name), v)
        ctx.set(dut.start, 1)
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.cmd.ready, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        words = []
        cyc = 0
        while len(times) < n and cyc < 20 * n:
            if words:
                ctx.set(dut.word.payload, words[0])
            ctx.set(dut.word.valid, bool(words))
            _, _, cv, a, l, wr, ov, d, f, la = await ctx.tick().sample(
                dut.cmd.valid, dut.cmd.payload.addr, dut.cmd.payload.length, dut.word.ready,
                dut.o.valid, dut.o.payload.data, dut.o.payload.first, dut.o.payload.last)
            cyc += 1
            if wr and words:
                words.pop(0)
            if cv:
                words.extend({"data": mem_word(a + k), "first": int(k == 0),
                              "last": int(k == l - 1)} for k in range(l))
            if ov:
                times.append(cyc)
                got.append((d, f, la))

    async def lst_port(ctx):
        async for _, _, a in ctx.tick().sample(dut.list_addr):
            ctx.set(dut.list_data, lst[a])

    streams.run_testbenches(dut, [lst_port], bench)
    return got, times


def test_feeder_up_port_is_the_field():
    from amaranth.hdl import Fragment, Shape

    from convc.hdl.fields import field_shape
    dut = MapFeeder()
    Fragment.get(dut, None)
    assert Shape.cast(dut.signature.members["up"].shape) == field_shape("up")


def test_feeder_parameter_checks():
    with pytest.raises(ValueError, match="bits=17"):
        MapFeeder(bits=17)
    with pytest.raises(ValueError, match="list_words=0"):
        MapFeeder(list_words=0)

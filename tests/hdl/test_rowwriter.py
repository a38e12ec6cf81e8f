"""hdl/rowwriter.py (RowWriter) in Amaranth simulation against the formula in its
docstring.

Bands back to back (``start`` a random 0..3 cycles after ``busy`` falls; the
configuration inputs are garbage except in the ``start`` cycle), map mode and vector
mode (``out_w = 1``, ``map_words = 1``), random lanes/bits/out_w/rows/n_out.  Elements
go in with random idle cycles; ``cmd`` and ``word`` are taken with independent random
backpressure.  The testbench plays the MemWriter: it pairs the words with the commands
in order and rebuilds the memory writes, then checks

* every word: ``mem[base + o*map_words + r*out_w + x] == element[r][x].data[o]``
  (sign-extended to 16 bits), every address written exactly once, nothing else written
  (vector mode: ``mem[base + r + o] == element[r][0].data[o]``, one row);
* the command sequence (one command of ``out_w`` words per map and row, or one of
  ``n_out`` words per row in vector mode) and the word sequence;
* the stream rules on ``cmd`` and ``word`` (valid held and payload stable until taken);
* ``busy``: high from the cycle after ``start`` until the last word and command have
  been taken, low the cycle after."""

from __future__ import annotations

import random

import pytest
import streams
from convc.hdl.linebuffer import pixel_layout
from convc.hdl.rowwriter import RowWriter

M32 = (1 << 32) - 1


def random_rows(rng, rows, out_w, lanes, bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    pick = lambda: rng.choice([lo, hi, -1, 0]) if rng.random() < 0.15 else rng.randint(lo, hi)
    return [[[pick() for _ in range(lanes)] for _ in range(out_w)] for _ in range(rows)]


def band_expected(b):
    """(commands [(addr, length)], words [16-bit]) of one band, in the order the docstring
    describes (rows in order; in a row, maps in order)."""
    cmds, words = [], []
    el, base, mw, ow = b["elements"], b["base"], b["map_words"], b["out_w"]
    for r in range(b["rows"]):
        if b["vector"]:
            cmds.append(((base + r * ow) & M32, b["n_out"]))
            words += [el[r][0][o] & 0xFFFF for o in range(b["n_out"])]
            continue
        for o in range(b["n_out"]):
            cmds.append(((base + o * mw + r * ow) & M32, ow))
            words += [el[r][x][o] & 0xFFFF for x in range(ow)]
    return cmds, words


def band_memory(b) -> dict:
    """{address: word} straight from the docstring formula."""
    el, base = b["elements"], b["base"]
    if b["vector"]:
        assert b["rows"] == 1 and b["out_w"] == 1
        return {(base + o) & M32: el[0][0][o] & 0xFFFF for o in range(b["n_out"])}
    return {(base + o * b["map_words"] + r * b["out_w"] + x) & M32: el[r][x][o] & 0xFFFF
            for o in range(b["n_out"]) for r in range(b["rows"]) for x in range(b["out_w"])}


CFG_PORTS = ("base", "map_words", "out_w", "rows", "n_out", "vector")


def taker(port, sink, cycles, bp, rng, fields, state):
    """A MemWriter-side bench for ``port``: ``ready`` low with probability ``bp``; every
    payload taken (``fields``) goes to ``sink`` and its cycle to ``cycles``; checks that
    ``valid`` is held and the payload stable until taken.  Runs until ``state["done"]``."""
    async def run(ctx):
        prev = None
        cyc = 0
        while not state["done"]:
            rdy = rng.random() >= bp
            ctx.set(port.ready, rdy)
            vals = await ctx.tick().sample(port.valid, *fields)
            v, p = vals[2], tuple(vals[3:])
            if prev is not None:
                assert v and p == prev, f"{port} changed before it was taken: {prev} -> {v} {p}"
            prev = None
            if v and rdy:
                sink.append(p if len(p) > 1 else p[0])
                cycles.append(cyc)
            elif v:
                prev = p
            cyc += 1
    return run


def simulate(dut: RowWriter, bands, *, seed=0, idle=0.3, cmd_bp=0.3, word_bp=0.3):
    """One write port (cmd/word).  Returns per band (commands, words) as taken from the
    ports."""
    assert dut.ports == 1
    per_band = simulate_ports(dut, bands, seed=seed, idle=idle, bp=[(cmd_bp, word_bp)],
                              port_seeds=lambda p: (seed * 13 + 1, seed * 13 + 2))
    return [res[0] for res in per_band]


def writes_of(cmds, words):
    """MemWriter semantics: the words fill the commands in order -> [(address, word)]."""
    assert sum(n for _, n in cmds) == len(words), \
        f"{len(words)} words for commands of {sum(n for _, n in cmds)}"
    out, pos = [], 0
    for a, n in cmds:
        out += [((a + k) & M32, words[pos + k]) for k in range(n)]
        pos += n
    return out


def check_memory(b, writes, tag):
    """``writes`` [(address, word, port)] against the docstring formula: every address
    exactly once, nothing else, every word right (skipped for vector bands of several
    rows, which :func:`band_memory` does not describe)."""
    if b["vector"] and b["rows"] != 1:
        return
    mem = band_memory(b)
    seen = {}
    for a, w, p in writes:
        assert a not in seen, f"{tag}: address {a:#x} written twice (ports {seen[a][1]}, {p})"
        seen[a] = (w, p)
    assert set(seen) == set(mem), (f"{tag}: addresses differ: extra "
                                   f"{sorted(set(seen) - set(mem))[:5]}, missing {sorted(set(mem) - set(seen))[:5]}")
    bad = [a for a in sorted(mem) if seen[a][0] != mem[a]]
    assert not bad, f"{tag}: {len(bad)} words differ; " + "; ".join(
        f"{a:#x} (port {seen[a][1]}): got {seen[a][0]:#06x} want {mem[a]:#06x}" for a in bad[:5])


def check_band(b, got_cmds, got_words):
    want_c, want_w = band_expected(b)
    check_memory(b, [(a, w, 0) for a, w in writes_of(got_cmds, got_words)], f"band {b['cfg']}")
    assert got_cmds == want_c, f"band {b['cfg']}: commands {got_cmds[:6]} want {want_c[:6]}"
    assert got_words == want_w, f"band {b['cfg']}: word order"


def make_band(rng, lanes, bits, max_width, *, vector=False, rows=None, out_w=None, n_out=None):
    if vector:
        out_w, out_h, mw = 1, 1, 1
        rows = 1 if rows is None else rows
    else:
        out_w = rng.randint(1, max_width) if out_w is None else out_w
        rows = rng.randint(1, 5) if rows is None else rows
        out_h = rows + rng.randint(0, 3)
        mw = out_h * out_w
    n_out = rng.randint(1, lanes) if n_out is None else n_out
    base = rng.randrange(1 << 32) if rng.random() < 0.2 else rng.randrange(1 << 24)
    return {"base": base, "map_words": mw, "out_w": out_w, "rows": rows, "n_out": n_out,
            "vector": int(vector), "elements": random_rows(rng, rows, out_w, lanes, bits),
            "cfg": f"out_w={out_w} rows={rows} n_out={n_out} vector={int(vector)} base={base:#x}"}


@pytest.mark.parametrize("lanes,bits,max_width,seed", [(4, 16, 12, 1), (1, 8, 9, 2), (6, 5, 7, 3),
                                                       (3, 12, 20, 4)])
def test_rowwriter_random(lanes, bits, max_width, seed):
    rng = random.Random(seed)
    bands = [make_band(rng, lanes, bits, max_width) for _ in range(7)]
    bands.insert(2, make_band(rng, lanes, bits, max_width, vector=True))
    bands.insert(5, make_band(rng, lanes, bits, max_width, vector=True, n_out=lanes))
    bands.append(make_band(rng, lanes, bits, max_width, out_w=max_width, n_out=lanes))
    bands.append(make_band(rng, lanes, bits, max_width, out_w=1, rows=3, n_out=1))
    dut = RowWriter(lanes=lanes, bits=bits, max_width=max_width)
    got = simulate(dut, bands, seed=seed)
    for b, (c, w) in zip(bands, got):
        check_band(b, c, w)


def test_rowwriter_heavy_backpressure():
    """A slow memory writer: both banks fill and the input waits (and a fast one: input
    idle most of the time)."""
    rng = random.Random(21)
    bands = [make_band(rng, 5, 16, 10, rows=6) for _ in range(3)]
    dut = RowWriter(lanes=5, bits=16, max_width=10)
    got = simulate(dut, bands, seed=21, idle=0.05, cmd_bp=0.6, word_bp=0.7)
    for b, (c, w) in zip(bands, got):
        check_band(b, c, w)
    bands = [make_band(rng, 5, 16, 10, rows=4) for _ in range(3)]
    dut = RowWriter(lanes=5, bits=16, max_width=10)
    got = simulate(dut, bands, seed=22, idle=0.8, cmd_bp=0.0, word_bp=0.0)
    for b, (c, w) in zip(bands, got):
        check_band(b, c, w)


def test_rowwriter_vector_rows():
    """Vector mode with several rows (one command of n_out words per row at base + r):
    checked against the command/word sequence."""
    rng = random.Random(31)
    bands = [make_band(rng, 4, 16, 8, vector=True, rows=3), make_band(rng, 4, 16, 8, vector=True)]
    dut = RowWriter(lanes=4, bits=16, max_width=8)
    got = simulate(dut, bands, seed=31)
    for b, (c, w) in zip(bands, got):
        check_band(b, c, w)


def test_rowwriter_full_rate():
    """No backpressure, input always valid: one word a cycle out over the whole band
    (the input refills a bank while the other drains)."""
    lanes, ow, rows = 3, 6, 5
    rng = random.Random(41)
    b = make_band(rng, lanes, 16, 8, out_w=ow, rows=rows, n_out=3)
    dut = RowWriter(lanes=lanes, bits=16, max_width=8)
    lay = pixel_layout(lanes, 16)
    elems = [x for row in b["elements"] for x in row]
    n = rows * 3 * ow
    times = []
    words = []

    async def bench(ctx):
        for name in CFG_PORTS:
            ctx.set(getattr(dut, name), b[name])
        ctx.set(dut.start, 1)
        ctx.set(dut.cmd.ready, 1)
        ctx.set(dut.word.ready, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        k, cyc = 0, 0
        while len(times) < n and cyc < 10 * n:
            if k < len(elems):
                ctx.set(dut.i.payload, lay.const({"data": elems[k], "first": 0, "last": 0}))
            ctx.set(dut.i.valid, k < len(elems))
            _, _, ir, wv, w = await ctx.tick().sample(dut.i.ready, dut.word.valid, dut.word.payload)
            cyc += 1
            if ir and k < len(elems):
                k += 1
            if wv:
                times.append(cyc)
                words.append(w)

    streams.run_testbenches(dut, [], bench)
    assert words == band_expected(b)[1]
    assert times[-1] - times[0] == n - 1, f"{n} words over {times[-1] - times[0] + 1} cycles"


def test_rowwriter_n_out_zero():
    """n_out = 0: nothing is written, but the band's elements are still consumed and busy
    falls (the rows are drained)."""
    rng = random.Random(51)
    bands = [make_band(rng, 3, 16, 6, rows=5, n_out=0), make_band(rng, 3, 16, 6, rows=2)]
    dut = RowWriter(lanes=3, bits=16, max_width=6)
    got = simulate(dut, bands, seed=51)
    for b, (c, w) in zip(bands, got):
        check_band(b, c, w)


def test_rowwriter_parameter_checks():
    with pytest.raises(ValueError, match="lanes=0"):
        RowWriter(lanes=0)
    with pytest.raises(ValueError, match="bits=1"):
        RowWriter(lanes=2, bits=1)
    with pytest.raises(ValueError, match="max_width=4096"):
        RowWriter(lanes=2, max_width=4096)


# ---- several write ports (ports = P) --------------------------------------------------
#
# The maps of a record are split among the P ports: port p writes maps p*Q .. p*Q+Q-1
# (Q = ceil(n_out / P), those below n_out) on cmd{p}/word{p} (port 0: cmd/word).  The
# bench takes every port's commands and words with its own random backpressure, plays
# one MemWriter per port and rebuilds the memory from all of them.


def port_maps(b, ports: int, p: int) -> range:
    q = -(-b["n_out"] // ports)
    return range(min(p * q, b["n_out"]), min((p + 1) * q, b["n_out"]))


def port_expected(b, ports: int, p: int):
    """(commands, words) of port p for band b (rows in order; in a row, its maps in order;
    vector mode: one command of the port's maps per row at base + p*Q + r)."""
    cmds, words = [], []
    el, base, mw, ow = b["elements"], b["base"], b["map_words"], b["out_w"]
    maps = port_maps(b, ports, p)
    for r in range(b["rows"]):
        if b["vector"]:
            if len(maps):
                cmds.append(((base + maps.start + r * ow) & M32, len(maps)))
                words += [el[r][0][o] & 0xFFFF for o in maps]
            continue
        for o in maps:
            cmds.append(((base + o * mw + r * ow) & M32, ow))
            words += [el[r][x][o] & 0xFFFF for x in range(ow)]
    return cmds, words


def simulate_ports(dut: RowWriter, bands, *, seed=0, idle=0.3, bp=None, port_seeds=None):
    """Every port taken by its own bench; ``bp[p]`` is port p's (cmd, word) backpressure
    (random per port by default), ``port_seeds(p)`` the seeds of its two RNGs.  Elements
    go in with random idle cycles (probability ``idle``), the configuration inputs are
    garbage outside ``start``.  Returns per band, per port (commands, words)."""
    P = dut.ports
    lanes, bits = dut.lanes, dut.bits
    lay = pixel_layout(lanes, bits)
    rng0 = random.Random(seed * 17 + 5)
    if bp is None:
        bp = [(rng0.choice([0.0, 0.3, 0.6]), rng0.choice([0.0, 0.3, 0.7])) for _ in range(P)]
    if port_seeds is None:
        port_seeds = lambda p: (seed * 13 + 100 + 2 * p, seed * 13 + 101 + 2 * p)
    got = [{"cmd": [], "word": []} for _ in range(P)]
    taken = [{"cmd": [], "word": []} for _ in range(P)]
    per_band: list = []
    state = {"done": False}
    cfg_ports = CFG_PORTS

    benches = []
    for p, (cmd, word) in enumerate(zip(dut.cmds, dut.words)):
        s_cmd, s_word = port_seeds(p)
        benches.append(taker(cmd, got[p]["cmd"], taken[p]["cmd"], bp[p][0], random.Random(s_cmd),
                             (cmd.payload.addr, cmd.payload.length), state))
        benches.append(taker(word, got[p]["word"], taken[p]["word"], bp[p][1],
                             random.Random(s_word), (word.payload,), state))

    async def bench_drive(ctx):
        rng = random.Random(seed * 13 + 3)

        def garbage():
            streams.randomize(ctx, rng, [getattr(dut, name) for name in cfg_ports])
            ctx.set(dut.i.payload, lay.const({"data": [rng.randint(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
                                                       for _ in range(lanes)],
                                              "first": rng.randrange(2), "last": rng.randrange(2)}))

        garbage()
        cyc = 0
        for _ in range(rng.randrange(4)):
            await ctx.tick()
            cyc += 1
        for b in bands:
            want = [port_expected(b, P, p) for p in range(P)]
            n_words = sum(len(w) for _, w in want)
            marks = [(len(g["cmd"]), len(g["word"])) for g in got]
            for name in cfg_ports:
                ctx.set(getattr(dut, name), b[name])
            ctx.set(dut.start, 1)
            await ctx.tick()
            cyc += 1
            ctx.set(dut.start, 0)
            garbage()
            elems = [x for row in b["elements"] for x in row]
            k = 0
            limit = cyc + 300 + 20 * (n_words + len(elems))
            while True:
                offer = k < len(elems) and rng.random() >= idle
                if offer:
                    ctx.set(dut.i.payload, lay.const({"data": elems[k], "first": rng.randrange(2),
                                                      "last": rng.randrange(2)}))
                ctx.set(dut.i.valid, offer)
                _, _, busy, ir = await ctx.tick().sample(dut.busy, dut.i.ready)
                if offer and ir:
                    k += 1
                if not offer:
                    garbage()
                cyc += 1
                assert cyc < limit, (f"band {b['cfg']} P={P}: stuck: {k} of {len(elems)} elements in, "
                                     f"words out per port {[len(g['word']) - w0 for g, (_, w0) in zip(got, marks)]}"
                                     f" of {[len(w) for _, w in want]}")
                if not busy:
                    break
            ctx.set(dut.i.valid, 0)
            assert k == len(elems), f"band {b['cfg']} P={P}: busy fell with {k} of {len(elems)} elements in"
            ends = []
            res = []
            for p, (g, (c0, w0)) in enumerate(zip(got, marks)):
                nc, nw = len(g["cmd"]) - c0, len(g["word"]) - w0
                assert (nc, nw) == (len(want[p][0]), len(want[p][1])), \
                    (f"band {b['cfg']} P={P}: busy fell with port {p} at {nc}/{len(want[p][0])} "
                     f"commands, {nw}/{len(want[p][1])} words")
                ends += [t[-1] for t, n in ((taken[p]["cmd"], nc), (taken[p]["word"], nw)) if n]
                res.append((g["cmd"][c0:], g["word"][w0:]))
            if ends:
                # busy falls the cycle after the last handshake of any port
                assert cyc - 1 == max(ends) + 1, \
                    f"band {b['cfg']} P={P}: busy fell in cycle {cyc - 1}, last handshake in {max(ends)}"
            per_band.append(res)
            for _ in range(rng.randrange(4)):
                await ctx.tick()
                cyc += 1
        for _ in range(30):         # nothing more comes out
            await ctx.tick()
        state["done"] = True
        await ctx.tick()
        for p in range(P):
            assert len(got[p]["cmd"]) == sum(len(r[p][0]) for r in per_band), f"port {p}: extra command"
            assert len(got[p]["word"]) == sum(len(r[p][1]) for r in per_band), f"port {p}: extra word"

    streams.run_testbenches(dut, benches, bench_drive)
    return per_band


def check_band_ports(b, ports, got):
    """Memory rebuilt from every port's commands and words against the formula (each
    address exactly once, nothing else), then each port's command and word sequence."""
    writes = []
    for p, (cmds, words) in enumerate(got):
        writes += [(a, w, p) for a, w in writes_of(cmds, words)]
    check_memory(b, writes, f"band {b['cfg']} P={ports}")
    for p, (cmds, words) in enumerate(got):
        want_c, want_w = port_expected(b, ports, p)
        assert cmds == want_c, f"band {b['cfg']} P={ports} port {p}: commands {cmds[:6]} want {want_c[:6]}"
        assert words == want_w, f"band {b['cfg']} P={ports} port {p}: word order"


def multi_port_bands(rng, lanes, bits, max_width, ports):
    """Map and vector bands with n_out leaving some ports fewer or no maps."""
    n_outs = sorted({1, 2, ports - 1, ports + 1, lanes - 1, lanes} - {0})
    n_outs = [n for n in n_outs if n <= lanes]
    bands = []
    for n in n_outs:
        bands.append(make_band(rng, lanes, bits, max_width, n_out=n))
        bands.append(make_band(rng, lanes, bits, max_width, vector=True, n_out=n))
    bands.append(make_band(rng, lanes, bits, max_width, rows=2, n_out=0))
    bands.append(make_band(rng, lanes, bits, max_width, out_w=1, rows=3, n_out=lanes))
    bands.append(make_band(rng, lanes, bits, max_width, out_w=max_width, n_out=rng.randint(1, lanes)))
    rng.shuffle(bands)
    return bands


@pytest.mark.parametrize("ports,lanes,bits,max_width,seed", [
    (2, 3, 16, 7, 61), (2, 5, 9, 6, 62), (4, 5, 16, 6, 63), (4, 8, 8, 5, 64), (4, 6, 13, 4, 65)])
def test_rowwriter_ports_random(ports, lanes, bits, max_width, seed):
    rng = random.Random(seed)
    bands = multi_port_bands(rng, lanes, bits, max_width, ports)
    dut = RowWriter(lanes=lanes, bits=bits, max_width=max_width, ports=ports)
    assert len(dut.cmds) == len(dut.words) == ports
    assert dut.cmds[0] is dut.cmd and dut.words[0] is dut.word
    for p in range(1, ports):
        assert dut.cmds[p] is getattr(dut, f"cmd{p}") and dut.words[p] is getattr(dut, f"word{p}")
    got = simulate_ports(dut, bands, seed=seed)
    for b, g in zip(bands, got):
        check_band_ports(b, ports, g)


def test_rowwriter_ports_n_out_table():
    """P = 4 with n_out = 1, 3, 5 (Q = 1, 1, 2: ports left with fewer or no maps) in map
    and vector mode; P = 2 with n_out = 1, 3."""
    for ports, lanes, n_outs, seed in [(4, 5, (1, 3, 5), 71), (2, 3, (1, 3), 72)]:
        rng = random.Random(seed)
        bands = []
        for n in n_outs:
            bands.append(make_band(rng, lanes, 16, 5, n_out=n))
            bands.append(make_band(rng, lanes, 16, 5, vector=True, n_out=n))
        dut = RowWriter(lanes=lanes, bits=16, max_width=5, ports=ports)
        for b, n in zip(bands[::2], n_outs):
            assert dut.maps_per_port(n) == -(-n // ports)
        got = simulate_ports(dut, bands, seed=seed)
        for b, g in zip(bands, got):
            check_band_ports(b, ports, g)
            if b["vector"]:
                # one command per port with maps, at base + p*Q
                q = -(-b["n_out"] // ports)
                want = {p: [((b["base"] + p * q) & M32, len(port_maps(b, ports, p)))]
                        for p in range(ports) if len(port_maps(b, ports, p))}
                assert {p: c for p, (c, _) in enumerate(g) if c} == want


def test_rowwriter_ports_one_slow_port():
    """One port heavily backpressured, the others free (and the reverse): a bank is only
    reused once every port has written its part."""
    rng = random.Random(81)
    bands = [make_band(rng, 6, 16, 6, rows=5, n_out=n) for n in (6, 5, 3)]
    for bp in ([(0.0, 0.0), (0.0, 0.0), (0.5, 0.85), (0.0, 0.0)],
               [(0.6, 0.7), (0.6, 0.7), (0.0, 0.0), (0.6, 0.7)]):
        dut = RowWriter(lanes=6, bits=16, max_width=6, ports=4)
        got = simulate_ports(dut, bands, seed=81, idle=0.05, bp=bp)
        for b, g in zip(bands, got):
            check_band_ports(b, 4, g)


def test_rowwriter_ports_parameter_checks():
    with pytest.raises(ValueError, match="ports=3"):
        RowWriter(lanes=4, ports=3)
    with pytest.raises(ValueError, match="ports=6"):
        RowWriter(lanes=4, ports=6)
    with pytest.raises(ValueError, match="ports=0"):
        RowWriter(lanes=4, ports=0)

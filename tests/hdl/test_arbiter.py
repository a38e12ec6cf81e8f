"""hdl/arbiter.py (ReadArbiter) in Amaranth simulation.

Masters (3..5) are driven on the slave-side ports ``s[k]`` directly: each issues its
bursts with random idle cycles between them, holding ``arvalid``/``araddr``/``arlen``
until ``arready`` as AXI requires.  Every AR carries its master and sequence number in
the address.  A Python slave on ``m`` takes ARs with random ``arready`` and returns R
beats of the outstanding bursts in a random order across IDs (beat by beat
interleaved; in order within one ID) with random gaps and a random read latency; every
beat's data tags (master, burst, beat).

Checked: ``arid`` equals the master encoded in the address; no AR lost or duplicated
(each master's bursts reach the slave exactly once, in the master's order); the AR
channel rules on ``m`` (``arvalid`` held and ``araddr``/``arlen``/``arid`` stable until
``arready``); ``rready`` always high; each master gets exactly its own beats, in order,
with ``rlast`` on each burst's last beat and ``rid == k``; round-robin fairness (a
requesting master sees at most ``n - 1`` grants to others before its own; with every
master requesting all the time the grants go strictly round the ring); and no added
latency (``m.arvalid`` in the cycle a master asks while the port is free)."""

from __future__ import annotations

import random
from functools import partial

import pytest
import streams
from convc.hdl import axi
from convc.hdl.arbiter import ReadArbiter

DW = 64


def ar_addr(k: int, seq: int) -> int:
    """Master k's burst number seq: master in bits 24.., sequence in bits 12.., beat aligned."""
    return (k << 24) | (seq << 12) | ((seq * 0x38) & 0xFF8)


def beat_data(addr: int, beat: int) -> int:
    return ((addr << 16) | (beat << 4) | 0xA) & ((1 << DW) - 1) | ((addr * 0x9E37) & 0xFFFF) << 48


def master_bursts(rng, k, count, max_len=8):
    return [(ar_addr(k, s), rng.randint(1, max_len)) for s in range(count)]


async def idle_cycles(ctx, rng, prob, addr, length) -> int:
    """A master's idle cycles before a request (each with probability ``prob``), with a
    garbage address and length while not valid; returns how many."""
    n = 0
    while prob and rng.random() < prob:
        ctx.set(addr, rng.randrange(1 << 32))
        ctx.set(length, rng.randrange(256))
        await ctx.tick()
        n += 1
    return n


async def wait_ready(ctx, ready) -> int:
    """Tick until ``ready`` is sampled high at an edge (the handshake, valid being held);
    returns the cycles it took (the handshake is in the last)."""
    n = 0
    while True:
        _, _, rdy = await ctx.tick().sample(ready)
        n += 1
        if rdy:
            return n


def end_bench(done, limit, stuck):
    """The main testbench: wait until ``done()`` (failing with ``stuck()`` after ``limit``
    cycles), then 20 more cycles."""
    async def run(ctx):
        cyc = 0
        while not done():
            await ctx.tick()
            cyc += 1
            assert cyc < limit, stuck()
        for _ in range(20):
            await ctx.tick()
    return run


def slave_channel(valid, ready, fields, bp, rng, held, on_take, what):
    """A slave taking one channel of ``m``: ``ready`` low with probability ``bp``; the
    first ``held`` of ``fields`` must stay stable (and valid high) until taken; each
    handshake calls ``on_take(cycle, *fields)``."""
    async def run(ctx):
        prev = None
        cyc = 0
        while True:
            rdy = rng.random() >= bp
            ctx.set(ready, rdy)
            _, _, v, *vals = await ctx.tick().sample(valid, *fields)
            cur = tuple(vals[:held])
            if prev is not None:
                assert v and cur == prev, f"{what} changed before {what.lower()}ready: {prev} -> {v} {cur}"
            prev = None
            if v and rdy:
                on_take(cyc, *vals)
            elif v:
                prev = cur
            cyc += 1
    return run


def simulate(n, bursts, *, seed=0, idle=0.5, ar_bp=0.3, r_gap=0.3, max_latency=6,
             id_width=3):
    """``bursts[k]``: [(addr, beats)] of master k.  Returns (grants [(cycle, id)],
    requests {k: [(raise cycle, grant cycle)]})."""
    dut = ReadArbiter(n, data_width=DW, id_width=id_width)
    got_r = {k: [] for k in range(n)}
    requests = {k: [] for k in range(n)}
    grants: list = []
    seen_ar = {k: [] for k in range(n)}
    pending = {i: [] for i in range(1 << id_width)}     # per ID: [ready cycle, addr, beats, next]
    state = {"masters": 0, "done": False}
    want_beats = sum(b for k in range(n) for _, b in bursts[k])

    async def master(ctx, k):
        s = dut.s[k]
        rng = random.Random(seed * 31 + k)
        ctx.set(s.arsize, 3)
        ctx.set(s.arburst, axi.BURST_INCR)
        ctx.set(s.arcache, 0b0011)
        cyc = 0
        for addr, nb in bursts[k]:
            cyc += await idle_cycles(ctx, rng, idle, s.araddr, s.arlen)
            ctx.set(s.arvalid, 1)
            ctx.set(s.araddr, addr)
            ctx.set(s.arlen, nb - 1)
            raised = cyc
            cyc += await wait_ready(ctx, s.arready)
            requests[k].append((raised, cyc - 1))
            ctx.set(s.arvalid, 0)
        state["masters"] += 1

    async def r_monitor(ctx, k):
        s = dut.s[k]
        async for _, _, v, d, last, rid, resp in ctx.tick().sample(
                s.rvalid, s.rdata, s.rlast, s.rid, s.rresp):
            if v:
                assert rid == k, f"master {k}: rid {rid}"
                got_r[k].append((d, last, resp))

    ar_rng = random.Random(seed * 31 + 100)

    def take_ar(cyc, a, ln, i, size, burst):
        k = a >> 24
        assert i == k, f"arid {i} for master {k}'s AR {a:#x}"
        assert (size, burst) == (3, axi.BURST_INCR)
        seen_ar[k].append((a, ln + 1))
        grants.append((cyc, i))
        pending[i].append([cyc + ar_rng.randint(1, max_latency), a, ln + 1, 0])

    m = dut.m
    slave_ar = slave_channel(m.arvalid, m.arready, (m.araddr, m.arlen, m.arid, m.arsize, m.arburst),
                             ar_bp, ar_rng, 3, take_ar, "AR")

    async def slave_r(ctx):
        rng = random.Random(seed * 31 + 101)
        m = dut.m
        cyc = 0
        while True:
            ready_ids = [i for i, q in pending.items() if q and q[0][0] <= cyc]
            if ready_ids and rng.random() >= r_gap:
                i = rng.choice(ready_ids)
                b = pending[i][0]
                ctx.set(m.rvalid, 1)
                ctx.set(m.rid, i)
                ctx.set(m.rdata, beat_data(b[1], b[3]))
                ctx.set(m.rlast, b[3] == b[2] - 1)
                ctx.set(m.rresp, b[3] & 1)
                _, _, rr = await ctx.tick().sample(m.rready)
                assert rr, "rready low"
                b[3] += 1
                if b[3] == b[2]:
                    pending[i].pop(0)
            else:
                ctx.set(m.rvalid, 0)
                ctx.set(m.rid, rng.randrange(1 << id_width))     # garbage while not valid
                ctx.set(m.rdata, rng.randrange(1 << DW))
                ctx.set(m.rlast, rng.randrange(2))
                await ctx.tick()
            cyc += 1

    bench_end = end_bench(
        lambda: state["masters"] == n and sum(len(v) for v in got_r.values()) >= want_beats,
        500 + 30 * want_beats, lambda: "stuck")
    streams.run_testbenches(dut, [partial(tb, k=k) for k in range(n) for tb in (master, r_monitor)]
                            + [slave_ar, slave_r], bench_end)

    for k in range(n):
        assert seen_ar[k] == list(bursts[k]), \
            f"master {k}: ARs at the slave {seen_ar[k][:5]}... want {bursts[k][:5]}..."
        want = [(beat_data(a, j), int(j == nb - 1), j & 1) for a, nb in bursts[k] for j in range(nb)]
        assert len(got_r[k]) == len(want), f"master {k}: {len(got_r[k])} beats, {len(want)} expected"
        bad = [j for j in range(len(want)) if got_r[k][j] != want[j]]
        assert not bad, f"master {k}: beat #{bad[0]} got {got_r[k][bad[0]]} want {want[bad[0]]}"
    assert all(not q for q in pending.values())
    cycles = [c for c, _ in grants]
    assert len(set(cycles)) == len(cycles), "two ARs in one cycle"
    return grants, requests


def check_fairness(n, grants, requests):
    """Between a master's arvalid rising and its grant, at most n - 1 grants to others."""
    worst = 0
    for k, reqs in requests.items():
        for raised, granted in reqs:
            others = sum(1 for c, i in grants if raised <= c < granted and i != k)
            assert others <= n - 1, \
                f"master {k} asked in cycle {raised}, granted in {granted} after {others} other grants"
            worst = max(worst, others)
    return worst


@pytest.mark.parametrize("n,seed", [(3, 1), (4, 2), (5, 3)])
def test_arbiter_random(n, seed):
    rng = random.Random(seed)
    bursts = [master_bursts(rng, k, rng.randint(15, 25)) for k in range(n)]
    grants, requests = simulate(n, bursts, seed=seed, ar_bp=0.5, idle=0.7)
    check_fairness(n, grants, requests)


def test_arbiter_all_requesting():
    """Every master always has an AR waiting: grants go 0, 1, .., n-1, 0, ... (also with
    arready randomly low), so no master waits more than n - 1 grants."""
    for n, ar_bp in [(5, 0.0), (4, 0.5), (3, 0.3)]:
        rng = random.Random(n)
        bursts = [master_bursts(rng, k, 12, max_len=3) for k in range(n)]
        grants, requests = simulate(n, bursts, seed=n, idle=0.0, ar_bp=ar_bp, r_gap=0.1)
        ids = [i for _, i in grants]
        assert ids == [g % n for g in range(len(ids))], f"grant order {ids}"
        assert check_fairness(n, grants, requests) == n - 1


def test_arbiter_two_masters_one_bit_id():
    """n = 2 with a one-bit ID (the smallest port)."""
    rng = random.Random(9)
    bursts = [master_bursts(rng, k, 20) for k in range(2)]
    grants, requests = simulate(2, bursts, seed=9, id_width=1)
    check_fairness(2, grants, requests)


def test_arbiter_no_added_latency():
    """m.arvalid (with the master's address, arid = k) in the same cycle a master asks
    while the port is free; the grant is held while arready is low even if a master with
    higher priority asks meanwhile."""
    dut = ReadArbiter(4, data_width=DW, id_width=2)
    log = []

    async def bench(ctx):
        m = dut.m
        ctx.set(m.arready, 0)
        await ctx.tick()
        ctx.set(dut.s[2].arvalid, 1)
        ctx.set(dut.s[2].araddr, 0x2000)
        ctx.set(dut.s[2].arlen, 3)
        log.append((ctx.get(m.arvalid), ctx.get(m.arid), ctx.get(m.araddr), ctx.get(m.arlen)))
        await ctx.tick()
        ctx.set(dut.s[0].arvalid, 1)            # would come first from pointer 0
        ctx.set(dut.s[0].araddr, 0x1000)
        log.append((ctx.get(m.arvalid), ctx.get(m.arid), ctx.get(m.araddr), ctx.get(m.arlen)))
        await ctx.tick()
        ctx.set(m.arready, 1)
        log.append((ctx.get(m.arvalid), ctx.get(m.arid), ctx.get(m.araddr), ctx.get(dut.s[2].arready)))
        await ctx.tick()
        ctx.set(dut.s[2].arvalid, 0)
        log.append((ctx.get(m.arvalid), ctx.get(m.arid), ctx.get(m.araddr), ctx.get(dut.s[0].arready)))

    streams.run_testbenches(dut, [], bench)
    assert log == [(1, 2, 0x2000, 3), (1, 2, 0x2000, 3), (1, 2, 0x2000, 1), (1, 0, 0x1000, 1)]


def test_arbiter_parameter_checks():
    with pytest.raises(ValueError, match="n=3"):
        ReadArbiter(3, id_width=1)
    with pytest.raises(ValueError, match="n=0"):
        ReadArbiter(0)


# ---- WriteArbiter ----------------------------------------------------------------------
#
# Masters (2..5) on s[k], as MemWriters present bursts: an AW process and a W process per
# master; a burst's W beats are offered before, with or after its AW (random per burst),
# AW and W each held (valid and payload) until taken, garbage payload while not valid,
# bready always high.  Every AW carries (master, sequence) in its address, every W beat
# (master, sequence, beat) in its data, with a random strobe.  A Python slave on m takes
# AW and W with independent random ready and returns one B per burst (once its last W
# beat is in) after a random latency, in a random order across IDs (in order per ID),
# each with a random bresp.

from convc.hdl.arbiter import WriteArbiter  # noqa: E402


def aw_addr(k: int, seq: int) -> int:
    return (k << 24) | (seq << 12) | ((seq * 0x40) & 0xFC0)


def w_data(k: int, seq: int, beat: int, salt: int) -> int:
    return (k << 56) | (seq << 44) | (beat << 36) | (salt & 0xFFFFFFFFF)


def write_bursts(rng, k, count, max_len=8):
    out = []
    for s in range(count):
        nb = rng.randint(1, max_len)
        out.append({"addr": aw_addr(k, s), "beats": nb,
                    "data": [w_data(k, s, j, rng.randrange(1 << 36)) for j in range(nb)],
                    "strb": [rng.randrange(256) for _ in range(nb)],
                    "bresp": rng.randrange(4)})
    return out


def simulate_write(n, bursts, *, seed=0, idle=0.5, w_idle=0.3, w_gap=0.15, aw_bp=0.3,
                   w_bp=0.3, b_gap=0.3, max_latency=6, id_width=3, modes=("before", "with", "after")):
    """``bursts[k]``: master k's bursts (:func:`write_bursts`); ``idle``: the chance of an
    idle cycle before each AW (or one per master).  Returns (grants [(cycle,
    id)], requests {k: [(raise cycle, grant cycle)]}); checks everything else."""
    dut = WriteArbiter(n, data_width=DW, id_width=id_width)
    requests = {k: [] for k in range(n)}
    aw_raised = {k: 0 for k in range(n)}
    aw_taken = {k: [] for k in range(n)}        # master side: AW handshake cycles
    w_taken = {k: [] for k in range(n)}         # master side: W beat handshake cycles
    got_b = {k: [] for k in range(n)}
    aw_log: list = []                           # slave side: (cycle, awid, addr, len)
    w_log: list = []                            # slave side: (cycle, data, strb, last)
    wlast_cycles: list = []
    b_pending = {i: [] for i in range(1 << id_width)}   # per ID: [ready cycle, bresp]
    bresp_of = {b["addr"]: b["bresp"] for k in range(n) for b in bursts[k]}
    state = {"aw": 0, "w": 0, "b_sched": 0, "b_sent": 0}
    n_bursts = sum(len(b) for b in bursts)

    async def master_aw(ctx, k):
        s = dut.s[k]
        rng = random.Random(seed * 31 + k)
        my_idle = idle[k] if isinstance(idle, (list, tuple)) else idle
        ctx.set(s.awsize, 3)
        ctx.set(s.awburst, axi.BURST_INCR)
        ctx.set(s.awcache, 0b0011)
        ctx.set(s.bready, 1)
        cyc = 0
        for b in bursts[k]:
            cyc += await idle_cycles(ctx, rng, my_idle, s.awaddr, s.awlen)
            ctx.set(s.awvalid, 1)
            ctx.set(s.awaddr, b["addr"])
            ctx.set(s.awlen, b["beats"] - 1)
            aw_raised[k] += 1
            raised = cyc
            cyc += await wait_ready(ctx, s.awready)
            requests[k].append((raised, cyc - 1))
            aw_taken[k].append(cyc - 1)
            ctx.set(s.awvalid, 0)
        state["aw"] += 1

    async def master_w(ctx, k):
        s = dut.s[k]
        rng = random.Random(seed * 31 + 50 + k)

        async def wait():
            ctx.set(s.wvalid, 0)
            ctx.set(s.wdata, rng.randrange(1 << DW))                # garbage while not valid
            ctx.set(s.wstrb, rng.randrange(256))
            ctx.set(s.wlast, rng.randrange(2))
            await ctx.tick()

        cyc = 0
        for j, b in enumerate(bursts[k]):
            mode = rng.choice(modes)
            if mode == "with":          # offered from the cycle its AW is
                while aw_raised[k] <= j:
                    await wait()
                    cyc += 1
            elif mode == "after":       # once its AW has been taken, plus 0..3 cycles
                while len(aw_taken[k]) <= j:
                    await wait()
                    cyc += 1
                for _ in range(rng.randrange(4)):
                    await wait()
                    cyc += 1
            else:                       # before: as soon as the previous burst is out
                while w_idle and rng.random() < w_idle:
                    await wait()
                    cyc += 1
            for i in range(b["beats"]):
                while i and w_gap and rng.random() < w_gap:
                    await wait()
                    cyc += 1
                ctx.set(s.wvalid, 1)
                ctx.set(s.wdata, b["data"][i])
                ctx.set(s.wstrb, b["strb"][i])
                ctx.set(s.wlast, i == b["beats"] - 1)
                cyc += await wait_ready(ctx, s.wready)
                w_taken[k].append(cyc - 1)
        ctx.set(s.wvalid, 0)
        state["w"] += 1

    async def b_monitor(ctx, k):
        s = dut.s[k]
        async for _, _, v, bid, resp in ctx.tick().sample(s.bvalid, s.bid, s.bresp):
            if v:
                assert bid == k, f"master {k}: bid {bid}"
                got_b[k].append(resp)

    def take_aw(cyc, a, ln, i, size, burst, cache):
        assert (size, burst, cache) == (3, axi.BURST_INCR, 0b0011)
        aw_log.append((cyc, i, a, ln))

    def take_w(cyc, d, st, last):
        w_log.append((cyc, d, st, last))
        if last:
            wlast_cycles.append(cyc)

    m = dut.m
    slave_aw = slave_channel(m.awvalid, m.awready,
                             (m.awaddr, m.awlen, m.awid, m.awsize, m.awburst, m.awcache),
                             aw_bp, random.Random(seed * 31 + 100), 3, take_aw, "AW")
    slave_w = slave_channel(m.wvalid, m.wready, (m.wdata, m.wstrb, m.wlast),
                            w_bp, random.Random(seed * 31 + 101), 3, take_w, "W")

    async def slave_b(ctx):
        rng = random.Random(seed * 31 + 102)
        m = dut.m
        cyc = 0
        while True:
            # burst #j complete (its AW and its wlast seen): its B becomes due
            while state["b_sched"] < min(len(aw_log), len(wlast_cycles)):
                j = state["b_sched"]
                ca, i, a, _ = aw_log[j]
                due = max(ca, wlast_cycles[j], cyc) + rng.randint(1, max_latency)
                b_pending[i].append([due, bresp_of.get(a, 0)])
                state["b_sched"] += 1
            ready_ids = [i for i, q in b_pending.items() if q and q[0][0] <= cyc]
            if ready_ids and rng.random() >= b_gap:
                i = rng.choice(ready_ids)
                ctx.set(m.bvalid, 1)
                ctx.set(m.bid, i)
                ctx.set(m.bresp, b_pending[i][0][1])
                _, _, br = await ctx.tick().sample(m.bready)
                assert br, "bready low"
                b_pending[i].pop(0)
                state["b_sent"] += 1
            else:
                ctx.set(m.bvalid, 0)
                ctx.set(m.bid, rng.randrange(1 << id_width))       # garbage while not valid
                ctx.set(m.bresp, rng.randrange(4))
                _, _, br = await ctx.tick().sample(m.bready)
                assert br, "bready low"
            cyc += 1

    want_beats = sum(b["beats"] for k in range(n) for b in bursts[k])
    bench_end = end_bench(
        lambda: state["aw"] == n and state["w"] == n and state["b_sent"] >= n_bursts,
        500 + 40 * want_beats,
        lambda: (f"stuck: {len(aw_log)}/{n_bursts} AWs, {len(w_log)}/{want_beats} W beats, "
                 f"{state['b_sent']} B"))
    streams.run_testbenches(dut, [partial(tb, k=k) for k in range(n) for tb in (master_aw, master_w, b_monitor)]
                            + [slave_aw, slave_w, slave_b], bench_end)

    # AW: awid = master, each master's bursts exactly once and in its order, at the cycles
    # the masters saw awready
    for k in range(n):
        mine = [(c, i, a, ln) for c, i, a, ln in aw_log if a >> 24 == k]
        assert all(i == k for _, i, _, _ in mine), f"master {k}: awid {[i for _, i, _, _ in mine]}"
        assert [(a, ln + 1) for _, _, a, ln in mine] == [(b["addr"], b["beats"]) for b in bursts[k]], \
            f"master {k}: AWs at the slave {[hex(a) for _, _, a, _ in mine][:6]}..."
        assert [c for c, _, _, _ in mine] == aw_taken[k], f"master {k}: awready to the wrong master"
    assert len(aw_log) == n_bursts
    # W: the bursts' beats in AW order, each burst whole, in order, not interleaved; a
    # burst's data may lead its AW only while no earlier burst's data is pending; at most
    # W_QUEUE bursts have their AW out and their data not finished
    want_beats = sum(b["beats"] for k in range(n) for b in bursts[k])
    assert len(w_log) == want_beats, f"{len(w_log)} W beats at the slave, {want_beats} sent"
    by_addr = {b["addr"]: b for k in range(n) for b in bursts[k]}
    pos = 0
    w_cycles = {k: [] for k in range(n)}
    ends = []
    for j, (ca, i, a, ln) in enumerate(aw_log):
        b = by_addr[a]
        beats = w_log[pos:pos + ln + 1]
        pos += ln + 1
        got = [(d, st, last) for _, d, st, last in beats]
        want = [(b["data"][x], b["strb"][x], int(x == ln)) for x in range(ln + 1)]
        bad = [x for x in range(len(want)) if got[x] != want[x]]
        assert not bad, (f"AW #{j} (master {i}, {a:#x}): beat {bad[0]} got "
                         f"{tuple(hex(v) for v in got[bad[0]])} want {tuple(hex(v) for v in want[bad[0]])}")
        if beats[0][0] < ca:        # data ahead of its address: the earlier bursts are done
            assert j == 0 or ends[-1] < beats[0][0], \
                f"AW #{j}'s data in cycle {beats[0][0]} before AW #{j - 1}'s wlast in cycle {ends[-1]}"
        ends.append(beats[-1][0])
        w_cycles[i] += [c for c, _, _, _ in beats]
    for j, (ca, _, _, _) in enumerate(aw_log):
        pending = sum(1 for q in range(j + 1) if ends[q] > ca)    # AW out, data not finished
        assert pending <= WriteArbiter.W_QUEUE + 1, f"AW #{j} in cycle {ca} with {pending - 1} bursts pending"
    for k in range(n):
        assert w_cycles[k] == w_taken[k], f"master {k}: wready does not match its beats at the slave"
    # B: each master exactly its responses, in order
    for k in range(n):
        assert got_b[k] == [b["bresp"] for b in bursts[k]], f"master {k}: B {got_b[k]}"
    assert all(not q for q in b_pending.values())
    cycles = [c for c, _, _, _ in aw_log]
    assert len(set(cycles)) == len(cycles), "two AWs in one cycle"
    return [(c, i) for c, i, _, _ in aw_log], requests


@pytest.mark.parametrize("n,seed,id_width", [(2, 11, 1), (3, 12, 2), (4, 13, 3), (5, 14, 3)])
def test_write_arbiter_random(n, seed, id_width):
    rng = random.Random(seed)
    bursts = [write_bursts(rng, k, rng.randint(10, 16)) for k in range(n)]
    grants, requests = simulate_write(n, bursts, seed=seed, id_width=id_width, idle=0.6)
    check_fairness(n, grants, requests)


def test_write_arbiter_backpressure_and_modes():
    """Heavy AW/W backpressure and slow B, then a fast slave; W only after AW, only
    before AW."""
    rng = random.Random(21)
    bursts = [write_bursts(rng, k, 8) for k in range(3)]
    grants, requests = simulate_write(3, bursts, seed=21, aw_bp=0.6, w_bp=0.7, b_gap=0.6, idle=0.3)
    check_fairness(3, grants, requests)
    grants, requests = simulate_write(3, bursts, seed=22, aw_bp=0.0, w_bp=0.0, b_gap=0.0,
                                      idle=0.4, w_gap=0.0, max_latency=1)
    check_fairness(3, grants, requests)
    for modes, seed in [(("after",), 23), (("before",), 24)]:
        grants, requests = simulate_write(4, [write_bursts(rng, k, 6) for k in range(4)],
                                          seed=seed, modes=modes)
        check_fairness(4, grants, requests)


def test_write_arbiter_all_requesting():
    """Every master always has an AW (and its W) waiting: grants go 0, 1, .., n-1, 0, ..."""
    for n, aw_bp, w_bp in [(5, 0.0, 0.0), (4, 0.5, 0.3), (2, 0.3, 0.5)]:
        rng = random.Random(30 + n)
        bursts = [write_bursts(rng, k, 8, max_len=3) for k in range(n)]
        grants, requests = simulate_write(n, bursts, seed=30 + n, idle=0.0, w_idle=0.0, w_gap=0.0,
                                          aw_bp=aw_bp, w_bp=w_bp, b_gap=0.1, modes=("before",))
        ids = [i for _, i in grants]
        assert ids == [g % n for g in range(len(ids))], f"grant order {ids}"
        assert check_fairness(n, grants, requests) == n - 1


def test_write_arbiter_one_beat_bursts_at_full_rate():
    """One-beat bursts from every master, data offered with the address, no
    backpressure: one burst a cycle (AW and its W beat in the same cycle), so the write
    channel carries a beat every cycle across masters (the row writer's short rows)."""
    rng = random.Random(61)
    n = 4
    bursts = [write_bursts(rng, k, 10, max_len=1) for k in range(n)]
    grants, _ = simulate_write(n, bursts, seed=61, idle=0.0, w_idle=0.0, w_gap=0.0, aw_bp=0.0, w_bp=0.0,
                               b_gap=0.0, modes=("with",))
    cycles = [c for c, _ in grants]
    steady = cycles[n:-n]
    assert all(b - a == 1 for a, b in zip(steady, steady[1:])), f"AW cycles {cycles}"


def test_write_arbiter_lock_and_latency():
    """m.awvalid (awid = k) in the cycle a master asks while the port is free; with no
    burst pending, that master's W beats go ahead of its AW and the grant is held on it
    until its AW is taken; the next master's AW and its one-beat burst in one cycle; a
    burst whose AW went out holds W (in AW order) while later AWs go on."""
    dut = WriteArbiter(3, data_width=DW, id_width=2)
    log = []

    async def bench(ctx):
        m, s = dut.m, dut.s

        def look():     # the bus, then each master's AW and W handshakes
            av, wv = ctx.get(m.awvalid), ctx.get(m.wvalid)
            return (av, (ctx.get(m.awid), ctx.get(m.awaddr)) if av else None,
                    wv, (ctx.get(m.wdata), ctx.get(m.wlast)) if wv else None,
                    *[ctx.get(s[k].awready) & ctx.get(s[k].awvalid) for k in range(3)],
                    *[ctx.get(s[k].wready) & ctx.get(s[k].wvalid) for k in range(3)])

        def aw(k, valid, addr=0, beats=1):
            ctx.set(s[k].awvalid, valid)
            ctx.set(s[k].awaddr, addr)
            ctx.set(s[k].awlen, beats - 1)

        def w(k, valid, data=0, last=0):
            ctx.set(s[k].wvalid, valid)
            ctx.set(s[k].wdata, data)
            ctx.set(s[k].wlast, last)

        ctx.set(m.awready, 0)
        ctx.set(m.wready, 1)
        aw(1, 1, 0x1000, 2)
        w(1, 1, 0x11)
        log.append(look())                      # 0: AW out, its first beat goes ahead
        await ctx.tick()
        w(1, 1, 0x12, 1)
        aw(0, 1, 0x2000)
        w(0, 1, 0x21, 1)
        log.append(look())                      # 1: grant held on master 1, its wlast
        await ctx.tick()
        w(1, 0)
        ctx.set(m.awready, 1)
        log.append(look())                      # 2: master 1's AW taken, no W
        await ctx.tick()
        aw(1, 0)
        log.append(look())                      # 3: master 0: AW and its beat together
        await ctx.tick()
        aw(0, 0)
        w(0, 0)
        aw(2, 1, 0x3000, 2)
        log.append(look())                      # 4: master 2's AW, its data not there yet
        await ctx.tick()
        aw(2, 0)
        aw(0, 1, 0x4000)
        w(0, 1, 0x41, 1)
        log.append(look())                      # 5: master 0's AW goes, its W waits
        await ctx.tick()
        aw(0, 0)
        w(2, 1, 0x31)
        log.append(look())                      # 6: master 2's beats first (AW order)
        await ctx.tick()
        w(2, 1, 0x32, 1)
        log.append(look())
        await ctx.tick()
        w(2, 0)
        log.append(look())                      # 8: then master 0's beat

    streams.run_testbenches(dut, [], bench)
    assert log == [
        (1, (1, 0x1000), 1, (0x11, 0), 0, 0, 0, 0, 1, 0),       # 0: data leads its address
        (1, (1, 0x1000), 1, (0x12, 1), 0, 0, 0, 0, 1, 0),       # 1: grant held, wlast
        (1, (1, 0x1000), 0, None, 0, 1, 0, 0, 0, 0),            # 2: AW taken, burst done
        (1, (0, 0x2000), 1, (0x21, 1), 1, 0, 0, 1, 0, 0),       # 3: AW and W in one cycle
        (1, (2, 0x3000), 0, None, 0, 0, 1, 0, 0, 0),            # 4: AW, no data yet
        (1, (0, 0x4000), 0, None, 1, 0, 0, 0, 0, 0),            # 5: next AW, W waits for 2
        (0, None, 1, (0x31, 0), 0, 0, 0, 0, 0, 1),              # 6: master 2's burst
        (0, None, 1, (0x32, 1), 0, 0, 0, 0, 0, 1),
        (0, None, 1, (0x41, 1), 0, 0, 0, 1, 0, 0),              # 8: then master 0's
    ], log


def test_write_arbiter_parameter_checks():
    with pytest.raises(ValueError, match="n=3"):
        WriteArbiter(3, id_width=1)
    with pytest.raises(ValueError, match="n=0"):
        WriteArbiter(0)


def test_write_arbiter_sparse_requests():
    """One master always asking, the others rarely, short bursts, awready mostly low: the
    others often raise AW (with priority) while the busy master's AW waits for awready
    on m (the grant must be held, AW stable on m)."""
    for n, seed in [(4, 41), (2, 42), (3, 43)]:
        rng = random.Random(seed)
        bursts = [write_bursts(rng, k, 16 if k == 0 else 6, max_len=2) for k in range(n)]
        grants, requests = simulate_write(n, bursts, seed=seed, idle=[0.0] + [0.9] * (n - 1),
                                          aw_bp=0.75, w_bp=0.2, w_gap=0.0, w_idle=0.5)
        check_fairness(n, grants, requests)

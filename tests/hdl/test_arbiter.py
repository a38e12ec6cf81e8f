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

import pytest
from amaranth.sim import Simulator
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

    def master(k):
        async def run(ctx):
            s = dut.s[k]
            rng = random.Random(seed * 31 + k)
            ctx.set(s.arsize, 3)
            ctx.set(s.arburst, axi.BURST_INCR)
            ctx.set(s.arcache, 0b0011)
            cyc = 0
            for addr, nb in bursts[k]:
                while idle and rng.random() < idle:
                    ctx.set(s.araddr, rng.randrange(1 << 32))     # garbage while not valid
                    ctx.set(s.arlen, rng.randrange(256))
                    await ctx.tick()
                    cyc += 1
                ctx.set(s.arvalid, 1)
                ctx.set(s.araddr, addr)
                ctx.set(s.arlen, nb - 1)
                raised = cyc
                while True:
                    _, _, rdy = await ctx.tick().sample(s.arready)
                    cyc += 1
                    if rdy:
                        break
                requests[k].append((raised, cyc - 1))
                ctx.set(s.arvalid, 0)
            state["masters"] += 1
        return run

    def r_monitor(k):
        async def run(ctx):
            s = dut.s[k]
            async for _, _, v, d, last, rid, resp in ctx.tick().sample(
                    s.rvalid, s.rdata, s.rlast, s.rid, s.rresp):
                if v:
                    assert rid == k, f"master {k}: rid {rid}"
                    got_r[k].append((d, last, resp))
        return run

    async def slave_ar(ctx):
        rng = random.Random(seed * 31 + 100)
        m = dut.m
        prev = None
        cyc = 0
        while True:
            rdy = rng.random() >= ar_bp
            ctx.set(m.arready, rdy)
            _, _, v, a, ln, i, size, burst = await ctx.tick().sample(
                m.arvalid, m.araddr, m.arlen, m.arid, m.arsize, m.arburst)
            if prev is not None:
                assert v and (a, ln, i) == prev, f"AR changed before arready: {prev} -> {v} {(a, ln, i)}"
            prev = None
            if v and rdy:
                k = a >> 24
                assert i == k, f"arid {i} for master {k}'s AR {a:#x}"
                assert (size, burst) == (3, axi.BURST_INCR)
                seen_ar[k].append((a, ln + 1))
                grants.append((cyc, i))
                pending[i].append([cyc + rng.randint(1, max_latency), a, ln + 1, 0])
            elif v:
                prev = (a, ln, i)
            cyc += 1

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

    async def bench_end(ctx):
        cyc = 0
        while state["masters"] < n or sum(len(v) for v in got_r.values()) < want_beats:
            await ctx.tick()
            cyc += 1
            assert cyc < 500 + 30 * want_beats, "stuck"
        for _ in range(20):
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for k in range(n):
        sim.add_testbench(master(k), background=True)
        sim.add_testbench(r_monitor(k), background=True)
    sim.add_testbench(slave_ar, background=True)
    sim.add_testbench(slave_r, background=True)
    sim.add_testbench(bench_end)
    sim.run()

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

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert log == [(1, 2, 0x2000, 3), (1, 2, 0x2000, 3), (1, 2, 0x2000, 1), (1, 0, 0x1000, 1)]


def test_arbiter_parameter_checks():
    with pytest.raises(ValueError, match="n=3"):
        ReadArbiter(3, id_width=1)
    with pytest.raises(ValueError, match="n=0"):
        ReadArbiter(0)

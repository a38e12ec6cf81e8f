"""The ECP5 top's parts: the on-chip AXI RAM (bursts, strobes, backpressure), the start
controller against the host registers, the PLL settings and nextpnr's log."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from convc.hdl import regs
from convc.hdl.ecp5 import AXIRam, Starter, parse_nextpnr_log, pll_params
from convc.hdl.regs import HostRegisters

DW = 64


def _sim(dut, bench, clocks=1e-8):
    sim = Simulator(dut)
    sim.add_clock(clocks)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("seed, writable", [(1, None), (2, None), (3, None), (4, (8, 44)), (5, (32, 64))])
def test_axi_ram_bursts_with_backpressure(seed, writable):
    """Write bursts then read bursts, random strobes and backpressure; with a writable
    window, writes outside it are dropped and reads cross between ROM and RAM."""
    depth = 64
    ref = [(i * 0x0123_4567_89AB) & ((1 << DW) - 1) for i in range(depth)]
    dut = AXIRam(depth, data_width=DW, id_width=2, init=list(ref), writable=writable)
    lo, hi = writable or (0, depth)
    rng = random.Random(seed)
    got = []

    async def bench(ctx):
        b = dut.s_axi
        ctx.set(b.bready, 1)
        for start, length in ((8, 4), (40, 1), (62, 2)):
            # write data may be offered before its address: the RAM takes it after
            ctx.set(b.wvalid, 1)
            ctx.set(b.awaddr, start * DW // 8)
            ctx.set(b.awlen, length - 1)
            ctx.set(b.awid, 1)
            ctx.set(b.awvalid, 1)
            k = 0
            while k < length:
                strobe = rng.randrange(1, 1 << (DW // 8))
                value = rng.getrandbits(DW)
                ctx.set(b.wdata, value)
                ctx.set(b.wstrb, strobe)
                ctx.set(b.wlast, k == length - 1)
                ctx.set(b.wvalid, 1)
                _, _, awr, wr = await ctx.tick().sample(b.awready, b.wready)
                if awr:
                    ctx.set(b.awvalid, 0)
                if wr:
                    mask = sum(0xFF << (8 * i) for i in range(DW // 8) if strobe >> i & 1)
                    if lo <= start + k < hi:
                        ref[start + k] = (ref[start + k] & ~mask) | (value & mask)
                    k += 1
            ctx.set(b.wvalid, 0)
            await ctx.tick().until(b.bvalid)
        bursts = [(0, 16, 2), (16, 8, 1), (5, 1, 3), (56, 8, 0), (40, 8, 1), (60, 4, 2)]
        expect = [(ref[s + j], i, j == n - 1) for s, n, i in bursts for j in range(n)]
        pending = list(bursts)
        for _ in range(1000):
            if pending:
                s, n, i = pending[0]
                ctx.set(b.araddr, s * DW // 8)
                ctx.set(b.arlen, n - 1)
                ctx.set(b.arid, i)
                ctx.set(b.arvalid, 1)
            else:
                ctx.set(b.arvalid, 0)
            ctx.set(b.rready, rng.random() < 0.6)
            _, _, arv, arr, rv, rr, data, rid, last = await ctx.tick().sample(
                b.arvalid, b.arready, b.rvalid, b.rready, b.rdata, b.rid, b.rlast)
            if arv and arr:
                pending.pop(0)
            if rv and rr:
                got.append((data, rid, last))
            if len(got) == len(expect):
                break
        assert got == expect

    _sim(dut, bench)


def test_axi_ram_window_is_checked():
    with pytest.raises(ValueError, match=r"writable=\(4, 70\) is not a range of beats within depth=64"):
        AXIRam(64, writable=(4, 70))


def test_axi_ram_streams_a_beat_a_cycle_across_bursts():
    dut = AXIRam(32, data_width=DW, init=list(range(32)))
    beats = []

    async def bench(ctx):
        b = dut.s_axi
        ctx.set(b.rready, 1)
        ctx.set(b.arvalid, 1)
        ctx.set(b.arlen, 3)
        for cycle in range(20):
            ctx.set(b.araddr, (cycle * 4 % 32) * DW // 8)
            _, _, rv, data = await ctx.tick().sample(b.rvalid, b.rdata)
            if rv:
                beats.append((cycle, data))
        first = beats[0][0]
        assert [c for c, _ in beats[:12]] == list(range(first, first + 12))      # no bubble between bursts

    _sim(dut, bench)


def test_starter_programs_the_registers_and_polls_status():
    m = Module()
    m.submodules.starter = starter = Starter(sched_addr=0x1234)
    m.submodules.regs = host = HostRegisters()
    wiring.connect(m, starter.m_axil, host.s_axil)
    seen = {}

    async def bench(ctx):
        for cycle in range(200):
            _, _, start, sched, image = await ctx.tick().sample(host.start, host.sched_addr, host.image_addr)
            if start and "start" not in seen:
                seen.update(start=cycle, sched=sched, image=image)
                ctx.set(host.busy, 1)
            if "start" in seen and cycle == seen["start"] + 20:
                ctx.set(host.busy, 0)
                ctx.set(host.done, 1)
        assert seen["sched"] == 0x1234 * 2 and seen["image"] == 0
        assert ctx.get(starter.status) & regs.STATUS_DONE

    _sim(m, bench)


@pytest.mark.parametrize("mhz", [100.0, 50.0, 125.0, 62.5])
def test_pll_settings_reach_the_frequency_within_the_vco_range(mhz):
    params, got = pll_params(mhz)
    pfd = 25.0 / params["p_CLKI_DIV"]
    vco = pfd * params["p_CLKFB_DIV"] * params["p_CLKOP_DIV"]
    assert 400 <= vco <= 800 and pfd >= 3.125
    assert got == pytest.approx(mhz, rel=0.01) and got == pytest.approx(pfd * params["p_CLKFB_DIV"])


LOG = """Info: Device utilisation:
Info: \t          TRELLIS_IO:      11/    365     3%
Info: \t          MULT18X18D:     101/    156    64%
Info: \t              DP16KD:     137/    208    65%
Info: Max frequency for clock '$glbnet$clk': 21.33 MHz (FAIL at 100.00 MHz)

Info: Critical path report for clock '$glbnet$clk' (posedge -> posedge):
Info:       type curr  total name
Info:   clk-to-q  0.52  0.52 Source accel.seq.ra_TRELLIS_FF_Q_6.Q
Info:    routing  1.22  1.75 Net accel.seq.ra[4] (62,57) -> (62,58)
Info:                          Sink accel.seq.y_MULT18X18D_P15.A4
Info:                          Defined in:
Info:                               t.v:2.11-2.13
Info:      logic  3.93  5.67 Source accel.seq.y_MULT18X18D_P15.P4
Info:    routing  1.35  7.02 Net accel.seq.y_P4 (62,58) -> (62,57)
Info:                          Sink accel.feeder0.y_TRELLIS_FF_Q_3.DI
Info:      setup  0.00  7.02 Source accel.feeder0.y_TRELLIS_FF_Q_3.DI
Info: 4.45 ns logic, 2.57 ns routing

Info: Critical path report for cross-domain path '<async>' -> 'posedge $glbnet$clk':
Info:       type curr  total name
Info:     source  0.00  0.00 Source b[5]$tr_io.O
Info:    routing  4.59  4.59 Net b[5]$TRELLIS_IO_IN (74,0) -> (62,57)
Info:                          Sink rb_TRELLIS_FF_Q_2.M
Info: 0.00 ns logic, 4.59 ns routing

Info: Max frequency for clock '$glbnet$clk': 95.50 MHz (FAIL at 100.00 MHz)
"""


def test_nextpnr_log_gives_the_last_fmax_the_utilization_and_the_path():
    parsed = parse_nextpnr_log(LOG)
    assert parsed["fmax"] == {"$glbnet$clk": (95.5, 100.0)}
    assert parsed["utilization"]["MULT18X18D"] == {"used": 101, "total": 156}
    path = parsed["critical_path"]
    assert path["from"] == "accel.seq.ra_TRELLIS_FF_Q_6.Q" and path["to"] == "accel.feeder0.y_TRELLIS_FF_Q_3.DI"
    assert (path["from_module"], path["to_module"]) == ("accel.seq", "accel.feeder0")
    assert path["delay_ns"] == 7.02 and path["logic_ns"] == 4.45 and path["routing_ns"] == 2.57

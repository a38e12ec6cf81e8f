"""hdl/regs.py (HostRegisters, the AXI4-Lite host slave) in Amaranth simulation, with a
small AXI4-Lite master: the register map, the START pulse (exactly one cycle, only for
bit0 with its byte strobe), byte strobes on the address registers, AW/W in either order
and with gaps, B/R backpressure, the CYCLES_LO -> HI latch, read-only and unmapped
offsets, a random read/write sequence against a Python model.

The cocotb run (cocotbext-axi AxiLiteMaster) is tests/hdl/test_regs_cocotb.py."""

from __future__ import annotations

import random

import pytest
import streams

from convc.hdl import regs
from convc.hdl.export import to_verilog
from convc.hdl.regs import HostRegisters


class LiteMaster:
    """AXI4-Lite master for Amaranth testbenches.  ``gap``: probability of an extra
    idle cycle before AW, before W, and of ``bready``/``rready`` low in a cycle."""

    def __init__(self, bus, rng=None, gap=0.0):
        self.bus, self.rng, self.gap = bus, rng or random.Random(0), gap

    async def _idle(self, ctx):
        while self.gap and self.rng.random() < self.gap:
            await ctx.tick()

    async def _send(self, ctx, valid, ready, values):
        await self._idle(ctx)
        for sig, v in values:
            ctx.set(sig, v)
        ctx.set(valid, 1)
        await ctx.tick().until(ready)
        ctx.set(valid, 0)

    async def write(self, ctx, addr, value, strb=0xF, order=None):
        b = self.bus
        order = order or self.rng.choice(["aw", "w", "both"])
        aw = [(b.awaddr, addr), (b.awprot, 0)]
        w = [(b.wdata, value), (b.wstrb, strb)]
        if order == "both":
            for sig, v in aw + w:
                ctx.set(sig, v)
            ctx.set(b.awvalid, 1)
            ctx.set(b.wvalid, 1)
            pending = {"aw", "w"}
            while pending:
                _, _, ar, wr = await ctx.tick().sample(b.awready, b.wready)
                if ar and "aw" in pending:
                    ctx.set(b.awvalid, 0)
                    pending.discard("aw")
                if wr and "w" in pending:
                    ctx.set(b.wvalid, 0)
                    pending.discard("w")
        elif order == "aw":
            await self._send(ctx, b.awvalid, b.awready, aw)
            await self._send(ctx, b.wvalid, b.wready, w)
        else:
            await self._send(ctx, b.wvalid, b.wready, w)
            await self._send(ctx, b.awvalid, b.awready, aw)
        while True:
            ready = not (self.gap and self.rng.random() < self.gap)
            ctx.set(b.bready, ready)
            _, _, bv, resp = await ctx.tick().sample(b.bvalid, b.bresp)
            if bv and ready:
                break
        ctx.set(b.bready, 0)
        assert resp == 0

    async def read(self, ctx, addr):
        b = self.bus
        await self._send(ctx, b.arvalid, b.arready, [(b.araddr, addr), (b.arprot, 0)])
        while True:
            ready = not (self.gap and self.rng.random() < self.gap)
            ctx.set(b.rready, ready)
            _, _, rv, data, resp = await ctx.tick().sample(b.rvalid, b.rdata, b.rresp)
            if rv and ready:
                break
        ctx.set(b.rready, 0)
        assert resp == 0
        return data


def simulate(dut, bench, *, extra=()):
    streams.run_testbenches(dut, extra, bench)


def pulse_counter(dut, log):
    async def watch(ctx):
        async for _, _, s in ctx.tick().sample(dut.start):
            if s:
                log.append(s)
    return watch


def test_register_map_and_inputs():
    dut = HostRegisters(version=0xC0DE_0102)
    starts = []

    async def bench(ctx):
        m = LiteMaster(dut.s_axil)
        ctx.set(dut.busy, 1)
        ctx.set(dut.error, 1)
        ctx.set(dut.records, 0xDEADBEEF)
        assert await m.read(ctx, regs.STATUS) == 0b101
        ctx.set(dut.busy, 0)
        ctx.set(dut.done, 1)
        ctx.set(dut.error, 0)
        assert await m.read(ctx, regs.STATUS) == 0b010
        assert await m.read(ctx, regs.VERSION) == 0xC0DE0102
        assert await m.read(ctx, regs.RECORDS) == 0xDEADBEEF
        assert await m.read(ctx, regs.CTRL) == 0
        await m.write(ctx, regs.SCHED_ADDR, 0x1234_5678)
        await m.write(ctx, regs.IMAGE_ADDR, 0x8765_4321)
        assert ctx.get(dut.sched_addr) == 0x12345678 and ctx.get(dut.image_addr) == 0x87654321
        assert await m.read(ctx, regs.SCHED_ADDR) == 0x12345678
        assert await m.read(ctx, regs.IMAGE_ADDR) == 0x87654321
        # byte strobes
        await m.write(ctx, regs.SCHED_ADDR, 0xAABBCCDD, strb=0b0101)
        assert await m.read(ctx, regs.SCHED_ADDR) == 0x12BB56DD
        # read-only and unmapped offsets: writes ignored, unmapped reads 0
        for off in (regs.STATUS, regs.CYCLES_LO, regs.CYCLES_HI, regs.RECORDS, regs.VERSION,
                    0x20, 0x3FC, 0xFFC):
            await m.write(ctx, off, 0xFFFFFFFF)
        assert await m.read(ctx, regs.VERSION) == 0xC0DE0102
        assert await m.read(ctx, 0x20) == 0 and await m.read(ctx, 0xFFC) == 0
        assert ctx.get(dut.sched_addr) == 0x12BB56DD and ctx.get(dut.image_addr) == 0x87654321
        # the low two address bits are ignored; the page repeats above 4 KB
        assert await m.read(ctx, regs.VERSION + 3) == 0xC0DE0102
        assert await m.read(ctx, 0x1000 + regs.VERSION) == 0xC0DE0102
        assert not starts

    simulate(dut, bench, extra=[pulse_counter(dut, starts)])


def test_start_pulse_is_one_cycle():
    dut = HostRegisters()
    starts = []

    async def bench(ctx):
        m = LiteMaster(dut.s_axil)
        await m.write(ctx, regs.CTRL, 1)
        for _ in range(5):
            await ctx.tick()
        assert starts == [1]
        await m.write(ctx, regs.CTRL, 0xFFFFFFFE)          # bit0 clear: no pulse
        await m.write(ctx, regs.CTRL, 0x1, strb=0b1110)    # byte 0 not strobed: no pulse
        for _ in range(5):
            await ctx.tick()
        assert starts == [1]
        await m.write(ctx, regs.CTRL, 0x3, order="both")
        await m.write(ctx, regs.CTRL, 0x1, order="w")
        for _ in range(5):
            await ctx.tick()
        assert starts == [1, 1, 1]

    simulate(dut, bench, extra=[pulse_counter(dut, starts)])


def test_start_pulse_timing():
    """start rises the cycle after the write (AW and W both held), lasts one cycle,
    and B is offered in the same cycle."""
    dut = HostRegisters()
    trace = []

    async def bench(ctx):
        b = dut.s_axil
        ctx.set(b.awaddr, regs.CTRL)
        ctx.set(b.wdata, 1)
        ctx.set(b.wstrb, 0xF)
        ctx.set(b.awvalid, 1)
        ctx.set(b.wvalid, 1)
        ctx.set(b.bready, 1)
        for k in range(6):
            _, _, s, bv, ar, wr = await ctx.tick().sample(dut.start, b.bvalid, b.awready, b.wready)
            trace.append((s, bv))
            if k == 0:
                assert ar and wr
                ctx.set(b.awvalid, 0)
                ctx.set(b.wvalid, 0)

    simulate(dut, bench)
    # edge 0: AW+W taken; edge 1: write (start and bvalid set); cycle 2: both high
    assert trace[:4] == [(0, 0), (0, 0), (1, 1), (0, 0)], trace


def test_cycles_lo_latches_hi():
    dut = HostRegisters()

    async def bench(ctx):
        m = LiteMaster(dut.s_axil)
        ctx.set(dut.cycles, 0x0000_0001_FFFF_FFF0)
        assert await m.read(ctx, regs.CYCLES_LO) == 0xFFFFFFF0
        ctx.set(dut.cycles, 0x0000_0002_0000_0005)       # the counter carries meanwhile
        assert await m.read(ctx, regs.CYCLES_HI) == 1      # the latched half
        assert await m.read(ctx, regs.CYCLES_HI) == 1
        assert await m.read(ctx, regs.CYCLES_LO) == 5
        assert await m.read(ctx, regs.CYCLES_HI) == 2

    simulate(dut, bench)


def test_random_sequence_against_model():
    dut = HostRegisters(version=7)
    rng = random.Random(3)

    async def bench(ctx):
        m = LiteMaster(dut.s_axil, rng=random.Random(4), gap=0.4)
        model = {regs.SCHED_ADDR: 0, regs.IMAGE_ADDR: 0}
        hi = 0
        for _ in range(150):
            off = rng.choice([0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18, 0x1C, 0x24])
            cyc = rng.randrange(1 << 64)
            ctx.set(dut.cycles, cyc)
            ctx.set(dut.records, rng.randrange(1 << 32))
            flags = [rng.randrange(2) for _ in range(3)]
            ctx.set(dut.busy, flags[0])
            ctx.set(dut.done, flags[1])
            ctx.set(dut.error, flags[2])
            if rng.random() < 0.5:
                value, strb = rng.randrange(1 << 32), rng.randrange(16)
                await m.write(ctx, off, value, strb)
                if off in model:
                    mask = sum(0xFF << (8 * k) for k in range(4) if strb >> k & 1)
                    model[off] = (model[off] & ~mask) | (value & mask)
            else:
                want = {0x00: 0, 0x04: flags[0] | flags[1] << 1 | flags[2] << 2,
                        0x10: cyc & 0xFFFFFFFF, 0x14: hi, 0x18: ctx.get(dut.records),
                        0x1C: 7, 0x24: 0, **model}[off]
                got = await m.read(ctx, off)
                assert got == want, f"read {off:#x}: {got:#x} want {want:#x}"
                if off == 0x10:
                    hi = cyc >> 32
            assert ctx.get(dut.sched_addr) == model[regs.SCHED_ADDR]
            assert ctx.get(dut.image_addr) == model[regs.IMAGE_ADDR]

    simulate(dut, bench)


def test_parameters_and_ports():
    with pytest.raises(ValueError, match="version"):
        HostRegisters(version=1 << 32)
    with pytest.raises(ValueError, match="addr_width=8"):
        HostRegisters(addr_width=8)
    text = to_verilog(HostRegisters(addr_width=16), "host_regs")
    for name in ("s_axil__awaddr", "s_axil__wstrb", "s_axil__bresp", "s_axil__arready",
                 "s_axil__rdata", "start", "sched_addr", "cycles", "records"):
        assert f" {name};" in text, name
    assert "[15:0] s_axil__awaddr;" in text

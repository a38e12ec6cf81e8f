"""cocotb testbench of HostRegisters (hdl/regs.py) on its exported Verilog, driven by
cocotbext-axi's AxiLiteMaster with random pauses on all five AXI4-Lite channels.

Binding: the port ``s_axil`` is exported as ``s_axil__awaddr``, ...;
``AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__")``.

Checks: the register map against a Python model over a random sequence of 32-bit and
byte-wide (WSTRB) writes and reads; STATUS/RECORDS follow their inputs; every CTRL write
with bit0 set gives exactly one one-cycle ``start`` pulse and no other write does; the
64-bit CYCLES pair read LO then HI is a value the (free-running, carrying) counter really
had; reads and writes issued concurrently.  Configuration in ``$CONVC_TB_CONFIG``:
``seed``, ``n_ops``, ``pause_prob``, ``version``.
"""

from __future__ import annotations

import random

try:  # only inside the simulator
    import cocotb
    from cocotb.triggers import FallingEdge, RisingEdge
    from cocotbext.axi import AxiLiteBus, AxiLiteMaster
except ImportError:  # pragma: no cover
    cocotb = None

import cocotb_harness as h

CTRL, STATUS, SCHED_ADDR, IMAGE_ADDR = 0x00, 0x04, 0x08, 0x0C
CYCLES_LO, CYCLES_HI, RECORDS, VERSION = 0x10, 0x14, 0x18, 0x1C
ZERO = ("busy", "done", "error", "cycles", "records")


class Env:
    def __init__(self, dut, cfg):
        self.dut, self.cfg = dut, cfg
        self.rng = random.Random(cfg["seed"])
        bus = AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__")
        self.host = AxiLiteMaster(bus, dut.clk, dut.rst)
        p = cfg["pause_prob"]
        for k, ch in enumerate((self.host.write_if.aw_channel, self.host.write_if.w_channel,
                                self.host.write_if.b_channel, self.host.read_if.ar_channel,
                                self.host.read_if.r_channel)):
            ch.set_pause_generator(h.pauses(random.Random(cfg["seed"] * 10 + k), p))
        self.starts: list[int] = []      # cycle of each start pulse
        self.cycle = 0
        self.counter_base = (1 << 32) - 800   # the cycle counter carries into HI mid-test

    async def start(self):
        await h.start_clock_and_reset(self.dut, zero=ZERO)
        cocotb.start_soon(self._count())

    async def _count(self):
        """Drive ``cycles`` (a free-running counter) and record start pulses."""
        dut = self.dut
        while True:
            dut.cycles.value = self.counter_base + self.cycle
            await FallingEdge(dut.clk)
            if int(dut.start.value):
                self.starts.append(self.cycle)
            await RisingEdge(dut.clk)
            self.cycle += 1

    async def write32(self, addr, value):
        resp = await self.host.write(addr, int(value).to_bytes(4, "little"))
        assert int(resp.resp) == 0

    async def write_bytes(self, addr, data: bytes):
        resp = await self.host.write(addr, data)
        assert int(resp.resp) == 0

    async def read_cycles(self):
        """CYCLES_LO then CYCLES_HI: (counter before, the value read, counter after)."""
        before = self.counter_base + self.cycle
        lo = await self.read32(CYCLES_LO)
        hi = await self.read32(CYCLES_HI)
        after = self.counter_base + self.cycle
        return before, hi << 32 | lo, after

    async def read32(self, addr):
        resp = await self.host.read(addr, 4)
        assert int(resp.resp) == 0
        return int.from_bytes(resp.data, "little")


if cocotb is not None:

    @cocotb.test()
    async def regs_random_sequence(dut):
        cfg = h.tb_config()
        env = Env(dut, cfg)
        await env.start()
        rng = env.rng
        model = {SCHED_ADDR: 0, IMAGE_ADDR: 0}
        want_starts = 0
        version = cfg["version"]
        for op in range(cfg["n_ops"]):
            flags = [rng.randrange(2) for _ in range(3)]
            records = rng.randrange(1 << 32)
            dut.busy.value, dut.done.value, dut.error.value = flags
            dut.records.value = records
            kind = rng.random()
            off = rng.choice([CTRL, STATUS, SCHED_ADDR, IMAGE_ADDR, CYCLES_LO, CYCLES_HI,
                              RECORDS, VERSION, 0x20, 0x7FC])
            if kind < 0.25:                                  # 32-bit write
                value = rng.randrange(1 << 32)
                await env.write32(off, value)
                if off in model:
                    model[off] = value
                if off == CTRL and value & 1:
                    want_starts += 1
            elif kind < 0.4:                                 # 1..3 bytes somewhere in a register
                k = rng.randrange(4)
                n = rng.randint(1, 4 - k)
                data = bytes(rng.randrange(256) for _ in range(n))
                await env.write_bytes(off + k, data)
                if off in model:
                    b = bytearray(model[off].to_bytes(4, "little"))
                    b[k:k + n] = data
                    model[off] = int.from_bytes(b, "little")
                if off == CTRL and k == 0 and data[0] & 1:
                    want_starts += 1
            elif kind < 0.55:                                # the 64-bit counter, LO then HI
                before, value, after = await env.read_cycles()
                assert before <= value <= after, \
                    f"CYCLES {value:#x} not in [{before:#x}, {after:#x}] (HI not latched?)"
            else:                                            # a read of any offset
                got = await env.read32(off)
                want = {CTRL: 0, STATUS: flags[0] | flags[1] << 1 | flags[2] << 2,
                        RECORDS: records, VERSION: version, 0x20: 0, 0x7FC: 0,
                        **model}
                if off in want:
                    assert got == want[off], f"op {op}: read {off:#x} = {got:#x}, want {want[off]:#x}"
            assert int(dut.sched_addr.value) == model[SCHED_ADDR]
            assert int(dut.image_addr.value) == model[IMAGE_ADDR]
        for _ in range(5):
            await RisingEdge(dut.clk)
        assert len(env.starts) == want_starts, f"{len(env.starts)} start pulses, {want_starts} expected"
        assert all(b - a > 1 for a, b in zip(env.starts, env.starts[1:])), "a start pulse longer than a cycle"
        dut._log.info(f"{cfg['n_ops']} operations, {want_starts} starts, "
                      f"counter carried: {env.counter_base + env.cycle >= 1 << 32}")

    @cocotb.test()
    async def regs_concurrent(dut):
        """Writes of the address registers and reads of the read-only ones in flight
        together (the AXI4-Lite master overlaps them); then everything read back."""
        cfg = h.tb_config()
        env = Env(dut, cfg)
        await env.start()
        rng = env.rng
        dut.records.value = 0x5A5A_0001
        writes = [(rng.choice([SCHED_ADDR, IMAGE_ADDR]), rng.randrange(1 << 32)) for _ in range(40)]
        reads = [rng.choice([RECORDS, VERSION, STATUS]) for _ in range(40)]
        tasks = [cocotb.start_soon(env.write32(a, v)) for a, v in writes]
        rtasks = [cocotb.start_soon(env.read32(a)) for a in reads]
        for t in tasks:
            await t
        want = {RECORDS: 0x5A5A0001, VERSION: cfg["version"], STATUS: 0}
        for a, t in zip(reads, rtasks):
            assert await t == want[a]
        last = {}
        for a, v in writes:
            last[a] = v
        for a, v in last.items():
            assert await env.read32(a) == v
        assert not env.starts

    @cocotb.test()
    async def regs_cycles_latch_across_carry(dut):
        """Read LO then HI while the counter carries into the high half d cycles after
        the read starts, for d = 0..24: the pair must be one value the counter had (a
        live HI would read one too high whenever the carry falls between the reads)."""
        cfg = h.tb_config()
        env = Env(dut, cfg)
        await env.start()
        for d in range(25):
            env.counter_base = (1 << 32) - d - env.cycle
            before, value, after = await env.read_cycles()
            assert before <= value <= after, \
                f"d={d}: CYCLES {value:#x} not in [{before:#x}, {after:#x}] (HI not latched?)"

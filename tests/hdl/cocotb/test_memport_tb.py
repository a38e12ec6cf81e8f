"""cocotb testbench of MemReader + MemWriter (hdl/memport.py) joined on one AXI4 port
(``MemPortPair`` in tests/hdl/test_memport_cocotb.py), against cocotbext-axi's AxiRam.

Binding: Amaranth exports the port ``m_axi`` as ``m_axi__araddr``, ...; cocotbext-axi
finds ``<prefix><sep><name>``, so ``AxiBus.from_prefix(dut, "m_axi", bus_separator="__")``.

Random pauses on AR, R, AW, W and B (AxiRam's pause generators), random idle cycles on
the command/data inputs and backpressure on the read output.  The model is a Python
dict of 16-bit words mirroring the RAM; every word read is compared (data, first, last)
and after the writes every word around each written range is compared (so partial-beat
strobes must leave the neighbours alone).  Configuration in ``$CONVC_TB_CONFIG``:
``data_width``, ``max_burst``, ``seed``, ``n_read``, ``n_write``, ``max_len``,
``long_len``, ``idle_prob``, ``bp_prob``, ``pause_prob``.
"""

from __future__ import annotations

import logging
import random

try:  # only inside the simulator
    import cocotb
    from cocotb.triggers import FallingEdge, RisingEdge
    from cocotbext.axi import AxiBus, AxiRam
except ImportError:  # pragma: no cover
    cocotb = None

import cocotb_harness as h

CMD = h.Fields([("addr", 32, False), ("length", 21, False)])
WORD = h.Fields([("data", 16, False), ("first", 1, False), ("last", 1, False)])
ZERO = ("rd_cmd__valid", "rd__ready", "wr_cmd__valid", "wr__valid")
PAGE_WORDS = 2048          # 4 KB


class Env:
    """DUT + AxiRam + the memory model (``model``: word address -> value)."""

    def __init__(self, dut, cfg):
        self.dut, self.cfg = dut, cfg
        self.W = cfg["data_width"] // 16
        self.rng = random.Random(cfg["seed"])
        self.model: dict[int, int] = {}
        bus = AxiBus.from_prefix(dut, "m_axi", bus_separator="__")
        self.ram = AxiRam(bus, dut.clk, dut.rst, size=1 << 32)
        for part in (self.ram.read_if, self.ram.write_if):   # one INFO line per burst
            part.log.setLevel(logging.WARNING)
        p = cfg["pause_prob"]
        for k, ch in enumerate((self.ram.read_if.ar_channel, self.ram.read_if.r_channel,
                                self.ram.write_if.aw_channel, self.ram.write_if.w_channel,
                                self.ram.write_if.b_channel)):
            ch.set_pause_generator(h.pauses(random.Random(cfg["seed"] * 10 + k), p))

    async def start(self):
        await h.start_clock_and_reset(self.dut, zero=ZERO)

    # ---- memory
    def seed(self, addr: int, length: int) -> None:
        """Random contents for words [addr, addr+length) not seeded yet (RAM and model)."""
        new = [a for a in range(addr, addr + length) if a not in self.model]
        for a in new:
            self.model[a] = self.rng.randrange(1 << 16)
        # write runs of consecutive words
        start = None
        for k, a in enumerate(new + [None]):
            if start is not None and (a is None or a != new[k - 1] + 1):
                run = new[start:k]
                self.ram.write(2 * run[0], b"".join(self.model[x].to_bytes(2, "little") for x in run))
                start = None
            if a is not None and start is None:
                start = k

    def ram_word(self, a: int) -> int:
        return int.from_bytes(self.ram.read(2 * a, 2), "little")

    # ---- commands
    def commands(self, n: int, lo: int, hi: int):
        """Random (addr, length) in word space [lo, hi): any alignment, many across a
        4 KB page or right at a beat edge, a few zero-length, every 10th long."""
        cfg, W, rng = self.cfg, self.W, self.rng
        out = []
        for k in range(n):
            length = rng.randint(1, cfg["max_len"])
            if k % 10 == 9:
                length = cfg["long_len"]
            elif rng.random() < 0.06:
                length = rng.choice([0, 1, W - 1, W, W + 1])
            r = rng.random()
            if r < 0.3:
                page = rng.randrange(lo // PAGE_WORDS + 1, hi // PAGE_WORDS - 1) * PAGE_WORDS
                addr = page - rng.randint(0, min(length, 3 * W) + 1)
            elif r < 0.4:
                addr = hi - length - rng.randint(0, 3)
            else:
                addr = rng.randrange(lo, hi - length - 4)
            out.append((addr, length))
        return out

    # ---- reader
    async def read(self, cmds, seed: int):
        """Send read commands, collect and check every word; nothing more comes out."""
        dut, cfg = self.dut, self.cfg
        want = [WORD.pack(data=self.model[a + k], first=int(k == 0), last=int(k == n - 1))
                for a, n in cmds for k in range(n)]
        drv = h.StreamDriver(dut, "rd_cmd", idle_prob=cfg["idle_prob"], rng=random.Random(seed))
        mon = h.StreamMonitor(dut, "rd", backpressure_prob=cfg["bp_prob"],
                              rng=random.Random(seed + 1))
        task = cocotb.start_soon(drv.send([CMD.pack(addr=a, length=n) for a, n in cmds]))
        got = await mon.collect(len(want), timeout_cycles=2000 + 30 * len(want))
        await task
        await mon.expect_idle(30)
        starts = [sum(n for _, n in cmds[:j]) for j in range(len(cmds))]

        def describe(k):
            j = max(i for i, s in enumerate(starts) if s <= k and cmds[i][1])
            a, n = cmds[j]
            return f"command {j} ({a:#x}, {n}) word {k - starts[j]}: {WORD.unpack(want[k])}"
        h.check_words(got, want, describe=describe, what="read word")
        assert int(dut.rd_idle.value) == 1, "reader not idle after its last word"
        assert int(dut.rd_error.value) == 0
        return len(want)

    # ---- writer
    async def write(self, cmds, seed: int):
        """Send write commands and their words; wait for wr_idle; update the model."""
        dut, cfg = self.dut, self.cfg
        rng = random.Random(seed)
        words = [rng.randrange(1 << 16) for _ in range(sum(n for _, n in cmds))]
        cdrv = h.StreamDriver(dut, "wr_cmd", idle_prob=cfg["idle_prob"], rng=random.Random(seed + 1))
        ddrv = h.StreamDriver(dut, "wr", idle_prob=cfg["idle_prob"], rng=random.Random(seed + 2))
        t1 = cocotb.start_soon(cdrv.send([CMD.pack(addr=a, length=n) for a, n in cmds]))
        t2 = cocotb.start_soon(ddrv.send(words))
        await t1
        await t2
        await self.wait_idle("wr_idle", 2000 + 20 * len(words))
        pos = 0
        for a, n in cmds:
            for k in range(n):
                self.model[a + k] = words[pos + k]
            pos += n
        assert int(dut.wr_error.value) == 0
        return len(words)

    async def wait_idle(self, name: str, timeout: int):
        sig = getattr(self.dut, name)
        for _ in range(timeout):
            await FallingEdge(self.dut.clk)
            if int(sig.value):
                await RisingEdge(self.dut.clk)
                return
        raise TimeoutError(f"{name} still low after {timeout} cycles")

    def check_memory(self, cmds, what: str):
        """Every model word in and around ``cmds``' ranges equals the RAM's."""
        W = self.W
        addrs = sorted({x for a, n in cmds for x in range(a - 2 * W, a + n + 2 * W)
                        if x in self.model})
        bad = [a for a in addrs if self.ram_word(a) != self.model[a]]
        if bad:
            raise AssertionError(f"{what}: {len(bad)} of {len(addrs)} words differ, first: " +
                                 ", ".join(f"{a:#x} ram {self.ram_word(a):#06x} model "
                                           f"{self.model[a]:#06x}" for a in bad[:8]))
        return len(addrs)


if cocotb is not None:

    @cocotb.test()
    async def memport_reads(dut):
        """Random reads of random lengths and alignments."""
        env = Env(dut, h.tb_config())
        await env.start()
        cmds = env.commands(env.cfg["n_read"], 1 << 30, 1 << 31)
        for a, n in cmds:
            env.seed(a, n)
        n = await env.read(cmds, seed=11)
        dut._log.info(f"{len(cmds)} read commands, {n} words checked")

    @cocotb.test()
    async def memport_writes_then_readback(dut):
        """Random writes (overlapping ranges: later ones win) while unrelated reads run;
        then the RAM is compared word for word around every range and the written
        ranges are read back through the reader."""
        env = Env(dut, h.tb_config())
        await env.start()
        lo, hi = 1 << 20, (1 << 20) + 8 * PAGE_WORDS   # a small window: ranges overlap
        wcmds = env.commands(env.cfg["n_write"], lo, hi)
        for a, n in wcmds:
            env.seed(a - 2 * env.W, n + 4 * env.W)
        rcmds = env.commands(env.cfg["n_write"] // 2, 1 << 30, 1 << 31)
        for a, n in rcmds:
            env.seed(a, n)
        wtask = cocotb.start_soon(env.write(wcmds, seed=21))
        nr = await env.read(rcmds, seed=22)        # concurrently: other addresses
        nw = await wtask
        checked = env.check_memory(wcmds, "after the writes")
        nb = await env.read([c for c in wcmds if c[1]][:12], seed=23)
        dut._log.info(f"{nw} words written ({checked} checked in RAM), {nr} read meanwhile, "
                      f"{nb} read back")

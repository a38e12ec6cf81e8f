r"""cocotb testbench of the whole accelerator (:mod:`convc.hdl.accel`): a compiled
network run on the exported Verilog, image after image, as a host would run it.

This module runs *inside the simulator* (started by :mod:`convc.sim.verify`, which
builds the Verilog with ``cocotb_tools.runner`` and names this module as the test
module ``convc.sim.accel_tb``).  Importing it elsewhere is harmless: without cocotb
it defines no test.

Configuration: a JSON object in ``$CONVC_ACCEL_TB`` (:data:`CONFIG_ENV`)

``compiled``     the ``convc compile`` output folder (``program.json``,
                 ``weights.bin``, ``schedule.bin``)
``codes``        a ``.npy`` of the quantized inputs, ``(N, *program.input.shape)``
``results``      the ``.npz`` this testbench writes (below)
``progress``     optional: a text file; one JSON line is appended per finished image,
                 and one every 15 s of wall-clock time while an image runs
``max_cycles``   the cycle budget of one image (start to done)
``poll_cycles``  STATUS is read over AXI-Lite every this many cycles (default 256),
                 or at once when ``irq`` rises
``period_ns``    clock period (default 10)
``poison``       optional 16-bit word written over every layer's output region
                 before each image (default 0xDEAD; ``null``: leave the RAM alone),
                 so a word the hardware never writes cannot pass with the previous
                 image's (or the golden model's zero) value

What it does (the contract in :mod:`convc.hdl.accel`): a clock on ``clk``, ``rst``
high for a few cycles; cocotbext-axi's ``AxiRam`` on ``m_axi`` and ``AxiLiteMaster``
on ``s_axil`` (bus separator ``"__"``); ``weights.bin`` at byte 0, ``schedule.bin`` at
word :func:`~convc.compiler.program.schedule_addr`; then per image: the input codes (int16
little-endian) at ``program.input.addr``, SCHED_ADDR, IMAGE_ADDR = 0, CTRL = 1, wait
for STATUS.done (fail on STATUS.error or past the budget), read CYCLES_LO/HI and
RECORDS, and read back every layer's output region (``program.layers``).  Memory is
loaded and read back directly in the ``AxiRam``'s buffer (no bus traffic, no
simulated cycles); only the registers go over AXI-Lite.

Results (``.npz``, no pickles; rewritten atomically after every image, so a failure
keeps the images done so far): ``layer<i>`` ``(n, words)`` uint16, the raw words of
``program.layers[i]`` for the ``n`` images run; ``cycles``, ``records``, ``status``
``(n,)`` int64; ``info``: the UTF-8 bytes of a JSON object (``images_done``,
``images``, ``version``, ``error``: ``null`` or the message the test failed with).
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np

from convc.compiler import isa
from convc.compiler.program import load_program, schedule_addr
from convc.hdl.regs import CTRL, CYCLES_HI, CYCLES_LO, IMAGE_ADDR, RECORDS, SCHED_ADDR, STATUS, VERSION

from .rtlrun import DEFAULT_POISON, ST_DONE, ST_ERROR, record_hint, status_text
from .tb_results import CONFIG_ENV, save_results

try:  # only inside the simulator
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, First, RisingEdge, Timer
    from cocotb.utils import get_sim_time
except ImportError:  # pragma: no cover - imported outside a simulator
    cocotb = None

__all__ = ["AccelBench", "TestbenchError"]

RESET_CYCLES = 5
REPORT_SECONDS = 15.0      # a "still running" progress line this often (wall clock)

HANDSHAKE_OUTPUTS = ("irq", "s_axil__awready", "s_axil__wready", "s_axil__bvalid", "s_axil__arready",
                     "s_axil__rvalid", "m_axi__awvalid", "m_axi__wvalid", "m_axi__bready",
                     "m_axi__arvalid", "m_axi__rready")


# ----------------------------------------------------------------------------
# the testbench
# ----------------------------------------------------------------------------
class TestbenchError(AssertionError):
    """A run that cannot go on (missing port, timeout, STATUS.error)."""


class AccelBench:
    """The accelerator, its memory and its host, for one compiled program."""

    def __init__(self, dut, cfg: dict):
        self.dut, self.cfg = dut, cfg
        self.folder = Path(cfg["compiled"])
        self.program = load_program(self.folder)
        self.isa = isa
        self.sched_addr = schedule_addr(self.program.memory_words)
        self.codes = np.load(cfg["codes"], allow_pickle=False)
        self.period = int(cfg.get("period_ns", 10))
        self.max_cycles = int(cfg["max_cycles"])
        self.poll = max(1, int(cfg.get("poll_cycles", 256)))
        poison = cfg.get("poison", DEFAULT_POISON)
        self.poison = None if poison is None else int(poison) & 0xFFFF
        self.results = Path(cfg["results"])
        self.progress = Path(cfg["progress"]) if cfg.get("progress") else None
        n_layers = len(self.program.layers)
        self.out_layers: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
        self.cycles: list[int] = []
        self.records: list[int] = []
        self.status: list[int] = []
        self.version: int | None = None
        self.top = getattr(dut, "_name", "the design")

    # -- set-up -----------------------------------------------------------------
    def _port(self, name: str):
        try:
            return getattr(self.dut, name)
        except AttributeError:
            hint = (" (Amaranth adds clk/rst only to a design with clocked logic: an empty or "
                    "purely combinational Accelerator has none)" if name in ("clk", "rst") else "")
            raise TestbenchError(f"{self.top} has no port {name!r}{hint}") from None

    async def start(self) -> None:
        from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam  # optional tool: convc.optional

        clk, rst = self._port("clk"), self._port("rst")
        self.irq = self._port("irq")
        try:
            self.ram = AxiRam(AxiBus.from_prefix(self.dut, "m_axi", bus_separator="__"), clk, rst,
                              size=1 << 32)
            self.host = AxiLiteMaster(AxiLiteBus.from_prefix(self.dut, "s_axil", bus_separator="__"),
                                      clk, rst)
        except AttributeError as exc:
            raise TestbenchError(f"{self.top}: cannot bind the AXI ports m_axi / s_axil "
                                 f"({exc})") from None
        for part in (self.ram.read_if, self.ram.write_if, self.host.read_if, self.host.write_if):
            part.log.setLevel(logging.WARNING)         # one INFO line per burst otherwise
        Clock(clk, self.period, unit="ns").start()
        rst.value = 1
        for _ in range(RESET_CYCLES):
            await RisingEdge(clk)
        await FallingEdge(clk)
        self.check_resolved("in reset")
        await RisingEdge(clk)
        rst.value = 0
        await RisingEdge(clk)
        self.clk = clk

        # constant image at word 0, schedule after the program's memory
        self.ram.write(0, (self.folder / "weights.bin").read_bytes())
        self.ram.write(2 * self.sched_addr, (self.folder / "schedule.bin").read_bytes())
        self.version = await self.read32(VERSION)

    def check_resolved(self, when: str) -> None:
        """The handshake outputs cocotbext-axi samples must be 0 or 1: an X or Z there
        crashes its monitors with an unhelpful "Cannot convert Logic('X') to bool"."""
        bad = []
        for name in HANDSHAKE_OUTPUTS:
            try:
                v = str(getattr(self.dut, name).value)
            except AttributeError:
                continue
            if any(ch not in "01" for ch in v):
                bad.append(f"{name}={v}")
        if bad:
            raise TestbenchError(f"{self.top}: {', '.join(bad)} {when} (not 0/1): an output left "
                                 f"undriven or without a reset value; the AXI models cannot sample it")

    # -- AXI-Lite -----------------------------------------------------------------
    async def write32(self, addr: int, value: int) -> None:
        resp = await self.host.write(addr, int(value & 0xFFFFFFFF).to_bytes(4, "little"))
        if int(resp.resp) != 0:
            raise TestbenchError(f"AXI-Lite write of {addr:#x} answered resp={int(resp.resp)}")

    async def read32(self, addr: int) -> int:
        resp = await self.host.read(addr, 4)
        if int(resp.resp) != 0:
            raise TestbenchError(f"AXI-Lite read of {addr:#x} answered resp={int(resp.resp)}")
        return int.from_bytes(resp.data, "little")

    async def read_cycles(self) -> int:
        lo = await self.read32(CYCLES_LO)
        hi = await self.read32(CYCLES_HI)
        return lo | (hi << 32)

    # -- memory (directly in the AxiRam's buffer) -----------------------------------
    def write_words(self, addr: int, words) -> None:
        data = np.asarray(words, dtype=np.int64).astype("<u2").tobytes()  # two's complement
        self.ram.write(2 * int(addr), data)

    def read_words(self, addr: int, n: int) -> np.ndarray:
        return np.frombuffer(self.ram.read(2 * int(addr), 2 * int(n)), dtype="<u2").copy()

    def now_cycles(self) -> int:
        return int(get_sim_time("ns") // self.period)

    # -- one image --------------------------------------------------------------------
    def _record_hint(self, records: int) -> str:
        return record_hint(self.program, records)

    async def run_image(self, k: int) -> None:
        prog = self.program
        if self.poison is not None:
            for region in prog.layers:
                self.write_words(region.addr, np.full(region.words, self.poison, dtype=np.int64))
        self.write_words(prog.input.addr, np.asarray(self.codes[k]).reshape(-1))
        await self.write32(SCHED_ADDR, self.sched_addr)
        await self.write32(IMAGE_ADDR, 0)
        t0 = self.now_cycles()
        await self.write32(CTRL, 1)
        wall = time.perf_counter()
        next_report = wall + REPORT_SECONDS
        while True:
            await First(RisingEdge(self.irq), Timer(self.poll * self.period, unit="ns"))
            status = await self.read32(STATUS)
            elapsed = self.now_cycles() - t0
            if self.progress is not None and time.perf_counter() > next_report:
                next_report = time.perf_counter() + REPORT_SECONDS
                records = await self.read32(RECORDS)
                self._progress({"image": k, "images": len(self.codes), "running": True,
                                "sim_cycles": elapsed, "records": records,
                                "seconds": round(time.perf_counter() - wall, 3)})
            if status & ST_ERROR:
                records = await self.read32(RECORDS)
                raise TestbenchError(
                    f"image {k}: STATUS.error set after about {elapsed} cycles, {status_text(status)}"
                    f"{self._record_hint(records)} (an unknown op, OP_LCN without an LCN engine, an "
                    f"engine's band error or an AXI error response)")
            if status & ST_DONE:
                break
            if elapsed > self.max_cycles:
                records = await self.read32(RECORDS)
                cycles = await self.read_cycles()
                raise TestbenchError(
                    f"image {k}: timeout: STATUS.done not set {elapsed} cycles after start "
                    f"(budget {self.max_cycles} cycles); {status_text(status)}, CYCLES={cycles}, "
                    f"RECORDS={records}{self._record_hint(records)}")
        cycles = await self.read_cycles()
        records = await self.read32(RECORDS)
        for i, region in enumerate(prog.layers):
            self.out_layers[i].append(self.read_words(region.addr, region.words))
        self.cycles.append(cycles)
        self.records.append(records)
        self.status.append(status)
        self.save(None)
        self._progress({"image": k, "images": len(self.codes), "cycles": cycles, "records": records,
                        "sim_cycles": self.now_cycles() - t0,
                        "seconds": round(time.perf_counter() - wall, 3)})

    def _progress(self, line: dict) -> None:
        if self.progress is not None:
            with open(self.progress, "a") as f:
                f.write(json.dumps(line) + "\n")

    def save(self, error: str | None) -> None:
        info = {"images": int(len(self.codes)), "images_done": len(self.cycles),
                "version": self.version, "error": error, "top": self.top,
                "sched_addr": self.sched_addr}
        save_results(self.results, self.out_layers, self.cycles, self.records, self.status, info)

    async def run(self) -> None:
        try:
            await self.start()
            for k in range(len(self.codes)):
                await self.run_image(k)
        except TestbenchError as exc:
            self.save(str(exc))
            raise
        except Exception as exc:  # keep the images done so far and say what went wrong
            self.save(f"{type(exc).__name__}: {exc}")
            raise


if cocotb is not None:
    # cocotbext-axi 0.1.x uses APIs cocotb 2 deprecates: one warning per channel, noise
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.axi")

    @cocotb.test()
    async def run_network(dut):
        """Every image of the configuration through the accelerator; results to a file."""
        cfg = json.loads(os.environ[CONFIG_ENV])
        bench = AccelBench(dut, cfg)
        await bench.run()
        dut._log.info(f"{len(bench.cycles)} images, cycles {bench.cycles}")

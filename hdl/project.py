r"""The ML605 board top and its ISE project (written without ISE).

:class:`ML605Top` is the top-level design for :class:`~convc.boards.ml605.ML605Platform`:

* the accelerator, as an instance of the Verilog module ``convc_accel`` (the text
  :func:`accelerator_verilog` writes from :class:`~convc.hdl.accel.Accelerator`; it is
  added to the build as ``convc_accel.v``, so the design is converted once and the ISE
  project reads the same file as ``OUT/hdl/convc_accel.v``), on the ``sync`` domain:
  the 200 MHz LVDS clock (J9/H9, IBUFDS then BUFGCE) and CPU_RESET (H10) through the
  platform's reset synchronizer;
* two black boxes the user generates with Coregen/XPS, declared in ``convc_blackboxes.v``
  with ``(* box_type = "user_black_box" *)``:

  - :data:`MEM_BOX` (``convc_ddr3``): a DDR3 memory controller (a MIG) with an AXI4
    slave port ``s_axi_*`` of the accelerator's data and ID widths, driven by the
    accelerator's ``m_axi``, and ``calib_done``;
  - :data:`HOST_BOX` (``convc_host``): an AXI4-Lite master ``m_axi_*`` (a PCIe or
    MicroBlaze bridge) driving the accelerator's ``s_axil``; it receives ``irq``;

  both take ``aclk`` (the accelerator clock) and ``aresetn``;
* the GPIO LEDs: done (``irq``), busy and error (when the accelerator has such ports),
  the memory calibration and a heartbeat (see :meth:`ML605Top.led_map`).

The ports of ``convc_accel`` are read from its Verilog, not assumed: ``clk``/``rst`` only
if the module has them, every ``m_axi__*``/``s_axil__*`` port mapped to the black boxes,
other 1-bit outputs to LEDs, other inputs tied to 0 (listed in the README).

:func:`write_ise_project` runs ``ML605Platform().build(top, name="convc_ml605",
do_build=False).extract(folder)`` and adds ``README.txt``.  ISE is not run: nothing here
claims a netlist, a bitstream or timing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import ClockSignal, Elaboratable, Instance, Module, ResetSignal, Signal
from amaranth.lib import io

__all__ = ["ML605Top", "AccelPort", "accelerator_verilog", "parse_ports", "blackbox_stub",
           "write_ise_project", "ise_readme", "ACCEL_NAME", "MEM_BOX", "HOST_BOX", "PROJECT_NAME",
           "GENERATED_FILES"]

ACCEL_NAME = "convc_accel"
MEM_BOX = "convc_ddr3"
HOST_BOX = "convc_host"
PROJECT_NAME = "convc_ml605"
STUB_FILE = "convc_blackboxes.v"
ACCEL_FILE = f"{ACCEL_NAME}.v"
HEARTBEAT_BIT = 26          # 2**27 cycles a period at 200 MHz: about 0.67 s
N_LEDS = 8

# every file write_ise_project writes (for removing a stale project)
GENERATED_FILES = (ACCEL_FILE, STUB_FILE, "README.txt", f"{PROJECT_NAME}.v", f"{PROJECT_NAME}.debug.v",
                   f"{PROJECT_NAME}.prj", f"{PROJECT_NAME}.xst", f"{PROJECT_NAME}.ucf",
                   f"build_{PROJECT_NAME}.sh", f"build_{PROJECT_NAME}.bat", f"build_{PROJECT_NAME}.json")


@dataclass(frozen=True)
class AccelPort:
    name: str
    dir: str        # "input" or "output" (of convc_accel)
    width: int


_PORT_RE = re.compile(r"^\s*(input|output|inout)\s+(?:wire\s+)?(?:signed\s+)?(?:\[(\d+):(\d+)\]\s*)?"
                      r"(\\\S+|[A-Za-z_][A-Za-z0-9_$]*)\s*;")


def parse_ports(verilog: str, module: str = ACCEL_NAME) -> list[AccelPort]:
    """The ports of ``module`` in Yosys-written Verilog (``input [7:0] x;`` declarations)."""
    head = re.search(rf"^module\s+{re.escape(module)}\s*\(", verilog, re.M)
    if head is None:
        raise ValueError(f"no module {module} in the Verilog text")
    end = verilog.find("\nendmodule", head.end())
    ports = []
    for line in verilog[head.end():end if end >= 0 else None].splitlines():
        mt = _PORT_RE.match(line)
        if mt:
            kind, msb, lsb, name = mt.groups()
            if kind == "inout":
                raise ValueError(f"{module}: inout port {name} is not supported on the board top")
            width = abs(int(msb) - int(lsb)) + 1 if msb is not None else 1
            ports.append(AccelPort(name, kind, width))
    if not ports:
        raise ValueError(f"module {module} has no ports")
    return ports


def accelerator_verilog(hw, *, data_width: int | None = None) -> str:
    """Verilog of ``Accelerator(hw)`` as module ``convc_accel`` (:mod:`convc.hdl.export`)."""
    from .accel import DEFAULT_DATA_WIDTH, Accelerator
    from .export import to_verilog

    return to_verilog(Accelerator(hw, data_width=data_width or DEFAULT_DATA_WIDTH), ACCEL_NAME)


def _box_port(port: AccelPort) -> tuple[str, str, str] | None:
    """(black box, its port name, its direction) for an AXI port of convc_accel."""
    flip = {"input": "output", "output": "input"}[port.dir]
    if port.name.startswith("m_axi__"):
        return MEM_BOX, "s_axi_" + port.name[len("m_axi__"):], flip
    if port.name.startswith("s_axil__"):
        return HOST_BOX, "m_axi_" + port.name[len("s_axil__"):], flip
    return None


_STATUS_ORDER = ("irq", "done", "busy", "error")


class ML605Top(Elaboratable):
    """The ML605 board top around the accelerator (see the module docstring).

    Parameters
    ----------
    hw : HardwareConfig
    data_width : int
        AXI memory data width of the accelerator (default 256, the ML605 MIG's).
    accel_verilog : str, optional
        The accelerator's Verilog (module ``convc_accel``) if already converted;
        default: :func:`accelerator_verilog` (converted once, on first use).
    """

    def __init__(self, hw, *, data_width: int | None = None, accel_verilog: str | None = None):
        from .accel import DEFAULT_DATA_WIDTH

        self.hw = hw
        self.data_width = data_width or DEFAULT_DATA_WIDTH
        self._verilog = accel_verilog
        self._ports = None

    @property
    def accel_verilog(self) -> str:
        if self._verilog is None:
            self._verilog = accelerator_verilog(self.hw, data_width=self.data_width)
        return self._verilog

    @property
    def ports(self) -> list[AccelPort]:
        if self._ports is None:
            self._ports = parse_ports(self.accel_verilog)
        return self._ports

    def box_ports(self) -> dict[str, list[tuple[str, str, int]]]:
        """Black box -> [(port, direction, width)], clocks and status first."""
        boxes = {MEM_BOX: [("aclk", "input", 1), ("aresetn", "input", 1)],
                 HOST_BOX: [("aclk", "input", 1), ("aresetn", "input", 1)]}
        for p in self.ports:
            bp = _box_port(p)
            if bp:
                boxes[bp[0]].append((bp[1], bp[2], p.width))
        boxes[MEM_BOX].append(("calib_done", "output", 1))
        boxes[HOST_BOX].append(("irq", "input", 1))
        return boxes

    def status_ports(self) -> list[str]:
        """1-bit outputs of convc_accel besides AXI (irq first, then done, busy, error)."""
        outs = [p.name for p in self.ports if p.dir == "output" and p.width == 1 and _box_port(p) is None
                and not p.name.startswith("trace__")]       # the testbenches' record trace
        return sorted(outs, key=lambda n: (_STATUS_ORDER.index(n) if n in _STATUS_ORDER else 99, n))

    def tied_inputs(self) -> list[str]:
        """Inputs of convc_accel the top ties to 0 (neither clock, reset nor AXI)."""
        return [p.name for p in self.ports
                if p.dir == "input" and p.name not in ("clk", "rst") and _box_port(p) is None]

    def unused_outputs(self) -> list[str]:
        shown = set(self.status_ports()[:3])
        return [p.name for p in self.ports
                if p.dir == "output" and _box_port(p) is None and p.name not in shown]

    def led_map(self) -> list[str]:
        """What each of the eight GPIO LEDs shows."""
        status = self.status_ports()[:3]
        names = {"irq": "done (accelerator irq: STATUS.done)"}
        leds = [f"accelerator {names.get(s, s)}" if s != "irq" else names[s] for s in status]
        leds += ["off"] * (3 - len(leds))
        leds += [f"memory calibrated ({MEM_BOX}.calib_done)", "reset active (CPU_RESET or start-up)",
                 "off", "off", f"heartbeat (clock running: bit {HEARTBEAT_BIT} of a counter, about "
                 f"{200e6 / 2 ** (HEARTBEAT_BIT + 1):.1f} Hz at 200 MHz)"]
        return leds

    def files(self) -> dict[str, str]:
        """Extra files the ISE project needs: the accelerator and the black-box stubs."""
        return {STUB_FILE: blackbox_stub(self), ACCEL_FILE: self.accel_verilog}

    def elaborate(self, platform):
        if platform is None or not hasattr(platform, "request"):
            raise TypeError("ML605Top needs the ML605 platform (ML605Platform().build(top, ...))")
        for fname, text in self.files().items():
            if fname not in platform.extra_files:
                platform.add_file(fname, text)
        m = Module()
        clk, rst = ClockSignal("sync"), ResetSignal("sync")
        aresetn = Signal()
        m.d.comb += aresetn.eq(~rst)

        ports = self.ports
        wires = {p.name: Signal(p.width, name=f"accel_{p.name}") for p in ports}
        accel_args = []
        for p in ports:
            kind = "i" if p.dir == "input" else "o"
            if p.name == "clk" and p.dir == "input":
                accel_args.append(("i", "clk", clk))
            elif p.name == "rst" and p.dir == "input":
                accel_args.append(("i", "rst", rst))
            else:
                accel_args.append((kind, p.name, wires[p.name]))
        m.submodules.accel = Instance(ACCEL_NAME, *accel_args)

        calib_done = Signal()
        irq = wires["irq"] if "irq" in wires else Signal()
        box_args = {MEM_BOX: [("i", "aclk", clk), ("i", "aresetn", aresetn), ("o", "calib_done", calib_done)],
                    HOST_BOX: [("i", "aclk", clk), ("i", "aresetn", aresetn), ("i", "irq", irq)]}
        for p in ports:
            bp = _box_port(p)
            if bp:
                box, name, bdir = bp
                box_args[box].append(("i" if bdir == "input" else "o", name, wires[p.name]))
        m.submodules.ddr3 = Instance(MEM_BOX, *box_args[MEM_BOX])
        m.submodules.host = Instance(HOST_BOX, *box_args[HOST_BOX])
        for name in self.tied_inputs():
            m.d.comb += wires[name].eq(0)

        heartbeat = Signal(HEARTBEAT_BIT + 1)
        m.d.sync += heartbeat.eq(heartbeat + 1)
        status = [wires[s] for s in self.status_ports()[:3]]
        status += [0] * (3 - len(status))
        values = status + [calib_done, rst, 0, 0, heartbeat[-1]]
        for i, v in enumerate(values[:N_LEDS]):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            m.d.comb += led.o.eq(v)
        return m


def _decl(direction: str, width: int, name: str) -> str:
    rng = f"[{width - 1}:0] " if width > 1 else ""
    return f"    {direction} wire {rng}{name}"


def blackbox_stub(top: ML605Top) -> str:
    """Verilog declarations of the two black boxes (empty modules XST keeps as boxes)."""
    what = {MEM_BOX: "DDR3 memory controller (MIG) with an AXI4 slave port; generate it with Coregen",
            HOST_BOX: "host bridge with an AXI4-Lite master port (PCIe or MicroBlaze); generate it"}
    out = ["// Black boxes of the convc ML605 project, written by convc compile.",
           "// XST keeps these modules empty (box_type user_black_box); ngdbuild then needs",
           f"// {MEM_BOX}.ngc and {HOST_BOX}.ngc (searched in ipcore_dir/), or replace a declaration",
           "// here with the real module's sources in convc_ml605.prj. See README.txt.", ""]
    for box, ports in top.box_ports().items():
        out += [f"// {what[box]}", '(* box_type = "user_black_box" *)', f"module {box} ("]
        out.append(",\n".join(_decl(d, w, n) for n, d, w in ports))
        out += [");", "endmodule", ""]
    return "\n".join(out)


def _port_lines(ports, indent="      ") -> list[str]:
    lines = []
    for name, direction, width in ports:
        rng = f"[{width - 1}:0]" if width > 1 else ""
        lines.append(f"{indent}{direction:<7}{rng:<9}{name}")
    return lines


def ise_readme(top: ML605Top, *, model: str | None = None) -> str:
    hw = top.hw
    boxes = top.box_ports()
    id_width = next(w for n, _, w in boxes[MEM_BOX] if n == "s_axi_awid") if any(
        n == "s_axi_awid" for n, _, _ in boxes[MEM_BOX]) else None
    has_clk = any(p.name == "clk" for p in top.ports)
    L = [f"convc ISE project for the ML605 (XC6VLX240T-1FFG1156, Virtex-6)",
         "=" * 66, "",
         "Written by `convc compile`" + (f" from {model}" if model else "") + ". ISE was NOT run here:",
         "nothing in this folder has been synthesized by XST, placed or routed; no bitstream",
         "was built and the timing is NOT known (open tools give no Virtex-6 timing; the 200 MHz",
         "clock is an assumption). `convc compile --synth` gives Yosys resource counts only.",
         "",
         "Files",
         "-----",
         f"  {PROJECT_NAME}.v        board top, module {PROJECT_NAME}: clock, reset, LEDs, the accelerator",
         f"                        (instance of {ACCEL_NAME}) and the two black boxes",
         f"  {ACCEL_FILE}        the accelerator, module {ACCEL_NAME} (the same file as ../hdl/{ACCEL_FILE})",
         f"  {STUB_FILE}   empty declarations of {MEM_BOX} and {HOST_BOX}",
         f"                        with (* box_type = \"user_black_box\" *)",
         f"  {PROJECT_NAME}.prj      XST source list: {STUB_FILE}, {ACCEL_FILE}, {PROJECT_NAME}.v",
         f"  {PROJECT_NAME}.xst      XST script: part xc6vlx240tff1156-1, top {PROJECT_NAME}",
         f"  {PROJECT_NAME}.ucf      pins and clock: 200 MHz LVDS clock J9/H9 (LVDS_25, PERIOD 5 ns),",
         "                        CPU_RESET H10, the eight GPIO LEDs",
         f"  build_{PROJECT_NAME}.sh / .bat   xst, ngdbuild (-sd ipcore_dir), map, par, bitgen",
         f"                        (no trce step: after par run  trce -v 20 {PROJECT_NAME}_par.ncd {PROJECT_NAME}.pcf)",
         f"  {PROJECT_NAME}.debug.v  empty (written by Amaranth)",
         "",
         "Accelerator configuration: ../hwconfig.json "
         f"({hw.in_lanes} x {hw.out_lanes} lanes of {hw.kmax}x{hw.kmax} kernel units, {hw.bits} bits).",
         "Clock and reset: the 200 MHz board clock (IBUFDS, then a BUFGCE released by the",
         "STARTUP_VIRTEX6 end-of-startup) clocks the accelerator and is `aclk` of both black boxes;",
         "CPU_RESET (active high) through a synchronizer is the accelerator's `rst`; `aresetn` = not rst."
         + ("" if has_clk else "\n(This convc_accel has no clock port: it is not the accelerator, e.g. a stand-in for tests.)"),
         "",
         "LEDs (GPIO LED 0..7, pins AC22 AC24 AE22 AE23 AB23 AG23 AE24 AD24)",
         "-------------------------------------------------------------------"]
    for i, what in enumerate(top.led_map()):
        L.append(f"  LED {i}: {what}")
    if top.tied_inputs():
        L.append(f"  accelerator inputs tied to 0: {', '.join(top.tied_inputs())}")
    if top.unused_outputs():
        L.append(f"  accelerator outputs not shown: {', '.join(top.unused_outputs())}")
    L += ["",
          "The two cores you must generate",
          "-------------------------------",
          "Both black boxes' AXI ports are synchronous to aclk (rising edge) and reset by aresetn",
          "(active low). Port names follow Xilinx's AXI naming; directions are the box's own.",
          "",
          f"1. {MEM_BOX}: the DDR3 memory controller. Generate a MIG (Coregen: Memory Interface",
          "   Generator, Virtex-6 DDR3 SDRAM, the ML605's SO-DIMM) with the AXI4 interface:",
          f"   AXI4 slave, data width {top.data_width}, ID width {id_width}, address width 32.",
          "   `calib_done` is the MIG's calibration-complete output (phy_init_done).",
          "   Ports:"]
    L += _port_lines(boxes[MEM_BOX])
    L += ["",
          f"2. {HOST_BOX}: the host bridge, an AXI4-Lite master (32-bit address and data) that",
          "   writes the accelerator's registers: e.g. the AXI bridge for PCI Express on the ML605's",
          "   PCIe x8 edge connector, or a MicroBlaze system (XPS) with an AXI4-Lite master port.",
          "   `irq` is the accelerator's interrupt (high while STATUS.done is set).",
          "   Ports:"]
    L += _port_lines(boxes[HOST_BOX])
    L += ["",
          "Either (a) write Verilog modules with exactly these names and ports around the generated",
          f"cores, add their sources to {PROJECT_NAME}.prj and delete the matching declaration from",
          f"{STUB_FILE}; or (b) make netlists {MEM_BOX}.ngc / {HOST_BOX}.ngc with exactly these",
          "ports and put them in ipcore_dir/ (ngdbuild is run with -sd ipcore_dir).",
          "",
          "Not in this project (needed before it can work on the board)",
          "-------------------------------------------------------------",
          "* The DDR3 pins and the MIG's constraints (its UCF), and the host link's pins (PCIe lanes",
          f"  and reference clock, or a UART) and constraints: {PROJECT_NAME} has only the clock, reset",
          f"  and LED pins. Bring the cores' pins out through the top (edit {PROJECT_NAME}.v and",
          f"  {PROJECT_NAME}.ucf), or instantiate {ACCEL_NAME} in a top of your own (for instance the",
          "  MIG example design).",
          "* The MIG's clocks: J9/H9 are already buffered by this top, so the MIG must take its system",
          "  and IODELAY reference clock from aclk (or the top must be changed). If the MIG's AXI port",
          f"  runs on its own UI clock, {MEM_BOX} needs an AXI clock converter inside.",
          "* Timing closure: unknown until ISE has placed and routed the design.",
          "",
          f"`convc compile` rewrites the files listed above (and removes them with --no-hdl); keep",
          "your own files (cores, extra constraints) here under other names.", ""]
    return "\n".join(L)


def write_ise_project(hw, folder, *, accel_verilog: str | None = None, data_width: int | None = None,
                      model: str | None = None) -> list[Path]:
    """Write the ML605 ISE project for ``hw`` into ``folder`` (created) and return its files.

    ``ML605Platform().build(ML605Top(hw), name="convc_ml605", do_build=False)`` then
    ``.extract(folder)``, plus ``README.txt``.  ISE is not needed and not run.
    """
    from convc.boards.ml605 import ML605Platform

    folder = Path(folder)
    top = ML605Top(hw, data_width=data_width, accel_verilog=accel_verilog)
    plan = ML605Platform().build(top, name=PROJECT_NAME, do_build=False, ngdbuild_opts="-sd ipcore_dir")
    folder.mkdir(parents=True, exist_ok=True)
    plan.extract(folder)
    (folder / "README.txt").write_text(ise_readme(top, model=model))
    return sorted(p for p in folder.rglob("*") if p.is_file())

r"""The board top: the accelerator, its two black boxes and the LEDs on one board.

:class:`BoardTop` is the top-level design around the accelerator for one board's Amaranth
platform (:mod:`convc.boards.platforms`), described by a
:class:`~convc.hdl.project.BoardProject`:

* the accelerator, as an instance of the Verilog module ``convc_accel`` (the text
  :func:`accelerator_verilog` writes from :class:`~convc.hdl.accel.Accelerator`; it is
  added to the build as ``convc_accel.v``, so the design is converted once and the
  project reads the same file as ``OUT/hdl/convc_accel.v``), on the ``sync`` domain:
  the board's default clock (ML605 and KC705: the 200 MHz LVDS system clock, IBUFDS;
  Arty: the 100 MHz oscillator) through a global buffer released at the end of start-up,
  and the board's reset button through the platform's reset synchronizer;
* two black boxes the user generates (Coregen/XPS for ISE, the IP catalog for Vivado):

  - :data:`~convc.hdl.project.MEM_BOX` (``convc_ddr3``): a DDR3 memory controller (a MIG)
    with an AXI4 slave port ``s_axi_*`` of the accelerator's data and ID widths, driven
    by the accelerator's ``m_axi``, and ``calib_done``;
  - :data:`~convc.hdl.project.HOST_BOX` (``convc_host``): an AXI4-Lite master ``m_axi_*``
    (a PCIe, JTAG or MicroBlaze bridge) driving the accelerator's ``s_axil``; it receives
    ``irq``;

  both take ``aclk`` (the accelerator clock) and ``aresetn``.  ISE reads them from
  ``convc_blackboxes.v`` (:func:`blackbox_stub`, ``(* box_type = "user_black_box" *)``);
  the Vivado script reads ``blackbox_convc_ddr3.v`` / ``blackbox_convc_host.v``
  (:func:`vivado_blackbox`, ``(* black_box *)``) only while ``ip/`` holds no core of
  that name;
* the board's LEDs: done (``irq``), busy and error (when the accelerator has such ports),
  the memory calibration, the reset and a heartbeat (see :meth:`BoardTop.led_map`).

The ports of ``convc_accel`` are read from its Verilog (:func:`parse_ports`), not
assumed: ``clk``/``rst`` only if the module has them, every ``m_axi__*``/``s_axil__*``
port mapped to the black boxes, other 1-bit outputs to LEDs, other inputs tied to 0
(listed in the README).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from amaranth.hdl import ClockSignal, Elaboratable, Instance, Module, ResetSignal, Signal
from amaranth.lib import io

from .accel import Accelerator
from .export import to_verilog
from .project import (ACCEL_FILE, ACCEL_NAME, HOST_BOX, IP_FOLDER, MEM_BOX, ML605_PROJECT, STATUS, STUB_FILE,
                      BoardProject, project_for)

__all__ = ["BoardTop", "ML605Top", "AccelPort", "accelerator_verilog", "parse_ports", "blackbox_stub",
           "vivado_blackbox"]

HEARTBEAT_BIT = 26          # 2**27 cycles a period at 200 MHz: about 0.67 s


@dataclass(frozen=True)
class AccelPort:
    """One port of ``convc_accel``, as :func:`parse_ports` reads it."""

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
    return to_verilog(Accelerator(hw, data_width=data_width or hw.data_width), ACCEL_NAME)


def _box_port(port: AccelPort) -> tuple[str, str, str] | None:
    """(black box, its port name, its direction) for an AXI port of convc_accel."""
    flip = {"input": "output", "output": "input"}[port.dir]
    if port.name.startswith("m_axi__"):
        return MEM_BOX, "s_axi_" + port.name[len("m_axi__"):], flip
    if port.name.startswith("s_axil__"):
        return HOST_BOX, "m_axi_" + port.name[len("s_axil__"):], flip
    return None


_STATUS_ORDER = ("irq", "done", "busy", "error")


class BoardTop(Elaboratable):
    """A board top around the accelerator (see the module docstring).

    Parameters
    ----------
    hw : HardwareConfig
    project : BoardProject or str
        The board's project (default the ML605's), or the board's name.
    data_width : int
        AXI memory data width of the accelerator (default 256, the ML605 MIG's).
    accel_verilog : str, optional
        The accelerator's Verilog (module ``convc_accel``) if already converted;
        default: :func:`accelerator_verilog` (converted once, on first use).
    """

    def __init__(self, hw, project: BoardProject | str = ML605_PROJECT, *, data_width: int | None = None,
                 accel_verilog: str | None = None):
        self.project = project if isinstance(project, BoardProject) else project_for(project)
        self.hw = hw
        self.data_width = data_width or hw.data_width
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

    @property
    def axi_data_width(self) -> int:
        """The width of the accelerator's AXI4 data (its ``m_axi__wdata``), else ``data_width``."""
        return next((p.width for p in self.ports if p.name == "m_axi__wdata"), self.data_width)

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

    def _indicator_text(self, what: str) -> str:
        status = self.status_ports()[:3]
        if what in STATUS:
            k = STATUS.index(what)
            if k >= len(status):
                return "off"
            s = status[k]
            return "done (accelerator irq: STATUS.done)" if s == "irq" else f"accelerator {s}"
        clock_mhz = self.project.clock_hz / 1e6
        return {"calib": f"memory calibrated ({MEM_BOX}.calib_done)",
                "reset": f"reset active ({self.project.reset_name} or start-up)",
                "heartbeat": f"heartbeat (clock running: bit {HEARTBEAT_BIT} of a counter, about "
                             f"{self.project.clock_hz / 2 ** (HEARTBEAT_BIT + 1):.1f} Hz at {clock_mhz:g} MHz)",
                "off": "off"}[what]

    def led_map(self) -> list[str]:
        """What each of the board's LEDs shows (in :attr:`BoardProject.leds` order)."""
        return [self._indicator_text(what) for _, what in self.project.leds]

    def files(self) -> dict[str, str]:
        """Extra files the project's sources need: the accelerator (and, for ISE, the
        black-box stubs; the Vivado script reads its stubs itself)."""
        if self.project.tool == "ISE":
            return {STUB_FILE: blackbox_stub(self), ACCEL_FILE: self.accel_verilog}
        return {ACCEL_FILE: self.accel_verilog}

    def elaborate(self, platform):
        cls = self.project.platform_class
        if platform is None or not hasattr(platform, "request"):
            raise TypeError(f"{type(self).__name__} needs the {cls.__name__} platform "
                            f"({cls.__name__}().build(top, ...))")
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
        values = {"calib": calib_done, "reset": rst, "heartbeat": heartbeat[-1], "off": 0}
        values.update({STATUS[k]: status[k] if k < len(status) else 0 for k in range(len(STATUS))})
        requested = {}
        for i, (led, what) in enumerate(self.project.leds):
            key = (led.resource, led.number)
            if key not in requested:
                requested[key] = platform.request(led.resource, led.number, dir="-")
            port = getattr(requested[key], led.subsignal) if led.subsignal else requested[key]
            m.submodules[f"led{i}"] = buf = io.Buffer("o", port)
            m.d.comb += buf.o.eq(values[what])
        return m


class ML605Top(BoardTop):
    """The ML605 board top (ISE): :class:`BoardTop` with the ML605's project."""

    def __init__(self, hw, *, data_width: int | None = None, accel_verilog: str | None = None):
        super().__init__(hw, ML605_PROJECT, data_width=data_width, accel_verilog=accel_verilog)


def _decl(direction: str, width: int, name: str) -> str:
    rng = f"[{width - 1}:0] " if width > 1 else ""
    return f"    {direction} wire {rng}{name}"


_BOX_WHAT = {MEM_BOX: "DDR3 memory controller (MIG) with an AXI4 slave port",
             HOST_BOX: "host bridge with an AXI4-Lite master port (PCIe, JTAG or MicroBlaze)"}


def _box_module(box: str, ports, attribute: str) -> list[str]:
    return [f"{attribute}", f"module {box} (", ",\n".join(_decl(d, w, n) for n, d, w in ports), ");",
            "endmodule", ""]


def blackbox_stub(top: BoardTop) -> str:
    """Verilog declarations of the two black boxes (empty modules XST keeps as boxes)."""
    what = {MEM_BOX: "DDR3 memory controller (MIG) with an AXI4 slave port; generate it with Coregen",
            HOST_BOX: "host bridge with an AXI4-Lite master port (PCIe or MicroBlaze); generate it"}
    name = top.project.name
    out = [f"// Black boxes of the convc {top.project.title.split()[0]} project, written by convc compile.",
           "// XST keeps these modules empty (box_type user_black_box); ngdbuild then needs",
           f"// {MEM_BOX}.ngc and {HOST_BOX}.ngc (searched in ipcore_dir/), or replace a declaration",
           f"// here with the real module's sources in {name}.prj. See README.txt.", ""]
    for box, ports in top.box_ports().items():
        out += [f"// {what[box]}"] + _box_module(box, ports, '(* box_type = "user_black_box" *)')
    return "\n".join(out)


def vivado_blackbox(top: BoardTop, box: str) -> str:
    """Verilog declaration of one black box for Vivado (``(* black_box *)``, UG901)."""
    out = [f"// Black box {box} of the convc {top.project.title.split()[0]} project, written by convc compile:",
           f"// the {_BOX_WHAT[box]}.",
           f"// {top.project.name}.tcl reads this file only while {IP_FOLDER}/ holds no {box}.v, .sv, .vhd or",
           "// .xci; Vivado synthesizes the design around the empty box, and implementation stops at",
           "// the unresolved black box until the core is there. See README.txt.", ""]
    return "\n".join(out + _box_module(box, top.box_ports()[box], "(* black_box *)"))

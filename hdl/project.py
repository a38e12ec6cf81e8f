r"""Board tops and their vendor projects (written without the vendor tool).

:class:`BoardTop` is the top-level design around the accelerator for one board's Amaranth
platform (:mod:`convc.boards.platforms`), described by a :class:`BoardProject`
(:data:`PROJECTS`): the ML605 (ISE), the KC705 and the Arty A7-100T (Vivado).

* the accelerator, as an instance of the Verilog module ``convc_accel`` (the text
  :func:`accelerator_verilog` writes from :class:`~convc.hdl.accel.Accelerator`; it is
  added to the build as ``convc_accel.v``, so the design is converted once and the
  project reads the same file as ``OUT/hdl/convc_accel.v``), on the ``sync`` domain:
  the board's default clock (ML605 and KC705: the 200 MHz LVDS system clock, IBUFDS;
  Arty: the 100 MHz oscillator) through a global buffer released at the end of start-up,
  and the board's reset button through the platform's reset synchronizer;
* two black boxes the user generates (Coregen/XPS for ISE, the IP catalog for Vivado):

  - :data:`MEM_BOX` (``convc_ddr3``): a DDR3 memory controller (a MIG) with an AXI4
    slave port ``s_axi_*`` of the accelerator's data and ID widths, driven by the
    accelerator's ``m_axi``, and ``calib_done``;
  - :data:`HOST_BOX` (``convc_host``): an AXI4-Lite master ``m_axi_*`` (a PCIe, JTAG or
    MicroBlaze bridge) driving the accelerator's ``s_axil``; it receives ``irq``;

  both take ``aclk`` (the accelerator clock) and ``aresetn``.  ISE reads them from
  ``convc_blackboxes.v`` (``(* box_type = "user_black_box" *)``); the Vivado script reads
  ``blackbox_convc_ddr3.v`` / ``blackbox_convc_host.v`` (``(* black_box *)``) only while
  ``ip/`` holds no core of that name;
* the board's LEDs: done (``irq``), busy and error (when the accelerator has such ports),
  the memory calibration, the reset and a heartbeat (see :meth:`BoardTop.led_map`).

The ports of ``convc_accel`` are read from its Verilog, not assumed: ``clk``/``rst`` only
if the module has them, every ``m_axi__*``/``s_axil__*`` port mapped to the black boxes,
other 1-bit outputs to LEDs, other inputs tied to 0 (listed in the README).

:func:`write_vendor_project` runs ``platform.build(top, name=..., do_build=False)
.extract(folder)`` for the board and adds ``README.txt`` (:func:`write_ise_project` is
the ML605's).  The vendor tool is not run: nothing here claims a netlist, a bitstream
or timing.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import ClockSignal, Elaboratable, Instance, Module, ResetSignal, Signal
from amaranth.lib import io

from convc.boards import ALIASES
from convc.errors import ConvcError

from .accel import Accelerator
from .export import to_verilog

__all__ = ["BoardTop", "ML605Top", "BoardProject", "Led", "VendorProject", "PROJECTS", "AccelPort",
           "accelerator_verilog", "parse_ports", "blackbox_stub", "vivado_blackbox", "write_ise_project",
           "write_vendor_project", "project_for", "generated_files", "ise_readme", "vivado_readme",
           "ACCEL_NAME", "MEM_BOX", "HOST_BOX", "PROJECT_NAME", "GENERATED_FILES"]

ACCEL_NAME = "convc_accel"
MEM_BOX = "convc_ddr3"
HOST_BOX = "convc_host"
PROJECT_NAME = "convc_ml605"
STUB_FILE = "convc_blackboxes.v"
ACCEL_FILE = f"{ACCEL_NAME}.v"
HEARTBEAT_BIT = 26          # 2**27 cycles a period at 200 MHz: about 0.67 s
N_LEDS = 8
IP_FOLDER = "ip"            # the Vivado projects' folder for the user's cores


@dataclass(frozen=True)
class Led:
    """One LED of a board: its name in the board's guide, its pin and its platform resource."""

    label: str
    pin: str
    resource: str = "led"
    number: int = 0
    subsignal: str | None = None


# what a board's LED shows (BoardProject.leds)
STATUS = ("status0", "status1", "status2")     # the accelerator's irq (done), busy, error
INDICATORS = (*STATUS, "calib", "reset", "heartbeat", "off")


@dataclass(frozen=True)
class BoardProject:
    """The vendor project of one board: tool, names, clock, reset and LEDs."""

    board: str                  # convc's board name (convc.boards)
    tool: str                   # "ISE" or "Vivado"
    folder: str                 # the project's folder in a compiled folder
    name: str                   # project and top module name
    title: str                  # board and device in words
    part: str                   # as the vendor tool spells it
    clock_hz: float
    clock: str                  # the clock in words
    reset: str                  # the reset button in words
    reset_name: str             # the reset button, short
    leds: tuple[tuple[Led, str], ...]
    memory: str                 # the MIG to generate, in words
    mig_ui_width: int           # the MIG's native user-interface data width (DQ bits x 8)
    host: str                   # the host bridge to generate, in words

    @property
    def platform_class(self):
        # convc.boards.platforms imports amaranth_boards (optional tool: convc.optional)
        from convc.boards.platforms import platform_class

        return platform_class(self.board)


def _gpio(pins: str, label: str = "GPIO LED {i}") -> list[Led]:
    return [Led(label.format(i=i), pin, "led", i) for i, pin in enumerate(pins.split())]


_EIGHT = ("status0", "status1", "status2", "calib", "reset", "off", "off", "heartbeat")

ML605_PROJECT = BoardProject(
    board="virtex6", tool="ISE", folder="ise", name=PROJECT_NAME,
    title="ML605 (XC6VLX240T-1FFG1156, Virtex-6)", part="xc6vlx240tff1156-1", clock_hz=200e6,
    clock="200 MHz LVDS system clock J9/H9 (LVDS_25)", reset="CPU_RESET H10", reset_name="CPU_RESET",
    leds=tuple(zip(_gpio("AC22 AC24 AE22 AE23 AB23 AG23 AE24 AD24"), _EIGHT)),
    memory="Coregen: Memory Interface Generator, Virtex-6 DDR3 SDRAM, the ML605's SO-DIMM",
    mig_ui_width=256,
    host="the AXI bridge for PCI Express on the ML605's PCIe x8 edge connector, or a MicroBlaze "
         "system (XPS) with an AXI4-Lite master port")

KC705_PROJECT = BoardProject(
    board="kc705", tool="Vivado", folder="vivado", name="convc_kc705",
    title="KC705 (XC7K325T-2FFG900C, Kintex-7)", part="xc7k325tffg900-2", clock_hz=200e6,
    clock="200 MHz LVDS system clock SYSCLK AD12/AD11 (LVDS)", reset="CPU_RESET AB7 (active high)",
    reset_name="CPU_RESET",
    leds=tuple(zip(_gpio("AB8 AA8 AC9 AB9 AE26 G19 E18 F16"), _EIGHT)),
    memory="IP catalog: Memory Interface Generator (MIG 7 Series), DDR3 SDRAM, the KC705's SO-DIMM "
           "(or the KC705 board file's DDR3 interface)",
    mig_ui_width=512,
    host="the AXI Memory Mapped to PCI Express bridge (or XDMA with its AXI4-Lite master) on the "
         "KC705's PCIe x8 edge connector, the JTAG to AXI Master core, or a MicroBlaze system")

ARTY_A7_PROJECT = BoardProject(
    board="arty-a7", tool="Vivado", folder="vivado", name="convc_arty_a7",
    title="Arty A7-100T (XC7A100T-1CSG324C, Artix-7)", part="xc7a100tcsg324-1", clock_hz=100e6,
    clock="100 MHz oscillator E3 (LVCMOS33)", reset="the RESET button (ck_rst) C2 (active low)",
    reset_name="the RESET button",
    leds=((Led("LD4", "H5", "led", 0), "status0"), (Led("LD5", "J5", "led", 1), "status1"),
          (Led("LD6", "T9", "led", 2), "status2"), (Led("LD7", "T10", "led", 3), "heartbeat"),
          (Led("LD0 red", "G6", "rgb_led", 0, "r"), "reset"),
          (Led("LD0 green", "F6", "rgb_led", 0, "g"), "calib"),
          (Led("LD0 blue", "E1", "rgb_led", 0, "b"), "off")),
    memory="IP catalog: Memory Interface Generator (MIG 7 Series), DDR3 SDRAM, the Arty's "
           "MT41K128M16JT-125 (16 bit; Digilent's board file has the MIG settings)",
    mig_ui_width=128,
    host="the JTAG to AXI Master core (over the board's USB-JTAG), or a MicroBlaze system with "
         "the USB-UART and an AXI4-Lite master port (the Arty has no PCIe)")

PROJECTS: dict[str, BoardProject] = {p.board: p for p in (ML605_PROJECT, KC705_PROJECT, ARTY_A7_PROJECT)}


def project_for(board) -> BoardProject:
    """The :class:`BoardProject` of ``board`` (a :class:`~convc.boards.Board`, its name or
    another of its names: ``ml605``, ``arty``, ...)."""
    name = getattr(board, "name", board)
    name = ALIASES.get(str(name).lower(), str(name).lower())
    if name not in PROJECTS:
        raise ConvcError(f"board {name!r} has no vendor project (boards with one: {', '.join(sorted(PROJECTS))})")
    return PROJECTS[name]


def generated_files(board) -> tuple[str, ...]:
    """Every file :func:`write_vendor_project` writes for ``board`` (names in its folder)."""
    proj = project_for(board)
    n = proj.name
    common = (ACCEL_FILE, "README.txt", f"{n}.v", f"{n}.debug.v", f"build_{n}.sh", f"build_{n}.bat",
              f"build_{n}.json")
    if proj.tool == "ISE":
        return (ACCEL_FILE, STUB_FILE, "README.txt", f"{n}.v", f"{n}.debug.v", f"{n}.prj", f"{n}.xst",
                f"{n}.ucf", f"build_{n}.sh", f"build_{n}.bat", f"build_{n}.json")
    return (*common, f"{n}.tcl", f"{n}.xdc", *(f"blackbox_{box}.v" for box in (MEM_BOX, HOST_BOX)))


# every file write_ise_project writes (for removing a stale project)
GENERATED_FILES = generated_files("virtex6")


@dataclass(frozen=True)
class VendorProject:
    """What :func:`write_vendor_project` wrote (the tool was not run)."""

    board: str
    tool: str
    folder: Path
    top: str
    files: tuple[Path, ...]
    readme: Path
    black_boxes: tuple[str, ...] = (MEM_BOX, HOST_BOX)
    run: bool = False

    def to_json(self, base: Path | None = None) -> dict:
        def rel(p):
            return Path(p).relative_to(base).as_posix() if base is not None else str(p)

        return {"board": self.board, "tool": self.tool, "folder": rel(self.folder) + "/", "top": self.top,
                "run": self.run, "black_boxes": list(self.black_boxes), "readme": rel(self.readme),
                "files": [rel(p) for p in self.files]}


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
           f"// .xci; Vivado synthesizes the design around the empty box, and implementation stops at",
           "// the unresolved black box until the core is there. See README.txt.", ""]
    return "\n".join(out + _box_module(box, top.box_ports()[box], "(* black_box *)"))


def _port_lines(ports, indent="      ") -> list[str]:
    lines = []
    for name, direction, width in ports:
        rng = f"[{width - 1}:0]" if width > 1 else ""
        lines.append(f"{indent}{direction:<7}{rng:<9}{name}")
    return lines


def _id_width(top: BoardTop):
    return next((w for n, _, w in top.box_ports()[MEM_BOX] if n == "s_axi_awid"), None)


def _wrap(text: str, width: int = 90) -> list[str]:
    return textwrap.wrap(text, width, subsequent_indent="   ", break_long_words=False, break_on_hyphens=False)


def _cores_section(top: BoardTop, generate: str) -> list[str]:
    boxes = top.box_ports()
    proj = top.project
    L = ["The two cores you must generate",
         "-------------------------------",
         "Both black boxes' AXI ports are synchronous to aclk (rising edge) and reset by aresetn",
         "(active low). Port names follow Xilinx's AXI naming; directions are the box's own.",
         "",
         *_wrap(f"1. {MEM_BOX}: the DDR3 memory controller. Generate a MIG ({proj.memory}) with the "
                f"AXI4 interface: AXI4 slave, data width {top.axi_data_width}, ID width {_id_width(top)}, "
                "address width 32."),
         f"   `calib_done` is the MIG's calibration-complete output ({generate}).",
         *(_wrap(f"   The MIG's native data width here is {proj.mig_ui_width} bits (8 x its DQ width), less "
                 f"than the accelerator's {top.axi_data_width}: if the MIG does not take an AXI port this "
                 f"wide, put an AXI data width converter ({top.axi_data_width} -> {proj.mig_ui_width}) inside "
                 f"{MEM_BOX}.") if top.axi_data_width > proj.mig_ui_width else []),
         "   Ports:"]
    L += _port_lines(boxes[MEM_BOX])
    L += ["",
          *_wrap(f"2. {HOST_BOX}: the host bridge, an AXI4-Lite master (32-bit address and data) that "
                 f"writes the accelerator's registers: e.g. {proj.host}."),
          "   `irq` is the accelerator's interrupt (high while STATUS.done is set).",
          "   Ports:"]
    L += _port_lines(boxes[HOST_BOX])
    return L


def _file_lines(rows) -> list[str]:
    col = max(len(name) for name, _ in rows) + 4
    out = []
    for name, what in rows:
        lines = textwrap.wrap(what, 92 - col - 2, break_long_words=False, break_on_hyphens=False)
        out.append(f"  {name:<{col}}{lines[0]}")
        out += [" " * (col + 2) + line for line in lines[1:]]
    return out


def _led_lines(top: BoardTop, heading: str) -> list[str]:
    L = [heading, "-" * len(heading)]
    for (led, _), what in zip(top.project.leds, top.led_map()):
        L.append(f"  {led.label} ({led.pin}): {what}")
    if top.tied_inputs():
        L.append(f"  accelerator inputs tied to 0: {', '.join(top.tied_inputs())}")
    if top.unused_outputs():
        L.append(f"  accelerator outputs not shown: {', '.join(top.unused_outputs())}")
    return L


def ise_readme(top: BoardTop, *, model: str | None = None) -> str:
    hw = top.hw
    boxes = top.box_ports()
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
    L += [""] + _cores_section(top, "phy_init_done")
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


def vivado_script_hook(top: BoardTop) -> str:
    """Tcl the Vivado script runs after reading the top and its XDC (Amaranth's
    ``script_after_read``): each black box's stub unless ``ip/`` has the core, then ``ip/``."""
    boxes = " ".join(top.box_ports())
    return "\n".join([
        f"# convc: the black boxes and your cores (README.txt). A core in {IP_FOLDER}/ named after a box",
        f"# ({IP_FOLDER}/<box>.v, .sv, .vhd or .xci) replaces the box's empty declaration.",
        f"foreach box {{{boxes}}} {{",
        f"    if {{[llength [glob -nocomplain {IP_FOLDER}/$box.v {IP_FOLDER}/$box.sv {IP_FOLDER}/$box.vhd "
        f"{IP_FOLDER}/$box.xci]] == 0}} {{",
        "        add_files blackbox_$box.v",
        "    }",
        "}",
        f"foreach f [glob -nocomplain {IP_FOLDER}/*.v {IP_FOLDER}/*.sv {IP_FOLDER}/*.vhd {IP_FOLDER}/*.xci] {{",
        "    add_files $f",
        "}",
        f"foreach f [glob -nocomplain {IP_FOLDER}/*.xdc] {{",
        "    read_xdc $f",
        "}",
        "if {[llength [get_ips -quiet]] > 0} {",
        "    generate_target all [get_ips]",
        "    synth_ip [get_ips]",
        "}",
    ])


def vivado_readme(top: BoardTop, *, model: str | None = None) -> str:
    hw, proj = top.hw, top.project
    n = proj.name
    has_clk = any(p.name == "clk" for p in top.ports)
    mhz = f"{proj.clock_hz / 1e6:g} MHz"
    head = f"convc Vivado project for the {proj.title}"
    L = [head, "=" * len(head), "",
         "Written by `convc compile`" + (f" from {model}" if model else "") + " with Amaranth's Vivado platform",
         "(amaranth-boards). Vivado was NOT run here: nothing in this folder has been synthesized,",
         "placed or routed; no bitstream was built and the timing is NOT known (open tools give no",
         f"7-series timing; the {mhz} clock is an assumption). `convc compile --synth` gives Yosys",
         "resource counts only (synth_xilinx -family xc7).",
         "",
         "Files",
         "-----",
         *_file_lines([
             (f"{n}.v", f"board top, module {n}: clock, reset, LEDs, the accelerator (instance of "
                        f"{ACCEL_NAME}) and the two black boxes"),
             (ACCEL_FILE, f"the accelerator, module {ACCEL_NAME} (the same file as ../hdl/{ACCEL_FILE})"),
             (f"blackbox_{MEM_BOX}.v", f"empty declaration of {MEM_BOX} with (* black_box *)"),
             (f"blackbox_{HOST_BOX}.v", f"empty declaration of {HOST_BOX} with (* black_box *)"),
             (f"{n}.tcl", f"Vivado batch script: part {proj.part}; the sources, {n}.xdc, the black boxes "
                          f"or your cores from {IP_FOLDER}/; synth_design -top {n}, opt_design, place_design, "
                          "route_design, reports, write_bitstream"),
             (f"{n}.xdc", f"pins and I/O standards, the {mhz} clock (create_clock), configuration settings"),
             (f"build_{n}.sh, .bat", f"vivado -mode batch -source {n}.tcl"),
             (f"{n}.debug.v", "empty (written by Amaranth)")]),
         "",
         "Accelerator configuration: ../hwconfig.json "
         f"({hw.in_lanes} x {hw.out_lanes} lanes of {hw.kmax}x{hw.kmax} kernel units, {hw.bits} bits).",
         *textwrap.wrap(f"Clock and reset: the {proj.clock} through a BUFGCTRL (as a BUFGCE) released by "
                        "the STARTUPE2 end-of-startup clocks the accelerator and is `aclk` of both black boxes; "
                        f"{proj.reset} through a synchronizer is the accelerator's `rst`; `aresetn` = not rst.",
                        92, break_long_words=False, break_on_hyphens=False),
         *([] if has_clk else ["(This convc_accel has no clock port: it is not the accelerator, e.g. a stand-in "
                               "for tests.)"]),
         ""]
    L += _led_lines(top, "LEDs")
    L += [""] + _cores_section(top, "init_calib_complete")
    L += ["",
          *textwrap.wrap(
              "Either (a) write modules with exactly these names and ports around the generated cores and put "
              f"them in {IP_FOLDER}/ as {IP_FOLDER}/{MEM_BOX}.v and {IP_FOLDER}/{HOST_BOX}.v (or .sv, .vhd), with "
              f"the cores' .xci files and any other sources in {IP_FOLDER}/ too; or (b) customize IP so that its "
              f"module is named {MEM_BOX} / {HOST_BOX} with exactly these ports and put {IP_FOLDER}/{MEM_BOX}.xci "
              f"there. {n}.tcl adds every .v, .sv, .vhd and .xci in {IP_FOLDER}/ (then generate_target and "
              f"synth_ip when there are IP cores) and reads its .xdc files; it reads a box's empty declaration "
              f"only while {IP_FOLDER}/ has no file named after the box. (This Tcl was not run either: check it "
              "against your Vivado version.)", 92, break_long_words=False, break_on_hyphens=False),
          "",
          "Not in this project (needed before it can work on the board)",
          "-------------------------------------------------------------",
          "* The DDR3 pins and the MIG's constraints (its XDC), and the host link's pins and",
          f"  constraints: {n} has only the clock, reset and LED pins. Bring the cores' pins out",
          f"  through the top (edit {n}.v and add an XDC in {IP_FOLDER}/), or instantiate {ACCEL_NAME} in a top",
          "  of your own (for instance the MIG example design).",
          "* The MIG's clocks: the board clock is already buffered by this top, so the MIG must take its",
          "  system and reference clocks from aclk (\"No Buffer\" clock inputs) or the top must be changed.",
          f"  If the MIG's AXI port runs on its own UI clock, {MEM_BOX} needs an AXI clock converter inside.",
          "* Timing closure: unknown until Vivado has placed and routed the design.",
          "",
          f"`convc compile` rewrites the files listed above (and removes them with --no-hdl); keep",
          f"your own files (cores, extra constraints) in {IP_FOLDER}/ or under other names.", ""]
    return "\n".join(L)


def write_ise_project(hw, folder, *, accel_verilog: str | None = None, data_width: int | None = None,
                      model: str | None = None) -> list[Path]:
    """Write the ML605 ISE project for ``hw`` into ``folder`` (created) and return its files.

    ``ML605Platform().build(ML605Top(hw), name="convc_ml605", do_build=False)`` then
    ``.extract(folder)``, plus ``README.txt``.  ISE is not needed and not run.
    """
    info = write_vendor_project("virtex6", folder, hw, accel_verilog=accel_verilog, data_width=data_width,
                                model=model)
    return list(info.files)


def write_vendor_project(board, folder, hw, *, accel_verilog: str | None = None, data_width: int | None = None,
                         model: str | None = None) -> VendorProject:
    """Write ``board``'s vendor project for ``hw`` into ``folder`` (created).

    ``board`` is a :class:`~convc.boards.Board` or its name: ``virtex6`` -> the ML605's
    ISE project, ``kc705`` / ``arty-a7`` -> a Vivado project (the Tcl script and the XDC),
    each with ``platform.build(top, name=..., do_build=False).extract(folder)`` and
    ``README.txt``.  The vendor tool is not needed and not run.  Raises
    :class:`~convc.errors.ConvcError` for a board without a project.
    """
    proj = project_for(board)
    folder = Path(folder)
    top = BoardTop(hw, proj, data_width=data_width, accel_verilog=accel_verilog)
    platform = proj.platform_class()
    if proj.tool == "ISE":
        plan = platform.build(top, name=proj.name, do_build=False, ngdbuild_opts="-sd ipcore_dir")
    else:
        plan = platform.build(top, name=proj.name, do_build=False, script_after_read=vivado_script_hook(top))
    folder.mkdir(parents=True, exist_ok=True)
    plan.extract(folder)
    if proj.tool == "ISE":
        readme = ise_readme(top, model=model)
    else:
        for box in (MEM_BOX, HOST_BOX):
            (folder / f"blackbox_{box}.v").write_text(vivado_blackbox(top, box))
        readme = vivado_readme(top, model=model)
    (folder / "README.txt").write_text(readme)
    names = generated_files(proj.board)
    files = tuple(sorted(folder / name for name in names if (folder / name).is_file()))
    return VendorProject(board=proj.board, tool=proj.tool, folder=folder, top=proj.name, files=files,
                         readme=folder / "README.txt")

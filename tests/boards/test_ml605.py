"""The ML605 platform writes an ISE project without ISE installed."""

from amaranth import Elaboratable, Module, Signal
from amaranth.lib import io

from convc.boards import get_board
from convc.boards.ml605 import ML605Platform


class Blinky(Elaboratable):
    def elaborate(self, platform):
        m = Module()
        counter = Signal(28)
        m.d.sync += counter.eq(counter + 1)
        m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.d.comb += led.o.eq(counter[-1])
        return m


def test_ise_project_files(tmp_path):
    plan = ML605Platform().build(Blinky(), name="top", do_build=False)
    plan.extract(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"top.v", "top.ucf", "top.xst", "top.prj"} <= names
    ucf = (tmp_path / "top.ucf").read_text()
    assert "LOC=J9" in ucf and "LOC=H9" in ucf and "LVDS_25" in ucf and "LOC=AC22" in ucf
    assert "PERIOD" in ucf and "5.0 ns" in ucf  # 200 MHz
    xst = (tmp_path / "top.xst").read_text()
    assert "xc6vlx240t" in xst.lower() and "ff1156" in xst.lower()


def test_platform_matches_board():
    b = get_board("virtex6")
    assert (ML605Platform.device, ML605Platform.package, ML605Platform.speed) == (b.device, b.package, b.speed)

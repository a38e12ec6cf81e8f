"""The KC705 and Arty A7-100T platforms (amaranth-boards, Vivado) write a project without Vivado."""

import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.lib import io

from convc.boards import BOARDS, get_board
from convc.boards.platforms import PLATFORMS, ArtyA7Platform, KC705Platform, platform_class, platform_for
from convc.errors import ConvcError


class Blinky(Elaboratable):
    def elaborate(self, platform):
        m = Module()
        counter = Signal(28)
        m.d.sync += counter.eq(counter + 1)
        for i in range(2):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            m.d.comb += led.o.eq(counter[-1 - i])
        return m


def _build(platform, folder):
    platform.build(Blinky(), name="top", do_build=False).extract(folder)
    return {p.name for p in folder.iterdir()}


def test_kc705_vivado_project(tmp_path):
    names = _build(KC705Platform(), tmp_path)
    assert {"top.v", "top.tcl", "top.xdc", "build_top.sh"} <= names
    tcl = (tmp_path / "top.tcl").read_text()
    assert "-part xc7k325tffg900-2" in tcl and "synth_design -top top" in tcl
    xdc = (tmp_path / "top.xdc").read_text()
    # the 200 MHz system clock (not amaranth-boards' 156.25 MHz K28/K29), CPU_RESET, LEDs
    assert "LOC AD12" in xdc and "LOC AD11" in xdc and 'IOSTANDARD "LVDS"' in xdc
    assert "-period 5.0" in xdc and "K28" not in xdc
    assert "LOC AB7" in xdc and "LOC AB8" in xdc and "LOC AA8" in xdc
    assert "CONFIG_VOLTAGE 2.5" in xdc
    assert "IBUFDS" in (tmp_path / "top.v").read_text()


def test_kc705_led_standards():
    leds = {r.number: r for r in KC705Platform.resources if r.name == "led"}
    assert len(leds) == 8
    stds = [leds[i].attrs["IOSTANDARD"] for i in range(8)]
    assert stds == ["LVCMOS15"] * 4 + ["LVCMOS25"] * 4      # banks 33 (1.5 V) and VADJ (2.5 V)


def test_arty_vivado_project(tmp_path):
    names = _build(ArtyA7Platform(), tmp_path)
    assert {"top.v", "top.tcl", "top.xdc"} <= names
    tcl = (tmp_path / "top.tcl").read_text()
    assert "-part xc7a100tcsg324-1\n" in tcl
    xdc = (tmp_path / "top.xdc").read_text()
    assert "LOC E3" in xdc and "-period 10.0" in xdc and "LOC C2" in xdc
    assert "LOC H5" in xdc and "LOC J5" in xdc and "LVCMOS33" in xdc


@pytest.mark.parametrize("name", ["virtex6", "kc705", "arty-a7"])
def test_platform_matches_board(name):
    b = get_board(name)
    cls = platform_class(b)
    assert (cls.device, cls.package, cls.speed) == (b.device, b.package, b.speed)
    assert cls is platform_class(name)
    clk = next(r for r in cls.resources if r.name == cls.default_clk)
    assert clk.clock.frequency == b.clock_mhz * 1e6


def test_project_boards_have_platforms():
    assert {n for n, b in BOARDS.items() if "project" in b.flows} == set(PLATFORMS)
    assert platform_for("kc705").toolchain == "Vivado"
    assert platform_for("virtex6").toolchain == "ISE"
    with pytest.raises(ConvcError, match="no Amaranth platform"):
        platform_class("ulx3s")

"""The ML605 as an Amaranth platform (ISE flow; Amaranth takes Virtex-6 only with ISE).

Pins from the ML605 user guide (UG534) and its reference UCF: the 200 MHz
LVDS system clock on J9/H9, the CPU_RESET push button (SW10, active high)
on H10, the eight GPIO LEDs. ``platform.build(top, do_build=False)`` writes
the Verilog, UCF, XST script and build scripts without ISE installed.
"""

from __future__ import annotations

from amaranth.build import Attrs, Clock, DiffPairs, Pins, Resource
from amaranth.vendor import XilinxPlatform

from .virtex6 import VIRTEX6

__all__ = ["ML605Platform"]


class ML605Platform(XilinxPlatform):
    device = VIRTEX6.device
    package = VIRTEX6.package
    speed = VIRTEX6.speed
    default_clk = "clk200"
    default_rst = "rst"
    resources = [
        Resource("clk200", 0, DiffPairs("J9", "H9", dir="i"), Clock(200e6), Attrs(IOSTANDARD="LVDS_25")),
        Resource("rst", 0, Pins("H10", dir="i"), Attrs(IOSTANDARD="LVCMOS15")),
        *[Resource("led", i, Pins(pin, dir="o"), Attrs(IOSTANDARD="LVCMOS25"))
          for i, pin in enumerate("AC22 AC24 AE22 AE23 AB23 AG23 AE24 AD24".split())],
    ]
    connectors = []

    def __init__(self, **kwargs):
        kwargs.setdefault("toolchain", "ISE")
        super().__init__(**kwargs)

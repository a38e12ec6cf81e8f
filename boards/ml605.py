"""The ML605 as an Amaranth platform (ISE flow; Amaranth takes Virtex-6 only with ISE, and
picks it by default for the part).

Pins from the ML605 user guide (UG534) and its reference UCF: the 200 MHz
LVDS system clock on J9/H9, the CPU_RESET push button (SW10, active high)
on H10, the eight GPIO LEDs. ``platform.build(top, do_build=False)`` writes
the Verilog, UCF, XST script and build scripts without ISE installed.
"""

from __future__ import annotations

from amaranth.vendor import XilinxPlatform

from .catalog import BOARDS
from .xilinx_io import system_resources

__all__ = ["ML605Platform"]

ML605_LEDS = tuple((pin, "LVCMOS25") for pin in "AC22 AC24 AE22 AE23 AB23 AG23 AE24 AD24".split())


class ML605Platform(XilinxPlatform):
    device, package, speed = BOARDS["virtex6"].part
    default_clk = "clk200"
    default_rst = "rst"
    resources = system_resources(("J9", "H9"), "LVDS_25", "H10", ML605_LEDS)
    connectors = []

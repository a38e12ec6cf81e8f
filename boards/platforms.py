"""Amaranth platforms of the boards that get a vendor project (``flows`` has ``project``).

* ``virtex6``: :class:`~convc.boards.ml605.ML605Platform` (ISE; Amaranth takes Virtex-6
  only with ISE).
* ``kc705``: :class:`KC705Platform`, amaranth-boards' ``KC705Platform`` with the board's
  200 MHz system clock and CPU_RESET added (amaranth-boards gives only the 156.25 MHz
  Si570 user clock on K28/K29) and the GPIO LEDs' I/O standards corrected. From the
  KC705 user guide (UG810) and its master XDC: SYSCLK_P/N on AD12/AD11 (LVDS, bank 33),
  CPU_RESET (SW7, active high) on AB7 (LVCMOS15), GPIO LED 0-3 on AB8 AA8 AC9 AB9
  (LVCMOS15, bank 33, 1.5 V) and LED 4-7 on AE26 G19 E18 F16 (LVCMOS25: banks 12, 17
  and 18 at VADJ = 2.5 V; amaranth-boards declares all eight LVCMOS15).
* ``arty-a7``: :class:`ArtyA7Platform`, amaranth-boards' ``ArtyA7_100Platform`` (100 MHz
  clock on E3, ck_rst on C2, active low) with the part of the board definition:
  XC7A100T-1CSG324C (amaranth-boards names the industrial low-power ``xc7a100ti ... -1L``).

The 7-series boards use Vivado (Amaranth's default for the part);
``platform.build(..., do_build=False)`` writes the project without the vendor tool.
"""

from __future__ import annotations

# amaranth_boards at the top: this module is the one that needs it, and is itself imported only
# where a platform is built (optional tool: convc.optional)
from amaranth_boards.arty_a7 import ArtyA7_100Platform
from amaranth_boards.kc705 import KC705Platform as _KC705Base

from convc.errors import ConvcError

from . import ALIASES
from .catalog import BOARDS
from .ml605 import ML605Platform
from .xilinx_io import system_resources

__all__ = ["KC705Platform", "ArtyA7Platform", "ML605Platform", "PLATFORMS", "platform_class", "platform_for"]

KC705_LEDS = (("AB8", "LVCMOS15"), ("AA8", "LVCMOS15"), ("AC9", "LVCMOS15"), ("AB9", "LVCMOS15"),
              ("AE26", "LVCMOS25"), ("G19", "LVCMOS25"), ("E18", "LVCMOS25"), ("F16", "LVCMOS25"))


class KC705Platform(_KC705Base):
    """The KC705 on its 200 MHz system clock, with CPU_RESET (see the module docstring)."""

    device, package, speed = BOARDS["kc705"].part
    default_clk = "clk200"
    default_rst = "rst"
    resources = [*system_resources(("AD12", "AD11"), "LVDS", "AB7", KC705_LEDS),
                 *[r for r in _KC705Base.resources if r.name not in ("led", "clk200", "rst")]]

    def toolchain_prepare(self, fragment, name, **kwargs):
        # configuration bank 0 at 2.5 V (UG810); without these Vivado's DRC warns (CFGBVS-1)
        kwargs.setdefault("add_constraints",
                          "set_property CFGBVS VCCO [current_design]\n"
                          "set_property CONFIG_VOLTAGE 2.5 [current_design]\n")
        return super().toolchain_prepare(fragment, name, **kwargs)


class ArtyA7Platform(ArtyA7_100Platform):
    """The Arty A7-100T with the board definition's part (XC7A100T-1CSG324C)."""

    device, package, speed = BOARDS["arty-a7"].part


PLATFORMS = {"virtex6": ML605Platform, "kc705": KC705Platform, "arty-a7": ArtyA7Platform}


def platform_class(board):
    """The Amaranth platform class of ``board`` (a :class:`~convc.boards.Board` or one of its names)."""
    name = getattr(board, "name", board)
    name = ALIASES.get(str(name).lower(), str(name).lower())
    if name not in PLATFORMS:
        raise ConvcError(f"board {name!r} has no Amaranth platform for a vendor project "
                         f"(boards with one: {', '.join(sorted(PLATFORMS))})")
    return PLATFORMS[name]


def platform_for(board, **kwargs):
    """A new platform instance for ``board``."""
    return platform_class(board)(**kwargs)

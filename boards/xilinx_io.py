"""The Xilinx evaluation boards' system clock, reset button and LEDs as Amaranth resources
(:func:`system_resources`): what the ML605's and the KC705's platforms declare alike."""

from __future__ import annotations

from amaranth.build import Attrs, Clock, DiffPairs, Pins, Resource

__all__ = ["system_resources"]


def system_resources(clk_pins: tuple[str, str], clk_standard: str, rst_pin: str,
                     leds: tuple[tuple[str, str], ...]) -> list[Resource]:
    """``clk200``, the 200 MHz system clock on the differential pair ``clk_pins`` (P, N),
    ``rst``, the CPU_RESET push button (active high, LVCMOS15) on ``rst_pin``, and
    ``led`` 0.., the GPIO LEDs, ``(pin, I/O standard)`` each."""
    return [Resource("clk200", 0, DiffPairs(*clk_pins, dir="i"), Clock(200e6), Attrs(IOSTANDARD=clk_standard)),
            Resource("rst", 0, Pins(rst_pin, dir="i"), Attrs(IOSTANDARD="LVCMOS15")),
            *[Resource("led", i, Pins(pin, dir="o"), Attrs(IOSTANDARD=std)) for i, (pin, std) in enumerate(leds)]]

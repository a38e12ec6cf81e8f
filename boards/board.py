"""Board definitions: the device's resources, the clock and the memory.

A :class:`Board` is data only; the Amaranth platform that writes a vendor
project for it lives beside it (issue: end-to-end accelerator).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Board"]


@dataclass(frozen=True)
class Board:
    """One FPGA board.

    Parameters
    ----------
    name : str
        Short name used on the command line (``--board virtex6``).
    title : str
        The board and device in words.
    family, device, package, speed : str
        As the vendor tools spell them.
    dsp : int
        DSP slices (DSP48E1 on Virtex-6).
    bram36 : int
        36 Kb block RAMs.
    luts, ffs : int
        LUTs (of ``lut_inputs`` inputs) and flip-flops.
    clock_mhz : float
        The accelerator clock convc plans for.
    mem_peak_gbs : float
        External memory peak bandwidth, GB/s.
    mem_efficiency : float
        Fraction of the peak convc assumes it sustains (refresh, bank and
        read/write turnarounds, burst overheads).
    mem_mbytes : int
        External memory size.
    memory : str
        The external memory in words (part, width, rate).
    dsp_name, bram_name : str
        The device's multiplier and block RAM primitives (what ``dsp`` and ``bram36``
        count: on ECP5 ``dsp`` is 18x18 multipliers and ``bram36`` is half the 18 Kb EBRs).
    yosys_family : str
        Yosys's name of the family for resource counts (``synth_xilinx -family xc6v`` /
        ``xc7``, or ``ecp5`` for ``synth_ecp5``).
    flows : tuple of str
        What convc does for the board: ``counts`` (Yosys resource counts), ``project``
        (a vendor project written without the vendor tool), ``bitstream`` (the open flow
        run to a bitstream), ``timing`` (a place-and-route's Fmax).
    clock_note : str
        Where ``clock_mhz`` comes from (an assumption, or a place-and-route).
    lut_inputs : int
        6 on the Xilinx devices, whose LUTs the size search keeps the accelerator's logic
        estimate within (:attr:`HardwareConfig.luts`, in 6-input LUTs); 4 on ECP5, where
        the estimate does not apply and nextpnr's utilization is the figure.
    axi_data_width : int
        The accelerator's memory port width (the DDR3 controllers' 256 bits; 64 on the
        ULX3S, whose memory is on-chip RAM: narrower FIFOs and RAM, same words a cycle
        as the accelerator's ports move).
    """

    name: str
    title: str
    family: str
    device: str
    package: str
    speed: str
    dsp: int
    bram36: int
    luts: int
    ffs: int
    clock_mhz: float
    mem_peak_gbs: float
    mem_efficiency: float
    mem_mbytes: int
    memory: str = ""
    dsp_name: str = "DSP48E1"
    bram_name: str = "RAMB36E1"
    yosys_family: str = "xc6v"
    flows: tuple[str, ...] = ("counts", "project")
    clock_note: str = "assumed"
    axi_data_width: int = 256
    lut_inputs: int = 6

    def holds_logic(self, hw) -> bool:
        """True when ``hw``'s LUT estimate fits the device (always, where LUTs are not 6-input)."""
        return self.lut_inputs != 6 or hw.luts <= self.luts

    @property
    def part(self) -> tuple[str, str, str]:
        """``(device, package, speed)``: the part, as Amaranth's vendor platforms name it."""
        return self.device, self.package, self.speed

    @property
    def mem_bytes_per_cycle(self) -> float:
        """Sustained bytes per accelerator clock cycle."""
        return self.mem_peak_gbs * 1e9 * self.mem_efficiency / (self.clock_mhz * 1e6)

    def to_json(self) -> dict:
        d = asdict(self)
        d["mem_bytes_per_cycle"] = self.mem_bytes_per_cycle
        d["flows"] = list(self.flows)
        return d

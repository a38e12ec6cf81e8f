"""The ULX3S with a Lattice ECP5-85 (LFE5U-85F-6BG381C): the open flow end to end.

Device figures from the ECP5 family data sheet (FPGA-DS-02012): 83,640 LUT4s and as many
flip-flops, 156 18x18 multipliers (``dsp``), 208 EBRs of 18 Kb (``bram36`` = 104, the
36 Kb equivalent the sizing counts in). The board's memory is a 32 MB SDR SDRAM, 16 bit;
at 100 MHz 0.2 GB/s peak (ULX3S schematic, IS42S16160). The bitstream flow
(``convc compile --bitstream``) puts the memory image in on-chip RAM instead
(:mod:`convc.hdl.ecp5`), so its figures use the on-chip memory model (``axi-ram``).
``clock_mhz`` is the clock convc plans for (100 MHz, the issue's target); nextpnr's
achieved Fmax is in the report of a ``--bitstream`` compile.
"""

from .board import Board

ULX3S = Board(
    name="ulx3s",
    title="ULX3S 85F (LFE5U-85F-6BG381C, ECP5)",
    family="ecp5",
    device="LFE5U-85F",
    package="BG381",
    speed="6",
    dsp=156,
    bram36=104,
    luts=83_640,
    ffs=83_640,
    clock_mhz=100.0,
    mem_peak_gbs=0.2,
    mem_efficiency=0.6,
    mem_mbytes=32,
    memory="SDR SDRAM, 16 bit at 100 MHz (the bitstream flow uses on-chip RAM)",
    dsp_name="MULT18X18D",
    bram_name="EBR (18 Kb, counted in pairs)",
    yosys_family="ecp5",
    flows=("counts", "bitstream", "timing"),
    clock_note="planned; nextpnr-ecp5 gives the achieved Fmax (convc compile --bitstream)",
)

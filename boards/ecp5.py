"""The ULX3S with a Lattice ECP5-85 (LFE5U-85F-6BG381C): the open flow end to end.

Device figures from the ECP5 family data sheet (FPGA-DS-02012): 83,640 LUT4s and as many
flip-flops, 156 18x18 multipliers (``dsp``), 208 EBRs of 18 Kb (``bram36`` = 104, the
36 Kb equivalent the sizing counts in). The board's own memory is a 32 MB SDR SDRAM, 16
bit (0.2 GB/s at 100 MHz; ULX3S schematic, IS42S16160), for which convc has no
controller: the bitstream's top (:mod:`convc.hdl.ecp5`) holds the memory image in on-chip
RAM with a 64-bit port, and that is the memory convc sizes and times for (8 bytes a
cycle; networks whose memory does not fit the EBRs left are refused).
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
    lut_inputs=4,
    ffs=83_640,
    clock_mhz=100.0,
    mem_peak_gbs=0.8,
    mem_efficiency=1.0,
    mem_mbytes=32,
    memory="on-chip EBR RAM in the bitstream's top, 64 bit a cycle (the board's 32 MB SDR SDRAM, 16 bit, "
           "has no controller in convc)",
    dsp_name="MULT18X18D",
    bram_name="EBR (18 Kb, counted in pairs)",
    yosys_family="ecp5",
    flows=("counts", "bitstream", "timing"),
    clock_note="planned; nextpnr-ecp5 gives the achieved Fmax (convc compile --bitstream)",
    axi_data_width=64,
)

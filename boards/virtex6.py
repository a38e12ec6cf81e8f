"""ML605: Xilinx XC6VLX240T-1FFG1156 (Virtex-6), 512 MB DDR3 SO-DIMM.

Figures from the device data sheet (DS150) and the ML605 user guide (UG534):
768 DSP48E1, 416 RAMB36E1, 150,720 6-input LUTs, 301,440 flip-flops; DDR3
64 bit at 800 MT/s = 6.4 GB/s peak. The accelerator clock is 200 MHz, as
NeuFlow ran on this board (an assumption: open tools give no Virtex-6 Fmax).
"""

from .board import Board

VIRTEX6 = Board(
    name="virtex6",
    title="ML605 (XC6VLX240T-1FFG1156, Virtex-6)",
    family="virtex6",
    device="xc6vlx240t",
    package="ff1156",
    speed="1",
    dsp=768,
    bram36=416,
    luts=150_720,
    ffs=301_440,
    clock_mhz=200.0,
    mem_peak_gbs=6.4,
    mem_efficiency=0.7,
    mem_mbytes=512,
    memory="DDR3 SO-DIMM, 64 bit at 800 MT/s",
    dsp_name="DSP48E1",
    bram_name="RAMB36E1",
    yosys_family="xc6v",
    flows=("counts", "project"),
    clock_note="assumed (NeuFlow's clock on this board; open tools have no Virtex-6 timing)",
)

"""7-series boards: the KC705 (Kintex-7) and the Arty A7-100T (Artix-7).

Device figures from the 7-series overview (DS180); memory from the boards' user guides
(UG810 for the KC705: a 1 GB DDR3 SO-DIMM, 64 bit at 1600 MT/s; Digilent's Arty A7
reference manual: 256 MB DDR3L, 16 bit, 667 MT/s with the MIG's 333 MHz clock). The
accelerator clocks are assumptions (no open tool has 7-series timing): 200 MHz on the -2
Kintex, 100 MHz on the -1 Artix; the memory efficiency is the ML605's assumption.
"""

from .board import Board

KC705 = Board(
    name="kc705",
    title="KC705 (XC7K325T-2FFG900C, Kintex-7)",
    family="kintex7",
    device="xc7k325t",
    package="ffg900",
    speed="2",
    dsp=840,
    bram36=445,
    luts=203_800,
    ffs=407_600,
    clock_mhz=200.0,
    mem_peak_gbs=12.8,
    mem_efficiency=0.7,
    mem_mbytes=1024,
    memory="DDR3 SO-DIMM, 64 bit at 1600 MT/s",
    yosys_family="xc7",
    flows=("counts", "project"),
    clock_note="assumed (-2 Kintex-7; open tools have no 7-series timing)",
)

ARTY_A7 = Board(
    name="arty-a7",
    title="Arty A7-100T (XC7A100T-1CSG324C, Artix-7)",
    family="artix7",
    device="xc7a100t",
    package="csg324",
    speed="1",
    dsp=240,
    bram36=135,
    luts=63_400,
    ffs=126_800,
    clock_mhz=100.0,
    mem_peak_gbs=1.333,
    mem_efficiency=0.7,
    mem_mbytes=256,
    memory="DDR3L, 16 bit at 667 MT/s",
    yosys_family="xc7",
    flows=("counts", "project"),
    clock_note="assumed (-1 Artix-7; open tools have no 7-series timing)",
)

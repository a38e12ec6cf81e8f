"""The boards convc can size an accelerator for: their figures, one table a kind of figure
(device, clock and memory, primitives and flows, texts), one row a board, from which each
:class:`~convc.boards.board.Board` of :data:`BOARDS` is built.

Sources:

* ``virtex6``, the ML605: Xilinx XC6VLX240T-1FFG1156 (Virtex-6), 512 MB DDR3 SO-DIMM.
  Figures from the device data sheet (DS150) and the ML605 user guide (UG534): 768
  DSP48E1, 416 RAMB36E1, 150,720 6-input LUTs, 301,440 flip-flops; DDR3 64 bit at 800
  MT/s = 6.4 GB/s peak. The accelerator clock is 200 MHz, as NeuFlow ran on this board
  (an assumption: open tools give no Virtex-6 Fmax).
* ``kc705`` (Kintex-7) and ``arty-a7``, the Arty A7-100T (Artix-7): device figures from
  the 7-series overview (DS180); memory from the boards' user guides (UG810 for the KC705:
  a 1 GB DDR3 SO-DIMM, 64 bit at 1600 MT/s; Digilent's Arty A7 reference manual: 256 MB
  DDR3L, 16 bit, 667 MT/s with the MIG's 333 MHz clock). The accelerator clocks are
  assumptions (no open tool has 7-series timing): 200 MHz on the -2 Kintex, 100 MHz on
  the -1 Artix; the memory efficiency is the ML605's assumption.
* ``ulx3s``, the ULX3S with a Lattice ECP5-85 (LFE5U-85F-6BG381C): the open flow end to
  end. Device figures from the ECP5 family data sheet (FPGA-DS-02012): 83,640 LUT4s and
  as many flip-flops, 156 18x18 multipliers (``dsp``), 208 EBRs of 18 Kb (``bram36`` =
  104, the 36 Kb equivalent the sizing counts in). The board's own memory is a 32 MB SDR
  SDRAM, 16 bit (0.2 GB/s at 100 MHz; ULX3S schematic, IS42S16160), for which convc has
  no controller: the bitstream's top (:mod:`convc.hdl.ecp5`) holds the memory image in
  on-chip RAM with a 64-bit port, and that is the memory convc sizes and times for (8
  bytes a cycle; networks whose memory does not fit the EBRs left are refused).
  ``clock_mhz`` is the clock convc plans for (100 MHz, the issue's target); nextpnr's
  achieved Fmax is in the report of a ``--bitstream`` compile.
"""

from __future__ import annotations

from .board import Board

__all__ = ["BOARDS"]

# ---- the device: DS150 (Virtex-6), DS180 (7-series), FPGA-DS-02012 (ECP5) ----------------
_DEVICE = ("family", "device", "package", "speed", "yosys_family", "dsp", "bram36", "luts", "ffs", "lut_inputs")
_DEVICES = {
    "virtex6": ("virtex6", "xc6vlx240t", "ff1156", "1", "xc6v", 768, 416, 150_720, 301_440, 6),
    "kc705":   ("kintex7", "xc7k325t",   "ffg900", "2", "xc7",  840, 445, 203_800, 407_600, 6),
    "arty-a7": ("artix7",  "xc7a100t",   "csg324", "1", "xc7",  240, 135,  63_400, 126_800, 6),
    "ulx3s":   ("ecp5",    "LFE5U-85F",  "BG381",  "6", "ecp5", 156, 104,  83_640,  83_640, 4),  # LUT4s
}

# ---- the clock convc plans for and the memory: UG534, UG810, Digilent's manual ----------
_MEMORY = ("clock_mhz", "mem_peak_gbs", "mem_efficiency", "mem_mbytes", "axi_data_width")
_MEMORIES = {
    "virtex6": (200.0, 6.4,   0.7, 512,  256),   # DDR3 64 bit at 800 MT/s; efficiency assumed
    "kc705":   (200.0, 12.8,  0.7, 1024, 256),   # DDR3 64 bit at 1600 MT/s; the ML605's efficiency
    "arty-a7": (100.0, 1.333, 0.7, 256,  256),   # DDR3L 16 bit at 667 MT/s; the ML605's efficiency
    "ulx3s":   (100.0, 0.8,   1.0, 32,   64),    # the top's on-chip RAM: 8 bytes a cycle
}

# ---- what ``dsp`` and ``bram36`` count, and what convc does for the board ---------------
_PRIMITIVE = ("dsp_name", "bram_name", "flows")
_XILINX = ("DSP48E1", "RAMB36E1", ("counts", "project"))
_PRIMITIVES = {"virtex6": _XILINX, "kc705": _XILINX, "arty-a7": _XILINX,
               "ulx3s": ("MULT18X18D", "EBR (18 Kb, counted in pairs)", ("counts", "bitstream", "timing"))}

# ---- the board in words, its memory in words, where ``clock_mhz`` comes from ------------
_TEXT = ("title", "memory", "clock_note")
_TEXTS = {
    "virtex6": ("ML605 (XC6VLX240T-1FFG1156, Virtex-6)", "DDR3 SO-DIMM, 64 bit at 800 MT/s",
                "assumed (NeuFlow's clock on this board; open tools have no Virtex-6 timing)"),
    "kc705": ("KC705 (XC7K325T-2FFG900C, Kintex-7)", "DDR3 SO-DIMM, 64 bit at 1600 MT/s",
              "assumed (-2 Kintex-7; open tools have no 7-series timing)"),
    "arty-a7": ("Arty A7-100T (XC7A100T-1CSG324C, Artix-7)", "DDR3L, 16 bit at 667 MT/s",
                "assumed (-1 Artix-7; open tools have no 7-series timing)"),
    "ulx3s": ("ULX3S 85F (LFE5U-85F-6BG381C, ECP5)",
              "on-chip EBR RAM in the bitstream's top, 64 bit a cycle (the board's 32 MB SDR SDRAM, 16 bit, "
              "has no controller in convc)",
              "planned; nextpnr-ecp5 gives the achieved Fmax (convc compile --bitstream)"),
}

_TABLES = ((_DEVICE, _DEVICES), (_MEMORY, _MEMORIES), (_PRIMITIVE, _PRIMITIVES), (_TEXT, _TEXTS))


def _board(name: str) -> Board:
    """The board ``name``: its row of every table."""
    fields = {"name": name}
    for columns, rows in _TABLES:
        fields.update(zip(columns, rows[name], strict=True))
    return Board(**fields)


#: The boards by name, in the order of the tables.
BOARDS: dict[str, Board] = {name: _board(name) for name in _DEVICES}

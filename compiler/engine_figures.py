"""The engines' limits and cost figures, written once, at the bottom layer.

Each number here belongs to one part of the accelerator; that part exposes it as a
class attribute read from this module (``ConvEngine.LIMITS = CONV_LIMITS``,
``PoolEngine.LUTS_PER_LANE = POOL_LUTS_PER_LANE``, ...), so that the HDL, the
hardware configuration (:mod:`convc.compiler.hwconfig`: its checks and resource
figures), the size pass and the models all read the same number, and the
configuration layer never imports the HDL (the arrow points down: the HDL imports
this module, this module imports only :mod:`convc.compiler.isa`).

The pure functions of a configuration that the figures need (lanes, memory ports,
multipliers outside the engines, the LUT estimate) are here too;
:mod:`convc.hdl.accel` re-exports them.

LUT figures are 6-input LUTs (LUT RAM included), for the size search's logic
estimate, measured with Yosys (``synth_xilinx -family xc6v``, abc) on the virtex6
board builds' modules (``bench/bench_synth.py`` prints estimate and measurement).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import isa
from .isa import ROW_COL_BITS

if TYPE_CHECKING:  # annotations only: hwconfig imports this module
    from .hwconfig import HardwareConfig

__all__ = [
    "CONV_LIMITS", "CONV_LUTS_PER_MULTIPLIER", "WINDOW_LIMITS", "POOL_LIMITS", "POOL_LUTS_PER_LANE",
    "POINTWISE_LIMITS", "POINTWISE_LUTS_PER_LANE", "FC_LIMITS", "FC_LUTS_PER_OUT_LANE",
    "FC_LUTS_PER_MULTIPLIER", "FC_ASSEMBLER_LUTS_PER_MULTIPLIER", "FC_ASSEMBLER_MULTIPLIERS",
    "LCN_LIMITS", "LCN_LUTS_PER_CHANNEL", "LCN_TAP_BITS", "lcn_max_width", "signed_bits", "lcn_widths",
    "lcn_dsp_count",
    "FEEDER_LIMITS", "FEEDER_LUTS", "ROWWRITER_LIMITS", "ROWWRITER_LUTS_PER_LANE",
    "ROWWRITER_PORT_MULTIPLIERS", "READER_LUTS", "WRITER_LUTS", "DATA_WIDTHS", "MAX_READERS",
    "SEQUENCER_MULTIPLIERS", "CONTROL_LUTS", "post_lanes", "lcn_lanes", "main_feeders",
    "reader_count", "writer_count", "control_multipliers", "logic_luts",
]

# ---- the convolution engine (ConvEngine) -------------------------------------------
#: the configurations the engine is built for (:class:`HardwareConfig` checks them)
CONV_LIMITS = {"in_lanes": (1, 64), "out_lanes": (1, 256), "kmax": (1, isa.field_max("kernel")),
               "max_width": (1, (1 << ROW_COL_BITS) - 1), "psum_words": (1, 1 << 24)}
#: LUTs a kernel multiplier (its share of the adder trees, window generators, partial
#: sums and weight loader); measured on the LeNet virtex6 board build's modules
#: (24,889 + 479 for 400)
CONV_LUTS_PER_MULTIPLIER = 64

# ---- the window generator (WindowGenerator) ----------------------------------------
WINDOW_LIMITS = {"lanes": (1, 64), "kmax": (1, isa.limit("kernel")[1])}

# ---- the pooling engine (PoolEngine) -----------------------------------------------
POOL_LIMITS = {"lanes": (1, 64), "kmax": (1, isa.limit("pool_k")[1])}
#: LUTs a lane with its window generator; measured on the LeNet virtex6 board build's
#: modules (8,445 for 16)
POOL_LUTS_PER_LANE = 528

# ---- the pointwise engine (PointwiseEngine) ----------------------------------------
POINTWISE_LIMITS = {"lanes": (1, 1024)}
#: LUTs a lane with its PWL core (30 breakpoint comparators, the run-time shift and
#: saturation); measured on the LeNet virtex6 board build's modules (54,399 for 64)
POINTWISE_LUTS_PER_LANE = 850

# ---- the fully connected engine (FCEngine) and its weight assembler ----------------
FC_LIMITS = {"in_lanes": (1, 1024), "out_lanes": (1, 1024), "psum_words": (1, 1 << 20)}
#: LUTs an output lane (accumulator, partial sums, requantizer) and a multiplier (the
#: adder tree); measured on the LeNet virtex6 board build's modules (47,322 for 3 x 64)
#: and on ``FCEngine(in_lanes=1, out_lanes=4)`` alone (2,792)
FC_LUTS_PER_OUT_LANE = 677
FC_LUTS_PER_MULTIPLIER = 21
#: FCWeightAssembler: LUTs a weight of the matrix it assembles; measured on the LeNet
#: virtex6 board build's modules (12,571 for 3 x 64)
FC_ASSEMBLER_LUTS_PER_MULTIPLIER = 66
#: FCWeightAssembler: multipliers of its read addresses (``in_lanes * ld`` and
#: ``lanes_in_group * ld``)
FC_ASSEMBLER_MULTIPLIERS = 2

# ---- the normalization engine (LCNEngine) ------------------------------------------
LCN_LIMITS = {"channels": (1, 64), "kmax": (1, isa.limit("kernel")[1])}
#: LUTs a channel with its share of the window generators, reciprocal units, padders and
#: FIFOs; measured on the sceneparse virtex6 board build's modules (10,800 for 3
#: channels, kmax 9)
LCN_LUTS_PER_CHANNEL = 3_600
#: width of a window tap (the ``R`` and ``Q`` words of an ``OP_LCN`` record)
LCN_TAP_BITS = isa.WORD_BITS


def lcn_max_width(kmax: int) -> int:
    """The longest row for LCN windows up to ``kmax``: the engine's window generators
    count ``W + (kmax-1)//2`` padded columns in ``ROW_COL_BITS`` bits."""
    return (1 << ROW_COL_BITS) - 1 - (kmax - 1) // 2


def signed_bits(lo: int, hi: int) -> int:
    """Signed width holding every integer in [lo, hi]."""
    n = 1
    while not (-(1 << (n - 1)) <= lo and hi <= (1 << (n - 1)) - 1):
        n += 1
    return n


def lcn_widths(channels: int, bits: int, kmax: int) -> dict:
    """Exact widths of the LCN engine's window datapath (bounds from the worst case
    operands): ``xbits`` (the per-pixel sum over maps), ``tbits`` (a column sum) and
    ``split`` (``t`` wider than 25 bits: two multipliers a row tap)."""
    cmin, cmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    xlo, xhi = channels * cmin, channels * cmax          # sum_c of codes (also of sq >= 0)
    xw = signed_bits(xlo, xhi)
    tlo, thi = -(1 << (LCN_TAP_BITS - 1)), (1 << (LCN_TAP_BITS - 1)) - 1
    p = [a * b for a in (xlo, xhi) for b in (tlo, thi)]
    tw = signed_bits(kmax * min(p), kmax * max(p))       # column sum t (exact)
    return {"xbits": xw, "tbits": tw, "split": tw > 25}


def lcn_dsp_count(channels: int, kmax: int, bits: int = 16) -> int:
    """DSP48E1 slices of :class:`~convc.hdl.lcn.LCNEngine` (the multipliers it
    instantiates): per window sum ``kmax`` (columns) + ``kmax`` or ``2*kmax`` (rows,
    ``t`` split when wider than 25 bits), two windows; ``channels`` for ``v*v`` and
    ``channels`` for ``v*r``; 2 for the frame-mean products; 2 PWL units."""
    per_row = 2 if lcn_widths(channels, bits, kmax)["split"] else 1
    return 2 * (kmax + per_row * kmax) + 2 * channels + 2 + 2


# ---- the map feeder (MapFeeder) ----------------------------------------------------
FEEDER_LIMITS = {"list_words": (1, 1 << 16)}
#: LUTs a feeder; measured on the LeNet virtex6 board build's modules: 526 to 590, mean
#: 543, with the upsampling (``up``: its shifts and wider compares); 464 to 506, mean
#: 493, without
FEEDER_LUTS = 540

# ---- the row writer (RowWriter) ----------------------------------------------------
ROWWRITER_LIMITS = {"lanes": (1, 1024), "max_width": (1, (1 << ROW_COL_BITS) - 1), "ports": (1, 64)}
#: LUTs a lane (its share of the two-row buffer, in LUT RAM, and the port multiplexers);
#: measured on the LeNet virtex6 board build's modules (19,262 for 64 lanes, 8 ports)
ROWWRITER_LUTS_PER_LANE = 301
#: multipliers of a port's first-map address (p * Q and map_words * p * Q; the second is
#: two 25x18 or 18x18 products): none for port 0, whose products are by zero
ROWWRITER_PORT_MULTIPLIERS = 3

# ---- the memory ports (MemReader, MemWriter) and the AXI4 port ---------------------
#: LUTs a reader with its burst splitter and FIFOs; measured on the LeNet virtex6 board
#: build's modules (256-bit data)
READER_LUTS = 526
#: LUTs a writer with its burst splitter and FIFOs (the 256-bit beat FIFO is most of
#: it); measured on the LeNet virtex6 board build's modules
WRITER_LUTS = 1_330
#: the AXI4 memory port's data widths
DATA_WIDTHS = (32, 64, 128, 256)

# ---- the accelerator (Accelerator: sequencer, arbiters, host registers) ------------
#: memory readers behind the read arbiter (:func:`reader_count`)
MAX_READERS = 256

SEQUENCER_MULTIPLIERS = 18
"""Multipliers of the sequencer's record arithmetic (products of record fields: the kernel
squared, a band's rows, map sizes, the output, bias and list base addresses), as Yosys
maps them to the device's multipliers: 17 on the LeNet builds (ULX3S, ``synth_ecp5``: 101
MULT18X18D for 84 in the engines; ML605, ``synth_xilinx``), 18 on sceneparse's."""

CONTROL_LUTS = 5_044
"""LUTs outside the engines and memory ports: the sequencer (record decoding, address
arithmetic, the serial divider), the read and write arbiters and the host registers
(6-input LUTs); measured with Yosys (xc6v, abc) on the LeNet virtex6 board build's modules
(3,492 + 1,118 + 284 + 121 + 29)."""


# ---- functions of the configuration ------------------------------------------------
def post_lanes(hw: HardwareConfig) -> int:
    """Lanes after the convolution and FC engines (the pointwise engine's and the row
    writer's): ``max(out_lanes, fc_out_lanes)``."""
    return max(hw.out_lanes, hw.fc_out_lanes if hw.has_fc else 0)


def lcn_lanes(hw: HardwareConfig) -> int:
    """Map feeders and row-writer lanes an ``OP_LCN`` record uses: ``lcn_channels + 1`` (sweep
    B reads ``v`` of every map and ``s``; sweep A writes them), 0 without an LCN engine."""
    return hw.lcn_channels + 1 if hw.lcn_kmax else 0


def main_feeders(hw: HardwareConfig) -> int:
    return max(hw.in_lanes, hw.fc_in_lanes if hw.has_fc else 0, lcn_lanes(hw))


def reader_count(hw: HardwareConfig) -> int:
    """Memory readers: parameters, main-stream feeders, preload feeders."""
    return 1 + main_feeders(hw) + hw.in_lanes


def writer_count(hw: HardwareConfig) -> int:
    """Memory writers: the row writer's ports, ``hw.writers`` rounded down to a power of
    two."""
    return 1 << (max(1, hw.writers).bit_length() - 1)


def control_multipliers(hw: HardwareConfig) -> int:
    """Multipliers outside the engines: :data:`SEQUENCER_MULTIPLIERS`, one a map feeder
    (its row address ``((row - pad) >> up) * in_w``, :class:`~convc.hdl.feeder.MapFeeder`) and the
    row writer's ports' first-map addresses (:data:`ROWWRITER_PORT_MULTIPLIERS` a port
    after the first) and the FC weight assembler's read addresses
    (:data:`FC_ASSEMBLER_MULTIPLIERS`)."""
    return (SEQUENCER_MULTIPLIERS + reader_count(hw) - 1
            + ROWWRITER_PORT_MULTIPLIERS * (writer_count(hw) - 1)
            + (FC_ASSEMBLER_MULTIPLIERS if hw.has_fc else 0))


def logic_luts(hw: HardwareConfig) -> int:
    """An estimate of the accelerator's 6-input LUTs (LUT RAM included), from the figures
    the engines and ports own (``LUTS``, ``LUTS_PER_LANE``, ``LUTS_PER_MULTIPLIER``, ...):
    the size search keeps it within the board's LUTs. Within a few per cent of Yosys
    (``synth_xilinx``, per module) on the virtex6 board builds (``bench/bench_synth.py``
    prints both)."""
    luts = CONTROL_LUTS
    luts += CONV_LUTS_PER_MULTIPLIER * hw.conv_macs_per_cycle
    luts += POOL_LUTS_PER_LANE * hw.out_lanes
    luts += (POINTWISE_LUTS_PER_LANE + ROWWRITER_LUTS_PER_LANE) * post_lanes(hw)
    if hw.has_fc:
        luts += FC_LUTS_PER_OUT_LANE * hw.fc_out_lanes
        luts += (FC_LUTS_PER_MULTIPLIER + FC_ASSEMBLER_LUTS_PER_MULTIPLIER) * hw.dsp_fc
    if hw.lcn_kmax:
        luts += LCN_LUTS_PER_CHANNEL * hw.lcn_channels
    luts += FEEDER_LUTS * (reader_count(hw) - 1)
    luts += READER_LUTS * reader_count(hw) + WRITER_LUTS * writer_count(hw)
    return luts

r"""The accelerator: engines, sequencer, memory ports and host registers in one component.

:class:`Accelerator` is generated from a :class:`~convc.compiler.hwconfig.HardwareConfig`
and runs a compiled schedule (:mod:`convc.compiler.isa` records) from external memory,
one record after another, from one start.

Ports
-----
``s_axil``  In(:class:`~convc.hdl.axi.AXI4LiteSignature` (32-bit address and data)): the
            host registers of :mod:`convc.hdl.regs` (CTRL, STATUS, SCHED_ADDR,
            IMAGE_ADDR, CYCLES_LO/HI, RECORDS, VERSION).
``m_axi``   Out(:class:`~convc.hdl.axi.AXI4Signature` (32-bit byte address,
            ``data_width`` data, ``id_width`` IDs)): external memory (DDR3 through a
            Xilinx MIG on the ML605; cocotbext-axi's ``AxiRam`` in the tests).
``irq``     Out(1): high while STATUS.done is set.

Running a network (what a host or a testbench does)
---------------------------------------------------
1. Memory is :mod:`~convc.compiler.isa`'s 16-bit words (word ``a`` at byte ``2a``).  Load
   ``weights.bin`` at word ``image_addr`` (the compiler uses 0: every address in the
   records is absolute, the PWL tables are at ``image_addr + i * isa.TABLE_WORDS``),
   ``schedule.bin`` at word ``sched_addr`` (:func:`schedule_addr` gives the compiler's
   choice: the first 32-word boundary after the program's memory), and the quantized
   input at ``program.input.addr``.
2. Write SCHED_ADDR and IMAGE_ADDR, then CTRL = 1 (start).
3. Wait for STATUS bit 1 (done) or ``irq``; STATUS bit 2 (error) flags a record the
   hardware cannot run (``OP_LCN`` in this version, an unknown op, an engine's band
   error, an AXI error response).  CYCLES counts the clock cycles from start to done,
   RECORDS the records executed (``OP_END`` included).
4. Read every layer's output region (``program.layers``).  A new start runs the schedule
   again (for the next input).

Sequencer (one record at a time; no two records overlap)
---------------------------------------------------------
FETCH      the parameter reader reads the record's 32 words; the record is decoded with
           the same field table as :func:`convc.compiler.isa.decode`.
OP_END     wait for the memory writer to be idle, raise done.
OP_CONV    TABLE (if ``act == ACT_PWL`` and table ``pwl_id`` is not the one loaded since
           start: ``isa.TABLE_WORDS`` words into every pointwise engine), LIST (``n_in``
           words into the list memory), BIAS (``2*n_out`` words, then the bias element
           and the band configuration go to the convolution engine), then at the same
           time:

           * weights: for each input group ``g < G = ceil(n_in / in_lanes)``, for each
             output lane ``o < out_lanes`` and input lane ``i < in_lanes``, the ``K*K``
             weights of output ``o`` and input ``j = g*in_lanes + i`` (one read command of
             ``K*K`` words), or ``K*K`` zeros (no read) if ``o >= n_out`` or ``j >= n_in``;
             one word a cycle;
           * pixels: per input lane, a map feeder (its own memory reader) sends, for each
             group, the band's rows of map ``list[j]`` with the padding inserted (one read
             command of ``in_w`` words per row inside the map; padding and lanes without
             a map are zeros, not read): the main stream (rows ``K-1..R-1`` of the band)
             and a second feeder per lane the preload stream (rows ``0..K-2``), as
             :class:`~convc.hdl.conv.ConvEngine` takes them (``preload = 1``);
           * outputs: convolution engine -> pointwise engines (one a lane) -> pooling
             engine -> row writer (below).
           The record ends when its last output word has been written and the memory
           writer is idle (its bursts acknowledged).
OP_FC      TABLE and LIST as above, BIAS to the fully connected engine, then at the same
           time: weights (for each group, for each input lane ``i < fc_in_lanes``: the
           ``n_out`` weights of input ``j`` (one command; ``OP_FC`` weights are stored
           input-major, see isa.py) or zeros; the group's matrix goes to the engine when
           complete), pixels (map feeders of lanes ``0..fc_in_lanes-1``: for each group
           the band's ``rows`` rows of map ``list[j]``, one command a row) and outputs
           (FC engine -> pointwise engines -> row writer).
OP_LCN     not run by this version: error, and the run stops.

Row writer: the band's output rows (``out_w`` elements of all lanes) go into a
two-row buffer; each finished row is written map by map, one write command of ``out_w``
words per output map ``o < n_out`` (at ``out_addr + (o0+o)*out_h*out_w + (row0+r)*out_w``),
or, for a vector output (``out_h = out_w = 1``), one command of ``n_out`` words.  The
memory writer takes one word a cycle.

Memory ports: memory readers (:class:`~convc.hdl.memport.MemReader`), ``axi_id`` = their
index (0: parameters: records, tables, lists, biases, weights; ``1..`` : main-stream map
feeders, one per lane; then the preload feeders), behind a read arbiter (round-robin on
AR, R routed by RID); one :class:`~convc.hdl.memport.MemWriter` on the write channels.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from convc.compiler.hwconfig import HardwareConfig

from . import axi
from .arith import check_param

__all__ = ["Accelerator", "schedule_addr", "DEFAULT_DATA_WIDTH"]

DEFAULT_DATA_WIDTH = 256   # the ML605 MIG's user interface: 256 bits at 200 MHz (6.4 GB/s)
SCHEDULE_ALIGN = 32        # words: one record


def schedule_addr(memory_words: int) -> int:
    """Where the host puts the schedule: the first record boundary after the program's
    ``memory_words`` (image, activations and scratch)."""
    return -(-int(memory_words) // SCHEDULE_ALIGN) * SCHEDULE_ALIGN


def reader_count(hw: HardwareConfig) -> int:
    """Memory readers: parameters, main-stream feeders, preload feeders."""
    main = max(hw.in_lanes, hw.fc_in_lanes if hw.has_fc else 0)
    return 1 + main + hw.in_lanes


def id_width_for(hw: HardwareConfig) -> int:
    return max(1, (reader_count(hw) - 1).bit_length())


class Accelerator(wiring.Component):
    """The whole accelerator for ``hw`` (see the module docstring).

    Parameters
    ----------
    hw : HardwareConfig
    data_width : int
        AXI memory data width (32, 64, 128, 256; default 256, the ML605 MIG's).
    """

    def __init__(self, hw: HardwareConfig, *, data_width: int = DEFAULT_DATA_WIDTH):
        if not isinstance(hw, HardwareConfig):
            self._MustUse__silence = True
            raise TypeError(f"Accelerator needs a HardwareConfig, got {type(hw).__name__}")
        if data_width not in axi.DATA_WIDTHS:
            self._MustUse__silence = True
            raise ValueError(f"Accelerator: data_width={data_width!r} not in {axi.DATA_WIDTHS}")
        self._hw = hw
        self._dw = data_width
        check_param(self, "readers", reader_count(hw), 1, 256)
        super().__init__({
            "s_axil": In(axi.AXI4LiteSignature(32, 32)),
            "m_axi": Out(axi.AXI4Signature(32, data_width, id_width_for(hw))),
            "irq": Out(1),
        })

    hw = property(lambda self: self._hw)
    data_width = property(lambda self: self._dw)

    @property
    def readers(self) -> int:
        return reader_count(self._hw)

    def elaborate(self, platform):
        m = Module()
        # skeleton: the sequencer and datapath are being built (issue 5)
        return m

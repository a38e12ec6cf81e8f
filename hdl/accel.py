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
``trace``   Out(:func:`trace_signature`): ``running`` and ``start`` (a record's first
            cycle), for testbenches that time each record; left open on a board.

Running a network (what a host or a testbench does)
---------------------------------------------------
1. Memory is :mod:`~convc.compiler.isa`'s 16-bit words (word ``a`` at byte ``2a``).  Load
   ``weights.bin`` at word ``image_addr`` (the compiler uses 0: every address in the
   records is absolute, the PWL tables are at ``image_addr + i * isa.TABLE_WORDS``),
   ``schedule.bin`` at word ``sched_addr`` (:func:`convc.compiler.program.schedule_addr` gives the compiler's
   choice: the first 32-word boundary after the program's memory), and the quantized
   input at ``program.input.addr``.
2. Write SCHED_ADDR and IMAGE_ADDR, then CTRL = 1 (start).
3. Wait for STATUS bit 1 (done) or ``irq``; STATUS bit 2 (error) flags a record the
   hardware cannot run (an unknown op, ``OP_LCN`` without an LCN engine, an engine's band
   error, ``up != 0`` on an ``OP_FC`` or ``OP_LCN`` record or an upsampled map beyond
   ``isa.ROW_COL_BITS`` rows or columns (:func:`convc.compiler.isa.check_up`), an AXI error
   response; after an error, reset the accelerator before the next
   start: an engine may hold a half-run band).  CYCLES counts the clock cycles from start
   to done,
   RECORDS the records executed (``OP_END`` included).
4. Read every layer's output region (``program.layers``).  A new start runs the schedule
   again (for the next input).

Sequencer (one record at a time; no two records overlap)
---------------------------------------------------------
FETCH      the parameter reader reads the record's 32 words; the record is decoded with
           the same field table as :func:`convc.compiler.isa.decode`.
DECODE     the record's fields; DERIVE the band's addresses and sizes; for OP_CONV/OP_FC,
           DIVIDE: the band's convolution width ``((in_w << up) + 2 pad - K) // stride + 1``
           by a serial divider (:class:`~convc.hdl.divider.SerialDivider`, :attr:`DIVIDE_CYCLES`):
           a combinational divider there was the longest path of the design.
OP_END     wait for the memory writer to be idle, raise done.
The weights go to the engines through two components lent the parameter reader while
they are busy (:mod:`convc.hdl.weights`): :class:`~convc.hdl.weights.ConvWeightLoader` and
:class:`~convc.hdl.weights.FCWeightAssembler`.

OP_CONV    TABLE (if ``act == ACT_PWL`` and table ``pwl_id`` is not the one loaded since
           start: ``isa.TABLE_WORDS`` words into the pointwise engine), LIST (``n_in``
           words; the map bases ``in_addr + list[j] * in_h * in_w`` of the first
           ``hw.list_words`` into the list memory; a list that is a run of consecutive maps,
           ``list[j] = list[0] + j``, may be longer: the feeders then step from one group's
           base to the next, :class:`~convc.hdl.feeder.MapFeeder`; a longer list that is not
           consecutive is an error, found at its end), BIAS (``2*n_out`` words, then the bias element
           and the band configuration go to the convolution engine), then at the same
           time:

           * weights: for each input group ``g < G = ceil(n_in / in_lanes)``, for each
             output lane ``o < out_lanes`` and input lane ``i < in_lanes``, the ``K*K``
             weights of output ``o`` and input ``j = g*in_lanes + i`` (one read command of
             ``K*K`` words), or ``K*K`` zeros (no read) if ``o >= n_out`` or ``j >= n_in``;
             one word a cycle;
           * pixels: per input lane, a map feeder (its own memory reader) sends, for each
             group, the band's rows of map ``list[j]`` with the padding inserted (one read
             command of ``in_w`` words per row inside the map; with ``up != 0`` the map
             read nearest-upsampled by ``2**up``: the engines, the band's rows, its
             width ``wp = (in_w << up) + 2 pad`` and the divider see the upsampled
             ``(in_h << up) x (in_w << up)`` map, the feeders get the stored sizes and
             ``up`` and read each stored row once for each of its upsampled rows, see
             :class:`~convc.hdl.feeder.MapFeeder`; padding and lanes without
             a map are zeros, not read): the main stream (rows ``K-1..R-1`` of the band)
             and a second feeder per lane the preload stream (rows ``0..K-2``), as
             :class:`~convc.hdl.conv.ConvEngine` takes them (``preload = 1``);
           * outputs: convolution engine -> pointwise engine (:func:`post_lanes` lanes) -> pooling
             engine -> row writer (below).
           The record ends when its last output word has been written and the memory
           writer is idle (its bursts acknowledged).
OP_FC      TABLE and LIST as above, BIAS to the fully connected engine, then at the same
           time: weights (for each group, for each input lane ``i < fc_in_lanes``: the
           ``n_out`` weights of input ``j`` (one command; ``OP_FC`` weights are stored
           input-major, see isa.py) or zeros; the group's matrix goes to the engine when
           complete), pixels (map feeders of lanes ``0..fc_in_lanes-1``: for each group
           the band's ``rows`` rows of map ``list[j]``, one command a row) and outputs
           (FC engine -> pointwise engine -> row writer).
OP_LCN     (with an LCN engine, :class:`~convc.hdl.lcn.LCNEngine` of ``hw.lcn_channels`` maps
           and windows up to ``hw.lcn_kmax``; otherwise, or for a record beyond those
           limits: error) SQRT and RECIP (``isa.TABLE_WORDS`` words each into the engine's
           two PWL units), WIN (the window's ``R`` and ``Q``, ``2K`` words from
           ``w_addr + K*K``), then two sweeps of the frame (A: ``x`` to ``v`` and ``s`` in
           scratch; B: back to ``y``), each LIST, GO, STREAM, DRAIN
           (:func:`~convc.hdl.seqstates.lcn_states`).

Row writer (:class:`~convc.hdl.rowwriter.RowWriter`, wired in :mod:`convc.hdl.datapath`):
the band's output rows, map by map, on :func:`writer_count` memory writers behind a
write arbiter (:class:`~convc.hdl.arbiter.WriteArbiter`).

Memory ports: memory readers (:class:`~convc.hdl.memport.MemReader`), ``axi_id`` = their
index (0: parameters: records, tables, lists, biases, weights; ``1..`` : main-stream map
feeders, one per lane; then the preload feeders), behind a read arbiter (round-robin on
AR, R routed by RID); the memory writers (``axi_id`` = port) behind the write arbiter.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from convc.compiler import isa
# the pure functions of the configuration and the figures outside the engines are written in
# the bottom layer (the configuration reads them without importing the HDL); re-exported here
from convc.compiler.engine_figures import (CONTROL_LUTS, MAX_READERS, SEQUENCER_MULTIPLIERS, control_multipliers,
                                           lcn_lanes, logic_luts, main_feeders, post_lanes, reader_count,
                                           writer_count)
from convc.compiler.hwconfig import HardwareConfig
from convc.compiler.isa import BIAS_BITS, RECORD_WORDS, ROW_COL_BITS, WORD_BITS

from . import axi
from .arbiter import ReadArbiter, WriteArbiter
from .arith import check_param
from .conv import ConvEngine
from .datapath import connect_datapath
from .divider import SerialDivider
from .fc import FCEngine
from .feeder import MapFeeder
from .fields import GROUP_BITS, field_shape
from .lcn import LCNEngine
from .memport import MemReader, MemWriter
from .pointwise import PointwiseEngine
from .pool import PoolEngine
from .regs import HostRegisters
from .rowwriter import RowWriter
from .seqstates import command_state, lcn_states

__all__ = ["Accelerator", "trace_signature", "post_lanes", "lcn_lanes", "logic_luts", "CONTROL_LUTS",
           "SEQUENCER_MULTIPLIERS", "control_multipliers", "reader_count", "writer_count",
           "record_layout", "DEFAULT_DATA_WIDTH"]

DEFAULT_DATA_WIDTH = 256   # the ML605 MIG's user interface: 256 bits at 200 MHz (6.4 GB/s)


def record_layout() -> data.StructLayout:
    """The record as an Amaranth layout, built from :data:`convc.compiler.isa.FIELDS`
    (first field in the low bits, as :func:`convc.compiler.isa.encode` packs it)."""
    return data.StructLayout({f.name: field_shape(f.name) for f in isa.FIELDS})


def trace_signature() -> wiring.Signature:
    """The sequencer's trace port, for testbenches (a board top leaves it open):
    ``running`` (high while a run is in progress: the cycles CYCLES counts) and
    ``start`` (high in the first cycle of each record: its FETCH command state).
    Exported as ``trace__running`` and ``trace__start``."""
    return wiring.Signature({"running": Out(1), "start": Out(1)})


def lcn_max_rows(hw: HardwareConfig) -> int:
    """Rows an ``OP_LCN`` frame may have: the LCN engine's window generators count
    ``H + (kmax-1)//2`` padded rows in 12 bits."""
    return (1 << ROW_COL_BITS) - 1 - (hw.lcn_kmax - 1) // 2


def id_width_for(hw: HardwareConfig) -> int:
    return max(1, (max(reader_count(hw), writer_count(hw)) - 1).bit_length())


def _behind_arbiter(m, ports, prefix: str, arbiter_name: str, arbiter):
    """Add memory ``ports`` as submodules ``<prefix><k>`` and ``arbiter`` as
    ``arbiter_name``, port ``k``'s AXI half on the arbiter's slave ``k``; returns the
    arbiter."""
    for k, port in enumerate(ports):
        m.submodules[f"{prefix}{k}"] = port
    m.submodules[arbiter_name] = arbiter
    for k, port in enumerate(ports):
        wiring.connect(m, port.m_axi, arbiter.s[k])
    return arbiter


class Accelerator(wiring.Component):
    """The whole accelerator for ``hw`` (see the module docstring).

    Parameters
    ----------
    hw : HardwareConfig
    data_width : int
        AXI memory data width (32, 64, 128, 256; default ``hw.data_width``).
    """

    # The sequencer's timing, its FSM's states (read by sim/cycle.py; calibrated on the RTL:
    # tests/hdl/test_accel.py holds the cycle model within 1% per record)
    START_CYCLES = 2        # CTRL start -> the first FETCH command (IDLE, FETCH_CMD)
    DECODE_CYCLES = 2       # a record's last word -> its first phase command (DECODE, DERIVE)
    BAND_WIDTH_BITS = 13    # a padded input row and a convolution row ((in_w << up) + 2 pad)
    DIVIDE_CYCLES = BAND_WIDTH_BITS + 1     # CONV/FC: the band width (wp - K) // stride by the
    #                         serial divider, one quotient bit a cycle, then DIVIDE's exit
    PHASE_GAP = 1           # one phase's last word -> the next phase's command (its *_CMD state)
    DONE_CYCLES = 1         # OP_END: the writers idle -> done
    LCN_GO_CYCLES = 1       # OP_LCN: a sweep's start pulse (LCN_GO)
    LCN_FEEDER_STAGGER = 2  # OP_LCN: feeders started together, each later reading lane's first word
    MAX_READERS = MAX_READERS   # memory readers behind the read arbiter (reader_count)

    @staticmethod
    def lcn_list_cycles(hw: HardwareConfig) -> int:
        """OP_LCN: the map-base list of a sweep (LCN_LIST), one entry a cycle."""
        return lcn_lanes(hw)

    def __init__(self, hw: HardwareConfig, *, data_width: int | None = None):
        if not isinstance(hw, HardwareConfig):
            self._MustUse__silence = True
            raise TypeError(f"Accelerator needs a HardwareConfig, got {type(hw).__name__}")
        if data_width is None:
            data_width = hw.data_width
        if data_width not in axi.DATA_WIDTHS:
            self._MustUse__silence = True
            raise ValueError(f"Accelerator: data_width={data_width!r} not in {axi.DATA_WIDTHS}")
        self._hw = hw
        self._dw = data_width
        check_param(self, "readers", reader_count(hw), 1, self.MAX_READERS)
        super().__init__({
            "s_axil": In(axi.AXI4LiteSignature(32, 32)),
            "m_axi": Out(axi.AXI4Signature(32, data_width, id_width_for(hw))),
            "irq": Out(1),
            "trace": Out(trace_signature()),
        })

    hw = property(lambda self: self._hw)
    data_width = property(lambda self: self._dw)

    @property
    def readers(self) -> int:
        return reader_count(self._hw)

    @property
    def lanes(self) -> int:
        """Pointwise-engine and row-writer lanes: :func:`post_lanes`."""
        return post_lanes(self._hw)

    def elaborate(self, platform):
        m = Module()
        hw = self._hw
        dw, iw = self._dw, id_width_for(hw)
        Pi, Po, bits = hw.in_lanes, hw.out_lanes, hw.bits
        has_fc = hw.has_fc
        fi, fo = (hw.fc_in_lanes, hw.fc_out_lanes) if has_fc else (0, 0)
        NF, NL, NR = main_feeders(hw), post_lanes(hw), reader_count(hw)

        # ---- blocks ---------------------------------------------------------------------
        m.submodules.regs = regs = HostRegisters()
        wiring.connect(m, wiring.flipped(self.s_axil), regs.s_axil)
        readers = [MemReader(dw, id_width=iw, axi_id=k) for k in range(NR)]
        arb = _behind_arbiter(m, readers, "reader", "arb", ReadArbiter(NR, data_width=dw, id_width=iw))
        NW = writer_count(hw)
        writers = [MemWriter(dw, id_width=iw, axi_id=k) for k in range(NW)]
        warb = _behind_arbiter(m, writers, "writer", "warb", WriteArbiter(NW, data_width=dw, id_width=iw))
        axi.join_halves(m, self.m_axi, read=arb.m, write=warb.m)
        writers_idle = Cat(*[w.idle for w in writers]).all()
        pr = readers[0]                                     # parameter reader

        m.submodules.conv = conv = ConvEngine(hw)
        fc = None
        if has_fc:
            m.submodules.fc = fc = FCEngine(in_lanes=fi, out_lanes=fo, bits=bits, psum_words=hw.fc_psum_words)
        m.submodules.pw = pw = PointwiseEngine(bits, lanes=NL, max_segments=hw.pwl_segments)
        m.submodules.pool = pool = PoolEngine(lanes=Po, bits=bits, kmax=max(1, hw.pool_kmax),
                                              max_width=hw.max_width)
        CL = hw.lcn_channels if hw.lcn_kmax else 0
        lcn = None
        if CL:
            m.submodules.lcn = lcn = LCNEngine(channels=CL, bits=bits, kmax=hw.lcn_kmax,
                                               max_width=hw.max_width, max_segments=hw.pwl_segments)
        NRW = max(NL, lcn_lanes(hw))                        # row-writer lanes
        m.submodules.rw = rw = RowWriter(lanes=NRW, bits=bits, max_width=hw.max_width, ports=NW)
        for cmd, word, w in zip(rw.cmds, rw.words, writers):
            wiring.connect(m, cmd, w.cmd)
            m.d.comb += [w.i.payload.eq(word.payload), w.i.valid.eq(word.valid), word.ready.eq(w.i.ready)]

        mains = [MapFeeder(bits=bits, list_words=hw.list_words) for _ in range(NF)]
        pres = [MapFeeder(bits=bits, list_words=hw.list_words) for _ in range(Pi)]
        m.submodules.lists = lists = memory.Memory(shape=32, depth=hw.list_words, init=[])
        for k, f in enumerate(mains + pres):
            m.submodules[f"feed{k}"] = f
            rp = lists.read_port(domain="sync")
            m.d.comb += [rp.addr.eq(f.list_addr), f.list_data.eq(rp.data)]
            wiring.connect(m, readers[1 + k].o, f.word)
            wiring.connect(m, f.cmd, readers[1 + k].cmd)
        lw = lists.write_port()

        # ---- run state ------------------------------------------------------------------
        running = Signal(name="running")
        done = Signal(name="done")
        error = Signal(name="error")
        cycles = Signal(64, name="cycles")
        records = Signal(32, name="records")
        rec_idx = Signal(32, name="rec_idx")
        rec_start = Signal(name="rec_start")               # the first cycle of FETCH_CMD
        m.d.sync += rec_start.eq(0)
        m.d.comb += [regs.busy.eq(running), regs.done.eq(done), regs.error.eq(error),
                     regs.cycles.eq(cycles), regs.records.eq(records), self.irq.eq(done),
                     self.trace.running.eq(running), self.trace.start.eq(rec_start)]
        with m.If(running):
            m.d.sync += cycles.eq(cycles + 1)

        raw = Signal(isa.RECORD_BITS, name="record_raw")
        lay = record_layout()
        R = data.View(lay, raw[:lay.size])

        # derived per-record values (registered in DECODE / DERIVE)
        is_fc = Signal(name="is_fc")
        is_lcn = Signal(name="is_lcn")
        lcn_b = Signal(name="lcn_sweep_b")                 # OP_LCN: 0 sweep A, 1 sweep B
        lcn_base = Signal(32, name="lcn_list_base")
        kk = Signal(10, name="kk")
        wp = Signal(self.BAND_WIDTH_BITS, name="wp")
        m.submodules.divider = div = SerialDivider(len(wp), isa.field("stride").bits)
        conv_rows = Signal(ROW_COL_BITS + 1, name="conv_rows")
        r_in = Signal(ROW_COL_BITS + 1, name="band_in_rows")
        rs0 = Signal(ROW_COL_BITS + 1, name="band_row0")
        conv_w = Signal(self.BAND_WIDTH_BITS, name="conv_w")
        map_in = Signal(24, name="map_in")
        map_out = Signal(24, name="map_out")
        out_base = Signal(32, name="out_base")
        bias_addr = Signal(32, name="bias_addr")
        n_kk = Signal(26, name="n_in_kk")
        ld = Signal(17, name="fc_ld")                      # FC weight column stride
        ld_beats = Signal(17, name="fc_ld_beats")
        pixels = Signal(24, name="pixels")
        groups = Signal(GROUP_BITS, name="groups")
        lane_ctr = Signal(16, name="lane_ctr")
        list_first = Signal(WORD_BITS, name="list_first")  # list[0]
        list_base0 = Signal(32, name="list_base0")         # its map base
        list_contig = Signal(name="list_contig")           # list[j] = list[0] + j so far
        list_step = Signal(32, name="list_step")           # base[L] - base[0] (= L * map words)
        table_ok = Signal(name="table_ok")
        table_id = Signal(field_shape("pwl_id"), name="table_id")
        k = Signal(21, name="word_ctr")
        bias = [Signal(BIAS_BITS, name=f"bias{o}") for o in range(NL)]
        L_lanes = Mux(is_fc, max(fi, 1), Pi)

        word = pr.o.payload.data
        start = regs.start
        start_stream = Signal(name="start_stream")
        lcn_start = Signal(name="lcn_start")               # an LCN sweep's start pulse
        stream_busy = Signal(name="stream_busy")
        w_done = Signal(name="weights_done")
        bias_pending = Signal(name="bias_pending")
        fault = Signal(name="fault")
        m.d.comb += fault.eq(Cat(*[w.error for w in writers]).any() | Cat(*[r.error for r in readers]).any()
                             | conv.err)

        # up (isa.check_up): OP_CONV reads its input upsampled by 2**up, the upsampled map
        # within ROW_COL_BITS rows and columns (v << up fits iff v's top `up` bits are 0);
        # OP_FC (and OP_LCN, below) need up = 0
        def fits_up(v):
            return Cat(*[~v[ROW_COL_BITS - u:].any() for u in range(1 << len(R.up))]).bit_select(R.up, 1)

        up_ok = Signal(name="up_ok")
        m.d.comb += up_ok.eq(Mux(R.op == isa.OP_CONV, fits_up(R.in_h) & fits_up(R.in_w), R.up == 0))

        with m.FSM(name="seq"):
            with m.State("IDLE"):
                with m.If(start):
                    m.d.sync += [running.eq(1), done.eq(0), error.eq(0), cycles.eq(0), records.eq(0),
                                 rec_idx.eq(regs.sched_addr), table_ok.eq(0), rec_start.eq(1)]
                    m.next = "FETCH_CMD"
            with m.State("FETCH_CMD"):
                command_state(m, pr, k, rec_idx, RECORD_WORDS, "FETCH")
            with m.State("FETCH"):
                m.d.comb += pr.o.ready.eq(1)
                with m.If(pr.o.valid):
                    m.d.sync += [raw.eq(Cat(raw[WORD_BITS:], word)), k.eq(k + 1)]
                    with m.If(k == RECORD_WORDS - 1):
                        m.next = "DECODE"
            with m.State("DECODE"):
                m.d.sync += [
                    is_fc.eq(R.op == isa.OP_FC),
                    is_lcn.eq(R.op == isa.OP_LCN),
                    lcn_b.eq(0),
                    kk.eq(R.kernel * R.kernel),
                    wp.eq((R.in_w << R.up) + 2 * R.pad),        # the upsampled map's
                    conv_rows.eq(isa.conv_rows(R.rows, R.pool_k, R.pool_s)),
                    rs0.eq(R.row0 * R.pool_s * R.stride),
                    map_in.eq(R.in_h * R.in_w),
                    map_out.eq(R.out_h * R.out_w),
                    pixels.eq(R.rows * R.out_w),
                    n_kk.eq(R.n_in * R.kernel * R.kernel),
                    ld.eq(isa.fc_ld(R.n_out)),
                    records.eq(records + 1),
                ]
                m.d.sync += [b.eq(0) for b in bias]
                with m.If(R.op == isa.OP_END):
                    m.next = "END"
                with m.Elif(R.op == isa.OP_NOP):
                    m.next = "NEXT"
                with m.Elif(((R.op == isa.OP_CONV) | ((R.op == isa.OP_FC) & has_fc)) & (R.n_in != 0)
                            & (R.n_out != 0) & (R.rows != 0) & up_ok):
                    m.next = "DERIVE"
                if CL:
                    with m.Elif((R.op == isa.OP_LCN) & (R.up == 0) & (R.in_c != 0) & (R.in_c <= CL)
                                & (R.kernel != 0) & (R.kernel <= hw.lcn_kmax)
                                & (R.in_w != 0) & (R.in_w <= hw.max_width)
                                & (R.in_h != 0) & (R.in_h <= lcn_max_rows(hw))):
                        m.next = "LCN_SQRT_CMD"
                with m.Else():
                    m.next = "ERROR"
            if CL:
                lcn_states(m, hw, R, pr, word, k, kk, lcn, lw, map_in, lcn_b, lcn_base, groups,
                           lcn_start, stream_busy, writers_idle, regs)
            with m.State("DERIVE"):
                m.d.sync += [
                    r_in.eq(isa.in_rows(conv_rows, R.kernel, R.stride)),
                    out_base.eq(R.out_addr + R.o0 * map_out + R.row0 * R.out_w),
                    bias_addr.eq(R.w_addr + Mux(is_fc, R.n_in * ld, R.n_out * n_kk)),
                    ld_beats.eq(ld >> (dw // WORD_BITS).bit_length() - 1),
                ]
                with m.If(is_fc):
                    m.d.sync += rs0.eq(R.row0)
                # the band's convolution width (wp - K) // stride + 1, one quotient bit a cycle
                m.d.comb += [div.start.eq(1), div.num.eq(wp - R.kernel), div.den.eq(Mux(R.stride == 0, 1, R.stride))]
                m.next = "DIVIDE"
            with m.State("DIVIDE"):
                with m.If(div.done):
                    m.d.sync += conv_w.eq(div.quotient + 1)
                    with m.If((R.act == isa.ACT_PWL) & ~(table_ok & (table_id == R.pwl_id))):
                        m.next = "TABLE_CMD"
                    with m.Else():
                        m.next = "LIST_CMD"
            with m.State("TABLE_CMD"):
                command_state(m, pr, k, regs.image_addr + R.pwl_id * isa.TABLE_WORDS, isa.TABLE_WORDS, "TABLE",
                              table_ok.eq(0))
            with m.State("TABLE"):
                m.d.comb += [pr.o.ready.eq(1), pw.table.addr.eq(k), pw.table.data.eq(word), pw.table.en.eq(pr.o.valid)]
                with m.If(pr.o.valid):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == isa.TABLE_WORDS - 1):
                        m.d.sync += [table_ok.eq(1), table_id.eq(R.pwl_id)]
                        m.next = "LIST_CMD"
            with m.State("LIST_CMD"):
                command_state(m, pr, k, R.list_addr, R.n_in, "LIST", groups.eq(0), lane_ctr.eq(0))
            with m.State("LIST"):
                m.d.comb += [pr.o.ready.eq(1), lw.addr.eq(k), lw.data.eq(R.in_addr + word * map_in),
                             lw.en.eq(pr.o.valid & (k < hw.list_words))]
                first = Mux(k == 0, word, list_first)
                contig = Signal(name="list_contig_next")
                m.d.comb += contig.eq(Mux(k == 0, 1, list_contig & (word == first + k)))
                with m.If(pr.o.valid):
                    m.d.sync += [k.eq(k + 1), list_contig.eq(contig)]
                    with m.If(k == 0):
                        m.d.sync += [list_first.eq(word), list_base0.eq(lw.data)]
                    with m.If(k == L_lanes):
                        m.d.sync += list_step.eq(lw.data - list_base0)
                    with m.If(lane_ctr == L_lanes - 1):
                        m.d.sync += [lane_ctr.eq(0), groups.eq(groups + 1)]
                    with m.Else():
                        m.d.sync += lane_ctr.eq(lane_ctr + 1)
                    with m.If(k == R.n_in - 1):
                        with m.If((R.n_in > hw.list_words) & ~contig):
                            m.next = "ERROR"               # the list memory cannot hold it
                        with m.Else():
                            m.next = "BIAS_CMD"
            with m.State("BIAS_CMD"):
                with m.If(lane_ctr != 0):                  # a last, partly filled group
                    m.d.sync += [groups.eq(groups + 1), lane_ctr.eq(0)]
                command_state(m, pr, k, bias_addr, 2 * R.n_out, "BIAS")
            with m.State("BIAS"):
                m.d.comb += pr.o.ready.eq(1)
                with m.If(pr.o.valid):
                    m.d.sync += k.eq(k + 1)
                    for o in range(NL):
                        with m.If(k[1:] == o):
                            with m.If(k[0]):
                                m.d.sync += bias[o][WORD_BITS:].eq(word)
                            with m.Else():
                                m.d.sync += bias[o][:WORD_BITS].eq(word)
                    with m.If(k == 2 * R.n_out - 1):
                        m.next = "START"
            with m.State("START"):
                m.d.comb += start_stream.eq(1)
                m.d.sync += bias_pending.eq(1)
                m.next = "STREAM"
            with m.State("STREAM"):
                with m.If(~stream_busy & w_done & ~bias_pending):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(writers_idle):
                    m.next = "NEXT"
            with m.State("NEXT"):
                m.d.sync += [rec_idx.eq(rec_idx + RECORD_WORDS), rec_start.eq(1)]
                m.next = "FETCH_CMD"
            with m.State("END"):
                with m.If(writers_idle):
                    m.d.sync += [running.eq(0), done.eq(1)]
                    m.next = "IDLE"
            with m.State("ERROR"):
                m.d.sync += [running.eq(0), done.eq(1), error.eq(1)]
                m.next = "IDLE"
        with m.If(fault & running):
            m.d.sync += [running.eq(0), done.eq(1), error.eq(1)]
            # the FSM is sent back by a reset of the run: the host must reset after an error

        # ---- the datapath: feeders -> engines -> pointwise -> pool -> row writer ----------------
        blocks = SimpleNamespace(pr=pr, mains=mains, pres=pres, conv=conv, fc=fc, pw=pw, pool=pool, lcn=lcn, rw=rw)
        band = SimpleNamespace(R=R, is_fc=is_fc, is_lcn=is_lcn, lcn_b=lcn_b, start_stream=start_stream,
                               lcn_start=lcn_start, stream_busy=stream_busy, w_done=w_done, bias=bias,
                               bias_pending=bias_pending, groups=groups, list_contig=list_contig,
                               list_step=list_step, rs0=rs0, r_in=r_in, wp=wp, conv_w=conv_w, kk=kk, n_kk=n_kk,
                               ld=ld, ld_beats=ld_beats, pixels=pixels, map_in=map_in, map_out=map_out,
                               out_base=out_base, L_lanes=L_lanes)
        connect_datapath(m, hw, dw, blocks, band)
        return m

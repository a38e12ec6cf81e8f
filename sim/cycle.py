r"""The cycle-level model: how many clock cycles the accelerator of :mod:`convc.hdl.accel`
takes to run a compiled :class:`~convc.compiler.program.Program`, record by record.

It is exact *accounting*, not a cycle-by-cycle simulation: every record is split into
the sequencer's phases (the contract in ``hdl/accel.py``'s docstring), each phase's
length comes from the engines' own timing (their ``latency`` properties and
:meth:`ConvEngine.band_cycles <convc.hdl.conv.ConvEngine.band_cycles>`) and from a
memory timing model (:class:`MemoryTiming`), and the output side is a small per-row
event recurrence.  A 3x240x320 scene-parsing frame takes well under a second.

API::

    rep = simulate(program, MemoryTiming.board(program.hw))   # or MemoryTiming.axi_ram()
    rep.cycles, rep.ms_per_frame, rep.mac_utilization
    rep.records   # RecordTiming: name, op, cycles, phases, bound, words read/written, MACs
    rep.layers    # LayerTiming: cycles, ms, MACs, utilization, bytes, bound, compiler estimate
    rep.to_json(), rep.text()

The pieces live in three modules: the memory's timing (:class:`MemoryTiming`, its
measured and assumed figures, the memory ports' published timing) in
:mod:`convc.sim.memtiming`; the results (:class:`RecordTiming`, :class:`LayerTiming`,
:class:`CycleReport`, their text and JSON) in :mod:`convc.sim.cycle_results`; the model
itself (:func:`simulate`, :func:`run_cycles`, the per-op accounting) here.

``convc simulate COMPILED|MODEL.npz [--memory board|axi-ram] [--records] [--json]``
(:mod:`convc.cli`) prints ``rep.text()`` or ``rep.to_json()``.

Per record (no two records overlap; the sequencer starts the next FETCH when the
previous record has ended)
------------------------------------------------------------------------------------
A *read phase* of ``n`` words on the parameter reader costs
``Accelerator.PHASE_GAP + mem.read_latency + n`` cycles (command issue, the reader's
command-to-first-word latency, then one word a cycle)::

    FETCH   read phase of isa.RECORD_BYTES/2 = 32 words, + Accelerator.DECODE_CYCLES
    TABLE   CONV/FC with act == ACT_PWL whose pwl_id is not the table loaded since start:
            read phase of isa.TABLE_WORDS words (LCN: its sqrt and 1/x tables, always)
    LIST    read phase of n_in words            (LCN: WINDOW, the 2K words of R and Q)
    BIAS    read phase of 2 * n_out words
    STREAM  Accelerator.PHASE_GAP + mem.read_latency (the weight reader and the map feeders
            start together, so their first words arrive together), then the engine's
            timeline (below), stretched by the row writer's back-pressure
    DRAIN   after the last output row is complete: the row writer's last rows, then the
            memory writer's last burst and its response (``mem.write_drain``)

Each record is also bounded below by the words it moves over the memory's sustained
bandwidth: ``cycles >= ceil(words_read + words_written) / mem.words_per_cycle``; the
streaming part alone likewise (``BANDWIDTH`` phase: the extra, if any).

OP_CONV streaming
    ``G = ceil(n_in / in_lanes)``; the band's input rows
    ``R = (conv_rows - 1) * stride + K`` with ``conv_rows = (rows - 1) * pool_s + pool_k``
    (:func:`~convc.compiler.isa.in_rows`, :func:`~convc.compiler.isa.conv_rows`)
    (the golden model's band: input rows ``row0*pool_s*stride - pad ..`` plus ``R``; rows
    outside the map are padding the feeders insert, not read), ``Wp = in_w + 2*pad``.
    A record with ``up != 0`` reads its input upsampled by ``2**up``: ``R``, ``Wp`` and the
    band's rows are those of the upsampled ``(in_h << up) x (in_w << up)`` map (``Wp =
    (in_w << up) + 2*pad``), and each of its rows inside the map is one read command of
    the ``in_w`` words of stored row ``y >> up`` (read again for each copy); the feeders
    still send a pixel a cycle (each word ``2**up`` times), so the engine's time is that
    of the plain band of the upsampled size.
    The engine's time is exactly ``ConvEngine(hw).band_cycles(K, Wp, R, G,
    preload=True, stride)``.  From it the model places every conv output of the last
    group (pixel time + ``ConvEngine.latency``), then ``PointwiseEngine.latency``, then
    ``PoolEngine.latency``.  The pooling engine holds the last output of each pooled row
    until the next row's first output (or the frame's end) arrives (``hdl/pool.py``), so
    row ``r`` is complete one cycle before row ``r+1`` starts.
OP_FC streaming (followed burst by burst: the memory loop sets its pace)
    ``G = ceil(n_in / fc_in_lanes)``, ``P = rows * out_w`` pixels.  Per group the
    parameter reader reads the group's weights as one command (one aligned block of
    ``lanes * isa.fc_ld(n_out)`` words, wide mode: a beat a cycle into the matrix, from
    the cycle the previous matrix is handed over), and each lane's map feeder ``rows``
    commands of ``in_w`` words (one a cycle; its list lookup, LOOK and BASE before the
    first group, ``MapFeeder.GROUP_CYCLES`` before each later one).  A complete matrix goes
    to the engine's one-deep "next" buffer once the previous group has started (its
    first element taken: double buffering); the engine takes elements one a cycle, a
    group's first the cycle after its matrix, each once all lanes' words are there
    (``READER_R_TO_WORD`` after their R beat; zeros for lanes without a map).  The pace
    comes from the reads (``_fc_stream``, :mod:`convc.sim.cycle_fcstream`): commands are cut into bursts at
    ``max_burst``-aligned beats (a weight block that straddles a boundary is two bursts);
    each reader has ``READER_OUTSTANDING`` bursts in flight and a slot frees only when
    its burst's last word is taken (the next AR ``READER_FREE_TO_AR`` cycles later), so
    every reader is a latency loop through the engine; the readers' ARs go out one a
    cycle (round-robin) onto one read channel that serves bursts in AR order, the first
    beat ``mem.ar_to_r`` after the AR at the earliest, one beat a cycle at most and
    ``mem.beats_per_cycle`` on average (the native harness's token bucket), so a
    feeder's one-beat burst also waits for the weight beats queued before it.  Outputs
    ``FCEngine.latency + PointwiseEngine.latency`` after an element's intake.
OP_LCN (hdl/accel.py's LCN states; calibrated on the RTL like the rest): the two tables
    and the window's ``2K`` taps are read phases; then each sweep lists its map bases
    (``lcn_lanes`` cycles, no read), pulses its start (``Accelerator.LCN_GO_CYCLES``), and its
    reading feeders' first words come ``Accelerator.LCN_FEEDER_STAGGER`` cycles apart after
    the read latency.  Sweep A streams the ``in_c`` maps (one feeder a map, one pixel
    of all maps a cycle; ``(H+2hp)(W+hp)`` elements with the padding, first output after
    ``2D + LCNEngine.latency_a``) and writes ``v`` and ``s`` to scratch (``in_c + 1``
    commands of ``W`` words a row); sweep B starts when the writer is idle (reads must
    follow the writes), streams ``(v, s)`` back (``in_c + 1`` feeders) and writes
    ``y`` (``in_c`` commands a row), ``LCNEngine.latency_b``.

The row writer (output side of every engine)
    Finished rows go into a two-row buffer (``RowWriter.BUFFER_ROWS``); each finished row is
    written as ``n_out`` commands of ``out_w`` words (a vector output: one command of
    ``n_out`` words), one word a cycle, ``mem.write_cmd_cycles`` a command, after
    ``WRITER_CMD_TO_WORD`` cycles.  When row ``r`` starts while its buffer still holds
    row ``r-2`` (not yet written), every engine stalls until it is free, so all later
    events shift: the recurrence is ::

        start[r] = A[r] + D;  if start[r] < wend[r-2]: D += wend[r-2] - start[r]
        wstart[r] = max(C[r] + D + WRITER_CMD_TO_WORD, wend[r-1])
        wend[r] = wstart[r] + row_cost                  (row_cost: its commands back to back)

    (``A``/``C``: when row ``r``'s first element reaches the buffer and when the row is
    complete, without stalls; ``D``: the stall so far).  A record whose last group
    produces rows faster than ``row_cost`` is thus bounded by the writer.  The record
    ends when the writers are idle: after the last row's words, every port that writes
    it (a convolution's ``ceil(n_out / Q)``) sends its final burst at once, and those
    bursts queue on the one write channel (the first at once, the others at the
    memory's beat rate), then the write latency.

Constants: whose they are, and which are measured, derived or assumed
--------------------------------------------------------------------
The model holds only the external memory's figures; every other figure is PUBLISHED
BY THE PART THAT OWNS IT and read here, so a change to a part's timing moves the
model with it (and a part whose RTL drifts from its published figure fails the RTL
tests, which hold the model within 1% per record):

* the engines (``ConvEngine.latency`` and :meth:`ConvEngine.band_schedule`, when each
  conv output of a band leaves; ``PointwiseEngine``, ``PoolEngine``, ``FCEngine``,
  ``LCNEngine`` latencies): derived from their pipelines, ``band_schedule`` checked
  against the engine's simulation within 3 cycles (``tests/hdl/test_conv.py``);
* the memory ports, ``MemReader.CMD_TO_AR``, ``R_TO_WORD``, ``FREE_TO_AR`` and
  ``MemWriter.CMD_TO_WORD``, ``WORD_TO_AW``, ``B_TO_IDLE`` (hdl/memport.py, measured in
  simulation; ``FREE_TO_AR`` read off the accelerator's waveform), and
  ``memport.DEFAULT_OUTSTANDING``;
* the sequencer, ``Accelerator.START_CYCLES``, ``DECODE_CYCLES``, ``PHASE_GAP``,
  ``DONE_CYCLES``, ``LCN_GO_CYCLES``, ``LCN_FEEDER_STAGGER``, :meth:`Accelerator.lcn_list_cycles`;
  the row writer, ``RowWriter.BUFFER_ROWS``, ``BUFFER_LATENCY``, ``CMD_GAP``; the map
  feeder, ``MapFeeder.GROUP_CYCLES``: calibrated against the accelerator RTL's CYCLES
  register and its sequencer-state trace (LeNet, three small nets, LCN nets of 1..4
  maps and windows 3..9, the reduced and the full sceneparse: within 0.5% per layer).
  The model reads them off the parts (``Accelerator.PHASE_GAP`` ...); the memory ports'
  are named ``READER_*`` and ``WRITER_*`` in :mod:`convc.sim.memtiming`.
* the external memory's figures, MEASURED for the testbench memory and ASSUMED, TO
  CALIBRATE on the board (DDR3): :mod:`convc.sim.memtiming`.
* Simplifications: the conv weight commands (``K*K`` words each) are taken to stream
  back to back (true when ``K*K >= read_latency / READER_OUTSTANDING``); memory is one
  shared bandwidth figure (reads and writes together); outside OP_FC streams the read
  arbiter and the contention between readers are not modelled beyond that bound (an
  OP_FC stream follows its readers on the read channel burst by burst, without the row
  writer's beats, which share the board's channel but are few while it reads).

MACs and utilization follow the compiler's report: a layer's MACs are its whole conv
output's (``out_c * conv_h * conv_w * fan_in * K * K``; band-edge rows computed twice
count once), an FC record's ``n_out * n_in * P``; ``mac_utilization`` = conv and FC
MACs / (cycles * ``hw.macs_per_cycle``).  LCN MACs are reported but not in the
utilization (its DSPs are not in ``macs_per_cycle``), as in the compiler's report.
"""

from __future__ import annotations

import numpy as np

from convc.compiler import isa
from convc.compiler.hwconfig import HardwareConfig
from convc.compiler.isa import RECORD_WORDS
from convc.errors import ConvcError
from convc.hdl.accel import Accelerator, lcn_lanes, writer_count
from convc.hdl.conv import ConvEngine
from convc.hdl.fc import FCEngine
from convc.hdl.lcn import LCNEngine
from convc.hdl.pointwise import PointwiseEngine
from convc.hdl.pool import PoolEngine
from convc.hdl.rowwriter import RowWriter

from .cycle_fcstream import _fc_stream
from .cycle_results import CycleReport, LayerTiming, RecordTiming
from .cycle_memory import RowOut, Traffic, fetch_cycles, read_phase, row_writer
from .memtiming import MemoryTiming, _ceil

__all__ = ["simulate", "run_cycles"]


# =========================================================================================
# the model
# =========================================================================================
def _quiet(engine):
    """An engine built only to read its timing properties is never elaborated: silence
    Amaranth's ``UnusedElaboratable`` warning for it."""
    engine._MustUse__silence = True
    return engine


class _Engines:
    """The engines' timing figures for ``hw`` (constructed once: cheap)."""

    def __init__(self, hw: HardwareConfig):
        self.hw = hw
        try:
            self.conv = _quiet(ConvEngine(hw))
        except (ValueError, TypeError) as exc:
            raise ConvcError(f"hardware configuration: the convolution engine cannot be built ({exc})") from None
        self.pw_latency = _quiet(PointwiseEngine(hw.bits)).latency
        # the pooling latency does not depend on the lane count (at most 64 lanes an engine)
        self.pool_latency = _quiet(PoolEngine(lanes=min(hw.out_lanes, 64), bits=hw.bits, kmax=hw.pool_kmax,
                                              max_width=hw.max_width)).latency
        self._fc = None
        self._lcn = None
        # the row writer's ports: port p writes maps p*Q .. p*Q+Q-1 of each row
        self.writers = writer_count(hw)
        self.lcn_lanes = lcn_lanes(hw)

    def maps_per_port(self, n_out: int) -> int:
        """The busiest write port's maps (hdl/rowwriter.py: ceil(n_out / ports))."""
        return -(-n_out // self.writers)

    @property
    def fc(self):
        if self._fc is None:
            hw = self.hw
            self._fc = _quiet(FCEngine(in_lanes=hw.fc_in_lanes, out_lanes=hw.fc_out_lanes, bits=hw.bits,
                                       psum_words=hw.fc_psum_words))
        return self._fc

    def lcn(self, channels: int):
        if self._lcn is None:
            hw = self.hw
            self._lcn = _quiet(LCNEngine(channels=max(channels, 1), bits=hw.bits, kmax=hw.lcn_kmax,
                                         max_width=hw.max_width))
        return self._lcn


def _useful_conv_macs(ins: isa.Instr) -> int:
    """The compiler's MAC count, per record: the conv rows this band adds to the layer
    (rows shared with the previous band count once; the last band takes the layer's
    trailing conv rows), times conv_w, n_out, n_in, K*K."""
    pk, ps = ins.pool_k, ins.pool_s
    lo = ins.row0 * ps
    if ins.row0 > 0:
        lo = max(lo, isa.conv_rows(ins.row0, pk, ps))   # rows the previous band computed
    hi = isa.conv_rows(ins.row0 + ins.rows, pk, ps)
    if ins.row0 + ins.rows >= ins.out_h:
        hi = ins.conv_h
    return max(hi - lo, 0) * ins.conv_w * ins.n_out * ins.n_in * ins.kernel * ins.kernel


def _band_input_rows(ins: isa.Instr) -> tuple[int, int]:
    """(R, rows of the band inside the map): the band's input rows start at
    ``row0 * pool_s * stride - pad`` (sim/golden_conv.py's ``_band``), rows of the upsampled
    map (``up_h`` rows; each one a read command of ``in_w`` words)."""
    R = isa.in_rows(isa.conv_rows(ins.rows, ins.pool_k, ins.pool_s), ins.kernel, ins.stride)
    y0 = ins.row0 * ins.pool_s * ins.stride - ins.pad
    inside = max(0, min(y0 + R, ins.up_h) - max(y0, 0))
    return R, inside


class _Model:
    def __init__(self, hw: HardwareConfig, mem: MemoryTiming, program=None):
        self.hw, self.mem = hw, mem
        self.eng = _Engines(hw)
        self.table_loaded: int | None = None
        self.traffic = Traffic(program, mem)

    # ---- common pieces -------------------------------------------------------------
    def _setup(self, ins: isa.Instr, phases: dict, bias_addr: int) -> tuple[int, int]:
        """FETCH, TABLE, LIST, BIAS of CONV/FC records; returns the words and beats read."""
        mem = self.mem
        phases["fetch"] = fetch_cycles(mem) + Accelerator.DIVIDE_CYCLES
        words = RECORD_WORDS
        phases["table"] = 0
        table = ins.act == isa.ACT_PWL and ins.pwl_id != self.table_loaded
        if table:
            phases["table"] = read_phase(isa.TABLE_WORDS, mem)
            self.table_loaded = ins.pwl_id
            words += isa.TABLE_WORDS
        phases["list"] = read_phase(ins.n_in, mem)
        phases["bias"] = read_phase(2 * ins.n_out, mem)
        return words + ins.n_in + 2 * ins.n_out, self.traffic.setup(ins, table, bias_addr)

    def _finish(self, k: int, name: str, ins: isa.Instr, start: int, phases: dict, setup: tuple,
                stream_words_read: int, words_written: int, beats: tuple, engine_end: float, out: RowOut,
                compute: int, macs: int, label: str, zeros_first: int = 0) -> RecordTiming:
        """The streaming phase's end (engine, row writer, drain), the bandwidth bounds,
        the label; ``engine_end``/``out`` are relative to the engine's start (after
        the stream's first read latency, less the padding pixels ``zeros_first`` the
        feeders send before their first word from memory).  ``setup``: the words and
        beats the set-up phases read; ``beats``: the stream's beats read and written."""
        setup_words, setup_beats = setup
        mem = self.mem
        D, w_last = row_writer(out, mem)
        lead = Accelerator.PHASE_GAP + max(0, mem.read_latency - zeros_first)
        engine_done = engine_end + D
        writer_done = w_last + mem.write_drain(out.words, out.ports)
        phases["stream"] = _ceil(lead + engine_done)
        phases["drain"] = max(0, _ceil(lead + max(engine_done, writer_done)) - phases["stream"])
        stream_total = phases["stream"] + phases["drain"]
        stream_mem = mem.beat_cycles(beats[0], beats[1])
        phases["bandwidth"] = max(0, stream_mem - stream_total)
        words_read = setup_words + stream_words_read
        memory_cycles = mem.beat_cycles(setup_beats + beats[0], beats[1])
        cycles = sum(phases.values())
        if memory_cycles > cycles:
            phases["bandwidth"] += memory_cycles - cycles
            cycles = memory_cycles
        setup = sum(v for p, v in phases.items() if p in ("fetch", "table", "list", "bias"))
        if phases["bandwidth"] > 0:
            bound = "memory"
        elif D > 0:
            bound = "writer"
        elif setup > stream_total:
            bound = "setup"
        else:
            bound = label
        return RecordTiming(k, name, isa.OP_NAMES[ins.op], start, cycles, phases, compute, _ceil(D),
                            memory_cycles, bound, words_read, words_written, macs)

    # ---- OP_CONV ---------------------------------------------------------------------
    def conv(self, k: int, name: str, ins: isa.Instr, start: int) -> RecordTiming:
        hw, eng, tr = self.hw, self.eng, self.traffic
        phases: dict[str, int] = {}
        K, S, ps, pk = ins.kernel, ins.stride, ins.pool_s, ins.pool_k
        setup = self._setup(ins, phases, ins.w_addr + isa.bias_offset(ins.op, ins.n_in, ins.n_out, K))
        G = -(-ins.n_in // hw.in_lanes)
        Wp = ins.up_w + 2 * ins.pad          # the upsampled map's padded row (up = 0: in_w + 2 pad)
        R, inside = _band_input_rows(ins)
        conv_rows = isa.conv_rows(ins.rows, pk, ps)
        conv_w = (Wp - K) // S + 1
        try:
            eng.conv.check_band(K, S, Wp, R, max(G, 1), ins.acc_shift, ins.bias_shift)
        except ValueError as exc:
            raise ConvcError(f"record {k} ({name}): {exc}") from None
        # padding rows at the band's top go out before the first read returns (zeros_first,
        # below): the band then starts before the weights' first word, which comes with
        # the read latency like any other
        y0 = ins.row0 * ps * S - ins.pad
        zeros_first = (min(-y0, R) * Wp + ins.pad) if y0 < 0 else ins.pad
        sched = eng.conv.band_schedule(K, Wp, R, max(G, 1), preload=True, stride=S,
                                       weight_delay=min(self.mem.read_latency, zeros_first))
        band = sched.cycles
        post = eng.pw_latency + eng.pool_latency + RowWriter.BUFFER_LATENCY

        def t_out(y: int, x: int) -> int:      # conv output (y, x) of the band, into the row buffer
            return sched.output(y, x) + post

        first, done = [], []
        for r in range(ins.rows):
            first.append(t_out(r * ps + pk - 1, pk - 1))
            done.append(t_out(r * ps + pk - 1, (ins.out_w - 1) * ps + pk - 1))
        for r in range(ins.rows - 1):                # a row's last output waits for the next row
            done[r] = max(done[r], first[r + 1] - 1)
        done[-1] = max(done[-1], t_out(conv_rows - 1, conv_w - 1) - 1)
        w_beats = tr.written(ins, eng.writers)
        q = eng.maps_per_port(ins.n_out)
        out = RowOut(first, done, q, ins.out_w,                              # the busiest port
                   w_beats / max(ins.rows, 1), ports=-(-ins.n_out // q))
        weights = isa.bias_offset(ins.op, ins.n_in, ins.n_out, K)
        stream_read = weights + ins.n_in * inside * ins.in_w
        written = ins.n_out * ins.rows * ins.out_w
        # weights: one command of K*K words per (output, input) map pair
        kk = K * K
        o = np.arange(ins.n_out, dtype=np.int64)[:, None]
        j = np.arange(ins.n_in, dtype=np.int64)[None, :]
        beats = (tr.span(ins.w_addr + isa.weight_offset(ins.op, ins.n_in, ins.n_out, K, o, j), kk)
                 + tr.rows(ins, y0, R), w_beats)
        return self._finish(k, name, ins, start, phases, setup, stream_read, written, beats, band, out,
                            band, _useful_conv_macs(ins), "compute", zeros_first)

    # ---- OP_FC -----------------------------------------------------------------------
    def fc_floor(self, k: int, name: str, ins: isa.Instr, start: int) -> RecordTiming:
        """A lower bound of :meth:`fc`: the set-up phases (which also track the loaded
        table), then one element a cycle per input group, or the record's beats on the
        memory (:meth:`_finish` never goes below either)."""
        hw, tr = self.hw, self.traffic
        if not hw.has_fc:
            raise ConvcError(f"record {k} ({name}): OP_FC but the configuration has no fully connected engine")
        phases: dict[str, int] = {}
        _, setup_beats = self._setup(ins, phases, ins.w_addr + isa.bias_offset(ins.op, ins.n_in, ins.n_out, ins.kernel))
        IL = hw.fc_in_lanes
        G = max(-(-ins.n_in // IL), 1)
        phases["stream"] = ins.rows * ins.out_w * G
        r_beats = tr.fc_read(ins, IL)
        memory_cycles = self.mem.beat_cycles(setup_beats + r_beats, tr.written(ins, self.eng.writers))
        cycles = max(sum(phases.values()), memory_cycles)
        return RecordTiming(k, name, "fc", start, cycles, phases, phases["stream"], 0, memory_cycles,
                            "floor", 0, 0, 0)

    def fc(self, k: int, name: str, ins: isa.Instr, start: int) -> RecordTiming:
        hw, mem, eng = self.hw, self.mem, self.eng
        if not hw.has_fc:
            raise ConvcError(f"record {k} ({name}): OP_FC but the configuration has no fully connected engine")
        phases: dict[str, int] = {}
        weights = isa.bias_offset(ins.op, ins.n_in, ins.n_out, ins.kernel)   # words, then the biases
        setup = self._setup(ins, phases, ins.w_addr + weights)
        IL = hw.fc_in_lanes
        G = max(-(-ins.n_in // IL), 1)
        P = ins.rows * ins.out_w
        rl = mem.read_latency
        tr = self.traffic
        # the stream burst by burst (_fc_stream): E = the last group's elements' intake, from
        # the weight reader's first command; element p's output follows its intake
        E, waits = _fc_stream(ins, hw, mem, tr)
        r_beats = tr.fc_read(ins, IL)
        s_end = float(E[-1]) + 1
        lat = eng.fc.latency + eng.pw_latency + RowWriter.BUFFER_LATENCY

        def t_px(p: int) -> float:
            return float(E[p]) + 1 + lat

        vector = ins.out_h == 1 and ins.out_w == 1
        first = [t_px(r * ins.out_w) for r in range(ins.rows)]
        done = [t_px((r + 1) * ins.out_w - 1) for r in range(ins.rows)]
        q = eng.maps_per_port(ins.n_out)                  # the busiest port's maps
        w_beats = tr.written(ins, eng.writers)
        row_beats = w_beats / max(ins.rows, 1)
        out = RowOut(first, done, 1, q, row_beats) if vector else RowOut(first, done, q, ins.out_w, row_beats)
        engine_end = s_end + eng.fc.latency
        compute = _ceil(engine_end - rl)
        # waiting on the reads (weights and pixels) longer than computing: read-bound
        label = "weights" if waits > G * P else "compute"
        stream_read = weights + ins.n_in * ins.rows * ins.in_w
        written = ins.n_out * P
        macs = ins.n_out * ins.n_in * P
        beats = (r_beats, w_beats)
        return self._finish(k, name, ins, start, phases, setup, stream_read, written, beats,
                            engine_end - rl, out.shifted(-rl), compute, macs, label)

    # ---- OP_LCN ----------------------------------------------------------------------------
    def lcn(self, k: int, name: str, ins: isa.Instr, start: int) -> RecordTiming:
        hw, mem = self.hw, self.mem
        if not hw.lcn_kmax:
            raise ConvcError(f"record {k} ({name}): OP_LCN but the configuration has no LCN engine")
        C, H, W, K = ins.in_c, ins.in_h, ins.in_w, ins.kernel
        eng = self.eng.lcn(hw.lcn_channels)
        hp = K - 1 - K // 2
        phases: dict[str, int] = {}
        phases["fetch"] = fetch_cycles(mem)
        phases["table"] = 2 * read_phase(isa.TABLE_WORDS, mem)
        phases["list"] = read_phase(2 * K, mem)          # the window's R and Q
        setup_words = RECORD_WORDS + 2 * isa.TABLE_WORDS + 2 * K
        rl = mem.read_latency
        # each sweep: its list of map bases (one a cycle, no read), the start pulse, then the
        # first words of its reading feeders, Accelerator.LCN_FEEDER_STAGGER apart (sweep A reads the
        # C maps, sweep B v of every engine map and s)
        go = Accelerator.lcn_list_cycles(hw) + Accelerator.LCN_GO_CYCLES + Accelerator.PHASE_GAP + rl
        lead_a = go + Accelerator.LCN_FEEDER_STAGGER * (C - 1)
        lead_b = go + Accelerator.LCN_FEEDER_STAGGER * (self.eng.lcn_lanes - 1)
        # sweep A: x in (C feeders), (v, s) out: C + 1 commands of W words a row
        Dw = hp * (W + hp) + hp
        a_first = [2 * Dw + eng.latency_a + r * (W + hp) + RowWriter.BUFFER_LATENCY for r in range(H)]
        a_done = [a + W - 1 for a in a_first]
        out_a = RowOut(a_first, a_done, -(-(C + 1) // self.eng.writers), W)
        Da, wa = row_writer(out_a, mem)
        a_engine = (H + 2 * hp) * (W + hp) + hp - 1 + eng.latency_a + Da
        sweep_a = lead_a + max(a_engine, wa + mem.write_drain(W))
        # sweep B: (v, s) in (C + 1 feeders), y out: C commands of W words a row
        b_first = [eng.latency_b + r * W + RowWriter.BUFFER_LATENCY for r in range(H)]
        b_done = [b + W - 1 for b in b_first]
        out_b = RowOut(b_first, b_done, -(-C // self.eng.writers), W)
        Db, wb = row_writer(out_b, mem)
        b_engine = H * W + eng.latency_b + Db
        sweep_b = lead_b + max(b_engine, wb + mem.write_drain(W))
        phases["sweep_a"] = _ceil(sweep_a)
        phases["sweep_b"] = _ceil(sweep_b)
        read = setup_words + C * H * W + (C + 1) * H * W
        written = (C + 1) * H * W + C * H * W
        row_beats = -(-W // mem.words_per_beat)             # rows taken as aligned
        memory_cycles = mem.beat_cycles(-(-setup_words // mem.words_per_beat) + (2 * C + 1) * H * row_beats,
                                        (2 * C + 1) * H * row_beats)
        cycles = sum(phases.values())
        phases["bandwidth"] = max(0, memory_cycles - cycles)
        cycles += phases["bandwidth"]
        compute = _ceil((H + 2 * hp) * (W + hp) + eng.latency_a + H * W + eng.latency_b)
        D = Da + Db
        bound = "memory" if phases["bandwidth"] else ("writer" if D > 0 else "compute")
        macs = 2 * H * W * K * K * C
        return RecordTiming(k, name, "lcn", start, cycles, phases, compute, _ceil(D), memory_cycles, bound,
                            read, written, macs)

    def end(self, k: int, name: str, ins: isa.Instr, start: int) -> RecordTiming:
        # DECODE goes straight to END (no DERIVE, no NEXT): one cycle less than the others
        phases = {"fetch": fetch_cycles(self.mem) - 1, "done": Accelerator.DONE_CYCLES}
        return RecordTiming(k, name, isa.OP_NAMES.get(ins.op, str(ins.op)), start, sum(phases.values()), phases,
                            0, 0, 0, "setup", RECORD_WORDS, 0, 0)


def _run(program, mem: MemoryTiming, fc_floor: bool = False) -> list[RecordTiming]:
    """Every record's timing, in order, up to and including OP_END (see :func:`run_cycles`
    for ``fc_floor``)."""
    hw = program.hw
    instrs, names = list(program.instrs), list(program.names)
    if len(names) != len(instrs):
        raise ConvcError(f"program: {len(instrs)} records but {len(names)} names")
    model = _Model(hw, mem, program)
    t = Accelerator.START_CYCLES
    records: list[RecordTiming] = []
    ended = False
    for k, (ins, name) in enumerate(zip(instrs, names)):
        try:
            isa.check_up(ins)            # only OP_CONV upsamples, within ROW_COL_BITS
        except ValueError as exc:
            raise ConvcError(f"record {k} ({name}): {exc}") from None
        if ins.op == isa.OP_CONV:
            rec = model.conv(k, name, ins, t)
        elif ins.op == isa.OP_FC:
            rec = model.fc_floor(k, name, ins, t) if fc_floor else model.fc(k, name, ins, t)
        elif ins.op == isa.OP_LCN:
            rec = model.lcn(k, name, ins, t)
        elif ins.op == isa.OP_END:
            rec = model.end(k, name, ins, t)
            ended = True
        elif ins.op == isa.OP_NOP:
            rec = RecordTiming(k, name, "nop", t, fetch_cycles(mem), {"fetch": fetch_cycles(mem)}, 0, 0, 0, "setup",
                               RECORD_WORDS, 0, 0)
        else:
            raise ConvcError(f"record {k} ({name}): unknown op {ins.op}")
        records.append(rec)
        t += rec.cycles
        if ended:
            break
    if not ended:
        raise ConvcError("program: the schedule has no OP_END record")
    return records


def run_cycles(program, memory: MemoryTiming | None = None, fc_floor: bool = False) -> int:
    """The cycles of one run (``simulate(program, memory).cycles``) without the report.

    With ``fc_floor`` each ``OP_FC`` record's stream (the costly part of the model: burst
    by burst) is replaced by its floor, one element a cycle per input group
    (``rows * out_w * ceil(n_in / fc_in_lanes)``) after the record's set-up phases, which
    the full model never goes below: a lower bound, for searches that prune
    (``compiler/passes/size.py``)."""
    records = _run(program, memory or MemoryTiming.board(program.hw), fc_floor)
    return Accelerator.START_CYCLES + sum(r.cycles for r in records)


def simulate(program, memory: MemoryTiming | None = None) -> CycleReport:
    """Cycles of one run of ``program`` (a :class:`~convc.compiler.program.Program`, or
    anything with ``hw``, ``instrs`` and ``names``) from start to done; ``memory``
    defaults to :meth:`MemoryTiming.board`."""
    hw = program.hw
    mem = memory or MemoryTiming.board(hw)
    records = _run(program, mem)
    cycles = Accelerator.START_CYCLES + sum(r.cycles for r in records)

    # per layer, in order of first appearance; the OP_END record and the start are overhead
    by_name: dict[str, list[RecordTiming]] = {}
    for rec in records:
        if rec.op in ("conv", "fc", "lcn"):
            by_name.setdefault(rec.name, []).append(rec)
    overhead = cycles - sum(r.cycles for rs in by_name.values() for r in rs)
    layers = [LayerTiming.of(lname, rs, hw) for lname, rs in by_name.items()]
    notes = []
    notes.append(f"memory: {mem.note}" if mem.note else f"memory: {mem.name}")
    return CycleReport(hw=hw, memory=mem, cycles=cycles, records=records, layers=layers,
                       overhead_cycles=overhead, notes=notes)


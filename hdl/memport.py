r"""Stream <-> AXI4 memory ports: :class:`MemReader` and :class:`MemWriter`.

Memory is :mod:`convc.compiler.isa`'s: 16-bit words, 32-bit word addresses.  Word ``a``
lives at byte address ``2*a`` (low byte first), so on a ``data_width``-bit bus a beat holds
``W = data_width // 16`` words and word ``a`` sits in bits ``16*(a % W) +: 16`` of beat
``a // W``.  AXI byte addresses are ``addr_width`` (32) bits: word addresses up to
``2**(addr_width-1) - 1`` (the top bit of a 32-bit word address is dropped).

Commands
--------
Both ports take a command stream with payload :func:`cmd_layout`: ``addr`` (32-bit word
address, low bits) and ``length`` (words, 21 bits: 0..2**20; a zero-length command is
consumed and does nothing: no words, no ``last``).  Any start address and length work;
the ports read/write whole beats and select/strobe the words inside them.

Bursts
------
A command becomes INCR bursts of at most ``max_burst`` beats (a power of two).  Every
burst stays inside one ``max_burst``-aligned block of beats, which is at most 4 KB, so
no burst crosses a 4 KB boundary (and an aligned command is cut into full ``max_burst``
bursts).  All bursts use one ID (``axi_id``), so the slave returns read data and write
responses in order: no reordering logic is needed.

:class:`MemReader` (read half of AXI4: ``m_axi`` has only AR and R)
    ``cmd`` -> AR bursts -> a beat FIFO (``max_burst * max_outstanding`` beats, block
    RAM) -> unpacker -> ``o``, a stream of :func:`word_layout` (``data`` 16 bits,
    ``first``/``last`` on the first/last word of each command; the same bit positions
    as ``pointwise.code_layout(16)``).  An AR is issued only when the FIFO has room
    reserved for all of its beats, so ``rready`` stays high (the read channel is never
    held by a slow consumer) and up to ``max_outstanding`` bursts are in flight.  Words
    leave in command order, one a cycle while data is buffered (also across beats,
    bursts and commands).
:class:`MemWriter` (write half of AXI4: AW, W, B)
    ``cmd`` + ``i`` (16-bit words, exactly ``length`` per command, in order) -> packer
    (beats with WSTRB for partial beats) -> a beat FIFO (``2 * max_burst`` beats).  A
    burst's AW is issued (and its W beats presented) only when all its beats are in the
    FIFO, so W goes out at one beat a cycle and never holds the bus waiting for data.  At
    most ``max_outstanding`` bursts await their B response.  ``idle`` is high when no
    command is pending or in progress and every burst has its B response.

Both flag ``error`` (sticky, cleared by ``clear_error`` or reset) on a SLVERR/DECERR
response.  Data of failed reads is passed on as returned.

Throughput: the stream side moves one 16-bit word a cycle, i.e. one beat every ``W``
cycles; the AXI side moves whole bursts at one beat a cycle (read data is accepted at
the slave's rate, writes are sent once buffered), so the rest of the bus time is free
for other masters.

Latency (measured in simulation)
--------------------------------
Reader: ARVALID rises 3 cycles after the command handshake; the first word is valid on
``o`` 2 cycles after the first R beat.  A command costs at least one burst, so a run of
commands shorter than (read latency / ``max_outstanding``) words exposes the latency;
longer commands stream without gaps.  Writer: words are accepted from 2 cycles after
the command handshake (back-to-back commands: no gap); AWVALID/WVALID rise 2 cycles
after the last word of a burst; ``idle`` rises the cycle after the last B.

Ordering: reads and writes travel on independent channels and are NOT ordered against
each other.  Read data written by a :class:`MemWriter` only after its ``idle`` is high.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from convc.compiler.engine_figures import READER_LUTS, WRITER_LUTS
from convc.compiler.isa import WORD_BITS

from . import axi
from .arith import check_param

__all__ = ["MemReader", "MemWriter", "cmd_layout", "word_layout", "beat_layout", "LENGTH_BITS", "MAX_LENGTH",
           "default_max_burst", "DEFAULT_OUTSTANDING"]

DEFAULT_OUTSTANDING = 4     # bursts in flight (reader) or awaiting B (writer), by default
LENGTH_BITS = 21
MAX_LENGTH = 1 << 20


def cmd_layout() -> data.StructLayout:
    """Command payload: ``addr`` (32-bit word address, low bits), ``length`` (words, 21
    bits, 0..2**20)."""
    return data.StructLayout({"addr": 32, "length": LENGTH_BITS})


def beat_layout(data_width: int) -> data.StructLayout:
    """Wide-mode reader output: ``data`` (a whole beat, word ``k`` in bits ``16k +: 16``),
    ``last`` (the command's last beat)."""
    return data.StructLayout({"data": data_width, "last": 1})


def word_layout() -> data.StructLayout:
    """Reader output payload: ``data`` (16 bits, low), ``first``, ``last``."""
    return data.StructLayout({"data": WORD_BITS, "first": 1, "last": 1})


def _max_burst_limit(data_width: int) -> int:
    return min(256, 4096 // (data_width // 8))


def default_max_burst(data_width: int) -> int:
    """Default burst size: 32 beats (1 KB at 256 bits, inside the 4 KB limit)."""
    return min(32, _max_burst_limit(data_width))


def _log2(n: int) -> int:
    return n.bit_length() - 1


def _check_common(owner, data_width, max_burst, max_outstanding, addr_width, id_width, axi_id):
    if data_width not in axi.DATA_WIDTHS:
        try:
            owner._MustUse__silence = True
        except AttributeError:
            pass
        raise ValueError(f"{type(owner).__name__}: data_width={data_width!r} not in {axi.DATA_WIDTHS}")
    hi = _max_burst_limit(data_width)
    if max_burst is None:
        max_burst = default_max_burst(data_width)
    check_param(owner, "max_burst", max_burst, 1, hi)
    if max_burst & (max_burst - 1):
        owner._MustUse__silence = True
        raise ValueError(f"{type(owner).__name__}: max_burst={max_burst} is not a power of two")
    check_param(owner, "max_outstanding", max_outstanding, 1, 64)
    check_param(owner, "addr_width", addr_width, 12, 64)
    check_param(owner, "id_width", id_width, 1, 8)
    check_param(owner, "axi_id", axi_id, 0, (1 << id_width) - 1)
    return max_burst


class _BurstSplitter(wiring.Component):
    """Commands -> bursts.  ``o`` payload: ``beat`` (beat address), ``alen`` (beats - 1),
    ``start``/``end`` (word offsets of the first word in the burst's first beat / the
    last word in its last beat), ``first``/``last`` (first/last burst of its command).
    ``o`` is registered; one burst a cycle, also across commands.  ``busy``: a command
    is being split (``o`` may still hold its last burst when ``busy`` falls)."""

    def __init__(self, words_per_beat: int, max_burst: int):
        self._W, self._mb = words_per_beat, max_burst
        lw = _log2(words_per_beat)
        self.burst_layout = data.StructLayout({
            "beat": 32 - lw, "alen": 8, "start": lw, "end": lw, "first": 1, "last": 1})
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout())),
            "o": Out(stream.Signature(self.burst_layout)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        W, mb = self._W, self._mb
        lw = _log2(W)
        busy = Signal()
        cur = Signal(32 - lw)                 # next beat to request
        left = Signal(LENGTH_BITS)            # beats still to request (>= 1 while busy)
        soff = Signal(lw)
        eoff = Signal(lw)
        first = Signal()
        m.d.comb += self.busy.eq(busy)

        # the next burst of the current command
        room = Signal(range(mb + 1))
        m.d.comb += room.eq(mb - (cur[:_log2(mb)] if mb > 1 else 0))
        is_last = Signal()
        blen = Signal(range(mb + 1))
        m.d.comb += [is_last.eq(left <= room), blen.eq(Mux(is_last, left, room))]

        slot = ~self.o.valid | self.o.ready
        go = busy & slot
        with m.If(go):
            m.d.sync += [
                self.o.valid.eq(1),
                self.o.payload.beat.eq(cur),
                self.o.payload.alen.eq(blen - 1),
                self.o.payload.start.eq(Mux(first, soff, 0)),
                self.o.payload.end.eq(Mux(is_last, eoff, W - 1)),
                self.o.payload.first.eq(first),
                self.o.payload.last.eq(is_last),
                cur.eq(cur + blen),
                left.eq(left - blen),
                first.eq(0),
            ]
            with m.If(is_last):
                m.d.sync += busy.eq(0)
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        # a new command (also in the cycle the previous one's last burst goes out)
        m.d.comb += self.cmd.ready.eq(~busy | (go & is_last))
        a = self.cmd.payload.addr
        e = Signal(32)
        m.d.comb += e.eq(a + self.cmd.payload.length - 1)
        nbeats = Signal(LENGTH_BITS)
        m.d.comb += nbeats.eq(e[lw:] - a[lw:] + 1)
        with m.If(self.cmd.valid & self.cmd.ready & (self.cmd.payload.length != 0)):
            m.d.sync += [
                busy.eq(1), cur.eq(a[lw:]), left.eq(nbeats),
                soff.eq(a[:lw]), eoff.eq(e[:lw]), first.eq(1),
            ]
        return m


class _MemPort(wiring.Component):
    """What a read and a write port share: the checked AXI sizes (:func:`_check_common`),
    the properties that read them, and the ports around the data ports of
    :meth:`_data_ports` (``cmd`` first; ``m_axi``, ``idle``, ``error``, ``clear_error``
    last), ``m_axi`` being the half of AXI4 named by ``_AXI_HALF``."""

    _AXI_HALF: dict = {}

    def __init__(self, data_width: int = 64, max_burst: int | None = None, *,
                 max_outstanding: int = DEFAULT_OUTSTANDING, addr_width: int = 32, id_width: int = 1,
                 axi_id: int = 0):
        max_burst = _check_common(self, data_width, max_burst, max_outstanding, addr_width, id_width, axi_id)
        self._dw, self._mb, self._mo = data_width, max_burst, max_outstanding
        self._aw, self._iw, self._id = addr_width, id_width, axi_id
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout())),
            **self._data_ports(data_width),
            "m_axi": Out(axi.AXI4Signature(addr_width, data_width, id_width, **self._AXI_HALF)),
            "idle": Out(1),
            "error": Out(1),
            "clear_error": In(1),
        })

    def _data_ports(self, data_width: int) -> dict:
        """The port's own data ports, signature order (between ``cmd`` and ``m_axi``)."""
        raise NotImplementedError

    data_width = property(lambda self: self._dw)
    max_burst = property(lambda self: self._mb)
    max_outstanding = property(lambda self: self._mo)
    words_per_beat = property(lambda self: self._dw // WORD_BITS)


class MemReader(_MemPort):
    """Command stream -> AXI4 read bursts -> stream of 16-bit words (module docstring).

    Parameters
    ----------
    data_width : int
        AXI data width: 32, 64 (default), 128, 256.
    max_burst : int
        Beats per burst, a power of two up to ``min(256, 4096 // (data_width // 8))``
        (default :func:`default_max_burst`: 32).
    max_outstanding : int
        Bursts in flight or buffered (1..64, default :data:`DEFAULT_OUTSTANDING`); the beat FIFO holds
        ``max_burst * max_outstanding`` beats.
    addr_width, id_width, axi_id : int
        AXI byte-address width (default 32), ID width (1..4, default 1), this port's ARID.

    Ports
    -----
    ``cmd``    In(stream of :func:`cmd_layout`)
    ``o``      Out(stream of :func:`word_layout`)
    ``wide``   In(1): while high, data leaves on ``beat`` instead of ``o``, a whole beat a
               cycle; for commands whose address and length are multiples of the beat's
               words only (change it only while no data is buffered)
    ``beat``   Out(stream of :func:`beat_layout`)
    ``m_axi``  Out(:class:`~convc.hdl.axi.AXI4Signature` read half)
    ``idle``   Out(1): no command pending or in progress and no word left to deliver
    ``error``  Out(1): sticky, a read response was SLVERR/DECERR; ``clear_error`` In(1)
    """

    #: LUTs a reader, for the size search's logic estimate (the figure and its measurement:
    #: :data:`convc.compiler.engine_figures.READER_LUTS`)
    LUTS = READER_LUTS

    # timing (the module docstring's "Latency"; measured in simulation, read by sim/cycle.py)
    CMD_TO_AR = 3       # ARVALID this many cycles after the command handshake
    R_TO_WORD = 2       # the first word on ``o`` this many cycles after its R beat
    FREE_TO_AR = 2      # a burst's last word taken -> the AR of the burst its slot lets in

    _AXI_HALF = {"write": False}

    def _data_ports(self, data_width: int) -> dict:
        return {"o": Out(stream.Signature(word_layout())), "wide": In(1),
                "beat": Out(stream.Signature(beat_layout(data_width)))}

    @property
    def fifo_beats(self) -> int:
        """Beats of read data the port can buffer (reserved before each AR)."""
        return self._mb * self._mo

    def elaborate(self, platform):
        m = Module()
        W, dw, mb = self.words_per_beat, self._dw, self._mb
        lw, bsz = _log2(W), _log2(dw // 8)
        credits = self.fifo_beats
        bus = self.m_axi

        m.submodules.split = split = _BurstSplitter(W, mb)
        wiring.connect(m, wiring.flipped(self.cmd), split.cmd)
        desc_layout = data.StructLayout({"start": lw, "end": lw, "first": 1, "last": 1})
        m.submodules.desc = desc = SyncFIFO(width=desc_layout.size, depth=self._mo)
        m.submodules.beats = beats = SyncFIFOBuffered(width=dw + 1, depth=credits + 1)

        # ---- AR: reserve FIFO room for the whole burst, then request it
        inflight = Signal(range(credits + 1))       # beats requested, not yet unpacked
        b = split.o.payload
        ar_free = ~bus.arvalid | bus.arready
        fits = Signal()
        m.d.comb += fits.eq(inflight + b.alen + 1 <= credits)
        load = Signal()
        m.d.comb += [
            load.eq(split.o.valid & ar_free & desc.w_rdy & fits),
            split.o.ready.eq(load),
            desc.w_en.eq(load),
            desc.w_data.eq(Cat(b.start, b.end, b.first, b.last)),
        ]
        with m.If(load):
            m.d.sync += [
                bus.arvalid.eq(1),
                bus.araddr.eq(Cat(Const(0, bsz), b.beat)[:self._aw]),
                bus.arlen.eq(b.alen),
            ]
        with m.Elif(bus.arready):
            m.d.sync += bus.arvalid.eq(0)
        m.d.comb += [
            bus.arid.eq(self._id), bus.arsize.eq(bsz), bus.arburst.eq(axi.BURST_INCR),
            bus.arlock.eq(0), bus.arcache.eq(0b0011), bus.arprot.eq(0), bus.arqos.eq(0),
        ]

        # ---- R -> beat FIFO (room was reserved, so rready stays high)
        m.d.comb += [
            bus.rready.eq(beats.w_rdy),
            beats.w_en.eq(bus.rvalid),
            beats.w_data.eq(Cat(bus.rdata, bus.rlast)),
        ]

        # ---- unpacker: one word a cycle
        beat_data = beats.r_data[:dw]
        beat_last = beats.r_data[dw]
        d = data.View(desc_layout, desc.r_data)
        idx = Signal(lw)
        fresh = Signal(init=1)          # the current beat has not delivered a word yet
        bfirst = Signal(init=1)         # the current beat is its burst's first
        cur_idx = Signal(lw)
        end_idx = Signal(lw)
        m.d.comb += [
            cur_idx.eq(Mux(fresh, Mux(bfirst, d.start, 0), idx)),
            end_idx.eq(Mux(beat_last, d.end, W - 1)),
        ]
        beat_done = cur_idx == end_idx
        avail = beats.r_rdy & desc.r_rdy
        m.d.comb += [
            self.o.valid.eq(avail & ~self.wide),
            self.beat.valid.eq(avail & self.wide),
            self.beat.payload.data.eq(beat_data),
            self.beat.payload.last.eq(beat_last & d.last),
            self.o.payload.data.eq(beat_data.word_select(cur_idx, WORD_BITS)),
            self.o.payload.first.eq(fresh & bfirst & d.first),
            self.o.payload.last.eq(beat_done & beat_last & d.last),
        ]
        take = self.o.valid & self.o.ready
        take_beat = self.beat.valid & self.beat.ready
        pop = Signal()
        m.d.comb += [pop.eq((take & beat_done) | take_beat), beats.r_en.eq(pop),
                     desc.r_en.eq(pop & beat_last)]
        with m.If(take_beat):
            m.d.sync += [fresh.eq(1), bfirst.eq(beat_last)]
        with m.Elif(take):
            with m.If(beat_done):
                m.d.sync += [fresh.eq(1), bfirst.eq(beat_last)]
            with m.Else():
                m.d.sync += [fresh.eq(0), idx.eq(cur_idx + 1)]

        m.d.sync += inflight.eq(inflight + Mux(load, b.alen + 1, 0) - pop)

        # ---- status
        with m.If(self.clear_error):
            m.d.sync += self.error.eq(0)
        with m.If(bus.rvalid & bus.rready & bus.rresp[1]):
            m.d.sync += self.error.eq(1)
        m.d.comb += self.idle.eq(~self.cmd.valid & ~split.busy & ~split.o.valid
                                 & ~bus.arvalid & (inflight == 0))
        return m


class MemWriter(_MemPort):
    """Command stream + stream of 16-bit words -> AXI4 write bursts (module docstring).

    Parameters
    ----------
    data_width, max_burst, addr_width, id_width, axi_id
        As :class:`MemReader`.
    max_outstanding : int
        Bursts issued on AW still waiting for their B response (1..64, default 4).

    Ports
    -----
    ``cmd``    In(stream of :func:`cmd_layout`)
    ``i``      In(stream of 16-bit words): exactly ``length`` words per command, in order
    ``m_axi``  Out(:class:`~convc.hdl.axi.AXI4Signature` write half)
    ``idle``   Out(1): no command pending (``cmd.valid`` low) or in progress, and every
               burst written has its B response: the data is in memory.
    ``error``  Out(1): sticky, a write response was SLVERR/DECERR; ``clear_error`` In(1)
    """

    #: LUTs a writer, for the size search's logic estimate (the figure and its measurement:
    #: :data:`convc.compiler.engine_figures.WRITER_LUTS`)
    LUTS = WRITER_LUTS

    # timing (the module docstring's "Latency"; measured in simulation, read by sim/cycle.py)
    CMD_TO_WORD = 2     # words accepted from this many cycles after the command handshake
    WORD_TO_AW = 2      # AWVALID/WVALID this many cycles after a burst's last word
    B_TO_IDLE = 1       # ``idle`` this many cycles after the last B

    _AXI_HALF = {"read": False}

    def _data_ports(self, data_width: int) -> dict:
        return {"i": In(stream.Signature(WORD_BITS))}

    @property
    def fifo_beats(self) -> int:
        """Beats of write data buffered (two bursts)."""
        return 2 * self._mb

    def elaborate(self, platform):
        m = Module()
        W, dw, mb = self.words_per_beat, self._dw, self._mb
        lw, bsz, nb = _log2(W), _log2(dw // 8), dw // 8
        bus = self.m_axi
        depth = self.fifo_beats
        aw_depth = 4

        m.submodules.split = split = _BurstSplitter(W, mb)
        wiring.connect(m, wiring.flipped(self.cmd), split.cmd)
        m.submodules.beats = beats = SyncFIFOBuffered(width=dw + nb + 1, depth=depth + 1)
        aw_layout = data.StructLayout({"beat": 32 - lw, "alen": 8})
        m.submodules.awq = awq = SyncFIFOBuffered(width=aw_layout.size, depth=aw_depth)

        # ---- packer: words -> beats (+ strobes, wlast); a finished burst queues its AW
        b = split.o.payload
        idx = Signal(lw)
        fresh = Signal(init=1)
        bcount = Signal(8)                       # beats of the current burst packed
        acc = Signal(dw)
        acc_strb = Signal(nb)
        cur_idx = Signal(lw)
        last_beat = Signal()
        end_idx = Signal(lw)
        m.d.comb += [
            cur_idx.eq(Mux(fresh, Mux(bcount == 0, b.start, 0), idx)),
            last_beat.eq(bcount == b.alen),
            end_idx.eq(Mux(last_beat, b.end, W - 1)),
        ]
        beat_done = cur_idx == end_idx
        merged = Signal(dw)
        merged_strb = Signal(nb)
        m.d.comb += [
            merged.eq(Cat(*[Mux(cur_idx == k, self.i.payload, acc[WORD_BITS * k:WORD_BITS * (k + 1)])
                            for k in range(W)])),
            merged_strb.eq(acc_strb | (Const(0b11, nb) << (cur_idx * 2))),
        ]
        can = Signal()
        m.d.comb += [
            can.eq(split.o.valid & (~beat_done | (beats.w_rdy & (~last_beat | awq.w_rdy)))),
            self.i.ready.eq(can),
        ]
        take = self.i.valid & can
        burst_done = Signal()
        m.d.comb += [
            beats.w_en.eq(take & beat_done),
            beats.w_data.eq(Cat(merged, merged_strb, last_beat)),
            burst_done.eq(take & beat_done & last_beat),
            split.o.ready.eq(burst_done),
            awq.w_en.eq(burst_done),
            awq.w_data.eq(Cat(b.beat, b.alen)),
        ]
        with m.If(take):
            with m.If(beat_done):
                m.d.sync += [fresh.eq(1), acc_strb.eq(0),
                             bcount.eq(Mux(last_beat, 0, bcount + 1))]
            with m.Else():
                m.d.sync += [fresh.eq(0), idx.eq(cur_idx + 1), acc.eq(merged),
                             acc_strb.eq(merged_strb)]

        # ---- W: present a burst once all its beats are buffered
        complete = Signal(range(depth + 2))      # whole bursts in the FIFO, not yet sent
        m.d.comb += [
            bus.wvalid.eq(beats.r_rdy & (complete != 0)),
            bus.wdata.eq(beats.r_data[:dw]),
            bus.wstrb.eq(beats.r_data[dw:dw + nb]),
            bus.wlast.eq(beats.r_data[dw + nb]),
            beats.r_en.eq(bus.wready & (complete != 0)),
        ]
        w_last_done = bus.wvalid & bus.wready & bus.wlast
        m.d.sync += complete.eq(complete + burst_done - w_last_done)

        # ---- AW: from the queue, at most max_outstanding without a B response
        outstanding = Signal(range(self._mo + 1))
        aw = data.View(aw_layout, awq.r_data)
        aw_ok = outstanding != self._mo
        m.d.comb += [
            bus.awvalid.eq(awq.r_rdy & aw_ok),
            awq.r_en.eq(bus.awready & aw_ok),
            bus.awaddr.eq(Cat(Const(0, bsz), aw.beat)[:self._aw]),
            bus.awlen.eq(aw.alen),
            bus.awid.eq(self._id), bus.awsize.eq(bsz), bus.awburst.eq(axi.BURST_INCR),
            bus.awlock.eq(0), bus.awcache.eq(0b0011), bus.awprot.eq(0), bus.awqos.eq(0),
            bus.bready.eq(1),
        ]
        aw_done = bus.awvalid & bus.awready
        b_done = bus.bvalid & bus.bready
        m.d.sync += outstanding.eq(outstanding + aw_done - b_done)

        # ---- status: bursts handed to the packer and not yet answered by B
        pending = Signal(range(depth + aw_depth + self._mo + 2))
        m.d.sync += pending.eq(pending + burst_done - b_done)
        with m.If(self.clear_error):
            m.d.sync += self.error.eq(0)
        with m.If(b_done & bus.bresp[1]):
            m.d.sync += self.error.eq(1)
        m.d.comb += self.idle.eq(~self.cmd.valid & ~split.busy & ~split.o.valid
                                 & (pending == 0))
        return m

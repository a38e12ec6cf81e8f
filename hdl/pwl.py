r"""Piecewise-linear (PWL) function unit: :class:`~convc.compiler.numeric.PWLTable`
evaluation in hardware, bit-exact to :func:`~convc.compiler.numeric.pwl_eval`.

Evaluation (the spec's pseudo-code, one stage per line)::

    s1  ge[k] = valid[k] & (x >= b[k])          max_segments-1 parallel comparators
    s2  i     = popcount(ge)                    = number of breakpoints <= x
    s3  slope, offset = table[i]                synchronous memory read
    s4  M = slope * x ;  C = offset             one DSP48E1 (25 x 18 multiplier:
    s5  P = M + C   (48 bits)                     x on A, slope on B, offset on C)
    s6  r = round_shift(P, acc_shift)           run-time barrel shift, round-half-up
    s7  y = saturate(r, out width)              run-time width (table word 2)

Latency 7 (:attr:`PWLCore.latency`).  ``valid[k]`` is ``k < N-1`` for a table of ``N``
segments, so unused breakpoint slots never count.

Table load
----------
A write port (:func:`table_write_signature`: ``addr`` 8 bits, ``data`` 16 bits, ``en``)
takes the :data:`~convc.compiler.isa.TABLE_WORDS` words of one table in the memory
layout of :func:`convc.compiler.isa.table_words` -- the controller copies them from
``table_addr + pwl_id * TABLE_WORDS`` at configuration time, one word a cycle, any
order::

    word 0         N segments             -> valid mask
    word 1         acc_shift (signed 16)  -> shift register
    word 2         output width           -> saturation limits (clamped to [2, out_bits])
    words 3..34    breakpoints b[0..30]   -> registers (parallel comparators)
    words 35..98   slopes, 2 words each   -> memory lanes 0,1 (18 bits used)
    words 99..226  offsets, 4 words each  -> memory lanes 2,3,4 (48 bits used; word 3 ignored)

Slopes and offsets share one ``max_segments x 80``-bit memory written with a 16-bit
granularity, so words may arrive in any order.  Do not load a table while elements are
in flight (the pipeline would mix the old and the new table).  A table must satisfy
:meth:`PWLCore.check_table` (at most ``max_segments`` segments, input at most ``bits``
wide, output at most ``out_bits`` wide); the table registers are configuration and are
not cleared by ``rst``.
"""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from convc.compiler import isa
from convc.compiler.numeric import signed_range
from convc.compiler.pwl_table import PWLTable

from .arith import check_param, delay, mul_add_hdl, params, requantize_var_hdl, stall_pipeline

__all__ = ["PWLCore", "PWLUnit", "table_write_signature", "TABLE_ADDR_BITS", "load_table_words",
           "check_table", "lane_shape", "lanes_of"]

TABLE_ADDR_BITS = ceil_log2(isa.TABLE_WORDS)
# word offsets of the fields (isa's table layout)
_BP0 = 3
_SL0 = _BP0 + isa.MAX_SEGMENTS
_OF0 = _SL0 + 2 * isa.MAX_SEGMENTS
assert _OF0 + 4 * isa.MAX_SEGMENTS == isa.TABLE_WORDS, "isa table layout changed"
_LANE = 16
_LANES = 5  # slope lo, slope hi, offset 0..2


def table_write_signature() -> wiring.Signature:
    """The table-load port, seen from the writer: ``addr`` (8), ``data`` (16), ``en`` (1).
    Components take it as ``In(table_write_signature())``; exported names
    ``table__addr``, ``table__data``, ``table__en``."""
    return wiring.Signature({
        "addr": Out(TABLE_ADDR_BITS),
        "data": Out(isa.WORD_BITS),
        "en": Out(1),
    })


def _check_params(owner, bits, out_bits, max_segments):
    check_param(owner, "bits", bits, 2, 16)
    check_param(owner, "out_bits", out_bits, 2, 32)
    check_param(owner, "max_segments", max_segments, 1, isa.MAX_SEGMENTS)


def check_table(table: PWLTable, bits: int, out_bits: int, max_segments: int) -> None:
    """Raise ``ValueError`` unless a PWL unit of these parameters evaluates ``table``
    exactly (segments, signed input and output widths)."""
    if table.segments > max_segments:
        raise ValueError(f"PWL table has {table.segments} segments; this unit holds "
                         f"max_segments={max_segments}")
    if table.in_fmt.width > bits or not table.in_fmt.signed:
        raise ValueError(f"PWL table input {table.in_fmt} does not fit signed bits={bits}")
    if table.out_fmt.width > out_bits or not table.out_fmt.signed:
        raise ValueError(f"PWL table output {table.out_fmt} does not fit signed "
                         f"out_bits={out_bits}")


def _popcount(bits: list):
    """Balanced adder tree over 1-bit values."""
    level = list(bits)
    if not level:
        return 0
    while len(level) > 1:
        nxt = [level[k] + level[k + 1] for k in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def lane_shape(bits: int, lanes: int):
    """A port of ``lanes`` signed codes: ``signed(bits)`` for one lane, else an array
    (lane 0 in the low bits)."""
    return signed(bits) if lanes == 1 else data.ArrayLayout(signed(bits), lanes)


def lanes_of(port, lanes: int) -> list:
    """The lanes of a :func:`lane_shape` port as a list."""
    return [port] if lanes == 1 else [port[k] for k in range(lanes)]


class PWLCore(wiring.Component):
    r"""The PWL datapath without handshake, for ``lanes`` codes at once: ``y[k]`` is the
    value of ``x[k]`` from :attr:`latency` enabled cycles earlier (every register is
    clock-enabled by ``en``).  The table's registers (breakpoints, shift, saturation
    limits) and its write decoding are there once for all lanes; each lane has its own
    comparators, slope/offset memory (a LUT-RAM copy) and DSP.

    Parameters
    ----------
    bits : int
        Input code width (2..16: breakpoints are 16-bit table words).
    out_bits : int, optional
        Output width (2..32, default ``bits``); a table whose width word is smaller
        saturates to that width at run time.
    max_segments : int
        Segments the hardware holds (1..32, default ``isa.MAX_SEGMENTS``):
        ``max_segments - 1`` comparators a lane.
    lanes : int
        Codes evaluated a cycle (1..1024, default 1).

    Ports
    -----
    x : In(:func:`lane_shape`\ ``(bits, lanes)``); en : In(1);
    y : Out(:func:`lane_shape`\ ``(out_bits, lanes)``); table : In(table_write_signature())
    """

    LATENCY = 7

    def __init__(self, bits: int = 16, out_bits: int | None = None, *,
                 max_segments: int = isa.MAX_SEGMENTS, lanes: int = 1):
        out_bits = bits if out_bits is None else out_bits
        _check_params(self, bits, out_bits, max_segments)
        check_param(self, "lanes", lanes, 1, 1024)
        self._bits, self._out_bits, self._max_segments, self._lanes = bits, out_bits, max_segments, lanes
        super().__init__({
            "x": In(lane_shape(bits, lanes)),
            "en": In(1),
            "y": Out(lane_shape(out_bits, lanes)),
            "table": In(table_write_signature()),
        })

    bits, out_bits, max_segments, lanes = params("bits", "out_bits", "max_segments", "lanes")

    @property
    def latency(self) -> int:
        """Enabled cycles from ``x`` to ``y``."""
        return self.LATENCY

    def check_table(self, table: PWLTable) -> None:
        """Raise ``ValueError`` if this hardware cannot evaluate ``table`` exactly."""
        check_table(table, self._bits, self._out_bits, self._max_segments)

    def elaborate(self, platform):
        m = Module()
        nseg, nbp = self._max_segments, self._max_segments - 1
        ob, L = self._out_bits, self._lanes
        en, tw = self.en, self.table

        # ---- table storage (once for all lanes) --------------------------------------
        valid = Signal(max(nbp, 1), name="bp_valid", reset_less=True)
        bps = [Signal(signed(isa.WORD_BITS), name=f"bp{k}", reset_less=True) for k in range(nbp)]
        shift = Signal(signed(isa.WORD_BITS), name="acc_shift", reset_less=True)
        lo0, hi0 = signed_range(ob)
        sat_hi = Signal(signed(ob), name="sat_hi", init=hi0, reset_less=True)
        sat_lo = Signal(signed(ob), name="sat_lo", init=lo0, reset_less=True)
        # slopes and offsets: one small memory a lane (LUT RAM in an FPGA), all written
        # through the one decoder below
        mems = [memory.Memory(shape=_LANE * _LANES, depth=nseg, init=[]) for _ in range(L)]
        for lane, mem in enumerate(mems):
            m.submodules[f"mem{lane}" if L > 1 else "mem"] = mem
        wr_addr = Signal(range(nseg), name="tbl_wr_addr")
        wr_en = Signal(_LANES, name="tbl_wr_en")

        a, d = tw.addr, tw.data
        # output width word, clamped to [2, out_bits]; kept as width - 1
        wm1 = Signal(range(ob), name="tbl_width_m1")
        with m.If(d > ob):
            m.d.comb += wm1.eq(ob - 1)
        with m.Elif(d < 2):
            m.d.comb += wm1.eq(1)
        with m.Else():
            m.d.comb += wm1.eq(d - 1)
        with m.If(tw.en):
            with m.If(a == 0):
                for k in range(nbp):
                    m.d.sync += valid[k].eq(d > k + 1)
            with m.Elif(a == 1):
                m.d.sync += shift.eq(d)
            with m.Elif(a == 2):
                hi = (C(1, ob) << wm1) - 1
                m.d.sync += [sat_hi.eq(hi), sat_lo.eq(~hi)]
            for k in range(nbp):
                with m.Elif(a == _BP0 + k):
                    m.d.sync += bps[k].eq(d)

        rel_s, rel_o = a - _SL0, a - _OF0
        with m.If(tw.en):
            with m.If((a >= _SL0) & (a < _SL0 + 2 * nseg)):
                m.d.comb += [wr_addr.eq(rel_s >> 1), wr_en.eq(1 << rel_s[0])]
            with m.Elif((a >= _OF0) & (a < _OF0 + 4 * nseg)):
                m.d.comb += wr_addr.eq(rel_o >> 2)
                with m.If(rel_o[:2] != 3):
                    m.d.comb += wr_en.eq(1 << (rel_o[:2] + 2))
        for mem in mems:
            wp = mem.write_port(granularity=_LANE)
            m.d.comb += [wp.data.eq(Cat(*([d] * _LANES))), wp.addr.eq(wr_addr), wp.en.eq(wr_en)]

        # ---- datapath, a lane ---------------------------------------------------------
        xs, ys = lanes_of(self.x, L), lanes_of(self.y, L)
        for lane, (x, yo, mem) in enumerate(zip(xs, ys, mems)):
            sfx = f"_l{lane}" if L > 1 else ""
            # s1: comparators
            ge = Signal(max(nbp, 1), name=f"ge{sfx}", reset_less=True)
            with m.If(en):
                for k in range(nbp):
                    m.d.sync += ge[k].eq(valid[k] & (x >= bps[k]))
            x1 = delay(m, x, 1, en=en, name=f"x{sfx}")
            # s2: segment index
            idx = Signal(range(nseg), name=f"seg{sfx}", reset_less=True)
            if nbp:
                with m.If(en):
                    m.d.sync += idx.eq(_popcount([ge[k] for k in range(nbp)]))
            x2 = delay(m, x1, 1, en=en, name=f"x1{sfx}")
            # s3: slope and offset (memory read register); x on a multiplier input register
            rp = mem.read_port(domain="sync")
            m.d.comb += [rp.addr.eq(idx), rp.en.eq(en)]
            slope = rp.data[0:18].as_signed()
            offset = rp.data[2 * _LANE:2 * _LANE + 48].as_signed()
            x3 = delay(m, x2, 1, en=en, name=f"x2{sfx}")
            # s4, s5: P = slope * x + offset (one DSP48E1)
            p = mul_add_hdl(m, x3, slope, offset, en=en, name=f"pwl_dsp{sfx}")
            # s6: round-shift by the run-time acc_shift; s7: saturate to the table width
            y = requantize_var_hdl(m, p, shift, ob, lo=sat_lo, hi=sat_hi, domain="sync", en=en,
                                   shift_domain="sync", name=f"pwl_y{sfx}")
            m.d.comb += yo.eq(y)
        return m


class PWLUnit(wiring.Component):
    """Stream wrapper of :class:`PWLCore`: ``i`` (signed ``bits`` codes) ->
    ``o`` (signed ``out_bits`` codes), one element a cycle, stalls as a whole under
    backpressure (see :func:`~convc.hdl.arith.stall_pipeline`); ``table`` loads a table.
    Parameters as :class:`PWLCore`.
    """

    def __init__(self, bits: int = 16, out_bits: int | None = None, *,
                 max_segments: int = isa.MAX_SEGMENTS):
        out_bits = bits if out_bits is None else out_bits
        _check_params(self, bits, out_bits, max_segments)
        self._bits, self._out_bits, self._max_segments = bits, out_bits, max_segments
        super().__init__({
            "i": In(stream.Signature(signed(bits))),
            "o": Out(stream.Signature(signed(out_bits))),
            "table": In(table_write_signature()),
        })

    @property
    def latency(self) -> int:
        """Cycles from an accepted input to its output being valid (no backpressure)."""
        return PWLCore.LATENCY

    bits, out_bits, max_segments = params("bits", "out_bits", "max_segments")

    def check_table(self, table: PWLTable) -> None:
        """Raise ``ValueError`` if this unit cannot evaluate ``table`` exactly."""
        check_table(table, self._bits, self._out_bits, self._max_segments)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = PWLCore(self._bits, self._out_bits,
                                           max_segments=self._max_segments)
        wiring.connect(m, wiring.flipped(self.table), core.table)
        en = stall_pipeline(m, self.i, self.o, core.latency, name="pwl")
        m.d.comb += [core.en.eq(en), core.x.eq(self.i.payload), self.o.payload.eq(core.y)]
        return m


def load_table_words(table: PWLTable) -> list[tuple[int, int]]:
    """``(addr, word)`` pairs that load ``table`` through the table port (all
    :data:`~convc.compiler.isa.TABLE_WORDS` words of :func:`~convc.compiler.isa.table_words`)."""
    return [(a, int(w)) for a, w in enumerate(isa.table_words(table))]


r"""Map feeder: one input lane's pixel stream for a band, read from memory with the
padding inserted, optionally upsampled (nearest neighbour) by ``U = 2**up``.

For groups ``g < G``, the lane's map is ``j = g * L + lane`` (``L`` lanes share the
groups); its base word address ``base[j]`` (``in_addr + list[j] * in_h * in_w``) comes
from the accelerator's list memory, or, when the list is a run of consecutive maps
(``contig``), for every group after the first from the previous group's:
``base[j] = base[j - L] + step`` (``step = L * in_h * in_w``), so that such a list may be
longer than the list memory (which then holds only its first entries; the entry of each
later group is looked up all the same and ignored: the timing does not change).  The
feeder sends, group after group, the band's
rows ``rs .. rs + nr - 1`` in *padded, upsampled* coordinates, ``Wp`` pixels each::

    v = rs + r - pad,  u = c - pad          (row and column of the upsampled map)
    x[g][r][c] = mem[base[j] + (v >> up) * in_w + (u >> up)]
                    if j < n_in and 0 <= v < in_h << up and 0 <= u < in_w << up
                 0  otherwise (padding, or a lane with no map: nothing is read)

(``in_h``, ``in_w``: the map as stored; ``Wp = (in_w << up) + 2 * pad``; with ``up = 0``
this is the plain padded map.)  ``first`` on each group's first pixel, ``last`` on its
last.  Each upsampled row inside the map is one read command of the ``in_w`` words of
stored row ``v >> up`` to the feeder's own :class:`~convc.hdl.memport.MemReader`: a
stored row is read again for each of its ``U`` upsampled rows (the simplest design: no
row store; it costs ``U`` times the reads of the stored map, ``in_w`` words per
``(in_w << up) + 2 * pad`` pixels, far below a word a cycle for ``up > 0``).  The pixel
loop sends each word ``U`` times, taking it from the reader with the last of them
(``word.ready`` when ``(c - pad) mod U = U - 1``).  A command loop runs ahead of the
pixel loop (as far as the reader takes commands), so reads stream while the pixels go
out one a cycle.

Ports
-----
``start``      In(1): pulse; the configuration inputs are sampled with it
``lane``, ``lanes`` (``L``), ``groups`` (``G``), ``n_in``, ``rs``, ``nr``, ``pad``, ``in_h``,
``in_w``, ``up``, ``width`` (``Wp = (in_w << up) + 2 * pad``), ``contig``, ``step``
               In: configuration
``list_addr``  Out: list-memory read address (a synchronous read port)
``list_data``  In(32): its data, the cycle after the address
``cmd``        Out(stream of :func:`~convc.hdl.memport.cmd_layout`): to the reader
``word``       In(stream of :func:`~convc.hdl.memport.word_layout`): from the reader
``o``          Out(stream of :func:`~convc.hdl.pointwise.code_layout`\ ``(bits)``)
``busy``       Out(1): from ``start`` until the last pixel has left
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from convc.compiler import isa
from convc.compiler.engine_figures import FEEDER_LIMITS, FEEDER_LUTS
from convc.compiler.isa import ROW_COL_BITS

from .arith import check_param
from .fields import GROUP_BITS, field_shape
from .memport import cmd_layout, word_layout
from .pointwise import code_layout

__all__ = ["MapFeeder"]


class MapFeeder(wiring.Component):
    #: LUTs a feeder, for the size search's logic estimate (the figure and its measurement:
    #: :data:`convc.compiler.engine_figures.FEEDER_LUTS`)
    LUTS = FEEDER_LUTS
    # timing (read by sim/cycle.py): the list lookup of each later group (BASE)
    GROUP_CYCLES = 1
    LIMITS = FEEDER_LIMITS

    def __init__(self, *, bits: int = 16, list_words: int = 1024):
        check_param(self, "bits", bits, *isa.limit("bits"))
        check_param(self, "list_words", list_words, *self.LIMITS["list_words"])
        self._bits, self._list_words = bits, list_words
        super().__init__({
            "start": In(1),
            "lane": In(16), "lanes": In(16), "groups": In(GROUP_BITS), "n_in": In(field_shape("n_in")),
            "rs": In(ROW_COL_BITS), "nr": In(ROW_COL_BITS), "pad": In(field_shape("pad")),
            "in_h": In(ROW_COL_BITS), "in_w": In(ROW_COL_BITS), "up": In(field_shape("up")),
            "width": In(ROW_COL_BITS + 1),
            "contig": In(1), "step": In(32),
            "list_addr": Out(range(list_words)),
            "list_data": In(32),
            "cmd": Out(stream.Signature(cmd_layout())),
            "word": In(stream.Signature(word_layout())),
            "o": Out(stream.Signature(code_layout(bits))),
            "busy": Out(1),
        })

    bits = property(lambda self: self._bits)

    def elaborate(self, platform):
        m = Module()
        # configuration, sampled at start
        L = Signal(16, name="cfg_lanes")
        G = Signal(GROUP_BITS, name="cfg_groups")
        n_in = Signal(field_shape("n_in"), name="cfg_n_in")
        rs = Signal(ROW_COL_BITS, name="cfg_rs")
        nr = Signal(ROW_COL_BITS, name="cfg_nr")
        pad = Signal(field_shape("pad"), name="cfg_pad")
        in_w = Signal(ROW_COL_BITS, name="cfg_in_w")
        wp = Signal(ROW_COL_BITS + 1, name="cfg_wp")
        lane = Signal(16, name="cfg_lane")
        contig = Signal(name="cfg_contig")
        step = Signal(32, name="cfg_step")
        # upsampling by U = 2**up: the upsampled map's sizes, U - 1 (a mask of the low bits
        # of an upsampled row or column: the copy of its stored one), and the stored row of
        # the band's first row, (rs - pad) >> up (so BASE's address path is the same as
        # without upsampling: one product)
        UB = (1 << len(self.up)) - 1                       # largest up
        vh = Signal(ROW_COL_BITS + UB, name="cfg_up_h")
        vw = Signal(ROW_COL_BITS + UB, name="cfg_up_w")
        rep = Signal(UB, name="cfg_rep")
        srow0 = Signal(signed(ROW_COL_BITS + 2), name="cfg_stored_row0")
        with m.If(self.start):
            m.d.sync += [L.eq(self.lanes), G.eq(self.groups), n_in.eq(self.n_in), rs.eq(self.rs),
                         nr.eq(self.nr), pad.eq(self.pad), in_w.eq(self.in_w),
                         wp.eq(self.width), lane.eq(self.lane), contig.eq(self.contig), step.eq(self.step),
                         vh.eq(self.in_h << self.up), vw.eq(self.in_w << self.up),
                         rep.eq((1 << self.up) - 1),
                         srow0.eq((self.rs - self.pad).as_signed() >> self.up)]

        # ---- command loop: one read command per (upsampled) row inside the map ------
        c_g = Signal(GROUP_BITS, name="c_group")
        c_j = Signal(17, name="c_map")
        c_r = Signal(ROW_COL_BITS, name="c_row")
        c_rr = Signal(signed(ROW_COL_BITS + 2), name="c_map_row")    # rs + r - pad
        c_addr = Signal(32, name="c_addr")
        base = Signal(32, name="c_base")
        # the list read port: the current map in LOOK, the next group's map while the rows
        # go out (so its base is ready when they end: one cycle a group, not three)
        prefetch = Signal(name="c_prefetch")
        m.d.comb += self.list_addr.eq(Mux(prefetch, c_j + L, c_j)[:len(self.list_addr)])
        with m.FSM(name="cmd_fsm"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [c_g.eq(0), c_j.eq(self.lane)]
                    with m.If((self.groups != 0) & (self.nr != 0)):
                        m.next = "LOOK"
            with m.State("LOOK"):                    # list address out; data next cycle
                m.next = "BASE"
            with m.State("BASE"):
                b = Signal(32, name="c_base_next")
                m.d.comb += b.eq(Mux(contig & (c_g != 0), base + step, self.list_data))
                m.d.sync += [c_r.eq(0), c_rr.eq(rs - pad), base.eq(b),
                             c_addr.eq(b + srow0 * in_w)]
                with m.If(c_j < n_in):
                    m.next = "ROWS"
                with m.Else():                        # this and every later group: no map
                    m.next = "IDLE"
            with m.State("ROWS"):
                m.d.comb += prefetch.eq(1)
                inside = (c_rr >= 0) & (c_rr < vh)
                m.d.comb += [self.cmd.payload.addr.eq(c_addr), self.cmd.payload.length.eq(in_w),
                             self.cmd.valid.eq(inside)]
                with m.If(~inside | self.cmd.ready):
                    m.d.sync += [c_r.eq(c_r + 1), c_rr.eq(c_rr + 1)]
                    with m.If((c_rr[:UB] & rep) == rep):       # the stored row's last copy
                        m.d.sync += c_addr.eq(c_addr + in_w)
                    with m.If(c_r == nr - 1):
                        m.d.sync += [c_g.eq(c_g + 1), c_j.eq(c_j + L)]
                        with m.If(c_g == G - 1):
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "BASE"

        # ---- pixel loop -------------------------------------------------------------
        active = Signal(name="pix_active")
        d_g = Signal(GROUP_BITS, name="d_group")
        d_j = Signal(17, name="d_map")
        d_r = Signal(ROW_COL_BITS, name="d_row")
        d_rr = Signal(signed(ROW_COL_BITS + 2), name="d_map_row")
        d_c = Signal(ROW_COL_BITS + 1, name="d_col")
        row_in = (d_rr >= 0) & (d_rr < vh) & (d_j < n_in)
        col_in = (d_c >= pad) & (d_c < pad + vw)
        real = Signal(name="real")
        m.d.comb += real.eq(row_in & col_in)
        # the word's last copy in the row (always, without upsampling): the reader's next
        last_copy = Signal(name="last_copy")
        m.d.comb += last_copy.eq(((d_c - pad)[:UB] & rep) == rep)
        m.d.comb += self.o.valid.eq(active & (~real | self.word.valid))
        with m.If(real):
            m.d.comb += self.o.payload.data.eq(self.word.payload.data[:self._bits].as_signed())
        last_col = d_c == wp - 1
        last_row = d_r == nr - 1
        m.d.comb += [
            self.o.payload.first.eq((d_r == 0) & (d_c == 0)),
            self.o.payload.last.eq(last_row & last_col),
            self.word.ready.eq(active & real & last_copy & self.o.ready),
        ]
        with m.If(self.start):
            m.d.sync += [active.eq((self.groups != 0) & (self.nr != 0)), d_g.eq(0), d_j.eq(self.lane),
                         d_r.eq(0), d_c.eq(0), d_rr.eq(self.rs - self.pad)]
        with m.Elif(self.o.valid & self.o.ready):
            m.d.sync += d_c.eq(d_c + 1)
            with m.If(last_col):
                m.d.sync += [d_c.eq(0), d_r.eq(d_r + 1), d_rr.eq(d_rr + 1)]
                with m.If(last_row):
                    m.d.sync += [d_r.eq(0), d_rr.eq(rs - pad), d_g.eq(d_g + 1), d_j.eq(d_j + L)]
                    with m.If(d_g == G - 1):
                        m.d.sync += active.eq(0)
        m.d.comb += self.busy.eq(active)
        return m

r"""Row writer: a band's output rows (all lanes in parallel) -> memory, map by map.

The engines give one element (``lanes`` codes, one per output map) per output pixel, in
raster order.  Memory holds maps one after the other, so the writer turns rows around:
each row of ``out_w`` elements goes into one bank of a two-row buffer; a finished row is
written as one command of ``out_w`` words per output map ``o < n_out``::

    mem[base + o * map_words + r * out_w + x] = element[r][x].data[o]

(``base = out_addr + o0 * map_words + row0 * out_w`` of the record), or, when ``vector``
is set (``out_h = out_w = 1``: the maps are consecutive words), one command of ``n_out``
words for the whole row.  While one bank is written out the next row fills the other;
with both full the input waits.

Ports
-----
``start``   In(1): pulse; ``base``, ``map_words``, ``out_w``, ``rows``, ``n_out``, ``vector``
            are sampled with it
``i``       In(stream of :func:`~convc.hdl.linebuffer.pixel_layout`\ ``(lanes, bits)``):
            ``rows * out_w`` elements (``first``/``last`` are not used)
``cmd``     Out(stream of :func:`~convc.hdl.memport.cmd_layout`) \  to a
``word``    Out(stream of 16-bit words)                          /  :class:`~convc.hdl.memport.MemWriter`
``busy``    Out(1): from ``start`` until the last word has been handed to the writer

Throughput: one word a cycle out (the memory writer's rate); the input takes one element
a cycle while a bank is free.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import check_param
from .linebuffer import pixel_layout
from .memport import WORD_BITS, cmd_layout

__all__ = ["RowWriter"]

RC_BITS = 12


class RowWriter(wiring.Component):
    def __init__(self, *, lanes: int, bits: int = 16, max_width: int = 1024):
        check_param(self, "lanes", lanes, 1, 1024)
        check_param(self, "bits", bits, 2, 16)
        check_param(self, "max_width", max_width, 1, (1 << RC_BITS) - 1)
        self._lanes, self._bits, self._max_width = lanes, bits, max_width
        super().__init__({
            "start": In(1),
            "base": In(32), "map_words": In(32), "out_w": In(RC_BITS), "rows": In(RC_BITS),
            "n_out": In(16), "vector": In(1),
            "i": In(stream.Signature(pixel_layout(lanes, bits))),
            "cmd": Out(stream.Signature(cmd_layout())),
            "word": Out(stream.Signature(WORD_BITS)),
            "busy": Out(1),
        })

    lanes = property(lambda self: self._lanes)
    bits = property(lambda self: self._bits)
    max_width = property(lambda self: self._max_width)

    def elaborate(self, platform):
        m = Module()
        NL, bits, D = self._lanes, self._bits, self._max_width
        base = Signal(32, name="cfg_base")
        mw = Signal(32, name="cfg_map_words")
        ow = Signal(RC_BITS, name="cfg_out_w")
        rows = Signal(RC_BITS, name="cfg_rows")
        n_out = Signal(16, name="cfg_n_out")
        vec = Signal(name="cfg_vector")
        with m.If(self.start):
            m.d.sync += [base.eq(self.base), mw.eq(self.map_words), ow.eq(self.out_w),
                         rows.eq(self.rows), n_out.eq(self.n_out), vec.eq(self.vector)]

        buf = memory.Memory(shape=NL * bits, depth=2 * D, init=[])
        m.submodules.buf = buf
        wp = buf.write_port()
        rp = buf.read_port(domain="sync")

        # ---- input: rows into the two banks -----------------------------------------
        p_rows = Signal(RC_BITS + 1, name="produced_rows")
        p_x = Signal(RC_BITS, name="in_x")
        d_rows = Signal(RC_BITS + 1, name="drained_rows")     # rows fully handed out
        in_active = Signal(name="in_active")
        room = (p_rows - d_rows) < 2
        m.d.comb += [
            self.i.ready.eq(in_active & room),
            wp.addr.eq(Mux(p_rows[0], D, 0) + p_x),
            wp.data.eq(self.i.payload.data.as_value()),
            wp.en.eq(self.i.valid & self.i.ready),
        ]
        with m.If(self.start):
            m.d.sync += [p_rows.eq(0), p_x.eq(0), in_active.eq(self.rows != 0)]
        with m.Elif(self.i.valid & self.i.ready):
            m.d.sync += p_x.eq(p_x + 1)
            with m.If(p_x == ow - 1):
                m.d.sync += [p_x.eq(0), p_rows.eq(p_rows + 1)]
                with m.If(p_rows == rows - 1):
                    m.d.sync += in_active.eq(0)

        # ---- commands ------------------------------------------------------------------
        c_row = Signal(RC_BITS + 1, name="cmd_row")
        c_o = Signal(16, name="cmd_map")
        c_rowbase = Signal(32, name="cmd_row_base")
        c_addr = Signal(32, name="cmd_addr")
        c_active = Signal(name="cmd_active")
        m.d.comb += [
            self.cmd.valid.eq(c_active & (p_rows > c_row)),
            self.cmd.payload.addr.eq(c_addr),
            self.cmd.payload.length.eq(Mux(vec, n_out, ow)),
        ]
        with m.If(self.start):
            m.d.sync += [c_row.eq(0), c_o.eq(0), c_rowbase.eq(self.base), c_addr.eq(self.base),
                         c_active.eq((self.rows != 0) & (self.n_out != 0))]
        with m.Elif(self.cmd.valid & self.cmd.ready):
            with m.If(vec | (c_o == n_out - 1)):
                m.d.sync += [c_o.eq(0), c_row.eq(c_row + 1), c_rowbase.eq(c_rowbase + ow),
                             c_addr.eq(c_rowbase + ow)]
                with m.If(c_row == rows - 1):
                    m.d.sync += c_active.eq(0)
            with m.Else():
                m.d.sync += [c_o.eq(c_o + 1), c_addr.eq(c_addr + mw)]

        # ---- words: read the bank lane by lane (a one-word output register) ------------
        d_o = Signal(16, name="out_map")
        d_x = Signal(RC_BITS, name="out_x")
        d_active = Signal(name="out_active")
        ov = Signal(name="word_valid")
        lane_r = Signal(range(NL), name="word_lane")
        have = d_active & (p_rows > d_rows)
        adv = ~ov | self.word.ready
        m.d.comb += [
            rp.addr.eq(Mux(d_rows[0], D, 0) + d_x),
            rp.en.eq(adv),
            self.word.valid.eq(ov),
        ]
        lanes = [rp.data[k * bits:(k + 1) * bits] for k in range(NL)]
        with m.Switch(lane_r):
            for k in range(NL):
                with m.Case(k):
                    # sign-extended to the 16-bit memory word
                    m.d.comb += self.word.payload.eq(lanes[k].as_signed())
        with m.If(self.start):
            m.d.sync += [d_rows.eq(0), d_o.eq(0), d_x.eq(0), ov.eq(0), d_active.eq(self.rows != 0)]
        with m.Elif(d_active & (n_out == 0)):
            # no maps to write: rows are still taken, and dropped
            with m.If(p_rows > d_rows):
                m.d.sync += d_rows.eq(d_rows + 1)
                with m.If(d_rows == rows - 1):
                    m.d.sync += d_active.eq(0)
        with m.Elif(adv):
            m.d.sync += ov.eq(have)
            with m.If(have):
                m.d.sync += [lane_r.eq(d_o[:len(lane_r)]), d_x.eq(d_x + 1)]
                with m.If(d_x == ow - 1):
                    m.d.sync += [d_x.eq(0), d_o.eq(d_o + 1)]
                    with m.If(d_o == n_out - 1):
                        m.d.sync += [d_o.eq(0), d_rows.eq(d_rows + 1)]
                        with m.If(d_rows == rows - 1):
                            m.d.sync += d_active.eq(0)
        m.d.comb += self.busy.eq(in_active | c_active | d_active | ov)
        return m

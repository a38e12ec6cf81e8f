r"""Line buffers and a sliding window: :class:`WindowGenerator`.

The input is a raster frame (row-major) of ``lanes`` parallel pixels an element;
``first`` marks a frame's first element and ``last`` its last.  For EVERY input element
at (row ``r``, column ``c``) exactly one output element comes out, in order, carrying the
``kmax x kmax`` window whose bottom-right corner is ``(r, c)``::

    window[l][p][q] = pixel(lane l, row r - (kmax-1) + p, col c - (kmax-1) + q)
                      (0 where that row or column is < 0: above or left of the frame)

with ``row = r`` (mod 4096), ``col = c`` and ``first``/``last`` copied from the input
element.  Windows never mix frames (a new ``first`` starts with rows < 0 reading as
zeros, whatever the block RAM still holds) and never wrap from the previous row's right
end (columns < 0 read as zeros).  The consumer picks the windows it needs (by
``row``/``col``; a kernel ``K <= kmax`` uses the bottom-right ``K x K`` part,
``window[l][kmax-K:][kmax-K:]``; stride by skipping).

Ports
-----
``i``      In(stream of :func:`pixel_layout`\ ``(lanes, bits)``)
``width``  In(range(max_width + 1)): pixels a row of the frame, sampled when the element
           with ``first=1`` is accepted (so it may change between frames).  Must be
           1..max_width; 0 behaves as 1.
``o``      Out(stream of :func:`window_layout`\ ``(lanes, bits, kmax)``)

Structure
---------
``kmax - 1`` line buffers (one ``amaranth.lib.memory.Memory`` each, ``max_width`` words
of ``lanes x bits``: every lane's pixel of a column in one word; one read port, one write
port; RAMB18E1/RAMB36E1 for larger ``max_width``), cascaded: buffer ``j`` holds row
``r-1-j`` (zero for rows before the frame).  Pipeline (:func:`~convc.hdl.arith.stall_pipeline`,
latency 2, one element a cycle, one global stall):

* stage 0 (the accepting cycle): row/column counters, read address ``c`` to every buffer;
* stage 1: the column vector ``v[p]`` = pixel of row ``r-(kmax-1)+p`` (buffer outputs,
  rows before the frame masked to 0); written back shifted (buffer ``j`` <- ``v[kmax-1-j]``)
  at address ``c``; a read of the same address in the cycle it is written (width 1) is
  bypassed from the previous column;
* stage 2: the ``kmax x kmax`` shift register (shifts only for valid elements; columns
  left of the frame are zeroed as they shift in) is ``o.payload.window``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from convc.compiler import isa
from convc.compiler.engine_figures import WINDOW_LIMITS
from convc.compiler.isa import ROW_COL_BITS

from .arith import check_param, delay, param, params, stall_pipeline

__all__ = ["WindowGenerator", "pixel_layout", "window_layout"]


def pixel_layout(lanes: int, bits: int) -> data.StructLayout:
    """Input payload: ``data`` (``lanes`` signed ``bits``-wide pixels, lane 0 in the low
    bits), ``first``, ``last``."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(bits), lanes),
        "first": 1,
        "last": 1,
    })


def window_layout(lanes: int, bits: int, kmax: int) -> data.StructLayout:
    """Output payload: ``window[lane][p][q]`` (row ``p``, column ``q``; ``[kmax-1][kmax-1]``
    is the newest pixel), ``row``, ``col`` (unsigned 12), ``first``, ``last``."""
    px = signed(bits)
    return data.StructLayout({
        "window": data.ArrayLayout(data.ArrayLayout(data.ArrayLayout(px, kmax), kmax), lanes),
        "row": unsigned(ROW_COL_BITS),
        "col": unsigned(ROW_COL_BITS),
        "first": 1,
        "last": 1,
    })


class WindowGenerator(wiring.Component):
    """Line buffers + ``kmax x kmax`` window per lane (see the module docstring).

    Parameters
    ----------
    lanes : int      parallel pixels an element, 1..64
    bits : int       pixel width (signed), 2..16
    kmax : int       window size, 1..31
    max_width : int  longest row, 1..4095 (the depth of each line buffer)
    """

    LATENCY = 2
    LIMITS = WINDOW_LIMITS

    def __init__(self, *, lanes: int, bits: int, kmax: int, max_width: int):
        check_param(self, "lanes", lanes, *self.LIMITS["lanes"])
        check_param(self, "bits", bits, *isa.limit("bits"))
        check_param(self, "kmax", kmax, *self.LIMITS["kmax"])
        check_param(self, "max_width", max_width, 1, (1 << ROW_COL_BITS) - 1)
        self._lanes, self._bits, self._kmax, self._max_width = lanes, bits, kmax, max_width
        super().__init__({
            "i": In(stream.Signature(pixel_layout(lanes, bits))),
            "width": In(range(max_width + 1)),
            "o": Out(stream.Signature(window_layout(lanes, bits, kmax))),
        })

    lanes, bits, kmax, max_width = params("lanes", "bits", "kmax", "max_width")

    latency = property(lambda self: self.LATENCY,
                       doc="Cycles from an accepted input to its window being valid (no backpressure).")
    line_buffer_depth = param("max_width", "Words in each line buffer (one word = one column of all lanes).")
    line_buffers = property(lambda self: self._kmax - 1,
                            doc="Line buffers (memories), each ``lanes * bits`` wide: ``kmax - 1``.")

    def elaborate(self, platform):
        m = Module()
        lanes, bits, K, W = self._lanes, self._bits, self._kmax, self._max_width
        px_layout = data.ArrayLayout(signed(bits), lanes)
        en = stall_pipeline(m, self.i, self.o, self.LATENCY, name="lb")
        # stall_pipeline's valid bits are internal; keep our own copy of stage-1 valid
        v1 = Signal(name="lb_valid1")
        with m.If(en):
            m.d.sync += v1.eq(self.i.valid)
        accept = self.i.valid & en

        # ---- stage 0: position counters ------------------------------------------
        col_w = range(W)
        nxt_col = Signal(col_w, name="nxt_col")            # position of the next element
        nxt_row = Signal(ROW_COL_BITS, name="nxt_row")
        nxt_fill = Signal(range(K), name="nxt_fill")       # min(row, K-1)
        w_reg = Signal(range(W + 1), name="w_reg")
        first = self.i.payload.first
        cur_col = Signal(col_w, name="cur_col")
        cur_row = Signal(ROW_COL_BITS, name="cur_row")
        cur_fill = Signal(range(K), name="cur_fill")
        cur_w = Signal(range(W + 1), name="cur_w")
        m.d.comb += [
            cur_col.eq(Mux(first, 0, nxt_col)),
            cur_row.eq(Mux(first, 0, nxt_row)),
            cur_fill.eq(Mux(first, 0, nxt_fill)),
            cur_w.eq(Mux(first, self.width, w_reg)),
        ]
        with m.If(accept):
            m.d.sync += w_reg.eq(cur_w)
            with m.If(cur_col + 1 >= cur_w):            # end of row (width 0 acts as 1)
                m.d.sync += [
                    nxt_col.eq(0),
                    nxt_row.eq(cur_row + 1),
                    nxt_fill.eq(Mux(cur_fill == K - 1, K - 1, cur_fill + 1)),
                ]
            with m.Else():
                m.d.sync += [nxt_col.eq(cur_col + 1), nxt_row.eq(cur_row), nxt_fill.eq(cur_fill)]

        # ---- stage 1 registers ---------------------------------------------------
        col1 = delay(m, cur_col, 1, en=en, name="col")
        row1 = delay(m, cur_row, 1, en=en, name="row")
        fill1 = delay(m, cur_fill, 1, en=en, name="fill")
        pix1 = delay(m, self.i.payload.data, 1, en=en, name="pix")
        first1 = delay(m, self.i.payload.first, 1, en=en, name="first")
        last1 = delay(m, self.i.payload.last, 1, en=en, name="last")

        # the shift register (stage 2): win[p][q] for all lanes, p/q outermost
        win = [[Signal(px_layout, name=f"win_{p}_{q}", reset_less=True) for q in range(K)]
               for p in range(K)]

        # column vector v[p]: row r-(K-1)+p; v[K-1] is the pixel itself
        vcol = [Signal(px_layout, name=f"v_{p}") for p in range(K)]
        m.d.comb += vcol[K - 1].eq(pix1)
        if K > 1:
            # bypass flag: this element reads the address the previous (valid) element
            # writes in the same cycle (width 1); its data is then the previous column,
            # which sits in win[*][K-1] while this element is in stage 1.
            byp1 = Signal(name="byp1", reset_less=True)
            with m.If(en):
                m.d.sync += byp1.eq(v1 & (cur_col == col1))
            for j in range(K - 1):
                mem = memory.Memory(shape=px_layout, depth=W, init=[])
                m.submodules[f"line{j}"] = mem
                rd = mem.read_port(domain="sync")
                wr = mem.write_port()
                m.d.comb += [rd.addr.eq(cur_col), rd.en.eq(en)]
                p = K - 2 - j                               # buffer j holds row r-1-j
                raw = Mux(byp1, win[p + 1][K - 1], rd.data)  # what buffer j got last
                m.d.comb += vcol[p].eq(Mux(fill1 >= K - 1 - p, raw, 0))
                # write back shifted: buffer j <- row r-j (= v[p+1])
                m.d.comb += [wr.addr.eq(col1), wr.data.eq(vcol[p + 1]), wr.en.eq(en & v1)]

        # ---- stage 2: the window shift register ----------------------------------
        with m.If(en & v1):
            for p in range(K):
                for q in range(K - 1):
                    # column c-(K-1)+q < 0 enters as 0
                    m.d.sync += win[p][q].eq(Mux(col1 >= K - 1 - q, win[p][q + 1], 0))
                m.d.sync += win[p][K - 1].eq(vcol[p])
        out = self.o.payload
        for lane in range(lanes):
            for p in range(K):
                for q in range(K):
                    m.d.comb += out.window[lane][p][q].eq(win[p][q][lane])
        m.d.comb += [
            out.row.eq(delay(m, row1, 1, en=en, name="row_s2")),
            out.col.eq(delay(m, col1, 1, en=en, name="col_s2")),
            out.first.eq(delay(m, first1, 1, en=en, name="first_s2")),
            out.last.eq(delay(m, last1, 1, en=en, name="last_s2")),
        ]
        return m

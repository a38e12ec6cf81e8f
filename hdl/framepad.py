"""The frame padder: a stream component that appends zero columns to every row and zero
rows to a raster frame (the LCN engine's "same" windows, :mod:`convc.hdl.lcn`)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from convc.compiler.numeric import ACC_BITS

from .arith import check_param

__all__ = ["FramePadder"]


class FramePadder(wiring.Component):
    """Appends ``pad`` zero columns to every row and ``pad`` zero rows to a raster frame.

    ``i``/``o``: stream of ``{data: signed(bits), first, last}``; the frame's rows are
    ``width`` pixels (``first`` restarts the column count, ``last`` on the frame's final
    pixel starts the bottom padding).  Out: ``(H + pad) x (width + pad)`` elements,
    ``first`` on the first, ``last`` on the final one.  One element a cycle, registered
    output; ``i.ready`` does not depend on ``i.valid``.  ``width``/``pad`` must be stable
    during a frame.
    """

    def __init__(self, *, bits: int, max_width: int, max_pad: int):
        check_param(self, "bits", bits, 2, ACC_BITS)
        check_param(self, "max_width", max_width, 1, 1 << 16)
        check_param(self, "max_pad", max_pad, 0, 64)
        self._bits, self._max_width, self._max_pad = bits, max_width, max_pad
        layout = data.StructLayout({"data": signed(bits), "first": 1, "last": 1})
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
            "width": In(range(max_width + 1)),
            "pad": In(range(max_pad + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        ov = Signal(name="ov")
        op = Signal(self.o.payload.shape(), name="op", reset_less=True)
        m.d.comb += [o.valid.eq(ov), o.payload.eq(op)]
        free = Signal(name="free")
        m.d.comb += free.eq(~ov | o.ready)
        with m.If(free):
            m.d.sync += ov.eq(0)
        wp = Signal(range(self._max_width + self._max_pad + 1), name="wp")
        m.d.comb += wp.eq(self.width + self.pad)
        col = Signal(range(self._max_width + self._max_pad + 1), name="col")
        brow = Signal(range(self._max_pad + 1), name="brow")
        lastrow = Signal(name="lastrow")
        state = Signal(2, name="state")            # 0 pass, 1 right pad, 2 bottom pad
        # (comb outputs as plain assignments, not inside Switch: an `always @*` whose
        # inputs never change is never evaluated by Icarus, leaving i.ready at X)
        cur = Signal.like(col, name="cur_col")
        m.d.comb += [i.ready.eq(free & (state == 0)), cur.eq(Mux(i.payload.first, 0, col))]
        with m.Switch(state):
            with m.Case(0):
                with m.If(i.valid & free):
                    m.d.sync += [
                        ov.eq(1),
                        op.data.eq(i.payload.data),
                        op.first.eq(i.payload.first),
                        op.last.eq(i.payload.last & (self.pad == 0)),
                    ]
                    with m.If(cur + 1 >= self.width):
                        with m.If(self.pad == 0):
                            m.d.sync += col.eq(0)
                        with m.Else():
                            m.d.sync += [col.eq(cur + 1), state.eq(1), lastrow.eq(i.payload.last)]
                    with m.Else():
                        m.d.sync += col.eq(cur + 1)
            with m.Case(1):
                with m.If(free):
                    m.d.sync += [ov.eq(1), op.data.eq(0), op.first.eq(0), op.last.eq(0)]
                    with m.If(col + 1 >= wp):
                        m.d.sync += [col.eq(0), brow.eq(0), state.eq(Mux(lastrow, 2, 0))]
                    with m.Else():
                        m.d.sync += col.eq(col + 1)
            with m.Default():
                with m.If(free):
                    endrow, endbot = col + 1 >= wp, brow + 1 >= self.pad
                    m.d.sync += [ov.eq(1), op.data.eq(0), op.first.eq(0),
                                 op.last.eq(endrow & endbot)]
                    with m.If(endrow):
                        m.d.sync += col.eq(0)
                        with m.If(endbot):
                            m.d.sync += state.eq(0)
                        with m.Else():
                            m.d.sync += brow.eq(brow + 1)
                    with m.Else():
                        m.d.sync += col.eq(col + 1)
        return m

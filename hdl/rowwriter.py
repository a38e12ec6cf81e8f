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

With ``ports = P > 1`` (a power of two) the maps are shared among ``P`` write ports (each
to its own :class:`~convc.hdl.memport.MemWriter`): port ``p`` writes maps
``p*Q .. p*Q+Q-1`` of the record (``Q = ceil(n_out / P)``, those below ``n_out``), so a
row goes out ``P`` words a cycle; a bank is free again when every port has written its
part.

Ports
-----
``start``   In(1): pulse; ``base``, ``map_words``, ``out_w``, ``rows``, ``n_out``, ``vector``
            are sampled with it
``i``       In(stream of :func:`~convc.hdl.linebuffer.pixel_layout`\ ``(lanes, bits)``):
            ``rows * out_w`` elements (``first``/``last`` are not used)
``cmd``     Out(stream of :func:`~convc.hdl.memport.cmd_layout`) \  port 0, to a
``word``    Out(stream of 16-bit words)                          /  :class:`~convc.hdl.memport.MemWriter`
``cmd1``, ``word1``, ...  ports 1 .. P-1 (:attr:`RowWriter.cmds`, :attr:`RowWriter.words` list all)
``busy``    Out(1): from ``start`` until the last word has been handed to the writer

Throughput: one word a cycle out per port (the memory writer's rate); the input takes one
element a cycle while a bank is free.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from convc.compiler import isa
from convc.compiler.engine_figures import ROWWRITER_LIMITS, ROWWRITER_LUTS_PER_LANE, ROWWRITER_PORT_MULTIPLIERS
from convc.compiler.isa import ROW_COL_BITS, WORD_BITS

from .arith import check_param
from .fields import field_shape
from .linebuffer import pixel_layout
from .memport import cmd_layout

__all__ = ["RowWriter"]


class RowWriter(wiring.Component):
    # timing (read by sim/cycle.py; calibrated on the accelerator's RTL)
    BUFFER_ROWS = 2     # the two-row buffer: a third row waits for the first to be written
    # multipliers of a port's first-map address and LUTs a lane (the size search's
    # estimates), and the limits: figures of :mod:`convc.compiler.engine_figures`
    PORT_MULTIPLIERS = ROWWRITER_PORT_MULTIPLIERS
    LUTS_PER_LANE = ROWWRITER_LUTS_PER_LANE
    BUFFER_LATENCY = 1  # an element accepted on ``i`` -> in the row buffer
    CMD_GAP = 0         # cycles between two commands of a row (back to back)
    LIMITS = ROWWRITER_LIMITS

    def __init__(self, *, lanes: int, bits: int = 16, max_width: int = 1024, ports: int = 1):
        check_param(self, "lanes", lanes, *self.LIMITS["lanes"])
        check_param(self, "bits", bits, *isa.limit("bits"))
        check_param(self, "max_width", max_width, *self.LIMITS["max_width"])
        check_param(self, "ports", ports, *self.LIMITS["ports"])
        if ports & (ports - 1):
            self._MustUse__silence = True
            raise ValueError(f"RowWriter: ports={ports} is not a power of two")
        self._lanes, self._bits, self._max_width, self._ports = lanes, bits, max_width, ports
        members = {
            "start": In(1),
            "base": In(32), "map_words": In(32), "out_w": In(ROW_COL_BITS), "rows": In(ROW_COL_BITS),
            "n_out": In(field_shape("n_out")), "vector": In(1),
            "i": In(stream.Signature(pixel_layout(lanes, bits))),
        }
        for p in range(ports):
            sfx = str(p) if p else ""
            members["cmd" + sfx] = Out(stream.Signature(cmd_layout()))
            members["word" + sfx] = Out(stream.Signature(WORD_BITS))
        members["busy"] = Out(1)
        super().__init__(members)

    lanes = property(lambda self: self._lanes)
    bits = property(lambda self: self._bits)
    max_width = property(lambda self: self._max_width)
    ports = property(lambda self: self._ports)

    def maps_per_port(self, n_out: int) -> int:
        """``Q``: port ``p`` writes maps ``p*Q .. p*Q+Q-1`` of a record of ``n_out`` maps."""
        return -(-n_out // self._ports)

    @property
    def cmds(self) -> list:
        return [getattr(self, "cmd" + (str(p) if p else "")) for p in range(self._ports)]

    @property
    def words(self) -> list:
        return [getattr(self, "word" + (str(p) if p else "")) for p in range(self._ports)]

    def elaborate(self, platform):
        m = Module()
        NL, bits, D, P = self._lanes, self._bits, self._max_width, self._ports
        mw = Signal(32, name="cfg_map_words")
        ow = Signal(ROW_COL_BITS, name="cfg_out_w")
        rows = Signal(ROW_COL_BITS, name="cfg_rows")
        vec = Signal(name="cfg_vector")
        with m.If(self.start):
            m.d.sync += [mw.eq(self.map_words), ow.eq(self.out_w),
                         rows.eq(self.rows), vec.eq(self.vector)]

        buf = memory.Memory(shape=NL * bits, depth=2 * D, init=[])
        m.submodules.buf = buf
        wp = buf.write_port()

        # ---- input: rows into the two banks -----------------------------------------
        p_rows = Signal(ROW_COL_BITS + 1, name="produced_rows")
        p_x = Signal(ROW_COL_BITS, name="in_x")
        d_rows = [Signal(ROW_COL_BITS + 1, name=f"drained_rows{p}") for p in range(P)]  # per port
        in_active = Signal(name="in_active")
        room = Signal(name="room")
        m.d.comb += room.eq(Cat(*[(p_rows - d) < 2 for d in d_rows]).all())
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

        busy = [in_active]
        for p in range(P):
            busy += self._port(m, p, buf, D, NL, bits, p_rows, d_rows[p], mw, ow, rows, vec)
        m.d.comb += self.busy.eq(Cat(*busy).any())
        return m

    def _port(self, m, p, buf, D, NL, bits, p_rows, d_rows, mw, ow, rows, vec):
        """Port ``p``: maps ``p*Q ..`` of each row; returns its busy signals."""
        cmd, word = self.cmds[p], self.words[p]
        rp = buf.read_port(domain="sync")
        P = self._ports
        q_in = (self.n_out + P - 1) >> (P.bit_length() - 1)     # Q, from the inputs at start
        n_p = Signal(field_shape("n_out"), name=f"p{p}_maps")      # maps this port writes
        o0 = Signal(field_shape("n_out"), name=f"p{p}_first_map")
        n_in_port = Mux(self.n_out > p * q_in, self.n_out - p * q_in, 0)
        with m.If(self.start):
            m.d.sync += [n_p.eq(Mux(n_in_port > q_in, q_in, n_in_port)), o0.eq(p * q_in)]

        # ---- commands ------------------------------------------------------------------
        c_row = Signal(ROW_COL_BITS + 1, name=f"p{p}_cmd_row")
        c_o = Signal(field_shape("n_out"), name=f"p{p}_cmd_map")
        c_rowbase = Signal(32, name=f"p{p}_cmd_row_base")
        c_addr = Signal(32, name=f"p{p}_cmd_addr")
        c_active = Signal(name=f"p{p}_cmd_active")
        m.d.comb += [
            cmd.valid.eq(c_active & (p_rows > c_row)),
            cmd.payload.addr.eq(c_addr),
            cmd.payload.length.eq(Mux(vec, n_p, ow)),
        ]
        # the port's first map: base + p*Q*map_words (a vector's maps are consecutive words)
        first = Mux(self.vector, self.base + p * q_in, self.base + self.map_words * (p * q_in))
        with m.If(self.start):
            m.d.sync += [c_row.eq(0), c_o.eq(0), c_rowbase.eq(first), c_addr.eq(first),
                         c_active.eq((self.rows != 0) & (n_in_port != 0))]
        with m.Elif(cmd.valid & cmd.ready):
            with m.If(vec | (c_o == n_p - 1)):
                m.d.sync += [c_o.eq(0), c_row.eq(c_row + 1), c_rowbase.eq(c_rowbase + ow),
                             c_addr.eq(c_rowbase + ow)]
                with m.If(c_row == rows - 1):
                    m.d.sync += c_active.eq(0)
            with m.Else():
                m.d.sync += [c_o.eq(c_o + 1), c_addr.eq(c_addr + mw)]

        # ---- words: read the bank lane by lane (a one-word output register) ------------
        d_o = Signal(field_shape("n_out"), name=f"p{p}_out_map")
        d_x = Signal(ROW_COL_BITS, name=f"p{p}_out_x")
        d_active = Signal(name=f"p{p}_out_active")
        ov = Signal(name=f"p{p}_word_valid")
        lane_r = Signal(range(max(NL, 2)), name=f"p{p}_word_lane")
        have = d_active & (p_rows > d_rows)
        adv = ~ov | word.ready
        m.d.comb += [
            rp.addr.eq(Mux(d_rows[0], D, 0) + d_x),
            rp.en.eq(adv),
            word.valid.eq(ov),
        ]
        with m.Switch(lane_r):
            for lane in range(NL):
                with m.Case(lane):
                    # sign-extended to the 16-bit memory word
                    m.d.comb += word.payload.eq(rp.data[lane * bits:(lane + 1) * bits].as_signed())
        with m.If(self.start):
            m.d.sync += [d_rows.eq(0), d_o.eq(0), d_x.eq(0), ov.eq(0), d_active.eq(self.rows != 0)]
        with m.Elif(d_active & (n_p == 0)):
            # no maps for this port: rows are still taken (and dropped)
            with m.If(p_rows > d_rows):
                m.d.sync += d_rows.eq(d_rows + 1)
                with m.If(d_rows == rows - 1):
                    m.d.sync += d_active.eq(0)
        with m.Elif(adv):
            m.d.sync += ov.eq(have)
            with m.If(have):
                m.d.sync += [lane_r.eq((o0 + d_o)[:len(lane_r)]), d_x.eq(d_x + 1)]
                with m.If(d_x == ow - 1):
                    m.d.sync += [d_x.eq(0), d_o.eq(d_o + 1)]
                    with m.If(d_o == n_p - 1):
                        m.d.sync += [d_o.eq(0), d_rows.eq(d_rows + 1)]
                        with m.If(d_rows == rows - 1):
                            m.d.sync += d_active.eq(0)
        return [c_active, d_active, ov]

r"""The pooling engine: max / average pooling of a raster stream of ``lanes`` parallel
codes (the convolution engine's output lanes after the pointwise stage), bit-exact to
the pooling step of ``OP_CONV`` in :mod:`convc.compiler.isa`.  For an ``H x W`` input
frame the output is ``Ho x Wo = ((H-k)//s + 1) x ((W-k)//s + 1)``, raster order::

    POOL_MAX:  out[y][x] = max over the k x k window at (y*s, x*s)
    POOL_AVG:  out[y][x] = requantize(sum over the window * avg_mul, avg_shift, bits)
    POOL_NONE: out = in                  (pass-through: k = s = 1 whatever k, s say)

Ports
-----
``i``          In(stream of :func:`~convc.hdl.linebuffer.pixel_layout`\ ``(lanes, bits)``):
               ``data[l]`` (signed ``bits``), ``first`` (a frame's first element),
               ``last`` (its last element: the frame's height is where it ends).
``kind``       In(2): ``isa.POOL_NONE / POOL_MAX / POOL_AVG``  \
``k``          In(4): window, 1..kmax                           |  per-frame config,
``s``          In(4): stride, 1..15 (0 acts as 1)               |  sampled with the
``width``      In(range(max_width + 1)): ``W``, 1..max_width    |  frame's first
``avg_mul``    In(18): unsigned multiplier                      |  element (``first=1``)
``avg_shift``  In(6): 0..63                                    /
``o``          Out(stream of ``pixel_layout(lanes, bits)``): ``Ho * Wo`` elements a frame;
               ``first`` marks the first OUTPUT element, ``last`` the last.

Structure
---------
* :class:`~convc.hdl.linebuffer.WindowGenerator` (``kmax - 1`` line buffers of
  ``max_width`` words, one ``kmax x kmax`` window a pixel, with its row and column).
  The frame's configuration goes through a 4-deep FIFO from the input (where it is
  sampled) to the window side (where the frame's first window takes it), so frames of
  different configurations may follow each other back to back.
* a fixed-latency pipeline (:func:`~convc.hdl.arith.stall_pipeline`, one window a cycle):
  select (``row >= k-1``, ``col >= k-1``, row/column phase counters modulo ``s``),
  mask the bottom-right ``k x k`` part, registered max tree and sum tree
  (``ceil(log2(kmax^2))`` levels each), the average multiply in one DSP48E1 a lane
  (:func:`~convc.hdl.arith.mul_add_hdl`: ``sum * avg_mul[:17]`` plus ``avg_mul[17] ?
  sum << 17 : 0`` on the C port, exact for every 18-bit ``avg_mul``),
  :func:`~convc.hdl.arith.requantize_var_hdl` (barrel shift registered, saturate), the
  max/avg select register.  Windows that are not outputs leave the pipeline there.
* a one-element output register.  An output known not to be the frame's last (another
  output follows in its row: ``col + s <= W - 1``) goes out right away; the last output
  of a row is held until the next output (``last = 0``) or the frame's end (``last = 1``)
  arrives, since the frame's height is known only at its ``last`` element.

:attr:`PoolEngine.latency` (``WindowGenerator.LATENCY + 6 + ceil(log2(kmax^2))``) is the
cycles from an input pixel to its output when the output does not wait for the frame's
end (above).  Throughput: one input pixel a cycle.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from convc.compiler import isa
from convc.compiler.engine_figures import POOL_LIMITS, POOL_LUTS_PER_LANE
from convc.compiler.isa import ROW_COL_BITS

from .arith import (check_param, delay, delay_chain, mul_add_hdl, param, params, reduce_tree, requantize_var_hdl,
                    stall_pipeline)
from .fields import field_shape
from .linebuffer import WindowGenerator, pixel_layout

__all__ = ["PoolEngine", "config_layout"]

AVG_MUL_BITS = isa.shape("avg_mul").bits
CFG_FIFO_DEPTH = 4


def config_layout(max_width: int) -> data.StructLayout:
    """The per-frame configuration (what the config FIFO holds)."""
    return data.StructLayout({
        "kind": field_shape("pool"),
        "k": field_shape("pool_k"),
        "s": field_shape("pool_s"),
        "width": range(max_width + 1),
        "avg_mul": field_shape("avg_mul"),
        "avg_shift": field_shape("avg_shift"),
    })


class PoolEngine(wiring.Component):
    """Pooling engine (see the module docstring).

    Parameters
    ----------
    lanes : int       parallel codes an element (``hw.out_lanes``), 1..64
    bits : int        code width, 2..16
    kmax : int        largest pooling window (``hw.pool_kmax``), 1..15
    max_width : int   longest input row (``hw.max_width``), 1..4095
    """

    #: LUTs a lane, for the size search's logic estimate, and the limits: figures of
    #: :mod:`convc.compiler.engine_figures` (with their measurements)
    LUTS_PER_LANE = POOL_LUTS_PER_LANE

    LIMITS = POOL_LIMITS

    def __init__(self, *, lanes: int, bits: int = 16, kmax: int = 2, max_width: int = 1024):
        check_param(self, "lanes", lanes, *self.LIMITS["lanes"])
        check_param(self, "bits", bits, *isa.limit("bits"))
        check_param(self, "kmax", kmax, *self.LIMITS["kmax"])
        check_param(self, "max_width", max_width, 1, (1 << ROW_COL_BITS) - 1)
        self._lanes, self._bits, self._kmax, self._max_width = lanes, bits, kmax, max_width
        layout = pixel_layout(lanes, bits)
        super().__init__({
            "i": In(stream.Signature(layout)),
            "kind": In(field_shape("pool")),
            "k": In(field_shape("pool_k")),
            "s": In(field_shape("pool_s")),
            "width": In(range(max_width + 1)),
            "avg_mul": In(field_shape("avg_mul")),
            "avg_shift": In(field_shape("avg_shift")),
            "o": Out(stream.Signature(layout)),
        })

    lanes, bits, kmax, max_width = params("lanes", "bits", "kmax", "max_width")

    dsp_count = param("lanes", "DSP48E1 slices: one a lane (the average multiply).")
    tree_levels = property(lambda self: (self._kmax * self._kmax - 1).bit_length(),
                           doc="Levels of the max and sum trees over the ``kmax * kmax`` window.")
    pipe_latency = property(lambda self: 5 + self.tree_levels,
                            doc="Latency of the select / reduce / multiply / requantize pipeline.")

    @property
    def latency(self) -> int:
        """Cycles from an input pixel to its output (no backpressure), for an output
        that is not the last of its row (those wait for the next output or the frame's
        end, see the module docstring)."""
        return WindowGenerator.LATENCY + self.pipe_latency + 1

    def elaborate(self, platform):
        m = Module()
        lanes, bits, K, MW = self._lanes, self._bits, self._kmax, self._max_width
        LP = self.pipe_latency
        D = self.tree_levels
        cfg_lay = config_layout(MW)

        # ---- input side: window generator + config FIFO -----------------------------
        m.submodules.win = wg = WindowGenerator(lanes=lanes, bits=bits, kmax=K, max_width=MW)
        m.submodules.cfg_fifo = cfq = fifo.SyncFIFO(width=cfg_lay.size, depth=CFG_FIFO_DEPTH)
        cfg_in = Signal(cfg_lay, name="cfg_in")
        m.d.comb += [
            cfg_in.kind.eq(self.kind), cfg_in.k.eq(self.k), cfg_in.s.eq(self.s),
            cfg_in.width.eq(self.width), cfg_in.avg_mul.eq(self.avg_mul),
            cfg_in.avg_shift.eq(self.avg_shift),
        ]
        in_ok = ~self.i.payload.first | cfq.w_rdy
        m.d.comb += [
            wg.i.payload.eq(self.i.payload),
            wg.i.valid.eq(self.i.valid & in_ok),
            self.i.ready.eq(wg.i.ready & in_ok),
            wg.width.eq(self.width),
            cfq.w_data.eq(cfg_in.as_value()),
            cfq.w_en.eq(self.i.valid & self.i.ready & self.i.payload.first),
        ]

        # ---- window side: stage 0 (select, masks) -------------------------------------
        w = wg.o
        pin = SimpleNamespace(valid=Signal(name="pin_valid"), ready=Signal(name="pin_ready"))
        pout = SimpleNamespace(valid=Signal(name="pout_valid"), ready=Signal(name="pout_ready"))
        en = stall_pipeline(m, pin, pout, LP, name="pool")
        w_ok = ~w.payload.first | cfq.r_rdy
        m.d.comb += [
            pin.valid.eq(w.valid & w_ok),
            w.ready.eq(pin.ready & w_ok),
        ]
        wfire = w.valid & w.ready
        m.d.comb += cfq.r_en.eq(wfire & w.payload.first)

        cfg_reg = Signal(cfg_lay, name="cfg_reg")
        cfg = Signal(cfg_lay, name="cfg_cur")
        m.d.comb += cfg.eq(Mux(w.payload.first, cfq.r_data, cfg_reg.as_value()))
        with m.If(wfire):
            m.d.sync += cfg_reg.eq(cfg)

        passthru = (cfg.kind == isa.POOL_NONE) | (cfg.k == 0)
        k_eff = Signal(field_shape("pool_k"), name="k_eff")
        s_eff = Signal(field_shape("pool_s"), name="s_eff")
        w_eff = Signal(range(MW + 1), name="w_eff")
        km1 = Signal(field_shape("pool_k"), name="k_minus_1")
        m.d.comb += [
            k_eff.eq(Mux(passthru, 1, cfg.k)),
            s_eff.eq(Mux((cfg.kind == isa.POOL_NONE) | (cfg.s == 0), 1, cfg.s)),
            w_eff.eq(Mux(cfg.width == 0, 1, cfg.width)),
            km1.eq(k_eff - 1),
        ]
        row, col = w.payload.row, w.payload.col

        # row / column phase modulo s (0 at row / column k-1)
        cph_reg = Signal(field_shape("pool_s"), name="col_phase")
        rph_reg = Signal(field_shape("pool_s"), name="row_phase")
        cph = Signal(field_shape("pool_s"), name="col_phase_cur")
        rph = Signal(field_shape("pool_s"), name="row_phase_cur")
        cinc = Mux(cph_reg + 1 >= s_eff, 0, cph_reg + 1)
        rinc = Mux(rph_reg + 1 >= s_eff, 0, rph_reg + 1)
        m.d.comb += [
            cph.eq(Mux(col == km1, 0, cinc)),
            rph.eq(Mux(row == km1, 0, Mux(col == 0, rinc, rph_reg))),
        ]
        with m.If(wfire):
            m.d.sync += [cph_reg.eq(cph), rph_reg.eq(rph)]

        is_out = Signal(name="is_out")
        first_out = Signal(name="first_out")
        sure = Signal(name="not_last_for_sure")
        m.d.comb += [
            is_out.eq((row >= km1) & (col >= km1) & (rph == 0) & (cph == 0)),
            first_out.eq((row == km1) & (col == km1)),
            sure.eq(col + s_eff < w_eff),  # another output follows in this row
        ]

        # the bottom-right k x k part of the kmax x kmax window
        inside = {}
        for p in range(K):
            for q in range(K):
                inside[p, q] = (k_eff >= K - p) & (k_eff >= K - q)

        # ---- stage 1: masked leaves; then the trees ---------------------------------
        lo = -(1 << (bits - 1))
        max_res, sum_res = [], []
        for lane in range(lanes):
            mx_leaves, sm_leaves = [], []
            for p in range(K):
                for q in range(K):
                    v = w.payload.window[lane][p][q]
                    mx_leaves.append(delay(m, Mux(inside[p, q], v, lo), 1, en=en,
                                           name=f"mx_leaf_l{lane}_{p}_{q}"))
                    sm_leaves.append(delay(m, Mux(inside[p, q], v, 0), 1, en=en,
                                           name=f"sm_leaf_l{lane}_{p}_{q}"))
            max_res.append(reduce_tree(m, mx_leaves, en, f"max_l{lane}", op=lambda a, b: Mux(a > b, a, b),
                                       grow=0)[0])
            sum_res.append(reduce_tree(m, sm_leaves, en, f"sum_l{lane}")[0])
        SUMS = 1 + D  # stage of the tree outputs

        # ---- control travelling with the window -------------------------------------
        is_avg = delay_chain(m, cfg.kind == isa.POOL_AVG, LP, en, "is_avg")
        mul = delay_chain(m, cfg.avg_mul, SUMS, en, "avg_mul")
        ash = delay_chain(m, cfg.avg_shift, SUMS + 2, en, "avg_shift")
        out_d = delay_chain(m, is_out, LP, en, "is_out")
        first_d = delay_chain(m, first_out, LP, en, "first_out")
        sure_d = delay_chain(m, sure, LP, en, "sure")
        wlast_d = delay_chain(m, w.payload.last, LP, en, "wlast")

        # ---- average: one DSP48E1 a lane, requantize; select ------------------------
        res = Signal(data.ArrayLayout(signed(bits), lanes), name="pool_res", reset_less=True)
        lo17 = Signal(unsigned(AVG_MUL_BITS - 1), name="avg_mul_lo")
        hi1 = Signal(name="avg_mul_hi")
        m.d.comb += [lo17.eq(mul[SUMS][:AVG_MUL_BITS - 1]), hi1.eq(mul[SUMS][AVG_MUL_BITS - 1])]
        for lane in range(lanes):
            ssum = sum_res[lane]
            # sum * avg_mul = sum * avg_mul[:17] + (avg_mul[17] ? sum << 17 : 0)
            c = Mux(hi1, Cat(Const(0, AVG_MUL_BITS - 1), ssum).as_signed(), 0)
            prod = mul_add_hdl(m, ssum, lo17, c, en=en, name=f"avg_dsp_l{lane}")
            z = requantize_var_hdl(m, prod, ash[SUMS + 2], bits, domain="comb", en=en,
                                   shift_domain="sync", name=f"avg_z_l{lane}")
            mx = delay(m, max_res[lane], LP - 1 - SUMS, en=en, name=f"max_al_l{lane}")
            with m.If(en):
                m.d.sync += res[lane].eq(Mux(is_avg[LP - 1], z, mx))

        # ---- output register: hold a row's last output until its "last" is known -----
        cand_out, cand_first = out_d[LP], first_d[LP]
        cand_sure, cand_wlast = sure_d[LP], wlast_d[LP]
        cv = pout.valid
        hv = Signal(name="hold_valid")
        hsure = Signal(name="hold_sure")
        hfinal = Signal(name="hold_final")
        hfirst = Signal(name="hold_first")
        hdata = Signal(data.ArrayLayout(signed(bits), lanes), name="hold_data", reset_less=True)
        nxt_known = cv & (cand_out | cand_wlast)
        m.d.comb += [
            self.o.valid.eq(hv & (hsure | hfinal | nxt_known)),
            self.o.payload.data.eq(hdata),
            self.o.payload.first.eq(hfirst),
            self.o.payload.last.eq(hfinal | (~hsure & cv & cand_wlast & ~cand_out)),
            pout.ready.eq(~(cand_out | cand_wlast) | ~hv | self.o.ready),
        ]
        c_fire = cv & pout.ready
        with m.If(c_fire & cand_out):
            m.d.sync += [hv.eq(1), hdata.eq(res), hfirst.eq(cand_first), hsure.eq(cand_sure),
                         hfinal.eq(cand_wlast)]
        with m.Elif(self.o.valid & self.o.ready):
            m.d.sync += hv.eq(0)
        return m

r"""The local contrast normalization (LCN) engine: ``OP_LCN`` of :mod:`convc.compiler.isa`,
bit-exact to ``convc.sim.golden`` (every rule from :mod:`convc.compiler.numeric`)::

    h = K // 2;  G[p,q] = R[p] * Q[q]           (the compiler stores G, then R, then Q)
    m     = requantize(sum_{c,p,q} G[p,q] X[c][y+p-h][x+q-h], m_shift, bits)
    v[c]  = saturate(x[c] - m, bits)
    sq[c] = requantize(v[c] * v[c], sq_shift, bits)
    s2    = requantize(sum_{c,p,q} G[p,q] SQ[c][y+p-h][x+q-h], s2_shift, bits)
    s     = pwl_eval(sqrt table, s2)
    mean  = saturate(round_shift(sum_{y,x} s * mean_mul, mean_shift), bits)
    d     = max(s, mean, eps);  r = pwl_eval(recip table, d)
    y[c]  = requantize(v[c] * r, y_shift, bits)

``C <= channels`` maps are processed together, one pixel (all maps) an element, in two
sweeps of the frame (the memory side keeps ``v`` and ``s`` in scratch between them).

Sweep A (``a_i`` -> ``a_o``, and ``mean``)
------------------------------------------
``a_i`` carries ``x[0..channels-1]`` (maps ``>= n_maps`` are ignored) of an ``H x W``
raster, ``first`` on pixel (0, 0) and ``last`` on pixel (H-1, W-1) (``H`` is given by
``last``).  ``a_o`` gives ``(v[0..channels-1], s)`` per pixel in the same raster order
(``v[c] = 0`` for ``c >= n_maps``), ``first``/``last`` copied from the input pixel.  A
few cycles after ``a_o`` has passed the ``last`` pixel, ``mean`` holds the frame mean and
``mean_valid`` rises (it falls when the next frame's first ``a_o`` element passes).

Datapath::

    a_i -> [sum_c x] -> pad1 -> WindowGenerator 1 -> [window sum -> m; v; v*v; sq; sum_c sq]
     \-> FIFO x (C codes + first/last, real pixels) -^         |            \-> FIFO v
                                                               v                   |
                           a_o <- [window sum -> s2; sqrt PWL -> s] <- WindowGenerator 2 <- pad2

* ``pad1``/``pad2`` (:class:`~convc.hdl.framepad.FramePadder`) append
  ``hp = K - 1 - K//2`` zero columns to every row and ``hp`` zero rows to the frame;
  the window generators give zeros above and left of the frame, so the window whose
  bottom-right corner is padded element ``(r+hp, c+hp)`` is the zero-padded "same"
  window centred on ``(r, c)`` (for even ``K`` too).  Its ``K x K`` part is the bottom-right corner of the ``kmax x kmax``
  window.  Elements with ``row < hp`` or ``col < hp`` have no centre pixel and are
  dropped after the window sum.
* The sums over maps come first (``sum_c``), so each sweep needs ONE window of one
  value a pixel: the window on ``sum_c X`` gives ``m``, ``v``, ``sq`` of the centre;
  the window on ``sum_c SQ`` needs ``sq`` of pixels ``hp`` rows further down, so it is a
  second line-buffered stage fed by the first one's output (padded again by ``pad2``).
* Alignment (the "delay line" choice): ``x`` of a pixel is needed when its centred
  window comes out of generator 1, ``hp`` rows + ``hp`` pixels later; ``v`` likewise
  when the centred SQ window comes out of generator 2.  Both are kept in FIFOs of real
  pixels (``amaranth.lib.fifo.SyncFIFOBuffered``, ``channels * bits + 2`` bits wide):
  written in raster order when the pixel enters its stage, read by every centred window
  (which come in the same raster order).  No run-time delay arithmetic; the occupancy is
  at most ``hp * W + hp + 4``, so :attr:`LCNEngine.fifo_depth` =
  ``hpmax * max_width + hpmax + 8`` (``hpmax = (kmax-1)//2``) never fills (a full FIFO
  would only stall, never lose data).  Cost: 2 FIFOs x ``fifo_depth`` x
  ``(channels*bits + 2)`` bits -- for kmax=9, max_width=328, channels=3, bits=16:
  2 x 1324 x 50 bits (about 2 x 64 kbit; Yosys: 5 RAMB18E1 each).  Recomputing instead is impossible for ``x``
  (only the window sum is buffered), and for ``v`` it would need ``x`` and ``m`` delayed
  twice as long.
* Window sums are separable and exact (:mod:`convc.hdl.lcnwindow`): ``kmax`` column
  taps ``R`` then ``kmax`` row taps ``Q`` (``2*kmax`` when the column sums are wider
  than the 25-bit A port) instead of ``kmax**2`` multipliers, the sum 48 bits and
  wrapping like the hardware accumulator.
* ``mean``: ``sum s * mean_mul`` accumulated per ``a_o`` transfer in two 48-bit
  accumulators (``mean_mul`` = ``hi * 2**24 + lo``: ``s*lo`` and ``s*hi``, one DSP48E1
  each), combined mod 2**48, then ``requantize_var_hdl(., mean_shift, bits)``.

Sweep B (``b_i`` -> ``b_o``)
----------------------------
``b_i`` carries ``(v[0..channels-1], s)`` (the ``a_o`` layout), ``b_o`` gives
``y[0..channels-1]`` (the ``a_i`` layout), ``first``/``last`` copied.  Uses the
internal ``mean`` register (run sweep B after ``mean_valid``), ``eps`` and
``y_shift``.  A fixed-latency pipeline, :attr:`LCNEngine.latency_b` = 12:
``d = max(s, mean, eps)`` (1), reciprocal PWL (7), ``v*r`` (DSP, 2), requantize (2).

Configuration (plain inputs; hold them stable while a frame is in the engine)
------------------------------------------------------------------------------
``n_maps`` (C, 1..channels), ``width`` (W, 1..max_width), ``k`` (K, 1..kmax),
``m_shift``, ``sq_shift``, ``s2_shift``, ``y_shift`` (signed 8, the record's
``acc_shift``/``sq_shift``/``s2_shift``/``y_shift``), ``mean_mul`` (32), ``mean_shift``
(6), ``eps`` (16; must be ``<= 2**(bits-1) - 1`` as the ISA says; larger saturates).

Write ports: ``window`` (:func:`window_write_signature`): ``addr`` = word offset in the
record's window block (``w_addr + addr``): words ``0 .. K*K-1`` (G) are ignored, words
``K*K .. K*K+K-1`` are ``R``, ``K*K+K .. K*K+2K-1`` are ``Q`` -- set ``k`` before
loading (any order); ``sqrt_table``, ``recip_table`` (:func:`~convc.hdl.pwl.table_write_signature`,
isa table words).  Configuration state is not cleared by ``rst``.

Resources (Yosys fast flow, xc6v; kmax=9, channels=3, bits=16, max_width=328): 64 DSP48E1
(:func:`lcn_dsp_count`: 2 x (9 + 18) window taps, 3 ``v*v``, 3 ``v*r``, 2 mean, 2 PWL),
26 RAMB18E1 (2 x 8 line buffers of the window generators, 2 x 5 for the FIFOs), about
9.3k FF.

Limits: frames must be complete (``first`` ... ``last``, ``H*W`` pixels); ``H + hp``
rows must stay below 4096 (the window generator's 12-bit row count); no saturation
counter (the PWL units do not report their clamps).

Handshakes: every stage stalls as a whole (``stall_pipeline``); ``a_i.ready``/``b_i.ready``
depend combinationally on ``a_o.ready``/``b_o.ready`` (a long chain through sweep A; put
a skid buffer in front if timing needs it).  One element a cycle in every stage; sweep A
takes about ``(H + 2hp) * (W + hp)`` cycles a frame (the padding), sweep B ``H * W``.
"""

from __future__ import annotations

from amaranth.hdl import Array, C, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from convc.compiler import isa
from convc.compiler.engine_figures import LCN_LIMITS, LCN_LUTS_PER_CHANNEL, lcn_dsp_count, lcn_max_width, lcn_widths
from convc.compiler.numeric import ACC_BITS

from .arith import (check_param, delay, mul_add_hdl, params, reduce_tree, requantize_var_hdl, saturate_hdl,
                    stall_pipeline)
from .fields import field_shape
from .framepad import FramePadder
from .lcnwindow import TAP_BITS, filter_latency, levels, window_stage
from .linebuffer import WindowGenerator, pixel_layout
from .pwl import PWLCore, check_table, table_write_signature

__all__ = ["LCNEngine", "vs_layout", "window_write_signature", "lcn_layout",
           "lcn_dsp_count"]

_MUL_LO_BITS = 24      # mean_mul = hi * 2**24 + lo


def lcn_layout(channels: int, bits: int) -> data.StructLayout:
    """``a_i`` / ``b_o`` payload: ``data`` (``channels`` signed codes, map 0 in the low
    bits), ``first``, ``last`` (= :func:`~convc.hdl.linebuffer.pixel_layout`)."""
    return pixel_layout(channels, bits)


def vs_layout(channels: int, bits: int) -> data.StructLayout:
    """``a_o`` / ``b_i`` payload: ``v`` (``channels`` signed codes), ``s`` (signed),
    ``first``, ``last``."""
    return data.StructLayout({
        "v": data.ArrayLayout(signed(bits), channels),
        "s": signed(bits),
        "first": 1,
        "last": 1,
    })


def _window_words(kmax: int) -> int:
    return kmax * kmax + 2 * kmax


def window_write_signature(kmax: int) -> wiring.Signature:
    """The window-load port, seen from the writer: ``addr`` (word offset in the record's
    window block, ``ceil_log2(kmax**2 + 2*kmax)`` bits), ``data`` (16), ``en``."""
    return wiring.Signature({
        "addr": Out(max(1, ceil_log2(_window_words(kmax)))),
        "data": Out(isa.WORD_BITS),
        "en": Out(1),
    })


def _hp(K: int) -> int:
    """Bottom/right zero padding for a K window: K - 1 - K//2."""
    return max(K - 1 - K // 2, 0)


class LCNEngine(wiring.Component):
    """Local contrast normalization engine (see the module docstring).

    Parameters
    ----------
    channels : int    maps processed together (one pixel of each an element), 1..64
    bits : int        code width, 2..16
    kmax : int        largest window, 1..31
    max_width : int   longest row, 1..4095 - (kmax-1)//2
    max_segments : int  PWL segments of each table (default isa.MAX_SEGMENTS)
    """

    #: LUTs a channel, for the size search's logic estimate (the figure and its
    #: measurement: :data:`convc.compiler.engine_figures.LCN_LUTS_PER_CHANNEL`)
    LUTS_PER_CHANNEL = LCN_LUTS_PER_CHANNEL

    LATENCY_B = 1 + PWLCore.LATENCY + 2 + 2
    LIMITS = LCN_LIMITS
    #: the longest row for windows up to ``kmax`` (the window generators count
    #: ``W + (kmax-1)//2`` padded columns in ``ROW_COL_BITS`` bits)
    max_width_for = staticmethod(lcn_max_width)

    def __init__(self, *, channels: int, bits: int, kmax: int, max_width: int,
                 max_segments: int = isa.MAX_SEGMENTS):
        check_param(self, "channels", channels, *self.LIMITS["channels"])
        check_param(self, "bits", bits, *isa.limit("bits"))
        check_param(self, "kmax", kmax, *self.LIMITS["kmax"])
        check_param(self, "max_width", max_width, 1, self.max_width_for(kmax))
        check_param(self, "max_segments", max_segments, 1, isa.MAX_SEGMENTS)
        self._channels, self._bits, self._kmax = channels, bits, kmax
        self._max_width, self._max_segments = max_width, max_segments
        self._w = lcn_widths(channels, bits, kmax)
        super().__init__({
            "a_i": In(stream.Signature(lcn_layout(channels, bits))),
            "a_o": Out(stream.Signature(vs_layout(channels, bits))),
            "b_i": In(stream.Signature(vs_layout(channels, bits))),
            "b_o": Out(stream.Signature(lcn_layout(channels, bits))),
            "n_maps": In(range(channels + 1)),
            "width": In(range(max_width + 1)),
            "k": In(range(kmax + 1)),
            "m_shift": In(field_shape("acc_shift")),      # the record's acc_shift
            "sq_shift": In(field_shape("sq_shift")),
            "s2_shift": In(field_shape("s2_shift")),
            "y_shift": In(field_shape("y_shift")),
            "mean_mul": In(field_shape("mean_mul")),
            "mean_shift": In(field_shape("mean_shift")),
            "eps": In(field_shape("eps")),
            "window": In(window_write_signature(kmax)),
            "sqrt_table": In(table_write_signature()),
            "recip_table": In(table_write_signature()),
            "mean": Out(signed(bits)),
            "mean_valid": Out(1),
        })

    # ---- sizes ------------------------------------------------------------------
    channels, bits, kmax, max_width = params("channels", "bits", "kmax", "max_width")

    @property
    def max_pad(self) -> int:
        """Largest bottom/right padding, ``(kmax-1)//2``."""
        return max(_hp(k) for k in range(1, self._kmax + 1))

    @property
    def fifo_depth(self) -> int:
        """Depth of the x and v alignment FIFOs (see the module docstring)."""
        return self.max_pad * self._max_width + self.max_pad + 8

    @property
    def filter_latency(self) -> int:
        """Pipeline stages of one separable window sum."""
        return filter_latency(self._kmax, self._w["split"])

    @property
    def latency_m(self) -> int:
        """Stages from window generator 1 to the (v, sum_c sq) output."""
        return self.filter_latency + 2 + 1 + 2 + 2 + 1 + levels(self._channels)

    @property
    def latency_s(self) -> int:
        """Stages from window generator 2 to ``a_o``."""
        return self.filter_latency + 2 + PWLCore.LATENCY

    @property
    def latency_b(self) -> int:
        """Sweep B: cycles from an accepted ``b_i`` element to its ``b_o`` (no stall)."""
        return self.LATENCY_B

    @property
    def latency_a(self) -> int:
        """Sweep A pipeline latency (no stalls, input at full rate): the first ``a_o``
        word comes ``2*D + latency_a`` cycles after pixel (0, 0) is accepted, where
        ``D = hp*(W+hp) + hp`` (each stage's centred window needs the padded element
        ``hp`` rows + ``hp`` columns further), and the last one
        ``(H + 2hp)(W + hp) + hp - 1 + latency_a`` cycles after it."""
        return (1 + WindowGenerator.LATENCY + self.latency_m
                + 1 + WindowGenerator.LATENCY + self.latency_s)

    @property
    def dsp_count(self) -> int:
        return lcn_dsp_count(self._channels, self._kmax, self._bits)

    def check_table(self, table) -> None:
        """Raise ``ValueError`` if ``table`` does not fit this engine's PWL units."""
        check_table(table, self._bits, self._bits, self._max_segments)

    # ---- hardware ---------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        Cn, bits, kmax = self._channels, self._bits, self._kmax
        xw, split = self._w["xbits"], self._w["split"]
        lanes = -(-xw // 16)
        lb = max(-(-xw // lanes), 2)

        # ---- configuration -------------------------------------------------------
        hp = Signal(range(kmax), name="hp")
        m.d.comb += hp.eq(Array([_hp(k) for k in range(kmax + 1)])[self.k])
        rtap = [Signal(signed(TAP_BITS), name=f"rtap{p}", reset_less=True) for p in range(kmax)]
        qtap = [Signal(signed(TAP_BITS), name=f"qtap{p}", reset_less=True) for p in range(kmax)]
        wa, wd = self.window.addr, self.window.data
        kk = Signal(range(kmax * kmax + 1), name="kk")
        m.d.comb += kk.eq(Array([k * k for k in range(kmax + 1)])[self.k])
        rel = Signal(signed(len(wa) + 2), name="win_rel")
        m.d.comb += rel.eq(wa - kk)
        t_r = Signal(signed(len(rel) + 2), name="win_tr")
        t_q = Signal(signed(len(rel) + 2), name="win_tq")
        m.d.comb += [t_r.eq(rel + kmax - self.k), t_q.eq(rel + kmax - 2 * self.k)]
        with m.If(self.window.en):
            for P in range(kmax):
                with m.If(P < kmax - self.k):
                    m.d.sync += [rtap[P].eq(0), qtap[P].eq(0)]
                with m.Else():
                    with m.If((rel >= 0) & (t_r == P)):
                        m.d.sync += rtap[P].eq(wd)
                    with m.If(t_q == P):
                        m.d.sync += qtap[P].eq(wd)

        def map_mask(c):
            return C(c, range(Cn + 1)) < self.n_maps

        # =========================================================================
        # sweep A
        # =========================================================================
        m.submodules.pad1 = pad1 = FramePadder(bits=xw, max_width=self._max_width,
                                               max_pad=self.max_pad)
        m.submodules.pad2 = pad2 = FramePadder(bits=xw, max_width=self._max_width,
                                               max_pad=self.max_pad)
        wg_w = self._max_width + self.max_pad
        m.submodules.wg1 = wg1 = WindowGenerator(lanes=lanes, bits=lb, kmax=kmax, max_width=wg_w)
        m.submodules.wg2 = wg2 = WindowGenerator(lanes=lanes, bits=lb, kmax=kmax, max_width=wg_w)
        fw = Cn * bits + 2
        m.submodules.fifo_x = fx = fifo.SyncFIFOBuffered(width=fw, depth=self.fifo_depth)
        m.submodules.fifo_v = fv = fifo.SyncFIFOBuffered(width=fw, depth=self.fifo_depth)
        for n, (pad, wg) in enumerate(((pad1, wg1), (pad2, wg2))):
            m.d.comb += [pad.width.eq(self.width), pad.pad.eq(hp), wg.width.eq(self.width + hp)]
            ext = Signal(signed(lanes * lb), name=f"pad{n + 1}_ext")
            m.d.comb += ext.eq(pad.o.payload.data)
            for j in range(lanes):
                m.d.comb += wg.i.payload.data[j].eq(ext[j * lb:(j + 1) * lb])
            m.d.comb += [
                wg.i.payload.first.eq(pad.o.payload.first),
                wg.i.payload.last.eq(pad.o.payload.last),
                wg.i.valid.eq(pad.o.valid),
                pad.o.ready.eq(wg.i.ready),
            ]

        # ---- input: sum over maps -> pad1, x -> FIFO x (fork) ----------------------
        ai = self.a_i
        xsum = 0
        for c in range(Cn):
            xsum = xsum + Mux(map_mask(c), ai.payload.data[c], 0)
        m.d.comb += [
            pad1.i.payload.data.eq(xsum),
            pad1.i.payload.first.eq(ai.payload.first),
            pad1.i.payload.last.eq(ai.payload.last),
            pad1.i.valid.eq(ai.valid & fx.w_rdy),
            fx.w_en.eq(ai.valid & pad1.i.ready),
            fx.w_data.eq(Cat(ai.payload.data.as_value(), ai.payload.first, ai.payload.last)),
            ai.ready.eq(pad1.i.ready & fx.w_rdy),
        ]

        def unpack(word):
            vals = [word[c * bits:(c + 1) * bits].as_signed() for c in range(Cn)]
            return vals, word[Cn * bits], word[Cn * bits + 1]

        # ---- stage M: window 1 -> m, v, sq, sum_c sq ------------------------------
        LM, F = self.latency_m, self.filter_latency
        stage = dict(kmax=kmax, split=split, lanes=lanes)
        enm, pout, acc, centred, xword = window_stage(m, wg1, fx, hp, rtap, qtap, **stage, latency=LM,
                                                      name="stm", sum_name="wm")
        keep = delay(m, centred, LM, en=enm, name="stm_keep")
        xs, xfirst, xlast = unpack(xword)
        mm = requantize_var_hdl(m, acc, self.m_shift, bits, domain="sync", en=enm,
                                shift_domain="sync", name="m")             # stage F+2
        # x (popped at stage 0) aligned with m (stage F+2)
        xs_d = [delay(m, xs[c], F + 2, en=enm, name=f"x{c}") for c in range(Cn)]
        vv = [saturate_hdl(m, xs_d[c] - mm, bits, domain="sync", en=enm, name=f"v{c}")
              for c in range(Cn)]                                          # stage F+3
        vmask = [Mux(map_mask(c), vv[c], 0) for c in range(Cn)]
        sqp = [mul_add_hdl(m, vv[c], vv[c], C(0, signed(2)), en=enm, acc_bits=2 * bits,
                           name=f"vv{c}") for c in range(Cn)]              # stage F+5
        sq = [requantize_var_hdl(m, sqp[c], self.sq_shift, bits, domain="sync", en=enm,
                                 shift_domain="sync", name=f"sq{c}") for c in range(Cn)]  # F+7
        sqm = [delay(m, Mux(map_mask(c), sq[c], 0), 1, en=enm, name=f"sqm{c}")
               for c in range(Cn)]                                         # F+8
        sqsum, lc = reduce_tree(m, sqm, enm, "sqsum", odd="odd")                           # F+8+lc = LM
        assert F + 8 + lc == LM
        v_out = [delay(m, vmask[c], LM - (F + 3), en=enm, name=f"vo{c}") for c in range(Cn)]
        f_out = delay(m, xfirst, LM, en=enm, name="stm_first")
        l_out = delay(m, xlast, LM, en=enm, name="stm_last")
        # output: drop non-centred; fork to pad2 (sum_c sq) and FIFO v
        fork_ready = Signal(name="stm_fork_ready")
        m.d.comb += [
            fork_ready.eq(pad2.i.ready & fv.w_rdy),
            pout.ready.eq(fork_ready | ~keep),
            pad2.i.valid.eq(pout.valid & keep & fv.w_rdy),
            fv.w_en.eq(pout.valid & keep & pad2.i.ready),
            pad2.i.payload.data.eq(sqsum),
            pad2.i.payload.first.eq(f_out),
            pad2.i.payload.last.eq(l_out),
            fv.w_data.eq(Cat(*v_out, f_out, l_out)),
        ]

        # ---- stage S: window 2 -> s2 -> s ----------------------------------------
        LS = self.latency_s
        ens, pout2, acc2, centred2, vword = window_stage(m, wg2, fv, hp, rtap, qtap, **stage, latency=LS,
                                                         name="sts", sum_name="ws")
        s2 = requantize_var_hdl(m, acc2, self.s2_shift, bits, domain="sync", en=ens,
                                shift_domain="sync", name="s2")           # F+2
        m.submodules.sqrt = sqrt = PWLCore(bits, bits, max_segments=self._max_segments)
        wiring.connect(m, wiring.flipped(self.sqrt_table), sqrt.table)
        m.d.comb += [sqrt.en.eq(ens), sqrt.x.eq(s2)]                       # y at F+2+7 = LS
        keep2 = delay(m, centred2, LS, en=ens, name="sts_keep")
        vvals, vfirst, vlast = unpack(vword)
        ao = self.a_o
        for c in range(Cn):
            m.d.comb += ao.payload.v[c].eq(delay(m, vvals[c], LS, en=ens, name=f"sv{c}"))
        m.d.comb += [
            ao.payload.s.eq(sqrt.y),
            ao.payload.first.eq(delay(m, vfirst, LS, en=ens, name="sts_first")),
            ao.payload.last.eq(delay(m, vlast, LS, en=ens, name="sts_last")),
            ao.valid.eq(pout2.valid & keep2),
            pout2.ready.eq(ao.ready | ~keep2),
        ]

        # ---- frame mean: sum s * mean_mul (two 48-bit accumulators) --------------
        xfer = Signal(name="mean_xfer")
        m.d.comb += xfer.eq(ao.valid & ao.ready)
        s1 = Signal(signed(bits), name="mean_s", reset_less=True)
        mul_lo = Signal(unsigned(_MUL_LO_BITS), name="mean_mul_lo", reset_less=True)
        mul_hi = Signal(unsigned(isa.shape("mean_mul").bits - _MUL_LO_BITS), name="mean_mul_hi", reset_less=True)
        t1, f1, l1 = Signal(name="mean_t1"), Signal(name="mean_f1"), Signal(name="mean_l1")
        m.d.sync += [s1.eq(ao.payload.s), mul_lo.eq(self.mean_mul[:_MUL_LO_BITS]),
                     mul_hi.eq(self.mean_mul[_MUL_LO_BITS:]),
                     t1.eq(xfer), f1.eq(ao.payload.first), l1.eq(ao.payload.last)]
        p_lo = mul_add_hdl(m, s1, mul_lo, C(0, signed(2)), name="mean_lo")   # +2
        p_hi = mul_add_hdl(m, s1, mul_hi, C(0, signed(2)), name="mean_hi")
        t3 = Signal(name="mean_t3")
        f3 = delay(m, f1, 2, name="mean_f")
        l3 = delay(m, l1, 2, name="mean_l")
        t2 = Signal(name="mean_t2")
        m.d.sync += [t2.eq(t1), t3.eq(t2)]
        acc_lo = Signal(signed(ACC_BITS), name="mean_acc_lo", reset_less=True)
        acc_hi = Signal(signed(ACC_BITS - _MUL_LO_BITS), name="mean_acc_hi", reset_less=True)
        with m.If(t3):
            m.d.sync += [
                acc_lo.eq((Mux(f3, 0, acc_lo) + p_lo)[:ACC_BITS].as_signed()),
                acc_hi.eq((Mux(f3, 0, acc_hi) + p_hi)[:ACC_BITS - _MUL_LO_BITS].as_signed()),
            ]
        d4 = Signal(name="mean_d4")
        m.d.sync += d4.eq(t3 & l3)
        total = Signal(signed(ACC_BITS), name="mean_total", reset_less=True)
        with m.If(d4):
            m.d.sync += total.eq((acc_lo + (acc_hi << _MUL_LO_BITS))[:ACC_BITS].as_signed())
        mean_q = requantize_var_hdl(m, total, self.mean_shift, bits, domain="sync",
                                    shift_domain="sync", name="mean_q")
        d5, d6, d7 = Signal(name="mean_d5"), Signal(name="mean_d6"), Signal(name="mean_d7")
        m.d.sync += [d5.eq(d4), d6.eq(d5), d7.eq(d6)]
        mean = Signal(signed(bits), name="mean_reg", reset_less=True)
        mean_valid = Signal(name="mean_valid_reg")
        with m.If(d7):
            m.d.sync += [mean.eq(mean_q), mean_valid.eq(1)]
        with m.If(xfer & ao.payload.first):
            m.d.sync += mean_valid.eq(0)
        m.d.comb += [self.mean.eq(mean), self.mean_valid.eq(mean_valid)]

        # =========================================================================
        # sweep B
        # =========================================================================
        bi, bo = self.b_i, self.b_o
        LB = self.LATENCY_B
        enb = stall_pipeline(m, bi, bo, LB, name="swb")
        s_in = bi.payload.s
        mx = Mux(s_in > mean, s_in, mean)
        eps_s = Cat(self.eps, C(0, 1)).as_signed()
        dd = saturate_hdl(m, Mux(eps_s > mx, eps_s, mx), bits, domain="sync", en=enb,
                          name="d")                                        # stage 1
        m.submodules.recip = recip = PWLCore(bits, bits, max_segments=self._max_segments)
        wiring.connect(m, wiring.flipped(self.recip_table), recip.table)
        m.d.comb += [recip.en.eq(enb), recip.x.eq(dd)]                     # r at stage 8
        for c in range(Cn):
            v8 = delay(m, bi.payload.v[c], 1 + PWLCore.LATENCY, en=enb, name=f"bv{c}")
            pr = mul_add_hdl(m, v8, recip.y, C(0, signed(2)), en=enb, acc_bits=2 * bits,
                             name=f"vr{c}")                                # stage 10
            y = requantize_var_hdl(m, pr, self.y_shift, bits, domain="sync", en=enb,
                                   shift_domain="sync", name=f"y{c}")      # stage 12
            m.d.comb += bo.payload.data[c].eq(y)
        m.d.comb += [
            bo.payload.first.eq(delay(m, bi.payload.first, LB, en=enb, name="swb_first")),
            bo.payload.last.eq(delay(m, bi.payload.last, LB, en=enb, name="swb_last")),
        ]
        return m

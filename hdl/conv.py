r"""The convolution engine: the ``acc`` and ``z`` part of ``OP_CONV`` (compiler/isa.py) for
one *band* of one record, bit-exact to :mod:`convc.compiler.numeric`::

    acc[o](y,x) = (B[o] << bias_shift)
                  + sum_g sum_i sum_{p,q<K} W[g][o][i][p][q] * X[g][i][y*S+p][x*S+q]
    z[o](y,x)   = requantize(acc[o](y,x), acc_shift, bits)       # round-half-up, saturate

for ``o < Po = hw.out_lanes`` (output lanes), ``i < Pi = hw.in_lanes`` (input lanes), input
groups ``g < G`` (a pass's ``n_in`` maps, ``Pi`` at a time), ``y < conv_h = (R-K)//S + 1``,
``x < conv_w = (Wp-K)//S + 1``.  The hardware accumulator is 48 bits and wraps (the
models count an ``acc`` outside 48 bits as a compiler error).

Ports
-----
``bias``    In(stream of ``ArrayLayout(signed(32), Po)``): one element a band, the band's
            start.  The configuration inputs below are sampled when it is accepted.
``weight``  In(stream of ``signed(bits)``): for each group ``g`` in ``0..G-1``:
            ``Po*Pi*K*K`` words, order ``[o][i][p][q]`` (``q`` fastest); a lane with no
            map gets zero weights.
``i``       In(stream of :func:`~convc.hdl.linebuffer.pixel_layout`\ ``(Pi, bits)``), the
            main pixel stream: element = one pixel per input lane, raster order, for each
            group ``g`` in ``0..G-1``: rows ``0..R-1`` (``preload = 0``) or rows
            ``K-1..R-1`` (``preload = 1``); ``first`` on the first element of a group's
            part, ``last`` on its last.
``ip``      In(stream, same layout), the preload stream (``preload = 1`` and ``K > 1``
            only): for each group, rows ``0..K-2``; ``first``/``last`` likewise.
``o``       Out(stream of :func:`conv_out_layout`\ ``(Po, bits)``): one element per conv
            position ``(y, x)``, raster order, ``data[o] = z[o](y, x)``; ``first`` on the
            band's first output, ``last`` on its last.
``kernel``, ``stride``, ``width``, ``rows``, ``groups``, ``acc_shift``, ``bias_shift``, ``preload``
            In: the band configuration ``K`` (1..kmax), ``S`` (1..15), ``Wp`` (K..max_width,
            padding included by the feeder), ``R`` (K..4095), ``G`` (>= 1), ``acc_shift``
            (signed 8), ``bias_shift`` (0..63), ``preload`` (0/1; ignored for ``K = 1``).
            Plain inputs, sampled with the ``bias`` element; they may change at any other
            time.
``busy``    Out(1): a band is in progress (from its bias until its last output left).
``err``     Out(1): the band's configuration is out of range, or its conv output
            (``conv_h * conv_w``) does not fit the partial-sum buffer while ``G > 1``
            (``psum_words``).  Cleared by the next band's bias.  The results of such a band
            are undefined (the compiler never issues one; see :meth:`ConvEngine.check_band`).

Band protocol
-------------
The four input streams may be offered at the same time (independent DMA streams) or one
after the other (for each group: its ``ip`` part, then its ``i`` part); the engine takes
what it can use:

* ``bias`` only while idle (the previous band has fully left the pipeline);
* ``weight`` words of group ``g`` while the shadow weight bank is free: group 0 right after
  the bias, group ``g+1`` while group ``g`` streams (double-buffered weights: the shadow
  bank is copied into the multipliers' weight registers in the cycle group ``g+1``'s first
  valid window enters the multipliers);
* pixels: two line-buffer banks (two :class:`~convc.hdl.linebuffer.WindowGenerator` s);
  group ``g`` uses bank ``g % 2``.  With ``preload``, ``ip`` loads group ``g+1``'s first
  ``K-1`` rows into the other bank while group ``g``'s main rows stream on ``i``, so every
  group after the first starts with its window already warm (``(K-1)*Wp`` warm-up, then
  ``groups * (R-K+1)*Wp``).  Without it, ``i`` carries whole groups (each pays its
  ``K-1`` warm-up rows).

The main stream waits only at a group's first valid window if that group's weights are
not in yet (before group 0: ``Po*Pi*K*K`` cycles from the bias, mostly hidden behind the
warm-up rows; later groups: if a group's main part is shorter than ``Po*Pi*K*K``
cycles).  :meth:`ConvEngine.band_cycles` gives the exact timing.

Datapath
--------
``i``/``ip`` -> two window generators (``Pi`` lanes, ``kmax x kmax`` windows, one per
input pixel, latency 2) -> window filter on the current group's bank (keeps the window
at ``(r, c)`` iff ``r >= K-1``, ``c >= K-1`` and both are ``K-1`` plus a multiple of
``S``; the other bank's windows of rows ``< K-1`` -- a preload -- are dropped as they
come; a kernel ``K < kmax`` uses the bottom-right ``K x K`` part of the window: the
weights outside it are zero) -> a fixed-latency pipeline with one global stall (the
scheme of :func:`~convc.hdl.arith.stall_pipeline`, with its own valid bits because
elements of groups ``0..G-2`` end at the partial-sum write)::

    stage 1          window registers (A) | active weight registers (B)
    stage 2, 3       Po*Pi*kmax*kmax products, mul_add_hdl (DSP48E1: M, P registers)
    stage 4..3+T     per output lane, a pipelined adder tree of the Pi*kmax*kmax
                     products (T = ceil(log2(Pi*kmax*kmax)) levels, in LUTs/carry chains)
    stage 4+T        acc = tree + (B[o] << bias_shift) in group 0, + psum[o][n] in
                     groups >= 1 (psum read one stage earlier); 48 bits
    (4+T: write)     groups 0..G-2: psum[o][n] <- acc; those elements end here
    stage 5+T, 6+T   last group: requantize_var_hdl(acc, acc_shift, bits) -> o

``n`` counts the group's valid windows (``y * conv_w + x``); psum is one
``psum_words x 48`` block-RAM buffer per output lane.  A partial sum is read two stages
before it is written; should element ``n`` of group ``g+1`` come within two stages of
element ``n`` of group ``g`` (groups of one or two pixels), the engine inserts bubbles.

Latency (:attr:`ConvEngine.latency`): ``2 + 6 + T`` cycles from the input pixel that
completes a window of the last group to its output (no stalls).  Throughput: one input
pixel a cycle per lane and bank; every valid window position gives its output in the
cycle its pixel arrives (plus the latency); the first ``K-1`` rows (without preload) and
the first ``K-1`` columns of every row (and the skipped positions for ``S > 1``) give
none.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from convc.compiler import isa
from convc.compiler.engine_figures import CONV_LIMITS, CONV_LUTS_PER_MULTIPLIER
from convc.compiler.hwconfig import HardwareConfig
from convc.compiler.isa import BIAS_BITS, ROW_COL_BITS
from convc.compiler.numeric import ACC_BITS

from .arith import check_param, delay, delegate, mul_add_hdl, param, reduce_tree, requantize_var_hdl
from .convband import BandTiming
from .fields import GROUP_BITS, field_shape
from .linebuffer import WindowGenerator, pixel_layout

__all__ = ["ConvEngine", "conv_out_layout", "bias_layout"]


def conv_out_layout(lanes: int, bits: int) -> data.StructLayout:
    """Output payload: ``data`` (``lanes`` signed ``bits``-wide codes, lane 0 in the low
    bits), ``first``, ``last`` (the same layout as the pixel input)."""
    return pixel_layout(lanes, bits)


def bias_layout(lanes: int) -> data.ArrayLayout:
    """Bias payload: ``lanes`` signed 32-bit biases (lane 0 in the low bits)."""
    return data.ArrayLayout(signed(BIAS_BITS), lanes)


class ConvEngine(BandTiming, wiring.Component):
    """Convolution engine sized by a :class:`~convc.compiler.hwconfig.HardwareConfig`
    (``in_lanes``, ``out_lanes``, ``kmax``, ``bits``, ``max_width``, ``psum_words``); see
    the module docstring for ports, protocol and pipeline."""

    #: the configurations the engine is built for (:class:`HardwareConfig` checks them) and
    #: LUTs a kernel multiplier for the size search's logic estimate: figures of
    #: :mod:`convc.compiler.engine_figures` (written there, with their measurements)
    LIMITS = CONV_LIMITS
    LUTS_PER_MULTIPLIER = CONV_LUTS_PER_MULTIPLIER

    def __init__(self, hw: HardwareConfig):
        if not isinstance(hw, HardwareConfig):
            self._MustUse__silence = True
            raise TypeError(f"ConvEngine needs a HardwareConfig, got {type(hw).__name__}")
        for name, (lo, hi) in self.LIMITS.items():
            check_param(self, name, getattr(hw, name), lo, hi)
        check_param(self, "bits", hw.bits, *isa.limit("bits"))
        self._hw = hw
        Pi, Po, bits = hw.in_lanes, hw.out_lanes, hw.bits
        super().__init__({
            "bias": In(stream.Signature(bias_layout(Po))),
            "weight": In(stream.Signature(signed(bits))),
            "i": In(stream.Signature(pixel_layout(Pi, bits))),
            "ip": In(stream.Signature(pixel_layout(Pi, bits))),
            "o": Out(stream.Signature(conv_out_layout(Po, bits))),
            "kernel": In(field_shape("kernel")),
            "stride": In(field_shape("stride")),
            "width": In(ROW_COL_BITS),
            "rows": In(ROW_COL_BITS),
            "groups": In(GROUP_BITS),
            "acc_shift": In(field_shape("acc_shift")),
            "bias_shift": In(field_shape("bias_shift")),
            "preload": In(1),
            "busy": Out(1),
            "err": Out(1),
        })

    # ---- sizes ---------------------------------------------------------------------
    hw = param("hw")
    in_lanes, out_lanes, kmax, bits, max_width = delegate("hw", "in_lanes", "out_lanes", "kmax", "bits",
                                                          "max_width")
    psum_words = delegate("hw", "psum_words", doc="Depth of each output lane's partial-sum buffer (48-bit words).")
    psum_depth = psum_words

    line_buffer_banks = property(lambda self: 2, doc="Two: group g streams through bank g % 2 while group g+1 "
                                                     "preloads the other.")
    line_buffers = property(lambda self: 2 * (self._hw.kmax - 1), doc="Line buffers (``max_width`` words of "
                            "``in_lanes * bits``): 2 banks x (kmax-1).")
    products_per_lane = property(lambda self: self._hw.in_lanes * self._hw.kmax ** 2,
                                 doc="Products one output lane sums a cycle: ``in_lanes * kmax * kmax``.")
    multipliers = property(lambda self: self._hw.out_lanes * self.products_per_lane,
                           doc="``in_lanes * out_lanes * kmax * kmax``.")
    dsp = property(lambda self: self.multipliers,
                   doc="DSP48E1 slices the engine assumes: one a multiplier (== ``hw.dsp_conv``).")
    weight_words = property(lambda self: self.multipliers,
                            doc="Weight registers in one bank (two banks: shadow and active).")
    tree_levels = property(lambda self: ceil_log2(self.products_per_lane),
                           doc="Pipelined adder-tree levels per output lane: ``ceil(log2(Pi*kmax*kmax))``.")
    mac_latency = property(lambda self: 6 + self.tree_levels,
                           doc="Stages from a window entering the multipliers to its output register.")

    @property
    def latency(self) -> int:
        """Cycles from the accepted input pixel completing a (last-group) window to that
        window's output being valid, without stalls: window generator + multiply
        pipeline."""
        return WindowGenerator.LATENCY + self.mac_latency

    # ---- hardware ------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        hw = self._hw
        Pi, Po, KM, bits = hw.in_lanes, hw.out_lanes, hw.kmax, hw.bits
        T = self.tree_levels
        s_sum = 3 + T            # stage holding the adder-tree sums
        s_acc = s_sum + 1        # stage holding acc (psum write)
        L = s_acc + 2            # output stage (requantize: 2 stages)
        assert L == self.mac_latency
        PW = hw.psum_words

        # two line-buffer banks: group g streams through bank g % 2
        wgs = [WindowGenerator(lanes=Pi, bits=bits, kmax=KM, max_width=hw.max_width) for _ in range(2)]
        m.submodules.wg0, m.submodules.wg1 = wgs

        # ---- band state ----------------------------------------------------------
        IDLE, ACTIVE, DRAIN = 0, 1, 2
        state = Signal(2, name="state")
        cfg_km1 = Signal(field_shape("kernel"), name="cfg_km1")   # K - 1
        cfg_off = Signal(range(KM), name="cfg_off")           # kmax - K
        cfg_s = Signal(field_shape("stride"), name="cfg_s")
        cfg_w = Signal(ROW_COL_BITS, name="cfg_w")
        cfg_r = Signal(ROW_COL_BITS, name="cfg_r")
        cfg_g = Signal(GROUP_BITS, name="cfg_g")
        cfg_gm1 = Signal(GROUP_BITS, name="cfg_gm1")          # G - 1
        cfg_acc = Signal(field_shape("acc_shift"), name="cfg_acc_shift")
        cfg_pre = Signal(name="cfg_preload")                 # preload & (K > 1)
        bias_t = [Signal(signed(ACC_BITS), name=f"bias_term{o}", reset_less=True) for o in range(Po)]
        err = Signal(name="err_r")
        m.d.comb += [self.busy.eq(state != IDLE), self.err.eq(err)]

        take_bias = self.bias.valid & self.bias.ready
        m.d.comb += self.bias.ready.eq(state == IDLE)
        k_in, s_in, w_in, r_in, g_in = self.kernel, self.stride, self.width, self.rows, self.groups
        bad_cfg = ((k_in == 0) | (k_in > KM) | (s_in == 0) | (w_in < k_in) | (w_in > hw.max_width)
                   | (r_in < k_in) | (g_in == 0))
        with m.If(take_bias):
            m.d.sync += [
                cfg_km1.eq(k_in - 1), cfg_off.eq(KM - k_in),
                cfg_s.eq(s_in), cfg_w.eq(w_in), cfg_r.eq(r_in),
                cfg_g.eq(g_in), cfg_gm1.eq(g_in - 1), cfg_acc.eq(self.acc_shift),
                cfg_pre.eq(self.preload & (k_in > 1)),
                err.eq(bad_cfg), state.eq(ACTIVE),
            ]
            for o in range(Po):
                # numeric.round_shift(B, -bias_shift): an exact left shift (wraps to 48 bits
                # like the accumulator; the models flag any acc outside 48 bits)
                shifted = self.bias.payload[o].as_signed() << self.bias_shift
                m.d.sync += bias_t[o].eq(shifted[:ACC_BITS].as_signed())

        # ---- weights: shadow bank (loaded from the stream) and active bank ------
        sh = [[[[Signal(signed(bits), name=f"wsh_o{o}_i{i}_{p}_{q}", reset_less=True)
                 for q in range(KM)] for p in range(KM)] for i in range(Pi)] for o in range(Po)]
        act = [[[[Signal(signed(bits), name=f"wact_o{o}_i{i}_{p}_{q}", reset_less=True)
                  for q in range(KM)] for p in range(KM)] for i in range(Pi)] for o in range(Po)]
        sh_full = Signal(name="sh_full")
        lg = Signal(GROUP_BITS, name="loaded_groups")
        ld_o = Signal(range(Po), name="ld_o")
        ld_i = Signal(range(Pi), name="ld_i")
        ld_p = Signal(range(KM), name="ld_p")                 # kmax coordinates: kmax-K..kmax-1
        ld_q = Signal(range(KM), name="ld_q")
        m.d.comb += self.weight.ready.eq((state == ACTIVE) & ~sh_full & (lg != cfg_g))
        take_w = self.weight.valid & self.weight.ready
        with m.If(take_bias):
            m.d.sync += [sh_full.eq(0), lg.eq(0), ld_o.eq(0), ld_i.eq(0),
                         ld_p.eq(KM - k_in), ld_q.eq(KM - k_in)]
        with m.Elif(take_w):
            with m.If(ld_q == KM - 1):
                m.d.sync += ld_q.eq(cfg_off)
                with m.If(ld_p == KM - 1):
                    m.d.sync += ld_p.eq(cfg_off)
                    with m.If(ld_i == Pi - 1):
                        m.d.sync += ld_i.eq(0)
                        with m.If(ld_o == Po - 1):
                            m.d.sync += [ld_o.eq(0), sh_full.eq(1), lg.eq(lg + 1)]
                        with m.Else():
                            m.d.sync += ld_o.eq(ld_o + 1)
                    with m.Else():
                        m.d.sync += ld_i.eq(ld_i + 1)
                with m.Else():
                    m.d.sync += ld_p.eq(ld_p + 1)
            with m.Else():
                m.d.sync += ld_q.eq(ld_q + 1)
        # one-hot decode of the write position (kernel positions outside K x K are
        # cleared at the band start and never written: zero weights)
        sel_o = [Signal(name=f"wsel_o{o}") for o in range(Po)]
        sel_i = [Signal(name=f"wsel_i{i}") for i in range(Pi)]
        sel_p = [Signal(name=f"wsel_p{p}") for p in range(KM)]
        sel_q = [Signal(name=f"wsel_q{q}") for q in range(KM)]
        m.d.comb += [s.eq(ld_o == o) for o, s in enumerate(sel_o)]
        m.d.comb += [s.eq(ld_i == i) for i, s in enumerate(sel_i)]
        m.d.comb += [s.eq(ld_p == p) for p, s in enumerate(sel_p)]
        m.d.comb += [s.eq(ld_q == q) for q, s in enumerate(sel_q)]
        wdata = self.weight.payload
        for o in range(Po):
            for i in range(Pi):
                for p in range(KM):
                    for q in range(KM):
                        with m.If(take_bias):
                            m.d.sync += sh[o][i][p][q].eq(0)
                        with m.Elif(take_w & sel_o[o] & sel_i[i] & sel_p[p] & sel_q[q]):
                            m.d.sync += sh[o][i][p][q].eq(wdata)

        # ---- pixels into the two banks --------------------------------------------
        # pre_g: groups whose first K-1 rows went in through ``ip`` (preload mode);
        # main_g: groups whose (remaining) rows went in through ``i``.  Group g uses bank
        # g % 2: ``ip`` preloads group pre_g while group main_g = pre_g - 1 streams.
        pre_g = Signal(GROUP_BITS, name="pre_groups")
        main_g = Signal(GROUP_BITS, name="main_groups")
        lead = Signal(GROUP_BITS, name="pre_lead")            # pre_g - main_g: 0, 1 or 2
        m.d.comb += lead.eq(pre_g - main_g)
        ip_ok = Signal(name="ip_ok")
        main_ok = Signal(name="main_ok")
        m.d.comb += [
            ip_ok.eq((state == ACTIVE) & cfg_pre & (pre_g != cfg_g) & (lead < 2)),
            main_ok.eq((state == ACTIVE) & (main_g != cfg_g) & (~cfg_pre | (lead != 0))),
        ]
        ip_bank, main_bank = pre_g[0], main_g[0]
        lay = pixel_layout(Pi, bits)
        from_ip = Signal(lay, name="from_ip")                 # WG frame: first from the preload
        from_i = Signal(lay, name="from_i")
        m.d.comb += [
            from_ip.data.eq(self.ip.payload.data), from_ip.first.eq(self.ip.payload.first),
            from_ip.last.eq(0),
            from_i.data.eq(self.i.payload.data), from_i.first.eq(self.i.payload.first & ~cfg_pre),
            from_i.last.eq(self.i.payload.last),
        ]
        for b, wg in enumerate(wgs):
            use_ip = ip_ok & (ip_bank == b)                   # exclusive with main to bank b
            m.d.comb += [
                wg.width.eq(cfg_w),
                wg.i.valid.eq(Mux(use_ip, self.ip.valid, self.i.valid & main_ok & (main_bank == b))),
                wg.i.payload.eq(Mux(use_ip, from_ip, from_i)),
            ]
        m.d.comb += [
            self.ip.ready.eq(ip_ok & Mux(ip_bank, wgs[1].i.ready, wgs[0].i.ready)),
            self.i.ready.eq(main_ok & Mux(main_bank, wgs[1].i.ready, wgs[0].i.ready)),
        ]
        with m.If(take_bias):
            m.d.sync += [pre_g.eq(0), main_g.eq(0)]
        with m.Else():
            with m.If(self.ip.valid & self.ip.ready & self.ip.payload.last):
                m.d.sync += pre_g.eq(pre_g + 1)
            with m.If(self.i.valid & self.i.ready & self.i.payload.last):
                m.d.sync += main_g.eq(main_g + 1)

        # ---- window filter / entry into the multiply pipeline -------------------
        meta_layout = data.StructLayout({
            "addr": range(PW + 1),   # psum address (PW: overflow, flagged)
            "rd": 1,                 # groups >= 1: add psum[addr]
            "wr": 1,                 # groups < G-1: write psum[addr]
            "out": 1,                # last group: to the output
            "first": 1,
            "last": 1,
        })
        v = [Signal(name=f"v{k}") for k in range(L + 1)]        # v[k]: stage k valid (v[0] unused)
        en = Signal(name="conv_en")
        m.d.comb += [en.eq(~v[L] | self.o.ready), self.o.valid.eq(v[L])]

        # the consumer reads the current group's bank; the other bank's windows of rows
        # < K-1 (a preload: never a valid position) are dropped as they come
        g = Signal(GROUP_BITS, name="group")
        cb = g[0]
        wv = Signal(name="win_valid")
        wpl = Signal(wgs[0].o.payload.shape(), name="win")
        m.d.comb += [wv.eq(Mux(cb, wgs[1].o.valid, wgs[0].o.valid)),
                     wpl.eq(Mux(cb, wgs[1].o.payload.as_value(), wgs[0].o.payload.as_value()))]
        r, c = wpl.row, wpl.col
        nx = Signal(ROW_COL_BITS + 1, name="next_col")          # next valid column in this row
        ny = Signal(ROW_COL_BITS + 1, name="next_row")          # next valid row after this row
        rowhit_r = Signal(name="rowhit_r")
        addr_r = Signal(range(PW + 1), name="psum_addr")
        nx_eff = Signal.like(nx, name="nx_eff")
        ny_eff = Signal.like(ny, name="ny_eff")
        # (rows < K-1 may never reach the consumer: the other bank drops them)
        m.d.comb += [nx_eff.eq(Mux(c <= cfg_km1, cfg_km1, nx)), ny_eff.eq(Mux(r <= cfg_km1, cfg_km1, ny))]
        row_is = Signal(name="row_is_valid")
        m.d.comb += row_is.eq(r == ny_eff)
        colhit = c == nx_eff
        rowhit = Mux(c == 0, row_is, rowhit_r)
        hit = Signal(name="hit")
        gfirst = Signal(name="gfirst")                          # first valid window of a group
        m.d.comb += [hit.eq(rowhit & colhit), gfirst.eq((r == cfg_km1) & (c == cfg_km1))]
        last_g = g == cfg_gm1
        e = Signal(meta_layout, name="entry")
        m.d.comb += [
            e.addr.eq(Mux(gfirst, 0, addr_r)),
            e.rd.eq(g != 0),
            e.wr.eq(~last_g),
            e.out.eq(last_g),
            e.first.eq(last_g & gfirst),
            e.last.eq(last_g & (c + cfg_s >= cfg_w) & (r + cfg_s >= cfg_r)),
        ]
        metas = [e]
        for k in range(1, L + 1):
            metas.append(delay(m, metas[-1], 1, en=en, name=f"meta{k}"))
        # read-after-write guard across groups (a group with fewer than 3 outputs)
        hazard = Signal(name="psum_hazard")
        near = [(v[k], metas[k]) for k in (1, 2) if k <= L]
        m.d.comb += hazard.eq(e.rd & Cat(*[vk & mk.wr & (mk.addr == e.addr) for vk, mk in near]).any())
        ok = ~hit | (en & (~gfirst | sh_full) & ~hazard)
        cur_ready = Signal(name="cur_ready")
        m.d.comb += cur_ready.eq((state == ACTIVE) & ok)
        for b, wg in enumerate(wgs):
            m.d.comb += wg.o.ready.eq(Mux(cb == b, cur_ready, wg.o.payload.row < cfg_km1))
        take = Signal(name="take_window")
        enter = Signal(name="enter")
        swap = Signal(name="swap_weights")
        m.d.comb += [take.eq(wv & cur_ready), enter.eq(take & hit), swap.eq(enter & gfirst)]

        with m.If(take_bias):
            m.d.sync += [g.eq(0), addr_r.eq(0), rowhit_r.eq(0)]
        with m.Elif(take):
            with m.If(c == 0):
                m.d.sync += [rowhit_r.eq(row_is), ny.eq(Mux(row_is, ny_eff + cfg_s, ny_eff))]
            m.d.sync += nx.eq(Mux(colhit, nx_eff + cfg_s, nx_eff))
            with m.If(hit):
                m.d.sync += addr_r.eq(Mux(e.addr == PW, PW, e.addr + 1))
                with m.If((e.addr == PW) & ~last_g):
                    m.d.sync += err.eq(1)
            with m.If(wpl.last):
                with m.If(last_g):
                    m.d.sync += [g.eq(0), state.eq(DRAIN)]
                with m.Else():
                    m.d.sync += g.eq(g + 1)
        with m.If((state == ACTIVE) & (cfg_g == 0)):     # degenerate band (err is set)
            m.d.sync += state.eq(IDLE)
        with m.If((state == DRAIN) & ~Cat(*v[1:]).any()):
            m.d.sync += state.eq(IDLE)

        # valid bits (reset), one global stall; elements of groups 0..G-2 end at s_acc
        with m.If(en):
            m.d.sync += v[1].eq(enter)
            for k in range(2, L + 1):
                if k == s_acc + 1:
                    m.d.sync += v[k].eq(v[k - 1] & metas[k - 1].out)
                else:
                    m.d.sync += v[k].eq(v[k - 1])

        # ---- stage 1: window (A) and weight (B) registers ------------------------
        win1 = delay(m, wpl.window, 1, en=en, name="win")
        with m.If(swap):
            for o in range(Po):
                for i in range(Pi):
                    for p in range(KM):
                        for q in range(KM):
                            m.d.sync += act[o][i][p][q].eq(sh[o][i][p][q])
            m.d.sync += sh_full.eq(0)

        # ---- stages 2..3: products; 4..3+T: adder tree; s_acc: + bias / psum ------
        for o in range(Po):
            level = []
            for i in range(Pi):
                for p in range(KM):
                    for q in range(KM):
                        level.append(mul_add_hdl(m, win1[i][p][q], act[o][i][p][q], 0, en=en,
                                                 acc_bits=2 * bits, name=f"mul_o{o}_i{i}_{p}_{q}"))
            tree, depth = reduce_tree(m, level, en, f"sum_o{o}", first_level=1)
            assert depth == T

            psum = memory.Memory(shape=signed(ACC_BITS), depth=PW, init=[])
            m.submodules[f"psum{o}"] = psum
            rd = psum.read_port(domain="sync")
            wr = psum.write_port()
            acc = Signal(signed(ACC_BITS), name=f"acc{o}", reset_less=True)
            addend = Mux(metas[s_sum].rd, rd.data, bias_t[o])
            with m.If(en):
                m.d.sync += acc.eq((tree + addend)[:ACC_BITS].as_signed())
            m.d.comb += [
                rd.addr.eq(metas[s_sum - 1].addr),
                rd.en.eq(en),
                wr.addr.eq(metas[s_acc].addr),
                wr.data.eq(acc),
                wr.en.eq(en & v[s_acc] & metas[s_acc].wr),
            ]
            # ---- stages s_acc+1, s_acc+2: requantize (run-time shift) -------------
            z = requantize_var_hdl(m, acc, cfg_acc, bits, domain="sync", en=en,
                                   shift_domain="sync", name=f"z{o}")
            m.d.comb += self.o.payload.data[o].eq(z)
        m.d.comb += [self.o.payload.first.eq(metas[L].first), self.o.payload.last.eq(metas[L].last)]
        return m

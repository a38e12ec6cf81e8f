r"""The fully connected (matrix-vector) engine: ``OP_FC`` records, i.e. linear layers
(``pixels = 1``) and 1x1 convolutions (a matrix-vector product per pixel), bit-exact to
:mod:`convc.compiler.isa`::

    acc[o][p] = (B[o] << bias_shift) + sum_g sum_i W[g][o][i] * x[g][p][i]   (48-bit)
    z[o][p]   = requantize(acc[o][p], acc_shift, bits)                       (numeric.py)

for output lanes ``o < out_lanes``, input groups ``g < G`` (``G = ceil(n_in / in_lanes)``;
unused input lanes carry zero weights), pixels ``p < P``.

Ports
-----
``i``          In(stream of :func:`~convc.hdl.linebuffer.pixel_layout`\ ``(in_lanes, bits)``):
               the pixels, group after group: for ``g`` in ``0..G-1``, ``P`` elements of
               ``in_lanes`` codes (``x[g][p][i]`` = ``data[i]`` of element ``g*P + p``).
               ``first``/``last`` (at each group's first/last element) are informational:
               the engine counts ``P`` and ``G`` itself.
``weights``    In(stream of ``ArrayLayout(ArrayLayout(signed(bits), in_lanes), out_lanes)``):
               one element a group, ``w[o][i]`` = ``W[g][o][i]`` (order [o][i], lane
               ``o=0, i=0`` in the low bits).  Groups follow each other in order, across
               bands too: the engine takes the next group's matrix whenever its one-deep
               "next" buffer is free, so weights may run ahead of the pixels by one group.
``bias``       In(stream of ``ArrayLayout(signed(32), out_lanes)``): one element a band,
               ``B[o]``.  A one-deep buffer: the next band's bias is accepted together
               with the current band's last group-0 pixel, or any time after it.
``groups``     In(16): ``G`` (>= 1; 0 acts as 1)                \  sampled with the band's
``pixels``     In(range(psum_words + 1)): ``P`` (1..psum_words)  |  first pixel (group 0,
``acc_shift``  In(signed(8))                                     |  p = 0); may change
``bias_shift`` In(6)                                            /   freely otherwise
``o``          Out(stream of ``pixel_layout(out_lanes, bits)``): ``P`` elements a band, pixel
               ``p``'s ``out_lanes`` codes; ``first`` at ``p = 0``, ``last`` at ``p = P-1``.

Datapath (one input element a cycle, one global stall, :func:`~convc.hdl.arith.stall_pipeline`)
-------------------------------------------------------------------------------------------
* stage 0: accept the element when its group's weights are in the "next" buffer (only for
  ``p = 0``: they then move into the multipliers' B registers, freeing the buffer for the
  following group: double buffering, so the pixels never wait for weights after a band's
  first group as long as the weight stream keeps up) and, in group 0, the bias is loaded.
* stage 1: A registers (``x``), B registers (``W``) and, for input lane 0, the C operand
  ``B[o] << bias_shift`` (group 0) or 0.
* stages 2..3: ``in_lanes x out_lanes`` :func:`~convc.hdl.arith.mul_add_hdl` (one DSP48E1
  each; lane 0's adds the bias term on the C port).
* ``ceil(log2(in_lanes))`` registered adder-tree levels per output lane.
* stage SA: add the partial sum (group 0: 0; else the psum memory, or the previous
  element's sum when ``P = 1``: a one-cycle forward, as the memory read was issued before
  that write landed); groups ``0..G-2`` write the 48-bit sum back (one
  ``memory.Memory(signed(48), psum_words)`` per output lane, block RAM).
* SA+1..SA+3: :func:`~convc.hdl.arith.requantize_var_hdl` (barrel shift, saturate), only
  for the last group; the other groups' elements leave the pipeline without an output.

:attr:`FCEngine.latency` = ``6 + ceil(log2(in_lanes))`` cycles from the last group's
element to its output.  A band of ``G`` groups of ``P`` pixels takes ``G*P`` cycles of
input plus the latency.  Accumulation wraps at 48 bits (the
models report a sum outside 48 bits as an overflow).
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from convc.compiler import isa
from convc.compiler.engine_figures import FC_LIMITS, FC_LUTS_PER_MULTIPLIER, FC_LUTS_PER_OUT_LANE
from convc.compiler.isa import BIAS_BITS
from convc.compiler.numeric import DSP_P_BITS

from .arith import (check_param, delay, delay_chain, mul_add_hdl, params, reduce_tree, requantize_var_hdl,
                    stall_pipeline)
from .fields import GROUP_BITS, field_shape
from .linebuffer import pixel_layout

__all__ = ["FCEngine", "weights_layout", "bias_layout"]


def weights_layout(in_lanes: int, out_lanes: int, bits: int) -> data.ArrayLayout:
    """One group's weight matrix: ``w[o][i]`` (signed ``bits``), ``[0][0]`` in the low bits."""
    return data.ArrayLayout(data.ArrayLayout(signed(bits), in_lanes), out_lanes)


def bias_layout(out_lanes: int) -> data.ArrayLayout:
    """One band's biases: ``out_lanes`` signed 32-bit words."""
    return data.ArrayLayout(signed(BIAS_BITS), out_lanes)


class FCEngine(wiring.Component):
    """Matrix-vector engine (see the module docstring).

    Parameters
    ----------
    in_lanes, out_lanes : int
        Inputs and outputs a cycle (``hw.fc_in_lanes``, ``hw.fc_out_lanes``), 1..1024.
        ``in_lanes * out_lanes`` DSP48E1 multipliers.
    bits : int
        Activation and weight width, 2..16.
    psum_words : int
        Partial sums per output lane (``hw.fc_psum_words``): the most pixels a band.
    """

    #: LUTs an output lane and a multiplier, for the size search's logic estimate, and the
    #: limits: figures of :mod:`convc.compiler.engine_figures` (with their measurements)
    LUTS_PER_OUT_LANE = FC_LUTS_PER_OUT_LANE
    LUTS_PER_MULTIPLIER = FC_LUTS_PER_MULTIPLIER

    LIMITS = FC_LIMITS

    def __init__(self, *, in_lanes: int, out_lanes: int, bits: int = 16, psum_words: int = 1024):
        check_param(self, "in_lanes", in_lanes, *self.LIMITS["in_lanes"])
        check_param(self, "out_lanes", out_lanes, *self.LIMITS["out_lanes"])
        check_param(self, "bits", bits, *isa.limit("bits"))
        check_param(self, "psum_words", psum_words, *self.LIMITS["psum_words"])
        self._in_lanes, self._out_lanes, self._bits, self._psum_words = in_lanes, out_lanes, bits, psum_words
        super().__init__({
            "i": In(stream.Signature(pixel_layout(in_lanes, bits))),
            "weights": In(stream.Signature(weights_layout(in_lanes, out_lanes, bits))),
            "bias": In(stream.Signature(bias_layout(out_lanes))),
            "groups": In(GROUP_BITS),
            "pixels": In(range(psum_words + 1)),
            "acc_shift": In(field_shape("acc_shift")),
            "bias_shift": In(field_shape("bias_shift")),
            "o": Out(stream.Signature(pixel_layout(out_lanes, bits))),
        })

    in_lanes, out_lanes, bits, psum_words = params("in_lanes", "out_lanes", "bits", "psum_words")

    @property
    def dsp_count(self) -> int:
        """DSP48E1 slices: one a multiplier."""
        return self._in_lanes * self._out_lanes

    @property
    def tree_levels(self) -> int:
        return (self._in_lanes - 1).bit_length()

    @property
    def latency(self) -> int:
        """Cycles from an accepted last-group element to its output (no backpressure)."""
        return 6 + self.tree_levels

    def elaborate(self, platform):
        m = Module()
        IL, OL, bits, PW = self._in_lanes, self._out_lanes, self._bits, self._psum_words
        LAT = self.latency
        SA = 3 + self.tree_levels  # the accumulate stage

        # ---- handshake: stall_pipeline between proxies ---------------------------
        pin = SimpleNamespace(valid=Signal(name="pin_valid"), ready=Signal(name="pin_ready"))
        pout = SimpleNamespace(valid=Signal(name="pout_valid"), ready=Signal(name="pout_ready"))
        en = stall_pipeline(m, pin, pout, LAT, name="fc")
        # our own copy of the valid bits (resettable) for the stages that need them
        vld = [pin.valid]
        for k in range(1, SA + 2):
            v = Signal(name=f"fc_vld{k}")
            with m.If(en):
                m.d.sync += v.eq(vld[-1])
            vld.append(v)

        # ---- band state ------------------------------------------------------------
        band_on = Signal(name="band_on")
        g_cnt = Signal(GROUP_BITS, name="g_cnt")
        p_cnt = Signal(range(PW), name="p_cnt")
        g_reg = Signal(GROUP_BITS, name="g_reg")
        p_reg = Signal(range(PW + 1), name="p_reg")
        ash_reg = Signal(field_shape("acc_shift"), name="acc_shift_reg")
        bsh_reg = Signal(field_shape("bias_shift"), name="bias_shift_reg")
        start = ~band_on
        g_tot = Mux(start, self.groups, g_reg)
        p_tot = Mux(start, self.pixels, p_reg)
        ash = Mux(start, self.acc_shift, ash_reg)
        bsh = Mux(start, self.bias_shift, bsh_reg)
        g = Mux(start, 0, g_cnt)
        p = Signal(range(PW), name="p_cur")
        m.d.comb += p.eq(Mux(start, 0, p_cnt))
        g0 = Signal(name="g0")
        last_g = Signal(name="last_g")
        p_first = Signal(name="p_first")
        p_last = Signal(name="p_last")
        m.d.comb += [
            g0.eq(g == 0),
            last_g.eq(g + 1 >= g_tot),
            p_first.eq(p == 0),
            p_last.eq(p + 1 >= p_tot),
        ]

        bias_full = Signal(name="bias_full")
        next_full = Signal(name="next_full")
        can = Signal(name="can_accept")
        m.d.comb += [
            can.eq((~g0 | bias_full) & (~p_first | next_full)),
            pin.valid.eq(self.i.valid & can),
            self.i.ready.eq(pin.ready & can),
        ]
        fire = self.i.valid & self.i.ready

        with m.If(fire):
            with m.If(start):
                m.d.sync += [g_reg.eq(self.groups), p_reg.eq(self.pixels),
                             ash_reg.eq(self.acc_shift), bsh_reg.eq(self.bias_shift)]
            with m.If(p_last):
                m.d.sync += p_cnt.eq(0)
                with m.If(last_g):
                    m.d.sync += [band_on.eq(0), g_cnt.eq(0)]
                with m.Else():
                    m.d.sync += [band_on.eq(1), g_cnt.eq(g + 1)]
            with m.Else():
                m.d.sync += [band_on.eq(1), p_cnt.eq(p + 1), g_cnt.eq(g)]

        # ---- bias (one element a band) ---------------------------------------------
        b_raw = Signal(bias_layout(OL), name="b_raw", reset_less=True)
        bias_done = fire & g0 & p_last  # the band's last group-0 pixel: bias no longer needed
        m.d.comb += self.bias.ready.eq(~bias_full | bias_done)
        with m.If(self.bias.valid & self.bias.ready):
            m.d.sync += [b_raw.eq(self.bias.payload), bias_full.eq(1)]
        with m.Elif(bias_done):
            m.d.sync += bias_full.eq(0)

        # ---- weights: "next" buffer -> B registers at each group's first pixel ------
        w_next = Signal(weights_layout(IL, OL, bits), name="w_next", reset_less=True)
        w_cur = [[Signal(signed(bits), name=f"w_cur_o{o}_i{i}", reset_less=True) for i in range(IL)]
                 for o in range(OL)]
        take = fire & p_first
        m.d.comb += self.weights.ready.eq(~next_full | take)
        w_fire = self.weights.valid & self.weights.ready
        with m.If(w_fire):
            m.d.sync += [w_next.eq(self.weights.payload), next_full.eq(1)]
        with m.Elif(take):
            m.d.sync += next_full.eq(0)
        with m.If(take):
            m.d.sync += [w_cur[o][i].eq(w_next[o][i]) for o in range(OL) for i in range(IL)]

        # ---- stage 1: A registers, lane-0 C operand (bias term in group 0) ----------
        x1 = [delay(m, self.i.payload.data[i], 1, en=en, name=f"x_i{i}") for i in range(IL)]
        c1 = []
        for o in range(OL):
            # B[o] << bias_shift, wrapped to the 48-bit accumulator (an exact left shift)
            term = Signal(signed(DSP_P_BITS), name=f"bias_term_o{o}")
            m.d.comb += term.eq((b_raw[o] << bsh)[:DSP_P_BITS].as_signed())
            c1.append(delay(m, Mux(g0, term, 0), 1, en=en, name=f"bias_c_o{o}"))

        # ---- stages 2..3: multipliers; then the adder trees ---------------------------
        tree = []
        for o in range(OL):
            prods = []
            for i in range(IL):
                if i == 0:
                    prods.append(mul_add_hdl(m, x1[0], w_cur[o][0], c1[o], en=en,
                                             acc_bits=DSP_P_BITS, name=f"dsp_o{o}_i0"))
                else:
                    prods.append(mul_add_hdl(m, x1[i], w_cur[o][i], 0, en=en,
                                             acc_bits=min(2 * bits, DSP_P_BITS), name=f"dsp_o{o}_i{i}"))
            # 48-bit sums that wrap, as the accumulator
            tree.append(reduce_tree(m, prods, en, f"sum_o{o}", max_bits=DSP_P_BITS)[0])

        # ---- control travelling with the element ------------------------------------
        pix = delay_chain(m, p, SA + 1, en, "pix")
        g0_d = delay_chain(m, g0, SA, en, "g0_")
        lastg_d = delay_chain(m, last_g, LAT, en, "lastg")
        first_d = delay_chain(m, p_first, LAT, en, "first")
        last_d = delay_chain(m, p_last, LAT, en, "last")
        ash_d = delay_chain(m, ash, SA + 1, en, "ash")

        # ---- stage SA: accumulate with the partial sums -----------------------------
        fwd = Signal(name="psum_fwd")
        m.d.comb += fwd.eq(vld[SA + 1] & (pix[SA + 1] == pix[SA]))
        sums = []
        for o in range(OL):
            mem = memory.Memory(shape=signed(DSP_P_BITS), depth=PW, init=[])
            m.submodules[f"psum{o}"] = mem
            rd = mem.read_port(domain="sync")
            wr = mem.write_port()
            s_reg = Signal(signed(DSP_P_BITS), name=f"acc_o{o}", reset_less=True)
            base = Signal(signed(DSP_P_BITS), name=f"base_o{o}")
            s_new = Signal(signed(DSP_P_BITS), name=f"acc_new_o{o}")
            m.d.comb += [
                rd.addr.eq(pix[SA - 1]),
                rd.en.eq(en),
                base.eq(Mux(g0_d[SA], 0, Mux(fwd, s_reg, rd.data))),
                s_new.eq((tree[o] + base)[:DSP_P_BITS].as_signed()),
                wr.addr.eq(pix[SA]),
                wr.data.eq(s_new),
                wr.en.eq(en & vld[SA] & ~lastg_d[SA]),
            ]
            with m.If(en):
                m.d.sync += s_reg.eq(s_new)
            sums.append(s_reg)

        # ---- SA+1..SA+3: requantize; only the last group's elements come out --------
        out = Signal(pixel_layout(OL, bits), name="out", reset_less=True)
        for o in range(OL):
            z = requantize_var_hdl(m, sums[o], ash_d[SA + 1], bits, domain="sync", en=en,
                                   shift_domain="sync", name=f"z_o{o}")
            m.d.comb += out.data[o].eq(z)
        m.d.comb += [
            out.first.eq(first_d[LAT]),
            out.last.eq(last_d[LAT]),
            self.o.payload.eq(out),
            self.o.valid.eq(pout.valid & lastg_d[LAT]),
            pout.ready.eq(self.o.ready | ~lastg_d[LAT]),
        ]
        return m

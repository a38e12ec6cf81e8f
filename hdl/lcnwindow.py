r"""The LCN engine's window stage (:mod:`convc.hdl.lcn`): the centred windows of a window
generator, gated on the alignment FIFO that holds their centre pixels, through a stalling
pipeline whose first part is the separable window sum.

Window sums are separable and exact: the ISA stores ``G = outer(R, Q)`` exactly (and
``R``, ``Q``), and for integers ``sum_{p,q} R[p] Q[q] X[p][q] = sum_q Q[q] (sum_p R[p]
X[p][q])``.  :func:`window_sum` forms the column sums ``t = sum_p R[p] X[p][q]`` EXACTLY
(no rounding, width ``xbits + 16 + ceil(log2 kmax)``), keeps the last ``kmax`` of them in
a shift register (columns left of the frame are 0), and sums ``Q[q] * t`` -- with ``t``
wider than the 25-bit A port (``split``), as ``t_lo`` (24 bits, unsigned) and ``t_hi``
products: ``sum = sum_q Q t_lo + 2**24 sum_q Q t_hi`` (mod 2**48: the hardware
accumulator is 48 bits and wraps, as the ISA says).  Equal to the 2-D sum whenever it
fits 48 bits (otherwise the golden model reports an overflow).  DSPs a window: ``kmax``
(columns) + ``kmax`` or ``2*kmax`` (rows) instead of ``kmax**2``.  Adder trees are in
fabric, one register a level.
"""

from __future__ import annotations

from amaranth.hdl import C, Cat, Mux, Signal, signed
from amaranth.utils import ceil_log2

from convc.compiler.engine_figures import LCN_TAP_BITS
from convc.compiler.numeric import ACC_BITS

from .arith import delay, mul_add_hdl, reduce_tree, stall_pipeline

__all__ = ["TAP_BITS", "levels", "filter_latency", "window_sum", "window_stage"]

_LO_BITS = 24          # t = t_hi * 2**24 + t_lo (t_lo unsigned: 25 signed bits on the A port)
TAP_BITS = LCN_TAP_BITS


def levels(n: int) -> int:
    """Levels of a binary tree over ``n`` leaves."""
    return ceil_log2(n) if n > 1 else 0


class _Port:
    """valid/ready pair for stall_pipeline on an internal (gated or filtered) stream."""

    def __init__(self, name):
        self.valid = Signal(name=f"{name}_valid")
        self.ready = Signal(name=f"{name}_ready")


def _valid_chain(m, valid_in, en, n, name):
    """valid bits of stages 0..n (stage 0 = the input, combinational), reset to 0."""
    out = [valid_in]
    for k in range(1, n + 1):
        v = Signal(name=f"{name}_v{k}")
        with m.If(en):
            m.d.sync += v.eq(out[-1])
        out.append(v)
    return out


def _tree(m, values, en, name):
    """Registered binary adder tree (one register a level). Returns (sum, levels)."""
    return reduce_tree(m, values, en, name, odd="odd")


def filter_latency(kmax: int, split: bool) -> int:
    """Pipeline stages of one separable window sum."""
    return 5 + 2 * levels(kmax) + (1 if split else 0)


def window_sum(m, colvec, col, valids, en, rtap, qtap, kmax, split, name):
    """The separable window sum (see the module docstring).  ``colvec[p]`` (stage 0) is
    the newest window column (row r-(kmax-1)+p), ``col`` its column, ``valids`` the
    stage valid bits.  Returns (48-bit sum, latency)."""
    zero = C(0, signed(2))
    # columns: t = sum_p R[p] * X[p]
    prods = []
    for p in range(kmax):
        pw = min(len(colvec[p]) + TAP_BITS, ACC_BITS)
        prods.append(mul_add_hdl(m, colvec[p], rtap[p], zero, en=en, acc_bits=pw,
                                 name=f"{name}_c{p}"))
    t, lv = _tree(m, prods, en, f"{name}_ct")
    st = 2 + lv                                   # t is at stage st
    col_st = delay(m, col, st, en=en, name=f"{name}_col")
    # the row shift register: hs[q] = t of column col-(kmax-1)+q (0 left of the frame)
    hs = [Signal(signed(len(t)), name=f"{name}_hs{q}", reset_less=True) for q in range(kmax)]
    with m.If(en & valids[st]):
        for q in range(kmax - 1):
            m.d.sync += hs[q].eq(Mux(col_st >= kmax - 1 - q, hs[q + 1], 0))
        m.d.sync += hs[kmax - 1].eq(t)
    # hs holds the element at stage st+1; products at st+3
    if not split:
        rp = [mul_add_hdl(m, hs[q], qtap[q], zero, en=en,
                          acc_bits=min(len(t) + TAP_BITS, ACC_BITS), name=f"{name}_r{q}")
              for q in range(kmax)]
        acc, lh = _tree(m, rp, en, f"{name}_rt")
        out = Signal(signed(ACC_BITS), name=f"{name}_acc")
        m.d.comb += out.eq(acc[:ACC_BITS] if len(acc) > ACC_BITS else acc)
        return out, st + 3 + lh
    lo_p, hi_p = [], []
    for q in range(kmax):
        lo = Cat(hs[q][:_LO_BITS], C(0, 1)).as_signed()
        hi = hs[q][_LO_BITS:].as_signed()
        lo_p.append(mul_add_hdl(m, lo, qtap[q], zero, en=en, acc_bits=_LO_BITS + 1 + TAP_BITS,
                                name=f"{name}_rl{q}"))
        hi_p.append(mul_add_hdl(m, hi, qtap[q], zero, en=en,
                                acc_bits=min(len(hi) + TAP_BITS, ACC_BITS), name=f"{name}_rh{q}"))
    slo, lh = _tree(m, lo_p, en, f"{name}_rtl")
    shi, _ = _tree(m, hi_p, en, f"{name}_rth")
    acc = Signal(signed(ACC_BITS), name=f"{name}_acc", reset_less=True)
    with m.If(en):
        m.d.sync += acc.eq((slo + (shi << _LO_BITS))[:ACC_BITS].as_signed())
    return acc, st + 3 + lh + 1


def window_stage(m, wg, fq, hp, rtap, qtap, *, kmax, split, lanes, latency, name, sum_name):
    """A window stage up to its window sum: window generator ``wg``'s centred elements
    (``row >= hp`` and ``col >= hp``) wait for their centre pixel in FIFO ``fq`` (popped
    as they enter), then a ``latency``-stage stalling pipeline whose first
    :func:`filter_latency` stages are :func:`window_sum` of the window's last column.

    Returns ``(en, out, acc, centred, word)``: the pipeline's clock enable, its output
    valid/ready pair, the 48-bit window sum, and (at stage 0) whether the element is
    centred and the FIFO's data."""
    o = wg.o
    pin = _Port(f"{name}_in")
    centred = Signal(name=f"{name}_centred")
    m.d.comb += centred.eq((o.payload.row >= hp) & (o.payload.col >= hp))
    gate = ~centred | fq.r_rdy
    m.d.comb += [
        pin.valid.eq(o.valid & gate),
        o.ready.eq(pin.ready & gate),
        fq.r_en.eq(o.valid & pin.ready & centred),
    ]
    colvec = [Cat(*[o.payload.window[j][p][kmax - 1] for j in range(lanes)]).as_signed()
              for p in range(kmax)]
    pout = _Port(f"{name}_out")
    en = stall_pipeline(m, pin, pout, latency, name=name)
    valids = _valid_chain(m, pin.valid, en, latency, name)
    acc, lat = window_sum(m, colvec, o.payload.col, valids, en, rtap, qtap, kmax, split, sum_name)
    assert lat == filter_latency(kmax, split)
    return en, pout, acc, centred, fq.r_data

"""LCN records in the golden model (:mod:`convc.sim.golden`).

An ``OP_LCN`` record runs the isa pseudo-code on a batch: window mean
(a ``K x K`` window sum of the channel sum, an exact integer product,
:mod:`convc.sim.golden_exact`), ``v = x - m``, the window sum of ``v*v``,
the PWL square root, the frame mean, the PWL reciprocal of the larger, and
``y = v * r``.  Checked accumulators: the two window sums, ``v*v``, the
frame-mean sum and ``v*r``.

The isa says ``v`` and ``s`` "may be kept in scratch memory at scratch_addr
(C*H*W + H*W words)".  This model writes them there: ``v`` (``in_c`` maps of
``in_h x in_w``) at ``scratch_addr``, ``s`` (one map) right after, then ``y``
at ``out_addr``.
"""

from __future__ import annotations

import numpy as np

from convc.compiler import isa
from convc.compiler.numeric import check_acc, requantize, round_shift, saturate

from .golden_exact import chunk_steps, exact_matmul, im2col, max_abs
from .golden_machine import Machine, word_fmt

__all__ = ["lcn"]


def lcn(m: Machine, ins: isa.Instr) -> tuple[int, int]:
    """Execute one OP_LCN record on the batch ``m``; returns (saturations,
    overflows)."""
    fmt = word_fmt(ins.bits)
    isa.check_up(ins)
    K, C, H, W = ins.kernel, ins.in_c, ins.in_h, ins.in_w
    if K < 1:
        raise ValueError("LCN window must be at least 1x1")
    h = K // 2
    n, hw = m.n, H * W
    m.check_const(ins.w_addr, K * K, "LCN window")
    g = m.const[ins.w_addr:ins.w_addr + K * K].astype(np.int64)
    m.table(ins.pwl_id, "LCN sqrt")
    m.table(ins.pwl2_id, "LCN reciprocal")
    x = m.read_span(ins.in_addr, C * hw, "LCN input").reshape(n, C, H, W)
    sat = ovf = 0

    # sum_{c,p,q} G[p,q] X[c][..] = sum_{p,q} G[p,q] (sum_c X[c])[..]: exact integers
    m_acc = _window_sum(x.sum(axis=1), g, K, h)
    ovf += check_acc(m_acc)
    mu, c1 = requantize(m_acc, ins.acc_shift, fmt)
    v, c2 = saturate(x - mu[:, None], fmt)
    vv = v * v
    ovf += check_acc(vv)
    sq, c3 = requantize(vv, ins.sq_shift, fmt)
    s2_acc = _window_sum(sq.sum(axis=1), g, K, h)
    ovf += check_acc(s2_acc)
    s2, c4 = requantize(s2_acc, ins.s2_shift, fmt)
    s, c5 = m.pwl(ins.pwl_id, s2, fmt, "LCN sqrt")
    # frame mean: per image, exact Python ints (sum(s*mul) = mul*sum(s));
    # an object array makes the numeric functions raise rather than wrap past int64
    total = np.array([int(t) * ins.mean_mul for t in s.reshape(n, -1).sum(axis=1)], dtype=object)
    ovf += check_acc(total)
    mean, c8 = saturate(np.asarray(round_shift(total, ins.mean_shift), dtype=np.int64), fmt)
    sat += c8
    d = np.maximum(np.maximum(s, mean[:, None, None]), ins.eps)
    r, c6 = m.pwl(ins.pwl2_id, d, None, "LCN reciprocal")
    vr = v * r[:, None]
    ovf += check_acc(vr)
    y, c7 = requantize(vr, ins.y_shift, fmt)
    sat += c1 + c2 + c3 + c4 + c5 + c6 + c7

    sa = ins.scratch_addr
    m.check_write(sa, sa + C * hw + hw, "LCN scratch")
    m.check_write(ins.out_addr, ins.out_addr + C * hw, "LCN output")
    m.write(sa, v.reshape(n, -1), "LCN scratch")
    m.write(sa + C * hw, s.reshape(n, -1), "LCN scratch")
    m.write(ins.out_addr, y.reshape(n, -1), "LCN output")
    return int(sat), int(ovf)


def _window_sum(p: np.ndarray, g: np.ndarray, K: int, h: int) -> np.ndarray:
    """``sum_{p,q} G[p,q] P[y+p-h][x+q-h]`` of (N, H, W) int64 maps, zero outside."""
    n, H, W = p.shape
    pad = np.zeros((n, 1, H + K - 1, W + K - 1), dtype=np.int64)
    pad[:, 0, h:h + H, h:h + W] = p
    max_p, max_g = max_abs(p), max_abs(g)
    out = np.empty((n, H, W), dtype=np.int64)
    rows_step, imgs_step = chunk_steps(W * K * K, H)
    ys, xs = np.arange(H), np.arange(W)
    for i0 in range(0, n, imgs_step):
        i1 = min(n, i0 + imgs_step)
        for y0 in range(0, H, rows_step):
            y1 = min(H, y0 + rows_step)
            cols = im2col(pad[i0:i1], K, ys[y0:y1], xs, np.int64)      # (K*K, pixels)
            out[i0:i1, y0:y1] = exact_matmul(g[None, :], cols, max_g, max_p).reshape(
                i1 - i0, y1 - y0, W)
    return out

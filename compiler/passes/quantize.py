"""Quantization: fixed-point formats from calibration, integer parameters.

Every format has the configured width (``bits``, 16 by default: NeuFlow's
Q8.8 width) and the most fraction bits that keep the largest magnitude seen
on the calibration inputs (or in the weights) from saturating
(:func:`~convc.compiler.numeric.frac_for_range`). Per convolution:

    in_fmt    the previous node's output format
    w_fmt     from max |weight|
    acc       fraction in.frac + w.frac, 48 bits (DSP48E1 P register)
    bias      int32 with fraction min(acc frac, what fits 32 bits),
              shifted up by bias_shift into the accumulator
    conv_fmt  from max |conv output| (before the activation)
    out_fmt   tanh: from max |tanh| = 1; relu, abs, none: conv_fmt;
              pooling keeps the format (average: sum * avg_mul >> avg_shift)

Local contrast normalization gets formats for each of its steps (see
:class:`~convc.compiler.ir.LCNQuant` and the LCN op in :mod:`..isa`).
Calibration values come from the float reference network, layer by layer; a node the
compiler made (a part of a folded classifier) is computed from its input's.

In a graph, a node's ``in_fmt`` is its producer's output format. Three rules keep what
must be one thing one thing:

- nodes sharing weights (``share``) get one ``conv_fmt`` (the widest range over them),
  and must see one input format, so their weight and bias codes are the same words;
- a node that keeps its format (``keep_fmt``: a pyramid's smoothing) outputs its input's,
  so every level of a pyramid has the input's format;
- the parts of a concatenation get one output format (one region, one format).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from convc.errors import ConvcError

from .. import isa
from ..ir import ConcatNode, ConvNode, ConvQuant, IRGraph, LCNNode, LCNQuant
from ..isa import BIAS_BITS
from ..numeric import ACC_BITS, QFormat, frac_for_range


def _fmt(max_abs: float, bits: int) -> QFormat:
    return QFormat(bits, frac_for_range(float(max_abs), bits))


def _amax(a) -> float:
    return float(np.max(np.abs(a))) if np.size(a) else 0.0


def _avg_constants(k: int) -> tuple[int, int]:
    """sum * mul >> shift ~ sum / k^2; exact when k*k is a power of two."""
    n = k * k
    if n & (n - 1) == 0:
        return 1, n.bit_length() - 1
    # mul = round(2^shift / n) < 2^18: the avg_mul field's width
    shift = isa.shape("avg_mul").bits - 1 + (n.bit_length() - 1)
    return int(round(2 ** shift / n)), shift


def _window_sum(a: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Zero-padded same-size correlation of (N, H, W) with a K x K window."""
    k = window.shape[0]
    h = k // 2
    padded = np.pad(a, ((0, 0), (h, h), (h, h)))
    return np.einsum("nhwpq,pq->nhw", sliding_window_view(padded, (k, k), axis=(1, 2)), window)


def lcn_float(x: np.ndarray, window: np.ndarray, eps: float) -> dict[str, np.ndarray]:
    """The float steps of local contrast normalization (for calibration)."""
    c = x.shape[1]
    m = _window_sum(x.sum(axis=1), window) / c
    v = x - m[:, None]
    sq = v * v
    s2 = _window_sum(sq.sum(axis=1), window) / c
    s = np.sqrt(s2)
    mean = s.mean(axis=(1, 2))
    d = np.maximum(np.maximum(s, mean[:, None, None]), eps)
    return {"m": m, "v": v, "sq": sq, "s2": s2, "s": s, "mean": mean, "d": d, "y": v / d[:, None]}


def _quantize_lcn(node: LCNNode, x: np.ndarray, x_fmt: QFormat, bits: int) -> LCNQuant:
    c, h, w = node.in_shape
    steps = lcn_float(x, node.window, node.eps)
    # the window is an exact outer product of two integer vectors, so hardware
    # may filter rows then columns and still match the 2-D sum bit for bit
    w1 = node.window.sum(axis=1)                  # the 1-D Gaussian (window = w1 w1^T)
    top = math.isqrt((1 << (bits - 1)) - 1)       # each factor <= sqrt(max code)
    row_frac = int(math.floor(math.log2(top / float(np.max(w1 / c)))))
    col_frac = int(math.floor(math.log2(top / float(np.max(w1)))))
    row_taps, _ = QFormat(bits, row_frac).quantize(w1 / c)
    col_taps, _ = QFormat(bits, col_frac).quantize(w1)
    g_frac = row_frac + col_frac
    window = np.outer(np.asarray(row_taps, dtype=np.int64), np.asarray(col_taps, dtype=np.int64))
    assert int(np.max(np.abs(window))) <= (1 << (bits - 1)) - 1
    sq_fmt = _fmt(max(_amax(steps["sq"]), _amax(steps["s2"])), bits)
    # s = sqrt(s2) over the whole range of s2's format, so the table never saturates
    s_fmt = _fmt(math.sqrt(sq_fmt.max_value), bits)
    lo = max(node.eps, 0.5 * float(steps["mean"].min()), 2 * s_fmt.lsb)
    eps_code = min(max(1, int(round(lo * s_fmt.scale))), s_fmt.max_int)
    lo = eps_code * s_fmt.lsb
    r_fmt = _fmt(1.0 / lo, bits)
    y_fmt = _fmt(_amax(steps["y"]), bits)
    mean_shift = 16 + math.ceil(math.log2(h * w))
    mean_mul = int(round(2 ** mean_shift / (h * w)))
    return LCNQuant(x_fmt=x_fmt, g_frac=g_frac, window=window, row_taps=np.asarray(row_taps, dtype=np.int64),
                    col_taps=np.asarray(col_taps, dtype=np.int64), sq_fmt=sq_fmt,
                    s_fmt=s_fmt, r_fmt=r_fmt, y_fmt=y_fmt, mean_mul=mean_mul, mean_shift=mean_shift,
                    eps=eps_code, recip_lo=lo)


def _conv_float(node: ConvNode, x: np.ndarray) -> np.ndarray:
    """The float pre-activation of a 1x1 convolution the compiler made (no reference layer),
    upsampled as it reads: ``(N, out_c, H << up, W << up)``."""
    assert node.kernel == 1 and node.stride == 1 and node.pad == 0, node.name
    y = np.einsum("oi,nihw->nohw", node.weight[:, :, 0, 0], x) + node.bias[None, :, None, None]
    return np.repeat(np.repeat(y, 1 << node.up, axis=2), 1 << node.up, axis=3) if node.up else y


def run(graph: IRGraph, net, calib: np.ndarray, bits: int, where: str = "model") -> IRGraph:
    """Fill ``graph.input_fmt`` and every node's ``quant`` from ``calib``.

    Parameters
    ----------
    net : Network
        The float reference the graph came from.
    calib : ndarray, shape (N, C, H, W)
        Raw calibration inputs (normalized here as the network does).
    """
    lo, hi = isa.limit("bits")
    if not lo <= bits <= hi:
        raise ConvcError(f"--bits {bits}: the accelerator stores codes in {isa.WORD_BITS}-bit words; "
                         f"choose {lo}..{hi}")
    outs = [o.astype(np.float64) for o in net.forward_all(calib.astype(np.float64))]
    index = {name: i for i, name in enumerate(net.names)}
    by_name = {n.name: n for n in graph.nodes}
    floats: dict[str | None, np.ndarray] = {None: outs[0]}    # each node's float output (None: the input)

    def float_in(node) -> np.ndarray:
        x = floats[node.input]
        return x.reshape((x.shape[0],) + tuple(node.in_shape))

    def pre_of(node: ConvNode) -> np.ndarray:
        """The float values the node's accumulator stands for (before its activation)."""
        if not node.sources:                                   # made by the compiler
            return _conv_float(node, float_in(node))
        layer = net.layers[index[node.sources[0]]]
        if layer.type in ("conv2d", "linear"):
            return outs[index[node.sources[0]] + 1]
        return float_in(node)                                  # an identity (lowered act, pool, upsample)

    # the widest range of every group that must share one conv format
    group_of: dict[str, str] = {}
    for node in graph.nodes:
        if isinstance(node, ConvNode) and node.share is not None:
            group_of[node.name] = group_of[node.share] = node.share
        if isinstance(node, ConvNode) and node.fmt_group is not None:
            group_of[node.name] = f"group {node.fmt_group}"
        if isinstance(node, ConcatNode):
            for p in node.parts:            # (a part already in a group keeps it)
                group_of.setdefault(p, f"concat {node.name}")
    ranges: dict[str, float] = {}

    first = graph.nodes[0]
    x0 = outs[0]
    in_max = _amax(x0)
    if isinstance(first, LCNNode):  # v = x - m shares the input's format
        in_max = max(in_max, _amax(lcn_float(x0, first.window, first.eps)["v"]))
    graph.input_fmt = _fmt(in_max, bits)
    fmt_of: dict[str | None, QFormat] = {None: graph.input_fmt}
    # first sweep: float outputs of every node, and each group's range
    for node in graph.nodes:
        if isinstance(node, ConcatNode):
            floats[node.name] = np.concatenate([floats[p] for p in node.parts], axis=1)
            continue
        if isinstance(node, ConvNode) and not node.sources:
            floats[node.name] = _conv_float(node, float_in(node))
        else:
            floats[node.name] = outs[graph.ref_index[node.name] + 1]
        if node.name in group_of and isinstance(node, ConvNode):
            key = group_of[node.name]
            ranges[key] = max(ranges.get(key, 0.0), _amax(pre_of(node)))
    for node in graph.nodes:
        cur = fmt_of[node.input] if not isinstance(node, ConcatNode) else None
        if isinstance(node, ConcatNode):
            fmts = {str(fmt_of[p]) for p in node.parts}
            if len(fmts) != 1:
                raise ConvcError(f"{where}: layer {node.name!r}: its parts have the formats {sorted(fmts)}; a "
                                 "concatenation is one region of one format")
            node.fmt = fmt_of[node.name] = fmt_of[node.parts[0]]
            continue
        if isinstance(node, LCNNode):
            node.quant = q = _quantize_lcn(node, float_in(node), cur, bits)
            fmt_of[node.name] = q.y_fmt
            continue
        assert isinstance(node, ConvNode), node
        if node.share is not None:
            owner = by_name[node.share]
            if owner.quant.in_fmt != cur:
                raise ConvcError(f"{where}: layer {node.name!r} shares the weights of {node.share!r} but reads "
                                 f"format {cur}, where {node.share!r} reads {owner.quant.in_fmt}: shared "
                                 "weights need one input format")
        pre = pre_of(node)
        w_fmt = _fmt(_amax(node.weight), bits)
        qw, _ = w_fmt.quantize(node.weight)
        acc_frac = cur.frac + w_fmt.frac
        b_frac = min(acc_frac, frac_for_range(_amax(node.bias), BIAS_BITS))
        shift_max = isa.limit("bias_shift")[1]
        if acc_frac - b_frac > shift_max:
            raise ConvcError(f"{where}: layer {node.name!r}: bias {_amax(node.bias):g} is too large for "
                             f"the accumulator format (shift {acc_frac - b_frac} > {shift_max})")
        qb, _ = QFormat(BIAS_BITS, b_frac).quantize(node.bias)
        if int(np.max(np.abs(qb), initial=0)) << (acc_frac - b_frac) >= 1 << (ACC_BITS - 2):
            raise ConvcError(f"{where}: layer {node.name!r}: bias {_amax(node.bias):g} does not fit the "
                             f"{ACC_BITS}-bit accumulator at fraction {acc_frac}")
        if node.keep_fmt:
            conv_fmt = cur
        else:
            conv_fmt = _fmt(ranges.get(group_of.get(node.name), _amax(pre)), bits)
        out_fmt = conv_fmt
        if node.act is not None and node.act.kind == "tanh":
            out_fmt = _fmt(1.0, bits)
        avg_mul = avg_shift = 0
        if node.pool is not None and node.pool.kind == "avg":
            avg_mul, avg_shift = _avg_constants(node.pool.kernel)
        node.quant = ConvQuant(in_fmt=cur, w_fmt=w_fmt, conv_fmt=conv_fmt, out_fmt=out_fmt,
                               weight=np.asarray(qw, dtype=np.int64).reshape(node.weight.shape),
                               bias=np.asarray(qb, dtype=np.int64).reshape(-1), bias_frac=b_frac,
                               avg_mul=avg_mul, avg_shift=avg_shift)
        lo, hi = isa.limit("acc_shift")
        if not lo <= node.quant.acc_shift <= hi:
            raise ConvcError(f"{where}: layer {node.name!r}: accumulator shift {node.quant.acc_shift} "
                             "out of range")
        fmt_of[node.name] = out_fmt
    return graph

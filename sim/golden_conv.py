"""CONV / FC records in the golden model (:mod:`convc.sim.golden`).

``OP_FC`` records are ``OP_CONV`` records restricted to 1x1 kernels, stride
1, no pad, no upsampling and no pooling (checked in
:mod:`convc.sim.golden_steps`), and run exactly the same way once their
input-major weights (``W[o, j]`` at ``w_addr + j*ld + o``) are read into the
same ``(n_out, n_in)`` matrix.

A CONV record computes only the conv outputs its row band's pooling windows
need (as the pseudo-code says): the input band those outputs read (rows and
columns of the map upsampled by ``2**up``, stored row ``y >> up``) is
gathered once, laid out as im2col columns by ``K*K`` block copies, and
multiplied by the weight matrix, in chunks of images / rows that bound
temporary memory (:mod:`convc.sim.golden_exact`).  The records of one step
(:func:`~convc.sim.golden_steps.record_steps`) run together
(:func:`conv_group`): one im2col and one product per distinct input-map
list, their weight matrices stacked.  Then per record: bias, requantize,
activation, pooling and write-back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convc.compiler import isa
from convc.compiler.numeric import QFormat, check_acc, requantize, round_shift, saturate

from .golden_exact import I64_LIMIT, chunk_steps, f64_exact, im2col, max_abs
from .golden_machine import Machine, word_fmt

__all__ = ["conv_group"]

#: Stacked weight matrices up to this many elements are widened once per run;
#: larger ones a column block at a time (64 MiB of float64).
_WEIGHT_ELEMS = 1 << 23


@dataclass
class _ConvGroup:
    """What every batch of a conv group shares: the passes, the conv rows /
    columns the pooling windows need (``ys``, ``xs``; window positions
    ``r_pos``, ``c_pos``; ``dense`` when the windows tile them exactly), and
    per distinct input-map list the stacked weight matrix of its passes
    (``(maps, wm, cuts, members)``)."""

    passes: list
    ys: np.ndarray
    xs: np.ndarray
    r_pos: np.ndarray
    c_pos: np.ndarray
    dense: bool
    classes: list


class _Weights:
    """The stacked weight matrix of a group's passes that share a list,
    ``(rows, L)`` of ``dtype``, as column blocks of ``block`` columns: one
    block (built once) when small, else widened from the int16 image block
    by block on each use, so a large layer never holds its float64 copy."""

    def __init__(self, parts: list[np.ndarray], dtype, L: int, block: int):
        self.parts, self.dtype, self.L, self.block = parts, np.dtype(dtype), L, block
        self._whole = np.concatenate(parts).astype(dtype) if block >= L else None

    def blocks(self):
        """``(l0, l1, W[:, l0:l1])`` for every column block."""
        if self._whole is not None:
            yield 0, self.L, self._whole
            return
        for l0 in range(0, self.L, self.block):
            l1 = min(self.L, l0 + self.block)
            yield l0, l1, np.concatenate([p[:, l0:l1] for p in self.parts]).astype(self.dtype)


@dataclass
class _ConvPass:
    """The constants of one CONV / FC record, read from the image.

    ``wq`` is (n_out, n_in*K*K) in the conv layout (row ``o``, column
    ``(j*K + p)*K + q``); ``bterm`` is ``B << bias_shift`` (n_out,)."""

    ins: isa.Instr
    lst: np.ndarray
    wq: np.ndarray      # int16 view of the image (no copy: FC layers hold tens of millions)
    bterm: np.ndarray
    wmax: int           # max |w|


def conv_group(m: Machine, first: int, group: list[isa.Instr]) -> list[tuple[int, int]]:
    """Execute the CONV / FC records ``group`` (the first being record
    ``first``) that read the same input band (see
    :func:`~convc.sim.golden_steps.record_steps`) on the batch ``m``;
    returns (saturations, overflows) per record.

    The records' dot products are computed together: records with the
    same input-map list share one im2col and one matrix product, their
    weight matrices stacked.
    """
    plan = m.image.groups.get(first)
    if plan is None:
        plan = _plan_group(m, group)
        if m.image.keep_plans:
            m.image.groups[first] = plan
    if plan is None:   # no rows
        return [(0, 0)] * len(group)
    accs = _conv_dots(m, group[0], plan)
    return [_conv_finish(m, p, acc, plan) for p, acc in zip(plan.passes, accs)]


def _conv_pass(m: Machine, ins: isa.Instr) -> _ConvPass:
    """Check one CONV / FC record and read its list, weights and bias."""
    K, n_in, n_out = ins.kernel, ins.n_in, ins.n_out
    L = n_in * K * K
    m.check_const(ins.list_addr, n_in, "input-map list")
    lst = m.raw[ins.list_addr:ins.list_addr + n_in]
    if n_in and int(lst.max()) >= ins.in_c:
        raise ValueError(f"input-map list entry {int(lst.max())} >= in_c={ins.in_c}")
    m.check_const(ins.w_addr, ins.weight_words, "weights")
    if ins.op == isa.OP_FC and ins.w_addr % isa.FC_ALIGN:
        raise ValueError(f"OP_FC weights at word {ins.w_addr}: not a multiple of "
                         f"isa.FC_ALIGN = {isa.FC_ALIGN}")
    nb = isa.bias_offset(ins.op, n_in, n_out, K)
    # the isa layout as a view of the image (no copy), one row an output
    wq = isa.weight_view(ins.op, m.const[ins.w_addr:ins.w_addr + nb], n_in, n_out, K).reshape(n_out, L)
    bw = m.raw[ins.w_addr + nb:ins.w_addr + nb + 2 * n_out]
    b = isa.join_bias(bw[0::2], bw[1::2])
    bterm = round_shift(b, -ins.bias_shift)  # B << bias_shift, exact (raises past int64)
    # Memory words are signed 16-bit, so |dot| <= max|w| * 2**15 * L; int64 must hold it.
    wmax = max(-int(wq.min()), int(wq.max())) if wq.size else 0   # no int16 abs (-2**15)
    if wmax * (1 << (isa.WORD_BITS - 1)) * L + max_abs(bterm) >= I64_LIMIT:
        raise OverflowError("conv accumulator may exceed int64")
    return _ConvPass(ins, lst, wq, bterm, wmax)


def _plan_group(m: Machine, group: list[isa.Instr]) -> _ConvGroup | None:
    """Check the records of a group and read what every batch shares (None
    when the band has no rows)."""
    ins0 = group[0]
    pk, ps = _conv_geometry(ins0)
    for ins in group[1:]:
        _conv_geometry(ins)
    if ins0.rows == 0:
        return None
    passes = [_conv_pass(m, ins) for ins in group]
    m.check(ins0.in_addr, ins0.in_c * ins0.in_h * ins0.in_w, "conv input")
    # the conv rows / columns the band's pooling windows need
    r_idx = np.arange(ins0.row0, ins0.row0 + ins0.rows)[:, None] * ps + np.arange(pk)
    c_idx = np.arange(ins0.out_w)[:, None] * ps + np.arange(pk)
    ys, r_pos = np.unique(r_idx, return_inverse=True)
    xs, c_pos = np.unique(c_idx, return_inverse=True)
    # passes with the same list: one im2col, weights stacked
    by_list: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(passes):
        if p.ins.n_out:
            by_list.setdefault(tuple(int(j) for j in p.lst), []).append(i)
    classes = []
    K = ins0.kernel
    for lst, members in by_list.items():
        maps = np.asarray(lst, dtype=np.int64)
        L = maps.size * K * K
        # float64 when exact for any 16-bit memory word (f64_exact), else int64
        exact = f64_exact(max(passes[i].wmax for i in members), 1 << (isa.WORD_BITS - 1), L)
        cuts = np.cumsum([0] + [passes[i].ins.n_out for i in members])
        rows = int(cuts[-1])
        # weights over _WEIGHT_ELEMS stay in the image as int16 and are widened
        # a block of columns at a time (a VGG fc6 matrix is 100M weights)
        block = L if rows * L <= _WEIGHT_ELEMS else max(1, _WEIGHT_ELEMS // rows)
        wm = _Weights([passes[i].wq for i in members], np.float64 if exact else np.int64, L, block)
        classes.append((maps, wm, cuts, members))
    return _ConvGroup(passes, ys, xs, r_pos.reshape(r_idx.shape), c_pos.reshape(c_idx.shape),
                      pk == ps, classes)


def _conv_finish(m: Machine, p: _ConvPass, dots: np.ndarray, plan: _ConvGroup) -> tuple[int, int]:
    """Bias, activation, pooling and write-back of one record, from its
    exact dot products ``dots`` (n_out, N, ny, nx)."""
    ins, n = p.ins, m.n
    if ins.n_out == 0:
        return 0, 0
    fmt = word_fmt(ins.bits)
    acc = dots.transpose(1, 0, 2, 3) + p.bterm[None, :, None, None]
    ovf = check_acc(acc)
    z, sat = requantize(acc, ins.acc_shift, fmt)
    a, s2 = _activation(m, ins, z, fmt)
    sat += s2

    if ins.pool == isa.POOL_NONE:   # 1x1 windows
        out = a
    else:
        pooled = _pool(a, ins.pool_k, plan, np.add if ins.pool == isa.POOL_AVG else np.maximum)
        if ins.pool == isa.POOL_AVG:
            prod = pooled * ins.avg_mul
            ovf += check_acc(prod)
            out, s3 = requantize(prod, ins.avg_shift, fmt)
            sat += s3
        else:
            out = pooled

    # write out[o0+o] rows row0.. of the layer's out_h x out_w maps
    hw = ins.out_h * ins.out_w
    addr = (ins.out_addr + (ins.o0 + np.arange(ins.n_out))[:, None] * hw
            + ins.row0 * ins.out_w + np.arange(ins.rows * ins.out_w)[None, :])
    m.write(addr.ravel(), out.reshape(n, -1), "conv output")
    return int(sat), int(ovf)


def _band(m: Machine, ins: isa.Instr, maps: np.ndarray, ys: np.ndarray, xs: np.ndarray,
          i0: int, i1: int) -> np.ndarray:
    """Input maps ``maps`` of images ``i0:i1`` over the rows / columns the
    conv outputs ``ys`` x ``xs`` read, zero padded: (i1-i0, len(maps), BH,
    BW) float64, band row 0 being input row ``ys[0]*S - P`` (likewise
    columns).  Rows and columns are those of the upsampled map
    (``up_h x up_w``): row ``y`` is stored row ``y >> up``."""
    K, S, P, H, W, up = ins.kernel, ins.stride, ins.pad, ins.in_h, ins.in_w, ins.up
    iy0, iy1 = int(ys[0]) * S - P, int(ys[-1]) * S - P + K
    ix0, ix1 = int(xs[0]) * S - P, int(xs[-1]) * S - P + K
    vy0, vy1 = max(iy0, 0), min(iy1, ins.up_h)
    vx0, vx1 = max(ix0, 0), min(ix1, ins.up_w)
    band = np.zeros((i1 - i0, maps.size, iy1 - iy0, ix1 - ix0), dtype=np.float64)
    if vy1 > vy0 and vx1 > vx0:
        addr = (ins.in_addr + maps[:, None, None] * (H * W)
                + (np.arange(vy0, vy1) >> up)[None, :, None] * W
                + (np.arange(vx0, vx1) >> up)[None, None, :])
        if int(addr.min()) >= m.base:
            band[:, :, vy0 - iy0:vy1 - iy0, vx0 - ix0:vx1 - ix0] = m.data[i0:i1, addr - m.base]
        else:
            band[:, :, vy0 - iy0:vy1 - iy0, vx0 - ix0:vx1 - ix0] = m.read(addr)[i0:i1]
    return band


def _conv_dots(m: Machine, ins: isa.Instr, plan: _ConvGroup) -> list[np.ndarray]:
    """``sum_{j,p,q} W[o,j,p,q] X[j][y*S+p-P][x*S+q-P]`` for the conv outputs
    ``plan.ys`` x ``plan.xs`` of every pass: (n_out, N, len(ys), len(xs))
    int64 each, exact.

    One matrix product per distinct input-map list, with all its passes'
    outputs as rows (tall products run several times faster than one per
    record), over im2col columns built in chunks of images / rows that
    bound temporary memory.
    """
    n, K, S = m.n, ins.kernel, ins.stride
    ys, xs = plan.ys, plan.xs
    ny, nx = ys.size, xs.size
    sel_r = (ys - ys[0]) * S        # band row of each needed conv row's window
    sel_c = (xs - xs[0]) * S
    accs = [np.empty((p.ins.n_out, n, ny, nx), dtype=np.int64) for p in plan.passes]
    for maps, wm, cuts, members in plan.classes:
        rows_step, imgs_step = chunk_steps(nx * maps.size * K * K, ny)
        for i0 in range(0, n, imgs_step):
            i1 = min(n, i0 + imgs_step)
            band = _band(m, ins, maps, ys, xs, i0, i1)
            for y0 in range(0, ny, rows_step):
                y1 = min(ny, y0 + rows_step)
                cols = im2col(band, K, sel_r[y0:y1], sel_c, wm.dtype)
                # partial products over column blocks add up exactly: every
                # partial sum is within the same f64_exact bound
                prod = None
                for l0, l1, w in wm.blocks():
                    part = w @ cols[l0:l1]
                    if prod is None:
                        prod = part
                    else:
                        prod += part
                prod = prod.reshape(-1, i1 - i0, y1 - y0, nx)
                for k, i in enumerate(members):
                    accs[i][:, i0:i1, y0:y1] = prod[cuts[k]:cuts[k + 1]]
    return accs


def _conv_geometry(ins: isa.Instr) -> tuple[int, int]:
    """Validate a CONV record's sizes; return the pooling window and stride."""
    isa.check_up(ins)
    if ins.kernel < 1 or ins.stride < 1:
        raise ValueError(f"conv kernel {ins.kernel} / stride {ins.stride} must be >= 1")
    if ins.pool == isa.POOL_NONE:
        if (ins.pool_k, ins.pool_s) != (1, 1):
            raise ValueError("POOL_NONE needs pool_k = pool_s = 1")
    elif ins.pool in (isa.POOL_MAX, isa.POOL_AVG):
        if ins.pool_k < 1 or ins.pool_s < 1:
            raise ValueError("pool_k and pool_s must be >= 1")
    else:
        raise ValueError(f"unknown pool mode {ins.pool}")
    if ins.act not in isa.ACT_NAMES:
        raise ValueError(f"unknown activation {ins.act}")
    ch, cw = ins.conv_h, ins.conv_w
    if ch < 1 or cw < 1:
        raise ValueError(f"conv output {ch}x{cw} is empty")
    ph, pw = (ch - ins.pool_k) // ins.pool_s + 1, (cw - ins.pool_k) // ins.pool_s + 1
    if ch < ins.pool_k or cw < ins.pool_k or (ph, pw) != (ins.out_h, ins.out_w):
        raise ValueError(f"out {ins.out_h}x{ins.out_w} is not the pooled conv output "
                         f"({ch}x{cw} pooled {ins.pool_k}/{ins.pool_s})")
    if ins.row0 + ins.rows > ins.out_h:
        raise ValueError(f"rows {ins.row0}..{ins.row0 + ins.rows - 1} beyond out_h={ins.out_h}")
    return ins.pool_k, ins.pool_s


def _pool(a: np.ndarray, pk: int, plan: _ConvGroup, op) -> np.ndarray:
    """Reduce every pooling window of ``a`` (n, o, ny, nx) with ``op``
    (``np.maximum`` or ``np.add``): (n, o, rows, out_w).

    When the windows tile the rows / columns (``plan.dense``), window
    element ``(p, q)`` of every window is the strided slice
    ``a[..., p::pk, q::pk]``: pk*pk elementwise ops, no gather.
    """
    if plan.dense:
        out = a[..., 0::pk, 0::pk].copy()
        for p in range(pk):
            for q in range(pk):
                if p or q:
                    op(out, a[..., p::pk, q::pk], out=out)
        return out
    wins = a[:, :, plan.r_pos[:, :, None, None], plan.c_pos[None, None, :, :]]
    return wins.sum(axis=(3, 5)) if op is np.add else wins.max(axis=(3, 5))


def _activation(m: Machine, ins: isa.Instr, z: np.ndarray, fmt: QFormat) -> tuple[np.ndarray, int]:
    """The record's activation of the requantized codes ``z``: (codes, clamps)."""
    if ins.act == isa.ACT_NONE:
        return z, 0
    if ins.act == isa.ACT_RELU:
        return np.maximum(z, 0), 0
    if ins.act == isa.ACT_ABS:
        return saturate(np.abs(z), fmt)
    return m.pwl(ins.pwl_id, z, fmt, "conv activation")

r"""The slow, obviously-correct golden model: the isa pseudo-code in loops.

Same API as :mod:`convc.sim.golden` (``run(program, x_codes) ->
GoldenResult``).  Every record is executed image by image, map by map,
pixel by pixel and tap by tap with Python ints, calling the functions of
:mod:`convc.compiler.numeric` on scalars, so each line can be checked
against the pseudo-code of :mod:`convc.compiler.isa`.  Only the tests use it,
on tiny programs, to check the vectorized model word for word.

Conventions shared with the fast model (documented there): memory holds
signed codes; lists, bias halves and tables are read as unsigned 16-bit
words; outputs of a record are written after all of its reads; an LCN record
writes ``v`` then ``s`` to its scratch area before ``y``.
"""

from __future__ import annotations

import numpy as np

from convc.compiler import isa
from convc.compiler.numeric import QFormat, check_acc, requantize, round_shift, saturate
from convc.compiler.pwl_table import pwl_eval
from convc.compiler.program import Program

from .golden import GoldenResult

__all__ = ["run"]


def _s16(w: int) -> int:
    """A 16-bit word as a signed value."""
    w &= 0xFFFF
    return w - 0x10000 if w >= 0x8000 else w


def _u16(v: int) -> int:
    """A memory word as an unsigned 16-bit value (list entries, bias halves)."""
    return v & 0xFFFF


class _Counts:
    def __init__(self):
        self.sat = 0
        self.ovf = 0

    def q(self, result) -> int:
        """Take (value, clamps) from a numeric function, count the clamps."""
        value, n = result
        self.sat += int(n)
        return int(value)

    def acc(self, value: int) -> int:
        self.ovf += check_acc(value)
        return value


def _conv(mem: list[int], ins: isa.Instr, tables, cnt: _Counts) -> list[tuple[int, int]]:
    """One OP_CONV (or OP_FC) record on one image; returns the (address, code) writes."""
    fmt = QFormat(ins.bits, 0)
    isa.check_up(ins)
    K, S, P, up = ins.kernel, ins.stride, ins.pad, ins.up
    H, W = ins.in_h, ins.in_w
    if ins.pool == isa.POOL_NONE:
        pk = ps = 1
    else:
        pk, ps = ins.pool_k, ins.pool_s
    if (ins.conv_h - pk) // ps + 1 != ins.out_h or (ins.conv_w - pk) // ps + 1 != ins.out_w:
        raise ValueError("out_h/out_w is not the pooled conv output")
    if ins.row0 + ins.rows > ins.out_h:
        raise ValueError("rows beyond out_h")
    lst = [_u16(mem[ins.list_addr + j]) for j in range(ins.n_in)]
    if any(c >= ins.in_c for c in lst):
        raise ValueError("input-map list entry >= in_c")

    def X(j: int, y: int, x: int) -> int:
        """X_up[j][y][x]: the stored map read nearest-upsampled by 2**up."""
        if 0 <= y < H << up and 0 <= x < W << up:
            return mem[ins.in_addr + lst[j] * H * W + (y >> up) * W + (x >> up)]
        return 0  # zero padding

    def Wt(o: int, j: int, p: int, q: int) -> int:
        return mem[ins.w_addr + isa.weight_offset(ins.op, ins.n_in, ins.n_out, K, o, j, p, q)]

    def B(o: int) -> int:
        a = ins.w_addr + isa.bias_offset(ins.op, ins.n_in, ins.n_out, K) + 2 * o
        return isa.join_bias(mem[a], mem[a + 1])

    writes = []
    for o in range(ins.n_out):
        # every conv output the band's pooling windows need, computed once
        need = sorted({(r * ps + i, c * ps + k)
                       for r in range(ins.row0, ins.row0 + ins.rows)
                       for c in range(ins.out_w) for i in range(pk) for k in range(pk)})
        a_of = {}
        for (y, x) in need:
            acc = B(o) << ins.bias_shift
            for j in range(ins.n_in):
                for p in range(K):
                    for q in range(K):
                        acc += Wt(o, j, p, q) * X(j, y * S + p - P, x * S + q - P)
            cnt.acc(acc)
            z = cnt.q(requantize(acc, ins.acc_shift, fmt))
            if ins.act == isa.ACT_NONE:
                a = z
            elif ins.act == isa.ACT_RELU:
                a = max(z, 0)
            elif ins.act == isa.ACT_ABS:
                a = cnt.q(saturate(abs(z), fmt))
            elif ins.act == isa.ACT_PWL:
                a = cnt.q(pwl_eval(tables[ins.pwl_id], z))
            else:
                raise ValueError(f"unknown act {ins.act}")
            a_of[(y, x)] = a
        for r in range(ins.row0, ins.row0 + ins.rows):
            for c in range(ins.out_w):
                window = [a_of[(r * ps + i, c * ps + k)] for i in range(pk) for k in range(pk)]
                if ins.pool == isa.POOL_AVG:
                    prod = cnt.acc(sum(window) * ins.avg_mul)
                    out = cnt.q(requantize(prod, ins.avg_shift, fmt))
                elif ins.pool in (isa.POOL_MAX, isa.POOL_NONE):
                    out = max(window)
                else:
                    raise ValueError(f"unknown pool {ins.pool}")
                addr = ins.out_addr + (ins.o0 + o) * ins.out_h * ins.out_w + r * ins.out_w + c
                writes.append((addr, out))
    return writes


def _lcn(mem: list[int], ins: isa.Instr, tables, cnt: _Counts) -> list[tuple[int, int]]:
    """One OP_LCN record on one image; returns the (address, code) writes."""
    fmt = QFormat(ins.bits, 0)
    K, C, H, W = ins.kernel, ins.in_c, ins.in_h, ins.in_w
    h = K // 2
    G = [[mem[ins.w_addr + p * K + q] for q in range(K)] for p in range(K)]

    def X(c, y, x):
        if 0 <= y < H and 0 <= x < W:
            return mem[ins.in_addr + (c * H + y) * W + x]
        return 0

    def window_sum(F, y, x):
        """sum over maps c and the K x K window of G[p][q] * F(c, y + p - h, x + q - h)"""
        acc = 0
        for c in range(C):
            for p in range(K):
                for q in range(K):
                    acc += G[p][q] * F(c, y + p - h, x + q - h)
        return acc

    v = [[[0] * W for _ in range(H)] for _ in range(C)]
    sq = [[[0] * W for _ in range(H)] for _ in range(C)]
    for y in range(H):
        for x in range(W):
            m = cnt.q(requantize(cnt.acc(window_sum(X, y, x)), ins.acc_shift, fmt))
            for c in range(C):
                v[c][y][x] = cnt.q(saturate(X(c, y, x) - m, fmt))
                sq[c][y][x] = cnt.q(requantize(cnt.acc(v[c][y][x] * v[c][y][x]), ins.sq_shift, fmt))

    def SQ(c, y, x):
        return sq[c][y][x] if 0 <= y < H and 0 <= x < W else 0

    s = [[0] * W for _ in range(H)]
    for y in range(H):
        for x in range(W):
            s2 = cnt.q(requantize(cnt.acc(window_sum(SQ, y, x)), ins.s2_shift, fmt))
            s[y][x] = cnt.q(pwl_eval(tables[ins.pwl_id], s2))
    total = 0
    for y in range(H):
        for x in range(W):
            total += s[y][x] * ins.mean_mul
    mean = cnt.q(saturate(int(round_shift(cnt.acc(total), ins.mean_shift)), fmt))
    writes = []
    sa = ins.scratch_addr
    for c in range(C):
        for y in range(H):
            for x in range(W):
                writes.append((sa + (c * H + y) * W + x, v[c][y][x]))
    for y in range(H):
        for x in range(W):
            writes.append((sa + C * H * W + y * W + x, s[y][x]))
    for y in range(H):
        for x in range(W):
            d = max(s[y][x], mean, ins.eps)
            r = cnt.q(pwl_eval(tables[ins.pwl2_id], d))
            for c in range(C):
                yc = cnt.q(requantize(cnt.acc(v[c][y][x] * r), ins.y_shift, fmt))
                writes.append((ins.out_addr + (c * H + y) * W + x, yc))
    return writes


def run(program: Program, x_codes: np.ndarray) -> GoldenResult:
    """Run ``program`` on ``x_codes`` (N, *input.shape) with plain loops.

    Returns the same :class:`~convc.sim.golden.GoldenResult` as
    :func:`convc.sim.golden.run`.
    """
    image = [int(w) for w in np.asarray(program.image)]
    tables = [isa.read_table(np.asarray(program.image, dtype=np.int64),
                             program.table_addr + i * isa.TABLE_WORDS)
              for i in range(program.n_tables)]
    x = np.asarray(x_codes)
    reg = program.input
    sats: dict[str, int] = {}
    ovfs: dict[str, int] = {}
    memories = []
    for img in x:
        mem = [0] * program.memory_words
        for a, w in enumerate(image):
            mem[a] = _s16(w)
        for k, v in enumerate(img.reshape(-1)):
            mem[reg.addr + k] = int(v)
        for ins, name in zip(program.instrs, program.names):
            if ins.op == isa.OP_END:
                break
            if ins.op == isa.OP_NOP:
                continue
            cnt = _Counts()
            if ins.op == isa.OP_CONV:
                writes = _conv(mem, ins, tables, cnt)
            elif ins.op == isa.OP_FC:  # OP_CONV with a 1x1 kernel, stride 1, no pad, no pool
                if (ins.kernel, ins.stride, ins.pad, ins.pool) != (1, 1, 0, isa.POOL_NONE):
                    raise ValueError("OP_FC needs kernel = stride = 1, pad = 0, no pooling")
                writes = _conv(mem, ins, tables, cnt)
            elif ins.op == isa.OP_LCN:
                isa.check_up(ins)
                writes = _lcn(mem, ins, tables, cnt)
            else:
                raise ValueError(f"unknown op {ins.op}")
            for a, v in writes:  # all reads of a record happen before its writes
                mem[a] = v
            sats[name] = sats.get(name, 0) + cnt.sat
            ovfs[name] = ovfs.get(name, 0) + cnt.ovf
        else:
            raise ValueError("the schedule has no OP_END record")
        memories.append(mem)
    memory = np.array(memories, dtype=np.int64).reshape(len(memories), program.memory_words)
    return GoldenResult(data=memory, saturations=sats, overflows=ovfs)

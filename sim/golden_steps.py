"""Which records the golden model (:mod:`convc.sim.golden`) runs together.

A program's records become steps (:func:`record_steps`): one LCN record, or
CONV / FC records of one layer that read the same input band (output groups,
FC column groups), which then share one im2col and one product per distinct
input-map list (:func:`convc.sim.golden_conv.conv_group`).  Records are
grouped across a layer's run of records only when the run's writes miss its
input and each other (then any order gives the same memory); otherwise only
neighbours are.
"""

from __future__ import annotations

import numpy as np

from convc.compiler import isa

__all__ = ["record_steps"]

_BAND_KEYS = ("op", "in_addr", "in_c", "in_h", "in_w", "up", "kernel", "stride", "pad", "pool", "pool_k",
              "pool_s", "out_h", "out_w", "row0", "rows")
_LAYER_KEYS = ("op", "in_addr", "in_c", "in_h", "in_w", "up", "out_addr", "out_h", "out_w")


def record_steps(instrs: list[isa.Instr]) -> list[tuple[str, list[int]]]:
    """The records to run, in order, as ``("lcn", [i])`` and ``("conv",
    [i, j, ..])`` steps; the records of a conv step read the same input
    band and run together (:func:`convc.sim.golden_conv.conv_group`).

    A run of consecutive CONV / FC records of one layer (same input and
    output maps) whose writes miss the input and each other gives the same
    memory in any order, so its records are grouped by band wherever they
    stand in the run (a compiler may emit output groups outside bands);
    otherwise only neighbours with the same band are grouped.

    Parameters
    ----------
    instrs : list of isa.Instr
        The program's records, ending with ``OP_END``.

    Raises
    ------
    ValueError
        No ``OP_END``, an unknown op, or an ``OP_FC`` record that is not a
        1x1 convolution.
    """
    steps: list[tuple[str, list[int]]] = []
    i = 0
    while True:
        if i == len(instrs):
            raise ValueError("the schedule has no OP_END record")
        ins = instrs[i]
        if ins.op == isa.OP_END:
            return steps
        if ins.op == isa.OP_NOP:
            i += 1
            continue
        if ins.op == isa.OP_LCN:
            steps.append(("lcn", [i]))
            i += 1
            continue
        if ins.op not in (isa.OP_CONV, isa.OP_FC):
            raise ValueError(f"unknown op {ins.op} in record {i}")
        j = i + 1
        while j < len(instrs) and _same_layer(ins, instrs[j]):
            j += 1
        run = list(range(i, j))
        for k in run:
            if instrs[k].op == isa.OP_FC:
                _check_fc(instrs[k])
        if _reorderable([instrs[k] for k in run]):
            groups: dict[tuple, list[int]] = {}
            for k in run:
                groups.setdefault(_band_key(instrs[k]), []).append(k)
            steps += [("conv", g) for g in groups.values()]
        else:
            g = [i]
            for k in run[1:]:
                if _band_key(instrs[k]) == _band_key(instrs[g[0]]) and not _writes_input(instrs[k - 1]):
                    g.append(k)
                else:
                    steps.append(("conv", g))
                    g = [k]
            steps.append(("conv", g))
        i = j


def _check_fc(ins: isa.Instr) -> None:
    """OP_FC is OP_CONV restricted to 1x1 kernels, stride 1, no pad, no pool (and no
    upsampling: :func:`~convc.compiler.isa.check_up`)."""
    isa.check_up(ins)
    if (ins.kernel, ins.stride, ins.pad, ins.pool) != (1, 1, 0, isa.POOL_NONE):
        raise ValueError(f"OP_FC needs kernel = stride = 1, pad = 0, no pooling; got kernel "
                         f"{ins.kernel}, stride {ins.stride}, pad {ins.pad}, pool {ins.pool}")


def _band_key(r: isa.Instr) -> tuple:
    """Records with equal keys read exactly the same input band (lists and
    weights may differ)."""
    return tuple(getattr(r, k) for k in _BAND_KEYS)


def _same_layer(a: isa.Instr, b: isa.Instr) -> bool:
    return b.op in (isa.OP_CONV, isa.OP_FC) and all(getattr(a, k) == getattr(b, k)
                                                     for k in _LAYER_KEYS)


def _reorderable(run: list[isa.Instr]) -> bool:
    """Whether the records of one layer (same input and output maps) may run
    in any order: none writes its input maps, and their output blocks (maps
    ``o0..`` x rows ``row0..``) do not overlap."""
    if any(_writes_input(r) for r in run):
        return False
    maps = max(r.o0 + r.n_out for r in run)
    rows = max(r.row0 + r.rows for r in run)
    if maps < 0 or min(min(r.o0, r.row0, r.n_out, r.rows) for r in run) < 0:
        return False
    cover = np.zeros((maps, rows), dtype=np.int32)
    for r in run:
        cover[r.o0:r.o0 + r.n_out, r.row0:r.row0 + r.rows] += 1
    return int(cover.max(initial=0)) <= 1


def _writes_input(r: isa.Instr) -> bool:
    """Whether CONV / FC record ``r`` writes a word of its own input maps (a
    later record of the same band must then wait for it; constants are never
    written)."""
    if r.n_out == 0 or r.rows == 0:
        return False
    lo, hi = r.in_addr, r.in_addr + r.in_c * r.in_h * r.in_w
    hw = r.out_h * r.out_w
    w_lo = r.out_addr + r.o0 * hw + r.row0 * r.out_w
    w_hi = r.out_addr + (r.o0 + r.n_out - 1) * hw + (r.row0 + r.rows) * r.out_w
    return w_lo < hi and lo < w_hi

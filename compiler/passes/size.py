"""Sizing: choose the hardware configuration for the board and the network.

The kernel window ``kmax`` is the network's largest kernel, the line
buffers its longest padded row. Every split of the DSP48E1 slices into
``in_lanes x out_lanes`` kernel units (``kmax^2`` multipliers each, plus one
DSP per output lane and the LCN engine's) is scheduled and costed
(:mod:`..cost`); the fastest that also fits the block RAM wins (ties: fewer
DSP slices). The partial-sum buffer gets as many words as the block RAM
left over allows, up to a whole output map. A network that cannot fit is
refused, naming the resource and both numbers.
"""

from __future__ import annotations

from convc.errors import ConvcError

from ..cost import record_cost
from ..hwconfig import HardwareConfig
from ..ir import ConvNode, IRGraph, LCNNode
from . import schedule

MAX_WIDTH = 4095


def _psum_choices(need_max: int, need_min: int) -> list[int]:
    top = -(-need_max // 1024) * 1024
    out, v = [], top
    while v >= need_min:
        out.append(v)
        if v <= 1024:
            break
        v = max(-(-(v // 2) // 1024) * 1024, need_min)
        if v == out[-1]:
            break
    if not out or out[-1] > need_min:
        out.append(need_min)
    return out


def run(graph: IRGraph, board, bits: int, in_lanes: int | None = None, out_lanes: int | None = None,
        where: str = "model") -> tuple[HardwareConfig, list[dict]]:
    """Return the chosen configuration and the candidates tried (for the report)."""
    convs = [n for n in graph.nodes if isinstance(n, ConvNode)]
    lcns = [n for n in graph.nodes if isinstance(n, LCNNode)]
    kmax = max([n.kernel for n in convs] or [1])
    lcn_kmax = max([n.kernel for n in lcns] or [0])
    widths = [n.in_shape[2] + 2 * n.pad for n in convs] + [n.in_shape[2] + n.kernel - 1 for n in lcns]
    max_width = max(widths)
    name = board.name
    if max_width > MAX_WIDTH:
        raise ConvcError(f"{where} does not fit {name}: a padded row of {max_width} words is longer than the "
                         f"line buffers address ({MAX_WIDTH})")
    need_max = max([n.conv_shape[1] * n.conv_shape[2] for n in convs] or [1])
    need_min = max([(n.pool.kernel if n.pool else 1) * n.conv_shape[2] for n in convs] or [1])
    base = HardwareConfig(board=name, clock_mhz=board.clock_mhz, bits=bits, kmax=kmax, in_lanes=1, out_lanes=1,
                          max_width=max_width, psum_words=need_min, lcn_kmax=lcn_kmax,
                          mem_bytes_per_cycle=board.mem_bytes_per_cycle)
    if base.dsp > board.dsp:
        raise ConvcError(f"{where} does not fit {name}: DSP48E1 slices: one {kmax}x{kmax} kernel unit with its "
                         f"post-processing needs {base.dsp}, the board has {board.dsp}")
    if base.bram36 > board.bram36:
        raise ConvcError(f"{where} does not fit {name}: block RAM: the smallest configuration needs "
                         f"{base.bram36} RAMB36, the board has {board.bram36}")
    max_in = max([len(n.inputs_of(0)) for n in convs] or [1])
    max_out = max([n.out_c for n in convs] or [1])
    tried, best = [], None
    pis = [in_lanes] if in_lanes else range(1, max_in + 1)
    for pi in pis:
        per_unit = kmax * kmax * pi + 1
        po_max = (board.dsp - base.dsp_lcn) // per_unit
        pos = [out_lanes] if out_lanes else sorted({min(po_max, max_out), *range(max(1, min(po_max, max_out) - 3),
                                                                                 min(po_max, max_out))})
        for po in pos:
            if po < 1:
                continue
            for psum in _psum_choices(need_max, need_min):
                hw = HardwareConfig(board=name, clock_mhz=board.clock_mhz, bits=bits, kmax=kmax, in_lanes=pi,
                                    out_lanes=po, max_width=max_width, psum_words=psum, lcn_kmax=lcn_kmax,
                                    mem_bytes_per_cycle=board.mem_bytes_per_cycle)
                if hw.dsp > board.dsp or hw.bram36 > board.bram36:
                    continue
                prog = schedule.run(graph, hw, fill=False)
                cycles = sum(record_cost(i, hw).cycles for i in prog.instrs)
                tried.append({"in_lanes": pi, "out_lanes": po, "psum_words": psum, "dsp": hw.dsp,
                              "bram36": hw.bram36, "cycles": cycles})
                key = (cycles, hw.dsp)
                if best is None or key < best[0]:
                    best = (key, hw)
                break  # the largest partial-sum buffer that fits is the one to use
    if best is None:
        forced = f" with in_lanes={in_lanes}, out_lanes={out_lanes}" if in_lanes or out_lanes else ""
        raise ConvcError(f"{where} does not fit {name}{forced}: no configuration meets the board's "
                         f"{board.dsp} DSP48E1 and {board.bram36} RAMB36")
    return best[1], tried

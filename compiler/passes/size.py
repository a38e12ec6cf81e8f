"""Sizing: choose the hardware configuration for the board and the network.

The kernel window ``kmax`` is the largest kernel the convolution engine
runs, the line buffers its longest padded row. Every split of the board's
DSP48E1 slices between the convolution engine (``in_lanes x out_lanes``
kernel units of ``kmax^2`` multipliers, one more DSP an output lane), the
fully connected engine (``fc_in_lanes x fc_out_lanes``, for 1x1 unpooled
layers) and the LCN engine is scheduled and timed by the one cycle model
(``convc.sim.cycle``, with the board's memory, the model the RTL is checked
against), given by the caller as ``cycles(program, fc_floor)``; the fastest that
also fits the block RAM and, on the 6-input-LUT devices, the LUTs (the estimate
:attr:`HardwareConfig.luts` from the engines' own figures) wins (ties: fewer DSP slices). The search is exact
but prunes: every candidate is first timed with its FC streams at their floor
(a lower bound of the model), then candidates are timed in full in the order
of that bound until the bound of the next exceeds the best full time. The
partial-sum buffer gets as many words as the block RAM allows, up to a
whole output map.

No candidate goes beyond an engine: the lanes, windows and buffers searched are
bounded by :meth:`HardwareConfig.field_range` (the engines' own limits), and a
configuration the hardware cannot be built for (:class:`HardwareConfigError`) or that
cannot hold some layer (the schedule refuses it) is skipped, not fatal. Only when no
candidate is left is the network refused, naming why each kind of candidate failed:
the layer, the resource or limit, and both numbers.
"""

from __future__ import annotations

from convc.errors import ConvcError

from ..hwconfig import HardwareConfig, HardwareConfigError
from ..ir import ConvNode, IRGraph, LCNNode
from . import schedule

FC_OUT_CHOICES = (1, 2, 4, 8, 16, 32, 64)
MAX_IN_LANES = 32       # the search's own bound (more input lanes than 32 never paid off)


def _largest(lo: int, hi: int, ok) -> int | None:
    """The largest ``v`` in ``[lo, hi]`` with ``ok(v)`` (``ok`` monotone: true up to some
    value, false above), or None."""
    if hi < lo or not ok(lo):
        return None
    if ok(hi):
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _config(**kw) -> HardwareConfig | None:
    try:
        return HardwareConfig(**kw)
    except HardwareConfigError:
        return None


def _psum_choices(need_max: int, need_min: int) -> list[int]:
    """Partial-sum depths to try, largest first, in whole RAMB18 depths."""
    out, v = [], -(-need_max // 1024) * 1024
    while v > need_min:
        out.append(v)
        v = -(-(v // 2) // 1024) * 1024
        if out and v >= out[-1]:
            break
    out.append(max(need_min, 1))
    return out


def writers_for(out_lanes: int) -> int:
    """Row-writer ports (a power of two): one per 2 output lanes (up to 8), so that a
    convolution's output rows, one word a cycle per port, nearly keep up with the engine
    in a record's last group (sceneparse, 13 lanes: 27.6 ms a frame with 1 port, 21.0 with
    4, 20.3 with 8; ``convc simulate``)."""
    n = 1
    while n < 8 and 2 * n < out_lanes:
        n *= 2
    return n


def pwl_segments(graph: IRGraph) -> int:
    """The most segments any PWL table of the network has (1 when it has none): what the
    pointwise engine must hold."""
    tables = []
    for n in graph.nodes:
        q = getattr(n, "quant", None)
        for attr in ("pwl", "sqrt_pwl", "recip_pwl"):
            t = getattr(q, attr, None) if q is not None else None
            if t is not None:
                tables.append(t.segments)
    return max(tables or [1])


def run(graph: IRGraph, board, bits: int, in_lanes: int | None = None, out_lanes: int | None = None,
        where: str = "model", fc_lanes: tuple[int | None, int | None] = (None, None), *, cycles
        ) -> tuple[HardwareConfig, list[dict]]:
    """Return the chosen configuration and the candidates tried (for the report: each
    with its ``floor`` and, where it was timed in full, its ``cycles``).
    ``in_lanes``, ``out_lanes`` and ``fc_lanes`` (in, out) force those sizes; ``cycles``
    (program, fc_floor) -> int times a schedule (``convc.sim.cycle.run_cycles``)."""
    convs = [n for n in graph.nodes if isinstance(n, ConvNode)]
    lcns = [n for n in graph.nodes if isinstance(n, LCNNode)]
    fcs = [n for n in convs if schedule.fc_eligible(n)]
    lcn_kmax = max([n.kernel for n in lcns] or [0])
    lcn_channels = max([n.in_shape[0] for n in lcns] or [0])
    name = board.name
    tried, fits = [], []
    errors: list[str] = []      # why candidates were skipped (told only if none fits)

    def note(msg: str):
        if msg not in errors:
            errors.append(msg)

    fc_choices = (False, True) if fcs else (False,)
    if fcs and any(fc_lanes):
        fc_choices = (True,)                        # an FC engine was asked for
    for fld, v in (("in_lanes", in_lanes), ("out_lanes", out_lanes), ("fc_in_lanes", fc_lanes[0]),
                   ("fc_out_lanes", fc_lanes[1])):
        lo, hi = HardwareConfig.field_range(fld)
        if v is not None and not max(lo, 1) <= v <= hi:
            raise ConvcError(f"{where} does not fit {name} with {fld}={v}: the hardware takes {fld} "
                             f"{max(lo, 1)}..{hi}")
    width_hi = HardwareConfig.field_range("max_width")[1]
    pi_lo, pi_hi = HardwareConfig.field_range("in_lanes")
    po_lo, po_hi = HardwareConfig.field_range("out_lanes")
    fi_lo, fi_hi = HardwareConfig.field_range("fc_in_lanes")
    fo_hi = HardwareConfig.field_range("fc_out_lanes")[1]
    for use_fc in fc_choices:
        kind = "with the FC engine" if use_fc else "without an FC engine" if fcs else ""
        engine = [n for n in convs if not (use_fc and schedule.fc_eligible(n))]
        on_fc = [n for n in convs if use_fc and schedule.fc_eligible(n)]
        kmax = max([n.kernel for n in engine] or [1])
        # rows each engine holds: line buffers (padded input rows), LCN windows, and the
        # row writer's output rows (FC layers have no line buffers, only output rows)
        widths = ([(n.padded_width, n, "a padded input row") for n in engine]
                  + [(n.in_shape[2] + n.kernel - 1, n, "a padded input row") for n in lcns]
                  + [(n.out_shape[2], n, "an output row") for n in on_fc])
        max_width, widest, what = max(widths, key=lambda t: t[0]) if widths else (1, None, "")
        if max_width > width_hi:
            note(f"layer {widest.name!r}: {what} of {max_width} words is longer than the line buffers "
                 f"hold ({width_hi})" + (f" ({kind})" if kind else ""))
            continue
        need_max = max([n.conv_shape[1] * n.conv_shape[2] for n in engine] or [1])
        need_min = max([(n.pool.kernel if n.pool else 1) * n.conv_shape[2] for n in engine] or [1])
        fc_psum = max([n.conv_shape[1] * n.conv_shape[2] for n in fcs] or [1]) if use_fc else 1024
        fc_psum = min(-(-fc_psum // 1024) * 1024, 4096)
        pool_kmax = max([n.pool.kernel for n in engine if n.pool] or [1])
        common = dict(board=name, clock_mhz=board.clock_mhz, bits=bits, kmax=kmax, max_width=max_width,
                      pool_kmax=pool_kmax, lcn_channels=lcn_channels,
                      lcn_kmax=lcn_kmax, mem_bytes_per_cycle=board.mem_bytes_per_cycle, fc_psum_words=fc_psum,
                      pwl_segments=pwl_segments(graph), data_width=board.axi_data_width)
        try:
            smallest = HardwareConfig(in_lanes=1, out_lanes=1, psum_words=need_min,
                                      fc_in_lanes=1 if use_fc else 0, fc_out_lanes=1 if use_fc else 0, **common)
        except HardwareConfigError as exc:
            note(str(exc) + (f" ({kind})" if kind else ""))
            continue
        if smallest.dsp > board.dsp:
            big = next((n for n in engine if n.kernel == kmax), None)
            note((f"layer {big.name!r}: " if big is not None and kmax > 1 else "")
                 + f"DSP48E1 slices: one {kmax}x{kmax} kernel unit with its post-processing needs "
                 f"{smallest.dsp}, the board has {board.dsp}" + (f" ({kind})" if kind else ""))
            continue
        if smallest.bram36 > board.bram36:
            note(f"block RAM: the smallest configuration needs {smallest.bram36} RAMB36, the board "
                 f"has {board.bram36}" + (f" ({kind})" if kind else ""))
            continue
        if not board.holds_logic(smallest):
            note(f"logic: the smallest configuration needs about {smallest.luts:,} LUTs, the board has "
                 f"{board.luts:,}" + (f" ({kind})" if kind else ""))
            continue
        max_in = min(MAX_IN_LANES, pi_hi, max([len(n.inputs_of(0)) for n in engine] or [1]))
        max_out = min(po_hi, max([n.out_c for n in engine] or [1]))
        fc_in_max = min(fi_hi, max([n.in_c for n in fcs] or [1]))
        fc_out_max = max([n.out_c for n in fcs] or [1])
        for pi in ([in_lanes] if in_lanes else range(pi_lo, max_in + 1)):
            per_unit = kmax * kmax * pi + 2       # and a pooling and a pointwise lane
            # beside the lanes: the LCN engine and the control multipliers (two map feeders an
            # input lane, one more a further FC input lane: hw.dsp_ctrl)
            fixed = smallest.dsp_lcn + smallest.dsp_ctrl + 2 * (pi - 1)
            po_max = min(max_out, (board.dsp - fixed) // per_unit)
            if not out_lanes:
                # and the logic: the most output lanes whose LUT estimate, with the smallest
                # FC engine, fits the board (more are never tried)
                def logic_ok(po, pi=pi):
                    c = _config(in_lanes=pi, out_lanes=po, fc_in_lanes=1 if use_fc else 0,
                                fc_out_lanes=1 if use_fc else 0, writers=writers_for(po),
                                psum_words=need_min, **common)
                    return c is not None and board.holds_logic(c)
                fit = _largest(po_lo, po_max, logic_ok)
                if fit is None:
                    note(f"logic: in_lanes={pi} needs more than the board's {board.luts:,} LUTs (the estimate)")
                    continue
                po_max = fit
            pos = [out_lanes] if out_lanes else range(max(po_lo, po_max - 3), po_max + 1)
            for po in pos:
                left = board.dsp - fixed - po * per_unit
                fc_shapes = [(0, 0)]
                if use_fc:
                    fc_shapes = [(min(fc_in_max, (left - fo) // (fo + 1)), fo) for fo in FC_OUT_CHOICES
                                 if fo <= min(2 * fc_out_max, fo_hi) and (left - fo) // (fo + 1) >= 1]
                    fi_f, fo_f = fc_lanes
                    if fo_f:
                        fc_shapes = [(fi_f or min(fc_in_max, max(1, (left - fo_f) // (fo_f + 1))), fo_f)]
                    elif fi_f:
                        fc_shapes = [(fi_f, fo) for _, fo in fc_shapes]
                for fi, fo in fc_shapes:
                    cfg = dict(in_lanes=pi, out_lanes=po, fc_out_lanes=fo, writers=writers_for(po), **common)
                    if use_fc and not fc_lanes[0]:
                        # as many FC input lanes as the hardware takes (its memory readers, each
                        # with its multiplier and FIFO) and the board holds
                        def fits_board(v):
                            c = _config(fc_in_lanes=v, psum_words=need_min, **cfg)
                            return (c is not None and c.dsp <= board.dsp and c.bram36 <= board.bram36
                                    and board.holds_logic(c))
                        fi = _largest(fi_lo, fi, fits_board) or fi
                    for psum in _psum_choices(need_max, need_min):
                        try:
                            hw = HardwareConfig(fc_in_lanes=fi, psum_words=psum, **cfg)
                        except HardwareConfigError as exc:   # beyond an engine: not a candidate
                            note(str(exc))
                            break
                        if hw.dsp > board.dsp or hw.bram36 > board.bram36:
                            continue
                        if not board.holds_logic(hw):
                            note(f"logic: configurations beyond the board's {board.luts:,} LUTs (the "
                                 f"estimate) were skipped")
                            continue
                        try:
                            prog = schedule.run(graph, hw, fill=False)
                        except ConvcError as exc:       # this configuration cannot hold a layer
                            note(str(exc) + (f" ({kind})" if kind else ""))
                            continue
                        floor = cycles(prog, True) if use_fc else None
                        row = {"in_lanes": pi, "out_lanes": po, "fc_in_lanes": fi, "fc_out_lanes": fo,
                               "psum_words": psum, "dsp": hw.dsp, "bram36": hw.bram36, "floor": floor,
                               "cycles": None if use_fc else cycles(prog, False)}
                        tried.append(row)
                        fits.append((row, hw, prog))
                        break  # the largest partial-sum buffer that fits is the one to use
    best = None
    for row, hw, prog in sorted(fits, key=lambda f: (f[0]["floor"] if f[0]["cycles"] is None
                                                     else f[0]["cycles"], f[1].dsp)):
        if row["cycles"] is None:
            if best is not None and row["floor"] > best[0][0]:
                break           # every later candidate's floor is larger still
            row["cycles"] = cycles(prog, False)
        key = (row["cycles"], hw.dsp)
        if best is None or key < best[0]:
            best = (key, hw)
    if best is None:
        forced = f" with in_lanes={in_lanes}, out_lanes={out_lanes}" if in_lanes or out_lanes else ""
        detail = "; ".join(errors) if errors else (f"no configuration meets the board's {board.dsp} DSP48E1 "
                                                   f"and {board.bram36} RAMB36")
        raise ConvcError(f"{where} does not fit {name}{forced}: {detail}")
    return best[1], tried

"""The compiler driver: model -> IR -> passes -> program and report.

Pass order::

    frontend       Network -> IRGraph (refuses unsupported layers up front)
    shapes         per-node input and output shapes
    fuse           conv + act + pool -> one engine pass
    lower_unfused  what is left alone -> identity convolutions
    quantize       formats from calibration inputs, integer weights
    pwl_tables     minimax tables for tanh, sqrt and 1/x
    size           hardware configuration for the board
    schedule       records and memory image
"""


from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convc.compiler.ir import IRGraph
from convc.compiler.passes import fold_concat, frontend, fuse, lower_unfused, pwl_tables, quantize, schedule, shapes, size
from convc.compiler.program import MAX_FRAC, Program
from convc.errors import ConvcError
from convc.inputs import model_inputs
from convc.sim.cycle import run_cycles
from convc.sim.memtiming import MemoryTiming

from .report import make_report

__all__ = ["CompileOptions", "CompileResult", "compile_network", "calibration_inputs", "board_cycles"]


@dataclass
class CompileOptions:
    bits: int = 16
    pwl_segments: int = 16
    calib: int | None = None        # calibration images (None: a default by input size)
    in_lanes: int | None = None
    out_lanes: int | None = None
    fc_in_lanes: int | None = None
    fc_out_lanes: int | None = None
    seed: int = 0


@dataclass
class CompileResult:
    program: Program
    graph: IRGraph
    report: dict
    candidates: list[dict] = field(default_factory=list)


def calibration_inputs(net, count: int | None, seed: int = 0, split: str = "train") -> tuple[np.ndarray, str]:
    """Inputs to calibrate (or compare) with: the model's recorded dataset (its
    ``split``), else uniform random images, with one warning on stderr (see
    :func:`convc.inputs.model_inputs`, the one place that decides).

    Returns the raw inputs and a description of where they came from.
    """
    x, _, source = model_inputs(net, split, count, seed)
    return x, source


def compile_network(net, board, opts: CompileOptions, where: str = "model",
                    calib: np.ndarray | None = None) -> CompileResult:
    graph = frontend.run(net, where)
    shapes.run(graph, where)
    fuse.run(graph)
    fold_concat.run(graph)
    lower_unfused.run(graph)
    if calib is None:
        calib, calib_from = calibration_inputs(net, opts.calib, opts.seed)
    else:
        calib_from = f"{len(calib)} given images"
    quantize.run(graph, net, calib, opts.bits, where)
    _check_formats(graph, where)
    pwl_tables.run(graph, opts.pwl_segments)
    hw, candidates = size.run(graph, board, opts.bits, opts.in_lanes, opts.out_lanes, where,
                              fc_lanes=(opts.fc_in_lanes, opts.fc_out_lanes), cycles=board_cycles)
    program = schedule.run(graph, hw)
    if program.memory_words * 2 > board.mem_mbytes << 20:
        raise ConvcError(f"{where}: the network needs {program.memory_words * 2 / (1 << 20):,.0f} MB of memory "
                         f"(constants, input and every layer's output), the {board.name} has "
                         f"{board.mem_mbytes} MB")
    program.meta.update({"model": str(where), "board": board.name, "pwl_segments": opts.pwl_segments,
                         "calibration": calib_from})
    report = make_report(graph, program, board)
    return CompileResult(program, graph, report, candidates)


def _check_formats(graph, where: str) -> None:
    """Refuse, before the size search, a format beyond what a compiled folder records
    (fraction bits in ``[-MAX_FRAC, MAX_FRAC]``): activations or weights near ``2**MAX_FRAC``
    or ``2**-MAX_FRAC`` (a network whose values explode or vanish)."""
    fmts = [("input", graph.input_fmt)] if graph.input_fmt is not None else []
    for node in graph.nodes:
        for attr in ("in_fmt", "w_fmt", "conv_fmt", "out_fmt", "x_fmt", "sq_fmt", "s_fmt", "r_fmt", "y_fmt"):
            fmt = getattr(getattr(node, "quant", None), attr, None)
            if fmt is not None:
                fmts.append((f"layer {node.name!r} {attr}", fmt))
    for what, fmt in fmts:
        if not -MAX_FRAC <= fmt.frac <= MAX_FRAC:
            size = "large" if fmt.frac < 0 else "small"
            raise ConvcError(f"{where}: {what}: the values are too {size} for a fixed-point format (they need "
                             f"{fmt.frac} fraction bits; convc's formats take {-MAX_FRAC} to {MAX_FRAC}): the "
                             "network's values explode or vanish on the calibration inputs")


def board_cycles(program, fc_floor: bool = False) -> int:
    """A schedule's cycles by the one cycle model (``convc.sim.cycle``) with the board's
    memory: what the size pass minimizes and the report prints."""
    return run_cycles(program, MemoryTiming.board(program.hw), fc_floor=fc_floor)

"""The compiler driver: model -> IR -> passes -> program and report.

Pass order::

    frontend     Network -> IRGraph (refuses unsupported layers up front)
    shapes       per-node input and output shapes
    fuse         conv + act + pool -> one engine pass
    standalone   what is left alone -> identity convolutions
    quantize     formats from calibration inputs, integer weights
    pwl          minimax tables for tanh, sqrt and 1/x
    size         hardware configuration for the board
    schedule     records and memory image
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convc.errors import ConvcError
from convc.sim.cycle import MemoryTiming, run_cycles, simulate

from .ir import ConvNode, IRGraph, LCNNode
from .isa import OP_CONV, OP_FC, listing
from .passes import frontend, fuse, pwl, quantize, schedule, shapes, size, standalone
from .program import Program, save_program

__all__ = ["CompileOptions", "CompileResult", "compile_network", "write_outputs", "calibration_inputs",
           "load_images", "synth_report", "accelerator_verilog"]


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


def load_images(path: str | Path, shape: tuple[int, ...]) -> np.ndarray:
    """Raw inputs from a ``.npy`` file: ``(N, C, H, W)`` (or one ``(C, H, W)``)."""
    path = Path(path)
    if not path.is_file():
        raise ConvcError(f"{path}: no such file (--images expects a .npy array of inputs)")
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ConvcError(f"{path}: cannot read as a .npy array without pickles ({exc})") from None
    except OSError as exc:
        raise ConvcError(f"{path}: cannot read ({exc})") from None
    if not isinstance(x, np.ndarray):
        raise ConvcError(f"{path}: expected one array (.npy), got an archive")
    if x.ndim == len(shape):
        x = x[None]
    if tuple(x.shape[1:]) != tuple(shape):
        raise ConvcError(f"{path}: images have shape {list(x.shape[1:])}, the network expects {list(shape)}")
    if x.dtype.kind not in "fiu":
        raise ConvcError(f"{path}: dtype {x.dtype} is not numeric")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise ConvcError(f"{path}: some input values are NaN or infinite")
    return x


def calibration_inputs(net, count: int | None, seed: int = 0, split: str = "train") -> tuple[np.ndarray, str]:
    """Inputs to calibrate (or compare) with: the model's dataset, else random.

    Returns the raw inputs and a description of where they came from.
    """
    pixels = int(np.prod(net.input.shape))
    if count is None:
        count = 256 if pixels <= 16384 else 2
    dataset = net.meta.get("dataset")
    if dataset in ("digits", "synthetic"):
        from convc.reference.datasets import load_dataset

        ds = load_dataset(dataset, net.input.shape, net.classes, seed=int(net.meta.get("train", {}).get("seed", 0)))
        x = ds.train_x if split == "train" else ds.test_x
        return x[:count], f"{dataset} {split} split, {min(count, len(x))} images"
    rng = np.random.default_rng(seed)
    return rng.random((count,) + tuple(net.input.shape), dtype=np.float32), \
        f"{count} uniform random images (the model names no built-in dataset)"


def compile_network(net, board, opts: CompileOptions, where: str = "model",
                    calib: np.ndarray | None = None) -> CompileResult:
    graph = frontend.run(net, where)
    shapes.run(graph, where)
    fuse.run(graph)
    standalone.run(graph)
    if calib is None:
        calib, calib_from = calibration_inputs(net, opts.calib, opts.seed)
    else:
        calib_from = f"{len(calib)} given images"
    quantize.run(graph, net, calib, opts.bits, where)
    pwl.run(graph, opts.pwl_segments)
    hw, candidates = size.run(graph, board, opts.bits, opts.in_lanes, opts.out_lanes, where,
                              fc_lanes=(opts.fc_in_lanes, opts.fc_out_lanes), cycles=board_cycles)
    program = schedule.run(graph, hw)
    program.meta.update({"model": str(where), "board": board.name, "pwl_segments": opts.pwl_segments,
                         "calibration": calib_from})
    report = make_report(graph, program, board)
    return CompileResult(program, graph, report, candidates)


def board_cycles(program, fc_floor: bool = False) -> int:
    """A schedule's cycles by the one cycle model (``convc.sim.cycle``) with the board's
    memory: what the size pass minimizes and the report prints."""
    return run_cycles(program, MemoryTiming.board(program.hw), fc_floor=fc_floor)


def make_report(graph: IRGraph, program: Program, board) -> dict:
    hw = program.hw
    timing = simulate(program, MemoryTiming.board(hw))
    per = {lt.name: lt for lt in timing.layers}          # cycles, bound, bytes: the cycle model's
    occ: dict[str, dict] = {}
    for ins, c in zip(program.instrs, timing.records):
        d = occ.setdefault(c.name, {"lane_slots": 0, "lanes_used": 0})
        if ins.op == OP_FC:
            groups = -(-ins.n_in // hw.fc_in_lanes)
            d["lane_slots"] += c.compute_cycles
            d["lanes_used"] += c.compute_cycles * ins.n_in * ins.n_out / (groups * hw.dsp_fc)
        if ins.op == OP_CONV:  # kernel units holding a real (input, output) pair
            groups = -(-ins.n_in // hw.in_lanes)
            d["lane_slots"] += c.compute_cycles
            d["lanes_used"] += c.compute_cycles * ins.n_in * ins.n_out / (groups * hw.kernel_units)
    layers = []
    total_macs = 0
    for node in graph.nodes:
        lt, d = per[node.name], occ[node.name]
        row = {"name": node.name, "sources": node.sources, "type": "lcn" if isinstance(node, LCNNode) else "conv",
               "in_shape": list(node.in_shape), "out_shape": list(node.out_shape), "passes": lt.passes,
               "cycles": lt.cycles, "bound": lt.bound, "bytes_read": lt.bytes_read,
               "bytes_written": lt.bytes_written}
        if isinstance(node, ConvNode):
            q = node.quant
            macs = node.macs
            row.update({"kernel": node.kernel, "stride": node.stride, "act": node.act.kind if node.act else None,
                        "pool": f"{node.pool.kind}{node.pool.kernel}" if node.pool else None,
                        "in_fmt": str(q.in_fmt), "w_fmt": str(q.w_fmt), "conv_fmt": str(q.conv_fmt),
                        "out_fmt": str(q.out_fmt), "acc_shift": q.acc_shift,
                        "pwl_error": q.pwl_error if q.pwl is not None else None,
                        "pwl_segments": q.pwl.segments if q.pwl is not None else None,
                        "lane_occupancy": round(d["lanes_used"] / d["lane_slots"], 4) if d["lane_slots"] else 0})
        else:
            q = node.quant
            macs = int(2 * node.in_shape[1] * node.in_shape[2] * node.kernel ** 2 * node.in_shape[0])
            row.update({"kernel": node.kernel, "in_fmt": str(q.x_fmt), "sq_fmt": str(q.sq_fmt), "s_fmt": str(q.s_fmt),
                        "r_fmt": str(q.r_fmt), "out_fmt": str(q.y_fmt), "sqrt_error": q.sqrt_error,
                        "recip_error": q.recip_error, "pwl_segments": q.sqrt_pwl.segments})
        row["macs"] = macs
        row["ms"] = lt.ms
        total_macs += macs
        layers.append(row)
    cycles = timing.cycles
    conv_macs = sum(r["macs"] for r in layers if r["type"] == "conv")  # conv and FC engines' MACs
    return {
        "model": program.meta.get("model"), "name": graph.name, "board": board.to_json(), "hw": hw.to_json(),
        "bits": hw.bits, "input_fmt": str(graph.input_fmt), "notes": graph.notes,
        "calibration": program.meta.get("calibration"),
        "layers": layers, "passes": len(program.instrs) - 1, "macs": total_macs, "cycles": cycles,
        "ms_per_frame": cycles / (hw.clock_mhz * 1e3),
        "mac_utilization": conv_macs / (cycles * hw.macs_per_cycle) if cycles else 0.0,
        "dsp": hw.dsp, "dsp_board": board.dsp, "bram36": hw.bram36, "bram36_board": board.bram36,
        "memory_words": program.memory_words, "image_words": int(program.image.size),
        "timing": "the cycle model (convc.sim.cycle) with the board's memory, checked against the RTL",
    }


def report_text(report: dict) -> str:
    hw = report["hw"]
    lines = [f"convc compile report: {report['name']} for {report['board']['title']}",
             f"fixed point: {report['bits']} bits, input {report['input_fmt']}, rounding round-half-up, "
             f"48-bit accumulators; calibration: {report['calibration']}",
             f"hardware: {hw['in_lanes']} input x {hw['out_lanes']} output lanes of {hw['kmax']}x{hw['kmax']} "
             f"kernel units, partial sums {hw['psum_words']} words/lane, line buffers {hw['max_width']} words; "
             + (f"FC engine {hw['fc_in_lanes']} x {hw['fc_out_lanes']}; " if hw['fc_in_lanes'] else "")
             + f"LCN window {hw['lcn_kmax'] or '-'}; {hw.get('writers', 1)} memory write port(s); "
             f"{hw['clock_mhz']:g} MHz",
             f"resources: DSP48E1 {report['dsp']} / {report['dsp_board']}, RAMB36 {report['bram36']} / "
             f"{report['bram36_board']} (estimate from the configuration)", ""]
    head = f"{'layer':<12} {'formats (in, w, conv -> out)':<34} {'PWL err':>9} {'MACs':>14} {'passes':>6} " \
           f"{'occup.':>6} {'cycles':>10} {'ms':>7} {'KB in':>8} {'KB out':>8} bound"
    lines.append(head)
    for r in report["layers"]:
        if r["type"] == "conv":
            fmts = f"{r['in_fmt']}, {r['w_fmt']}, {r['conv_fmt']} -> {r['out_fmt']}"
            err = f"{r['pwl_error']:.2e}" if r["pwl_error"] is not None else "-"
            occ = f"{r['lane_occupancy']:.2f}"
        else:
            fmts = f"{r['in_fmt']} sq {r['sq_fmt']} s {r['s_fmt']} -> {r['out_fmt']}"
            err = f"{max(r['sqrt_error'], r['recip_error']):.2e}"
            occ = "-"
        lines.append(f"{r['name']:<12} {fmts:<34} {err:>9} {r['macs']:>14,} {r['passes']:>6} {occ:>6} "
                     f"{r['cycles']:>10,} {r['ms']:>7.3f} {r['bytes_read'] / 1024:>8.1f} "
                     f"{r['bytes_written'] / 1024:>8.1f} {r['bound']}")
    lines += ["", f"total: {report['passes']} passes, {report['macs']:,} MACs, {report['cycles']:,} cycles = "
                  f"{report['ms_per_frame']:.3f} ms per frame at {hw['clock_mhz']:g} MHz, MAC utilization "
                  f"{report['mac_utilization']:.1%} of {hw['derived']['macs_per_cycle']} multipliers "
                  f"(cycle model, the board's memory)"]
    if report.get("synth"):
        lines += _synth_text(report["synth"], report["board"]["title"])
    hdl = report.get("hdl")
    if hdl:
        lines.append(f"hardware: {hdl['verilog']} (module {hdl['module']})"
                     + (f"; ISE project {hdl['ise']} (top {hdl['ise_top']}; not run: no bitstream, timing "
                        f"unknown; black boxes {' and '.join(hdl['black_boxes'])} to generate, see "
                        f"{hdl['readme']})" if hdl.get("ise") else ""))
    for note in report["notes"]:
        lines.append(f"note: {note}")
    for r in report["layers"]:
        if r.get("sqrt_error") is not None:
            lines.append(f"note: {r['name']}: sqrt table error {r['sqrt_error']:.3e}, 1/x table error "
                         f"{r['recip_error']:.3e} ({r['pwl_segments']} segments each)")
    return "\n".join(lines) + "\n"


HDL_FOLDER = "hdl"
ISE_FOLDER = "ise"
ISE_BOARDS = ("virtex6",)      # boards with a vendor project (the ML605)


def synth_report(counts: dict, board, hw) -> dict:
    """The ``synth`` entry of report.json from :func:`convc.hdl.synth.synthesize` counts
    of the whole accelerator, against the device's resources."""
    bram36 = counts["RAMB36E1"] + -(-counts["RAMB18E1"] // 2)   # two RAMB18E1 share a RAMB36 tile

    def frac(n, of):
        return None if n is None or not of else round(n / of, 4)

    return {
        "tool": "yosys synth_xilinx -family xc6v -run :map_luts"
                + (", then abc -luts (LUT mapping)" if counts["full"] else ""),
        "flow": "full" if counts["full"] else "fast",
        "top": counts.get("top"), "seconds": counts.get("seconds"),
        "DSP48E1": counts["DSP48E1"], "RAMB18E1": counts["RAMB18E1"], "RAMB36E1": counts["RAMB36E1"],
        "bram36": bram36, "LUT": counts["LUT"], "FF": counts["FF"], "LUTRAM": counts.get("LUTRAM"),
        "device": {"DSP48E1": board.dsp, "bram36": board.bram36, "LUT": board.luts, "FF": board.ffs},
        "utilization": {"DSP48E1": frac(counts["DSP48E1"], board.dsp), "bram36": frac(bram36, board.bram36),
                        "LUT": frac(counts["LUT"], board.luts), "FF": frac(counts["FF"], board.ffs)},
        "estimate": {"DSP48E1": hw.dsp, "bram36": hw.bram36},
        "note": "Yosys counts before place and route (ISE's may differ); no timing",
    }


def _synth_text(s: dict, title: str) -> list[str]:
    def cell(n, of):
        return f"{n:,} / {of:,} ({n / of:.1%})"

    d = s["device"]
    lut = cell(s["LUT"], d["LUT"]) if s["LUT"] is not None else "- (--synth-full counts them)"
    lines = [f"synthesis: {s['tool']} on the whole accelerator ({s['seconds']:.0f} s; Yosys counts before "
             f"place and route, no timing), against the {title}:",
             f"  DSP48E1 {cell(s['DSP48E1'], d['DSP48E1'])}, RAMB36 {cell(s['bram36'], d['bram36'])} "
             f"[{s['RAMB36E1']} RAMB36E1 + {s['RAMB18E1']} RAMB18E1], LUT {lut}, FF {cell(s['FF'], d['FF'])}",
             f"  compiler estimate: DSP48E1 {s['estimate']['DSP48E1']}, RAMB36 {s['estimate']['bram36']}"]
    if s["estimate"]["DSP48E1"] and not s["DSP48E1"]:
        lines.append("note: the synthesized accelerator has no DSP48E1 while the configuration needs "
                     f"{s['estimate']['DSP48E1']}: its hardware (hdl/accel.py) is incomplete")
    return lines


def _clear_stale_hdl(out: Path, verilog: bool = True, ise: bool = True) -> None:
    """Remove the HDL files an earlier compile wrote (only the names convc writes), so
    that every file in ``out`` comes from this compile."""
    from convc.hdl.project import ACCEL_NAME, GENERATED_FILES

    targets = [(out / HDL_FOLDER, (f"{ACCEL_NAME}.v",))] if verilog else []
    if ise:
        targets.append((out / ISE_FOLDER, GENERATED_FILES))
    for folder, names in targets:
        if not folder.is_dir():
            continue
        for name in names:
            if (folder / name).is_file():
                (folder / name).unlink()
        if not any(folder.iterdir()):
            folder.rmdir()


def write_outputs(result: CompileResult, out: str | Path, *, hdl: bool = True, accel_verilog: str | None = None,
                  log=None) -> list[Path]:
    """Write every output file; each appears whole or not at all.

    Everything is generated into a staging folder inside ``out`` first, so a failure
    (a model problem, the Verilog export, the ISE project) leaves ``out`` as it was;
    then each file is renamed into place.  With ``hdl`` (default) this also writes
    ``hdl/convc_accel.v`` (the accelerator's Verilog: ``accel_verilog`` if given) and,
    for the ML605, the ISE project in ``ise/``; without it, those files from an earlier
    compile are removed.  ``log`` (a callable taking a message) reports progress.
    Returns the written files.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConvcError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda msg: None)
    prog = result.program
    board = prog.meta.get("board", prog.hw.board)
    staging = Path(tempfile.mkdtemp(prefix=".convc-", dir=out))
    try:
        if hdl:
            from convc.hdl.project import ACCEL_NAME, MEM_BOX, HOST_BOX, PROJECT_NAME, write_ise_project

            if accel_verilog is None:
                say(f"exporting the accelerator's Verilog ({ACCEL_NAME}) ...")
                accel_verilog = accelerator_verilog(prog.hw)
            (staging / HDL_FOLDER).mkdir()
            (staging / HDL_FOLDER / f"{ACCEL_NAME}.v").write_text(accel_verilog)
            hdl_info = {"verilog": f"{HDL_FOLDER}/{ACCEL_NAME}.v", "module": ACCEL_NAME, "ise": None}
            if board in ISE_BOARDS:
                say(f"writing the ISE project for the ML605 into {ISE_FOLDER}/ (ISE is not run) ...")
                write_ise_project(prog.hw, staging / ISE_FOLDER, accel_verilog=accel_verilog,
                                  model=prog.meta.get("model"))
                hdl_info.update({"ise": f"{ISE_FOLDER}/", "ise_top": PROJECT_NAME, "ise_run": False,
                                 "black_boxes": [MEM_BOX, HOST_BOX],
                                 "readme": f"{ISE_FOLDER}/README.txt"})
            result.report["hdl"] = hdl_info
        else:
            result.report["hdl"] = None
        save_program(prog, staging)
        (staging / "schedule.txt").write_text(listing(prog.instrs, prog.names))
        (staging / "hwconfig.json").write_text(json.dumps(prog.hw.to_json(), indent=1))
        (staging / "report.json").write_text(json.dumps(result.report, indent=1))
        (staging / "report.txt").write_text(report_text(result.report))
        if not hdl or board not in ISE_BOARDS:
            _clear_stale_hdl(out, verilog=not hdl, ise=True)
        written = []
        for f in sorted(p for p in staging.rglob("*") if p.is_file()):
            dest = out / f.relative_to(staging)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, dest)   # same file system: each file appears whole
            written.append(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def accelerator_verilog(hw) -> str:
    """The Verilog of ``Accelerator(hw)`` (module ``convc_accel``); a configuration it
    cannot be built for is a ConvcError."""
    from convc.hdl import project

    try:
        return project.accelerator_verilog(hw)
    except (ValueError, TypeError) as exc:
        raise ConvcError(f"cannot generate the accelerator for this configuration: {exc}") from None

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

import ctypes
import errno
import functools
import json
import os
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:         # not on POSIX: compiles into one parent folder do not take turns
    fcntl = None

from convc.errors import ConvcError
from convc.inputs import model_inputs
from convc.sim.cycle import MemoryTiming, run_cycles, simulate

from .bitstream import bitstream_text

from .ir import ConcatNode, ConvNode, IRGraph, LCNNode
from .isa import OP_CONV, OP_FC, listing
from .manifest import MANIFEST_NAME, is_manifest, listed_files, model_record, sidecars, write_manifest
from .passes import fold_concat, frontend, fuse, lower_unfused, pwl_tables, quantize, schedule, shapes, size
from .program import MAX_FRAC, MAX_JSON_BYTES, PROGRAM_FILES, Program, load_program, save_program

__all__ = ["CompileOptions", "CompileResult", "compile_network", "write_outputs", "calibration_inputs",
           "synth_report", "accelerator_verilog"]


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
    by_name = {n.name: n for n in graph.nodes}
    for region_node in graph.nodes:
        if isinstance(region_node, ConvNode) and region_node.into is not None:
            continue                       # a part: its concatenation's row counts it
        # one row a region; a concatenation's parts are one row (their records carry its name)
        members = [by_name[p] for p in region_node.parts] if isinstance(region_node, ConcatNode) else [region_node]
        node = members[0]
        lt, d = per[region_node.name], occ[region_node.name]
        row = {"name": region_node.name, "sources": region_node.sources,
               "type": "lcn" if isinstance(node, LCNNode) else "conv",
               "in_shape": list(node.in_shape), "out_shape": list(region_node.out_shape), "passes": lt.passes,
               "cycles": lt.cycles, "bound": lt.bound, "bytes_read": lt.bytes_read,
               "bytes_written": lt.bytes_written}
        if isinstance(node, ConvNode):
            q = node.quant
            macs = sum(m.macs for m in members)
            row.update({"kernel": node.kernel, "stride": node.stride, "act": node.act.kind if node.act else None,
                        "pool": f"{node.pool.kind}{node.pool.kernel}" if node.pool else None, "up": node.up,
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
        "luts": hw.luts, "luts_board": board.luts, "lut_inputs": board.lut_inputs,
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
             f"resources: {report['board'].get('dsp_name', 'DSP48E1')} {report['dsp']} / {report['dsp_board']}, "
             f"RAMB36 {report['bram36']} / {report['bram36_board']}"
             + (f", LUT6 about {report['luts']:,} / {report['luts_board']:,}" if report.get("lut_inputs") == 6 else "")
             + " (estimate from the configuration)", ""]
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
    if report.get("bitstream"):
        lines += bitstream_text(report["bitstream"], report["board"]["title"])
    hdl = report.get("hdl")
    if hdl:
        proj = hdl.get("project")
        lines.append(f"hardware: {hdl['verilog']} (module {hdl['module']})"
                     + (f"; {proj['tool']} project {proj['folder']} (top {proj['top']}; not run: no bitstream, "
                        f"timing unknown; black boxes {' and '.join(proj['black_boxes'])} to generate, see "
                        f"{proj['readme']})" if proj else ""))
    for note in report["notes"]:
        lines.append(f"note: {note}")
    for r in report["layers"]:
        if r.get("sqrt_error") is not None:
            lines.append(f"note: {r['name']}: sqrt table error {r['sqrt_error']:.3e}, 1/x table error "
                         f"{r['recip_error']:.3e} ({r['pwl_segments']} segments each)")
    return "\n".join(lines) + "\n"


HDL_FOLDER = "hdl"
ISE_FOLDER = "ise"
VIVADO_FOLDER = "vivado"
PROJECT_FOLDERS = (ISE_FOLDER, VIVADO_FOLDER)   # vendor projects (boards whose flows include "project")
OUR_FOLDERS = (HDL_FOLDER, *PROJECT_FOLDERS)


def synth_report(counts: dict, board, hw) -> dict:
    """The ``synth`` entry of report.json from :func:`convc.hdl.synth.synthesize` counts
    of the whole accelerator, against the device's resources."""
    bram36 = counts["RAMB36E1"] + -(-counts["RAMB18E1"] // 2)   # two RAMB18E1 share a RAMB36 tile

    def frac(n, of):
        return None if n is None or not of else round(n / of, 4)

    return {
        "tool": f"yosys synth_xilinx -family {board.yosys_family} -run :map_luts"
                + (", then abc -luts (LUT mapping)" if counts["full"] else ""),
        "flow": "full" if counts["full"] else "fast",
        "method": counts.get("method", "flat"), "methods": counts.get("methods"),
        "peak_kb": counts.get("peak_kb"),
        "modules": [{k: r.get(k) for k in ("module", "instances", "total", "seconds", "peak_kb")}
                    for r in counts.get("modules") or []],
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
    how = {"modules": "per distinct module, no flattening, counts x instances",
           "hier": "hierarchical, no flattening", "flat": "flattened"}.get(s.get("method", "flat"), "")
    lines = [f"synthesis: {s['tool']} on the whole accelerator ({how}; {s['seconds']:.0f} s; Yosys counts "
             f"before place and route, no timing), against the {title}:",
             f"  DSP48E1 {cell(s['DSP48E1'], d['DSP48E1'])}, RAMB36 {cell(s['bram36'], d['bram36'])} "
             f"[{s['RAMB36E1']} RAMB36E1 + {s['RAMB18E1']} RAMB18E1], LUT {lut}, FF {cell(s['FF'], d['FF'])}",
             f"  compiler estimate: DSP48E1 {s['estimate']['DSP48E1']}, RAMB36 {s['estimate']['bram36']}"]
    if s["estimate"]["DSP48E1"] and not s["DSP48E1"]:
        lines.append("note: the synthesized accelerator has no DSP48E1 while the configuration needs "
                     f"{s['estimate']['DSP48E1']}: its hardware (hdl/accel.py) is incomplete")
    return lines


def _convc_names() -> set[str]:
    """Every name a compile writes into its folder (for folders compiled before the
    manifest: their files are known by name only)."""
    from convc.hdl.project import ACCEL_NAME, PROJECTS, generated_files

    return ({*PROGRAM_FILES, MANIFEST_NAME, *REPORT_FILES, f"{HDL_FOLDER}/{ACCEL_NAME}.v"}
            | {f"{p.folder}/{name}" for p in PROJECTS.values() for name in generated_files(p.board)})


REPORT_FILES = ("schedule.txt", "report.json", "report.txt")
OLD_STAGING_PREFIX = ".convc-"      # inside the folder, before whole-folder replacement


def _remove_tree(path: Path) -> None:
    """Delete a staging or backup folder (one function, so that tests can pretend
    the process was killed before it ran)."""
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _locked(folder: Path):
    """Hold an exclusive lock on ``folder`` (the output's parent) while a compile
    replaces its output: two compiles never clean up each other's staging folder."""
    try:
        fd = os.open(folder, os.O_RDONLY) if fcntl is not None else None
    except OSError:
        fd = None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                pass
        yield
    finally:
        if fd is not None:
            os.close(fd)            # releases the lock


def _output_folder(out: Path) -> Path:
    """The real path of the output folder ``out`` (its parent created); a path that
    cannot be an output folder is a :class:`ConvcError` naming it."""
    if out.exists() and not out.is_dir():
        raise ConvcError(f"{out}: exists and is not a folder; give -o a folder (it is replaced as a whole)")
    real = Path(os.path.realpath(out))
    if real.parent == real:
        raise ConvcError(f"{out}: the root folder cannot be an output folder")
    try:
        cwd = Path.cwd().resolve()
    except OSError:
        cwd = None
    if cwd is not None and (cwd == real or real in cwd.parents):
        raise ConvcError(f"{out}: is the current folder or holds it; convc replaces its output folder as a "
                         f"whole: run the compile from elsewhere, or give -o another folder")
    ancestor = real.parent
    while not ancestor.exists() and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConvcError(f"{out}: {ancestor} is a file, not a folder")
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConvcError(f"{out}: cannot create the folder {real.parent} ({exc.strerror})") from None
    if not os.access(real.parent, os.W_OK | os.X_OK):
        raise ConvcError(f"{out}: cannot write into {real.parent} (permission denied); convc writes the "
                         f"compiled folder beside it first, then renames it")
    return real


def _recover(out: Path, say) -> None:
    """Finish or undo a compile that was killed while replacing ``out``.

    A killed compile leaves at most: its staging folder (deleted here: ``out`` is
    untouched until the swap), or the previous folder renamed to the backup name with
    ``out`` missing (put back here), or, killed while deleting the backup once ``out``
    was in place, part of the backup (deleted here)."""
    staging, backup = sidecars(out)
    if backup.is_dir() and not os.path.lexists(out):
        os.rename(backup, out)
        say(f"restored {out} from {backup.name}, left by an interrupted compile")
    elif backup.is_dir():
        if staging.is_dir():
            raise ConvcError(f"{out}: an interrupted compile left the previous folder as {backup} and the new "
                             f"one as {staging}, and {out} exists too; keep the one you want as {out}, delete "
                             f"the others, then compile again")
        _remove_tree(backup)
    if staging.is_dir():
        _remove_tree(staging)
    for path in (staging, backup):
        if os.path.lexists(path) and not path.is_dir():
            raise ConvcError(f"{path}: is in the way of the compile's {'staging' if path == staging else 'backup'}"
                             f" folder; move it away")


def _foreign_entries(out: Path) -> list[str]:
    """The entries of ``out`` (relative paths, files and empty folders) that convc
    did not write, which a compile carries into the new folder.  A folder that convc
    did not compile (no manifest, no ``program.json`` of a compile) and that is not
    empty is refused: its files are the user's."""
    if not out.is_dir():
        return []
    ours = listed_files(out)
    if ours is None:            # no intact manifest: convc's files are known by name
        try:
            path = out / "program.json"
            doc = json.loads(path.read_text()) if path.stat().st_size < MAX_JSON_BYTES else None
            compiled = isinstance(doc, dict) and doc.get("format") == "convc-program"
        except (OSError, ValueError, RecursionError):
            compiled = False
        compiled = compiled or is_manifest(out / MANIFEST_NAME)
        entries = sorted(p.name for p in out.iterdir())
        if not compiled and entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise ConvcError(f"{out}: exists, is not empty ({shown}) and is not a folder 'convc compile' wrote "
                             f"(no {MANIFEST_NAME}); convc replaces its output folder as a whole and will not "
                             f"delete or mix in files it did not write: give -o a new or empty folder, or "
                             f"move those files away")
        ours = _convc_names()
    ours = set(ours) | {MANIFEST_NAME}
    keep = []
    def unreadable(exc: OSError):
        raise exc               # a folder that cannot be read: its files would be lost

    for root, dirs, files in os.walk(out, onerror=unreadable):
        rel_root = Path(root).relative_to(out)
        if rel_root == Path("."):       # staging folders of convc before the manifest: not kept
            dirs[:] = [d for d in dirs if not d.startswith(OLD_STAGING_PREFIX)]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = (rel_root / name).as_posix()
            if rel not in ours:
                keep.append(rel)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        if not files and not dirs and rel_root != Path(".") and rel_root.as_posix() not in OUR_FOLDERS:
            keep.append(rel_root.as_posix() + "/")
    return sorted(keep)


def _carry(out: Path, staging: Path, keep: list[str], written: set[str]) -> None:
    """Put the user's entries of ``out`` into the new folder: hard links (copies where
    the file system has none), so that ``out`` stays untouched until the swap."""
    for rel in keep:
        if rel.rstrip("/") in written:
            raise ConvcError(f"{out / rel}: not written by convc (not in its {MANIFEST_NAME}), and this compile "
                             f"writes a file of that name; move it away, then compile again")
    for rel in keep:
        src, dst = out / rel, staging / rel
        if rel.endswith("/"):
            dst.mkdir(parents=True, exist_ok=True)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
            continue
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def _sync(folder: Path) -> None:
    """Flush a folder's files and folders to the disk before it is renamed into place."""
    for root, _, files in os.walk(folder):
        for name in files + ["."]:
            _sync_dir(Path(root) / name)


def _swap(out: Path, staging: Path) -> None:
    """Replace ``out`` by ``staging`` as a whole.

    Where the system can (Linux ``renameat2`` with ``RENAME_EXCHANGE``), the two
    folders trade places in one step, so ``out`` is always there, old or new; the
    staging name then holds the previous folder, which is deleted.  Elsewhere: ``out``
    -> backup, staging -> ``out``, delete the backup.  Killed at any point, the next
    compile's :func:`_recover` finds the old folder or the new one whole."""
    _, backup = sidecars(out)
    if not out.exists():
        os.rename(staging, out)
    elif _exchange(staging, out):
        _remove_tree(staging)           # the previous folder
    else:
        os.rename(out, backup)
        try:
            os.rename(staging, out)
        except OSError:
            os.rename(backup, out)
            raise
        _remove_tree(backup)
    _sync_dir(out.parent)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@functools.cache
def _renameat2():
    """libc's ``renameat2`` (Linux, glibc 2.28 and later), or ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _exchange(a: Path, b: Path) -> bool:
    """Swap the folders ``a`` and ``b`` atomically; ``False`` where the system or
    the file system cannot (nothing is changed then)."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _sync_dir(folder: Path) -> None:
    """fsync one file or folder (best effort: not every file system can)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_outputs(result: CompileResult, out: str | Path, *, hdl: bool = True, accel_verilog: str | None = None,
                  log=None, model: str | Path | dict | None = None,
                  extra: dict[str, Path] | None = None) -> list[Path]:
    """Write the compiled folder ``out``; it is replaced as a whole, never mixed.

    Every file is generated into a staging folder beside ``out`` (``.OUT.convc-staging``,
    same parent, so renames are atomic), with ``manifest.json`` (sizes and hashes of
    every file, and the model) written last, and checked by
    :func:`~convc.compiler.program.load_program`; then the staging folder and ``out``
    trade places in one atomic step (or, where the system cannot, ``out`` is renamed
    to a backup and the staging folder to ``out``) and the previous folder is deleted
    (:func:`_swap`).  A failure or an interrupt (a model problem, the Verilog export,
    the ISE project, a full disk, Ctrl-C) leaves ``out`` as it was; a compile killed
    at any point leaves the old folder or the new one whole, and the next compile
    cleans up what it left (or puts the old folder back, see :func:`_recover`).
    Compiles into the same parent folder take turns (a lock on the parent).

    Files in ``out`` that convc did not write (not in its manifest: the user's
    constraints in ``ise/``, a ``verify/`` report) are carried into the new folder.
    An existing ``out`` that convc did not compile and that is not empty is refused.

    With ``hdl`` (default) the folder holds ``hdl/convc_accel.v`` (the accelerator's
    Verilog: ``accel_verilog`` if given) and, for the ML605, the ISE project in
    ``ise/`` (marked editable in the manifest: its README asks the user to edit it);
    without it, neither (those of an earlier compile are not carried over).

    Parameters
    ----------
    result : CompileResult
    out : str or Path
        The output folder.
    hdl : bool
        Write the Verilog and the ISE project.
    accel_verilog : str, optional
        The accelerator's Verilog, if already exported.
    log : callable, optional
        Takes a progress message.
    model : str or Path or dict, optional
        The model file compiled (hashed into the manifest), or its
        :func:`~convc.compiler.manifest.model_record` taken when it was read; default
        ``result.program.meta["model"]`` when that names a file.
    extra : dict of str to Path, optional
        Folders copied in whole under these names (the ``--bitstream`` build).

    Returns
    -------
    list of Path
        The files written (``out / name``, the manifest included), sorted.

    Raises
    ------
    ConvcError
        ``out`` is a file, a folder convc did not compile, inside an unwritable or
        missing place, or cannot be written.
    """
    shown = Path(out)
    say = log or (lambda msg: None)
    prog = result.program
    board = prog.meta.get("board", prog.hw.board)
    if model is None:
        where = prog.meta.get("model")
        model = where if isinstance(where, str) and Path(where).is_file() else None
    record = model if isinstance(model, dict) or model is None else model_record(model)
    try:
        real = _output_folder(shown)
        staging, _ = sidecars(real)
        with _locked(real.parent):
            _recover(real, say)
            keep = _foreign_entries(real)
            staging.mkdir()
            try:
                written = _stage(result, staging, hdl, accel_verilog, board, say, record, extra or {})
                _carry(real, staging, keep, set(written))
                _sync(staging)
                _swap(real, staging)
            finally:            # after an error or an interrupt too: the old folder or the new, whole
                try:
                    _recover(real, lambda msg: None)
                except (ConvcError, OSError):
                    pass
    except OSError as exc:
        raise ConvcError(f"{shown}: cannot write the compiled folder ({exc.strerror or exc}"
                         f"{': ' + str(exc.filename) if exc.filename else ''})") from None
    return [shown / name for name in written]


def _stage(result: CompileResult, staging: Path, hdl: bool, accel_verilog: str | None, board: str, say,
           model: dict | None, extra: dict[str, Path]) -> list[str]:
    """Write every file of the compiled folder into ``staging``, the manifest last,
    and check that the folder loads.  Returns the names written, sorted."""
    prog = result.program
    editable = []
    if hdl:
        from convc.boards import get_board
        from convc.hdl.project import ACCEL_NAME, project_for, write_vendor_project

        if accel_verilog is None:
            say(f"exporting the accelerator's Verilog ({ACCEL_NAME}) ...")
            accel_verilog = accelerator_verilog(prog.hw)
        (staging / HDL_FOLDER).mkdir()
        (staging / HDL_FOLDER / f"{ACCEL_NAME}.v").write_text(accel_verilog)
        hdl_info = {"verilog": f"{HDL_FOLDER}/{ACCEL_NAME}.v", "module": ACCEL_NAME, "ise": None, "project": None}
        b = get_board(board)
        if "project" in b.flows:
            proj = project_for(b)
            say(f"writing the {proj.tool} project for the {b.title} into {proj.folder}/ ({proj.tool} is not run) ...")
            info = write_vendor_project(b, staging / proj.folder, prog.hw, accel_verilog=accel_verilog,
                                        model=prog.meta.get("model"))
            editable = [p.relative_to(staging).as_posix() for p in info.folder.rglob("*") if p.is_file()]
            hdl_info["project"] = info.to_json(staging)
            if info.tool == "ISE":      # the keys of earlier report.json files
                hdl_info.update({"ise": info.to_json(staging)["folder"], "ise_top": info.top, "ise_run": False,
                                 "black_boxes": list(info.black_boxes), "readme": info.to_json(staging)["readme"]})
        result.report["hdl"] = hdl_info
    else:
        result.report["hdl"] = None
    for name, folder in extra.items():
        shutil.copytree(folder, staging / name)
    save_program(prog, staging, manifest=False)
    (staging / "schedule.txt").write_text(listing(prog.instrs, prog.names))
    (staging / "report.json").write_text(json.dumps(result.report, indent=1))
    (staging / "report.txt").write_text(report_text(result.report))
    names = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    write_manifest(staging, names, model, editable=editable)
    try:                       # a compile never leaves a folder that its readers refuse
        load_program(staging)
    except ConvcError as exc:
        raise ConvcError(f"internal error: the compiled folder fails its own checks, nothing was written "
                         f"({exc}); please report this with the model") from None
    return sorted(names + [MANIFEST_NAME])


def accelerator_verilog(hw) -> str:
    """The Verilog of ``Accelerator(hw)`` (module ``convc_accel``); a configuration it
    cannot be built for is a ConvcError."""
    from convc.hdl import project

    try:
        return project.accelerator_verilog(hw)
    except (ValueError, TypeError) as exc:
        raise ConvcError(f"cannot generate the accelerator for this configuration: {exc}") from None

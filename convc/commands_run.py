"""The run commands of the ``convc`` command line: ``run`` (the golden model of a
compiled folder), ``compare`` (float against fixed point), ``simulate`` (the cycle model)
and ``verify`` (the accelerator's Verilog against the golden model).

Each ``cmd_*`` takes the parsed arguments (:func:`convc.cli.build_parser`) and returns
the exit status.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from convc.boards import get_board
from convc.compiler.program import load_program
from convc.pipeline import CompileOptions, compile_network
from convc.reference.modelfile import load_model
from convc.sim import golden
from convc.sim.compare import compare
from convc.sim.cycle import simulate
from convc.sim.labelmap import dataset_truth
from convc.sim.memtiming import MemoryTiming
from convc.sim.report import write_compare_report
from convc.sim.verify import VerifyError, verify
from convc.sim.wordcompare import describe_mismatch

from .cli_io import check_count, emit
from .errors import ConvcError
from .inputs import check_output_dir, check_output_file, load_images, load_labels, model_inputs, save_npy

__all__ = ["cmd_run", "cmd_compare", "cmd_simulate", "cmd_verify"]


def _inputs_for(args, net, program=None):
    """Inputs (and labels) for run/compare: --images (and --labels), else the test split
    of the model's recorded dataset, else random images with a warning
    (:func:`convc.inputs.model_inputs`)."""
    check_count("--limit", args.limit)
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
    check_count("--limit", args.limit)
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
    emit(args, obj, "\n".join(text))
    return 0


def cmd_compare(args) -> int:
    check_count("--limit", args.limit)
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
    emit(args, obj, text)
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

"""RTL verification at full size: the native Verilator harness on the board-size builds.

    .venv/bin/python bench/bench_verify_native.py [--images 1000] [--cocotb-images 1]
        [--skip-cocotb] [--skip-sceneparse] [--work DIR]     (about 8 minutes)

Prints, in one run (time it on a quiet machine: both cores are used):

1. LeNet trained on the scikit-learn digits with 1,000 of the 1,797 held out (stratified,
   seed 0), compiled with ``convc compile --board virtex6`` (the board-size build: 736
   DSP48E1), its Verilog exported;
2. the native harness's Verilator build of it (from an empty cache): wall time and peak
   memory;
3. all 1,000 held-out digits through that build (``convc verify``'s native harness,
   the cycle model's ``axi-ram`` memory): mismatched words of all compared (every word of
   every layer of every image), wall time, simulated cycles a second, RTL cycles per
   digit, the cycle model's, and their difference in total, per layer and per record;
4. the same build under cocotb + Verilator (cocotbext-axi's AxiRam, Python on every
   clock) on ``--cocotb-images`` digits: build time, cycles a second, and the native
   harness's speed as a ratio of it;
5. 100 digits with the board's DDR3 timing (``--memory board``) and 100 with random AXI
   backpressure: mismatched words and cycles, the cycle model against the DDR3 run;
6. the largest build the compiler writes for ``sceneparse`` on virtex6 (random
   weights): its Verilog and the harness's Verilator build time and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HELD_OUT = 1000


def _lenet(work: Path):
    """LeNet trained on digits with ``HELD_OUT`` digits held out; (model path, test x, test y)."""
    from convc.reference.archs import build_network
    from convc.reference.datasets import Dataset, load_digits, stratified_split
    from convc.reference.modelfile import save_model
    from convc.reference.train import TrainConfig, train

    full = load_digits()
    x = np.concatenate([full.train_x, full.test_x])
    y = np.concatenate([full.train_y, full.test_y])
    tr, te = stratified_split(y, HELD_OUT / len(y), seed=0)
    data = Dataset("digits", x[tr], y[tr], x[te], y[te], 10)
    net = build_network("lenet")
    t0 = time.perf_counter()
    res = train(net, data, TrainConfig(), quiet=True)
    path = save_model(net, work / "lenet.npz")
    print(f"LeNet on digits: {len(tr)} training, {len(te)} held-out digits; held-out accuracy "
          f"{res.test_accuracy:.4f}; trained in {time.perf_counter() - t0:.1f} s")
    return path, net, x[te], y[te]


def _compile(net, model_path: Path, out: Path, calib=None):
    from convc.boards import get_board
    from convc.outputs import write_outputs
    from convc.pipeline import CompileOptions, compile_network

    t0 = time.perf_counter()
    result = compile_network(net, get_board("virtex6"), CompileOptions(calib=2 if calib is None else calib),
                             where=str(model_path))
    write_outputs(result, out, log=None)
    v = out / "hdl" / "convc_accel.v"
    hw = result.program.hw
    print(f"  compiled with Verilog in {time.perf_counter() - t0:.1f} s: {hw.in_lanes}x{hw.out_lanes} conv lanes "
          f"(kmax {hw.kmax}), FC {hw.fc_in_lanes}x{hw.fc_out_lanes}, LCN window {hw.lcn_kmax or '-'}, "
          f"{hw.dsp} DSP48E1; {v.stat().st_size / 1e6:.1f} MB of Verilog")
    return result.program, v


def _build(v: Path, cache: Path, label: str):
    from convc.sim import native

    nb = native.build(v, cache=cache, log=None)
    print(f"  Verilator build ({label}): {nb.seconds:.1f} s, peak memory {nb.peak_mb:.0f} MB "
          f"({'cached' if nb.cached else 'from an empty cache'})")
    return nb


def _print_verify(res, label: str) -> None:
    print(f"  {label}: {res.images_run} of {res.images} images, mismatched words {res.mismatched_words:,} of "
          f"{res.total_words:,} compared; wall {res.seconds.get('total', 0):.1f} s (simulation "
          f"{res.seconds.get('sim', 0):.1f} s, {res.sim_rate or 0:,.0f} cycles a second)")
    if res.error:
        print(f"  ERROR: {res.error}")
    if res.rtl_cycles and res.sim_cycles:
        mean = res.rtl_cycles_mean
        print(f"  cycles per image: RTL {mean:,.0f} (min {min(res.rtl_cycles):,}, max {max(res.rtl_cycles):,}), "
              f"cycle model {res.sim_cycles:,}: model {100 * (res.sim_cycles - mean) / mean:+.2f}% against the RTL")
        for lay in res.layer_cycles:
            if lay["rtl"]:
                print(f"    {lay['layer']:<10} {lay['records']} record(s): model {lay['model']:>9,}  RTL "
                      f"{lay['rtl']:>11,.1f}  model {100 * lay['error']:+.2f}%")
        w = res.worst_record
        if w:
            print(f"    record differing most: {w['index']} ({w['layer']}, {w['op']}): model {w['model']:,}, "
                  f"RTL {w['rtl']:,.1f} ({w['rtl'] - w['model']:+,.1f} cycles)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=HELD_OUT, help=f"held-out digits in RTL (default {HELD_OUT})")
    ap.add_argument("--cocotb-images", type=int, default=3)
    ap.add_argument("--skip-cocotb", action="store_true")
    ap.add_argument("--skip-sceneparse", action="store_true")
    ap.add_argument("--work", help="working folder (default: a temporary one, removed at the end)")
    args = ap.parse_args()
    from convc.sim.verify import verify

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="convc-bench-native-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"                  # an empty harness cache: real build times
    shutil.rmtree(cache, ignore_errors=True)
    os.environ["CONVC_CACHE"] = str(cache)
    status = 0
    try:
        print("== LeNet, board-size build (convc compile --board virtex6)")
        model, net, tx, ty = _lenet(work)
        out = work / "lenet-virtex6"
        program, v = _compile(net, model, out, calib=256)
        _build(v, cache, "board-size LeNet")

        n = min(args.images, len(tx))
        inputs = (tx[:n], ty[:n], f"{n} held-out digits")
        print(f"== {n} held-out digits through the native harness (axi-ram memory)")
        res = verify(out, model=model, inputs=inputs, report_dir=work / "v-axi", log=None)
        _print_verify(res, "native")
        status |= not res.ok
        native_rate = res.sim_rate

        print("== the same build, 100 digits with the board's DDR3 timing and 100 under backpressure")
        ddr = verify(out, model=model, inputs=(tx[:100], ty[:100], "100 held-out digits"), memory="board",
                     report_dir=work / "v-ddr3", log=None)
        _print_verify(ddr, "DDR3 timing")
        bp = verify(out, model=model, inputs=(tx[:100], ty[:100], "100 held-out digits"), backpressure=1,
                    report_dir=work / "v-bp", log=None)
        print(f"  backpressure (seed 1): {bp.images_run} images, mismatched words {bp.mismatched_words:,} of "
              f"{bp.total_words:,}; RTL cycles per image {bp.rtl_cycles_mean or 0:,.0f} (without: "
              f"{res.rtl_cycles_mean or 0:,.0f})")
        status |= not (ddr.ok and bp.ok)

        if not args.skip_cocotb:
            k = args.cocotb_images
            print(f"== cocotb + Verilator on the same build, {k} digit(s)")
            cc = verify(out, model=model, inputs=(tx[:k], ty[:k], f"{k} held-out digits"), harness="cocotb",
                        sim="verilator", report_dir=work / "v-cocotb", log=None)
            # the testbench's own per-image figures (start to done), without the simulator's start-up
            lines = [json.loads(ln) for ln in (work / "v-cocotb" / "rtl_progress.jsonl").read_text().splitlines()
                     if ln.strip()]
            done = [p for p in lines if not p.get("running")]
            cycles = sum(p["sim_cycles"] for p in done)
            secs = sum(p["seconds"] for p in done)
            rate = cycles / secs if secs else 0
            print(f"  cocotb: build {cc.seconds.get('build', 0):.1f} s; {cc.images_run} image(s), "
                  f"{cc.mismatched_words} mismatched of {cc.total_words} words; {cycles:,} cycles in {secs:.1f} s "
                  f"= {rate:,.0f} cycles a second (start to done; the whole run with start-up: "
                  f"{cc.seconds.get('sim', 0):.1f} s)")
            if rate and native_rate:
                print(f"  native harness / cocotb+Verilator: {native_rate / rate:.1f} times the cycles a second")
            status |= not cc.ok

        if not args.skip_sceneparse:
            from convc.reference.archs import build_network
            from convc.reference.modelfile import save_model

            print("== sceneparse (3x240x320), the build convc compile --board virtex6 writes")
            sp = build_network("sceneparse", seed=0)
            sp_path = save_model(sp, work / "sceneparse.npz")
            _, sv = _compile(sp, sp_path, work / "sceneparse-virtex6")
            _build(sv, cache, "sceneparse")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())

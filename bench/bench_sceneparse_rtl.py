"""One whole sceneparse frame (3x240x320) through the board-size virtex6 build's Verilog.

    .venv/bin/python bench/bench_sceneparse_rtl.py [--memory axi-ram|board] [--work DIR]
        (about 3 minutes: Verilog export, the Verilator build, 4 M simulated cycles)

Compiles ``sceneparse`` (random weights, seed 0; calibration on 2 uniform random images,
as ``convc compile`` does for a model without a dataset) for virtex6 at the size the
compiler chooses, and runs one uniform random frame through the native harness
(``convc verify``), from one start: the LCN, the three 7x7 convolutions with tanh and
max pooling, and the classifier.  Prints:

- mismatched words of all compared (every word of every layer's output);
- RTL cycles (the CYCLES register) against the cycle model's, in total, per layer and
  for the record that differs most, and the ms per frame at the board's clock;
- wall time of the export, the Verilator build (cached by a hash of the Verilog in
  ``~/.cache/convc/native``: the first run builds) and the simulation.

Time it on a quiet machine (the Verilator build uses both cores).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memory", choices=("axi-ram", "board"), default="axi-ram")
    ap.add_argument("--work", type=Path, default=None, help="keep the compiled folder here")
    args = ap.parse_args(argv)

    from convc.boards import get_board
    from convc.outputs import write_outputs
    from convc.pipeline import CompileOptions, compile_network
    from convc.reference.archs import build_network
    from convc.reference.modelfile import save_model
    from convc.sim.verify import verify

    work = args.work or Path(tempfile.mkdtemp(prefix="convc-sp-rtl-"))
    work.mkdir(parents=True, exist_ok=True)
    net = build_network("sceneparse")
    net.init_params(seed=0)
    model = save_model(net, work / "sceneparse.npz")
    t0 = time.perf_counter()
    res = compile_network(net, get_board("virtex6"), CompileOptions(calib=2), where=str(model))
    out = work / "sceneparse-virtex6"
    write_outputs(res, out, log=None)
    export_s = time.perf_counter() - t0
    hw = res.program.hw
    print(f"sceneparse 3x240x320 on virtex6: {hw.in_lanes} x {hw.out_lanes} conv lanes of {hw.kmax}x{hw.kmax}, "
          f"FC {hw.fc_in_lanes} x {hw.fc_out_lanes}, LCN {hw.lcn_channels} maps window {hw.lcn_kmax}; "
          f"{len(res.program.instrs)} records; compiled and exported in {export_s:.1f} s")

    t0 = time.perf_counter()
    r = verify(out, images=1, model=model, memory=args.memory, report_dir=work / "verify", log=print)
    wall = time.perf_counter() - t0
    if r.error:
        print(f"RTL run failed: {r.error}")
    rtl = r.rtl_cycles[0] if r.rtl_cycles else 0
    print()
    print(f"{'layer':<12} {'records':>7} {'model':>12} {'RTL':>12} {'model vs RTL':>13}")
    for lay in r.layer_cycles:
        print(f"{lay['layer']:<12} {lay['records']:>7} {lay['model']:>12,} {lay['rtl'] or 0:>12,.0f} "
              f"{lay['error']:>+12.2%}")
    worst = max((x for x in r.record_cycles if x["rtl"]), key=lambda x: abs(x["error"]))
    mhz = hw.clock_mhz
    summary = {
        "memory": args.memory, "mismatched_words": r.mismatched_words, "total_words": r.total_words,
        "rtl_cycles": rtl, "model_cycles": r.sim_cycles,
        "model_vs_rtl": round((r.sim_cycles - rtl) / rtl, 5) if rtl else None,
        "rtl_ms_per_frame": round(rtl / (mhz * 1e3), 3), "model_ms_per_frame": round(r.sim_cycles / (mhz * 1e3), 3),
        "worst_record": {k: worst[k] for k in ("index", "layer", "op", "model", "rtl", "error")},
        "build_seconds": r.build.get("seconds"), "build_cached": r.build.get("cached"),
        "export_seconds": round(export_s, 1), "verify_wall_seconds": round(wall, 1),
    }
    print()
    print(f"mismatched words: {r.mismatched_words:,} of {r.total_words:,}; RTL {rtl:,} cycles "
          f"({summary['rtl_ms_per_frame']} ms at {mhz:g} MHz), model {r.sim_cycles:,} "
          f"({summary['model_vs_rtl']:+.2%}); worst record {worst['index']} ({worst['layer']}) "
          f"{worst['error']:+.2%}; verify wall {wall:.1f} s")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

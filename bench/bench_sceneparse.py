"""Sceneparse (3x240x320) on virtex6 by the one cycle model, against NeuFlow and the peak.

The figures come from ``convc.sim.cycle`` (the model the size pass minimizes and the
RTL confirms: ``bench/bench_sceneparse_rtl.py`` runs a whole frame in RTL), with the
board's DDR3 and with the testbenches' AXI RAM. Printed: ms per frame at 200 MHz, MAC
utilization overall and per layer (the share of the peak: MACs / (cycles x the
multipliers of the engines that run it) and of the device's peak (MACs / (cycles x every
DSP48E1)), what bounds each layer (compute, writer,
memory, weights, setup: the record's label in the model), DSP48E1 and RAMB36 used, the
physical limit (all MACs on every DSP48E1 of the device each cycle), and NeuFlow's
50 ms. Target (issue 10): 15.0 ms per frame or less.

    .venv/bin/python bench/bench_sceneparse.py
"""

import json
import time

from convc.boards import get_board
from convc.pipeline import CompileOptions, compile_network
from convc.report import report_text
from convc.reference.archs import build_network
from convc.sim.cycle import simulate
from convc.sim.memtiming import MemoryTiming

NEUFLOW_MS = 50.0
TARGET_MS = 15.0


def main():
    net = build_network("sceneparse")
    board = get_board("virtex6")
    t0 = time.perf_counter()
    res = compile_network(net, board, CompileOptions(calib=1))
    seconds = time.perf_counter() - t0
    r = res.report
    hw = res.program.hw
    print(report_text(r))

    t0 = time.perf_counter()
    sim = simulate(res.program, MemoryTiming.board(hw))
    sim_seconds = time.perf_counter() - t0
    ram = simulate(res.program, MemoryTiming.axi_ram(res.program.hw.data_width))
    print(sim.text())
    mhz = hw.clock_mhz
    peak_ms = sim.macs / (board.dsp * mhz * 1e3)
    print()
    print(f"{'layer':<12} {'ms':>8} {'share':>6} {'MAC use':>8} {'of peak':>8}  bound (cycles by label)")
    for lt in sim.layers:
        recs = [x for x in sim.records if x.name == lt.name]
        by = {}
        for x in recs:
            by[x.bound] = by.get(x.bound, 0) + x.cycles
        labels = ", ".join(f"{k} {v / lt.cycles:.0%}" for k, v in sorted(by.items(), key=lambda kv: -kv[1]))
        use = f"{lt.utilization:.1%}" if lt.utilization is not None else "-"
        peak = f"{lt.macs / (lt.cycles * board.dsp):.1%}" if lt.utilization is not None else "-"
        print(f"{lt.name:<12} {lt.ms:>8.3f} {lt.cycles / sim.cycles:>6.1%} {use:>8} {peak:>8}  {labels}")
    print(f"{'total':<12} {sim.ms_per_frame:>8.3f} {1:>6.0%} {sim.mac_utilization:>8.1%} "
          f"{peak_ms / sim.ms_per_frame:>8.1%}  (AXI RAM: {ram.ms_per_frame:.3f} ms)")
    print(f"\nphysical limit {peak_ms:.2f} ms ({sim.macs / 1e9:.3f} GMAC on {board.dsp} DSP48E1 at {mhz:g} MHz): "
          f"the model reaches {peak_ms / sim.ms_per_frame:.1%} of it; target {TARGET_MS} ms "
          f"({'met' if sim.ms_per_frame <= TARGET_MS else f'missed by {sim.ms_per_frame - TARGET_MS:.2f} ms'}); "
          f"NeuFlow {NEUFLOW_MS:g} ms ({NEUFLOW_MS / sim.ms_per_frame:.2f}x)")
    summary = {"ms_per_frame": round(sim.ms_per_frame, 3), "cycles": sim.cycles,
               "mac_utilization": round(sim.mac_utilization, 4), "dsp": hw.dsp, "dsp_board": board.dsp,
               "bram36": hw.bram36, "bram36_board": board.bram36, "peak_ms": round(peak_ms, 3),
               "share_of_peak": round(peak_ms / sim.ms_per_frame, 4),
               "meets_15ms": sim.ms_per_frame <= TARGET_MS,
               "speedup_vs_neuflow": round(NEUFLOW_MS / sim.ms_per_frame, 2),
               "axi_ram_ms_per_frame": round(ram.ms_per_frame, 3),
               "layers": {lt.name: {"ms": round(lt.ms, 3), "utilization": None if lt.utilization is None
                                    else round(lt.utilization, 4), "bound": lt.bound} for lt in sim.layers},
               "writer_stall_cycles": sum(x.writer_stall for x in sim.records),
               "compile_seconds": round(seconds, 2), "sim_seconds": round(sim_seconds, 3)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

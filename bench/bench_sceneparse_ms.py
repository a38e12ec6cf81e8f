"""The multiscale scene parser (3x240x320, three scales) on virtex6 by the one cycle model,
beside the same trunk on one scale, in the same run.

Both are compiled for the board (its size search, its DDR3 timing) and timed by
``convc.sim.cycle`` (the model the RTL confirms: ``tests/hdl/test_accel_multiscale.py``
holds it within 1% of the RTL on a reduced multiscale net). Printed per network: ms per
frame at the board's clock, MACs, MAC utilization, the DSP48E1 used, and per layer the ms
and what bounds it; then the ratios multiscale / single scale of the MACs and of the ms.
Target (issue 15): 20 ms per frame or less at 200 MHz.

    .venv/bin/python bench/bench_sceneparse_ms.py [--calib N]
"""

import argparse
import json
import time

from convc.boards import get_board
from convc.pipeline import CompileOptions, compile_network
from convc.report import report_text
from convc.reference.archs import build_network, multiscale
from convc.reference.modelfile import network_from_graph
from convc.sim.cycle import simulate
from convc.sim.memtiming import MemoryTiming

TARGET_MS = 20.0
NEUFLOW_MS = 50.0


def run(net, board, calib):
    t0 = time.perf_counter()
    res = compile_network(net, board, CompileOptions(calib=calib))
    seconds = time.perf_counter() - t0
    hw = res.program.hw
    sim = simulate(res.program, MemoryTiming.board(hw))
    return res, sim, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib", type=int, default=2, help="calibration images (cycles do not depend on them)")
    args = parser.parse_args()
    board = get_board("virtex6")
    ms_net = build_network("sceneparse-ms-full")
    ss_net = network_from_graph(multiscale("sceneparse-ss-full", (3, 240, 320), scales=1), "single scale")
    ss_net.init_params(0)
    rows = {}
    for label, net in (("multiscale", ms_net), ("single scale", ss_net)):
        res, sim, seconds = run(net, board, args.calib)
        hw = res.program.hw
        if label == "multiscale":
            print(report_text(res.report))
        print(f"{label}: {sim.ms_per_frame:.3f} ms per frame at {hw.clock_mhz:g} MHz, {sim.cycles:,} cycles, "
              f"{sim.macs / 1e9:.3f} GMAC, MAC utilization {sim.mac_utilization:.1%}, {hw.dsp} DSP48E1 "
              f"(compiled in {seconds:.0f} s)")
        for lt in sim.layers:
            print(f"    {lt.name:<18} {lt.ms:>8.3f} ms  {lt.bound}")
        rows[label] = {"ms_per_frame": round(sim.ms_per_frame, 3), "cycles": sim.cycles, "macs": sim.macs,
                       "mac_utilization": round(sim.mac_utilization, 4), "dsp": hw.dsp,
                       "lanes": [hw.in_lanes, hw.out_lanes, hw.fc_in_lanes, hw.fc_out_lanes],
                       "compile_seconds": round(seconds, 1)}
    ms, ss = rows["multiscale"], rows["single scale"]
    verdict = "met" if ms["ms_per_frame"] <= TARGET_MS else f"missed by {ms['ms_per_frame'] - TARGET_MS:.2f} ms"
    print(f"\nmultiscale / single scale: MACs {ms['macs'] / ss['macs']:.3f}x, ms {ms['ms_per_frame'] / ss['ms_per_frame']:.3f}x; "
          f"target {TARGET_MS:g} ms ({verdict}); NeuFlow {NEUFLOW_MS:g} ms "
          f"({NEUFLOW_MS / ms['ms_per_frame']:.2f}x)")
    print(json.dumps({"multiscale": ms, "single_scale": ss, "macs_ratio": round(ms["macs"] / ss["macs"], 4),
                      "ms_ratio": round(ms["ms_per_frame"] / ss["ms_per_frame"], 4),
                      "meets_20ms": ms["ms_per_frame"] <= TARGET_MS}))


if __name__ == "__main__":
    main()

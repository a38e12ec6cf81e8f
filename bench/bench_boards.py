"""Every board: sceneparse and LeNet sized by the compiler and timed by the cycle model; and
the ULX3S (ECP5) LeNet build through the open flow to a bitstream: Fmax, critical path,
utilization, ms per frame at that Fmax.

    .venv/bin/python bench/bench_boards.py [--no-bitstream] [--json]

The bitstream part runs ``convc compile lenet.npz --board ulx3s --bitstream`` with the lanes
of :data:`ECP5_LANES` (Yosys, nextpnr-ecp5 and ecppack; most of an hour on two cores) on
LeNet trained for a few epochs on the digits. Nothing else may run meanwhile if the tools' times matter.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from convc.boards import BOARDS
from convc.pipeline import CompileOptions, compile_network
from convc.reference.archs import build_network

ROOT = Path(__file__).resolve().parent.parent


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cycle_table() -> list[dict]:
    rows = []
    for arch in ("lenet", "sceneparse"):
        net = build_network(arch, seed=0)
        calib = np.random.default_rng(0).random((1,) + tuple(net.input.shape), dtype=np.float32)
        for board in BOARDS.values():
            _say(f"{arch} on {board.name} ...")
            t0 = time.perf_counter()
            try:
                r = compile_network(net, board, CompileOptions(calib=1), where=arch, calib=calib).report
            except Exception as exc:       # a board too small is a figure too
                rows.append({"arch": arch, "board": board.name, "error": str(exc)})
                continue
            rows.append({"arch": arch, "board": board.name, "clock_mhz": board.clock_mhz,
                         "dsp": r["dsp"], "dsp_board": board.dsp, "dsp_name": board.dsp_name,
                         "bram36": r["bram36"], "bram36_board": board.bram36, "cycles": r["cycles"],
                         "luts": r["luts"], "luts_board": board.luts, "lut_inputs": board.lut_inputs,
                         "ms_per_frame": r["ms_per_frame"], "mac_utilization": r["mac_utilization"],
                         "seconds": round(time.perf_counter() - t0, 1)})
    return rows


# The lanes of the ECP5 build. Builds with 16 FC output lanes (and so 16 PWL lanes: about 60%
# of the LUT4s) placed but did not route with nextpnr-ecp5 (router2 stalled near 2,000
# overused wires; the size search's own choice, FC 2 x 16 with 152 of 156 multipliers, is
# larger still); this one (59 multipliers, 35% of the LUT4s) is the one measured. FC 1 x 8
# rather than 1 x 4: FC weights are padded to 16 columns a pass (isa.FC_ALIGN), so fewer
# output lanes grow the memory image past the on-chip RAM.
ECP5_LANES = ["--in-lanes", "1", "--out-lanes", "1", "--fc-in-lanes", "1", "--fc-out-lanes", "8"]


def bitstream(work: Path) -> dict:
    convc = [sys.executable, "-m", "convc"]
    model = work / "lenet.npz"
    _say("training LeNet on the digits (5 epochs) ...")
    subprocess.run(convc + ["train", "--arch", "lenet", "--epochs", "5", "-q", "-o", str(model)], check=True,
                   capture_output=True)
    out = work / "lenet-ulx3s"
    _say("convc compile --board ulx3s --bitstream (minutes) ...")
    t0 = time.perf_counter()
    proc = subprocess.run(convc + ["compile", str(model), "--board", "ulx3s", *ECP5_LANES, "--bitstream", "--json",
                                   "-o", str(out)], capture_output=True, text=True)
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    report = json.loads(proc.stdout)
    b = report["bitstream"]
    return {"total_seconds": round(time.perf_counter() - t0), "dsp": report["dsp"], "cycles_board": report["cycles"],
            "hw": {k: report[k] for k in ("in_lanes", "out_lanes")}, **b}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-bitstream", action="store_true", help="skip the ECP5 flow")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = {"boards": cycle_table()}
    if not args.no_bitstream:
        with tempfile.TemporaryDirectory() as tmp:
            result["ecp5_lenet"] = bitstream(Path(tmp))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{'network':<11} {'board':<8} {'multipliers':>16} {'RAMB36':>10} {'LUTs (estimate)':>17} {'MHz':>5} "
          f"{'cycles':>11} {'ms/frame':>9} {'MAC use':>8}")
    for r in result["boards"]:
        if "error" in r:
            print(f"{r['arch']:<11} {r['board']:<8} does not fit: {r['error']}")
            continue
        print(f"{r['arch']:<11} {r['board']:<8} {r['dsp']:>5}/{r['dsp_board']:<4} {r['dsp_name']:<6} "
              f"{r['bram36']:>4}/{r['bram36_board']:<5} "
              + (f"{r['luts']:>8,}/{r['luts_board']:<8,}" if r["lut_inputs"] == 6 else f"{'- (LUT4)':>17}")
              + f" {r['clock_mhz']:>5g} {r['cycles']:>11,} "
              f"{r['ms_per_frame']:>9.3f} {r['mac_utilization']:>8.1%}")
    b = result.get("ecp5_lenet")
    if b:
        if "error" in b:
            print(f"\nECP5 LeNet bitstream: FAILED: {b['error']}")
        else:
            p = b.get("critical_path") or {}
            util = b.get("utilization") or {}
            print(f"\nECP5 (ULX3S 85F) LeNet, {b['dsp']} multipliers planned: bitstream in {b['total_seconds']} s "
                  f"({', '.join(f'{k} {v:.0f} s' for k, v in b['seconds'].items())})")
            fmax = b.get("fmax_mhz")
            target = "meets" if fmax and fmax >= 100 else "MISSES"
            print(f"  Fmax {fmax:.1f} MHz ({target} the 100 MHz target); {b['cycles_onchip']:,} cycles = "
                  f"{b['ms_per_frame_at_fmax']:.3f} ms per frame at Fmax (cycle model, on-chip memory)")
            if p:
                print(f"  critical path: from {p['from_module']} to {p['to_module']} ({p['from']} -> {p['to']}, "
                      f"{p['delay_ns']:.2f} ns)")
            print("  utilization: " + ", ".join(f"{k} {v['used']:,}/{v['total']:,}" for k, v in util.items()
                                                if k in ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

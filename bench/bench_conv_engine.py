"""The convolution engine (hdl/conv.py): measured cycles, and its Yosys resource counts.

(1) Amaranth simulation, no idle cycles and no backpressure: for a few band shapes, the
    cycles per input pixel and per output window (every output checked against the
    numpy model), the row-end / warm-up overhead (the first K-1 rows and the first K-1
    columns of every row of every group give no window), the wait for the group-0
    weights, the pipeline latency, and the band total next to the ideal
    ``(K-1)*Wp + G*max(R-K+1, K-1)*Wp`` (a second line-buffer bank preloading every
    group's first rows).
(2) Yosys ``synth_xilinx -family xc6v`` (fast flow, up to ``map_luts``: DSP, block RAM
    and flip-flop counts are final; LUTs are not mapped) for the engine at the virtex6
    size the compiler chooses for sceneparse (2 input x 7 output lanes, kmax 7, 16 bits,
    max_width 328, 18,432 partial sums a lane; and the compiler's current choice if it
    differs), against the XC6VLX240T; plus smaller engines showing that DSP48E1 =
    multipliers exactly.

    .venv/bin/python bench/bench_conv_engine.py              # both parts
    .venv/bin/python bench/bench_conv_engine.py --sim-only
    .venv/bin/python bench/bench_conv_engine.py --synth-only [--small-only] [--full]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "hdl"))

from convc.compiler.hwconfig import HardwareConfig  # noqa: E402
from convc.hdl.conv import ConvEngine  # noqa: E402

XC6VLX240T = {"DSP48E1": 768, "RAMB36": 416, "LUT6": 150_720, "FF": 301_440}

# (label, engine (Pi, Po, kmax, bits, max_width, psum_words), band kwargs)
SIM_CASES = [
    ("3x3 s1, 3 groups, no preload", (2, 3, 3, 16, 64, 1024),
     dict(kernel=3, stride=1, rows=8, width=64, groups=3)),
    ("3x3 s1, 3 groups, preload", (2, 3, 3, 16, 64, 1024),
     dict(kernel=3, stride=1, rows=8, width=64, groups=3, preload=True)),
    ("3x3 s2, 2 groups, preload", (2, 3, 3, 16, 64, 1024),
     dict(kernel=3, stride=2, rows=9, width=63, groups=2, preload=True)),
    ("2x2 in kmax 3, 3 groups, preload", (2, 3, 3, 16, 64, 1024),
     dict(kernel=2, stride=1, rows=6, width=40, groups=3, preload=True)),
    ("7x7 s1, 2 groups, no preload", (1, 2, 7, 16, 48, 1024),
     dict(kernel=7, stride=1, rows=12, width=48, groups=2)),
    ("7x7 s1, 2 groups, preload", (1, 2, 7, 16, 48, 1024),
     dict(kernel=7, stride=1, rows=12, width=48, groups=2, preload=True)),
    ("5x5 in kmax 7, 1 group", (1, 2, 7, 16, 48, 1024),
     dict(kernel=5, stride=1, rows=10, width=40, groups=1)),
]


def hw_of(Pi, Po, kmax, bits, mw, pw, board="bench"):
    return HardwareConfig(board=board, clock_mhz=200.0, bits=bits, kmax=kmax, in_lanes=Pi, out_lanes=Po,
                          max_width=mw, psum_words=pw)


def measure(label, eng, kw, seed=0):
    """Simulate one band with no stalls from outside; return a dict of measured figures."""
    from model_conv import random_band
    from test_conv import check, simulate

    Pi, Po = eng[0], eng[1]
    dut = ConvEngine(hw_of(*eng))
    band = random_band(np.random.default_rng(seed), Pi=Pi, Po=Po, bits=eng[3], **kw)
    dut.check_band(band.kernel, band.stride, band.width, band.rows, band.groups)
    tr = {}
    check(simulate(dut, [band], trace=tr), [band])
    K, S, R, Wp, G = band.kernel, band.stride, band.rows, band.width, band.groups
    pre = band.preload and K > 1
    px, out = tr["px_accept"], tr["out"]
    main_per_group = (R - K + 1) * Wp if pre else R * Wp
    n_out = band.conv_h * band.conv_w
    t0 = tr["bias_accept"][0]
    # main stream after group 0's first valid window (+2: the window generator's stages)
    k0 = (K - 1) + (0 if pre else (K - 1) * Wp) + 2
    stream_cycles = px[-1] - px[k0] + 1
    last_group = px[(G - 1) * main_per_group:]
    words_g0 = Po * Pi * K * K
    cost_compute = (K - 1) * Wp + G * max(R - (K - 1), K - 1) * Wp   # the ideal band (docstring)
    gaps = np.diff(out)
    hist = {int(g): int(n) for g, n in zip(*np.unique(gaps, return_counts=True))}
    return {
        "case": label, "engine": f"Pi={Pi} Po={Po} kmax={eng[2]}", "K": K, "S": S, "R": R, "Wp": Wp, "G": G,
        "preload": bool(pre),
        "main_pixels_per_group": main_per_group, "windows_per_group": n_out,
        "cycles_per_pixel": round(stream_cycles / (len(px) - k0), 4),
        "cycles_per_window_last_group": round((last_group[-1] - last_group[0] + 1) / n_out, 4),
        "no_window_pixels_per_group": R * Wp - n_out,
        "output_gaps": hist,   # cycles between consecutive outputs -> how often
        "group0_weight_words": words_g0, "group0_wait": px[k0] - px[0] - k0,
        "latency": out[0] - px[(G - 1) * main_per_group + (K - 1) + (0 if pre else (K - 1) * Wp)],
        "latency_property": dut.latency,
        "band_cycles": tr["idle"][0] - t0, "band_cycles_model": dut.band_cycles(K, Wp, R, G, pre, S),
        "cost_py_compute": cost_compute,
    }


def run_sim():
    print("(1) Amaranth simulation, no idle cycles, no backpressure (every output checked)\n")
    rows = []
    for label, eng, kw in SIM_CASES:
        t = time.perf_counter()
        r = measure(label, eng, kw)
        r["sim_seconds"] = round(time.perf_counter() - t, 1)
        rows.append(r)
        K, Wp, R = r["K"], r["Wp"], r["R"]
        print(f"{label:<34} {r['engine']:<19} K={K} S={r['S']} R={R} Wp={Wp} G={r['G']}: "
              f"{r['cycles_per_pixel']:.3f} cycles per main-stream pixel; last group "
              f"{r['cycles_per_window_last_group']:.3f} cycles per output "
              f"({r['windows_per_group']} outputs)")
        print(f"{'':<34} pixels with no window a group: {r['no_window_pixels_per_group']} "
              f"(= (K-1)*Wp + (R-K+1)*(K-1) = {(K - 1) * Wp + (R - K + 1) * (K - 1)}"
              + (" + stride skips" if r["S"] > 1 else "") + "); cycles between outputs -> count: "
              f"{r['output_gaps']}")
        print(f"{'':<34} group-0 weights {r['group0_weight_words']} words, main stream waited "
              f"{r['group0_wait']} cycles for them; latency {r['latency']} (property "
              f"{r['latency_property']}); band {r['band_cycles']} cycles bias-to-idle "
              f"(band_cycles {r['band_cycles_model']}); ideal {r['cost_py_compute']}")
    print()
    print(json.dumps({"sim": rows}))
    return rows


def synth_counts(hw, label, full=False):
    from convc.hdl.export import to_verilog
    from convc.hdl.synth import synthesize, strip_zero_mem_init

    dut = ConvEngine(hw)
    mults = dut.multipliers
    t = time.perf_counter()
    text = strip_zero_mem_init(to_verilog(dut, "conv"))
    res = synthesize(text, "conv", full=full)
    row = {"engine": label, "multipliers": mults, "DSP48E1": res["DSP48E1"], "RAMB18E1": res["RAMB18E1"],
           "RAMB36E1": res["RAMB36E1"], "FF": res["FF"], "LUT": res["LUT"], "LUTRAM": res["LUTRAM"],
           "seconds": round(time.perf_counter() - t, 1)}
    print(f"{label:<44} multipliers {mults:4d}  DSP48E1 {row['DSP48E1']:4d}  RAMB36E1 {row['RAMB36E1']:3d}  "
          f"RAMB18E1 {row['RAMB18E1']:3d}  FF {row['FF']:7d}  LUT {row['LUT']}  LUTRAM/SRL {row['LUTRAM']}  "
          f"({row['seconds']} s){'  OK' if row['DSP48E1'] == mults else '  MISMATCH'}", flush=True)
    return row


def lut_estimate(hw, label) -> dict:
    """LUT count from ``synthesize(full=True)`` (classic ``abc -luts`` after the DSP and
    block RAM mapping; the abc9 flow stops with an internal Yosys error on this engine)."""
    from convc.hdl.synth import synthesize

    r = synthesize(ConvEngine(hw), top="conv", full=True)
    cells = r["cells"]
    luts = r["LUT"]
    row = {"engine": label, "LUT": luts, "CARRY4": cells.get("CARRY4", 0), "DSP48E1": r["DSP48E1"],
           "FF": r["FF"], "LUTRAM/SRL": r["LUTRAM"], "seconds": round(r["seconds"], 1)}
    print(f"{label:<44} LUT {luts:7d} (of {XC6VLX240T['LUT6']}: {100 * luts / XC6VLX240T['LUT6']:.1f}%)  "
          f"CARRY4 {row['CARRY4']}  FF {row['FF']}  DSP48E1 {row['DSP48E1']}  ({row['seconds']} s)", flush=True)
    return row


def sceneparse_hw() -> HardwareConfig:
    """The HardwareConfig the compiler chooses for sceneparse on virtex6."""
    from convc.boards import get_board
    from convc.pipeline import CompileOptions, compile_network
    from convc.reference.archs import build_network

    res = compile_network(build_network("sceneparse"), get_board("virtex6"), CompileOptions(calib=1))
    return HardwareConfig.from_json(res.report["hw"])


def run_synth(small_only=False, full=False):
    print("(2) Yosys synth_xilinx -family xc6v" + ("" if full else " -run :map_luts (LUTs not mapped)") + "\n")
    rows = []
    for Pi, Po, kmax in [(1, 1, 3), (2, 1, 3), (2, 3, 3), (1, 1, 7), (2, 1, 7)]:
        rows.append(synth_counts(hw_of(Pi, Po, kmax, 16, 328, 1024), f"Pi={Pi} Po={Po} kmax={kmax} (16b, 1024 psum)", full))
    if not small_only:
        # the size issue 4 names (the compiler's virtex6 choice for sceneparse then), and the
        # compiler's choice now if it differs
        sizes = [hw_of(2, 7, 7, 16, 328, 18432, board="virtex6")]
        now = sceneparse_hw()
        key = ("in_lanes", "out_lanes", "kmax", "bits", "max_width", "psum_words")
        if any(getattr(now, k) != getattr(sizes[0], k) for k in key):
            sizes.append(now)
        for n, hw in enumerate(sizes):
            label = (f"sceneparse/virtex6{' (compiler now)' if n else ''}: Pi={hw.in_lanes} Po={hw.out_lanes} "
                     f"kmax={hw.kmax} {hw.bits}b w{hw.max_width} psum {hw.psum_words}")
            r = synth_counts(hw, label, full)
            rows.append(r)
            bram36 = r["RAMB36E1"] + r["RAMB18E1"] / 2
            print(f"  XC6VLX240T: DSP48E1 {r['DSP48E1']} / {XC6VLX240T['DSP48E1']}, RAMB36 {bram36:g} / "
                  f"{XC6VLX240T['RAMB36']}, FF {r['FF']} / {XC6VLX240T['FF']}"
                  + (f", LUT {r['LUT']} / {XC6VLX240T['LUT6']}" if r["LUT"] is not None else ", LUT not mapped")
                  + f"; hwconfig dsp_conv {hw.dsp_conv}")
            fits = (r["DSP48E1"] <= XC6VLX240T["DSP48E1"] and bram36 <= XC6VLX240T["RAMB36"]
                    and r["FF"] <= XC6VLX240T["FF"] and (r["LUT"] is None or r["LUT"] <= XC6VLX240T["LUT6"]))
            print(f"  DSP48E1 == multipliers: {r['DSP48E1'] == r['multipliers']}; fits: {fits}", flush=True)
    print(json.dumps({"synth": rows}))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sim-only", action="store_true")
    ap.add_argument("--synth-only", action="store_true")
    ap.add_argument("--small-only", action="store_true", help="skip the sceneparse-size synthesis")
    ap.add_argument("--full", action="store_true", help="full synth_xilinx (abc9 LUT mapping; fails, see lut_estimate)")
    ap.add_argument("--luts", action="store_true", help="also a LUT estimate (classic abc; slow at full size)")
    args = ap.parse_args()
    if not args.synth_only:
        run_sim()
    if not args.sim_only:
        run_synth(args.small_only, args.full)
    if args.luts:
        print("\n(4) LUTs: synth_xilinx -run :map_luts, then abc -luts (classic ABC)\n")
        sizes = [(2, 1, 7, "Pi=2 Po=1 kmax=7"), (2, 7, 7, "sceneparse size Pi=2 Po=7 kmax=7")]
        if not args.small_only:
            now = sceneparse_hw()
            if (now.in_lanes, now.out_lanes) != (2, 7):
                sizes.append((now.in_lanes, now.out_lanes, now.kmax, f"compiler now Pi={now.in_lanes} "
                              f"Po={now.out_lanes} kmax={now.kmax}"))
        else:
            sizes = sizes[:1]
        rows = [lut_estimate(hw_of(Pi, Po, k, 16, 328, 18432, board="virtex6"), label) for Pi, Po, k, label in sizes]
        print(json.dumps({"luts": rows}))


if __name__ == "__main__":
    main()

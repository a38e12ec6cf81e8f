"""Yosys resource counts of the board-size accelerators (virtex6): LeNet and sceneparse.

    .venv/bin/python bench/bench_synth.py [--arch lenet|sceneparse ...] [--method modules|hier|flat]
                                          [--fast] [--jobs N] [--timeout S] [--work DIR] [--json FILE]

For each architecture (random weights, seed 0; calibration on 2 uniform random images: the
hardware the compiler chooses does not depend on it), compiles for virtex6 at the size the
compiler chooses (the ``convc compile MODEL --board virtex6`` hardware), exports
``convc_accel``'s Verilog and synthesizes it with :func:`convc.hdl.synth.synthesize`
(``synth_xilinx -family xc6v``; LUTs with the classic ``abc -luts`` mapping unless
``--fast``).  Prints, one build after the other:

- export time, synthesis time (wall), the peak memory of the largest Yosys process;
- every count (DSP48E1, RAMB18E1, RAMB36E1, the RAMB36 tiles they take, LUT, the LUTs
  distributed RAM and shift registers take, FF) against the XC6VLX240T (768 DSP48E1,
  416 RAMB36, 150,720 LUTs, 301,440 FFs), and the method that gave it;
- what each distinct module costs (its own cells times its instances).

The default method is ``modules`` (per distinct module, no flattening): see
:mod:`convc.hdl.synth` for why the flattened whole design does not fit the WebAssembly
Yosys.  Run it on a quiet machine for times (one Yosys at a time with ``--jobs 1``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

XC6VLX240T = {"DSP48E1": 768, "RAMB36": 416, "LUT": 150_720, "FF": 301_440}


def build_verilog(arch: str, work: Path) -> tuple[str, dict, float]:
    from convc.boards import get_board
    from convc.outputs import accelerator_verilog
    from convc.pipeline import CompileOptions, compile_network
    from convc.reference.archs import build_network

    t0 = time.perf_counter()
    net = build_network(arch)
    net.init_params(seed=0)
    res = compile_network(net, get_board("virtex6"), CompileOptions(calib=2), where=arch)
    hw = res.program.hw
    verilog = accelerator_verilog(hw)
    seconds = time.perf_counter() - t0
    (work / f"{arch}_convc_accel.v").write_text(verilog)
    cfg = {"in_lanes": hw.in_lanes, "out_lanes": hw.out_lanes, "kmax": hw.kmax,
           "fc": (hw.fc_in_lanes, hw.fc_out_lanes) if hw.has_fc else None,
           "lcn": (hw.lcn_channels, hw.lcn_kmax) if hw.lcn_kmax else None,
           "max_width": hw.max_width, "psum_words": getattr(hw, "psum_words", None),
           "writers": hw.writers, "dsp_estimate": hw.dsp, "bram36_estimate": hw.bram36,
           "luts_estimate": hw.luts}
    return verilog, cfg, seconds


def report(arch: str, cfg: dict, export_s: float, res: dict) -> str:
    from convc.hdl.synth import module_table

    bram36 = res["RAMB36E1"] + -(-res["RAMB18E1"] // 2)
    lut_all = None if res["LUT"] is None else res["LUT"] + res["LUT_MEM"]

    def cell(n, of):
        if n is None:
            return "- (not mapped: --fast)"
        return f"{n:,} / {of:,} ({n / of:.1%}) {'fits' if n <= of else 'DOES NOT FIT'}"

    how = res["methods"]
    lines = [
        f"== {arch} on virtex6 (XC6VLX240T): conv {cfg['in_lanes']} x {cfg['out_lanes']} lanes, kmax "
        f"{cfg['kmax']}, FC {cfg['fc']}, LCN {cfg['lcn']}, max_width {cfg['max_width']}, "
        f"{cfg['writers']} writers; compiler estimate {cfg['dsp_estimate']} DSP48E1, "
        f"{cfg['bram36_estimate']} RAMB36, {cfg['luts_estimate']:,} LUTs (LUT RAM included)",
        f"Verilog {res['verilog_bytes'] / 1e6:.1f} MB, exported in {export_s:.0f} s; synthesis "
        f"{res['seconds']:.0f} s wall ({res['seconds'] / 60:.1f} min), {res.get('runs', 1)} Yosys run(s), "
        f"peak memory of the largest {res['peak_kb'] / 1024:.0f} MB; method: {res['method']}",
        f"  DSP48E1  {cell(res['DSP48E1'], XC6VLX240T['DSP48E1'])}   [{how['DSP48E1']}]",
        f"  RAMB36   {cell(bram36, XC6VLX240T['RAMB36'])} = {res['RAMB36E1']} RAMB36E1 + "
        f"{res['RAMB18E1']} RAMB18E1 (two a tile)   [{how['RAMB36E1']}]",
        f"  LUT      {cell(res['LUT'], XC6VLX240T['LUT'])} logic   [{how.get('LUT', '-')}]",
        f"  LUT+mem  {cell(lut_all, XC6VLX240T['LUT'])} with the {res['LUT_MEM']:,} LUTs of "
        f"{res['LUTRAM']:,} LUTRAM/SRL cells",
        f"  FF       {cell(res['FF'], XC6VLX240T['FF'])}   [{how['FF']}]",
    ]
    if res.get("unmapped"):
        lines.append(f"  note: generic cells left unmapped (small ROMs, not counted): {res['unmapped']}")
    lines += ["", "per distinct module (own cells x instances; s, MB: its Yosys run):", module_table(res)]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", action="append", choices=("lenet", "sceneparse"),
                    help="repeatable (default: lenet, then sceneparse)")
    ap.add_argument("--method", default="modules", choices=("modules", "hier", "flat", "auto"))
    ap.add_argument("--fast", action="store_true", help="stop before LUT mapping (no LUT counts)")
    ap.add_argument("--jobs", type=int, default=1, help="Yosys processes at once (method modules)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds a build's synthesis may take")
    ap.add_argument("--work", type=Path, default=None, help="keep the Verilog and Yosys folders here")
    ap.add_argument("--json", type=Path, default=None, help="write every result to this file")
    args = ap.parse_args(argv)

    from convc.hdl.synth import synthesize

    work = args.work or Path(tempfile.mkdtemp(prefix="convc-bench-synth-"))
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    for arch in args.arch or ["lenet", "sceneparse"]:
        verilog, cfg, export_s = build_verilog(arch, work)
        print(f"{arch}: {len(verilog) / 1e6:.1f} MB of Verilog in {export_s:.0f} s; synthesizing "
              f"({args.method}{', fast' if args.fast else ', with LUT mapping'}) ...", file=sys.stderr, flush=True)
        res = synthesize(verilog, top="convc_accel", full=not args.fast, method=args.method, jobs=args.jobs,
                         timeout=args.timeout, keep_dir=work / f"{arch}_yosys",
                         log=lambda s: print("  " + s, file=sys.stderr, flush=True))
        res["verilog_bytes"] = len(verilog)
        print(report(arch, cfg, export_s, res), flush=True)
        print(flush=True)
        results[arch] = {"config": cfg, "export_seconds": round(export_s, 1),
                         **{k: v for k, v in res.items() if k != "cells"}}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

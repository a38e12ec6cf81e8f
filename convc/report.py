"""The compile report: ``report.json`` and ``report.txt`` of a compiled folder.

:func:`make_report` gathers, per layer, the formats, MACs, lane occupancy and the cycle
model's figures (:mod:`convc.sim.cycle` with the board's memory); :func:`report_text`
prints it; :func:`synth_report` is the ``synth`` entry (Yosys counts of the whole
accelerator against the device), printed by ``report_text`` beside the ``bitstream``
entry (:func:`convc.bitstream.bitstream_text`).
"""

from __future__ import annotations

from convc.compiler.ir import ConcatNode, ConvNode, IRGraph, LCNNode
from convc.compiler.isa import OP_CONV, OP_FC
from convc.compiler.program import Program
from convc.sim.cycle import simulate
from convc.sim.memtiming import MemoryTiming

from .bitstream import bitstream_text

__all__ = ["make_report", "report_text", "synth_report"]


def make_report(graph: IRGraph, program: Program, board) -> dict:
    hw = program.hw
    timing = simulate(program, MemoryTiming.board(hw))
    per = {lt.name: lt for lt in timing.layers}          # cycles, bound, bytes: the cycle model's
    occ: dict[str, dict] = {}
    for ins, c in zip(program.instrs, timing.records):
        d = occ.setdefault(c.name, {"lane_slots": 0, "lanes_used": 0})
        if ins.op == OP_FC:
            groups = -(-ins.n_in // hw.fc_in_lanes)
            d["lane_slots"] += c.compute_cycles
            d["lanes_used"] += c.compute_cycles * ins.n_in * ins.n_out / (groups * hw.dsp_fc)
        if ins.op == OP_CONV:  # kernel units holding a real (input, output) pair
            groups = -(-ins.n_in // hw.in_lanes)
            d["lane_slots"] += c.compute_cycles
            d["lanes_used"] += c.compute_cycles * ins.n_in * ins.n_out / (groups * hw.kernel_units)
    layers = []
    total_macs = 0
    by_name = {n.name: n for n in graph.nodes}
    for region_node in graph.nodes:
        if isinstance(region_node, ConvNode) and region_node.into is not None:
            continue                       # a part: its concatenation's row counts it
        # one row a region; a concatenation's parts are one row (their records carry its name)
        members = [by_name[p] for p in region_node.parts] if isinstance(region_node, ConcatNode) else [region_node]
        node = members[0]
        lt, d = per[region_node.name], occ[region_node.name]
        row = {"name": region_node.name, "sources": region_node.sources,
               "type": "lcn" if isinstance(node, LCNNode) else "conv",
               "in_shape": list(node.in_shape), "out_shape": list(region_node.out_shape), "passes": lt.passes,
               "cycles": lt.cycles, "bound": lt.bound, "bytes_read": lt.bytes_read,
               "bytes_written": lt.bytes_written}
        if isinstance(node, ConvNode):
            q = node.quant
            macs = sum(m.macs for m in members)
            row.update({"kernel": node.kernel, "stride": node.stride, "act": node.act.kind if node.act else None,
                        "pool": f"{node.pool.kind}{node.pool.kernel}" if node.pool else None, "up": node.up,
                        "in_fmt": str(q.in_fmt), "w_fmt": str(q.w_fmt), "conv_fmt": str(q.conv_fmt),
                        "out_fmt": str(q.out_fmt), "acc_shift": q.acc_shift,
                        "pwl_error": q.pwl_error if q.pwl is not None else None,
                        "pwl_segments": q.pwl.segments if q.pwl is not None else None,
                        "lane_occupancy": round(d["lanes_used"] / d["lane_slots"], 4) if d["lane_slots"] else 0})
        else:
            q = node.quant
            macs = int(2 * node.in_shape[1] * node.in_shape[2] * node.kernel ** 2 * node.in_shape[0])
            row.update({"kernel": node.kernel, "in_fmt": str(q.x_fmt), "sq_fmt": str(q.sq_fmt), "s_fmt": str(q.s_fmt),
                        "r_fmt": str(q.r_fmt), "out_fmt": str(q.y_fmt), "sqrt_error": q.sqrt_error,
                        "recip_error": q.recip_error, "pwl_segments": q.sqrt_pwl.segments})
        row["macs"] = macs
        row["ms"] = lt.ms
        total_macs += macs
        layers.append(row)
    cycles = timing.cycles
    conv_macs = sum(r["macs"] for r in layers if r["type"] == "conv")  # conv and FC engines' MACs
    return {
        "model": program.meta.get("model"), "name": graph.name, "board": board.to_json(), "hw": hw.to_json(),
        "bits": hw.bits, "input_fmt": str(graph.input_fmt), "notes": graph.notes,
        "calibration": program.meta.get("calibration"),
        "layers": layers, "passes": len(program.instrs) - 1, "macs": total_macs, "cycles": cycles,
        "ms_per_frame": cycles / (hw.clock_mhz * 1e3),
        "mac_utilization": conv_macs / (cycles * hw.macs_per_cycle) if cycles else 0.0,
        "dsp": hw.dsp, "dsp_board": board.dsp, "bram36": hw.bram36, "bram36_board": board.bram36,
        "luts": hw.luts, "luts_board": board.luts, "lut_inputs": board.lut_inputs,
        "memory_words": program.memory_words, "image_words": int(program.image.size),
        "timing": "the cycle model (convc.sim.cycle) with the board's memory, checked against the RTL",
    }


def report_text(report: dict) -> str:
    hw = report["hw"]
    lines = [f"convc compile report: {report['name']} for {report['board']['title']}",
             f"fixed point: {report['bits']} bits, input {report['input_fmt']}, rounding round-half-up, "
             f"48-bit accumulators; calibration: {report['calibration']}",
             f"hardware: {hw['in_lanes']} input x {hw['out_lanes']} output lanes of {hw['kmax']}x{hw['kmax']} "
             f"kernel units, partial sums {hw['psum_words']} words/lane, line buffers {hw['max_width']} words; "
             + (f"FC engine {hw['fc_in_lanes']} x {hw['fc_out_lanes']}; " if hw['fc_in_lanes'] else "")
             + f"LCN window {hw['lcn_kmax'] or '-'}; {hw.get('writers', 1)} memory write port(s); "
             f"{hw['clock_mhz']:g} MHz",
             f"resources: {report['board'].get('dsp_name', 'DSP48E1')} {report['dsp']} / {report['dsp_board']}, "
             f"RAMB36 {report['bram36']} / {report['bram36_board']}"
             + (f", LUT6 about {report['luts']:,} / {report['luts_board']:,}" if report.get("lut_inputs") == 6 else "")
             + " (estimate from the configuration)", ""]
    head = f"{'layer':<12} {'formats (in, w, conv -> out)':<34} {'PWL err':>9} {'MACs':>14} {'passes':>6} " \
           f"{'occup.':>6} {'cycles':>10} {'ms':>7} {'KB in':>8} {'KB out':>8} bound"
    lines.append(head)
    for r in report["layers"]:
        if r["type"] == "conv":
            fmts = f"{r['in_fmt']}, {r['w_fmt']}, {r['conv_fmt']} -> {r['out_fmt']}"
            err = f"{r['pwl_error']:.2e}" if r["pwl_error"] is not None else "-"
            occ = f"{r['lane_occupancy']:.2f}"
        else:
            fmts = f"{r['in_fmt']} sq {r['sq_fmt']} s {r['s_fmt']} -> {r['out_fmt']}"
            err = f"{max(r['sqrt_error'], r['recip_error']):.2e}"
            occ = "-"
        lines.append(f"{r['name']:<12} {fmts:<34} {err:>9} {r['macs']:>14,} {r['passes']:>6} {occ:>6} "
                     f"{r['cycles']:>10,} {r['ms']:>7.3f} {r['bytes_read'] / 1024:>8.1f} "
                     f"{r['bytes_written'] / 1024:>8.1f} {r['bound']}")
    lines += ["", f"total: {report['passes']} passes, {report['macs']:,} MACs, {report['cycles']:,} cycles = "
                  f"{report['ms_per_frame']:.3f} ms per frame at {hw['clock_mhz']:g} MHz, MAC utilization "
                  f"{report['mac_utilization']:.1%} of {hw['derived']['macs_per_cycle']} multipliers "
                  f"(cycle model, the board's memory)"]
    if report.get("synth"):
        lines += _synth_text(report["synth"], report["board"]["title"])
    if report.get("bitstream"):
        lines += bitstream_text(report["bitstream"], report["board"]["title"])
    hdl = report.get("hdl")
    if hdl:
        proj = hdl.get("project")
        lines.append(f"hardware: {hdl['verilog']} (module {hdl['module']})"
                     + (f"; {proj['tool']} project {proj['folder']} (top {proj['top']}; not run: no bitstream, "
                        f"timing unknown; black boxes {' and '.join(proj['black_boxes'])} to generate, see "
                        f"{proj['readme']})" if proj else ""))
    for note in report["notes"]:
        lines.append(f"note: {note}")
    for r in report["layers"]:
        if r.get("sqrt_error") is not None:
            lines.append(f"note: {r['name']}: sqrt table error {r['sqrt_error']:.3e}, 1/x table error "
                         f"{r['recip_error']:.3e} ({r['pwl_segments']} segments each)")
    return "\n".join(lines) + "\n"

def synth_report(counts: dict, board, hw) -> dict:
    """The ``synth`` entry of report.json from :func:`convc.hdl.synth.synthesize` counts
    of the whole accelerator, against the device's resources."""
    bram36 = counts["RAMB36E1"] + -(-counts["RAMB18E1"] // 2)   # two RAMB18E1 share a RAMB36 tile

    def frac(n, of):
        return None if n is None or not of else round(n / of, 4)

    return {
        "tool": f"yosys synth_xilinx -family {board.yosys_family} -run :map_luts"
                + (", then abc -luts (LUT mapping)" if counts["full"] else ""),
        "flow": "full" if counts["full"] else "fast",
        "method": counts.get("method", "flat"), "methods": counts.get("methods"),
        "peak_kb": counts.get("peak_kb"),
        "modules": [{k: r.get(k) for k in ("module", "instances", "total", "seconds", "peak_kb")}
                    for r in counts.get("modules") or []],
        "top": counts.get("top"), "seconds": counts.get("seconds"),
        "DSP48E1": counts["DSP48E1"], "RAMB18E1": counts["RAMB18E1"], "RAMB36E1": counts["RAMB36E1"],
        "bram36": bram36, "LUT": counts["LUT"], "FF": counts["FF"], "LUTRAM": counts.get("LUTRAM"),
        "device": {"DSP48E1": board.dsp, "bram36": board.bram36, "LUT": board.luts, "FF": board.ffs},
        "utilization": {"DSP48E1": frac(counts["DSP48E1"], board.dsp), "bram36": frac(bram36, board.bram36),
                        "LUT": frac(counts["LUT"], board.luts), "FF": frac(counts["FF"], board.ffs)},
        "estimate": {"DSP48E1": hw.dsp, "bram36": hw.bram36},
        "note": "Yosys counts before place and route (ISE's may differ); no timing",
    }


def _synth_text(s: dict, title: str) -> list[str]:
    def cell(n, of):
        return f"{n:,} / {of:,} ({n / of:.1%})"

    d = s["device"]
    lut = cell(s["LUT"], d["LUT"]) if s["LUT"] is not None else "- (--synth-full counts them)"
    how = {"modules": "per distinct module, no flattening, counts x instances",
           "hier": "hierarchical, no flattening", "flat": "flattened"}.get(s.get("method", "flat"), "")
    lines = [f"synthesis: {s['tool']} on the whole accelerator ({how}; {s['seconds']:.0f} s; Yosys counts "
             f"before place and route, no timing), against the {title}:",
             f"  DSP48E1 {cell(s['DSP48E1'], d['DSP48E1'])}, RAMB36 {cell(s['bram36'], d['bram36'])} "
             f"[{s['RAMB36E1']} RAMB36E1 + {s['RAMB18E1']} RAMB18E1], LUT {lut}, FF {cell(s['FF'], d['FF'])}",
             f"  compiler estimate: DSP48E1 {s['estimate']['DSP48E1']}, RAMB36 {s['estimate']['bram36']}"]
    if s["estimate"]["DSP48E1"] and not s["DSP48E1"]:
        lines.append("note: the synthesized accelerator has no DSP48E1 while the configuration needs "
                     f"{s['estimate']['DSP48E1']}: its hardware (hdl/accel.py) is incomplete")
    return lines

"""The result of ``convc verify``: :class:`VerifyResult` (with its text and JSON), its
per-layer :class:`LayerResult`, and :func:`assemble`, which builds it from the prepared
golden run (:class:`~convc.sim.verify_inputs.Prepared`) and the RTL's
(:class:`~convc.sim.rtlrun.RtlRun`): word comparison, float statistics, top-1
agreement and accuracy, and the cycle model's figures beside the RTL's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .rtlrun import RtlRun, record_cycles
from .verify_inputs import Prepared
from .wordcompare import _to_signed16, compare_words

__all__ = ["LayerResult", "VerifyResult", "assemble"]


def _json_float(v, nd: int = 4):
    if v is None:
        return None
    v = float(v)
    return round(v, nd) if np.isfinite(v) else None


@dataclass
class LayerResult:
    name: str
    ref_layer: str | None
    fmt: str
    shape: tuple
    words: int                  # per image
    mismatched_words: int       # over the images the RTL ran
    sqnr_db: float | None       # float vs golden (inf: exact)
    max_err_lsb: float | None
    mean_err_lsb: float | None
    saturations: int
    overflows: int

    def to_json(self) -> dict:
        exact = self.sqnr_db is not None and np.isinf(self.sqnr_db)
        return {"name": self.name, "ref_layer": self.ref_layer, "fmt": self.fmt, "shape": list(self.shape),
                "words": self.words, "mismatched_words": self.mismatched_words,
                "sqnr_db": None if exact else _json_float(self.sqnr_db, 3), "exact": bool(exact),
                "max_err_lsb": _json_float(self.max_err_lsb, 3),
                "mean_err_lsb": _json_float(self.mean_err_lsb, 4),
                "saturations": self.saturations, "overflows": self.overflows}


@dataclass
class VerifyResult:
    compiled: str
    model: str | None
    source: str
    sim: str
    verilog: str | None
    images: int                         # images prepared (golden, float)
    images_run: int                     # images the RTL finished
    mismatched_words: int
    total_words: int
    layers: list[LayerResult]
    mismatches: list[dict]
    top1_agreement: float | None        # RTL vs golden
    top1_rtl_float: float | None
    top1_float_golden: float | None
    accuracy_float: float | None
    accuracy_golden: float | None
    accuracy_rtl: float | None
    rtl_cycles: list[int]
    records: list[int]
    sim_cycles: int | None
    input_saturations: int
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    report_json: str | None = None
    report_html: str | None = None
    build_log: str | None = None
    sim_log: str | None = None
    harness: str = ""
    memory: str | None = None                   # the memory timing of the run and the model
    backpressure_seed: int | None = None
    record_cycles: list[dict] = field(default_factory=list)    # per record: model and RTL
    layer_cycles: list[dict] = field(default_factory=list)     # per layer: model and RTL
    build: dict = field(default_factory=dict)   # seconds, cached, peak_mb, folder
    sim_rate: float | None = None               # simulated cycles a second
    trace: str | None = None

    @property
    def ok(self) -> bool:
        """Every word of every image matched, and every image ran."""
        return (self.error is None and self.mismatched_words == 0 and self.total_words > 0
                and self.images_run == self.images)

    @property
    def first_mismatch(self) -> dict | None:
        return self.mismatches[0] if self.mismatches else None

    @property
    def rtl_cycles_mean(self) -> float | None:
        return float(np.mean(self.rtl_cycles)) if self.rtl_cycles else None

    @property
    def cycle_errors(self) -> list[float] | None:
        """Per image, RTL cycles / simulated cycles - 1."""
        if not self.sim_cycles:
            return None
        return [c / self.sim_cycles - 1.0 for c in self.rtl_cycles]

    @property
    def cycle_error(self) -> float | None:
        """Mean RTL cycles / simulated cycles - 1."""
        if not self.sim_cycles or not self.rtl_cycles:
            return None
        return self.rtl_cycles_mean / self.sim_cycles - 1.0

    @property
    def worst_record(self) -> dict | None:
        """The record whose RTL cycles differ most from the cycle model's (in cycles)."""
        known = [r for r in self.record_cycles if r.get("rtl") is not None]
        return max(known, key=lambda r: abs(r["rtl"] - r["model"])) if known else None

    @property
    def worst_layer_error(self) -> float | None:
        """The largest per-layer |model / RTL - 1|."""
        errs = [abs(r["error"]) for r in self.layer_cycles if r.get("error") is not None]
        return max(errs) if errs else None

    def to_json(self) -> dict:
        return {
            "ok": self.ok, "compiled": self.compiled, "model": self.model, "source": self.source,
            "harness": self.harness, "sim": self.sim, "verilog": self.verilog, "memory": self.memory,
            "backpressure_seed": self.backpressure_seed,
            "images": self.images, "images_run": self.images_run,
            "mismatched_words": self.mismatched_words, "total_words": self.total_words,
            "first_mismatch": self.first_mismatch, "mismatches": self.mismatches,
            "top1_agreement": _json_float(self.top1_agreement),
            "top1_rtl_float": _json_float(self.top1_rtl_float),
            "top1_float_golden": _json_float(self.top1_float_golden),
            "accuracy_float": _json_float(self.accuracy_float),
            "accuracy_golden": _json_float(self.accuracy_golden),
            "accuracy_rtl": _json_float(self.accuracy_rtl),
            "rtl_cycles": self.rtl_cycles, "rtl_cycles_mean": _json_float(self.rtl_cycles_mean, 1),
            "records": self.records, "sim_cycles": self.sim_cycles,
            "cycle_error": _json_float(self.cycle_error, 5),
            "cycle_errors": None if self.cycle_errors is None else [_json_float(e, 5) for e in self.cycle_errors],
            "layer_cycles": self.layer_cycles, "record_cycles": self.record_cycles,
            "worst_record": self.worst_record, "worst_layer_error": _json_float(self.worst_layer_error, 5),
            "input_saturations": self.input_saturations,
            "layers": [layer.to_json() for layer in self.layers], "error": self.error, "notes": self.notes,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "build": self.build, "sim_cycles_per_second": _json_float(self.sim_rate, 1), "trace": self.trace,
            "report": {"json": self.report_json, "html": self.report_html, "build_log": self.build_log,
                       "sim_log": self.sim_log},
        }

    def text(self) -> str:
        run = f"{self.harness} harness" + (f", {self.sim}" if self.sim else "")
        if self.memory:
            run += f", {self.memory} memory"
        if self.backpressure_seed:
            run += f", backpressure seed {self.backpressure_seed}"
        lines = [f"{self.images_run} of {self.images} images ({self.source}) through {self.verilog} ({run})"]
        lines.append(f"{'layer':<12} {'format':<10} {'words/img':>9} {'RTL bad':>8} {'SQNR dB':>8} "
                     f"{'max LSB':>8} {'mean LSB':>9} {'sat':>6} {'ovf':>5}")
        for lay in self.layers:
            sq = "-" if lay.sqnr_db is None else ("exact" if np.isinf(lay.sqnr_db) else f"{lay.sqnr_db:.1f}")
            mx = "-" if lay.max_err_lsb is None else f"{lay.max_err_lsb:.2f}"
            mn = "-" if lay.mean_err_lsb is None else f"{lay.mean_err_lsb:.3f}"
            lines.append(f"{lay.name:<12} {lay.fmt:<10} {lay.words:>9} {lay.mismatched_words:>8} {sq:>8} {mx:>8} "
                         f"{mn:>9} {lay.saturations:>6} {lay.overflows:>5}")
        lines.append(f"mismatched words: {self.mismatched_words} of {self.total_words}")
        f = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        lines.append(f"top-1 agreement: RTL vs golden {f(self.top1_agreement)}, RTL vs float "
                     f"{f(self.top1_rtl_float)}, float vs golden {f(self.top1_float_golden)}")
        if self.rtl_cycles:
            sim = "n/a" if self.sim_cycles is None else f"{self.sim_cycles:,}"
            err = "" if self.cycle_error is None else f" (model {100 * -self.cycle_error / (1 + self.cycle_error):+.2f}% against the RTL)"
            lines.append(f"cycles per image: RTL {self.rtl_cycles_mean:,.0f} (min {min(self.rtl_cycles):,}, "
                         f"max {max(self.rtl_cycles):,}), cycle model {sim}{err}")
        elif self.sim_cycles is not None:
            lines.append(f"cycle model: {self.sim_cycles:,} cycles per image (no image finished in RTL)")
        if self.layer_cycles and any(r.get("rtl") is not None for r in self.layer_cycles):
            lines.append(f"{'layer':<12} {'records':>7} {'model cycles':>13} {'RTL cycles':>11} {'model vs RTL':>12}")
            for r in self.layer_cycles:
                rtl = "-" if r["rtl"] is None else f"{r['rtl']:,.0f}"
                err = "-" if r["error"] is None else f"{100 * r['error']:+.2f}%"
                lines.append(f"{r['layer']:<12} {r['records']:>7} {r['model']:>13,} {rtl:>11} {err:>12}")
            w = self.worst_record
            if w is not None:
                lines.append(f"record differing most: {w['index']} (layer {w['layer']!r}, op {w['op']}): model "
                             f"{w['model']:,}, RTL {w['rtl']:,.0f} cycles ({w['rtl'] - w['model']:+,.0f})")
        if self.build:
            b = self.build
            how = "cached" if b.get("cached") else f"built in {b.get('seconds', 0):.1f} s" + (
                f", peak {b['peak_mb']:.0f} MB" if b.get("peak_mb") else "")
            rate = f"; simulated at {self.sim_rate:,.0f} cycles a second" if self.sim_rate else ""
            lines.append(f"simulator: {how}{rate}")
        if self.trace:
            lines.append(f"waveform of image 0: {self.trace}")
        lines.extend(f"note: {n}" for n in self.notes)
        if self.report_html:
            lines.append(f"report: {self.report_html} and {self.report_json}")
        lines.append("PASS: every word matches the golden model" if self.ok else "FAIL")
        return "\n".join(lines)


def _top1(a: np.ndarray, region) -> np.ndarray:
    """Arg-max over the class axis: (n, words) of (C, H, W) -> (n, H*W)."""
    return np.argmax(a.reshape((len(a),) + tuple(region.shape)), axis=1).reshape(len(a), -1)


def _float_stats(region, f: np.ndarray | None, g: np.ndarray):
    if f is None:
        return None, None, None
    q = region.fmt.to_float(g)
    err = f - q
    noise = float(np.sum(err * err))
    sig = float(np.sum(f * f))
    sqnr = float("inf") if noise == 0 else 10 * np.log10(max(sig, 1e-300) / noise)
    e = np.abs(err) / region.fmt.lsb
    return sqnr, (float(e.max()) if e.size else 0.0), (float(e.mean()) if e.size else 0.0)


def _cycle_tables(program, report, rtl: RtlRun) -> tuple[list[dict], list[dict]]:
    """Per record and per layer: the cycle model's cycles and the RTL's (mean over the
    images, from the trace port's record starts; ``None`` when the harness has none)."""
    if report is None:
        return [], []
    per_image = [record_cycles(s, c) for s, c in zip(rtl.record_starts, rtl.cycles)
                 if s and len(s) == len(report.records)]
    rtl_mean = np.mean(np.asarray(per_image, dtype=np.float64), axis=0) if per_image else None
    records = []
    for k, rec in enumerate(report.records):
        rc = None if rtl_mean is None else float(rtl_mean[k])
        records.append({"index": rec.index, "layer": rec.name, "op": rec.op, "model": int(rec.cycles),
                        "rtl": None if rc is None else round(rc, 2),
                        "error": None if not rc else round(rec.cycles / rc - 1.0, 6), "bound": rec.bound})
    layers: dict[str, dict] = {}
    for r in records:
        if r["op"] not in ("conv", "fc", "lcn"):      # OP_END: overhead, not a layer
            continue
        d = layers.setdefault(r["layer"], {"layer": r["layer"], "op": r["op"], "records": 0, "model": 0, "rtl": 0.0})
        d["records"] += 1
        d["model"] += r["model"]
        d["rtl"] = None if r["rtl"] is None or d["rtl"] is None else d["rtl"] + r["rtl"]
    out = []
    for d in layers.values():
        d["error"] = None if not d["rtl"] else round(d["model"] / d["rtl"] - 1.0, 6)
        out.append(d)
    return records, out


def assemble(prep: Prepared, rtl: RtlRun, *, sim_cycles: int | None = None,
             notes=(), cycle_report=None) -> VerifyResult:
    """Compare ``rtl`` with ``prep`` and gather every figure of the report
    (``cycle_report``: the cycle model's :class:`~convc.sim.cycle.CycleReport` for the
    run's memory, for the per-record comparison)."""
    program = prep.program
    n = rtl.images_done
    per_layer, total, located = compare_words(program, prep.golden_layers, rtl.layers, poison=rtl.poison)
    layers = []
    for i, region in enumerate(program.layers):
        sqnr, mx, mean = _float_stats(region, prep.float_layers[i], prep.golden_layers[i])
        layers.append(LayerResult(region.name, prep.ref_layers.get(region.name), str(region.fmt),
                                  tuple(region.shape), region.words, per_layer[i], sqnr, mx, mean,
                                  prep.saturations.get(region.name, 0), prep.overflows.get(region.name, 0)))
    out_i = len(program.layers) - 1
    out = program.layers[out_i]
    g_top = _top1(prep.golden_layers[out_i], out)
    f_out = prep.float_layers[out_i]
    f_top = _top1(f_out, out) if f_out is not None else None
    r_top = _top1(np.asarray(_to_signed16(rtl.layers[out_i])), out) if n else None
    agree = lambda a, b: float(np.mean(a == b)) if a is not None and b is not None and a.size else None  # noqa: E731
    top1_fg = agree(f_top, g_top)
    top1_rg = agree(r_top, g_top[:n]) if n else None
    top1_rf = agree(r_top, f_top[:n]) if n and f_top is not None else None
    acc_f = acc_g = acc_r = None
    if prep.labels is not None:
        y = np.asarray(prep.labels).reshape(-1)
        acc_g = float(np.mean(g_top[:, 0] == y))
        acc_f = float(np.mean(f_top[:, 0] == y)) if f_top is not None else None
        acc_r = float(np.mean(r_top[:, 0] == y[:n])) if n else None
    rec_cycles, lay_cycles = _cycle_tables(program, cycle_report, rtl)
    build = {}
    if rtl.build_dir:
        build = {"seconds": round(rtl.build_seconds, 2), "cached": rtl.build_cached, "folder": rtl.build_dir,
                 "peak_mb": None if rtl.build_peak_mb is None else round(rtl.build_peak_mb, 1)}
    return VerifyResult(
        compiled=str(prep.compiled), model=prep.model, source=prep.source, sim=rtl.sim, verilog=rtl.verilog,
        images=prep.images, images_run=n, mismatched_words=int(sum(per_layer)), total_words=total,
        layers=layers, mismatches=located, top1_agreement=top1_rg, top1_rtl_float=top1_rf,
        top1_float_golden=top1_fg, accuracy_float=acc_f, accuracy_golden=acc_g, accuracy_rtl=acc_r,
        rtl_cycles=list(rtl.cycles), records=list(rtl.records), sim_cycles=sim_cycles,
        input_saturations=prep.input_saturations, error=rtl.error,
        notes=list(prep.notes) + list(notes),
        seconds={"golden": prep.golden_seconds, "build": rtl.build_seconds, "sim": rtl.sim_seconds},
        build_log=rtl.build_log, sim_log=rtl.sim_log, harness=rtl.harness, memory=rtl.memory,
        backpressure_seed=rtl.backpressure_seed, record_cycles=rec_cycles, layer_cycles=lay_cycles,
        build=build, sim_rate=rtl.cycles_per_second, trace=rtl.trace)

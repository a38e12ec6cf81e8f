r"""``convc verify``: the accelerator's Verilog against the golden model, word for word
and record by record.

For ``N`` test images (the model's held-out split, as ``convc compare`` takes them)
:func:`verify`

1. quantizes them on the host (``program.quantize_input``) and runs the bit-exact
   golden model (:mod:`convc.sim.golden`, every layer) and the float reference;
2. takes the accelerator's Verilog (``COMPILED/hdl/convc_accel.v``, written by
   ``convc compile``) and runs every image through it in one simulation: by default
   the native harness (:mod:`convc.sim.native`: Verilator, a C++ memory and host, the
   memory timing of the cycle model's ``axi-ram`` or ``board`` setting, optional random
   AXI backpressure, the build cached by a hash of the Verilog), or cocotb
   (:mod:`convc.sim.cocotb_run`, Icarus or Verilator, for debugging);
3. compares EVERY word of every layer's output region of every image with the golden
   model: mismatched words, the first mismatch located (image, layer, map, row,
   column, both values), top-1 agreement RTL vs golden and RTL vs float; and the RTL's
   cycles with the cycle-level simulator's (``convc.sim.cycle.simulate`` with the same
   memory timing) per image, per layer and per record (the native harness times each
   record from the accelerator's trace port), naming the record that differs most;
4. writes ``report.json`` and ``report.html`` (:mod:`convc.sim.report`).

The pieces are separate functions so tests can inject RTL results:
:func:`prepare` (inputs, golden and float), :func:`compare_words` (the word
comparison) and :func:`assemble` (the result).  The command line (``convc verify``,
:mod:`convc.cli`) prints ``result.text()`` or ``result.to_json()`` and exits 0 only if
``result.ok``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convc.errors import ConvcError
from convc.inputs import model_inputs

from . import golden, native
from .labelmap import verify_maps
from .rtlrun import DEFAULT_POISON, DEFAULT_TOP, RtlRun, VerifyError, record_cycles, top_module

__all__ = ["VerifyError", "Prepared", "RtlRun", "LayerResult", "VerifyResult", "prepare", "compare_words",
           "assemble", "verify", "describe_mismatch", "resolve_verilog", "top_module", "cycle_model", "cycle_budget",
           "memory_timing", "DEFAULT_TOP", "MISMATCH_LIMIT", "HARNESSES", "MEMORIES"]

MISMATCH_LIMIT = 20          # located mismatches kept (the first ones, image-major)
HARNESSES = ("native", "cocotb")
MEMORIES = ("axi-ram", "board")


# ----------------------------------------------------------------------------
# inputs, golden model, float reference
# ----------------------------------------------------------------------------
@dataclass
class Prepared:
    """Everything known before the RTL runs.

    ``golden_layers[i]``: ``(N, words)`` int64 signed codes of ``program.layers[i]``;
    ``float_layers[i]``: ``(N, words)`` float64 reference values of the same layer, or
    ``None`` (no float model, or no reference layer recorded for it)."""

    program: object
    compiled: Path
    model: str | None
    x: np.ndarray
    labels: np.ndarray | None
    source: str
    codes: np.ndarray
    input_saturations: int
    golden_layers: list[np.ndarray]
    float_layers: list[np.ndarray | None]
    saturations: dict[str, int]
    overflows: dict[str, int]
    ref_layers: dict[str, str]
    golden_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def images(self) -> int:
        return len(self.codes)


def _load_float_model(program, compiled: Path, model):
    from convc.reference.modelfile import load_model

    if model is None:
        model = program.meta.get("model")
        if not model:
            raise ConvcError(f"{compiled}/program.json records no float model; pass --model MODEL.npz")
        if not Path(model).is_file():
            raise ConvcError(f"{model}: the float model recorded in {compiled}/program.json at compile "
                             f"time is not there (compiled from another folder?); pass --model MODEL.npz")
    elif not Path(model).is_file():
        raise ConvcError(f"{model}: no such file (--model expects the float model.npz)")
    net = load_model(model)
    if tuple(program.input.shape) != tuple(net.input.shape):
        raise ConvcError(f"{compiled} was compiled for inputs {list(program.input.shape)}, "
                         f"{model} takes {list(net.input.shape)}")
    return str(model), net


def _test_images(net, count: int):
    """The first ``count`` images of the model's held-out split (as ``convc compare``),
    else random inputs with one warning (:func:`convc.inputs.model_inputs` decides)."""
    return model_inputs(net, "test", count, seed=1)


def prepare(compiled_dir, images: int = 10, model=None, inputs=None) -> Prepared:
    """Load the compiled folder and the float model, take ``images`` test images (or
    ``inputs``: ``(x, labels or None, description)``, raw ``(N, C, H, W)`` inputs),
    quantize them and run the golden model and the float reference."""
    from convc.compiler.program import load_program

    compiled = Path(compiled_dir)
    if inputs is None and (isinstance(images, bool) or not isinstance(images, (int, np.integer)) or images < 1):
        raise ConvcError(f"--images must be a whole number >= 1, got {images!r}")
    program = load_program(compiled)
    model_path, net = _load_float_model(program, compiled, model)
    if inputs is None:
        x, labels, source = _test_images(net, int(images))
    else:
        x, labels, source = inputs
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(program.input.shape) or len(x) == 0:
            raise ConvcError(f"inputs of shape {list(x.shape)}: {compiled} takes (N, "
                             f"{', '.join(map(str, program.input.shape))}) with N >= 1")
        images = len(x)
    notes = []
    if len(x) < images:
        notes.append(f"{source} has only {len(x)} images; verified those")
    codes, in_sat = program.quantize_input(x)
    codes = np.asarray(codes, dtype=np.int64)
    t0 = time.perf_counter()
    try:
        gres = golden.run(program, codes)
    except (ValueError, OverflowError) as exc:
        raise ConvcError(f"{compiled}: the golden model cannot run this program ({exc}); was it "
                         f"compiled by another version of convc? Compile it again") from None
    seconds = time.perf_counter() - t0
    n = len(x)
    golden_layers = [gres.region(r).reshape(n, -1) for r in program.layers]

    ref_layers = dict(program.meta.get("ref_layers", {}))
    outs = net.forward_all(np.asarray(x, dtype=np.float64))
    index = {name: i for i, name in enumerate(net.names)}
    float_layers: list[np.ndarray | None] = []
    for region in program.layers:
        ref = ref_layers.get(region.name)
        if ref in index and outs[index[ref] + 1].size == n * region.words:
            float_layers.append(np.asarray(outs[index[ref] + 1], dtype=np.float64).reshape(n, -1))
        else:
            float_layers.append(None)
            notes.append(f"layer {region.name}: no float reference layer recorded; "
                         f"float comparisons left out")
    return Prepared(program=program, compiled=compiled, model=model_path, x=x, labels=labels,
                    source=source, codes=codes, input_saturations=int(in_sat),
                    golden_layers=golden_layers, float_layers=float_layers,
                    saturations={k: int(v) for k, v in gres.saturations.items()},
                    overflows={k: int(v) for k, v in gres.overflows.items()},
                    ref_layers=ref_layers, golden_seconds=seconds, notes=notes)


# ----------------------------------------------------------------------------
# the Verilog and the cycle figures
# ----------------------------------------------------------------------------

# ----------------------------------------------------------------------------
# cycle figures
# ----------------------------------------------------------------------------
NO_MODEL_BUDGET = 20_000_000   # cycles an image may take when the cycle model gives no figure


def cycle_budget(program, sim_cycles: int | None = None) -> int:
    """Cycles an image may take before the testbench gives up: four times the cycle
    model's figure plus 100k for set-up, or :data:`NO_MODEL_BUDGET` without one
    (``--max-cycles`` overrides both)."""
    if not sim_cycles:
        return NO_MODEL_BUDGET
    return 4 * int(sim_cycles) + 100_000


# ----------------------------------------------------------------------------
# the comparison
# ----------------------------------------------------------------------------
def _to_signed16(words) -> np.ndarray:
    w = np.asarray(words, dtype=np.int64) & 0xFFFF
    return (w ^ 0x8000) - 0x8000


def compare_words(program, golden_layers, rtl_layers, *, poison: int | None = DEFAULT_POISON,
                  limit: int = MISMATCH_LIMIT) -> tuple[list[int], int, list[dict]]:
    """Compare every word: ``golden_layers[i]`` (``(N, words)`` signed codes) with
    ``rtl_layers[i]`` (``(n, words)`` raw 16-bit words, ``n <= N``: the images the RTL
    finished).  Words are equal when their 16-bit patterns are.

    Returns (mismatched words per layer, total words compared, the first ``limit``
    mismatches located, image-major then in layer order then by address -- so the first
    is the earliest layer that went wrong on the first failing image)."""
    layers = program.layers
    if len(golden_layers) != len(layers) or len(rtl_layers) != len(layers):
        raise ValueError(f"{len(layers)} layer regions, {len(golden_layers)} golden and "
                         f"{len(rtl_layers)} RTL arrays")
    n = min((int(np.asarray(a).shape[0]) for a in rtl_layers), default=0)
    per_layer, total = [], 0
    bad_masks = []
    for region, g, r in zip(layers, golden_layers, rtl_layers):
        g = np.asarray(g, dtype=np.int64).reshape(len(g), region.words)[:n]
        r = np.asarray(r, dtype=np.int64).reshape(len(r), region.words)[:n]
        if g.shape != r.shape or g.shape[1] != region.words:
            raise ValueError(f"layer {region.name}: golden {g.shape}, RTL {r.shape}, region "
                             f"{region.words} words")
        bad = (g & 0xFFFF) != (r & 0xFFFF)
        bad_masks.append((region, g, r, bad))
        per_layer.append(int(bad.sum()))
        total += int(bad.size)
    located: list[dict] = []
    for img in range(n):
        if len(located) >= limit:
            break
        for li, (region, g, r, bad) in enumerate(bad_masks):
            for k in np.flatnonzero(bad[img])[:limit - len(located)]:
                located.append(locate(region, li, img, int(k), int(g[img, k]), int(r[img, k]), poison))
            if len(located) >= limit:
                break
    return per_layer, total, located


def locate(region, layer_index: int, image: int, k: int, golden_code: int, rtl_word: int,
           poison: int | None = DEFAULT_POISON) -> dict:
    """Where word ``k`` of ``region`` is: map, row, column, address, both values."""
    c, h, w = (tuple(region.shape) + (1, 1, 1))[:3]
    rtl = int(_to_signed16(rtl_word))
    gold = int(golden_code)
    return {"image": image, "layer": region.name, "layer_index": layer_index,
            "map": k // (h * w), "row": (k % (h * w)) // w, "col": k % w, "word": k,
            "addr": region.addr + k, "rtl": rtl, "golden": gold, "rtl_hex": f"{rtl & 0xFFFF:#06x}",
            "golden_hex": f"{gold & 0xFFFF:#06x}", "diff_lsb": rtl - gold,
            "rtl_real": float(region.fmt.to_float(np.int64(rtl))),
            "golden_real": float(region.fmt.to_float(np.int64(gold))),
            "not_written": poison is not None and (rtl & 0xFFFF) == (poison & 0xFFFF)}


def describe_mismatch(m: dict) -> str:
    """One line for a located mismatch."""
    tail = ": never written, still the poison word" if m.get("not_written") else ""
    return (f"image {m['image']}, layer {m['layer']}, map {m['map']}, row {m['row']}, column {m['col']} "
            f"(word address {m['addr']:#x}): RTL {m['rtl']} ({m['rtl_hex']}{tail}), golden {m['golden']} "
            f"({m['golden_hex']})")


# ----------------------------------------------------------------------------
# the result
# ----------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------
# the whole job
# ----------------------------------------------------------------------------
def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def resolve_verilog(compiled: Path, verilog=None) -> Path:
    """``verilog`` if given, else ``COMPILED/hdl/convc_accel.v`` (written by ``convc
    compile``); a missing file is a :class:`~convc.errors.ConvcError` naming it."""
    if verilog is not None:
        path = Path(verilog)
        if not path.is_file():
            raise ConvcError(f"{path}: no such Verilog file")
        return path
    path = Path(compiled) / "hdl" / f"{DEFAULT_TOP}.v"
    if not path.is_file():
        raise ConvcError(f"{compiled} has no hdl/{DEFAULT_TOP}.v (compiled with --no-hdl?): compile it again "
                         f"without --no-hdl, or give the Verilog with --verilog FILE")
    return path


def memory_timing(name: str, hw):
    """The :class:`~convc.sim.cycle.MemoryTiming` called ``name`` (``axi-ram`` or
    ``board``) for the hardware ``hw``."""
    from .cycle import MemoryTiming

    if name not in MEMORIES:
        raise ConvcError(f"--memory {name!r}: choose one of {', '.join(MEMORIES)}")
    return MemoryTiming.axi_ram(hw.data_width) if name == "axi-ram" else MemoryTiming.board(hw)


def cycle_model(program, memory=None):
    """The cycle-level simulator's report of one run of ``program`` with ``memory`` (a
    MemoryTiming; default the testbenches' AXI RAM), or ``(None, why)`` when that model
    is not available or fails."""
    try:
        from convc.sim.cycle import MemoryTiming, simulate
    except ImportError as exc:
        return None, (f"cycle-level simulator not available (convc.sim.cycle: {exc}); "
                      f"sim_cycles is null")
    try:
        return simulate(program, memory or MemoryTiming.axi_ram(program.hw.data_width)), None
    except Exception as exc:  # report, do not hide the RTL results
        return None, f"cycle-level simulator failed ({type(exc).__name__}: {exc}); sim_cycles is null"


def verify(compiled_dir, images: int = 10, sim: str | None = None, model=None, report_dir=None,
           verilog=None, *, harness: str = "native", memory: str = "axi-ram", backpressure: int | None = None,
           trace=None, inputs=None, max_cycles: int | None = None, poll_cycles: int = 256,
           poison: int | None = DEFAULT_POISON, log=_stderr) -> VerifyResult:
    """Run ``images`` test images (or ``inputs``, see :func:`prepare`) through the
    accelerator's Verilog and compare every word with the golden model; write
    ``report.json`` and ``report.html`` into ``report_dir`` (default ``COMPILED/verify``).

    ``harness``: ``native`` (:mod:`convc.sim.native`: Verilator, the memory timing
    ``memory``, ``backpressure`` a seed for random AXI backpressure, ``trace`` a
    ``.fst``/``.vcd`` waveform of the first image) or ``cocotb``
    (:mod:`convc.sim.cocotb_run`: ``sim`` ``icarus`` or ``verilator``, AxiRam timing).

    Problems with the inputs (no compiled folder, no Verilog, no float model, no
    simulator, a bad option) raise :class:`~convc.errors.ConvcError`; a Verilog that does
    not build raises :class:`VerifyError`.  A simulation that stops early (timeout,
    STATUS.error, an address outside the memory) returns a result with ``error`` set and
    the images done so far compared."""
    from .report import write_report

    t_start = time.perf_counter()
    if harness not in HARNESSES:
        raise ConvcError(f"--harness {harness!r}: choose one of {', '.join(HARNESSES)}")
    if harness == "native":
        if sim not in (None, "verilator"):
            raise ConvcError(f"--sim {sim!r}: the native harness is Verilator; --sim picks the simulator of "
                             f"--harness cocotb (icarus or verilator)")
        if backpressure is not None and (isinstance(backpressure, bool) or not isinstance(backpressure, int)
                                         or backpressure < 1):
            raise ConvcError(f"--backpressure {backpressure!r}: give a seed, a whole number >= 1")
        kind = None
        if trace is not None:
            kind = Path(trace).suffix.lower().lstrip(".")
            if kind not in ("fst", "vcd"):
                raise ConvcError(f"--trace {trace}: name a .fst or .vcd file")
    else:
        from .cocotb_run import SIMULATORS, run_cocotb   # cocotb (optional): only for this harness

        sim = (sim or "icarus").lower()
        if sim not in SIMULATORS:
            raise ConvcError(f"--sim {sim!r}: choose icarus or verilator")
        if memory != "axi-ram" or backpressure is not None or trace is not None:
            raise ConvcError("--memory, --backpressure and --trace need the native harness (--harness native); "
                             "cocotb runs cocotbext-axi's AxiRam as it is")
    if max_cycles is not None and (isinstance(max_cycles, bool) or not isinstance(max_cycles, int)
                                   or max_cycles < 1):
        raise ConvcError(f"--max-cycles {max_cycles!r}: give a whole number of cycles >= 1")
    if memory not in MEMORIES:
        raise ConvcError(f"--memory {memory!r}: choose one of {', '.join(MEMORIES)}")
    compiled = Path(compiled_dir)
    prep = prepare(compiled, images, model, inputs=inputs)
    report = Path(report_dir) if report_dir is not None else compiled / "verify"
    vpath = resolve_verilog(compiled, verilog)
    mem = memory_timing(memory, prep.program.hw)
    try:
        report.mkdir(parents=True, exist_ok=True)
        for stale in ("report.json", "report.html"):      # never leave an old verdict beside a new run
            (report / stale).unlink(missing_ok=True)
    except OSError as exc:
        raise ConvcError(f"cannot write the report folder {report} ({exc.strerror or exc})") from None
    if log:
        log(f"golden model: {prep.images} image(s) from {prep.source} in {prep.golden_seconds:.2f} s")
    cyc, why = cycle_model(prep.program, mem)
    notes = [why] if why else []
    sim_cycles = None if cyc is None else int(cyc.cycles)
    if max_cycles is None:
        max_cycles = cycle_budget(prep.program, sim_cycles)
    if harness == "native":
        nb = native.build(vpath, trace=kind, log=log)
        if log:
            log(f"simulating {prep.images} image(s) with {mem.name} memory"
                + (f" and backpressure (seed {backpressure})" if backpressure else "")
                + f", budget {max_cycles:,} cycles each")
        rtl = native.run(nb, prep.program, compiled, prep.codes, mem, report / "native", max_cycles=max_cycles,
                         poll_cycles=poll_cycles, poison=poison, seed=backpressure, trace_file=trace, log=log)
        rtl.verilog = str(vpath)
    else:
        rtl = run_cocotb(prep.program, compiled, prep.codes, vpath, report, sim=sim, max_cycles=max_cycles,
                         poll_cycles=poll_cycles, poison=poison, log=log)
        rtl.memory = "axi-ram"
    if backpressure:
        notes.append(f"backpressure (seed {backpressure}) slows the memory at random: the cycle model, which "
                     f"knows none, is a lower bound here, not a prediction")
    result = assemble(prep, rtl, sim_cycles=sim_cycles, notes=notes,
                      cycle_report=cyc)
    result.seconds["total"] = time.perf_counter() - t_start
    write_report(result, report, label_maps=verify_maps(prep, _to_signed16(rtl.layers[-1]), test_split=inputs is None))
    return result


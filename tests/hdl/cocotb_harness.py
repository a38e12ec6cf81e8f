"""Reusable cocotb pieces for the exported engines, and the pytest-side runner wrapper.

Two halves, imported from two processes:

* Inside the simulator (cocotb test modules in ``tests/hdl/cocotb/``):
  :func:`start_clock_and_reset`, :class:`StreamDriver` (sends payload ints, random idle
  cycles), :class:`StreamMonitor` (collects payload ints, random backpressure),
  :class:`Fields` (pack/unpack struct payloads, signed fields), :func:`write_words`
  (address/data/en configuration ports), :func:`check_words` (the checker: compares
  EVERY output word, raises with the first mismatches) and :func:`tb_config` (the JSON
  configuration the pytest side passed).
* In pytest: :func:`run_cocotb` exports a component (or takes Verilog text), builds it
  with Icarus (default) or Verilator (``CONVC_SIM=verilator``) in its own build folder,
  and runs a cocotb test module.

Port naming follows Amaranth's export: stream ``i`` -> ``i__payload``, ``i__valid``,
``i__ready``; clock ``clk``; synchronous active-high reset ``rst``.

Sampling discipline (robust on Icarus and Verilator): inputs change right after a rising
edge; handshakes are sampled at the falling edge before the next rising edge (all logic
has settled, and nothing changes between then and the edge).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
from pathlib import Path

from convc.sim.cocotb_run import environ, simulator_env

__all__ = ["StreamDriver", "StreamMonitor", "Fields", "to_signed", "to_unsigned",
           "start_clock_and_reset", "write_words", "check_words", "tb_config", "run_cocotb",
           "TB_CONFIG_ENV", "SIM_ENV", "selected_simulator"]

TB_CONFIG_ENV = "CONVC_TB_CONFIG"
SIM_ENV = "CONVC_SIM"
SIM_BUILD_ENV = "CONVC_SIM_BUILD"
COCOTB_DIR = Path(__file__).resolve().parent / "cocotb"


# ----------------------------------------------------------------------------
# signed fields / struct payloads
# ----------------------------------------------------------------------------
def to_signed(value: int, bits: int) -> int:
    """Two's-complement reading of the low ``bits`` bits of ``value``."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def to_unsigned(value: int, bits: int) -> int:
    """The ``bits``-bit two's-complement pattern of ``value`` (checked to fit)."""
    lo, hi = -(1 << (bits - 1)), (1 << bits) - 1
    if not lo <= value <= hi:
        raise ValueError(f"{value} does not fit {bits} bits")
    return value & ((1 << bits) - 1)


class Fields:
    """A flat struct payload, first field in the low bits (Amaranth's StructLayout):
    ``Fields([("data", 16, True), ("first", 1, False), ("last", 1, False)])``."""

    def __init__(self, fields):
        self.fields = [(str(n), int(b), bool(s)) for n, b, s in fields]
        self.width = sum(b for _, b, _ in self.fields)

    def pack(self, **values) -> int:
        word, pos = 0, 0
        for name, bits, signed in self.fields:
            v = int(values.get(name, 0))
            word |= (to_unsigned(v, bits) if signed else v & ((1 << bits) - 1)) << pos
            pos += bits
        return word

    def unpack(self, word: int) -> dict:
        out, pos = {}, 0
        for name, bits, signed in self.fields:
            v = (int(word) >> pos) & ((1 << bits) - 1)
            out[name] = to_signed(v, bits) if signed else v
            pos += bits
        return out


def pauses(rng: random.Random, prob: float):
    """A cocotbext-axi pause generator: pause in a cycle with probability ``prob``."""
    while True:
        yield rng.random() < prob


def pixel_fields(lanes: int, bits: int, prefix: str = "d") -> Fields:
    """An engine's pixel payload: ``lanes`` signed words ``d0``, ``d1``, ... (``prefix``),
    then ``first`` and ``last``."""
    return Fields([(f"{prefix}{k}", bits, True) for k in range(lanes)]
                  + [("first", 1, False), ("last", 1, False)])


# ----------------------------------------------------------------------------
# simulator side
# ----------------------------------------------------------------------------
def tb_config() -> dict:
    """The configuration passed by :func:`run_cocotb` (``extra_env``), as a dict."""
    return json.loads(os.environ.get(TB_CONFIG_ENV, "{}"))


async def start_clock_and_reset(dut, period_ns: int = 10, reset_cycles: int = 3,
                                zero=("i__valid", "o__ready")):
    """Drive the inputs named in ``zero`` to 0 (an undriven ``valid`` is Z, which fills
    the valid pipeline with X), start ``dut.clk`` and hold ``dut.rst`` high for
    ``reset_cycles`` edges.  Call once per cocotb test (each test gets a new clock)."""
    from cocotb.clock import Clock
    from cocotb.triggers import RisingEdge

    for name in zero:
        getattr(dut, name).value = 0
    Clock(dut.clk, period_ns, unit="ns").start()
    dut.rst.value = 1
    for _ in range(reset_cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def write_words(dut, prefix: str, pairs, clk=None) -> None:
    """Write ``(addr, data)`` pairs through a ``<prefix>__addr/__data/__en`` port,
    one a cycle."""
    from cocotb.triggers import RisingEdge

    clk = clk if clk is not None else dut.clk
    addr, data, en = (getattr(dut, f"{prefix}__{n}") for n in ("addr", "data", "en"))
    for a, d in pairs:
        addr.value, data.value, en.value = int(a), int(d), 1
        await RisingEdge(clk)
    en.value = 0


class _StreamPort:
    """The ``<prefix>__valid`` / ``__ready`` / ``__payload`` handles of a stream port and
    its clock."""

    def __init__(self, dut, prefix: str, clk=None):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.clk = clk if clk is not None else dut.clk


class StreamDriver(_StreamPort):
    """Drives ``<prefix>__valid`` / ``__payload`` of a stream input, honouring
    ``__ready``; before each word, idles (valid low) one cycle at a time with
    probability ``idle_prob``.

    ``before_word(k)`` (optional) is called right before word ``k`` is offered, e.g. to
    set a side input that is sampled with the word."""

    def __init__(self, dut, prefix: str, clk=None, idle_prob: float = 0.0,
                 rng: random.Random | None = None, before_word=None):
        super().__init__(dut, prefix, clk)
        self.idle_prob = idle_prob
        self.rng = rng or random.Random(0)
        self.before_word = before_word
        self.sent = 0
        self.valid.value = 0

    async def send(self, words) -> None:
        from cocotb.triggers import FallingEdge, RisingEdge

        for k, w in enumerate(words):
            while self.idle_prob and self.rng.random() < self.idle_prob:
                self.valid.value = 0
                await RisingEdge(self.clk)
            if self.before_word is not None:
                self.before_word(k)
            self.valid.value = 1
            self.payload.value = int(w)
            while True:
                await FallingEdge(self.clk)
                accepted = bool(self.ready.value)
                await RisingEdge(self.clk)
                if accepted:
                    break
            self.sent += 1
        self.valid.value = 0


class StreamMonitor(_StreamPort):
    """Collects payload ints from a stream output; each cycle ``__ready`` is low with
    probability ``backpressure_prob``."""

    def __init__(self, dut, prefix: str, clk=None, backpressure_prob: float = 0.0,
                 rng: random.Random | None = None):
        super().__init__(dut, prefix, clk)
        self.bp = backpressure_prob
        self.rng = rng or random.Random(1)
        self.words: list[int] = []
        self.ready.value = 0

    async def collect(self, count: int, timeout_cycles: int | None = None) -> list[int]:
        """Collect ``count`` more words (returns them; also appended to ``words``)."""
        from cocotb.triggers import FallingEdge, RisingEdge

        timeout_cycles = 200 + 20 * count if timeout_cycles is None else timeout_cycles
        got: list[int] = []
        for _ in range(timeout_cycles):
            if len(got) == count:
                break
            ready = not (self.bp and self.rng.random() < self.bp)
            self.ready.value = int(ready)
            await FallingEdge(self.clk)
            valid = bool(self.valid.value)
            word = int(self.payload.value) if valid and ready else None
            await RisingEdge(self.clk)
            if word is not None:
                got.append(word)
        self.ready.value = 0
        self.words.extend(got)
        if len(got) != count:
            raise TimeoutError(f"StreamMonitor: {len(got)} of {count} words after "
                               f"{timeout_cycles} cycles")
        return got

    async def expect_idle(self, cycles: int) -> None:
        """Ready high for ``cycles`` cycles; fail if any word appears (duplication)."""
        from cocotb.triggers import FallingEdge, RisingEdge

        self.ready.value = 1
        for k in range(cycles):
            await FallingEdge(self.clk)
            if self.valid.value:
                raise AssertionError(f"unexpected extra output word {int(self.payload.value):#x} "
                                     f"{k} cycles after the last expected one")
            await RisingEdge(self.clk)
        self.ready.value = 0


def check_words(got, want, describe=None, what: str = "word", limit: int = 10) -> int:
    """The checker: compare every word; raise ``AssertionError`` listing the first
    ``limit`` mismatches (``describe(k)`` adds context, e.g. the input) if any.  Returns
    the number of words checked."""
    got, want = list(got), list(want)
    if len(got) != len(want):
        raise AssertionError(f"{len(got)} {what}s received, {len(want)} expected")
    bad = [k for k, (g, w) in enumerate(zip(got, want)) if g != w]
    if bad:
        lines = [f"  #{k}: got {got[k]!r} want {want[k]!r}" + (f" ({describe(k)})" if describe else "")
                 for k in bad[:limit]]
        raise AssertionError(f"{len(bad)} of {len(want)} {what}s differ:\n" + "\n".join(lines))
    return len(want)


# ----------------------------------------------------------------------------
# pytest side
# ----------------------------------------------------------------------------
def selected_simulator() -> str:
    """``$CONVC_SIM`` (lower case), default ``"icarus"``."""
    return (os.environ.get(SIM_ENV) or "icarus").lower()


def run_cocotb(design, toplevel: str, test_module: str, build_dir, *,
               extra_env: dict | None = None, config: dict | None = None,
               parameters: dict | None = None, sim: str | None = None,
               seed: int | None = None, waves: bool = False,
               module_dir: Path | None = None) -> Path:
    """Build ``design`` and run the cocotb ``test_module`` on it; raise
    ``AssertionError`` if any cocotb test fails.

    Parameters
    ----------
    design : amaranth wiring.Component or str
        A component (exported with :func:`convc.hdl.export.to_verilog` as ``toplevel``)
        or Verilog text whose top module is ``toplevel``.
    build_dir : path
        Base folder; the build goes to ``<build_dir>/<toplevel>-<sim>-<hash of the
        Verilog>`` so two designs never share (and silently reuse) a build.
        ``$CONVC_SIM_BUILD``, if set, replaces it (a persistent folder: an unchanged
        design is then not recompiled by Icarus across pytest runs).
    config : dict, optional
        JSON-able configuration for the test module (read there with :func:`tb_config`).
    sim : str, optional
        ``"icarus"`` (default) or ``"verilator"``; default from ``$CONVC_SIM``.
    module_dir : path, optional
        Folder of ``test_module`` (default ``tests/hdl/cocotb``); put on ``sys.path``,
        which the runner passes to the simulator as PYTHONPATH.

    Returns the results XML path.
    """
    from cocotb_tools.runner import get_results, get_runner

    if isinstance(design, str):
        text = design
    else:
        from convc.hdl.export import to_verilog
        text = to_verilog(design, toplevel)
    sim = (sim or selected_simulator()).lower()
    if sim not in ("icarus", "verilator"):
        raise ValueError(f"run_cocotb: simulator {sim!r} (from ${SIM_ENV}?) is not icarus or verilator")
    digest = hashlib.sha1((sim + "\n" + text).encode()).hexdigest()[:12]
    base = os.environ.get(SIM_BUILD_ENV) or build_dir
    bdir = Path(base).resolve() / f"{toplevel}-{sim}-{digest}"
    bdir.mkdir(parents=True, exist_ok=True)
    vfile = bdir / f"{toplevel}.v"
    if not (vfile.exists() and vfile.read_text() == text):
        vfile.write_text(text)

    for d in (Path(module_dir) if module_dir else COCOTB_DIR, Path(__file__).resolve().parent):
        if str(d) not in sys.path:
            sys.path.insert(0, str(d))

    env_changes, env_remove, build_args = simulator_env(sim)
    test_env = dict(extra_env or {})
    if config is not None:
        test_env[TB_CONFIG_ENV] = json.dumps(config)
    with environ(env_changes, env_remove):
        runner = get_runner(sim)
        runner.build(sources=[vfile], hdl_toplevel=toplevel, build_dir=bdir,
                     build_args=build_args, parameters=parameters or {},
                     timescale=("1ns", "1ps"), waves=waves)
        try:
            results = runner.test(hdl_toplevel=toplevel, test_module=test_module, build_dir=bdir,
                                  test_dir=bdir, extra_env=test_env, seed=seed, waves=waves)
        except SystemExit as exc:  # the runner exits under pytest when a test fails
            raise AssertionError(f"cocotb {test_module} on {toplevel} ({sim}) failed "
                                 f"(exit {exc.code}); see the log above and {bdir}") from None
    n_tests, n_failed = get_results(results)
    if n_failed or not n_tests:
        raise AssertionError(f"cocotb {test_module} on {toplevel} ({sim}): {n_failed} of "
                             f"{n_tests} tests failed; see {results}")
    return results

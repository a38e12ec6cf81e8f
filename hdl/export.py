"""Verilog export of engine components (``amaranth.back.verilog``).

Port names follow Amaranth's flattening of the component signature: a stream port ``i``
becomes ``i__payload``, ``i__valid``, ``i__ready`` (a struct payload is one vector, first
field in the low bits); ``clk`` and ``rst`` (synchronous, active high) are added.

Memories made with ``init=[]`` (all zeros) come out of Yosys as one ``mem[i] = 0;`` line
a word: the partial-sum buffers alone made most of the accelerator's Verilog (18,432
words a lane for sceneparse).  :func:`to_verilog` writes each such all-zero ``initial``
block as a ``for`` loop instead (the same initial contents for simulators and
synthesis), so the text, Verilator's build and Yosys' parse shrink with it.
"""

from __future__ import annotations

import re
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

__all__ = ["to_verilog", "write_verilog", "compact_zero_inits", "drop_zero_loops"]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def to_verilog(component: wiring.Component, name: str = "top", *, emit_src: bool = False) -> str:
    """Verilog text of ``component`` as module ``name``, ports from its signature.

    ``emit_src=False`` (default) leaves out the source-location attributes, so the text
    depends only on the design (stable build-directory hashes).
    """
    if not isinstance(component, wiring.Component):
        raise TypeError(f"to_verilog needs an amaranth wiring.Component, got {type(component).__name__}")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"to_verilog: module name {name!r} is not a plain Verilog identifier")
    return compact_zero_inits(verilog.convert(component, name=name, emit_src=emit_src))


_INIT_BLOCK = re.compile(r"^  initial begin\n((?:    .*\n)+?)  end\n", re.M)
_INIT_WORD = re.compile(r"    (\\\S+ |[A-Za-z_][A-Za-z0-9_$]*)\[(\d+)\] = (\d+)'[hdbo]0+;")


def compact_zero_inits(text: str) -> str:
    """Rewrite every ``initial`` block that sets words ``0..N-1`` of one memory to zero
    as a ``for`` loop over an ``integer`` of its own; any other block stays as it is."""
    count = 0

    def repl(m: re.Match) -> str:
        nonlocal count
        lines = m.group(1).splitlines()
        words = [_INIT_WORD.fullmatch(line) for line in lines]
        if not all(words) or len({w.group(1) for w in words}) != 1 or len({w.group(3) for w in words}) != 1:
            return m.group(0)
        if [int(w.group(2)) for w in words] != list(range(len(words))):
            return m.group(0)
        name, width, n = words[0].group(1), words[0].group(3), len(words)
        var = f"_zero_init_{count}"
        count += 1
        return (f"  integer {var};\n  initial begin\n    for ({var} = 0; {var} < {n}; {var} = {var} + 1)\n"
                f"      {name}[{var}] = {width}'h0;\n  end\n")

    return _INIT_BLOCK.sub(repl, text)


_ZERO_LOOP = re.compile(r"^  integer (_zero_init_\d+);\n  initial begin\n    for \(\1 = 0; .*\n"
                        r"      .*\[\1\] = \d+'h0;\n  end\n", re.M)


def drop_zero_loops(text: str) -> str:
    """Remove the ``for`` loops :func:`compact_zero_inits` wrote (memories then start
    undefined: for tools that only count resources, see :mod:`convc.hdl.synth`)."""
    return _ZERO_LOOP.sub("", text)


def write_verilog(component: wiring.Component, path, name: str = "top", *,
                  emit_src: bool = False) -> Path:
    """Write :func:`to_verilog` to ``path`` (parent folders created) and return the path.
    An identical existing file is left untouched (its mtime too, so simulator builds
    keyed on it are reused)."""
    text = to_verilog(component, name, emit_src=emit_src)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not (path.exists() and path.read_text() == text):
        path.write_text(text)
    return path

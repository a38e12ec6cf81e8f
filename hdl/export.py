"""Verilog export of engine components (``amaranth.back.verilog``).

Port names follow Amaranth's flattening of the component signature: a stream port ``i``
becomes ``i__payload``, ``i__valid``, ``i__ready`` (a struct payload is one vector, first
field in the low bits); ``clk`` and ``rst`` (synchronous, active high) are added.
"""

from __future__ import annotations

import re
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

__all__ = ["to_verilog", "write_verilog"]

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
    return verilog.convert(component, name=name, emit_src=emit_src)


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

"""The Amaranth shapes of the record's fields (:mod:`convc.compiler.isa`).

An engine port or register that holds a record field takes its shape from here, so a
field's width is written once, in :data:`convc.compiler.isa.FIELDS`, and the hardware
follows it (``tests/hdl/test_port_shapes.py`` checks every such port).
"""

from __future__ import annotations

from amaranth.hdl import Shape, signed, unsigned

from convc.compiler import isa

__all__ = ["field_shape", "GROUP_BITS"]

#: An input-group counter: a pass has at most ``n_in`` input groups (one a map).
GROUP_BITS = isa.shape("n_in").bits


def field_shape(name: str) -> Shape:
    """The Amaranth shape of record field ``name`` (``unsigned(bits)`` or ``signed(bits)``,
    :func:`convc.compiler.isa.shape`)."""
    bits, is_signed = isa.shape(name)
    return signed(bits) if is_signed else unsigned(bits)

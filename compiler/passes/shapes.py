"""Shape inference: fill every node's input and output shape ``(C, H, W)``.

A vector of F features is ``(F, 1, 1)``. Inconsistent shapes (a linear layer
fed the wrong number of features, a window larger than its input) are
refused with the node's name, and so are sizes no record can carry (maps,
rows and columns beyond the widths of :data:`convc.compiler.isa.FIELDS`) and
input-map lists the hardware cannot hold (longer than its list memory and not a
run of consecutive maps), before any calibration work.
"""

from __future__ import annotations

from convc.errors import ConvcError

from .. import isa
from ..hwconfig import HardwareConfig
from ..ir import ActNode, ConcatNode, ConvNode, IRGraph, LCNNode, PoolNode, UpsampleNode
from .schedule import long_list


def _as_maps(shape):
    return tuple(shape) if len(shape) == 3 else (int(shape[0]), 1, 1)


def run(graph: IRGraph, where: str = "model") -> IRGraph:
    made = {None: _as_maps(graph.input_shape)}         # node name (None: the input) -> its output shape
    for node in graph.nodes:
        if isinstance(node, ConcatNode):
            parts = [made[p] for p in node.parts]
            if len({s[1:] for s in parts}) != 1:
                raise ConvcError(f"{where}: layer {node.name!r}: concatenates maps of different sizes "
                                 f"{[list(s) for s in parts]}")
            node.in_shape = parts[0]
            node.out_shape = made[node.name] = (sum(s[0] for s in parts),) + parts[0][1:]
            _check_record_fields(node, where)
            continue
        shape = made[node.input]
        c, h, w = shape
        node.in_shape = shape
        if isinstance(node, ConvNode):
            if node.kernel == 1 and node.in_c == c * h * w and (h, w) != (1, 1):
                # a linear layer after flatten reads the maps as one vector
                node.in_shape = shape = (c * h * w, 1, 1)
                c, h, w = shape
            if node.in_c != c:
                raise ConvcError(f"{where}: layer {node.name!r}: expects {node.in_c} input maps, gets {c}")
            oc, oh, ow = node.conv_shape
            if oh < 1 or ow < 1:
                raise ConvcError(f"{where}: layer {node.name!r}: kernel {node.kernel} larger than its "
                                 f"{h}x{w} input")
            if node.pool is not None:
                oh, ow = node.pool.out_size(oh), node.pool.out_size(ow)
                if oh < 1 or ow < 1:
                    raise ConvcError(f"{where}: layer {node.name!r}: pooling window larger than its input")
            shape = (oc, oh, ow)
        elif isinstance(node, PoolNode):
            shape = (c, node.pool.out_size(h), node.pool.out_size(w))
            if shape[1] < 1 or shape[2] < 1:
                raise ConvcError(f"{where}: layer {node.name!r}: pooling window larger than its input")
        elif isinstance(node, UpsampleNode):
            shape = (c, h << node.up, w << node.up)
        elif isinstance(node, (ActNode, LCNNode)):
            pass
        else:  # pragma: no cover - every node type is handled above
            raise ConvcError(f"{where}: node {node.name!r}: unknown node type {type(node).__name__}")
        node.out_shape = made[node.name] = shape
        _check_record_fields(node, where)
    return graph


def _check_record_fields(node, where: str):
    """Sizes a record's fields hold: maps (``in_c``, ``n_in``, ``o0``), rows and columns."""
    (c, h, w), (oc, oh, ow) = node.in_shape, node.out_shape
    checks = [("in_c", c, "input maps"), ("in_h", h, "input rows"), ("in_w", w, "input columns"),
              ("out_h", oh, "output rows"), ("out_w", ow, "output columns")]
    if isinstance(node, ConvNode):
        reads = node.in_c if node.table is None else max(len(r) for r in node.table)
        checks += [("n_in", reads, "input maps an output reads"),
                   ("o0", oc - 1, "output maps (less one)")]
    else:
        checks += [("in_c", oc, "output maps")]
    for fld, v, what in checks:
        hi = isa.field_max(fld)
        if v > hi:
            raise ConvcError(f"{where}: layer {node.name!r}: {v} {what}, beyond the {hi} that the "
                             f"{isa.field(fld).bits}-bit {fld!r} field of a record holds")
    if isinstance(node, ConvNode):
        list_words = HardwareConfig.__dataclass_fields__["list_words"].default
        bad = long_list(node, list_words)
        if bad is not None:
            o, inputs = bad
            raise ConvcError(f"{where}: layer {node.name!r}: output map {o} reads {len(inputs)} input maps that "
                             f"are not consecutive; the accelerator's input-map list holds {list_words} (a "
                             "longer list must be a run of consecutive maps)")

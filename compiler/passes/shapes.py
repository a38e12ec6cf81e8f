"""Shape inference: fill every node's input and output shape ``(C, H, W)``.

A vector of F features is ``(F, 1, 1)``. Inconsistent shapes (a linear layer
fed the wrong number of features, a window larger than its input) are
refused with the node's name.
"""

from __future__ import annotations

from convc.errors import ConvcError

from ..ir import ActNode, ConvNode, IRGraph, LCNNode, PoolNode


def _as_maps(shape):
    return tuple(shape) if len(shape) == 3 else (int(shape[0]), 1, 1)


def run(graph: IRGraph, where: str = "model") -> IRGraph:
    shape = _as_maps(graph.input_shape)
    for node in graph.nodes:
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
        elif isinstance(node, (ActNode, LCNNode)):
            pass
        else:  # pragma: no cover - every node type is handled above
            raise ConvcError(f"{where}: node {node.name!r}: unknown node type {type(node).__name__}")
        node.out_shape = shape
    return graph

"""Fusion: attach nonlinearities and pooling to the convolution before them.

The convolution engine applies, per output pixel, requantize -> activation
-> pooling, so these chains become one node (one engine pass):

    conv -> act            => conv[act]
    conv -> pool           => conv[pool]
    conv -> act -> pool    => conv[act, pool]
    conv -> maxpool -> act => conv[act, maxpool]   for relu and tanh: both
                              are non-decreasing, so act(max z) = max act(z)

Shapes must have been inferred. What is left standalone is lowered by the
``lower_unfused`` pass.
"""

from __future__ import annotations

from ..ir import ActNode, ConvNode, IRGraph, PoolNode

MONOTONE = ("relu", "tanh")


def run(graph: IRGraph) -> IRGraph:
    out = []
    for node in graph.nodes:
        prev = out[-1] if out else None
        if isinstance(prev, ConvNode):
            if isinstance(node, ActNode) and prev.act is None and prev.pool is None:
                prev.act = node.act
            elif isinstance(node, ActNode) and prev.act is None and prev.pool is not None \
                    and prev.pool.kind == "max" and node.act.kind in MONOTONE:
                prev.act = node.act
            elif isinstance(node, PoolNode) and prev.pool is None:
                prev.pool = node.pool
            else:
                out.append(node)
                continue
            prev.sources.extend(node.sources)
            prev.out_shape = node.out_shape
            graph.ref_index[prev.name] = graph.ref_index.pop(node.name)
            continue
        out.append(node)
    graph.nodes = out
    return graph

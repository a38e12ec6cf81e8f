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

from ..ir import ActNode, ConcatNode, ConvNode, IRGraph, PoolNode

MONOTONE = ("relu", "tanh")


def run(graph: IRGraph) -> IRGraph:
    readers = graph.readers()
    by_name = {}
    renamed: dict[str, str] = {}            # a fused node's name -> the convolution that took it in
    out = []
    for node in graph.nodes:
        node.input = renamed.get(node.input, node.input)
        if isinstance(node, ConcatNode):
            node.parts = [renamed.get(p, p) for p in node.parts]
        prev = by_name.get(node.input)
        # only the convolution's one reader may join it (in a graph its output may have several)
        if isinstance(prev, ConvNode) and isinstance(node, (ActNode, PoolNode)) and readers.get(prev.name) == 1:
            if isinstance(node, ActNode) and prev.act is None and prev.pool is None:
                prev.act = node.act
            elif isinstance(node, ActNode) and prev.act is None and prev.pool is not None \
                    and prev.pool.kind == "max" and node.act.kind in MONOTONE:
                prev.act = node.act
            elif isinstance(node, PoolNode) and prev.pool is None:
                prev.pool = node.pool
            else:
                prev = None
            if prev is not None:
                prev.sources.extend(node.sources)
                prev.out_shape = node.out_shape
                graph.ref_index[prev.name] = graph.ref_index.pop(node.name)
                renamed[node.name] = prev.name
                readers[prev.name] = readers.get(node.name, 0)
                continue
        out.append(node)
        by_name[node.name] = node
    graph.nodes = out
    return graph


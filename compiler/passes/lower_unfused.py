"""Lower a nonlinearity or pooling that the fusion pass left unfused (it follows
no convolution it could join).

It becomes an identity convolution: output map ``c`` reads only input map
``c`` through a 1x1 weight of exactly 1.0, then the activation and pooling
of the convolution engine. Correct for every case; costs one pass per map,
which is why the fusion pass runs first. An upsampling that no fold took in becomes
the same identity convolution, reading its input upsampled (the record's ``up``).
"""

from __future__ import annotations

import numpy as np

from ..ir import ActNode, ConvNode, IRGraph, PoolNode, UpsampleNode


def run(graph: IRGraph) -> IRGraph:
    nodes = []
    for node in graph.nodes:
        if isinstance(node, (ActNode, PoolNode, UpsampleNode)):
            c = node.in_shape[0]
            conv = ConvNode(node.name, list(node.sources), node.in_shape, node.out_shape, in_c=c, out_c=c,
                            kernel=1, table=[[i] for i in range(c)],
                            weight=np.eye(c).reshape(c, c, 1, 1), bias=np.zeros(c),
                            act=node.act if isinstance(node, ActNode) else None,
                            pool=node.pool if isinstance(node, PoolNode) else None,
                            up=node.up if isinstance(node, UpsampleNode) else 0, input=node.input)
            node = conv
        nodes.append(node)
    graph.nodes = nodes
    return graph

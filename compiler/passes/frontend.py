"""Frontend: a reference :class:`~convc.reference.network.Network` -> IR.

Match/transform, layer by layer: ``conv2d`` and ``linear`` become
:class:`ConvNode` (a linear layer is a 1x1 convolution over F maps of 1x1),
nonlinearities and pooling become :class:`ActNode`/:class:`PoolNode` (the
fusion pass attaches them to convolutions), ``flatten`` vanishes (maps are
stored one after another, so the flattened vector is the same memory) and a
final ``logsoftmax`` is dropped (it does not change the arg-max; the
accelerator outputs the scores). Anything else is refused up front.
"""

from __future__ import annotations

import numpy as np

from convc.errors import ConvcError

from ..ir import Act, ActNode, ConvNode, IRGraph, LCNNode, Pool, PoolNode

SUPPORTED = ("conv2d", "linear", "relu", "tanh", "abs", "maxpool2d", "avgpool2d", "lcn", "flatten",
             "logsoftmax (last layer only)")


def _refuse(where: str, index: int, name: str, problem: str):
    raise ConvcError(f"{where}: layer {index} {name!r}: {problem}; the compiler supports "
                     f"{', '.join(SUPPORTED)}")


def run(net, where: str = "model") -> IRGraph:
    nodes = []
    ref_index = {}
    notes = []
    last = len(net.layers) - 1
    for i, (name, layer) in enumerate(zip(net.names, net.layers)):
        t = layer.type
        node = None
        if t == "conv2d":
            w = np.asarray(layer.params["weight"], dtype=np.float64)
            node = ConvNode(name, [name], in_c=layer.in_channels, out_c=layer.out_channels, kernel=layer.kernel,
                            stride=layer.stride, pad=layer.padding,
                            table=[list(r) for r in layer.table] if layer.table is not None else None,
                            weight=w * layer.connection_mask()[:, :, None, None],
                            bias=np.asarray(layer.params["bias"], dtype=np.float64))
        elif t == "linear":
            w = np.asarray(layer.params["weight"], dtype=np.float64)
            node = ConvNode(name, [name], in_c=layer.in_features, out_c=layer.out_features, kernel=1,
                            weight=w.reshape(w.shape[0], w.shape[1], 1, 1),
                            bias=np.asarray(layer.params["bias"], dtype=np.float64))
        elif t in ("relu", "tanh", "abs"):
            node = ActNode(name, [name], act=Act(t))
        elif t in ("maxpool2d", "avgpool2d"):
            node = PoolNode(name, [name], pool=Pool(t[:3], layer.kernel, layer.stride))
        elif t == "lcn":
            node = LCNNode(name, [name], kernel=layer.kernel, window=np.asarray(layer.window(), np.float64),
                           eps=float(layer.EPS))
        elif t == "flatten":
            if nodes:
                ref_index[nodes[-1].name] = i  # the flattened vector is the same memory
            continue
        elif t == "logsoftmax":
            if i != last:
                _refuse(where, i, name, "log-softmax is only supported as the last layer")
            notes.append(f"layer {name!r} (logsoftmax) dropped: the accelerator outputs the scores; "
                         "the arg-max is the same")
            continue
        else:
            _refuse(where, i, name, f"layer type {t!r} is not supported")
        nodes.append(node)
        ref_index[node.name] = i
    if not nodes:
        raise ConvcError(f"{where}: nothing to compile (no layers left after dropping log-softmax)")
    return IRGraph(name=net.name, input_shape=tuple(net.input.shape), input_mean=list(net.input.mean),
                   input_std=list(net.input.std), nodes=nodes, classes=net.classes, notes=notes,
                   ref_index=ref_index)

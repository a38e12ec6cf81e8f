"""Frontend: a reference :class:`~convc.reference.network.Network` -> IR.

Match/transform, layer by layer (in a graph, each node names the node it reads):
``conv2d`` and ``linear`` become :class:`ConvNode` (a linear layer is a 1x1 convolution
over F maps of 1x1; a layer sharing another's weights shares its node's), a zero-edged
``pyrdown`` a depthwise stride-2 :class:`ConvNode` with the binomial window,
``upsample`` by 2, 4 or 8 an :class:`UpsampleNode` and ``concat`` a :class:`ConcatNode`,
nonlinearities and pooling become :class:`ActNode`/:class:`PoolNode` (the
fusion pass attaches them to convolutions), ``flatten`` vanishes (maps are
stored one after another, so the flattened vector is the same memory) and a
final ``logsoftmax`` is dropped (it does not change the arg-max; the
accelerator outputs the scores). Anything else is refused up front, and so is
a window, stride or padding no record can hold (:func:`hardware_limits`: the
record's field widths and the engines' limits), naming the layer and the limit.
"""

from __future__ import annotations

import numpy as np

from convc.errors import ConvcError

from .. import isa
from ..hwconfig import HardwareConfig
from ..ir import Act, ActNode, ConcatNode, ConvNode, IRGraph, LCNNode, Pool, PoolNode, UpsampleNode

SUPPORTED = ("conv2d", "linear", "relu", "tanh", "abs", "maxpool2d", "avgpool2d", "lcn", "flatten",
             "pyrdown (edge 'zero')", "upsample (by 2, 4 or 8)", "concat",
             "logsoftmax and pixel_logsoftmax (last layer only)")


def _refuse(where: str, index: int, name: str, problem: str):
    raise ConvcError(f"{where}: layer {index} {name!r}: {problem}; the compiler supports "
                     f"{', '.join(SUPPORTED)}")


def hardware_limits() -> dict[str, tuple[int, str]]:
    """The largest value of each window attribute a record can carry, and why: the
    record's field (its width in :data:`convc.compiler.isa.FIELDS`) narrowed by the
    engine that runs it (:meth:`HardwareConfig.field_range`)."""
    def field(name):
        return isa.field_max(name), f"the {isa.field(name).bits}-bit {name!r} field of a record"

    def engine(fld, conf):
        own, why = field(fld)
        hi = HardwareConfig.field_range(conf)[1]
        return (hi, f"the hardware's {conf} (engine limit)") if hi < own else (own, why)

    return {"conv.kernel": engine("kernel", "kmax"), "conv.stride": field("stride"), "conv.padding": field("pad"),
            "pool.kernel": engine("pool_k", "pool_kmax"), "pool.stride": field("pool_s"),
            "lcn.kernel": engine("kernel", "lcn_kmax")}


def _check_limits(where: str, index: int, name: str, kind: str, values: dict[str, int]):
    limits = hardware_limits()
    for attr, v in values.items():
        hi, why = limits[f"{kind}.{attr}"]
        if v > hi:
            raise ConvcError(f"{where}: layer {index} {name!r}: {attr} {v} is beyond the accelerator's limit "
                             f"of {hi} ({why})")


def run(net, where: str = "model") -> IRGraph:
    nodes = []
    ref_index = {}
    notes = []
    last = len(net.layers) - 1
    node_of: dict[str, str | None] = {"input": None}     # layer name -> the node holding its output
    for i, (name, layer) in enumerate(zip(net.names, net.layers)):
        t = layer.type
        src = node_of[net.inputs[i][0]]
        node = None
        if t == "conv2d":
            _check_limits(where, i, name, "conv", {"kernel": layer.kernel, "stride": layer.stride,
                                                   "padding": layer.padding})
            w = np.asarray(layer.params["weight"], dtype=np.float64)
            node = ConvNode(name, [name], in_c=layer.in_channels, out_c=layer.out_channels, kernel=layer.kernel,
                            stride=layer.stride, pad=layer.padding,
                            table=[list(r) for r in layer.table] if layer.table is not None else None,
                            weight=w * layer.connection_mask()[:, :, None, None],
                            bias=np.asarray(layer.params["bias"], dtype=np.float64), share=net.shares[i])
        elif t == "linear":
            w = np.asarray(layer.params["weight"], dtype=np.float64)
            node = ConvNode(name, [name], in_c=layer.in_features, out_c=layer.out_features, kernel=1,
                            weight=w.reshape(w.shape[0], w.shape[1], 1, 1),
                            bias=np.asarray(layer.params["bias"], dtype=np.float64), share=net.shares[i])
        elif t == "pyrdown":
            if layer.edge != "zero":
                _refuse(where, i, name, f"a pyramid step with edge {layer.edge!r} has no engine (the convolution "
                        "engine pads with zeros): give the layer edge 'zero'")
            c = net.in_shape(i)[0]
            g = layer.taps()
            _check_limits(where, i, name, "conv", {"kernel": layer.kernel, "stride": 2, "padding": layer.kernel // 2})
            window = np.outer(g, g)
            weight = np.zeros((c, c, layer.kernel, layer.kernel))
            weight[np.arange(c), np.arange(c)] = window
            node = ConvNode(name, [name], in_c=c, out_c=c, kernel=layer.kernel, stride=2, pad=layer.kernel // 2,
                            table=[[k] for k in range(c)], weight=weight, bias=np.zeros(c), keep_fmt=True)
        elif t == "upsample":
            f = layer.factor
            if f & (f - 1) or not 2 <= f <= 1 << isa.limit("up")[1]:
                _refuse(where, i, name, f"upsampling by {f}: the record's 'up' field takes a power of two, "
                        f"2 to {1 << isa.limit('up')[1]}")
            node = UpsampleNode(name, [name], up=f.bit_length() - 1)
        elif t == "concat":
            node = ConcatNode(name, [name], parts=[node_of[v] for v in net.inputs[i]])
            if None in node.parts:
                _refuse(where, i, name, "a concatenation of the network input has no engine (concatenate layers)")
        elif t in ("relu", "tanh", "abs"):
            node = ActNode(name, [name], act=Act(t))
        elif t in ("maxpool2d", "avgpool2d"):
            _check_limits(where, i, name, "pool", {"kernel": layer.kernel, "stride": layer.stride})
            node = PoolNode(name, [name], pool=Pool(t[:3], layer.kernel, layer.stride))
        elif t == "lcn":
            _check_limits(where, i, name, "lcn", {"kernel": layer.kernel})
            node = LCNNode(name, [name], kernel=layer.kernel, window=np.asarray(layer.window(), np.float64),
                           eps=float(layer.EPS))
        elif t == "flatten":
            if src is not None:
                ref_index[src] = i  # the flattened vector is the same memory
            node_of[name] = src
            continue
        elif t in ("logsoftmax", "pixel_logsoftmax"):
            if i != last:
                _refuse(where, i, name, f"{t} is only supported as the last layer")
            notes.append(f"layer {name!r} ({t}) dropped: the accelerator outputs the scores; "
                         "the arg-max is the same")
            continue
        elif t == "lrn":
            _refuse(where, i, name, "local response normalization (lrn) has no engine in the accelerator: it "
                    "divides each value by a power of a sum over neighbouring maps at one pixel, while the LCN "
                    "engine sums over all maps and a spatial window; the float reference runs it, "
                    "the compiler refuses it")
        else:
            _refuse(where, i, name, f"layer type {t!r} is not supported")
        node.input = src
        nodes.append(node)
        node_of[name] = node.name
        ref_index[node.name] = i
    if not nodes:
        raise ConvcError(f"{where}: nothing to compile (no layers left after dropping log-softmax)")
    out = node_of[net.names[last]] if net.layers[last].type not in ("logsoftmax", "pixel_logsoftmax") \
        else node_of[net.inputs[last][0]]
    if out != nodes[-1].name:
        raise ConvcError(f"{where}: the network's output is layer {out!r}, which is not the last node the "
                         "compiler runs; list the output layer last")
    return IRGraph(name=net.name, input_shape=tuple(net.input.shape), input_mean=list(net.input.mean),
                   input_std=list(net.input.std), nodes=nodes, classes=net.classes, notes=notes,
                   ref_index=ref_index)

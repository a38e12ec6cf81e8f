"""ONNX export: a reference :class:`~convc.reference.network.Network` -> an ONNX model.

The exported graph computes what :meth:`Network.forward` computes on raw inputs
(input normalization included), at opset :data:`OPSET`, batch size 1, float32:

============  ==============================================================
convc         ONNX
============  ==============================================================
input norm.   ``Sub`` (mean) and ``Div`` (std), per channel, when not identity
conv2d        ``Conv`` (a connection table as zero weights: the same sums)
maxpool2d     ``MaxPool``;  ``avgpool2d``: ``AveragePool``;  ``l2pool2d``: ``LpPool`` (p = 2)
lcn           ``Conv`` (the Gaussian over all maps) -> ``Sub`` -> ``Mul`` -> ``Conv`` ->
              ``Sqrt``; ``ReduceMean`` over the map; ``Max`` with it and eps; ``Div``
lrn           ``LRN``
relu, tanh,   ``Relu``, ``Tanh``, ``Abs``
abs
linear        ``Gemm`` (``transB = 1``)
flatten       ``Flatten``
logsoftmax    ``LogSoftmax`` (last axis)
============  ==============================================================

``onnx`` is an optional tool: imported where used (:func:`convc.reference.onnx_load.require_onnx`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from convc.errors import ConvcError
from convc.inputs import write_atomic

from .layers import LocalContrastNorm
from .network import Network
from .onnx_load import require_onnx

__all__ = ["OPSET", "to_onnx", "export_onnx"]

OPSET = 13


class _Builder:
    def __init__(self, onnx):
        self.onnx = onnx
        self.nodes = []
        self.inits = []
        self.used: set[str] = {"input", "output"}
        self.channels = 0     # maps of the tensor the next layer reads

    def name(self, base: str) -> str:
        """``base`` itself the first time (layer names survive a round trip), then ``base_2``..."""
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name

    def const(self, base: str, value: np.ndarray) -> str:
        from onnx import numpy_helper  # optional tool: convc.optional
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], base: str, **attrs) -> str:
        out = self.name(base)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _layer(b: _Builder, name: str, layer, x: str) -> str:
    t = layer.type
    if t == "conv2d":
        k, p, s = layer.kernel, layer.padding, layer.stride
        w = layer.params["weight"] * layer.connection_mask()[:, :, None, None]
        return b.node("Conv", [x, b.const(f"{name}.weight", w), b.const(f"{name}.bias", layer.params["bias"])],
                      name, kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)
    if t in ("maxpool2d", "avgpool2d", "l2pool2d"):
        op = {"maxpool2d": "MaxPool", "avgpool2d": "AveragePool", "l2pool2d": "LpPool"}[t]
        extra = {"p": 2} if t == "l2pool2d" else {}
        return b.node(op, [x], name, kernel_shape=[layer.kernel] * 2, strides=[layer.stride] * 2, **extra)
    if t == "lcn":
        return _lcn(b, name, layer, x)
    if t == "lrn":
        return b.node("LRN", [x], name, size=layer.size, alpha=layer.alpha, beta=layer.beta, bias=layer.bias)
    if t in ("relu", "tanh", "abs"):
        return b.node({"relu": "Relu", "tanh": "Tanh", "abs": "Abs"}[t], [x], name)
    if t == "linear":
        return b.node("Gemm", [x, b.const(f"{name}.weight", layer.params["weight"]),
                               b.const(f"{name}.bias", layer.params["bias"])], name, transB=1)
    if t == "flatten":
        return b.node("Flatten", [x], name, axis=1)
    if t == "logsoftmax":
        return b.node("LogSoftmax", [x], name, axis=-1)
    raise ConvcError(f"layer {name!r}: type {t!r} has no ONNX export")


def _lcn(b: _Builder, name: str, layer: LocalContrastNorm, x: str) -> str:
    """The equations of :class:`LocalContrastNorm`, one ONNX node each."""
    c = b.channels
    k, r = layer.kernel, layer.kernel // 2
    g = np.broadcast_to(layer.window() / c, (1, c, k, k))
    pads = {"kernel_shape": [k, k], "pads": [r] * 4}
    gw = b.const(f"{name}.window", g)
    m = b.node("Conv", [x, gw], f"{name}.mean", **pads)
    v = b.node("Sub", [x, m], f"{name}.v")
    sq = b.node("Mul", [v, v], f"{name}.sq")
    s = b.node("Sqrt", [b.node("Conv", [sq, gw], f"{name}.s2", **pads)], f"{name}.s")
    smean = b.node("ReduceMean", [s], f"{name}.smean", axes=[2, 3], keepdims=1)
    d = b.node("Max", [s, smean, b.const(f"{name}.eps", np.array(layer.EPS))], f"{name}.d")
    return b.node("Div", [v, d], name)


def to_onnx(net: Network):
    """The ONNX ``ModelProto`` of ``net`` (checked with ``onnx.checker``)."""
    if not net.is_chain:
        raise ConvcError(f"network {net.name!r} is a graph (layers with several inputs or shared weights); "
                         "ONNX export writes chains only")
    onnx = require_onnx()
    from onnx import TensorProto, helper  # optional tool: convc.optional

    b = _Builder(onnx)
    c, h, w = net.input.shape
    x = "input"
    mean = np.asarray(net.input.mean, dtype=np.float64)
    std = np.asarray(net.input.std, dtype=np.float64)
    if np.any(mean != 0):
        x = b.node("Sub", [x, b.const("input.mean", mean.reshape(1, c, 1, 1))], "input.centred")
    if np.any(std != 1):
        x = b.node("Div", [x, b.const("input.std", std.reshape(1, c, 1, 1))], "input.scaled")
    for name, layer, shape in zip(net.names, net.layers, net.shapes):
        b.channels = shape[0]
        x = _layer(b, name, layer, x)
    if not b.nodes:
        x = b.node("Identity", [x], "output")
    b.nodes[-1].output[0] = "output"
    out_shape = [1, *net.output_shape]
    graph = helper.make_graph(b.nodes, net.name or "convc",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, c, h, w])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
                              initializer=b.inits)
    model = helper.make_model(graph, producer_name="convc", opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = min(model.ir_version, 8)     # readable by older runtimes
    helper.set_model_props(model, {"convc.name": net.name, "convc.classes": str(net.classes)})
    onnx.checker.check_model(model)
    return model


def export_onnx(net: Network, path: str | os.PathLike) -> Path:
    """Write ``net`` as ONNX to ``path`` atomically (nothing half-written on failure)."""
    model = to_onnx(net)
    data = model.SerializeToString()
    return write_atomic(Path(path), lambda fh: fh.write(data), option="-o")

"""ONNX graphs for the import and export tests, built with ``onnx.helper``, and the
onnxruntime side of every comparison."""

from __future__ import annotations

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from convc.reference.onnx_import import random_constants, with_input_side  # noqa: E402

RTOL = 1e-5        # the bound: relative to the largest output magnitude
NEWEST = onnx.defs.onnx_opset_version()
DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")


class Graph:
    """A chain being built: ``g.add(op, inputs_after_x, **attrs)`` appends a node reading the
    last output; ``g.const(value)`` adds an initializer; ``g.model()`` closes it."""

    def __init__(self, shape, seed=0, dtype=TensorProto.FLOAT):
        self.shape = list(shape)
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.last = "x"
        self.dtype = dtype
        self.k = 0

    def fresh(self, base="t"):
        self.k += 1
        return f"{base}{self.k}"

    def const(self, value, name=None):
        name = name or self.fresh("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, *shape, scale=0.5):
        return self.const(self.rng.uniform(-scale, scale, shape).astype(np.float32))

    def node(self, op, inputs, outputs=1, **attrs):
        outs = [self.fresh() for _ in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.fresh(op.lower()), **attrs))
        return outs[0] if outputs == 1 else outs

    def add(self, op, *extra, outputs=1, **attrs):
        self.last = self.node(op, [self.last, *extra], outputs=outputs, **attrs)
        if outputs != 1:
            self.last = self.last[0]
        return self

    def model(self, opset=13, out_shape=None):
        graph = helper.make_graph(
            self.nodes, "test", [helper.make_tensor_value_info("x", self.dtype, self.shape)],
            [helper.make_tensor_value_info(self.last, self.dtype, out_shape)], initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = min(model.ir_version, 8)
        if out_shape is None:      # the output's shape from ONNX's own shape inference
            model.graph.output[0].CopyFrom(onnx.shape_inference.infer_shapes(model, data_prop=True).graph.output[0])
        if model.graph.output[0].type.tensor_type.HasField("shape"):    # else inference could not say
            onnx.checker.check_model(model)
        return model


def run_ort(model, x: np.ndarray) -> np.ndarray:
    """onnxruntime's output for one batch ``x``."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x.astype(np.float32)})[0]


def convc_output(net, x: np.ndarray) -> np.ndarray:
    """convc's float reference, with the graph's final Softmax restored (convc keeps log-probabilities)."""
    y = net.forward(x.astype(np.float64).reshape((len(x),) + tuple(net.input.shape)))
    return np.exp(y) if net.meta.get("onnx", {}).get("output") == "softmax" else y


def rel_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Largest absolute difference relative to the largest magnitude of the expected output."""
    ours = np.asarray(ours, dtype=np.float64).reshape(np.shape(theirs))
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-30))


def randomized(model, seed=0):
    """The light models with random weights (:func:`convc.reference.onnx_import.random_constants`)."""
    return random_constants(model, seed)


def light_model(name: str):
    return onnx.load(os.path.join(DATA, "light", f"light_{name}.onnx"))


def set_input_side(model, side: int):
    """The input's H and W set to ``side`` (:func:`convc.reference.onnx_import.with_input_side`)."""
    return with_input_side(model, side)

"""Reading an ONNX graph as a chain: its input, its constants, the walk over its nodes, the result.

The first phase of the import (:class:`GraphReader`): the initializers and every node on
constants are folded (:mod:`convc.reference.onnx_fold`), the one non-constant input
gives the first tensor, and the nodes that read it are walked in order as a chain,
each handed to :meth:`GraphReader._layer` (the node translation,
:class:`convc.reference.onnx_ops.Importer`); the layers built make the
:class:`~convc.reference.network.Network`.

The graph must be a chain over its one non-constant input: ``(1, C, H, W)`` maps or a
``(1, F)`` vector (read as ``F`` maps of 1x1 and flattened). A branch, a second
computed input or output, a batch other than 1 or a dynamic size without
``input_shape`` is refused with one :class:`ConvcError` naming the file, the node and
the field.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convc.errors import ConvcError

from .layers import Flatten, Layer
from .network import MAX_PARAMS, MAX_VALUES, InputSpec, Network
from .onnx_fold import FOLDED, fold_value
from .onnx_load import SUPPORTED, opset_of, read_tensor, require_onnx

__all__ = ["ChainTensor", "ChainLayers", "GraphReader"]


@dataclass
class ChainTensor:
    """A value on the chain: its per-batch shape (maps ``(N, C, H, W)`` or vector ``(N, F)``)."""

    shape: tuple[int, ...]


@dataclass
class ChainLayers:
    """The layers built so far, the input normalization, and what the last one is."""

    layers: list[Layer] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    output: str = "scores"
    folded_last: bool = False     # the last layer may still take a bias or a batch norm

    def add(self, layer: Layer, name: str, foldable: bool = False) -> Layer:
        base, k = name, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.layers.append(layer)
        self.names.append(name)
        self.folded_last = foldable
        return layer


class GraphReader:
    """Walks one ONNX model's graph as a chain of layers.

    Parameters
    ----------
    model : onnx.ModelProto
    where : str
        The file (or model) name every message starts with.
    input_shape : tuple of int or None
        ``(C, H, W)`` for a dynamic input (or to check the graph's).
    any_batch : bool
        Accept any fixed batch size, not only 1.

    A subclass translates each node on the chain: :meth:`_layer`.
    """

    def __init__(self, model, where: str, input_shape, any_batch: bool):
        self.onnx = require_onnx()
        self.model = model
        self.where = where
        self.input_shape = input_shape
        self.any_batch = any_batch
        self.opset = opset_of(model, where)
        self.consts: dict[str, np.ndarray] = {}
        self.values: dict[str, ChainTensor] = {}
        self.out = ChainLayers()
        self.node_where = where

    # -- messages -----------------------------------------------------------
    def fail(self, problem: str):
        raise ConvcError(f"{self.node_where}: {problem}")

    # -- attributes and constants --------------------------------------------
    def attrs(self, node) -> dict:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def const(self, name: str, what: str) -> np.ndarray:
        if name not in self.consts:
            self.fail(f"input {what} ({name!r}) must be a constant (an initializer or a Constant node)")
        return self.consts[name]

    # -- graph ---------------------------------------------------------------
    def run(self) -> Network:
        graph = self.model.graph
        for init in graph.initializer:
            self.consts[init.name] = read_tensor(init, self.fail)
        inputs = [i for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise ConvcError(f"{self.where}: the graph has {len(inputs)} non-constant inputs "
                             f"({', '.join(i.name for i in inputs) or 'none'}); convc takes exactly one")
        start = self._input(inputs[0])
        if len(graph.output) != 1:
            raise ConvcError(f"{self.where}: the graph has {len(graph.output)} outputs; convc takes exactly one")
        users: dict[str, int] = {}
        for node in graph.node:
            if node.op_type == "Shape":     # reads only the shape, which is known: not a branch
                continue
            for name in node.input:
                users[name] = users.get(name, 0) + 1
        for index, node in enumerate(graph.node):
            label = node.name or (node.output[0] if node.output else "")
            self.node_where = f"{self.where}: node {index} {label!r} ({node.op_type})"
            if node.domain not in ("", "ai.onnx"):
                self.fail(f"operator domain {node.domain!r} is not supported; convc reads the default "
                          f"domain: {', '.join(SUPPORTED)}")
            live = [n for n in node.input if n in self.values]
            if node.op_type == "Shape" and live:
                a = self.attrs(node)
                dims = np.array(self.values[live[0]].shape, dtype=np.int64)
                self.consts[node.output[0]] = dims[a.get("start", 0):a.get("end", None)]
                continue
            if not live:
                self._fold(node)
                continue
            if len(live) > 1 or live[0] != node.input[0] and node.op_type not in ("Add", "MatMul"):
                self.fail("reads more than one computed tensor; convc takes a chain of layers "
                          f"(supported: {', '.join(SUPPORTED)})")
            src = live[0]
            if users.get(src, 0) > 1:
                self.fail(f"tensor {src!r} is read by {users[src]} nodes; convc takes a chain of layers")
            value = self.values.pop(src)
            self.src = src
            result = self._layer(node, value)
            outs = [o for o in node.output if o]
            extra = [o for o in outs[1:] if users.get(o)]
            if extra:
                self.fail(f"its output {extra[0]!r} is used; convc reads only the first output of {node.op_type}")
            self.values[outs[0]] = result
        self.node_where = self.where
        final = graph.output[0].name
        if final not in self.values:
            raise ConvcError(f"{self.where}: the graph output {final!r} is not computed from the input "
                             "by a chain of supported nodes")
        return self._network(start)

    def _layer(self, node, t: ChainTensor) -> ChainTensor:
        """The tensor ``node`` makes of ``t``, its layer added to :attr:`out` (a subclass's)."""
        raise NotImplementedError

    def _input(self, proto) -> ChainTensor:
        name = proto.name
        where = f"{self.where}: input {name!r}"
        ttype = proto.type.tensor_type
        allowed = {self.onnx.TensorProto.FLOAT, self.onnx.TensorProto.DOUBLE, self.onnx.TensorProto.FLOAT16}
        if ttype.elem_type not in allowed:
            raise ConvcError(f"{where}: element type "
                             f"{self.onnx.TensorProto.DataType.Name(ttype.elem_type)} is not supported "
                             "(float, double or float16)")
        if not ttype.HasField("shape"):
            raise ConvcError(f"{where}: the shape is not given; pass --input-shape C,H,W")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
        if len(dims) not in (2, 4):
            raise ConvcError(f"{where}: shape {self._dims(ttype)} has {len(dims)} dimensions; convc takes "
                             "(N, C, H, W) maps or an (N, F) vector")
        batch = dims[0]
        if batch is None:
            if not self.any_batch:
                raise ConvcError(f"{where}: the batch dimension is dynamic ({self._dims(ttype)}); convc runs "
                                 "one frame at a time: export with a fixed batch size of 1")
        elif batch != 1 and not self.any_batch:
            raise ConvcError(f"{where}: batch size {batch}; convc runs one frame at a time: export with a "
                             "batch size of 1")
        rest = dims[1:]
        if self.input_shape is not None:
            given = tuple(self.input_shape)
            want = given if len(rest) == 3 else (math.prod(given),)
            if any(d is not None and d != g for d, g in zip(rest, want)) or len(rest) != len(want):
                raise ConvcError(f"{where}: --input-shape {','.join(map(str, given))} does not match the "
                                 f"graph's {self._dims(ttype)}")
            rest = list(want)
        if any(d is None or d < 1 for d in rest):
            raise ConvcError(f"{where}: dynamic input shape {self._dims(ttype)}; pass --input-shape C,H,W")
        shape = (batch or 1, *rest)
        if math.prod(rest) > MAX_VALUES:
            raise ConvcError(f"{where}: {math.prod(rest):,} values a sample, beyond the limit of {MAX_VALUES:,}")
        self.values[name] = ChainTensor(shape)
        if len(rest) == 1:      # a vector: F maps of 1x1, flattened first
            self.out.add(Flatten(), "flatten_input")
            return ChainTensor((shape[0], rest[0], 1, 1))
        return ChainTensor(shape)

    @staticmethod
    def _dims(ttype) -> str:
        return "(" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
                               for d in ttype.shape.dim) + ")"

    # -- constant folding ----------------------------------------------------
    def _fold(self, node) -> None:
        op, a = node.op_type, self.attrs(node)
        ins = [self.consts.get(n) if n else None for n in node.input]
        missing = [n for n, v in zip(node.input, ins) if n and v is None]
        if missing:
            self.fail(f"input {missing[0]!r} is neither a constant nor computed by an earlier node")
        if op not in FOLDED:
            self.fail(f"operator {op} on constants is not supported (convc folds {', '.join(FOLDED)}; "
                      f"layers: {', '.join(SUPPORTED)})")
        out = fold_value(op, a, ins, self.fail)
        if out is not None and out.size > MAX_PARAMS:
            self.fail(f"a constant of {out.size:,} values, beyond the limit of {MAX_PARAMS:,}")
        self.consts[node.output[0]] = out

    # -- result --------------------------------------------------------------
    def _network(self, start: ChainTensor) -> Network:
        shape = start.shape[1:]
        c = shape[0]
        mean = [0.0] * c if self.out.mean is None else [float(v) for v in self.out.mean]
        std = [1.0] * c if self.out.std is None else [float(v) for v in self.out.std]
        try:
            net = Network(InputSpec(shape, mean, std), self.out.layers, self.out.names,
                          name=self._name(), classes=0, meta={})
        except ValueError as exc:
            raise ConvcError(f"{self.where}: {exc}") from None
        out = net.output_shape
        net.classes = int(out[0]) if len(out) == 1 else 0
        for layer in net.layers:
            for key, value in list(layer.params.items()):
                if not np.all(np.isfinite(value)):
                    raise ConvcError(f"{self.where}: a weight of layer {type(layer).__name__} is NaN or infinite")
                layer.params[key] = np.ascontiguousarray(value, dtype=np.float32)
            layer.grads = {k: np.zeros_like(v) for k, v in layer.params.items()}
        net.meta = {"onnx": {"file": os.path.basename(self.where), "opset": self.opset,
                             "producer": f"{self.model.producer_name} {self.model.producer_version}".strip(),
                             "output": self.out.output}}
        return net

    def _name(self) -> str:
        name = self.model.graph.name or Path(self.where).stem
        return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:64] or "onnx"

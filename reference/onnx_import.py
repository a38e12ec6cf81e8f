"""ONNX import: a ``.onnx`` graph -> a reference :class:`~convc.reference.network.Network`.

What a graph may hold (:data:`SUPPORTED`), and what each becomes:

=========================  ================================================================
ONNX                       convc
=========================  ================================================================
Conv                       ``conv2d``: square kernel, equal strides, symmetric pads; ``group``
                           becomes a connection table (weights outside it are zero)
MaxPool, AveragePool       ``maxpool2d``/``avgpool2d``: no reachable padding (pads that no
                           window reaches, as AlexNet's ceil-mode pads, are dropped), so
                           ``count_include_pad`` never matters; ``ceil_mode`` only where it
                           gives the floor size
GlobalAveragePool          ``avgpool2d`` with the map's side as kernel (square maps)
Relu, Tanh, Abs, LRN       ``relu``, ``tanh``, ``abs``, ``lrn``
Gemm; MatMul (+ Add)       ``linear`` (``transA = 0``; ``transB``, ``alpha``, ``beta``, the bias
                           broadcast to one value per output)
Add (constant)             folded into the bias of the convolution or linear layer before it
BatchNormalization         folded into the convolution or linear layer before it, or into the
                           input normalization when it reads the input
Flatten, Reshape           ``flatten`` (to ``(1, -1)``) or nothing (to the same shape)
Dropout, Identity          dropped
Softmax, LogSoftmax        ``logsoftmax`` as the last layer, over the features
                           (``meta["onnx"]["output"]`` says which one the graph had)
Constant, initializers     constants; every node whose inputs are all constant is evaluated
                           here (:data:`FOLDED`: ``ConstantOfShape``, the ``Shape -> Gather ->
                           Unsqueeze -> Concat`` chain of ``x.view(x.size(0), -1)``, ...)
=========================  ================================================================

The graph must be a chain over its one non-constant input: ``(1, C, H, W)`` maps or a
``(1, F)`` vector (read as ``F`` maps of 1x1 and flattened). Anything else (another op,
a branch, a dilation, a non-square kernel, asymmetric pads, a batch other than 1, a
dynamic size without ``input_shape``, opsets outside :data:`OPSETS`) is refused with
one :class:`ConvcError` naming the file, the node and the field.

``onnx`` is an optional tool (the ``onnx`` extra): it is imported where used.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convc.errors import ConvcError

from .layers import (Abs, AvgPool2d, Conv2d, Flatten, Layer, Linear, LocalResponseNorm, LogSoftmax, MaxPool2d,
                     ReLU, Tanh)
from .network import MAX_PARAMS, MAX_VALUES, InputSpec, Network

__all__ = ["SUPPORTED", "FOLDED", "OPSETS", "import_onnx", "load_onnx", "require_onnx", "random_constants",
           "with_input_side"]

SUPPORTED = ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "Relu", "Tanh", "Abs", "LRN", "Gemm",
             "MatMul", "Add", "BatchNormalization", "Flatten", "Reshape", "Dropout", "Identity", "Softmax",
             "LogSoftmax", "Constant")
FOLDED = ("Constant", "ConstantOfShape", "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Reshape",
          "Transpose", "Identity", "Add", "Sub", "Mul", "Div", "Sqrt", "Neg", "Flatten")
OPSETS = (6, None)   # oldest default-domain opset read; None: the newest the installed onnx knows
MAX_FILE_BYTES = 4 << 30


def require_onnx():
    """The ``onnx`` module, or one message saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise ConvcError("reading ONNX needs the 'onnx' package: pip install 'convc[onnx]' "
                         "(make demo and make test install it)") from None
    return onnx


def load_onnx(path: str | os.PathLike):
    """Read and check a ``.onnx`` file (with its external data); every failure a :class:`ConvcError`."""
    onnx = require_onnx()
    path = Path(path)
    if not path.is_file():
        raise ConvcError(f"{path}: no such ONNX file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ConvcError(f"{path}: {size:,} bytes, beyond the limit of {MAX_FILE_BYTES:,} for an ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:   # protobuf raises DecodeError and others
        raise ConvcError(f"{path}: not an ONNX model, or truncated ({type(exc).__name__}: {exc})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ConvcError(f"{path}: not an ONNX model (no graph, or a graph without nodes)")
    external = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        from onnx.external_data_helper import load_external_data_for_model
        try:
            load_external_data_for_model(model, str(path.parent))
        except Exception as exc:   # OSError, ValueError, onnx's ValidationError
            raise ConvcError(f"{path}: external data of initializer {external[0]!r} cannot be read "
                             f"({type(exc).__name__}: {exc})") from None
    return model


@dataclass
class _Tensor:
    """A value on the chain: its per-batch shape (maps ``(N, C, H, W)`` or vector ``(N, F)``)."""

    shape: tuple[int, ...]


@dataclass
class _Layers:
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


class _Importer:
    def __init__(self, model, where: str, input_shape, any_batch: bool):
        self.onnx = require_onnx()
        self.model = model
        self.where = where
        self.input_shape = input_shape
        self.any_batch = any_batch
        self.opset = self._opset()
        self.consts: dict[str, np.ndarray] = {}
        self.values: dict[str, _Tensor] = {}
        self.out = _Layers()
        self.node_where = where

    # -- messages -----------------------------------------------------------
    def fail(self, problem: str):
        raise ConvcError(f"{self.node_where}: {problem}")

    def _opset(self) -> int:
        versions = {o.domain: o.version for o in self.model.opset_import}
        version = versions.get("", versions.get("ai.onnx"))
        newest = self.onnx.defs.onnx_opset_version()
        if version is None:
            raise ConvcError(f"{self.where}: field 'opset_import' names no default-domain opset")
        if not OPSETS[0] <= version <= newest:
            raise ConvcError(f"{self.where}: field 'opset_import': opset {version} is not supported "
                             f"(convc reads opsets {OPSETS[0]} to {newest})")
        return version

    # -- attributes and constants --------------------------------------------
    def attrs(self, node) -> dict:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def const(self, name: str, what: str) -> np.ndarray:
        if name not in self.consts:
            self.fail(f"input {what} ({name!r}) must be a constant (an initializer or a Constant node)")
        return self.consts[name]

    def tensor(self, proto) -> np.ndarray:
        from onnx import numpy_helper
        try:
            return np.array(numpy_helper.to_array(proto))
        except Exception as exc:
            self.fail(f"tensor {proto.name!r} cannot be read ({type(exc).__name__}: {exc})")

    # -- graph ---------------------------------------------------------------
    def run(self) -> Network:
        graph = self.model.graph
        for init in graph.initializer:
            self.consts[init.name] = self.tensor(init)
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

    def _input(self, proto) -> _Tensor:
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
        self.values[name] = _Tensor(shape)
        if len(rest) == 1:      # a vector: F maps of 1x1, flattened first
            self.out.add(Flatten(), "flatten_input")
            return _Tensor((shape[0], rest[0], 1, 1))
        return _Tensor(shape)

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
        out = self._fold_value(op, a, ins)
        if out is not None and out.size > MAX_PARAMS:
            self.fail(f"a constant of {out.size:,} values, beyond the limit of {MAX_PARAMS:,}")
        self.consts[node.output[0]] = out

    def _fold_value(self, op: str, a: dict, ins: list) -> np.ndarray:
        if op == "Constant":
            if "value" in a:
                return self.tensor(a["value"])
            for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                               ("value_int", np.int64), ("value_ints", np.int64)):
                if key in a:
                    return np.array(a[key], dtype=dtype)
            self.fail(f"Constant with attributes {sorted(a)} is not supported (value, value_float(s), value_int(s))")
        if op == "ConstantOfShape":
            shape = [int(v) for v in ins[0].reshape(-1)]
            if any(v < 0 for v in shape) or math.prod(shape) > MAX_PARAMS:
                self.fail(f"shape {shape} is not a valid constant shape")
            fill = self.tensor(a["value"]).reshape(-1) if "value" in a else np.zeros(1, np.float32)
            return np.full(shape, fill[0], dtype=fill.dtype)
        if op == "Shape":
            shape = np.array(ins[0].shape, dtype=np.int64)
            start, end = a.get("start", 0), a.get("end", None)
            return shape[start:end]
        if op == "Gather":
            return np.take(ins[0], ins[1].astype(np.int64), axis=a.get("axis", 0))
        if op in ("Unsqueeze", "Squeeze"):
            axes = a.get("axes", None) if len(ins) < 2 or ins[1] is None else [int(v) for v in ins[1]]
            x = ins[0]
            if op == "Squeeze":
                return np.squeeze(x, axis=tuple(axes)) if axes is not None else np.squeeze(x)
            for ax in sorted(v % (x.ndim + len(axes)) for v in axes):
                x = np.expand_dims(x, ax)
            return x
        if op == "Concat":
            return np.concatenate([np.atleast_1d(v) for v in ins], axis=a.get("axis", 0))
        if op == "Cast":
            from onnx import helper
            return ins[0].astype(helper.tensor_dtype_to_np_dtype(a["to"]))
        if op == "Reshape":
            return ins[0].reshape(self._reshape_target(ins[0].shape, ins[1], a.get("allowzero", 0)))
        if op == "Transpose":
            return np.transpose(ins[0], a.get("perm"))
        if op == "Flatten":
            axis = a.get("axis", 1) % max(ins[0].ndim, 1) if ins[0].ndim else 0
            return ins[0].reshape(math.prod(ins[0].shape[:axis]), -1)
        if op == "Identity":
            return ins[0]
        if op == "Sqrt":
            return np.sqrt(ins[0])
        if op == "Neg":
            return -ins[0]
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
        out = fn(ins[0], ins[1])
        if op == "Div" and np.issubdtype(ins[0].dtype, np.integer):
            out = np.trunc(out)
        return out.astype(np.result_type(ins[0], ins[1]))

    def _reshape_target(self, shape, target, allowzero=0) -> tuple[int, ...]:
        dims = [int(v) for v in np.asarray(target).reshape(-1)]
        out = []
        for i, d in enumerate(dims):
            if d == 0 and not allowzero:
                if i >= len(shape):
                    self.fail(f"shape {dims}: a 0 at position {i} copies a dimension the input lacks")
                out.append(int(shape[i]))
            else:
                out.append(d)
        if out.count(-1) > 1:
            self.fail(f"shape {dims} has more than one -1")
        total = math.prod(shape)
        if -1 in out:
            known = math.prod(v for v in out if v != -1)
            if known == 0 or total % known:
                self.fail(f"shape {dims} does not fit {total} values")
            out[out.index(-1)] = total // known
        if math.prod(out) != total or any(v < 0 for v in out):
            self.fail(f"shape {dims} does not fit the input of shape {list(shape)}")
        return tuple(out)

    # -- layers --------------------------------------------------------------
    def _maps(self, t: _Tensor, op: str) -> tuple[int, int, int, int]:
        if len(t.shape) != 4:
            self.fail(f"{op} needs (N, C, H, W) maps, got a tensor of shape {list(t.shape)}")
        return t.shape

    def _square(self, a: dict, name: str, default=None) -> int:
        vals = a.get(name, default)
        if vals is None:
            self.fail(f"attribute {name!r} is missing")
        vals = list(vals)
        if len(vals) != 2:
            self.fail(f"attribute {name!r} = {vals}: convc takes 2-D windows (two values)")
        if vals[0] != vals[1]:
            what = {"kernel_shape": "non-square kernel", "strides": "unequal strides"}.get(name, "unequal values")
            self.fail(f"attribute {name!r} = {vals}: {what}; convc takes square windows and equal strides")
        return int(vals[0])

    def _window(self, a: dict, kernel: int, hw: tuple[int, int]) -> tuple[int, int]:
        """(stride, symmetric pad) of a Conv or pooling node: pads no window reaches are dropped."""
        stride = self._square(a, "strides", [1, 1])
        dil = list(a.get("dilations", [1, 1]))
        if any(d != 1 for d in dil):
            self.fail(f"attribute 'dilations' = {dil}: dilated windows are not supported")
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = []
            for n in hw:
                out = -(-n // stride)
                total = max((out - 1) * stride + kernel - n, 0)
                small, big = total // 2, total - total // 2
                pads.append((small, big) if auto == "SAME_UPPER" else (big, small))
            begin, end = [p[0] for p in pads], [p[1] for p in pads]
        elif auto in ("NOTSET", "VALID"):
            pads = list(a.get("pads", [0, 0, 0, 0])) if auto == "NOTSET" else [0, 0, 0, 0]
            if len(pads) != 4:
                self.fail(f"attribute 'pads' = {pads}: expected four values")
            begin, end = pads[:2], pads[2:]
        else:
            self.fail(f"attribute 'auto_pad' = {auto!r} is not supported")
        ceil = bool(a.get("ceil_mode", 0))
        sym = []
        for axis, (n, b, e) in enumerate(zip(hw, begin, end)):
            if b < 0 or e < 0:
                self.fail(f"attribute 'pads' = {begin + end}: negative pads are not supported")
            span = n + b + e - kernel
            if span < 0:
                self.fail(f"kernel {kernel} larger than the padded input ({n} + {b} + {e})")
            size = (-(-span // stride) if ceil else span // stride) + 1
            if ceil and (size - 1) * stride >= n + b:    # ONNX: the last window starts inside
                size -= 1
            # convc pads b on both sides and floors: the same windows, or refused
            if size != (n + 2 * b - kernel) // stride + 1 or n + 2 * b < kernel:
                self.fail(f"attribute 'pads' = {begin + end}{' with ceil_mode' if ceil else ''}: the windows "
                          f"need {b} before and {max(0, (size - 1) * stride + kernel - n - b)} after "
                          f"on axis {axis}; convc takes symmetric padding")
            sym.append(b)
        if sym[0] != sym[1]:
            self.fail(f"attribute 'pads' = {begin + end}: unequal padding of rows and columns; convc takes the same padding on all four sides")
        return stride, sym[0]

    def _layer(self, node, t: _Tensor) -> _Tensor:
        op, a = node.op_type, self.attrs(node)
        name = node.name or op.lower()
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            self.fail(f"operator {op} is not supported; convc supports {', '.join(SUPPORTED)}")
        return handler(node, a, t, name)

    def _shape_after(self, layer: Layer, t: _Tensor) -> _Tensor:
        try:
            per = layer.output_shape(t.shape[1:])
        except ValueError as exc:
            self.fail(str(exc))
        return _Tensor((t.shape[0], *per))

    def _op_Conv(self, node, a, t, name):
        n, c, h, w = self._maps(t, "Conv")
        weight = self.const(node.input[1], "W").astype(np.float64)
        if weight.ndim != 4:
            self.fail(f"weight of shape {list(weight.shape)}: convc takes 2-D convolutions")
        o, cg, kh, kw = weight.shape
        k = self._square({"kernel_shape": a.get("kernel_shape", [kh, kw])}, "kernel_shape")
        if (kh, kw) != (k, k):
            self.fail(f"weight of shape {list(weight.shape)} does not match kernel_shape {a.get('kernel_shape')}")
        group = int(a.get("group", 1))
        if group < 1 or c % group or o % group or cg != c // group:
            self.fail(f"attribute 'group' = {group} does not fit {c} input maps, {o} output maps and a "
                      f"weight of shape {list(weight.shape)}")
        stride, pad = self._window(a, k, (h, w))
        bias = np.zeros(o)
        if len(node.input) > 2 and node.input[2]:
            bias = self.const(node.input[2], "B").astype(np.float64).reshape(-1)
            if bias.shape != (o,):
                self.fail(f"bias of shape {list(bias.shape)}, expected ({o},)")
        table = None
        full = weight
        if group > 1:
            full = np.zeros((o, c, k, k))
            opg = o // group
            table = []
            for out in range(o):
                g = out // opg
                full[out, g * cg:(g + 1) * cg] = weight[out]
                table.append(list(range(g * cg, (g + 1) * cg)))
        layer = Conv2d(in_channels=c, out_channels=o, kernel=k, stride=stride, padding=pad, table=table)
        layer.params = {"weight": full, "bias": bias}
        self.out.add(layer, name, foldable=True)
        return self._shape_after(layer, t)

    def _pool(self, node, a, t, name, cls):
        n, c, h, w = self._maps(t, node.op_type)
        k = self._square(a, "kernel_shape")
        stride, pad = self._window(a, k, (h, w))
        if pad:
            why = (" (count_include_pad is then about the padding)" if node.op_type == "AveragePool" else "")
            self.fail(f"padding {pad} on each side: convc's pooling reads no padding{why}; "
                      "pads that no window reaches are accepted")
        if a.get("storage_order", 0):
            self.fail("attribute 'storage_order' = 1 is not supported")
        layer = cls(kernel=k, stride=stride)
        self.out.add(layer, name)
        return self._shape_after(layer, t)

    def _op_MaxPool(self, node, a, t, name):
        return self._pool(node, a, t, name, MaxPool2d)

    def _op_AveragePool(self, node, a, t, name):
        return self._pool(node, a, t, name, AvgPool2d)

    def _op_GlobalAveragePool(self, node, a, t, name):
        n, c, h, w = self._maps(t, "GlobalAveragePool")
        if h != w:
            self.fail(f"maps of {h}x{w}: convc's average pooling takes square windows")
        layer = AvgPool2d(kernel=h, stride=h)
        self.out.add(layer, name)
        return self._shape_after(layer, t)

    def _simple(self, layer, t, name):
        self.out.add(layer, name)
        return self._shape_after(layer, t)

    def _op_Relu(self, node, a, t, name):
        return self._simple(ReLU(), t, name)

    def _op_Tanh(self, node, a, t, name):
        return self._simple(Tanh(), t, name)

    def _op_Abs(self, node, a, t, name):
        return self._simple(Abs(), t, name)

    def _op_LRN(self, node, a, t, name):
        self._maps(t, "LRN")
        if "size" not in a:
            self.fail("attribute 'size' is missing")
        try:
            layer = LocalResponseNorm(size=int(a["size"]), alpha=float(a.get("alpha", 1e-4)),
                                      beta=float(a.get("beta", 0.75)), bias=float(a.get("bias", 1.0)))
        except ValueError as exc:
            self.fail(str(exc))
        return self._simple(layer, t, name)

    def _vector(self, t: _Tensor, op: str) -> int:
        if len(t.shape) != 2:
            self.fail(f"{op} needs an (N, F) vector, got a tensor of shape {list(t.shape)}; "
                      "Flatten or Reshape first")
        return t.shape[1]

    def _linear(self, weight: np.ndarray, bias: np.ndarray, t: _Tensor, name: str) -> _Tensor:
        o, f = weight.shape
        layer = Linear(in_features=f, out_features=o)
        layer.params = {"weight": weight, "bias": bias}
        self.out.add(layer, name, foldable=True)
        return _Tensor((t.shape[0], o))

    def _op_Gemm(self, node, a, t, name):
        f = self._vector(t, "Gemm")
        if a.get("transA", 0):
            self.fail("attribute 'transA' = 1 on the computed input is not supported")
        b = self.const(node.input[1], "B").astype(np.float64)
        if b.ndim != 2:
            self.fail(f"B of shape {list(b.shape)}: expected a matrix")
        weight = (b if a.get("transB", 0) else b.T) * float(a.get("alpha", 1.0))
        if weight.shape[1] != f:
            self.fail(f"B of shape {list(b.shape)} (transB={a.get('transB', 0)}) does not take {f} features")
        o = weight.shape[0]
        bias = np.zeros(o)
        if len(node.input) > 2 and node.input[2]:
            cval = self.const(node.input[2], "C").astype(np.float64)
            try:
                full = np.broadcast_to(cval, (t.shape[0], o))
            except ValueError:
                self.fail(f"C of shape {list(cval.shape)} does not broadcast to ({t.shape[0]}, {o})")
            if not np.all(full == full[:1]):
                self.fail(f"C of shape {list(cval.shape)} differs between samples of the batch; convc takes "
                          "one bias per output")
            bias = full[0] * float(a.get("beta", 1.0))
        return self._linear(weight, bias, t, name)

    def _op_MatMul(self, node, a, t, name):
        if node.input[0] != self.src:
            self.fail("the computed tensor is the right-hand operand; convc takes x @ W with a constant W")
        f = self._vector(t, "MatMul")
        b = self.const(node.input[1], "B").astype(np.float64)
        if b.ndim != 2 or b.shape[0] != f:
            self.fail(f"B of shape {list(b.shape)} does not take {f} features (expected ({f}, outputs))")
        return self._linear(b.T, np.zeros(b.shape[1]), t, name)

    def _last_foldable(self, op: str):
        if not self.out.layers or not self.out.folded_last:
            self.fail(f"{op} must follow a Conv, Gemm or MatMul directly (it is folded into that layer)")
        return self.out.layers[-1]

    def _op_Add(self, node, a, t, name):
        if len(node.input) != 2:
            self.fail(f"expected two inputs, got {len(node.input)}")
        other = node.input[1] if node.input[0] == self.src else node.input[0]
        value = self.const(other, "B").astype(np.float64)
        layer = self._last_foldable("Add")
        o = layer.params["bias"].shape[0]
        per = t.shape[1:]
        try:
            full = np.broadcast_to(value, t.shape)
        except ValueError:
            self.fail(f"constant of shape {list(value.shape)} does not broadcast to {list(t.shape)}")
        if full.shape != t.shape:
            self.fail(f"constant of shape {list(value.shape)} changes the shape {list(t.shape)}")
        first = full.reshape(t.shape[0], o, -1)
        if not np.all(first == first[:1, :, :1]):
            self.fail(f"constant of shape {list(value.shape)} is not one value per output map of {list(per)}")
        layer.params["bias"] = layer.params["bias"] + first[0, :, 0]
        return t

    def _op_BatchNormalization(self, node, a, t, name):
        if a.get("training_mode", 0):
            self.fail("attribute 'training_mode' = 1: export the network in inference (eval) mode")
        if self.opset < 7 and not a.get("is_test", 0) and len([o for o in node.output if o]) > 1:
            self.fail("a BatchNormalization in training mode: export the network in inference (eval) mode")
        if not a.get("spatial", 1):
            self.fail("attribute 'spatial' = 0 is not supported")
        scale, b, mean, var = (self.const(node.input[i], w).astype(np.float64).reshape(-1)
                               for i, w in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
        c = t.shape[1]
        if any(v.shape != (c,) for v in (scale, b, mean, var)):
            self.fail(f"scale, B, mean and var must have {c} values each")
        if np.any(var + float(a.get("epsilon", 1e-5)) <= 0):
            self.fail("a variance plus epsilon is not positive")
        gain = scale / np.sqrt(var + float(a.get("epsilon", 1e-5)))
        shift = b - mean * gain
        if self.out.layers and self.out.folded_last:
            layer = self.out.layers[-1]
            w = layer.params["weight"]
            layer.params["weight"] = w * gain.reshape((-1,) + (1,) * (w.ndim - 1))
            layer.params["bias"] = layer.params["bias"] * gain + shift
            return t
        if all(isinstance(l, Flatten) for l in self.out.layers) and self.out.mean is None:
            if np.any(gain <= 0):
                self.fail("reads the input with a scale that is not positive; convc folds a batch norm on "
                          "the input into the per-channel mean and std, which needs scale > 0")
            # y = (x - mean) * gain + b = (x - m') / s'  with  s' = 1/gain,  m' = mean - b / gain
            self.out.std, self.out.mean = 1.0 / gain, mean - b / gain
            return t
        self.fail("must follow a Conv, Gemm or MatMul directly, or read the input (it is folded there)")

    def _op_Flatten(self, node, a, t, name):
        axis = a.get("axis", 1)
        if axis < 0:
            axis += len(t.shape)
        if axis != 1:
            self.fail(f"attribute 'axis' = {a.get('axis')}: convc flattens everything but the batch (axis 1)")
        return self._flatten(t, name)

    def _flatten(self, t, name):
        if len(t.shape) == 2:
            return t
        return self._simple(Flatten(), t, name)

    def _op_Reshape(self, node, a, t, name):
        target = self._reshape_target(t.shape, self.const(node.input[1], "shape"), a.get("allowzero", 0))
        if target == t.shape:
            return t
        if target == (t.shape[0], math.prod(t.shape[1:])):
            return self._flatten(t, name)
        self.fail(f"reshape of {list(t.shape)} to {list(target)}: convc takes only a flatten to "
                  f"({t.shape[0]}, {math.prod(t.shape[1:])}) or the same shape")

    def _op_Dropout(self, node, a, t, name):
        if len(node.input) > 2 and node.input[2]:
            mode = self.const(node.input[2], "training_mode")
            if bool(np.asarray(mode).reshape(-1)[0]):
                self.fail("training_mode is true: export the network in inference (eval) mode")
        return t

    def _op_Identity(self, node, a, t, name):
        return t

    def _softmax(self, node, a, t, name, kind):
        f = self._vector(t, node.op_type)
        axis = a.get("axis", 1 if self.opset < 13 else -1)
        if axis not in (1, -1):
            self.fail(f"attribute 'axis' = {axis}: convc takes {node.op_type} over the features (axis 1)")
        if node.output[0] != self.model.graph.output[0].name:
            self.fail(f"{node.op_type} must be the last node (convc drops it in hardware)")
        self.out.output = kind
        return self._simple(LogSoftmax(), t, name)

    def _op_Softmax(self, node, a, t, name):
        return self._softmax(node, a, t, name, "softmax")

    def _op_LogSoftmax(self, node, a, t, name):
        return self._softmax(node, a, t, name, "logsoftmax")

    # -- result --------------------------------------------------------------
    def _network(self, start: _Tensor) -> Network:
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


def import_onnx(source, *, input_shape=None, mean=None, std=None, any_batch: bool = False) -> Network:
    """Import an ONNX model as a reference network.

    Parameters
    ----------
    source : str, os.PathLike or onnx.ModelProto
        A ``.onnx`` file (its external data beside it) or a loaded model.
    input_shape : tuple of int, optional
        ``(C, H, W)`` for an input whose sizes are dynamic (or to check them).
    mean, std : sequence of float, optional
        Per-channel input normalization ``(x - mean) / std`` stored in the model (ONNX
        holds none); default identity. A BatchNormalization on the input is folded into
        them and cannot be combined with these.
    any_batch : bool
        Accept any fixed batch size (the per-sample network is the same); the command
        line refuses a batch other than 1, as the accelerator runs one frame at a time.

    Returns
    -------
    Network
        Its ``meta["onnx"]`` holds the file name, opset, producer and ``output``
        (``"softmax"``, ``"logsoftmax"`` or ``"scores"``).
    """
    onnx = require_onnx()
    if isinstance(source, onnx.ModelProto):
        model, where = source, source.graph.name or "onnx model"
    else:
        model, where = load_onnx(source), str(source)
    importer = _Importer(model, where, input_shape, any_batch)
    net = importer.run()
    if mean is not None or std is not None:
        if importer.out.mean is not None:
            raise ConvcError(f"{where}: the graph's BatchNormalization on the input already sets the "
                             "normalization; --mean/--std cannot be combined with it")
        c = net.input.shape[0]
        try:
            net.input = InputSpec(net.input.shape, _per_channel(mean, c, "--mean", 0.0),
                                  _per_channel(std, c, "--std", 1.0))
        except ValueError as exc:
            raise ConvcError(f"{where}: {exc}") from None
    return net


def random_constants(model, seed: int = 0):
    """``model`` with every ``ConstantOfShape`` output (the weights of the ``onnx`` wheel's
    ImageNet graphs, all one value) replaced by a seeded uniform random initializer of
    variance ``1 / fan_in``, so that a comparison with onnxruntime means something."""
    onnx = require_onnx()
    from onnx import numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    rng = np.random.default_rng(seed)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        if node.op_type == "ConstantOfShape" and node.input and node.input[0] in inits:
            shape = [int(v) for v in inits[node.input[0]]]
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
            value = rng.uniform(-1, 1, shape).astype(np.float32) * np.float32(math.sqrt(3.0 / fan_in))
            model.graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model


def with_input_side(model, side: int):
    """A copy of ``model`` with its input's H and W set to ``side`` (AlexNet at Caffe's
    227x227, where its last pool reads no ceil-mode padding)."""
    onnx = require_onnx()
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {t.name for t in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name not in inits:
            for d in inp.type.tensor_type.shape.dim[2:]:
                d.dim_value = side
    return model


def _per_channel(values, channels: int, option: str, default: float) -> list[float]:
    if values is None:
        return [default] * channels
    values = [float(v) for v in values]
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise ConvcError(f"{option}: {len(values)} values for {channels} input channels (give one, or one per channel)")
    return values

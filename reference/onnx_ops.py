"""Node translation of an ONNX import: each operator on the chain -> convc layers.

The second phase of the import: :class:`Importer` is the :class:`~convc.reference.onnx_graph.GraphReader`
with one handler a supported operator (:data:`~convc.reference.onnx_load.SUPPORTED`),
and what each becomes:

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
                           at import (:data:`~convc.reference.onnx_fold.FOLDED`)
=========================  ================================================================

Another operator, a dilation, a non-square kernel or asymmetric pads is refused with one
:class:`ConvcError` naming the file, the node and the field.
"""

from __future__ import annotations

import math

import numpy as np

from .layers import (Abs, AvgPool2d, Conv2d, Flatten, Layer, Linear, LocalResponseNorm, LogSoftmax, MaxPool2d,
                     ReLU, Tanh)
from .onnx_fold import reshape_target
from .onnx_graph import ChainTensor, GraphReader
from .onnx_load import SUPPORTED

__all__ = ["Importer"]


class Importer(GraphReader):
    """The whole importer: :class:`GraphReader`'s walk, each node on the chain translated
    by its ``_op_<OpType>`` handler, ``handler(node, attrs, tensor, name) -> tensor``."""

    # -- layers --------------------------------------------------------------
    def _maps(self, t: ChainTensor, op: str) -> tuple[int, int, int, int]:
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
            self.fail(f"attribute 'pads' = {begin + end}: unequal padding of rows and columns; "
                      "convc takes the same padding on all four sides")
        return stride, sym[0]

    def _layer(self, node, t: ChainTensor) -> ChainTensor:
        op, a = node.op_type, self.attrs(node)
        name = node.name or op.lower()
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            self.fail(f"operator {op} is not supported; convc supports {', '.join(SUPPORTED)}")
        return handler(node, a, t, name)

    def _shape_after(self, layer: Layer, t: ChainTensor) -> ChainTensor:
        try:
            per = layer.output_shape(t.shape[1:])
        except ValueError as exc:
            self.fail(str(exc))
        return ChainTensor((t.shape[0], *per))

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

    def _vector(self, t: ChainTensor, op: str) -> int:
        if len(t.shape) != 2:
            self.fail(f"{op} needs an (N, F) vector, got a tensor of shape {list(t.shape)}; "
                      "Flatten or Reshape first")
        return t.shape[1]

    def _linear(self, weight: np.ndarray, bias: np.ndarray, t: ChainTensor, name: str) -> ChainTensor:
        o, f = weight.shape
        layer = Linear(in_features=f, out_features=o)
        layer.params = {"weight": weight, "bias": bias}
        self.out.add(layer, name, foldable=True)
        return ChainTensor((t.shape[0], o))

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
        target = reshape_target(t.shape, self.const(node.input[1], "shape"), a.get("allowzero", 0), self.fail)
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
        self._vector(t, node.op_type)      # checks an (N, F) vector
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

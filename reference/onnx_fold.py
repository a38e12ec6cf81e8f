"""Constant folding of an ONNX graph: the value of a node whose inputs are all constant.

PyTorch writes shapes as computations (``x.view(x.size(0), -1)`` becomes ``Shape ->
Gather -> Unsqueeze -> Concat -> Reshape``) and ImageNet graphs make weights with
``ConstantOfShape``: the importer evaluates every node in :data:`FOLDED` whose inputs
are known at import time (:func:`fold_value`). :func:`reshape_target` is ONNX's
``Reshape`` shape rule, for a folded ``Reshape`` and for one on the chain.
"""

from __future__ import annotations

import math

import numpy as np

from .network import MAX_PARAMS
from .onnx_load import read_tensor

__all__ = ["FOLDED", "fold_value", "reshape_target"]

FOLDED = ("Constant", "ConstantOfShape", "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Reshape",
          "Transpose", "Identity", "Add", "Sub", "Mul", "Div", "Sqrt", "Neg", "Flatten")


def fold_value(op: str, a: dict, ins: list, fail) -> np.ndarray:
    """The output of one :data:`FOLDED` node on constant inputs.

    Parameters
    ----------
    op : str
        The node's op type, one of :data:`FOLDED`.
    a : dict
        Its attributes, name -> value (``onnx.helper.get_attribute_value``).
    ins : list of np.ndarray or None
        Its inputs' values (None for an omitted optional input).
    fail : callable
        ``fail(problem)`` raises the :class:`ConvcError` naming the node.
    """
    if op == "Constant":
        if "value" in a:
            return read_tensor(a["value"], fail)
        for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                           ("value_int", np.int64), ("value_ints", np.int64)):
            if key in a:
                return np.array(a[key], dtype=dtype)
        fail(f"Constant with attributes {sorted(a)} is not supported (value, value_float(s), value_int(s))")
    if op == "ConstantOfShape":
        shape = [int(v) for v in ins[0].reshape(-1)]
        if any(v < 0 for v in shape) or math.prod(shape) > MAX_PARAMS:
            fail(f"shape {shape} is not a valid constant shape")
        fill = read_tensor(a["value"], fail).reshape(-1) if "value" in a else np.zeros(1, np.float32)
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
        from onnx import helper  # optional tool: convc.optional
        return ins[0].astype(helper.tensor_dtype_to_np_dtype(a["to"]))
    if op == "Reshape":
        return ins[0].reshape(reshape_target(ins[0].shape, ins[1], a.get("allowzero", 0), fail))
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


def reshape_target(shape, target, allowzero, fail) -> tuple[int, ...]:
    """The shape ONNX's ``Reshape`` gives a tensor of ``shape`` for ``target``.

    Parameters
    ----------
    shape : tuple of int
        The input's shape.
    target : array-like of int
        The ``shape`` input: ``0`` copies the input's dimension (unless ``allowzero``),
        one ``-1`` takes what is left.
    allowzero : int
        The attribute: a ``0`` is a zero-size dimension.
    fail : callable
        ``fail(problem)`` raises the :class:`ConvcError` naming the node.
    """
    dims = [int(v) for v in np.asarray(target).reshape(-1)]
    out = []
    for i, d in enumerate(dims):
        if d == 0 and not allowzero:
            if i >= len(shape):
                fail(f"shape {dims}: a 0 at position {i} copies a dimension the input lacks")
            out.append(int(shape[i]))
        else:
            out.append(d)
    if out.count(-1) > 1:
        fail(f"shape {dims} has more than one -1")
    total = math.prod(shape)
    if -1 in out:
        known = math.prod(v for v in out if v != -1)
        if known == 0 or total % known:
            fail(f"shape {dims} does not fit {total} values")
        out[out.index(-1)] = total // known
    if math.prod(out) != total or any(v < 0 for v in out):
        fail(f"shape {dims} does not fit the input of shape {list(shape)}")
    return tuple(out)

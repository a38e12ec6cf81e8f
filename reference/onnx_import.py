"""ONNX import: a ``.onnx`` graph -> a reference :class:`~convc.reference.network.Network`.

:func:`import_onnx` is the entry point; :func:`random_constants` and
:func:`with_input_side` prepare the ``onnx`` wheel's graphs for the tests and benches.
The import itself is in phases, one module each:

- :mod:`convc.reference.onnx_load`: the ``onnx`` module, the file, its opset and
  tensors; what a graph may hold (``SUPPORTED``, ``OPSETS``);
- :mod:`convc.reference.onnx_fold`: constant folding of the nodes on constants
  (``FOLDED``: ``ConstantOfShape``, the ``Shape -> Gather -> Unsqueeze -> Concat``
  chain of ``x.view(x.size(0), -1)``, ...);
- :mod:`convc.reference.onnx_graph`: the graph read as a chain over its one
  non-constant input, ``(1, C, H, W)`` maps or a ``(1, F)`` vector, and the network
  built from it;
- :mod:`convc.reference.onnx_ops`: each operator on the chain -> convc layers (its
  docstring has the table).

Anything else (another op, a branch, a dilation, a non-square kernel, asymmetric pads,
a batch other than 1, a dynamic size without ``input_shape``, an opset outside
``OPSETS``) is refused with one :class:`ConvcError` naming the file, the node and the
field.

``onnx`` is an optional tool (the ``onnx`` extra): it is imported where used.
"""

from __future__ import annotations

import math

import numpy as np

from convc.errors import ConvcError

from .network import InputSpec, Network
from .onnx_load import load_onnx, require_onnx
from .onnx_ops import Importer

__all__ = ["import_onnx", "random_constants", "with_input_side"]


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
    importer = Importer(model, where, input_shape, any_batch)
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
    from onnx import numpy_helper  # optional tool: convc.optional

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

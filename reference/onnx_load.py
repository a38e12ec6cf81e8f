"""Reading and checking an ONNX file: the ``onnx`` module, the file, its opset, its tensors.

What convc reads from a graph: the operators it translates (:data:`SUPPORTED`, see
:mod:`convc.reference.onnx_ops`) and the default-domain opsets (:data:`OPSETS`).
Every failure is one :class:`ConvcError` naming the file (and the field).

``onnx`` is an optional tool (the ``onnx`` extra): it is imported where used.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from convc.errors import ConvcError

__all__ = ["SUPPORTED", "OPSETS", "MAX_FILE_BYTES", "require_onnx", "load_onnx", "opset_of", "read_tensor"]

SUPPORTED = ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "Relu", "Tanh", "Abs", "LRN", "Gemm",
             "MatMul", "Add", "BatchNormalization", "Flatten", "Reshape", "Dropout", "Identity", "Softmax",
             "LogSoftmax", "Constant")
OPSETS = (6, None)   # oldest default-domain opset read; None: the newest the installed onnx knows
MAX_FILE_BYTES = 4 << 30


def require_onnx():
    """The ``onnx`` module, or one message saying how to install it."""
    try:
        import onnx  # optional tool: convc.optional
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
        from onnx.external_data_helper import load_external_data_for_model  # optional tool: convc.optional
        try:
            load_external_data_for_model(model, str(path.parent))
        except Exception as exc:   # OSError, ValueError, onnx's ValidationError
            raise ConvcError(f"{path}: external data of initializer {external[0]!r} cannot be read "
                             f"({type(exc).__name__}: {exc})") from None
    return model


def opset_of(model, where: str) -> int:
    """The default-domain opset ``model`` imports, checked against :data:`OPSETS`.

    Parameters
    ----------
    model : onnx.ModelProto
    where : str
        The file (or model) name the message starts with.
    """
    onnx = require_onnx()
    versions = {o.domain: o.version for o in model.opset_import}
    version = versions.get("", versions.get("ai.onnx"))
    newest = onnx.defs.onnx_opset_version()
    if version is None:
        raise ConvcError(f"{where}: field 'opset_import' names no default-domain opset")
    if not OPSETS[0] <= version <= newest:
        raise ConvcError(f"{where}: field 'opset_import': opset {version} is not supported "
                         f"(convc reads opsets {OPSETS[0]} to {newest})")
    return version


def read_tensor(proto, fail) -> np.ndarray:
    """The values of a ``TensorProto`` (an initializer or a ``Constant``'s value).

    Parameters
    ----------
    proto : onnx.TensorProto
    fail : callable
        ``fail(problem)`` raises the :class:`ConvcError` naming the node.
    """
    from onnx import numpy_helper  # optional tool: convc.optional
    try:
        return np.array(numpy_helper.to_array(proto))
    except Exception as exc:
        fail(f"tensor {proto.name!r} cannot be read ({type(exc).__name__}: {exc})")

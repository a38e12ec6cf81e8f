"""``model.npz``: the file the trainer writes and the compiler reads.

Format (version 1): a NumPy ``.npz`` archive (a zip of ``.npy`` arrays, read
with ``allow_pickle=False``) holding

``graph``
    uint8 array: the UTF-8 bytes of one JSON object::

        {"format": "convc-model", "version": 1,
         "name": "lenet",
         "input": {"shape": [C, H, W], "mean": [...], "std": [...]},
         "classes": 10,
         "layers": [{"name": "conv1", "type": "conv2d",
                     "attrs": {"in_channels": 1, ...}}, ...],
         "meta": {...}}

``<layer name>.<param>``
    one float32 (or float64) array per trainable parameter, e.g.
    ``conv1.weight`` of shape ``(out, in, K, K)``.

:func:`load_model` checks everything and raises :class:`ConvcError` with the
file name and the field or layer at fault; :func:`save_model` writes to a
temporary file first so that a failed write never leaves half a model.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from convc.errors import ConvcError

from .network import InputSpec, Network, build_layer

__all__ = ["FORMAT", "VERSION", "save_model", "load_model", "network_from_graph"]

FORMAT = "convc-model"
VERSION = 1
_FLOAT_DTYPES = (np.float32, np.float64)


def save_model(net: Network, path: str | os.PathLike) -> Path:
    """Write ``net`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    graph = {"format": FORMAT, "version": VERSION, **net.graph_json()}
    arrays = {"graph": np.frombuffer(json.dumps(graph).encode("utf-8"), dtype=np.uint8)}
    for key, value in net.arrays().items():
        arrays[key] = np.ascontiguousarray(value, dtype=np.float32)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ConvcError(f"{path}: folder {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _read_archive(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise ConvcError(f"{path}: no such file")
    if path.is_dir():
        raise ConvcError(f"{path}: is a folder, not a model file")
    if not zipfile.is_zipfile(path):
        raise ConvcError(f"{path}: not a convc model (not an .npz archive, or truncated)")
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                try:
                    arrays[key] = data[key]
                except ValueError as exc:
                    if "pickle" in str(exc).lower():
                        raise ConvcError(f"{path}: array {key!r} holds Python objects; "
                                         "convc never loads pickled data") from None
                    raise ConvcError(f"{path}: array {key!r} cannot be read ({exc})") from None
    except ConvcError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as exc:
        raise ConvcError(f"{path}: not a readable .npz archive, perhaps truncated ({exc})") from None
    return arrays


def _parse_graph(path: Path, raw: np.ndarray | None) -> dict:
    if raw is None:
        raise ConvcError(f"{path}: no 'graph' entry; this is an .npz file but not a convc model")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ConvcError(f"{path}: field 'graph' must be a 1-D uint8 array of JSON bytes, "
                         f"got {raw.dtype} with shape {raw.shape}")
    try:
        graph = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConvcError(f"{path}: field 'graph' is not valid JSON ({exc})") from None
    if not isinstance(graph, dict):
        raise ConvcError(f"{path}: field 'graph' must be a JSON object")
    if graph.get("format") != FORMAT:
        raise ConvcError(f"{path}: field 'format' is {graph.get('format')!r}, expected {FORMAT!r}")
    version = graph.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConvcError(f"{path}: field 'version' must be an integer, got {version!r}")
    if version > VERSION:
        raise ConvcError(f"{path}: format version {version} is newer than this convc reads "
                         f"(up to {VERSION}); upgrade convc")
    if version < 1:
        raise ConvcError(f"{path}: field 'version' must be >= 1, got {version}")
    return graph


def network_from_graph(graph: dict, where: str) -> Network:
    """Build a :class:`Network` (without weights) from a graph dictionary.

    ``where`` prefixes every message (a file name or ``"spec x.json"``).
    Used for model files and for user architecture specs alike.
    """
    for key, kind in (("input", dict), ("layers", list)):
        if not isinstance(graph.get(key), kind):
            raise ConvcError(f"{where}: field {key!r} must be a JSON {kind.__name__}")
    inp = graph["input"]
    try:
        spec = InputSpec(shape=tuple(inp.get("shape", ())), mean=list(inp.get("mean", [])),
                         std=list(inp.get("std", [])))
    except (TypeError, ValueError) as exc:
        raise ConvcError(f"{where}: field 'input': {exc}") from None
    classes = graph.get("classes", 0)
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 0:
        raise ConvcError(f"{where}: field 'classes' must be a non-negative integer, got {classes!r}")
    if not graph["layers"]:
        raise ConvcError(f"{where}: field 'layers' is empty")
    layers, names = [], []
    shape = spec.shape
    for i, entry in enumerate(graph["layers"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise ConvcError(f"{where}: layer {i}: must be an object with a string 'type'")
        name = entry.get("name", f"layer{i}")
        if not isinstance(name, str) or not name or "." in name or name == "graph":
            raise ConvcError(f"{where}: layer {i}: bad name {name!r} (non-empty, no '.', not 'graph')")
        if name in names:
            raise ConvcError(f"{where}: layer {i}: name {name!r} is used twice")
        attrs = entry.get("attrs", {})
        if not isinstance(attrs, dict):
            raise ConvcError(f"{where}: layer {i} {name!r}: 'attrs' must be a JSON object")
        attrs = _infer_sizes(entry["type"], dict(attrs), shape)
        try:
            layer = build_layer(entry["type"], attrs, f"layer {i} {name!r}")
            shape = tuple(layer.output_shape(shape))
        except ValueError as exc:
            msg = str(exc)
            if not msg.startswith("layer "):
                msg = f"layer {i} {name!r}: {msg}"
            raise ConvcError(f"{where}: {msg}") from None
        layers.append(layer)
        names.append(name)
    meta = graph.get("meta", {})
    if not isinstance(meta, dict):
        raise ConvcError(f"{where}: field 'meta' must be a JSON object")
    name = graph.get("name", "network")
    try:
        return Network(spec, layers, names, name=str(name), classes=classes, meta=meta)
    except ValueError as exc:
        raise ConvcError(f"{where}: {exc}") from None


def _infer_sizes(type_name: str, attrs: dict, shape: tuple[int, ...]) -> dict:
    """Fill input sizes a spec may leave out (they follow from the previous layer)."""
    if type_name == "conv2d" and "in_channels" not in attrs and len(shape) == 3:
        attrs["in_channels"] = shape[0]
    if type_name == "linear" and "in_features" not in attrs and len(shape) == 1:
        attrs["in_features"] = shape[0]
    return attrs


def load_model(path: str | os.PathLike) -> Network:
    """Read and validate a model file; every problem is a :class:`ConvcError`."""
    path = Path(path)
    arrays = _read_archive(path)
    graph = _parse_graph(path, arrays.pop("graph", None))
    net = network_from_graph(graph, str(path))
    expected = {}
    for lname, layer in zip(net.names, net.layers):
        for pname, shape in layer.param_shapes().items():
            expected[f"{lname}.{pname}"] = (lname, layer, pname, tuple(shape))
    missing = [k for k in expected if k not in arrays]
    if missing:
        raise ConvcError(f"{path}: missing weight array(s) {', '.join(missing)}")
    extra = sorted(k for k in arrays if k not in expected)
    if extra:
        raise ConvcError(f"{path}: unexpected array(s) {', '.join(extra)} (no layer has such a parameter)")
    for key, (lname, layer, pname, shape) in expected.items():
        value = arrays[key]
        if value.dtype.type not in _FLOAT_DTYPES:
            raise ConvcError(f"{path}: layer {lname!r} field {pname!r}: dtype {value.dtype}, "
                             "expected float32 or float64")
        if value.shape != shape:
            raise ConvcError(f"{path}: layer {lname!r} field {pname!r}: shape {list(value.shape)}, "
                             f"expected {list(shape)}")
        bad = ~np.isfinite(value)
        if bad.any():
            where = tuple(int(v) for v in np.argwhere(bad)[0])
            raise ConvcError(f"{path}: layer {lname!r} field {pname!r}: {int(bad.sum())} value(s) "
                             f"are NaN or infinite (first at index {list(where)})")
        layer.params[pname] = value.astype(np.float32)
        layer.grads[pname] = np.zeros_like(layer.params[pname])
    for lname, layer in zip(net.names, net.layers):
        mask_fn = getattr(layer, "connection_mask", None)
        if mask_fn is not None and getattr(layer, "table", None) is not None:
            outside = layer.params["weight"][~mask_fn()]
            if np.any(outside != 0):
                raise ConvcError(f"{path}: layer {lname!r} field 'weight': nonzero weights for input "
                                 "maps that its connection table does not read")
    return net

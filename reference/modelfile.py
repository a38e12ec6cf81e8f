"""``model.npz``: the file the trainer writes and the compiler reads.

Format (version 2; version 1 files still load): a NumPy ``.npz`` archive (a zip of ``.npy`` arrays, read
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

    A chain (each layer reads the one before it) is written as version 1. A graph is
    version 2: each layer may name its ``inputs`` (earlier layer names, or ``"input"``;
    default the layer before it) and may ``share`` the parameters of an earlier layer of
    the same type and attributes (its arrays are stored once, under the owner's name)::

        {"name": "conv1_s2", "type": "conv2d", "attrs": {...},
         "inputs": ["pyr1"], "share": "conv1"}

    Layers are listed after their inputs; the network's output is the last layer's.
    Multi-input layers (``concat``) exist only in version 2.

``meta`` records what ``convc train`` knew: ``dataset`` (its name), ``data_dir`` (the
absolute folder of its files, or null), ``data_seed`` (the seed that makes the same
splits again), ``train`` (the settings) and the accuracies. ``convc compile``
calibrates on that dataset's training split, ``convc compare`` and ``convc verify``
use its test split (:func:`convc.inputs.model_inputs`).

Limits: JSON nested at most :data:`MAX_DEPTH` levels, and the sizes of
:mod:`convc.reference.network` (``MAX_PARAMS`` and others), checked from the
headers before any array is read.

``<layer name>.<param>``
    one float32 (or float64) array per trainable parameter, e.g.
    ``conv1.weight`` of shape ``(out, in, K, K)``.

:func:`load_model` checks everything and raises :class:`ConvcError` with the
file name and the field or layer at fault; :func:`save_model` writes to a
temporary file first so that a failed write never leaves half a model.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from convc.errors import ConvcError
from convc.inputs import read_npy_header, write_atomic

from .layers import MULTI_INPUT_TYPES
from .network import MAX_PARAMS, MAX_VALUES, InputSpec, Network, build_layer, check_sizes
from .onnx_import import import_onnx

__all__ = ["FORMAT", "VERSION", "MAX_DEPTH", "MAX_GRAPH_BYTES", "save_model", "load_model", "network_from_graph", "parse_json",
           "check_depth"]

FORMAT = "convc-model"
VERSION = 2             # the newest this reads; a chain is still written as version 1
MAX_DEPTH = 64          # nesting of a graph, spec or meta JSON object
MAX_GRAPH_BYTES = 64 << 20
_FLOAT_DTYPES = (np.float32, np.float64)


def check_depth(obj, where: str, limit: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` levels (walked without recursion)."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise ConvcError(f"{where}: JSON nested more than {limit} levels deep")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def parse_json(text: str, where: str):
    """``json.loads`` with every failure (syntax, nesting) a :class:`ConvcError` naming ``where``."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConvcError(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ConvcError(f"{where}: JSON nested too deeply (more than {MAX_DEPTH} levels are refused)") from None
    check_depth(obj, where)
    return obj


def save_model(net: Network, path: str | os.PathLike) -> Path:
    """Write ``net`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    graph = {"format": FORMAT, "version": 1 if net.is_chain else VERSION, **net.graph_json()}
    arrays = {"graph": np.frombuffer(json.dumps(graph).encode("utf-8"), dtype=np.uint8)}
    for key, value in net.arrays().items():
        arrays[key] = np.ascontiguousarray(value, dtype=np.float32)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ConvcError(f"{path}: folder {directory} does not exist")
    if path.is_dir():
        raise ConvcError(f"{path}: is a folder; name a model file to write")
    return write_atomic(path, lambda fh: np.savez(fh, **arrays), option="")


def _read_archive(path: Path, keys) -> dict[str, np.ndarray]:
    """Load the arrays ``keys`` of the archive (each header already checked)."""
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in keys:
                if key not in data.files:
                    continue
                try:
                    arrays[key] = data[key]
                except ValueError as exc:
                    if "pickle" in str(exc).lower():
                        raise ConvcError(f"{path}: array {key!r} holds Python objects; "
                                         "convc never loads pickled data") from None
                    raise ConvcError(f"{path}: array {key!r} cannot be read ({exc})") from None
    except ConvcError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, NotImplementedError) as exc:
        raise ConvcError(f"{path}: not a readable .npz archive, perhaps truncated ({exc})") from None
    return arrays


def _archive_headers(path: Path) -> dict[str, tuple | None]:
    """Every member's ``.npy`` header, ``{name: (shape, dtype) or None}``, read before any
    array is loaded: a header that declares more values than the member holds, or more than
    a model may have, is refused here instead of allocating it. (None: a header version this
    reads not, left to ``np.load``.)"""
    if not path.exists():
        raise ConvcError(f"{path}: no such file")
    if path.is_dir():
        raise ConvcError(f"{path}: is a folder, not a model file")
    if not zipfile.is_zipfile(path):
        raise ConvcError(f"{path}: not a convc model (not an .npz archive, or truncated)")
    headers: dict[str, tuple | None] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > 100_000:
                raise ConvcError(f"{path}: {len(infos):,} arrays; not a convc model")
            for info in infos:
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with zf.open(info) as fh:
                    try:
                        _, head = read_npy_header(fh)
                        if head is None:
                            headers[key] = None
                            continue
                        shape, dtype = head
                    except ConvcError:
                        raise
                    except Exception as exc:      # numpy parses the header with tokenize and literal_eval: any error
                        raise ConvcError(f"{path}: array {key!r} has no readable .npy header ({exc})") from None
                count = math.prod(int(v) for v in shape)
                if dtype.hasobject:
                    raise ConvcError(f"{path}: array {key!r} holds Python objects; convc never loads pickled data")
                if count > 4 * MAX_PARAMS:
                    raise ConvcError(f"{path}: array {key!r} declares shape {list(shape)}, {count:,} values, "
                                     f"beyond any convc model")
                if count * dtype.itemsize > info.file_size:
                    raise ConvcError(f"{path}: array {key!r} declares shape {list(shape)} "
                                     f"({count * dtype.itemsize:,} bytes) but holds {info.file_size:,} bytes: "
                                     "truncated or damaged")
                headers[key] = (tuple(int(v) for v in shape), dtype)
    except ConvcError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, KeyError,
            NotImplementedError) as exc:
        raise ConvcError(f"{path}: not a readable .npz archive, perhaps truncated ({exc})") from None
    return headers


def _parse_graph(path: Path, raw: np.ndarray | None) -> dict:
    if raw is None:
        raise ConvcError(f"{path}: no 'graph' entry; this is an .npz file but not a convc model")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ConvcError(f"{path}: field 'graph' must be a 1-D uint8 array of JSON bytes, "
                         f"got {raw.dtype} with shape {raw.shape}")
    try:
        text = raw.tobytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConvcError(f"{path}: field 'graph' is not valid JSON ({exc})") from None
    graph = parse_json(text, f"{path}: field 'graph'")
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
    check_depth(graph, where)
    for key, kind in (("input", dict), ("layers", list)):
        if not isinstance(graph.get(key), kind):
            raise ConvcError(f"{where}: field {key!r} must be a JSON {kind.__name__}")
    inp = graph["input"]
    if not isinstance(inp.get("shape"), list):
        raise ConvcError(f"{where}: field 'input.shape' must be a list [C, H, W], got {inp.get('shape')!r}")
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
    version = graph.get("version", VERSION)
    layers, names, inputs, shares = [], [], [], []
    shapes = {"input": spec.shape}
    for i, entry in enumerate(graph["layers"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise ConvcError(f"{where}: layer {i}: must be an object with a string 'type'")
        name = entry.get("name", f"layer{i}")
        if not isinstance(name, str) or not name or "." in name or name in ("graph", "input"):
            raise ConvcError(f"{where}: layer {i}: bad name {name!r} (non-empty, no '.', not 'graph' or 'input')")
        if name in names:
            raise ConvcError(f"{where}: layer {i}: name {name!r} is used twice")
        attrs = entry.get("attrs", {})
        if not isinstance(attrs, dict):
            raise ConvcError(f"{where}: layer {i} {name!r}: 'attrs' must be a JSON object")
        graph_keys = [k for k in ("inputs", "share") if k in entry]
        if graph_keys and version < 2:
            raise ConvcError(f"{where}: layer {i} {name!r}: field {graph_keys[0]!r} needs format version 2 "
                             f"(this graph says version {version})")
        ins = entry.get("inputs", ["input" if i == 0 else names[-1]])
        if not isinstance(ins, list) or not ins or not all(isinstance(v, str) for v in ins):
            raise ConvcError(f"{where}: layer {i} {name!r}: field 'inputs' must be a non-empty list of layer "
                             f"names, got {ins!r}")
        for v in ins:
            if v not in shapes:
                raise ConvcError(f"{where}: layer {i} {name!r}: field 'inputs' names {v!r}, which is not "
                                 f"{'an earlier layer' if v in [e.get('name') for e in graph['layers'] if isinstance(e, dict)] else 'a layer of the graph'} "
                                 "(list every layer after its inputs; 'input' is the network input)")
        share = entry.get("share")
        if share is not None and (not isinstance(share, str) or share not in names):
            raise ConvcError(f"{where}: layer {i} {name!r}: field 'share' must name an earlier layer, got {share!r}")
        if entry["type"] in MULTI_INPUT_TYPES and version < 2:
            raise ConvcError(f"{where}: layer {i} {name!r}: type {entry['type']!r} takes several inputs; "
                             "a chain of layers (format version 1) cannot hold it")
        in_shapes = [shapes[v] for v in ins]
        attrs = _infer_sizes(entry["type"], dict(attrs), in_shapes[0])
        try:
            check_sizes(entry["type"], attrs, f"layer {i} {name!r}")
            layer = build_layer(entry["type"], attrs, f"layer {i} {name!r}")
            if len(ins) > 1 and not layer.multi_input:
                raise ValueError(f"{entry['type']} takes one input, field 'inputs' names {len(ins)}")
            shape = tuple(layer.output_shape(in_shapes if layer.multi_input else in_shapes[0]))
        except ValueError as exc:
            msg = str(exc)
            if not msg.startswith("layer "):
                msg = f"layer {i} {name!r}: {msg}"
            raise ConvcError(f"{where}: {msg}") from None
        values = math.prod(shape)
        if values > MAX_VALUES:
            raise ConvcError(f"{where}: layer {i} {name!r}: output {list(shape)} holds {values:,} values, "
                             f"beyond the limit of {MAX_VALUES:,} per sample")
        layers.append(layer)
        names.append(name)
        inputs.append(list(ins))
        shares.append(share)
        shapes[name] = shape
    meta = graph.get("meta", {})
    if not isinstance(meta, dict):
        raise ConvcError(f"{where}: field 'meta' must be a JSON object")
    if len(layers) > 10_000:
        raise ConvcError(f"{where}: field 'layers' holds {len(layers):,} layers, beyond the limit of 10,000")
    name = graph.get("name", "network")
    try:
        return Network(spec, layers, names, name=str(name), classes=classes, meta=meta, inputs=inputs,
                       shares=shares)
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
    """Read and validate a model file; every problem is a :class:`ConvcError`.

    A ``.onnx`` file is imported (:func:`convc.reference.onnx_import.import_onnx`, batch 1,
    identity normalization); ``convc import`` writes it as a model file with options.
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        net = import_onnx(path)
        net.path = str(path)
        return net
    headers = _archive_headers(path)
    head = headers.get("graph")
    if head is not None and (head[1] != np.uint8 or len(head[0]) != 1 or head[0][0] > MAX_GRAPH_BYTES):
        raise ConvcError(f"{path}: field 'graph' must be a 1-D uint8 array of JSON bytes (at most "
                         f"{MAX_GRAPH_BYTES >> 20} MiB), got {head[1]} with shape {list(head[0])}")
    graph = _parse_graph(path, _read_archive(path, ["graph"]).get("graph"))
    net = network_from_graph(graph, str(path))
    net.path = str(path)
    expected = {}
    for lname, layer, share in zip(net.names, net.layers, net.shares):
        if share is not None:
            continue                       # stored once, under the owner's name
        for pname, shape in layer.param_shapes().items():
            expected[f"{lname}.{pname}"] = (lname, layer, pname, tuple(shape))
    missing = [k for k in expected if k not in headers]
    if missing:
        raise ConvcError(f"{path}: missing weight array(s) {', '.join(missing)}")
    extra = sorted(k for k in headers if k not in expected and k != "graph")
    if extra:
        raise ConvcError(f"{path}: unexpected array(s) {', '.join(extra)} (no layer has such a parameter)")

    def check(lname, pname, shape, dtype, got):
        if dtype.type not in _FLOAT_DTYPES:
            raise ConvcError(f"{path}: layer {lname!r} field {pname!r}: dtype {dtype}, "
                             "expected float32 or float64")
        if got != shape:
            raise ConvcError(f"{path}: layer {lname!r} field {pname!r}: shape {list(got)}, "
                             f"expected {list(shape)}")

    for key, (lname, layer, pname, shape) in expected.items():      # from the headers: nothing loaded yet
        if headers[key] is not None:
            check(lname, pname, shape, headers[key][1], headers[key][0])
    arrays = _read_archive(path, list(expected))
    for key, (lname, layer, pname, shape) in expected.items():
        value = arrays[key]
        check(lname, pname, shape, value.dtype, value.shape)
        bad = ~np.isfinite(value)
        if bad.any():
            where = tuple(int(v) for v in np.argwhere(bad)[0])
            raise ConvcError(f"{path}: layer {lname!r} field {pname!r}: {int(bad.sum())} value(s) "
                             f"are NaN or infinite (first at index {list(where)})")
        layer.params[pname] = value.astype(np.float32)
        layer.grads[pname] = np.zeros_like(layer.params[pname])
    net.tie_params()
    for lname, layer in zip(net.names, net.layers):
        mask_fn = getattr(layer, "connection_mask", None)
        if mask_fn is not None and getattr(layer, "table", None) is not None:
            outside = layer.params["weight"][~mask_fn()]
            if np.any(outside != 0):
                raise ConvcError(f"{path}: layer {lname!r} field 'weight': nonzero weights for input "
                                 "maps that its connection table does not read")
    return net

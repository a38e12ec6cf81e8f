"""A network: an input description and an ordered chain of layers.

The network is what ``model.npz`` stores (see :mod:`convc.reference.modelfile`)
and what the compiler lowers. It owns the input normalization so that the
float reference, the golden model and the hardware all see the same input:

    x_norm[c] = (x_raw[c] - mean[c]) / std[c]

Shapes are per sample: ``(C, H, W)`` for maps and ``(F,)`` for vectors; a
batch adds a leading ``N``.
"""

from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from .layers import LAYER_TYPES, MULTI_INPUT_TYPES, Layer

__all__ = ["INPUT", "InputSpec", "LayerInfo", "Network", "build_layer", "check_sizes", "MAX_SIDE", "MAX_CHANNELS",
           "MAX_FEATURES", "MAX_VALUES", "MAX_PARAMS"]

# What one machine can hold: a network beyond these is refused before anything is allocated.
MAX_SIDE = 16384            # input height or width, kernel, stride, padding
MAX_CHANNELS = 65536        # maps of an input or a convolution
MAX_FEATURES = 1 << 24      # inputs or outputs of a linear layer
MAX_VALUES = 1 << 27        # values of one sample's input or of one layer's output (512 MiB float32)
MAX_PARAMS = 1 << 28        # parameters of one layer (1 GiB float32)

#: The name a layer's ``inputs`` use for the network input.
INPUT = "input"

_SIZE_LIMITS = {"in_channels": MAX_CHANNELS, "out_channels": MAX_CHANNELS, "in_features": MAX_FEATURES,
                "out_features": MAX_FEATURES, "kernel": MAX_SIDE, "stride": MAX_SIDE, "padding": MAX_SIDE}


def _whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_sizes(type_name: str, attrs: dict, where: str) -> None:
    """Refuse a size attribute beyond what a machine holds (before the layer allocates).

    Raises ``ValueError`` naming ``where``, the field and the limit.
    """
    for key, limit in _SIZE_LIMITS.items():
        value = attrs.get(key)
        if _whole(value) and value > limit:
            raise ValueError(f"{where}: {key} {value:,} is beyond the limit of {limit:,}")
    sizes = [attrs.get(k) for k in (("in_channels", "out_channels", "kernel") if type_name == "conv2d" else
                                    ("in_features", "out_features") if type_name == "linear" else ())]
    if sizes and all(_whole(v) for v in sizes):
        params = math.prod(sizes) * (sizes[-1] if type_name == "conv2d" else 1)
        if params > MAX_PARAMS:
            raise ValueError(f"{where}: {params:,} weights, beyond the limit of {MAX_PARAMS:,} per layer")


@dataclass
class InputSpec:
    """The network input: per-sample shape and per-channel normalization.

    Parameters
    ----------
    shape : tuple of int
        ``(C, H, W)``.
    mean, std : list of float
        One value per channel; ``std`` entries must be positive.
    """

    shape: tuple[int, ...]
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    def __post_init__(self):
        shape = list(self.shape)
        if len(shape) != 3 or not all(_whole(v) and v > 0 for v in shape):
            raise ValueError(f"input shape must be three positive whole numbers (C, H, W), got {shape}")
        self.shape = tuple(int(v) for v in shape)
        c, h, w = self.shape
        if c > MAX_CHANNELS or max(h, w) > MAX_SIDE or c * h * w > MAX_VALUES:
            raise ValueError(f"input shape {shape} is beyond the limits ({MAX_CHANNELS:,} channels, "
                             f"{MAX_SIDE:,} pixels a side, {MAX_VALUES:,} values)")
        channels = self.shape[0]
        if not self.mean:
            self.mean = [0.0] * channels
        if not self.std:
            self.std = [1.0] * channels
        for name in ("mean", "std"):
            values = getattr(self, name)
            if not isinstance(values, (list, tuple)) or not all(
                    isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in values):
                raise ValueError(f"input {name} must be a list of numbers, got {values!r}")
        self.mean = [float(v) for v in self.mean]
        self.std = [float(v) for v in self.std]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != channels:
                raise ValueError(f"input {name} must have one value per channel ({channels}), got {len(values)}")
            if not all(np.isfinite(values)):
                raise ValueError(f"input {name} has a value that is not finite: {values}")
        if any(v <= 0 for v in self.std):
            raise ValueError(f"input std must be positive, got {self.std}")

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """Apply ``(x - mean[c]) / std[c]`` to a batch ``(N, C, H, W)``."""
        mean = np.asarray(self.mean, dtype=x.dtype).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, dtype=x.dtype).reshape(1, -1, 1, 1)
        return (x - mean) / std

    def to_json(self) -> dict:
        return {"shape": list(self.shape), "mean": self.mean, "std": self.std}


@dataclass(frozen=True)
class LayerInfo:
    """What ``convc info`` prints for one layer."""

    index: int
    name: str
    type: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: int
    macs: int
    inputs: tuple[str, ...] = ()
    share: str | None = None


def build_layer(type_name: str, attrs: dict, where: str) -> Layer:
    """Instantiate a layer from its type name and attributes.

    Raises ``ValueError`` naming ``where`` (e.g. ``"layer 3 'conv2'"``) for an
    unknown type or bad attributes.
    """
    cls = LAYER_TYPES.get(type_name) or MULTI_INPUT_TYPES.get(type_name)
    if cls is None:
        raise ValueError(
            f"{where}: unknown layer type {type_name!r}; supported: "
            f"{', '.join(sorted([*LAYER_TYPES, *MULTI_INPUT_TYPES]))}"
        )
    try:
        return cls(**attrs)
    except TypeError as exc:
        allowed = [p for p in inspect.signature(cls).parameters]
        raise ValueError(
            f"{where} ({type_name}): bad attributes {sorted(attrs)}; allowed: {allowed} ({exc})"
        ) from None
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


class Network:
    """A graph of layers with a named input: a chain, or a DAG whose layers name their inputs.

    Layers are kept in an order where every layer comes after its inputs (the file order);
    the network's output is the last layer's. A layer may *share* the parameters of an
    earlier layer of the same type and attributes (a multiscale net runs one trunk on each
    level of a pyramid): its ``params`` is the other's dictionary, its gradients are added
    to the other's in :meth:`param_groups`, and a model file stores the arrays once.

    Parameters
    ----------
    input : InputSpec
    layers : list of Layer
    names : list of str, optional
        One unique name per layer (default ``"<type><k>"``).
    name : str
        Architecture name (``"lenet"``, ``"sceneparse"``, or the user's).
    classes : int
        Number of output classes.
    meta : dict
        Free-form JSON-able facts (dataset, training settings, accuracy).
    inputs : list of list of str, optional
        Per layer, the names of the layers it reads (:data:`INPUT` for the network input);
        default the chain: each layer reads the one before it.
    shares : list of (str or None), optional
        Per layer, the name of the earlier layer whose parameters it uses, or None.
    """

    def __init__(self, input: InputSpec, layers: list[Layer], names: list[str] | None = None,
                 name: str = "network", classes: int = 0, meta: dict | None = None,
                 inputs: list[list[str]] | None = None, shares: list[str | None] | None = None):
        self.path: str | None = None       # the model file it was read from, for messages
        self.input = input
        self.layers = list(layers)
        if names is None:
            counts: dict[str, int] = {}
            names = []
            for layer in self.layers:
                counts[layer.type] = counts.get(layer.type, 0) + 1
                names.append(f"{layer.type}{counts[layer.type]}")
        if len(names) != len(self.layers):
            raise ValueError("one name per layer is needed")
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique, got {names}")
        if INPUT in names:
            raise ValueError(f"no layer may be called {INPUT!r}: it names the network input")
        self.names = list(names)
        self.name = name
        self.classes = int(classes)
        self.meta = dict(meta or {})
        if inputs is None:
            inputs = [[INPUT if i == 0 else self.names[i - 1]] for i in range(len(self.layers))]
        if shares is None:
            shares = [None] * len(self.layers)
        if len(inputs) != len(self.layers) or len(shares) != len(self.layers):
            raise ValueError("one input list and one share entry per layer are needed")
        self.inputs = [list(v) for v in inputs]
        self.shares = list(shares)
        self._sources = self._resolve_inputs()
        self._check_shares()
        self.shapes = self._infer_shapes()

    # -- the graph ------------------------------------------------------------------
    def _resolve_inputs(self) -> list[list[int]]:
        """Per layer, the indices into :meth:`forward_all`'s list (0: the input, ``k + 1``:
        layer ``k``) of what it reads; refuses a name that is unknown or not earlier."""
        where = {INPUT: 0}
        out = []
        for i, (name, layer, ins) in enumerate(zip(self.names, self.layers, self.inputs)):
            if not ins or not all(isinstance(v, str) for v in ins):
                raise ValueError(f"layer {i} {name!r}: 'inputs' must be a non-empty list of layer names")
            for v in ins:
                if v not in where:
                    later = v in self.names
                    raise ValueError(f"layer {i} {name!r}: input {v!r} is " + (
                        "not an earlier layer (list every layer after its inputs)" if later else
                        f"not a layer of the network (nor {INPUT!r})"))
            if len(ins) > 1 and not layer.multi_input:
                raise ValueError(f"layer {i} {name!r}: {layer.type} takes one input, got {len(ins)}: {ins}")
            out.append([where[v] for v in ins])
            where[name] = i + 1
        return out

    def _check_shares(self) -> None:
        index = {n: i for i, n in enumerate(self.names)}
        for i, (name, owner) in enumerate(zip(self.names, self.shares)):
            if owner is None:
                continue
            j = index.get(owner)
            if j is None or j >= i:
                raise ValueError(f"layer {i} {name!r}: 'share' names {owner!r}, which is not an earlier layer")
            if self.shares[j] is not None:
                raise ValueError(f"layer {i} {name!r}: shares {owner!r}, which itself shares "
                                 f"{self.shares[j]!r}; name the owner {self.shares[j]!r}")
            a, b = self.layers[i], self.layers[j]
            if a.type != b.type or a.attrs() != b.attrs():
                raise ValueError(f"layer {i} {name!r}: shares the parameters of {owner!r}, but its type and "
                                 f"attributes differ ({a.type} {a.attrs()} vs {b.type} {b.attrs()})")
            if not b.param_shapes():
                raise ValueError(f"layer {i} {name!r}: shares {owner!r}, which has no parameters")

    @property
    def is_chain(self) -> bool:
        """True when every layer reads the one before it and none shares parameters (a
        model file of format version 1 holds it)."""
        return all(src == [i] for i, src in enumerate(self._sources)) and not any(self.shares)

    def sources(self, i: int) -> list[int]:
        """What layer ``i`` reads, as indices into :meth:`forward_all`'s list."""
        return list(self._sources[i])

    def owner(self, i: int) -> int:
        """The index of the layer whose parameters layer ``i`` uses (``i`` itself if it owns them)."""
        s = self.shares[i]
        return i if s is None else self.names.index(s)

    def _infer_shapes(self) -> list[tuple[int, ...]]:
        shapes = [self.input.shape]
        for i, (name, layer) in enumerate(zip(self.names, self.layers)):
            ins = [shapes[k] for k in self._sources[i]]
            try:
                shapes.append(tuple(layer.output_shape(ins if layer.multi_input else ins[0])))
            except ValueError as exc:
                raise ValueError(f"layer {i} {name!r}: {exc}") from None
            values = math.prod(shapes[-1])
            if values > MAX_VALUES:
                raise ValueError(f"layer {i} {name!r}: output {list(shapes[-1])} holds {values:,} values, "
                                 f"beyond the limit of {MAX_VALUES:,} per sample")
            params = sum(math.prod(s) for s in layer.param_shapes().values())
            if params > MAX_PARAMS:
                raise ValueError(f"layer {i} {name!r}: {params:,} parameters, beyond the limit of "
                                 f"{MAX_PARAMS:,} per layer")
        return shapes

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.shapes[-1]

    def in_shape(self, i: int) -> tuple[int, ...]:
        """The per-sample shape layer ``i`` reads (its first input's, for a multi-input layer)."""
        return self.shapes[self._sources[i][0]]

    def init_params(self, seed: int = 0, dtype=np.float32) -> None:
        rng = np.random.default_rng(seed)
        for layer, owner in zip(self.layers, self.shares):
            if owner is None:
                layer.init_params(rng, dtype)
        self.tie_params()

    def tie_params(self) -> None:
        """Point every sharing layer's ``params`` at its owner's (after weights are set)."""
        for i, layer in enumerate(self.layers):
            j = self.owner(i)
            if j != i:
                layer.params = self.layers[j].params
                layer.grads = {k: np.zeros_like(v) for k, v in layer.params.items()}

    def arrays(self) -> dict[str, np.ndarray]:
        """All weights, keyed ``"<layer name>.<param>"`` (a shared array once, under its owner)."""
        return {f"{n}.{k}": v for n, layer, s in zip(self.names, self.layers, self.shares) if s is None
                for k, v in layer.params.items()}

    def param_groups(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """``(key, parameter, gradient)`` for every array once; the gradient of a shared
        array is the sum over the layers that use it (of the last :meth:`backward`)."""
        groups: dict[int, list] = {}
        for i, layer in enumerate(self.layers):
            j = self.owner(i)
            for k in layer.params:
                entry = groups.setdefault((j, k), [f"{self.names[j]}.{k}", self.layers[j].params[k], None])
                g = layer.grads[k]
                entry[2] = g if entry[2] is None else entry[2] + g
        return [tuple(v) for v in groups.values()]

    # -- computation --------------------------------------------------------------
    def _run(self, h: np.ndarray, keep: bool) -> list[np.ndarray]:
        """Every layer's output in order (index 0: ``h``, ``k + 1``: layer ``k``); unless
        ``keep``, an output no later layer reads is dropped (None) once read."""
        outs = [h]
        last_use = [-1] * (len(self.layers) + 1)
        for i, src in enumerate(self._sources):
            for k in src:
                last_use[k] = i
        for i, layer in enumerate(self.layers):
            ins = [outs[k] for k in self._sources[i]]
            outs.append(layer.forward_multi(ins) if layer.multi_input else layer.forward(ins[0]))
            if not keep:
                for k in self._sources[i]:
                    if last_use[k] == i:
                        outs[k] = None
        return outs

    def forward(self, x: np.ndarray, normalize: bool = True) -> np.ndarray:
        """Run a batch ``(N, C, H, W)`` of raw inputs through every layer; the last layer's output."""
        return self._run(self.input.normalize(x) if normalize else x, keep=False)[-1]

    def forward_all(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's output for a batch (index 0 is the normalized input, ``k + 1`` layer ``k``)."""
        return self._run(self.input.normalize(x), keep=True)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Gradient of the input for ``dy`` of the output (the last :meth:`forward`); sets every
        layer's ``grads``. A layer output read by several layers gets the sum of their gradients."""
        grads: list = [None] * (len(self.layers) + 1)
        grads[-1] = dy
        for i in range(len(self.layers) - 1, -1, -1):
            layer, g = self.layers[i], grads[i + 1]
            if g is None:                    # its output reaches no loss
                for k, v in layer.params.items():
                    layer.grads[k] = np.zeros_like(v)
                continue
            dx = layer.backward(g)
            grads[i + 1] = None
            for k, d in zip(self._sources[i], dx if layer.multi_input else [dx]):
                grads[k] = d if grads[k] is None else grads[k] + d
        return grads[0]

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class index per sample, argmax over the classes (axis 1): ``(N,)`` for a
        ``(N, K)`` output, a label map ``(N, H, W)`` for a per-pixel ``(N, K, H, W)`` one."""
        preds = [np.argmax(self.forward(x[i:i + batch_size]), axis=1) for i in range(0, len(x), batch_size)]
        return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)

    def output_grid(self) -> tuple[float, float]:
        """Where the output's pixels sit on the input: output pixel ``i`` (a row or a
        column) is centred on input coordinate ``offset + stride * i``; returns
        ``(offset, stride)``.

        Composed layer by layer from each layer's own map ``a + b * j`` of its output
        index ``j`` to its input coordinate: a convolution of kernel ``k``, stride ``s``
        and padding ``p`` gives ``((k - 1) / 2 - p, s)``, a pooling window ``((k - 1) / 2,
        s)``, a pyramid step ``(0, 2)``, an upsampling by ``f`` ``(-(f - 1) / (2 f), 1 / f)``,
        and a layer that keeps the size ``(0, 1)``. A layer without maps (``flatten``,
        ``linear``) has no grid: ``ValueError`` naming it. In a graph, the path followed
        is the output's first inputs back to the network input (the inputs of a
        concatenation share one grid).
        """
        path, k = [], len(self.layers)
        while k:
            path.append(k - 1)
            k = self._sources[k - 1][0]
        offset, stride = 0.0, 1.0
        for i in reversed(path):
            name, layer = self.names[i], self.layers[i]
            t = layer.type
            if t == "conv2d":
                a, b = (layer.kernel - 1) / 2 - layer.padding, layer.stride
            elif t in ("maxpool2d", "avgpool2d", "l2pool2d"):
                a, b = (layer.kernel - 1) / 2, layer.stride
            elif t == "pyrdown":
                a, b = 0.0, 2
            elif t == "upsample":
                a, b = -(layer.factor - 1) / (2 * layer.factor), 1 / layer.factor
            elif t in ("flatten", "linear"):
                raise ValueError(f"network {self.name!r}: layer {name!r} ({t}) has no pixel grid")
            else:
                a, b = 0.0, 1
            offset, stride = offset + stride * a, stride * b
        return offset, stride

    def label_grid(self, labels: np.ndarray) -> np.ndarray:
        """Per-pixel labels ``(N, H, W)`` of the input, sampled at the output's pixels
        (:meth:`output_grid`; the nearest input pixel, ``floor(c + 1/2)`` for a centre
        ``c``): ``(N, h, w)`` of the output."""
        offset, stride = self.output_grid()
        _, h, w = self.output_shape
        def nearest(n, size):
            return np.clip(np.floor(offset + stride * np.arange(n) + 0.5).astype(np.int64), 0, size - 1)

        rows, cols = nearest(h, labels.shape[1]), nearest(w, labels.shape[2])
        return labels[:, rows][:, :, cols]

    def info(self) -> list[LayerInfo]:
        """One row a layer; a sharing layer counts no parameters of its own."""
        rows = []
        for i, (name, layer) in enumerate(zip(self.names, self.layers)):
            if self.shares[i] is not None:
                params = 0
            elif getattr(layer, "params", None):
                params = sum(int(np.prod(v.shape)) for v in layer.params.values())
            else:
                params = sum(int(np.prod(s)) for s in layer.param_shapes().values())
            ins = [self.shapes[k] for k in self._sources[i]]
            rows.append(LayerInfo(i, name, layer.type, self.in_shape(i), self.shapes[i + 1], params,
                                  int(layer.macs(ins if layer.multi_input else ins[0])),
                                  tuple(self.inputs[i]), self.shares[i]))
        return rows

    def graph_json(self) -> dict:
        """The graph part of a model file: a chain lists its layers; a graph adds each
        layer's ``inputs`` and ``share`` where they are not the chain's defaults."""
        layers = []
        for i, (n, layer) in enumerate(zip(self.names, self.layers)):
            entry = {"name": n, "type": layer.type, "attrs": layer.attrs()}
            if not self.is_chain:
                entry["inputs"] = list(self.inputs[i])
                if self.shares[i] is not None:
                    entry["share"] = self.shares[i]
            layers.append(entry)
        return {"name": self.name, "input": self.input.to_json(), "classes": self.classes,
                "layers": layers, "meta": self.meta}

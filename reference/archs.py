"""Architectures as data.

An architecture spec is the graph part of a model file without weights or
normalization (see :mod:`convc.reference.modelfile`): a JSON object with
``name``, ``input.shape``, ``classes`` and ``layers``. ``in_channels`` of a
``conv2d`` and ``in_features`` of a ``linear`` may be left out; they follow
from the previous layer (from the first input, in a graph). Built-in specs: ``lenet``,
``sceneparse``, ``sceneparse-small``, the multiscale ``sceneparse-ms`` (a graph) and its
single-scale twin ``sceneparse-ss``, and ``sceneparse-ms-full``; any other name is read as
a path to a JSON file.
"""

from __future__ import annotations

from pathlib import Path

from convc.errors import ConvcError

from .modelfile import network_from_graph, parse_json
from .network import Network

__all__ = ["multiscale", "BUILTIN", "MAX_SPEC_BYTES", "arch_spec", "build_network", "grouped_table"]

MAX_SPEC_BYTES = 64 << 20


def lenet() -> dict:
    """LeNet-5 style for 1x32x32 inputs (LeCun et al. 1998), 10 classes.

    conv 5x5 (6) -> tanh -> max 2x2 -> conv 5x5 (16) -> tanh -> max 2x2
    -> linear 400->120 -> tanh -> linear 120->10 -> log-softmax
    """
    return {
        "name": "lenet",
        "input": {"shape": [1, 32, 32]},
        "classes": 10,
        "layers": [
            {"name": "conv1", "type": "conv2d", "attrs": {"out_channels": 6, "kernel": 5}},
            {"name": "tanh1", "type": "tanh"},
            {"name": "pool1", "type": "maxpool2d", "attrs": {"kernel": 2}},
            {"name": "conv2", "type": "conv2d", "attrs": {"out_channels": 16, "kernel": 5}},
            {"name": "tanh2", "type": "tanh"},
            {"name": "pool2", "type": "maxpool2d", "attrs": {"kernel": 2}},
            {"name": "flatten", "type": "flatten"},
            {"name": "fc1", "type": "linear", "attrs": {"out_features": 120}},
            {"name": "tanh3", "type": "tanh"},
            {"name": "fc2", "type": "linear", "attrs": {"out_features": 10}},
            {"name": "logsoftmax", "type": "logsoftmax"},
        ],
    }


def grouped_table(out_channels: int, in_channels: int, fan_in: int, groups: int) -> list[list[int]]:
    """Output map ``o`` of group ``g = o * groups // out_channels`` reads
    input maps ``g*fan_in .. g*fan_in + fan_in - 1`` (modulo ``in_channels``)."""
    rows = []
    for o in range(out_channels):
        start = (o * groups // out_channels) * fan_in
        rows.append(sorted((start + k) % in_channels for k in range(fan_in)))
    return rows


def sceneparse() -> dict:
    """The scene-parsing net of Farabet et al. 2013 (one scale), 3x240x320 YUV.

    LCN -> conv 7x7 (16) -> tanh -> max 2x2 -> conv 7x7 (64, each reads 8)
    -> tanh -> max 2x2 -> conv 7x7 (256, each reads 32) -> conv 1x1 (8 classes).

    The partial connection tables are grouped (as AlexNet's two groups):
    the first half of the output maps reads the first ``fan_in`` input maps,
    the second half the next ``fan_in``. Farabet et al. drew random tables;
    grouped tables read the same number of maps per output and let the
    accelerator share each input stream among many outputs (a random table
    gives every output its own input set). :func:`random_table` builds the
    random kind for a user's spec.
    """
    return {
        "name": "sceneparse",
        "input": {"shape": [3, 240, 320]},
        "classes": 8,
        "layers": [
            {"name": "lcn", "type": "lcn", "attrs": {"kernel": 9}},
            {"name": "conv1", "type": "conv2d", "attrs": {"out_channels": 16, "kernel": 7}},
            {"name": "tanh1", "type": "tanh"},
            {"name": "pool1", "type": "maxpool2d", "attrs": {"kernel": 2}},
            {"name": "conv2", "type": "conv2d",
             "attrs": {"out_channels": 64, "kernel": 7, "table": grouped_table(64, 16, 8, 2)}},
            {"name": "tanh2", "type": "tanh"},
            {"name": "pool2", "type": "maxpool2d", "attrs": {"kernel": 2}},
            {"name": "conv3", "type": "conv2d",
             "attrs": {"out_channels": 256, "kernel": 7, "table": grouped_table(256, 64, 32, 2)}},
            {"name": "classifier", "type": "conv2d", "attrs": {"out_channels": 8, "kernel": 1}},
        ],
    }


def sceneparse_small() -> dict:
    """:func:`sceneparse` at 3x96x128, a reduced resolution that trains in minutes on two
    cores (output 8x13x21, each pixel seeing a 46x46 window)."""
    spec = sceneparse()
    spec["name"] = "sceneparse-small"
    spec["input"] = {"shape": [3, 96, 128]}
    return spec


def multiscale(name: str = "sceneparse-ms", shape=(3, 96, 128), maps=(16, 64, 256), fan_in=(8, 32),
               classes: int = 8, scales: int = 3, kernel: int = 7) -> dict:
    """The multiscale scene parser of Farabet et al. 2013, as a graph (format version 2).

    LCN normalizes the input once; a Gaussian pyramid of it (:class:`~convc.reference.layers.
    PyramidDown`, zero edges, so that it is a depthwise stride-2 convolution) gives
    ``scales`` levels, full, 1/2 and 1/4 resolution. One trunk, its weights shared by every
    level (``share``), runs on each::

        conv KxK (maps[0]) -> tanh -> max 2x2 -> conv KxK (maps[1], each reads fan_in[0])
        -> tanh -> max 2x2 -> conv KxK (maps[2], each reads fan_in[1])

    with "same" padding (K // 2), so level ``s`` gives ``(maps[2], H / 2**(s+2), W / 2**(s+2))``.
    The coarser outputs are upsampled (nearest) to the finest, concatenated
    (``scales * maps[2]`` maps) and a 1x1 convolution labels every pixel (``classes`` scores).
    ``H`` and ``W`` must be multiples of ``2**(scales + 1)``. ``scales=1`` is the same trunk
    on one scale (the single-scale net of the seed's table).
    """
    c, h, w = shape
    step = 1 << (scales + 1)
    if h % step or w % step:
        raise ValueError(f"{name}: input {h}x{w} must be a multiple of {step} on each side for {scales} scales")
    pad = kernel // 2
    layers = [{"name": "lcn", "type": "lcn", "attrs": {"kernel": 9}}]
    level = "lcn"
    tops = []
    for s in range(scales):
        sfx = "" if s == 0 else f"_s{s + 1}"
        if s:
            layers.append({"name": f"pyr{s}", "type": "pyrdown", "attrs": {"kernel": 5, "edge": "zero"},
                           "inputs": [level]})
            level = f"pyr{s}"
        trunk = [
            ("conv1", "conv2d", {"out_channels": maps[0], "kernel": kernel, "padding": pad}),
            ("tanh1", "tanh", {}), ("pool1", "maxpool2d", {"kernel": 2}),
            ("conv2", "conv2d", {"out_channels": maps[1], "kernel": kernel, "padding": pad,
                                 "table": grouped_table(maps[1], maps[0], fan_in[0], 2)}),
            ("tanh2", "tanh", {}), ("pool2", "maxpool2d", {"kernel": 2}),
            ("conv3", "conv2d", {"out_channels": maps[2], "kernel": kernel, "padding": pad,
                                 "table": grouped_table(maps[2], maps[1], fan_in[1], 2)}),
        ]
        prev = level
        for base, kind, attrs in trunk:
            entry = {"name": base + sfx, "type": kind, "attrs": attrs, "inputs": [prev]}
            if s and kind == "conv2d":
                entry["share"] = base
            layers.append(entry)
            prev = base + sfx
        if s:
            layers.append({"name": f"up{s + 1}", "type": "upsample", "attrs": {"factor": 1 << s},
                           "inputs": [prev]})
            prev = f"up{s + 1}"
        tops.append(prev)
    if scales > 1:
        layers.append({"name": "concat", "type": "concat", "inputs": tops})
    layers.append({"name": "classifier", "type": "conv2d", "attrs": {"out_channels": classes, "kernel": 1},
                   "inputs": ["concat" if scales > 1 else tops[0]]})
    return {"format": "convc-model", "version": 2, "name": name, "input": {"shape": list(shape)},
            "classes": classes, "layers": layers}


def sceneparse_ms() -> dict:
    """:func:`multiscale` at 3x96x128 (three scales; output 8x24x32), the reduced resolution
    that trains in minutes on two cores."""
    return multiscale("sceneparse-ms", (3, 96, 128))


def sceneparse_ss() -> dict:
    """The same trunk on one scale (3x96x128, padded convolutions): the single-scale net the
    multiscale one is compared with."""
    return multiscale("sceneparse-ss", (3, 96, 128), scales=1)


def sceneparse_ms_full() -> dict:
    """:func:`multiscale` on the seed's full frame, 3x240x320 (output 8x60x80)."""
    return multiscale("sceneparse-ms-full", (3, 240, 320))


BUILTIN = {"lenet": lenet, "sceneparse": sceneparse, "sceneparse-small": sceneparse_small,
           "sceneparse-ms": sceneparse_ms, "sceneparse-ss": sceneparse_ss, "sceneparse-ms-full": sceneparse_ms_full}


def arch_spec(arch: str) -> tuple[dict, str]:
    """The spec for a built-in name or a JSON file path, and where it came from."""
    if arch in BUILTIN:
        return BUILTIN[arch](), f"arch {arch!r}"
    path = Path(arch)
    if not path.exists():
        raise ConvcError(f"unknown architecture {arch!r}: not one of {', '.join(BUILTIN)} "
                         "and no such spec file")
    if not path.is_file():
        raise ConvcError(f"{path}: is not a file (--arch takes {', '.join(BUILTIN)} or a JSON spec file)")
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise ConvcError(f"{path}: {path.stat().st_size:,} bytes, beyond the {MAX_SPEC_BYTES >> 20} MiB "
                         "a spec may have")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConvcError(f"{path}: cannot read spec ({exc})") from None
    spec = parse_json(text, str(path))
    if not isinstance(spec, dict):
        raise ConvcError(f"{path}: a spec must be a JSON object")
    spec.setdefault("name", path.stem)
    return spec, str(path)


def build_network(arch: str, seed: int = 0) -> Network:
    """Build a network from a spec with freshly initialized weights."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConvcError(f"--seed must be a whole number >= 0, got {seed!r}")
    spec, where = arch_spec(arch)
    net = network_from_graph(spec, where)
    net.init_params(seed)
    return net

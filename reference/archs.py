"""Architectures as data.

An architecture spec is the graph part of a model file without weights or
normalization (see :mod:`convc.reference.modelfile`): a JSON object with
``name``, ``input.shape``, ``classes`` and ``layers``. ``in_channels`` of a
``conv2d`` and ``in_features`` of a ``linear`` may be left out; they follow
from the previous layer. Built-in specs: ``lenet`` and ``sceneparse``; any
other name is read as a path to a JSON file.
"""

from __future__ import annotations

from pathlib import Path

from convc.errors import ConvcError

from .modelfile import network_from_graph, parse_json
from .network import Network

__all__ = ["BUILTIN", "MAX_SPEC_BYTES", "arch_spec", "build_network", "grouped_table"]

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


BUILTIN = {"lenet": lenet, "sceneparse": sceneparse, "sceneparse-small": sceneparse_small}


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

"""What ``convc verify`` knows before the RTL runs: :func:`prepare`.

It loads the compiled folder and the float model, takes the test images (the model's
held-out split, or given inputs), quantizes them, and runs the bit-exact golden model
(:mod:`convc.sim.golden`, every layer) and the float reference; the result is a
:class:`Prepared`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convc.compiler.program import load_program
from convc.errors import ConvcError
from convc.inputs import model_inputs
from convc.reference.modelfile import load_model

from . import golden

__all__ = ["Prepared", "prepare"]


@dataclass
class Prepared:
    """Everything known before the RTL runs.

    ``golden_layers[i]``: ``(N, words)`` int64 signed codes of ``program.layers[i]``;
    ``float_layers[i]``: ``(N, words)`` float64 reference values of the same layer, or
    ``None`` (no float model, or no reference layer recorded for it)."""

    program: object
    compiled: Path
    model: str | None
    x: np.ndarray
    labels: np.ndarray | None
    source: str
    codes: np.ndarray
    input_saturations: int
    golden_layers: list[np.ndarray]
    float_layers: list[np.ndarray | None]
    saturations: dict[str, int]
    overflows: dict[str, int]
    ref_layers: dict[str, str]
    golden_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def images(self) -> int:
        return len(self.codes)


def _load_float_model(program, compiled: Path, model):
    if model is None:
        model = program.meta.get("model")
        if not model:
            raise ConvcError(f"{compiled}/program.json records no float model; pass --model MODEL.npz")
        if not Path(model).is_file():
            raise ConvcError(f"{model}: the float model recorded in {compiled}/program.json at compile "
                             f"time is not there (compiled from another folder?); pass --model MODEL.npz")
    elif not Path(model).is_file():
        raise ConvcError(f"{model}: no such file (--model expects the float model.npz)")
    net = load_model(model)
    if tuple(program.input.shape) != tuple(net.input.shape):
        raise ConvcError(f"{compiled} was compiled for inputs {list(program.input.shape)}, "
                         f"{model} takes {list(net.input.shape)}")
    return str(model), net


def _test_images(net, count: int):
    """The first ``count`` images of the model's held-out split (as ``convc compare``),
    else random inputs with one warning (:func:`convc.inputs.model_inputs` decides)."""
    return model_inputs(net, "test", count, seed=1)


def prepare(compiled_dir, images: int = 10, model=None, inputs=None) -> Prepared:
    """Load the compiled folder and the float model, take ``images`` test images (or
    ``inputs``: ``(x, labels or None, description)``, raw ``(N, C, H, W)`` inputs),
    quantize them and run the golden model and the float reference."""
    compiled = Path(compiled_dir)
    if inputs is None and (isinstance(images, bool) or not isinstance(images, (int, np.integer)) or images < 1):
        raise ConvcError(f"--images must be a whole number >= 1, got {images!r}")
    program = load_program(compiled)
    model_path, net = _load_float_model(program, compiled, model)
    if inputs is None:
        x, labels, source = _test_images(net, int(images))
    else:
        x, labels, source = inputs
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(program.input.shape) or len(x) == 0:
            raise ConvcError(f"inputs of shape {list(x.shape)}: {compiled} takes (N, "
                             f"{', '.join(map(str, program.input.shape))}) with N >= 1")
        images = len(x)
    notes = []
    if len(x) < images:
        notes.append(f"{source} has only {len(x)} images; verified those")
    codes, in_sat = program.quantize_input(x)
    codes = np.asarray(codes, dtype=np.int64)
    t0 = time.perf_counter()
    try:
        gres = golden.run(program, codes)
    except (ValueError, OverflowError) as exc:
        raise ConvcError(f"{compiled}: the golden model cannot run this program ({exc}); was it "
                         f"compiled by another version of convc? Compile it again") from None
    seconds = time.perf_counter() - t0
    n = len(x)
    golden_layers = [gres.region(r).reshape(n, -1) for r in program.layers]

    ref_layers = dict(program.meta.get("ref_layers", {}))
    outs = net.forward_all(np.asarray(x, dtype=np.float64))
    index = {name: i for i, name in enumerate(net.names)}
    float_layers: list[np.ndarray | None] = []
    for region in program.layers:
        ref = ref_layers.get(region.name)
        if ref in index and outs[index[ref] + 1].size == n * region.words:
            float_layers.append(np.asarray(outs[index[ref] + 1], dtype=np.float64).reshape(n, -1))
        else:
            float_layers.append(None)
            notes.append(f"layer {region.name}: no float reference layer recorded; "
                         f"float comparisons left out")
    return Prepared(program=program, compiled=compiled, model=model_path, x=x, labels=labels,
                    source=source, codes=codes, input_saturations=int(in_sat),
                    golden_layers=golden_layers, float_layers=float_layers,
                    saturations={k: int(v) for k, v in gres.saturations.items()},
                    overflows={k: int(v) for k, v in gres.overflows.items()},
                    ref_layers=ref_layers, golden_seconds=seconds, notes=notes)


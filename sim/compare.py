"""Float reference against the fixed-point golden model, layer by layer.

For every region the program writes (one per fused layer) the float
reference's output of the same layer is compared with the golden model's
codes read back as real numbers:

    sqnr_db      = 10 log10( sum f^2 / sum (f - q)^2 )
    max_err_lsb  = max |f - q| / lsb(format of the region)

plus the saturations and accumulator overflows the golden model counted in
that layer, and, on the final output, top-1 agreement (arg-max over the
classes, per image for a vector output, per pixel for maps) and accuracy
when labels are known.  For a scene parser (an output of per-pixel class scores) the
first images' label maps, float and golden, are kept as pictures for
``convc compare --report`` (:attr:`Comparison.label_maps`, :mod:`convc.sim.labelmap`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from convc.compiler.program import Program
from convc.errors import ConvcError

from . import golden
from .labelmap import MAX_IMAGES, has_maps, model_maps

__all__ = ["LayerComparison", "Comparison", "compare"]


@dataclass
class LayerComparison:
    name: str
    ref_layer: str | None       # None: a region the compiler made (no float counterpart; SQNR NaN)
    fmt: str
    sqnr_db: float
    max_err_lsb: float
    saturations: int
    overflows: int

    def to_json(self) -> dict:
        return {"name": self.name, "ref_layer": self.ref_layer, "fmt": self.fmt,
                "sqnr_db": None if not np.isfinite(self.sqnr_db) else round(self.sqnr_db, 3),
                "exact": bool(np.isinf(self.sqnr_db)), "max_err_lsb": round(self.max_err_lsb, 3),
                "saturations": self.saturations, "overflows": self.overflows}


@dataclass
class Comparison:
    images: int
    top1_agreement: float
    accuracy_float: float | None
    accuracy_fixed: float | None
    input_saturations: int
    layers: list[LayerComparison] = field(default_factory=list)
    golden_seconds: float = 0.0
    source: str = ""
    label_maps: dict | None = None      # a scene parser's first images as pictures (not in to_json)

    @property
    def saturations(self) -> int:
        return self.input_saturations + sum(layer.saturations for layer in self.layers)

    def to_json(self) -> dict:
        return {"images": self.images, "source": self.source, "top1_agreement": self.top1_agreement,
                "accuracy_float": self.accuracy_float, "accuracy_fixed": self.accuracy_fixed,
                "input_saturations": self.input_saturations, "saturations": self.saturations,
                "golden_seconds": round(self.golden_seconds, 3),
                "layers": [layer.to_json() for layer in self.layers]}

    def text(self) -> str:
        lines = [f"{self.images} images ({self.source}); golden model {self.golden_seconds:.2f} s",
                 f"{'layer':<12} {'reference':<12} {'format':<10} {'SQNR dB':>8} {'max err LSB':>12} "
                 f"{'saturations':>11} {'overflows':>9}"]
        for c in self.layers:
            sq = "exact" if np.isinf(c.sqnr_db) else "-" if np.isnan(c.sqnr_db) else f"{c.sqnr_db:.1f}"
            lines.append(f"{c.name:<12} {c.ref_layer or '(compiler)':<12} {c.fmt:<10} {sq:>8} {c.max_err_lsb:>12.2f} "
                         f"{c.saturations:>11} {c.overflows:>9}")
        lines.append(f"top-1 agreement float vs fixed: {self.top1_agreement:.4f}")
        if self.accuracy_float is not None:
            lines.append(f"accuracy: float {self.accuracy_float:.4f}, fixed {self.accuracy_fixed:.4f} "
                         f"(drop {100 * (self.accuracy_float - self.accuracy_fixed):.2f} points)")
        total = self.saturations
        lines.append("saturations: none" if total == 0 else
                     f"WARNING: {total} values saturated (input {self.input_saturations}); see the table")
        return "\n".join(lines) + "\n"


def _top1(out: np.ndarray) -> np.ndarray:
    """Arg-max over the class axis: (N, C, H, W) -> (N, H, W)."""
    return np.argmax(out, axis=1)


def compare(net, program: Program, x: np.ndarray, labels: np.ndarray | None = None, source: str = "",
            batch: int = 128, truth: np.ndarray | None = None) -> Comparison:
    """Run ``x`` (raw inputs) through the float net and the golden model.

    ``truth``: per-pixel labels ``(N, H, W)`` of ``x`` (a scene parser's ground truth,
    :func:`convc.sim.labelmap.dataset_truth`), drawn beside the label maps.

    Raises
    ------
    ConvcError
        No images, or a program whose layers the float model does not have (compiled
        from another model).
    """
    if len(x) == 0:
        raise ConvcError(f"no images to compare{f' ({source})' if source else ''}: give at least one")
    if labels is not None and len(labels) != len(x):
        raise ConvcError(f"{len(labels)} labels for {len(x)} images{f' ({source})' if source else ''}")
    names = [r.name for r in program.layers]
    ref_layers = program.meta.get("ref_layers", {})
    index = {n: i for i, n in enumerate(net.names)}
    where = getattr(net, "path", None) or f"model {net.name!r}"
    made = set()        # regions the compiler made (no reference layer: e.g. a folded classifier's parts)
    for region in program.layers:
        ref = ref_layers.get(region.name, "") if isinstance(ref_layers, dict) else ""
        if ref is None:
            made.add(region.name)
            continue
        if ref not in index:
            raise ConvcError(f"{where} has no layer {ref!r} that compiled layer {region.name!r} computes: "
                             "the folder was compiled from another model")
        if int(np.prod(net.shapes[index[ref] + 1])) != int(np.prod(region.shape)):
            raise ConvcError(f"{where}: layer {ref!r} outputs {list(net.shapes[index[ref] + 1])}, compiled layer "
                             f"{region.name!r} {list(region.shape)}: the folder was compiled from another model")
    sums = {n: [0.0, 0.0, 0.0] for n in names}  # signal, noise, max error in LSB
    sat = {n: 0 for n in names}
    ovf = {n: 0 for n in names}
    in_sat = 0
    agree = correct_f = correct_q = total = 0
    seconds = 0.0
    label_maps = None
    for start in range(0, len(x), batch):
        xb = x[start:start + batch]
        outs = net.forward_all(xb.astype(np.float64))
        codes, s = program.quantize_input(xb)
        in_sat += int(s)
        t0 = time.perf_counter()
        res = golden.run(program, np.asarray(codes, dtype=np.int64))
        seconds += time.perf_counter() - t0
        for region in program.layers:
            sat[region.name] += int(res.saturations.get(region.name, 0))
            ovf[region.name] += int(res.overflows.get(region.name, 0))
            if region.name in made:
                continue
            ref = outs[index[ref_layers[region.name]] + 1].reshape((len(xb),) + region.shape)
            q = region.fmt.to_float(res.region(region))
            err = ref - q
            acc = sums[region.name]
            acc[0] += float(np.sum(ref * ref))
            acc[1] += float(np.sum(err * err))
            acc[2] = max(acc[2], float(np.max(np.abs(err))) / region.fmt.lsb if err.size else 0.0)
        out = program.output
        f_top = _top1(outs[index[ref_layers[out.name]] + 1].reshape((len(xb),) + out.shape))
        q_top = _top1(res.region(out))
        if start == 0 and has_maps(out.shape):
            k = min(MAX_IMAGES, len(xb))
            label_maps = model_maps(net, xb[:k], {"float": f_top[:k], "golden": q_top[:k]},
                                    columns=[("float", "float reference"), ("golden", "golden fixed point")],
                                    truth=truth, images_total=len(x))
        agree += int(np.sum(f_top == q_top))
        total += f_top.size
        if labels is not None:
            yb = labels[start:start + batch]
            correct_f += int(np.sum(f_top.reshape(len(xb), -1)[:, 0] == yb))
            correct_q += int(np.sum(q_top.reshape(len(xb), -1)[:, 0] == yb))
    layers = []
    for region in program.layers:
        sig, noise, mx = sums[region.name]
        sqnr = float("nan") if region.name in made else \
            float("inf") if noise == 0 else 10 * np.log10(max(sig, 1e-300) / noise)
        layers.append(LayerComparison(region.name, ref_layers[region.name], str(region.fmt), sqnr, mx,
                                      sat[region.name], ovf[region.name]))
    n = len(x)
    return Comparison(images=n, top1_agreement=agree / total if total else float("nan"),
                      accuracy_float=correct_f / n if labels is not None else None,
                      accuracy_fixed=correct_q / n if labels is not None else None,
                      input_saturations=in_sat, layers=layers, golden_seconds=seconds, source=source,
                      label_maps=label_maps)

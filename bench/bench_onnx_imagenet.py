"""ImageNet ONNX graphs (AlexNet, ZFNet-512, VGG-19) through convc, beside published FPGA figures.

The ``onnx`` wheel ships ``onnx/backend/test/data/light/light_{bvlc_alexnet,zfnet512,vgg19}.onnx``:
the ONNX model zoo's ImageNet architectures with every weight made by ``ConstantOfShape``
(one constant value). Per network, in one run:

1. imports the graph as shipped (``convc.reference.onnx_import.import_onnx``) and prints
   the outcome: OK, or convc's refusal. AlexNet at its ONNX input of 224x224 is refused:
   its last MaxPool has pads [0, 0, 1, 1] that its windows read (a ceil-mode emulation)
   and convc's pooling reads no padding; at Caffe's original 227x227 (the same graph with
   its input side set to 227) no window reaches the pad and it imports, so AlexNet is also
   imported at 227 and that variant is the one compiled;
2. compiles it (its own weights, every one 0.02, or with ``--weights random`` seeded
   random ones) for virtex6 (``compile_network``, 16 bits, calibrated on
   ``--calib`` uniform random images, no Verilog: like ``convc compile --no-hdl``) with
   forced lanes (:data:`LANES`: the size search on VGG-19 takes over 25 minutes;
   ``--search`` runs it anyway), and writes the compiled folder under ``--out`` (default a
   temporary folder, deleted at the end; a folder that cannot be written is said so in
   the table: VGG-19 with its own weights, every one 0.02, grows its activations beyond
   2^100, and its output format (fraction -90) fails the program's own check, so
   ``--weights random`` for a folder; the timing barely depends on the weights: VGG-19
   72,397,494 cycles with its own, 72,443,682 with random ones). AlexNet
   and ZFNet hold LRN, which the compiler refuses (no hardware engine): its message is
   printed;
3. so AlexNet and ZFNet are also compiled "without LRN": the imported network with its
   ``lrn`` layers removed, a MODIFIED network (not the ONNX graph; its outputs differ);
4. prints per compiled network: MACs (``net.info()``), cycles, ms per frame at the
   board's clock and MAC utilization by the cycle model (``convc.sim.cycle`` with the
   board's memory, as ``convc compile`` reports them), the equivalent GOP/s (2 operations
   a MAC), DSP48E1 used, and the compile seconds;
5. beside each, published FPGA figures for the same architecture (:data:`PUBLISHED`,
   with the citation; VGG-16 figures are VGG-16, not VGG-19, and say so; whether they
   cover the convolution layers only or the whole network);
6. checks each imported graph's float reference against onnxruntime on one uniform
   random input, the ``ConstantOfShape`` weights replaced by seeded random ones (as
   ``tests/reference/onnx_graphs.randomized``): the largest relative error
   ``max|ours - ort| / max|ort|`` (the graphs end in Softmax, convc keeps log-probabilities:
   ``exp`` of ours is compared).

The table goes to stdout (``--json``: one JSON object instead); progress to stderr.
Needs ``onnx`` and ``onnxruntime`` (``pip install -e '.[onnx]'``). One compile at a
time; VGG-19 takes several minutes and a few GB of memory::

    .venv/bin/python bench/bench_onnx_imagenet.py [--nets alexnet,zfnet512,vgg19] [--out DIR]
        [--calib 2] [--weights shipped|random] [--search] [--no-check] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from convc.boards import get_board
from convc.errors import ConvcError
from convc.outputs import write_outputs
from convc.pipeline import CompileOptions, compile_network
from convc.reference.network import Network
from convc.reference.onnx_import import import_onnx, random_constants, with_input_side

#: Published FPGA figures for the same architectures (VGG-16 where no VGG-19 figure is
#: published: marked so). ``gops`` are the paper's own operations a second (2 a MAC);
#: ``ms`` as published, or derived from the paper's own figures where said so.
#: ``checked`` says where the figure was confirmed for this script. Per architecture a list
#: of papers, each with its citation (``cite``, ``short``), ``network``, ``scope``, ``device``,
#: ``gops``, ``ms`` (null where not quoted), ``note`` and ``checked``: bench/published_imagenet.json.
PUBLISHED = json.loads(Path(__file__).with_name("published_imagenet.json").read_text())

#: Lanes forced per architecture (in, out), FC engine 8 x 16, as bench/bench_golden.py's
#: LARGE_LANES: VGG-19 3x3 kernels, 4 x 16 units of 9 DSP48E1; AlexNet's 11x11 kernels need
#: 121 a unit, so 1 x 4; ZFNet's largest is 7x7 (49 a unit), so 2 x 6 (738 of 768 DSP48E1
#: with the FC engine). They are not the fastest: ``--search`` on AlexNet (12 minutes)
#: picks 1 x 5 with FC 3 x 32, 118.7 ms a frame against 157.1 ms with these.
LANES = {"alexnet": (1, 4), "zfnet512": (2, 6), "vgg19": (4, 16)}
FC_LANES = (8, 16)

NETS = {
    "alexnet": {"file": "light_bvlc_alexnet.onnx", "title": "AlexNet (bvlc_alexnet)", "sides": (227,)},
    "zfnet512": {"file": "light_zfnet512.onnx", "title": "ZFNet-512", "sides": ()},
    "vgg19": {"file": "light_vgg19.onnx", "title": "VGG-19", "sides": ()},
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def light_dir() -> Path:
    import onnx  # optional tool: convc.optional

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def randomized(model, seed: int = 0):
    """``model`` with random weights (:func:`convc.reference.onnx_import.random_constants`)."""
    return random_constants(model, seed)


def without_lrn(net):
    """The network with its ``lrn`` layers removed: a modified network, not the graph."""
    kept = [(layer, name) for layer, name in zip(net.layers, net.names) if layer.type != "lrn"]
    dropped = [name for layer, name in zip(net.layers, net.names) if layer.type == "lrn"]
    meta = dict(net.meta, modified=f"LRN layers removed: {', '.join(dropped)}")
    out = Network(net.input, [l for l, _ in kept], [n for _, n in kept], name=f"{net.name}-nolrn",
                  classes=net.classes, meta=meta)
    return out, dropped


def import_graph(model, where: str) -> dict:
    t0 = time.perf_counter()
    try:
        net = import_onnx(model)
    except ConvcError as exc:
        return {"where": where, "ok": False, "message": str(exc), "seconds": time.perf_counter() - t0}
    macs = sum(i.macs for i in net.info())
    return {"where": where, "ok": True, "net": net, "seconds": time.perf_counter() - t0,
            "input": list(net.input.shape), "layers": len(net.layers),
            "lrn": [n for l, n in zip(net.layers, net.names) if l.type == "lrn"], "macs": macs,
            "output": net.meta.get("onnx", {}).get("output")}


def compile_one(net, key: str, label: str, where: str, out_root: Path, n_calib: int, search: bool) -> dict:
    """Compile ``net`` for virtex6 (no Verilog), write its folder; the figures or the refusal."""
    board = get_board("virtex6")
    macs = sum(i.macs for i in net.info())
    row = {"net": key, "variant": label, "where": where, "macs": macs}
    lanes = {} if search else dict(zip(("in_lanes", "out_lanes", "fc_in_lanes", "fc_out_lanes"),
                                       LANES[key] + FC_LANES))
    row["lanes_forced"] = bool(lanes)
    opts = CompileOptions(calib=n_calib, **lanes)
    calib = np.random.default_rng(1).random((n_calib, *net.input.shape), dtype=np.float32)
    log(f"  compiling {label} ({macs / 1e9:.2f} GMAC) for virtex6, "
        + (f"lanes {LANES[key][0]} x {LANES[key][1]}, FC {FC_LANES[0]} x {FC_LANES[1]} (forced)"
           if lanes else "size search") + f", {n_calib} random calibration image(s) ...")
    t0 = time.perf_counter()
    try:
        res = compile_network(net, board, opts, where=where, calib=calib)
    except ConvcError as exc:
        row.update(ok=False, message=str(exc), compile_s=time.perf_counter() - t0)
        log(f"  refused after {row['compile_s']:.1f} s")
        return row
    secs = time.perf_counter() - t0
    r = res.report
    hw = r["hw"]
    row.update(ok=True, compile_s=secs, cycles=r["cycles"], ms=r["ms_per_frame"],
               mac_utilization=r["mac_utilization"], multipliers=hw["derived"]["macs_per_cycle"],
               clock_mhz=hw["clock_mhz"], dsp=r["dsp"], dsp_board=r["dsp_board"], bram36=r["bram36"],
               bram36_board=r["bram36_board"], passes=r["passes"], report_macs=r["macs"],
               in_lanes=hw["in_lanes"], out_lanes=hw["out_lanes"], fc_in_lanes=hw["fc_in_lanes"],
               fc_out_lanes=hw["fc_out_lanes"], kmax=hw["kmax"],
               gops=2 * macs / (r["ms_per_frame"] * 1e6))
    # the convolution layers alone (the report names each engine pass after its layer), for
    # the published figures that cover only those
    types = dict(zip(net.names, (layer.type for layer in net.layers)))
    convs = [l for l in r["layers"] if types.get(l["name"]) == "conv2d"]
    if convs:
        conv_ms = sum(l["ms"] for l in convs)
        conv_macs = sum(l["macs"] for l in convs)
        row.update(conv_ms=conv_ms, conv_macs=conv_macs, conv_gops=2 * conv_macs / (conv_ms * 1e6))
    row["total_line"] = (f"total: {r['passes']} passes, {r['macs']:,} MACs, {r['cycles']:,} cycles = "
                         f"{r['ms_per_frame']:.3f} ms per frame at {hw['clock_mhz']:g} MHz, MAC utilization "
                         f"{r['mac_utilization']:.1%} of {hw['derived']['macs_per_cycle']} multipliers")
    log(f"  compiled in {secs:.0f} s: {row['total_line']}")
    folder = out_root / (key + "-" + re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-").lower())
    t0 = time.perf_counter()
    try:
        write_outputs(res, folder, hdl=False, model=None)
        row["folder"] = str(folder)
        row["write_s"] = time.perf_counter() - t0
        log(f"  wrote {folder} in {row['write_s']:.0f} s")
    except ConvcError as exc:
        row["folder_error"] = str(exc)
        log(f"  could not write the folder: {exc}")
    del res
    return row


def check_ort(model, where: str) -> dict:
    """convc's float reference of ``randomized(model)`` against onnxruntime, one random input."""
    import onnxruntime as ort  # optional tool: convc.optional

    t0 = time.perf_counter()
    rand = randomized(model)
    try:
        net = import_onnx(rand)
    except ConvcError as exc:
        return {"where": where, "ok": False, "message": str(exc)}
    x = np.random.default_rng(0).random((1, *net.input.shape), dtype=np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3          # not the warnings about the unused __SHAPE initializers
    session = ort.InferenceSession(rand.SerializeToString(), options, providers=["CPUExecutionProvider"])
    theirs = session.run(None, {session.get_inputs()[0].name: x})[0].astype(np.float64)
    del session
    t1 = time.perf_counter()
    ours = net.forward(x.astype(np.float64))
    forward_s = time.perf_counter() - t1
    softmax = net.meta.get("onnx", {}).get("output") == "softmax"
    if softmax:
        ours = np.exp(ours)
    ours = np.asarray(ours, dtype=np.float64).reshape(theirs.shape)
    err = float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-30))
    return {"where": where, "ok": True, "max_rel_error": err, "compared": "exp(ours) vs Softmax" if softmax
            else "outputs", "top1_agree": bool(np.argmax(ours) == np.argmax(theirs)),
            "forward_s": forward_s, "seconds": time.perf_counter() - t0}


def run_net(key: str, out_root: Path, args) -> dict:
    import onnx  # optional tool: convc.optional

    spec = NETS[key]
    path = light_dir() / spec["file"]
    log(f"{spec['title']}: {path}")
    model = onnx.load(str(path))
    side = [d.dim_value for d in
            [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}][0]
            .type.tensor_type.shape.dim][2]
    variants = [(f"as shipped, {side}x{side}", model, path.name)]
    for s in spec["sides"]:
        variants.append((f"input {s}x{s}", with_input_side(model, s), f"{path.name} (input side set to {s})"))
    out = {"title": spec["title"], "file": str(path), "imports": [], "compiles": [], "checks": []}
    compiled_from = None
    for label, m, where in variants:
        imp = import_graph(m, where)
        imp["variant"] = label
        log(f"  import {label}: " + (f"OK ({imp['layers']} layers, input {imp['input']}, "
                                     f"{imp['macs'] / 1e9:.2f} GMAC, LRN {imp['lrn'] or 'none'})"
                                     if imp["ok"] else f"REFUSED: {imp['message']}"))
        if imp["ok"] and compiled_from is None:
            compiled_from = (label, imp["net"], where, m)
        out["imports"].append({k: v for k, v in imp.items() if k != "net"})
        if args.check and imp["ok"]:
            log(f"  onnxruntime check of {label} (random weights) ...")
            chk = check_ort(m, where)
            chk["variant"] = label
            log(f"  largest relative error {chk.get('max_rel_error', float('nan')):.2e}" if chk["ok"]
                else f"  check refused: {chk['message']}")
            out["checks"].append(chk)
        imp.pop("net", None)
    if compiled_from is None:
        return out
    label, net, where, m = compiled_from
    if args.weights == "random":       # the same graph, its ConstantOfShape weights made random
        net = import_onnx(randomized(m))
        label, where = f"{label}, random weights", f"{where} with random weights"
    out["compiles"].append(compile_one(net, key, label, where, out_root, args.calib, args.search))
    out["weights"] = args.weights
    if any(l.type == "lrn" for l in net.layers):
        mod, dropped = without_lrn(net)
        out["compiles"].append(compile_one(mod, key, f"{label}, without LRN (MODIFIED)",
                                           f"{where} with LRN removed", out_root, args.calib, args.search))
        out["compiles"][-1]["dropped"] = dropped
    return out


def table(results: dict) -> str:
    lines = []
    for key, res in results.items():
        lines.append(f"== {res['title']}  ({Path(res['file']).name})")
        for imp in res["imports"]:
            text = (f"OK: {imp['layers']} layers, input {'x'.join(map(str, imp['input']))}, "
                    f"{imp['macs'] / 1e9:.3f} GMAC, LRN layers: {', '.join(imp['lrn']) or 'none'}"
                    if imp["ok"] else f"REFUSED: {imp['message']}")
            lines.append(f"  import ({imp['variant']}): {text}")
        for chk in res["checks"]:
            if chk["ok"]:
                lines.append(f"  float reference vs onnxruntime ({chk['variant']}, random weights, one random "
                             f"input; {chk['compared']}): largest relative error {chk['max_rel_error']:.2e}, "
                             f"top-1 {'agrees' if chk['top1_agree'] else 'DIFFERS'}; convc forward "
                             f"{chk['forward_s']:.1f} s")
            else:
                lines.append(f"  float reference vs onnxruntime ({chk['variant']}): not imported: {chk['message']}")
        head = (f"  {'compiled (virtex6, 16 bits)':<46} {'GMAC':>7} {'cycles':>12} {'ms/frame':>9} "
                f"{'GOP/s':>7} {'MAC util':>8} {'DSP':>9} {'lanes':>11} {'compile s':>9}")
        lines.append(head)
        for c in res["compiles"]:
            name = c["variant"]
            if not c["ok"]:
                lines.append(f"  {name:<46} {c['macs'] / 1e9:>7.3f}  REFUSED by the compiler: {c['message']}")
                continue
            lanes = f"{c['in_lanes']}x{c['out_lanes']}+{c['fc_in_lanes']}x{c['fc_out_lanes']}"
            lines.append(f"  {name:<46} {c['macs'] / 1e9:>7.3f} {c['cycles']:>12,} {c['ms']:>9.2f} "
                         f"{c['gops']:>7.1f} {c['mac_utilization']:>8.1%} {c['dsp']:>4}/{c['dsp_board']:<4} "
                         f"{lanes:>11} {c['compile_s']:>9.0f}")
            lines.append(f"    {c['total_line']} ({'lanes forced' if c['lanes_forced'] else 'size search'}, "
                         f"kmax {c['kmax']}, {c['clock_mhz']:g} MHz)")
            if c.get("conv_ms") is not None:
                lines.append(f"    conv layers only: {c['conv_macs'] / 1e9:.3f} GMAC in {c['conv_ms']:.2f} ms = "
                             f"{c['conv_gops']:.1f} GOP/s; the rest (FC) {c['ms'] - c['conv_ms']:.2f} ms")
            if c.get("folder_error"):
                lines.append(f"    compiled folder NOT written: {c['folder_error']}")
            if c.get("dropped"):
                lines.append(f"    MODIFIED network: layers {', '.join(c['dropped'])} (LRN) removed; not the "
                             "ONNX graph's function")
        pubs = PUBLISHED.get(key, [])
        if not pubs:
            lines.append("  published FPGA figures: none found for this architecture")
        for p in pubs:
            ms = f"{p['ms']:.2f} ms/frame" if p["ms"] is not None else "ms/frame not quoted"
            lines.append(f"  published: {p['short']}: {p['network']}, {p['scope']}; {p['device']}; "
                         f"{p['gops']:g} GOP/s, {ms}")
            lines.append(f"    source: {p['cite']}")
            lines.append(f"    checked: {p['checked']}")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="alexnet,zfnet512,vgg19",
                    help="comma-separated, of: " + ", ".join(NETS))
    ap.add_argument("--out", type=Path, default=None,
                    help="folder for the compiled folders (default: a temporary folder, deleted)")
    ap.add_argument("--calib", type=int, default=2, help="random calibration images (default 2)")
    ap.add_argument("--weights", choices=("shipped", "random"), default="shipped",
                    help="weights of the compiled networks: the graph's own (ConstantOfShape, every weight "
                         "0.02; default) or seeded random ones of variance 1/fan-in (as the onnxruntime check)")
    ap.add_argument("--search", action="store_true",
                    help="run the compiler's size search instead of forcing the lanes (VGG-19: 25+ minutes)")
    ap.add_argument("--no-check", dest="check", action="store_false", help="skip the onnxruntime comparison")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    keys = [k.strip() for k in args.nets.split(",") if k.strip()]
    unknown = [k for k in keys if k not in NETS]
    if unknown or not keys:
        ap.error(f"--nets: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(NETS)}")
    if args.calib < 1:
        ap.error("--calib must be >= 1")
    try:
        import onnx  # noqa: F401  (optional tool: convc.optional)
        if args.check:
            import onnxruntime  # noqa: F401
    except ImportError as exc:
        print(f"bench_onnx_imagenet: needs onnx and onnxruntime ({exc}): pip install -e '.[onnx]'",
              file=sys.stderr)
        return 2
    t_all = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.out is None:
            out_root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="convc-onnx-imagenet-")))
        else:
            out_root = args.out
            out_root.mkdir(parents=True, exist_ok=True)
        results = {k: run_net(k, out_root, args) for k in keys}
    total = time.perf_counter() - t_all
    if args.json:
        print(json.dumps({"nets": results, "published": {k: PUBLISHED.get(k, []) for k in keys},
                          "seconds": total, "out": str(args.out) if args.out else None}, default=str))
    else:
        print(table(results))
        print(f"(GOP/s of convc: 2 x MACs of the network / ms per frame by the cycle model; MAC util: "
              f"the report's, conv and FC engines' MACs / (cycles x multipliers); {total:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The model commands of the ``convc`` command line: ``train``, ``init``, ``info``,
``import`` (ONNX to ``model.npz``) and ``export`` (``model.npz`` to ONNX).

Each ``cmd_*`` takes the parsed arguments (:func:`convc.cli.build_parser`) and returns
the exit status.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from convc.reference.archs import build_network
from convc.reference.datasets import load_dataset
from convc.reference.modelfile import load_model, save_model
from convc.reference.onnx_export import OPSET, export_onnx
from convc.reference.onnx_import import import_onnx
from convc.reference.train import TrainConfig, train

from .cli_io import check_seed, emit, parse_floats, parse_shape
from .errors import ConvcError
from .inputs import check_output_file

__all__ = ["cmd_train", "cmd_init", "cmd_info", "cmd_import", "cmd_export"]


def _accuracy(v: float) -> str:
    return f"{v:.4f}" if math.isfinite(v) else "n/a"


def _info_table(net) -> tuple[list[dict], str]:
    """The layer table of ``convc info``; a graph adds each layer's inputs and the layer
    whose weights it shares."""
    rows = net.info()
    graph = not net.is_chain
    lines = [f"{net.name}: input {list(net.input.shape)}, {net.classes} classes"
             + (" (a graph: each layer's inputs are listed)" if graph else ""),
             f"{'#':>3} {'name':<12} {'type':<11} {'output':<16} {'params':>10} {'MACs':>14}"
             + ("  inputs" if graph else "")]
    layers = []
    for r in rows:
        shape = "x".join(str(v) for v in r.out_shape)
        line = f"{r.index:>3} {r.name:<12} {r.type:<11} {shape:<16} {r.params:>10,} {r.macs:>14,}"
        row = {"index": r.index, "name": r.name, "type": r.type, "out_shape": list(r.out_shape),
               "params": r.params, "macs": r.macs}
        if graph:
            line += "  " + ", ".join(r.inputs) + (f"  (weights of {r.share})" if r.share else "")
            row.update(inputs=list(r.inputs), share=r.share)
        lines.append(line)
        layers.append(row)
    params = sum(r.params for r in rows)
    macs = sum(r.macs for r in rows)
    lines.append(f"total: {params:,} parameters, {macs:,} multiply-accumulates per input")
    return layers, "\n".join(lines)


DENSE_DATASETS = ("scenes",)       # labelled per pixel: shifts would move the labels


def cmd_train(args) -> int:
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
                      weight_decay=args.weight_decay, lr_step=args.lr_step, lr_gamma=args.lr_gamma,
                      shift=(0 if args.dataset in DENSE_DATASETS else 2) if args.shift is None else args.shift,
                      seed=args.seed)
    check_output_file(args.output, "-o")          # before the data is read and the training starts
    net = build_network(args.arch, seed=args.seed)
    cfg.check_input(net.input.shape)
    data = load_dataset(args.dataset, net.input.shape, net.classes, data_dir=args.data_dir, seed=args.seed)
    if not args.json:
        print(f"training {net.name} on {data.name}: {len(data.train_x)} train, {len(data.test_x)} test images",
              file=sys.stderr)
    result = train(net, data, cfg, quiet=args.json or args.quiet)
    save_model(net, args.output)
    obj = {"model": str(args.output), "arch": net.name, "dataset": data.name,
           "test_accuracy": result.test_accuracy, "train_accuracy": result.train_accuracy,
           "train_seconds": round(result.train_seconds, 3), "epochs": result.epochs,
           "train_images": len(data.train_x), "test_images": len(data.test_x)}
    emit(args, obj, f"test accuracy {_accuracy(result.test_accuracy)} (train {_accuracy(result.train_accuracy)}) "
                     f"after {result.epochs} epochs in {result.train_seconds:.1f} s; wrote {args.output}")
    return 0


def cmd_init(args) -> int:
    check_seed(args.seed)
    check_output_file(args.output, "-o")
    net = build_network(args.arch, seed=args.seed)
    save_model(net, args.output)
    layers, _ = _info_table(net)
    obj = {"model": str(args.output), "arch": net.name, "layers": len(layers),
           "params": sum(r["params"] for r in layers), "macs": sum(r["macs"] for r in layers)}
    emit(args, obj, f"wrote {args.output}: {net.name} with random weights (seed {args.seed}), "
                     f"{obj['params']:,} parameters")
    return 0


def cmd_info(args) -> int:
    net = load_model(args.model)
    layers, text = _info_table(net)
    obj = {"model": str(args.model), "name": net.name, "input_shape": list(net.input.shape),
           "classes": net.classes, "layers": layers, "params": sum(r["params"] for r in layers),
           "macs": sum(r["macs"] for r in layers), "meta": net.meta}
    emit(args, obj, text)
    return 0


def cmd_import(args) -> int:
    check_output_file(args.output, "-o")
    net = import_onnx(args.model, input_shape=parse_shape(args.input_shape), mean=parse_floats("--mean", args.mean),
                      std=parse_floats("--std", args.std))
    save_model(net, args.output)
    layers, text = _info_table(net)
    obj = {"model": str(args.output), "source": str(args.model), "name": net.name,
           "input_shape": list(net.input.shape), "classes": net.classes, "layers": layers,
           "params": sum(r["params"] for r in layers), "macs": sum(r["macs"] for r in layers), "meta": net.meta}
    emit(args, obj, f"{text}\nwrote {args.output}")
    return 0


def cmd_export(args) -> int:
    check_output_file(args.output, "-o")
    net = load_model(args.model)
    export_onnx(net, args.output)
    obj = {"model": str(args.model), "onnx": str(args.output), "opset": OPSET, "layers": len(net.layers)}
    text = f"wrote {args.output}: {net.name}, {len(net.layers)} layers, opset {OPSET}"
    if args.check:
        try:
            import onnxruntime  # optional tool: convc.optional
        except ImportError:
            raise ConvcError("--check needs onnxruntime: pip install onnxruntime") from None
        session = onnxruntime.InferenceSession(str(args.output), providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).random((4, 1) + tuple(net.input.shape), dtype=np.float32)
        theirs = np.concatenate([session.run(None, {"input": xi})[0] for xi in x])
        ours = net.forward(x[:, 0].astype(np.float64))
        err = float(np.abs(theirs - ours).max() / max(np.abs(ours).max(), 1e-30))
        obj["max_rel_error"] = err
        text += f"\nonnxruntime against convc's reference on 4 random inputs: largest relative error {err:.2e}"
    emit(args, obj, text)
    return 0

"""The ``convc`` command line.

Every subcommand accepts ``--json``: it then prints exactly one JSON object
on stdout (progress still goes to stderr unless quiet). Problems with the
user's input exit with status 2 and one message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .errors import EXIT_USAGE, ConvcError


def _emit(args, obj: dict, text: str) -> None:
    if args.json:
        print(json.dumps(obj, indent=None, sort_keys=False))
    else:
        print(text)


def _info_table(net) -> tuple[list[dict], str]:
    rows = net.info()
    lines = [f"{net.name}: input {list(net.input.shape)}, {net.classes} classes",
             f"{'#':>3} {'name':<12} {'type':<11} {'output':<16} {'params':>10} {'MACs':>14}"]
    layers = []
    for r in rows:
        shape = "x".join(str(v) for v in r.out_shape)
        lines.append(f"{r.index:>3} {r.name:<12} {r.type:<11} {shape:<16} {r.params:>10,} {r.macs:>14,}")
        layers.append({"index": r.index, "name": r.name, "type": r.type, "out_shape": list(r.out_shape),
                       "params": r.params, "macs": r.macs})
    params = sum(r.params for r in rows)
    macs = sum(r.macs for r in rows)
    lines.append(f"total: {params:,} parameters, {macs:,} multiply-accumulates per input")
    return layers, "\n".join(lines)


def cmd_train(args) -> int:
    from convc.reference.archs import build_network
    from convc.reference.datasets import load_dataset
    from convc.reference.modelfile import save_model
    from convc.reference.train import TrainConfig, train

    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
                      weight_decay=args.weight_decay, lr_step=args.lr_step, lr_gamma=args.lr_gamma,
                      shift=args.shift, seed=args.seed)
    net = build_network(args.arch, seed=args.seed)
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
    _emit(args, obj, f"test accuracy {result.test_accuracy:.4f} (train {result.train_accuracy:.4f}) "
                     f"after {result.epochs} epochs in {result.train_seconds:.1f} s; wrote {args.output}")
    return 0


def cmd_init(args) -> int:
    from convc.reference.archs import build_network
    from convc.reference.modelfile import save_model

    net = build_network(args.arch, seed=args.seed)
    save_model(net, args.output)
    layers, _ = _info_table(net)
    obj = {"model": str(args.output), "arch": net.name, "layers": len(layers),
           "params": sum(r["params"] for r in layers), "macs": sum(r["macs"] for r in layers)}
    _emit(args, obj, f"wrote {args.output}: {net.name} with random weights (seed {args.seed}), "
                     f"{obj['params']:,} parameters")
    return 0


def cmd_info(args) -> int:
    from convc.reference.modelfile import load_model

    net = load_model(args.model)
    layers, text = _info_table(net)
    obj = {"model": str(args.model), "name": net.name, "input_shape": list(net.input.shape),
           "classes": net.classes, "layers": layers, "params": sum(r["params"] for r in layers),
           "macs": sum(r["macs"] for r in layers), "meta": net.meta}
    _emit(args, obj, text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convc", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"convc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def common(p):
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        return p

    p = common(sub.add_parser("train", help="train a network and write model.npz"))
    p.add_argument("--arch", default="lenet", help="lenet, sceneparse, or a JSON spec file (default lenet)")
    p.add_argument("--dataset", default="digits", help="digits, mnist or synthetic (default digits)")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files")
    p.add_argument("-o", "--output", default="model.npz", help="model file to write (default model.npz)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--lr-step", type=int, default=8, help="epochs between learning-rate drops")
    p.add_argument("--lr-gamma", type=float, default=0.2, help="learning-rate factor at each drop")
    p.add_argument("--shift", type=int, default=2, help="random shift augmentation in pixels (0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = common(sub.add_parser("init", help="write a model with random weights (no training)"))
    p.add_argument("--arch", default="sceneparse")
    p.add_argument("-o", "--output", default="model.npz")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_init)

    p = common(sub.add_parser("info", help="layers, shapes, parameters and MACs of a model"))
    p.add_argument("model")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConvcError as exc:
        print(f"convc: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("convc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0

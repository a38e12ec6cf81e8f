"""The ``convc`` command line.

Every subcommand accepts ``--json``: it then prints exactly one JSON object
on stdout (progress still goes to stderr unless quiet). Problems with the
user's input exit with status 2 and one message, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .commands_compile import cmd_boards, cmd_compile, cmd_synth
from .commands_model import cmd_export, cmd_import, cmd_info, cmd_init, cmd_train
from .commands_run import cmd_compare, cmd_run, cmd_simulate, cmd_verify
from .errors import EXIT_USAGE, ConvcError
from .progress import end_line

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convc", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"convc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def common(p):
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        return p

    p = common(sub.add_parser("train", help="train a network and write model.npz"))
    p.add_argument("--arch", default="lenet", help="lenet, sceneparse, sceneparse-small (3x96x128), or a JSON spec "
                   "file (default lenet)")
    p.add_argument("--dataset", default="digits", help="digits, mnist, synthetic, or scenes (procedural scenes "
                   "labelled per pixel, for scene parsers) (default digits)")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files")
    p.add_argument("-o", "--output", default="model.npz", help="model file to write (default model.npz)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--lr-step", type=int, default=8, help="epochs between learning-rate drops")
    p.add_argument("--lr-gamma", type=float, default=0.2, help="learning-rate factor at each drop")
    p.add_argument("--shift", type=int, default=None,
                   help="random shift augmentation in pixels (0: off; default 2, and 0 for the per-pixel "
                        "labelled scenes)")
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

    p = common(sub.add_parser("import", help="import an ONNX model (from PyTorch, Keras, ...) as model.npz"))
    p.add_argument("model", help="a .onnx file (batch size 1)")
    p.add_argument("-o", "--output", default="model.npz", help="model file to write (default model.npz)")
    p.add_argument("--input-shape", help="C,H,W for a graph whose input sizes are dynamic")
    p.add_argument("--mean", help="per-channel input mean, comma-separated (stored in the model; default 0)")
    p.add_argument("--std", help="per-channel input std, comma-separated (stored in the model; default 1)")
    p.set_defaults(func=cmd_import)

    p = common(sub.add_parser("export", help="write a model as ONNX (opset 13)"))
    p.add_argument("model", help="a model.npz (or .onnx)")
    p.add_argument("-o", "--output", default="model.onnx", help="ONNX file to write (default model.onnx)")
    p.add_argument("--check", action="store_true",
                   help="run the written file with onnxruntime against convc's reference on random inputs")
    p.set_defaults(func=cmd_export)

    p = common(sub.add_parser("boards", help="the boards convc can size an accelerator for"))
    p.set_defaults(func=cmd_boards)

    p = common(sub.add_parser("compile", help="lower a model to a fixed-point schedule for a board"))
    p.add_argument("model")
    p.add_argument("--board", default="virtex6", help="see 'convc boards' (default virtex6)")
    p.add_argument("-o", "--output", default="out/compiled", help="output folder (default out/compiled)")
    p.add_argument("--bits", type=int, default=16, help="activation and weight width (default 16)")
    p.add_argument("--pwl-segments", type=int, default=16, help="segments per PWL table (default 16)")
    p.add_argument("--calib", type=int, help="calibration images (default: 256, or 2 for large inputs)")
    p.add_argument("--images", help="calibrate on these raw inputs (.npy, (N, C, H, W)) instead")
    p.add_argument("--in-lanes", type=int, help="force the input lanes (default: chosen for the board)")
    p.add_argument("--out-lanes", type=int, help="force the output lanes (default: chosen for the board)")
    p.add_argument("--fc-in-lanes", type=int, help="force the FC engine's input lanes (default: chosen)")
    p.add_argument("--fc-out-lanes", type=int, help="force the FC engine's output lanes (default: chosen)")
    p.add_argument("--no-hdl", action="store_true",
                   help="do not write hdl/convc_accel.v and the ISE project ise/ (quicker)")
    p.add_argument("--synth", action="store_true",
                   help="Yosys resource counts of the whole accelerator into the report (minutes when large)")
    p.add_argument("--synth-full", action="store_true",
                   help="like --synth, with LUT mapping for LUT counts (slower)")
    p.add_argument("--bitstream", action="store_true",
                   help="run the open flow to a bitstream (boards with one: ulx3s): Fmax, critical path, "
                        "utilization into the report, the build in OUT/bitstream/ (minutes)")
    p.set_defaults(func=cmd_compile)

    p = common(sub.add_parser("synth", help="Yosys resource counts of a compiled folder's engines"))
    p.add_argument("compiled", help="a folder written by 'convc compile'")
    p.add_argument("--engine", action="append", choices=["conv", "pool", "fc", "lcn", "pointwise"],
                   help="engine to synthesize (repeatable; default conv)")
    p.add_argument("--full", action="store_true", help="full flow with LUT mapping (minutes for large engines)")
    p.set_defaults(func=cmd_synth)

    p = common(sub.add_parser("run", help="run the bit-exact golden model of a compiled folder"))
    p.add_argument("compiled", help="a folder written by 'convc compile'")
    p.add_argument("--images", help="raw inputs (.npy, (N, C, H, W))")
    p.add_argument("--labels", help=argparse.SUPPRESS)
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--save", help="write the outputs (real values) to this .npy file")
    p.set_defaults(func=cmd_run)

    p = common(sub.add_parser("compare", help="float reference against fixed point, layer by layer"))
    p.add_argument("model")
    p.add_argument("compiled", help="a folder written by 'convc compile' from this model")
    p.add_argument("--images", help="raw inputs (.npy); default: the test split of the model's dataset")
    p.add_argument("--labels", help="labels for --images (.npy of ints), for accuracy")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--report", help="also write report.json and report.html into this folder (for a scene "
                                    "parser, the first images' label maps as pictures)")
    p.set_defaults(func=cmd_compare)

    p = common(sub.add_parser("simulate", help="cycle-level simulation: cycles, ms per frame, MAC use"))
    p.add_argument("target", help="a folder written by 'convc compile', or a model.npz (then --board)")
    p.add_argument("--board", default="virtex6", help="board, when TARGET is a model (default virtex6)")
    p.add_argument("--memory", choices=["board", "axi-ram"], default="board",
                   help="memory timing: the board's DDR3 (default) or the testbenches' AXI RAM model")
    p.add_argument("--records", action="store_true", help="also list every record")
    p.set_defaults(func=cmd_simulate)

    p = common(sub.add_parser("verify", help="run the accelerator's Verilog on test images against the "
                                             "golden model; bit-accuracy and cycle report"))
    p.add_argument("compiled", help="a folder written by 'convc compile'")
    p.add_argument("--images", type=int, default=10, help="test images to run in RTL (default 10)")
    p.add_argument("--model", help="the float model (default: the one recorded at compile time)")
    p.add_argument("--harness", choices=["native", "cocotb"], default="native",
                   help="native: Verilator with a C++ memory and host (default, fast); cocotb: Python on "
                        "every clock (debugging)")
    p.add_argument("--sim", choices=["icarus", "verilator"],
                   help="the simulator of --harness cocotb (default icarus)")
    p.add_argument("--memory", choices=["axi-ram", "board"], default="axi-ram",
                   help="native harness memory timing: the cycle model's axi-ram (default) or board (ML605 DDR3)")
    p.add_argument("--backpressure", type=int, metavar="SEED",
                   help="random AXI backpressure, delays and ID interleaving from this seed (native harness)")
    p.add_argument("--trace", metavar="FILE", help="waveform of the first image (.fst or .vcd; native harness)")
    p.add_argument("--max-cycles", type=int, metavar="N", help="cycle budget of one image (default: 4 times the "
                                                                   "cycle model's figure + 100k)")
    p.add_argument("--verilog", metavar="FILE", help="the Verilog to run (default COMPILED/hdl/convc_accel.v)")
    p.add_argument("--report", help="report folder (default COMPILED/verify)")
    p.set_defaults(func=cmd_verify)
    return parser


def _quiet_exit() -> None:
    """After an error or Ctrl-C, no Amaranth "created but never used" warnings for the
    engines a command built but never elaborated (they would bury the one message)."""
    unused = sys.modules.get("amaranth._unused")
    if unused is not None:
        unused.MustUse._MustUse__silence = True


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "synth" and not args.engine:
        args.engine = ["conv"]
    try:
        return int(args.func(args) or 0)
    except ConvcError as exc:
        _quiet_exit()
        end_line()
        print(f"convc: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _quiet_exit()
        end_line()
        print("convc: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        _quiet_exit()
        end_line()
        print(f"convc: error: {args.command}: out of memory; the model or the inputs are too large for this "
              "machine", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0

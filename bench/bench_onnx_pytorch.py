"""A PyTorch LeNet-5 through ONNX into convc: both exporters, fixed point against PyTorch.

Needs PyTorch, an optional extra (not a test dependency)::

    .venv/bin/pip install -e '.[torch]'      # torch 2.13.0 (CPU build), onnxscript, onnx, onnxruntime

What it does, in one run:

1. defines LeNet-5 in PyTorch with the layers of convc's own ``lenet``
   (``reference/archs.py``: 1x32x32 input, conv 5x5 (6) -> tanh -> max 2x2 ->
   conv 5x5 (16) -> tanh -> max 2x2 -> linear 400->120 -> tanh -> linear
   120->10 -> log-softmax; ``--activation relu`` swaps every tanh) and trains it
   briefly (SGD with convc train's default schedule and shift augmentation;
   ``--threads`` torch threads) on the
   scikit-learn digits as convc's own loader gives them
   (``convc.reference.datasets.load_digits``: the same 32x32 canvas, the same
   stratified 80/20 split, the same labels). The model takes the raw [0, 1]
   images: no normalization outside the graph, so ``convc compile model.onnx``
   needs no ``--mean``/``--std``;
2. exports it to ONNX with batch size 1 twice: the TorchScript exporter
   (``torch.onnx.export(..., dynamo=False)``) and the torch.export-based one
   (``dynamo=True``; it writes the weights beside the graph, ``model.onnx.data``);
3. for each export: ``convc compile model.onnx --board virtex6 --images CALIB.npy``
   (calibrated on the first 256 training images, as convc calibrates a model it
   trained on digits), ``convc run OUT --images X.npy --save S.npy`` (the
   bit-exact golden model on the 359 held-out digits) and ``convc compare
   model.onnx OUT --images X.npy --labels Y.npy`` (float against fixed point);
   and the float reference of the imported network
   (``import_onnx(path).forward(x)``) against onnxruntime on the same file.

Figures per exporter: opset, the ONNX op types in the graph, top-1 agreement of
the fixed-point predictions with PyTorch's own (target >= 99.5%), PyTorch's
accuracy, the fixed-point accuracy, the float reference's largest error against
onnxruntime relative to the largest onnxruntime output (``max|ref - ort| /
max|ort|`` over all held-out images; this script's target: <= 1e-4), and the
seconds of ``convc compile`` (a subprocess, Verilog and ISE project included
unless ``--no-hdl``). A missed target prints MISSED beside the figure; the exit
status is still 0. A command convc refuses prints its message; the op types
of the graph are printed either way. Exit status 2 (one message) only when
torch, onnx or onnxruntime cannot be imported.

    .venv/bin/python bench/bench_onnx_pytorch.py [--epochs 20] [--activation tanh|relu]
        [--exporters torchscript dynamo] [--out DIR] [--no-hdl] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

AGREEMENT_TARGET = 0.995      # top-1 agreement of fixed point with PyTorch
REL_ERR_TARGET = 1e-4         # float reference against onnxruntime
CALIB_IMAGES = 256            # what convc calibrates a digits-trained model on (convc.inputs.DEFAULT_CALIB)
EXPORTERS = ("torchscript", "dynamo")

_log_json = False


def log(msg: str) -> None:
    """Progress: stdout, or stderr under --json (stdout then holds one JSON object)."""
    print(msg, file=sys.stderr if _log_json else sys.stdout, flush=True)


def _missing(what: str, exc: Exception) -> int:
    print(f"bench_onnx_pytorch: needs {what}, an optional extra of convc (cannot import it: {exc}); "
          "install it with: .venv/bin/pip install -e '.[torch]'   (torch==2.13.0, the CPU build)",
          file=sys.stderr)
    return 2


def convc_cmd() -> list[str]:
    """The convc command line of this interpreter's environment."""
    exe = Path(sys.executable).parent / "convc"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "convc"]


# ----------------------------------------------------------------------------
# PyTorch: LeNet-5 as convc's lenet, trained on convc's digits
# ----------------------------------------------------------------------------

def lenet_torch(activation: str):
    from torch import nn

    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), act(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), act(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120), act(),
        nn.Linear(120, 10),
        nn.LogSoftmax(dim=1),
    )


def shifted(x: np.ndarray, shift: int, rng: np.random.Generator) -> np.ndarray:
    """Every image moved by up to ``shift`` pixels each way, zero fill (convc train's augmentation)."""
    if shift == 0:
        return x
    n, _, h, w = x.shape
    pad = np.pad(x, ((0, 0), (0, 0), (shift, shift), (shift, shift)))
    dy, dx = rng.integers(0, 2 * shift + 1, size=(2, n))
    return np.stack([pad[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def train_torch(model, data, epochs: int, seed: int, shift: int) -> float:
    """SGD with momentum 0.9, lr 0.05 x0.2 every 8 epochs, weight decay 1e-4, batch 32,
    random shifts of up to ``shift`` pixels (convc train's defaults); returns the seconds."""
    import torch

    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    y = torch.from_numpy(data.train_y)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=8, gamma=0.2)
    loss_fn = torch.nn.NLLLoss()
    t0 = time.perf_counter()
    model.train()
    for _ in range(epochs):
        x = torch.from_numpy(np.ascontiguousarray(shifted(data.train_x, shift, rng), dtype=np.float32))
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 32):
            idx = order[i:i + 32]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    return time.perf_counter() - t0


def predict_torch(model, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x))).numpy()


# ----------------------------------------------------------------------------
# export and ONNX facts
# ----------------------------------------------------------------------------

def export(model, exporter: str, path: Path, example) -> float:
    """Export with batch size 1 fixed; returns the seconds. The exporters' chatter
    (progress lines, deprecation warnings) goes to stderr."""
    import logging

    import torch

    # "torchvision is not installed. Skipping torchvision::nms" and the like: not about this model
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(model, (example,), str(path), dynamo=False,
                              input_names=["input"], output_names=["output"])
        else:
            torch.onnx.export(model, (example,), str(path), dynamo=True,
                              input_names=["input"], output_names=["output"])
    return time.perf_counter() - t0


def onnx_facts(path: Path) -> dict:
    import onnx

    m = onnx.load(str(path))
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
    nodes = [n.op_type for n in m.graph.node]
    files = sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name))
    return {"opset": opset, "ir_version": m.ir_version, "producer": f"{m.producer_name} {m.producer_version}",
            "nodes": nodes, "op_types": list(dict.fromkeys(nodes)),
            "other_domains": [f"{o.domain}:{o.version}" for o in m.opset_import if o.domain not in ("", "ai.onnx")],
            "files": files}


def ort_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    """onnxruntime on ``x``, one image a call when the graph fixes batch size 1."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    batch = inp.shape[0] if inp.shape else None
    if isinstance(batch, int) and batch >= 1:
        outs = [sess.run(None, {inp.name: x[i:i + batch]})[0] for i in range(0, len(x), batch)]
        return np.concatenate(outs).reshape(len(x), -1)
    return sess.run(None, {inp.name: x})[0].reshape(len(x), -1)


# ----------------------------------------------------------------------------
# convc
# ----------------------------------------------------------------------------

def convc(args: list[str], timeout: float = 1800) -> tuple[dict | None, str, float]:
    """Run ``convc ARGS --json``: (the JSON object or None, the error message, seconds)."""
    t0 = time.perf_counter()
    p = subprocess.run(convc_cmd() + args + ["--json"], capture_output=True, text=True, timeout=timeout)
    sec = time.perf_counter() - t0
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        msg = next((ln for ln in reversed(lines) if ln.startswith("convc: error")), lines[-1] if lines else "")
        return None, f"exit {p.returncode}: {msg}", sec
    try:
        return json.loads(p.stdout), "", sec
    except json.JSONDecodeError as exc:
        return None, f"no JSON on stdout ({exc}): {p.stdout[:200]!r}", sec


def import_reference(path: Path, x: np.ndarray) -> tuple[np.ndarray | None, str]:
    """``import_onnx(path).forward(x)``, or the importer's message."""
    try:
        from convc.reference.onnx_import import import_onnx
    except ImportError as exc:
        return None, f"convc.reference.onnx_import not available ({exc})"
    try:
        net = import_onnx(str(path))
        return np.asarray(net.forward(x), dtype=np.float64).reshape(len(x), -1), ""
    except Exception as exc:      # ConvcError: the importer's refusal, reported as it is
        return None, f"{type(exc).__name__}: {exc}"


def bench_one(name: str, model, data, work: Path, files: dict, torch_out: np.ndarray, no_hdl: bool) -> dict:
    import torch

    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / "lenet.onnx"
    for stale in folder.glob("lenet.onnx*"):
        stale.unlink()
    row: dict = {"exporter": name, "onnx": str(onnx_path), "errors": {}}
    try:
        row["export_seconds"] = round(export(model, name, onnx_path, torch.from_numpy(data.test_x[:1])), 2)
    except Exception as exc:
        row["errors"]["export"] = f"{type(exc).__name__}: {exc}"
        log(f"[{name}] export failed: {row['errors']['export']}")
        return row
    row.update(onnx_facts(onnx_path))
    log(f"[{name}] opset {row['opset']}, {len(row['nodes'])} nodes: {' '.join(row['nodes'])}; "
        f"files {', '.join(row['files'])} ({row['export_seconds']} s)")

    # the exported graph against PyTorch (onnxruntime), then the importer against onnxruntime
    x, y = data.test_x, data.test_y
    ort_out = ort_outputs(onnx_path, x)
    row["ort_vs_torch_max_abs"] = float(np.max(np.abs(ort_out - torch_out)))
    ref, err = import_reference(onnx_path, x)
    if ref is None:
        row["errors"]["import_onnx"] = err
        log(f"[{name}] import_onnx: {err}")
    elif ref.shape != ort_out.shape:
        row["errors"]["import_onnx"] = f"forward gives shape {list(ref.shape)}, onnxruntime {list(ort_out.shape)}"
        log(f"[{name}] import_onnx: {row['errors']['import_onnx']}")
    else:
        row["ref_vs_ort_max_abs"] = float(np.max(np.abs(ref - ort_out)))
        row["ref_vs_ort_max_rel"] = row["ref_vs_ort_max_abs"] / float(np.max(np.abs(ort_out)))
        row["ref_vs_torch_top1_agreement"] = float(np.mean(ref.argmax(1) == torch_out.argmax(1)))

    out_dir = folder / "lenet-virtex6"
    compile_args = ["compile", str(onnx_path), "--board", "virtex6", "-o", str(out_dir),
                    "--images", str(files["calib"])] + (["--no-hdl"] if no_hdl else [])
    log(f"[{name}] convc {' '.join(compile_args)}")
    obj, err, sec = convc(compile_args)
    row["compile_seconds"] = round(sec, 2)
    if obj is None:
        row["errors"]["compile"] = err
        log(f"[{name}] convc compile refused it: {err}")
        return row
    row["compile"] = {k: obj.get(k) for k in ("passes", "dsp", "bram36", "macs", "cycles", "ms_per_frame",
                                              "mac_utilization", "in_lanes", "out_lanes")}
    row["compile"]["formats"] = [{k: l.get(k) for k in ("name", "in_fmt", "w_fmt", "out_fmt")}
                                 for l in obj.get("layers", [])]

    save = folder / "fixed_outputs.npy"
    obj, err, sec = convc(["run", str(out_dir), "--images", str(files["x"]), "--save", str(save)])
    if obj is None:
        row["errors"]["run"] = err
        log(f"[{name}] convc run: {err}")
    else:
        fixed = np.load(save).reshape(len(x), -1)
        pred = fixed.argmax(1)
        row["run_seconds"] = obj.get("seconds")
        row["saturations"] = obj.get("saturations")
        row["input_saturations"] = obj.get("input_saturations")
        row["top1_agreement_vs_torch"] = float(np.mean(pred == torch_out.argmax(1)))
        row["accuracy_fixed"] = float(np.mean(pred == y))
        row["run_predictions_match_saved"] = obj.get("predictions") == pred.tolist()

    obj, err, sec = convc(["compare", str(onnx_path), str(out_dir), "--images", str(files["x"]),
                           "--labels", str(files["y"])])
    if obj is None:
        row["errors"]["compare"] = err
        log(f"[{name}] convc compare: {err}")
    else:
        row["compare"] = {k: obj.get(k) for k in ("top1_agreement", "accuracy_float", "accuracy_fixed")}
        row["compare"]["sqnr_db"] = {l.get("name"): l.get("sqnr_db") for l in obj.get("layers", [])
                                     if isinstance(l, dict)}
    return row


# ----------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------

def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def table(rows: list[dict], acc_torch: float) -> str:
    head = (f"{'exporter':<12} {'opset':>5}  {'top-1 vs torch':<22} {'acc torch':>9} {'acc fixed':>9}  "
            f"{'ref vs ORT rel':<20} {'compile s':>9}  ONNX ops")
    lines = [head, "-" * len(head)]
    for r in rows:
        agree = r.get("top1_agreement_vs_torch")
        agree_s = _pct(agree) + ("" if agree is None else (" ok" if agree >= AGREEMENT_TARGET else " MISSED"))
        if agree is None:
            agree_s += " MISSED"
        rel = r.get("ref_vs_ort_max_rel")
        rel_s = "-" if rel is None else f"{rel:.2e}"
        rel_s += " MISSED" if rel is None or rel > REL_ERR_TARGET else " ok"
        comp = r.get("compile_seconds")
        lines.append(f"{r['exporter']:<12} {str(r.get('opset', '-')):>5}  {agree_s:<22} {_pct(acc_torch):>9} "
                     f"{_pct(r.get('accuracy_fixed')):>9}  {rel_s:<20} "
                     f"{'-' if comp is None else f'{comp:.1f}':>9}  {','.join(r.get('op_types', [])) or '-'}")
    lines.append(f"targets: top-1 agreement of fixed point with PyTorch >= {100 * AGREEMENT_TARGET:g}%; "
                 f"max|ref - onnxruntime| / max|onnxruntime| <= {REL_ERR_TARGET:g}")
    for r in rows:
        c = r.get("compare")
        if c:
            lines.append(f"{r['exporter']}: convc compare: top1_agreement (float vs fixed) "
                         f"{_pct(c.get('top1_agreement'))}, accuracy float {_pct(c.get('accuracy_float'))}, "
                         f"fixed {_pct(c.get('accuracy_fixed'))}")
        if "ort_vs_torch_max_abs" in r:
            lines.append(f"{r['exporter']}: onnxruntime vs PyTorch max abs {r['ort_vs_torch_max_abs']:.2e}"
                         + (f"; reference vs onnxruntime max abs {r['ref_vs_ort_max_abs']:.2e}"
                            if "ref_vs_ort_max_abs" in r else ""))
        if r.get("compile"):
            cp = r["compile"]
            lines.append(f"{r['exporter']}: compiled: {cp['passes']} passes, {cp['dsp']} DSP48E1, "
                         f"{cp['ms_per_frame']} ms a frame")
        for step, msg in r["errors"].items():
            lines.append(f"{r['exporter']}: {step}: {msg}")
    return "\n".join(lines)


def main() -> int:
    global _log_json
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    ap.add_argument("--seed", type=int, default=0, help="torch seed (default 0)")
    ap.add_argument("--shift", type=int, default=2, help="training shifts up to this many pixels (default 2, "
                                                          "as convc train; 0: off)")
    ap.add_argument("--activation", choices=["tanh", "relu"], default="tanh", help="as convc's lenet: tanh")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--exporters", nargs="+", choices=EXPORTERS, default=list(EXPORTERS))
    ap.add_argument("--out", help="folder for the ONNX files and compiled folders (default: a temporary "
                                  "folder, removed at the end)")
    ap.add_argument("--no-hdl", action="store_true", help="compile without the Verilog and ISE project (quicker)")
    ap.add_argument("--json", action="store_true", help="progress on stderr, one JSON object on stdout")
    args = ap.parse_args()
    _log_json = args.json
    if args.epochs < 1 or args.threads < 1 or args.seed < 0 or not 0 <= args.shift <= 4:
        ap.error("--epochs and --threads must be >= 1, --seed >= 0, --shift 0 to 4")

    try:
        import torch
    except ImportError as exc:
        return _missing("PyTorch", exc)
    for mod in ("onnx", "onnxruntime"):
        try:
            __import__(mod)
        except ImportError as exc:
            return _missing(mod, exc)
    from convc.errors import ConvcError
    from convc.reference.datasets import load_digits

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        data = load_digits()
    except ConvcError as exc:
        print(f"bench_onnx_pytorch: {exc}", file=sys.stderr)
        return 2

    model = lenet_torch(args.activation)
    sec = train_torch(model, data, args.epochs, args.seed, args.shift)
    torch_out = predict_torch(model, data.test_x)
    acc_torch = float(np.mean(torch_out.argmax(1) == data.test_y))
    log(f"PyTorch {torch.__version__} LeNet-5 ({args.activation}) on digits ({len(data.train_x)} train, "
        f"{len(data.test_x)} test; convc's split): {args.epochs} epochs in {sec:.1f} s on {args.threads} "
        f"thread(s), test accuracy {acc_torch:.4f}")

    tmp = None
    if args.out:
        work = Path(args.out)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="bench_onnx_pytorch.")
        work = Path(tmp)
    try:
        files = {"x": work / "test_x.npy", "y": work / "test_y.npy", "calib": work / "calib_x.npy"}
        np.save(files["x"], np.ascontiguousarray(data.test_x, dtype=np.float32))     # (359, 1, 32, 32)
        np.save(files["y"], data.test_y.astype(np.int64))
        np.save(files["calib"], np.ascontiguousarray(data.train_x[:CALIB_IMAGES], dtype=np.float32))
        rows = [bench_one(name, model, data, work, files, torch_out, args.no_hdl) for name in args.exporters]
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    text = table(rows, acc_torch)
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps({"torch": torch.__version__, "activation": args.activation, "epochs": args.epochs,
                          "shift": args.shift, "train_seconds": round(sec, 2), "accuracy_torch": acc_torch,
                          "test_images": len(data.test_x), "agreement_target": AGREEMENT_TARGET,
                          "rel_err_target": REL_ERR_TARGET, "out": None if tmp else str(work), "exporters": rows}))
    else:
        print()
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

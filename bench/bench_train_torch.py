"""Train the same network with convc's NumPy trainer and with PyTorch; print both times.

The issue's measure: convc's training time over PyTorch's at one thread, on the same
network, data, epochs and optimizer settings (target: within 1.5 times).

    .venv/bin/python bench/bench_train_torch.py [--epochs 30] [--repeat 1]
    .venv/bin/python bench/bench_train_torch.py --arch sceneparse-small --dataset scenes --epochs 2

Three runs, each in a fresh subprocess so that no thread pool is shared:

* ``convc 1 thread``: NumPy's BLAS limited to one thread (``OPENBLAS_NUM_THREADS``,
  ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` = 1 set before NumPy is imported, and
  threadpoolctl's limit when it is installed): the per-thread comparison;
* ``convc default``: BLAS with its default thread count (all cores);
* ``torch 1 thread``: ``torch.set_num_threads(1)`` (and the same variables).

The PyTorch side gets the same network (layer by layer from the convc spec, starting
from the *same* initial weights; a connection table becomes ``groups=g`` when it is
one, as the built-in scene nets' grouped tables are, else a weight mask; LCN is
written in torch ops), the same data and split, the same random order of the batches
and the same random shifts (the convc trainer's recipe, with the same seed), the same
per-batch input normalization, and ``TrainConfig``'s defaults: batch 32, SGD lr 0.05
momentum 0.9, weight decay 1e-4 on weights (not biases), lr x0.2 every 8 epochs,
shift 2 (0 for the per-pixel labelled scenes, whose loss is the per-pixel NLL with the
ignore label at the output's pixels). It uses ``torch.optim.SGD``, whose momentum
buffer holds gradients rather than steps; the two agree except right after an lr step.
Both sides end with the same test accuracy to the last digit on lenet/digits
(30 epochs) and sceneparse-small/scenes (1 epoch), a check that they compute the
same thing. PyTorch computes no gradient for the input, so it skips the backward of
the first layers (LCN, the first convolution's input gradient), which convc's
``Network.backward`` computes.

The time is the training loop only (convc's ``TrainResult.train_seconds``; the same span
for torch), not data loading or evaluation. The process CPU time of the same span is
printed too: for a one-thread run it holds up better than wall time on a shared machine.
``--openblas-coretype SkylakeX`` sets ``OPENBLAS_CORETYPE`` for the convc runs (OpenBLAS
0.3.31 takes this machine's AVX-512 EPYC for a Haswell and uses AVX2 kernels; a big
float32 matmul runs about 1.8x faster with the SkylakeX kernels).

torch is not a dependency of convc. If it is missing the bench says so and times convc
alone, or installs it with ``--install-torch`` (``pip install torch==2.13.0`` from PyPI,
the CPU build that the project's ``torch`` extra pins; a CUDA build is several GB).

Nothing is timed well while other heavy work runs: on two busy cores OpenBLAS threads
busy-wait and the figures mean nothing. The bench prints the load average it started at.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
TORCH_PIN = "torch==2.13.0"


# ---------------------------------------------------------------------------
# data and config, the same on both sides
# ---------------------------------------------------------------------------

def _setup(arch: str, dataset: str, epochs: int, seed: int):
    from convc.reference.archs import build_network
    from convc.reference.datasets import load_dataset, load_digits
    from convc.reference.train import TrainConfig

    net = build_network(arch, seed=seed)
    if dataset == "digits":
        data = load_digits()
    else:
        data = load_dataset(dataset, tuple(net.input.shape), net.classes, seed=0)
    cfg = TrainConfig(epochs=epochs, seed=seed, shift=0 if data.train_y.ndim == 3 else TrainConfig.shift)
    return net, data, cfg


def _blas_threads():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return {p.get("internal_api", "?") + (f" {p['architecture']}" if p.get("architecture") else ""):
            p.get("num_threads") for p in threadpool_info()}


# ---------------------------------------------------------------------------
# workers (each runs in its own process)
# ---------------------------------------------------------------------------

def worker_convc(args) -> dict:
    limiter = None
    if args.threads == 1:
        try:
            from threadpoolctl import threadpool_limits
            limiter = threadpool_limits(limits=1)
        except ImportError:
            pass          # the environment variables, set before NumPy was imported, do it
    import convc.reference.train as trainer

    net, data, cfg = _setup(args.arch, args.dataset, args.epochs, args.seed)
    blas = _blas_threads()
    # The trainer times its loop with two time.perf_counter() calls; a stand-in
    # module notes the process CPU time at each call as well (CPU seconds hold up
    # better than wall seconds on a shared machine; with BLAS threads they add up
    # every thread's time, busy-waiting included).
    clock = _CpuNotingTime()
    real_time, trainer.time = trainer.time, clock
    try:
        res = trainer.train(net, data, cfg, quiet=True)
    finally:
        trainer.time = real_time
    if limiter is not None:
        limiter.restore_original_limits()
    cpu = clock.cpu[1] - clock.cpu[0] if len(clock.cpu) == 2 else None
    return {"seconds": res.train_seconds, "cpu_seconds": cpu, "test_accuracy": res.test_accuracy,
            "train_accuracy": res.train_accuracy, "blas_threads": blas}


class _CpuNotingTime:
    """``time`` for the trainer: ``perf_counter()`` also records ``process_time()``."""

    def __init__(self):
        self.cpu = []

    def perf_counter(self):
        self.cpu.append(time.process_time())
        return time.perf_counter()

    def __getattr__(self, name):
        return getattr(time, name)


def _torch_model(net):
    """A torch.nn.Sequential equal to the convc chain ``net``, with its current weights."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    class MaskedConv2d(nn.Conv2d):
        """Conv2d whose weights outside the connection table are held at zero (as convc)."""

        def __init__(self, layer):
            super().__init__(layer.in_channels, layer.out_channels, layer.kernel,
                             stride=layer.stride, padding=layer.padding)
            mask = layer.connection_mask().astype(np.float32)[:, :, None, None]
            self.register_buffer("mask", torch.from_numpy(mask))

        def forward(self, x):
            return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)

    class LCN(nn.Module):
        """convc's LocalContrastNorm (zero padding, max(s, mean(s), eps) divisor)."""

        def __init__(self, layer):
            super().__init__()
            self.r = layer.kernel // 2
            self.eps = layer.EPS
            self.register_buffer("g", torch.from_numpy(layer.window().astype(np.float32))[None, None])

        def forward(self, x):
            c = x.shape[1]
            g = self.g / c
            m = F.conv2d(x.sum(1, keepdim=True), g, padding=self.r)
            v = x - m
            s = torch.sqrt(F.conv2d((v * v).sum(1, keepdim=True), g, padding=self.r))
            d = torch.clamp(torch.maximum(s, s.mean(dim=(2, 3), keepdim=True)), min=self.eps)
            return v / d

    class LogSoftmax(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.dim = dim

        def forward(self, x):
            return F.log_softmax(x, dim=self.dim)

    def torch_groups(layer) -> int:
        """g when the table is PyTorch's ``groups=g`` (block b of the outputs reads
        block b of the inputs), else 0."""
        o, c, table = layer.out_channels, layer.in_channels, layer.table
        for g in range(2, min(o, c) + 1):
            if o % g == 0 and c % g == 0 and layer.fan_in == c // g and all(
                    row == list(range((i // (o // g)) * (c // g), (i // (o // g) + 1) * (c // g)))
                    for i, row in enumerate(table)):
                return g
        return 0

    mods = []
    for layer in net.layers:
        t = layer.type
        groups = 0
        if t == "conv2d":
            groups = torch_groups(layer) if layer.table is not None else 0
            if layer.table is None or groups:
                m = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel, stride=layer.stride,
                              padding=layer.padding, groups=max(groups, 1))
            else:
                m = MaskedConv2d(layer)
        elif t == "linear":
            m = nn.Linear(layer.in_features, layer.out_features)
        elif t == "tanh":
            m = nn.Tanh()
        elif t == "relu":
            m = nn.ReLU()
        elif t == "maxpool2d":
            m = nn.MaxPool2d(layer.kernel, layer.stride)
        elif t == "avgpool2d":
            m = nn.AvgPool2d(layer.kernel, layer.stride)
        elif t == "flatten":
            m = nn.Flatten()
        elif t == "logsoftmax":
            m = LogSoftmax(-1)
        elif t == "pixel_logsoftmax":
            m = LogSoftmax(1)
        elif t == "lcn":
            m = LCN(layer)
        else:
            raise SystemExit(f"bench_train_torch: layer type {t!r} has no PyTorch counterpart here")
        if layer.params:
            weight = layer.params["weight"]
            if groups:   # (O, C / g, K, K): each output's own block of input maps
                per = layer.in_channels // groups
                weight = np.stack([weight[o, row[0]:row[0] + per] for o, row in enumerate(layer.table)])
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
                m.bias.copy_(torch.from_numpy(np.ascontiguousarray(layer.params["bias"])))
        mods.append(m)
    return nn.Sequential(*mods)


def worker_torch(args) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from convc.reference.train import _shift_batch    # the trainer's own shifts, same draws

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(args.seed)
    net, data, cfg = _setup(args.arch, args.dataset, args.epochs, args.seed)
    dense = data.train_y.ndim == 3
    model = _torch_model(net)
    add_head = dense and net.layers[-1].type != "pixel_logsoftmax"   # convc's trainer adds one
    decay = [p for name, p in model.named_parameters() if not name.endswith("bias")]
    nodecay = [p for name, p in model.named_parameters() if name.endswith("bias")]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": nodecay, "weight_decay": 0.0}], lr=cfg.lr, momentum=cfg.momentum)
    mean = data.train_x.mean(axis=(0, 2, 3)).reshape(1, -1, 1, 1).astype(np.float32)
    std = np.maximum(data.train_x.std(axis=(0, 2, 3)), 1e-6).reshape(1, -1, 1, 1).astype(np.float32)
    train_y = net.label_grid(data.train_y) if dense else data.train_y
    rng = np.random.default_rng(cfg.seed)
    n = len(data.train_x)
    steps = (n + cfg.batch_size - 1) // cfg.batch_size
    model.train()
    start, start_cpu = time.perf_counter(), time.process_time()
    for epoch in range(cfg.epochs):
        lr = cfg.lr * cfg.lr_gamma ** (epoch // cfg.lr_step)
        for group in opt.param_groups:
            group["lr"] = lr
        order = rng.permutation(n)
        loss_sum, correct = 0.0, 0
        for step in range(steps):
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            xb, yb = data.train_x[idx], train_y[idx]
            if cfg.shift:
                xb = _shift_batch(xb, rng, cfg.shift)
            xt = torch.from_numpy((xb - mean) / std)
            yt = torch.from_numpy(yb)
            out = model(xt)
            if add_head:
                out = F.log_softmax(out, dim=1)
            loss = F.nll_loss(out, yt, ignore_index=-1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += int(((out.argmax(1) == yt) & (yt >= 0)).sum())
        if not np.isfinite(loss_sum):
            raise SystemExit(f"bench_train_torch: torch training diverged at epoch {epoch + 1}")
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu

    def accuracy(x, y):
        model.eval()
        with torch.no_grad():
            preds = np.concatenate([model(torch.from_numpy((x[i:i + 256] - mean) / std)).argmax(1).numpy()
                                    for i in range(0, len(x), 256)])
        if dense:
            y = net.label_grid(y)
            keep = y >= 0
            return float((preds[keep] == y[keep]).mean())
        return float((preds == y).mean())

    return {"seconds": seconds, "cpu_seconds": cpu, "test_accuracy": accuracy(data.test_x, data.test_y),
            "train_accuracy": accuracy(data.train_x, data.train_y),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------

def _busy_fraction(seconds: float = 1.0) -> float | None:
    """Share of all cores' time spent busy over ``seconds`` (from /proc/stat; None elsewhere)."""
    def sample():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + values[4]      # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (i1 - i0) / max(t1 - t0, 1)


def _have_torch() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
    return probe.returncode == 0


def _run_worker(kind: str, threads: int | None, args) -> dict:
    env = dict(os.environ)
    for var in THREAD_VARS:
        env.pop(var, None)
    if threads == 1:
        env.update({var: "1" for var in THREAD_VARS})
    if args.openblas_coretype and kind == "convc":
        env["OPENBLAS_CORETYPE"] = args.openblas_coretype
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--arch", args.arch,
           "--dataset", args.dataset, "--epochs", str(args.epochs), "--seed", str(args.seed),
           "--threads", str(threads or 0)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench_train_torch: the {kind} run failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="lenet", help="convc architecture (lenet, sceneparse-small, ...)")
    parser.add_argument("--dataset", default="digits", help="digits (default) or scenes (per-pixel labels)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs (default 30, the issue's figure)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each kind; the minimum time counts")
    parser.add_argument("--runs", default="convc1,convc,torch",
                        help="comma-separated subset of convc1 (BLAS 1 thread), convc (default threads), torch")
    parser.add_argument("--install-torch", action="store_true",
                        help=f"pip install {TORCH_PIN} (CPU build, from PyPI) if torch is missing")
    parser.add_argument("--openblas-coretype", metavar="CORE",
                        help="OPENBLAS_CORETYPE for the convc runs, e.g. SkylakeX: OpenBLAS takes this "
                             "machine's AVX-512 EPYC for a Haswell and uses its AVX2 kernels")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    parser.add_argument("--worker", choices=["convc", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        fn = worker_convc if args.worker == "convc" else worker_torch
        print(json.dumps(fn(args)))
        return 0

    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = set(runs) - {"convc1", "convc", "torch"}
    if unknown:
        parser.error(f"--runs: unknown {sorted(unknown)}")
    if "torch" in runs and not _have_torch():
        if args.install_torch:
            print(f"installing {TORCH_PIN} from PyPI (CPU wheel, about 200 MB) ...", flush=True)
            subprocess.run([sys.executable, "-m", "pip", "install", TORCH_PIN], check=True)
        else:
            print(f"torch is not installed in {sys.prefix}: timing convc only. Install it with\n"
                  f"  {sys.executable} -m pip install {TORCH_PIN}\n"
                  "(or rerun with --install-torch; it is not a convc dependency).")
            runs.remove("torch")

    load = os.getloadavg()
    busy = _busy_fraction()
    print(f"{args.arch} on {args.dataset}, {args.epochs} epochs, seed {args.seed}; "
          f"{os.cpu_count()} cores, load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
          + ("" if busy is None else f", CPU busy over the last second {100 * busy:.0f}%"))
    if (busy if busy is not None else load[0] / (os.cpu_count() or 1)) > 0.1:
        print("  warning: the machine is not quiet; these timings are measured under load")
    labels = {"convc1": "convc, BLAS 1 thread", "convc": "convc, BLAS default threads",
              "torch": "pytorch, 1 thread"}
    results = {}
    for kind in runs:
        rows = []
        for _ in range(args.repeat):
            if kind == "torch":
                rows.append(_run_worker("torch", 1, args))
            else:
                rows.append(_run_worker("convc", 1 if kind == "convc1" else None, args))
        best = min(rows, key=lambda r: r["seconds"])
        best = dict(best, all_seconds=[round(r["seconds"], 2) for r in rows])
        results[kind] = best
        extra = ""
        if kind == "torch":
            extra = f"  (torch {best['torch']}, {best['torch_threads']} thread)"
        elif best.get("blas_threads"):
            extra = f"  (BLAS threads {best['blas_threads']})"
        times = "" if args.repeat == 1 else f"  runs {best['all_seconds']}"
        cpu = "     -  " if best.get("cpu_seconds") is None else f"{best['cpu_seconds']:8.2f}"
        print(f"{labels[kind]:28s} {best['seconds']:8.2f} s  (cpu {cpu} s)   test acc "
              f"{best['test_accuracy']:.4f}   train acc {best['train_accuracy']:.4f}{times}{extra}", flush=True)
    if "torch" in results:
        t, tc = results["torch"]["seconds"], results["torch"]["cpu_seconds"]
        for kind in ("convc1", "convc"):
            if kind in results:
                ratio = results[kind]["seconds"] / t
                results[kind]["ratio_vs_torch"] = ratio
                line = f"ratio {labels[kind]} / pytorch: {ratio:.2f}x"
                if kind == "convc1" and results[kind].get("cpu_seconds"):
                    results[kind]["cpu_ratio_vs_torch"] = results[kind]["cpu_seconds"] / tc
                    line += f"   (cpu time {results[kind]['cpu_ratio_vs_torch']:.2f}x)"
                print(line + "   (target <= 1.5x)")
    if args.json:
        print(json.dumps({"arch": args.arch, "dataset": args.dataset, "epochs": args.epochs,
                          "seed": args.seed, "load_average": load, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

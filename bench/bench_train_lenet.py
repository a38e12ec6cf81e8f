"""Train LeNet on digits with default settings; print accuracy and seconds.

Target (issue 2): test accuracy >= 0.98 in under 120 s on a 2-core machine.
Reference point measured on the same machine: PyTorch 2.13 (CPU, 1 thread),
LeNet-5 on the same canvas and split recipe, 30 epochs: 0.975 in 6.3 s.

    .venv/bin/python bench/bench_train_lenet.py [--seeds 0 1 2]
"""

import argparse
import json

from convc.reference.archs import build_network
from convc.reference.datasets import load_digits
from convc.reference.train import TrainConfig, train

TORCH_SECONDS = 6.3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    data = load_digits()
    rows = []
    for seed in args.seeds:
        net = build_network("lenet", seed=seed)
        res = train(net, data, TrainConfig(seed=seed), quiet=True)
        rows.append({"seed": seed, "test_accuracy": round(res.test_accuracy, 4),
                     "train_seconds": round(res.train_seconds, 2), "epochs": res.epochs,
                     "seconds_vs_pytorch_reference": round(res.train_seconds / TORCH_SECONDS, 2),
                     "meets_target": res.test_accuracy >= 0.98 and res.train_seconds < 120})
        print(json.dumps(rows[-1]))
    ok = all(r["meets_target"] for r in rows)
    print(f"lenet/digits: {sum(r['meets_target'] for r in rows)}/{len(rows)} runs meet >= 0.98 in < 120 s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

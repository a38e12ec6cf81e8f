"""Speed of the bit-exact golden model.

- the digits test split through LeNet (issue 3: "in seconds");
- one sceneparse frame (3x240x320).

    .venv/bin/python bench/bench_golden.py
"""

import time

import numpy as np

from convc.boards import get_board
from convc.compiler.pipeline import CompileOptions, compile_network
from convc.reference.archs import build_network
from convc.reference.datasets import load_digits
from convc.reference.train import TrainConfig, train
from convc.sim import golden


def _time(program, x):
    codes, _ = program.quantize_input(x)
    t0 = time.perf_counter()
    golden.run(program, np.asarray(codes, dtype=np.int64))
    return time.perf_counter() - t0


def main():
    board = get_board("virtex6")
    data = load_digits()
    net = build_network("lenet")
    train(net, data, TrainConfig(epochs=2), quiet=True)
    prog = compile_network(net, board, CompileOptions(calib=64)).program
    sec = _time(prog, data.test_x)
    print(f"golden LeNet: {len(data.test_x)} digits test images in {sec:.3f} s "
          f"({1e3 * sec / len(data.test_x):.2f} ms/image)")
    sp = build_network("sceneparse")
    prog = compile_network(sp, board, CompileOptions(calib=1)).program
    x = np.random.default_rng(1).random((1, 3, 240, 320), dtype=np.float32)
    sec = _time(prog, x)
    print(f"golden sceneparse: one 3x240x320 frame in {sec:.2f} s")


if __name__ == "__main__":
    main()

"""Speed of the bit-exact golden model, beside hls4ml's emulation (issue 16).

Prints, in one run:

- the digits test split (359 images) through LeNet trained 2 epochs and
  compiled for virtex6 at 16 bits: convc's golden model on one thread (the
  first call, and the median of 5 calls) and on every core; and, when hls4ml
  and torch are installed (``pip install -e '.[hls4ml]'``), hls4ml's
  ``predict()`` (its bit-accurate C++ emulation, ``ap_fixed<16,6>``, one
  thread) on the same trained network, with the ratio of images a second;
- one sceneparse frame (3x240x320): first call and median, one thread and
  every core;
- one frame of each large network in ``bench/large_nets.py`` that the
  compiler accepts (the others print the compiler's refusal), compiled with
  forced lanes (:data:`LARGE_LANES`): seconds, GMAC/s, and the golden
  model's peak traced memory for the frame.

Then one JSON line with every figure.  Run with nothing else busy::

    .venv/bin/python bench/bench_golden.py [--no-hls4ml] [--no-large]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from convc.boards import get_board
from convc.pipeline import CompileOptions, compile_network
from convc.errors import ConvcError
from convc.reference.archs import build_network
from convc.reference.datasets import load_digits
from convc.reference.modelfile import network_from_graph
from convc.reference.train import TrainConfig, train
from convc.sim import golden

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hls4ml_peer import hls4ml_predict_rate  # noqa: E402
from large_nets import LARGE  # noqa: E402


def _timed(program, codes, threads, reps):
    """(first call seconds, median of ``reps`` further calls, result)."""
    t0 = time.perf_counter()
    res = golden.run(program, codes, threads=threads)
    first = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        golden.run(program, codes, threads=threads)
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times), res


def _codes(program, x):
    codes, _ = program.quantize_input(x)
    return np.asarray(codes, dtype=np.int64)


def digits(board, use_hls4ml: bool, out: dict) -> None:
    data = load_digits()
    net = build_network("lenet")
    train(net, data, TrainConfig(epochs=2), quiet=True)
    prog = compile_network(net, board, CompileOptions(calib=64)).program
    codes = _codes(prog, data.test_x)
    n = len(codes)
    first, med, res = _timed(prog, codes, 1, 5)
    _, med_all, _ = _timed(prog, codes, None, 5)
    top1 = np.argmax(res.region(prog.output).reshape(n, -1), axis=1)
    acc = float(np.mean(top1 == data.test_y))
    print(f"golden LeNet, digits test split ({n} images), 1 thread: first call {first:.3f} s, "
          f"median {med:.4f} s = {n / med:,.0f} images/s; every core: {n / med_all:,.0f} images/s; "
          f"accuracy {acc:.1%}")
    out["digits"] = {"images": n, "golden_first_s": first, "golden_median_s": med,
                     "golden_images_per_s_1thread": n / med,
                     "golden_images_per_s_all_threads": n / med_all, "golden_accuracy": acc}
    if not use_hls4ml:
        return
    with tempfile.TemporaryDirectory(prefix="convc-hls4ml-") as work:
        peer = hls4ml_predict_rate(net, data.test_x, work, reps=3, log=print)
    if peer is None:
        return
    ratio = (n / med) / peer["images_per_second"]
    print(f"hls4ml {peer['hls4ml_version']} predict() ({peer['precision']}, 1 thread): "
          f"{peer['seconds']:.3f} s = {peer['images_per_second']:,.0f} images/s after a "
          f"{peer['compile_seconds']:.0f} s compile; top-1 agreement with float "
          f"{peer['top1_agreement_with_float']:.1%}")
    print(f"golden / hls4ml, images a second, one thread each: {ratio:.1f}x "
          f"(first call: {(n / first) / peer['images_per_second']:.1f}x)")
    out["hls4ml"] = peer
    out["digits"]["ratio_vs_hls4ml"] = ratio


def sceneparse(board, out: dict) -> None:
    prog = compile_network(build_network("sceneparse"), board, CompileOptions(calib=1)).program
    x = np.random.default_rng(1).random((1, 3, 240, 320), dtype=np.float32)
    codes = _codes(prog, x)
    first1, med1, _ = _timed(prog, codes, 1, 5)
    first, med, _ = _timed(prog, codes, None, 5)
    print(f"golden sceneparse, one 3x240x320 frame: 1 thread first call {first1:.3f} s, median "
          f"{med1:.3f} s; every core first call {first:.3f} s, median {med:.3f} s")
    out["sceneparse"] = {"first_1thread_s": first1, "median_1thread_s": med1,
                         "first_all_s": first, "median_all_s": med}


#: Lanes forced for the ImageNet-size networks: the size search on VGG-19 (822
#: candidates, each timed by the cycle model) takes over 25 minutes today; the
#: golden model's speed does not depend on the lanes.  AlexNet's 11x11 kernels
#: need 121 DSP48E1 per kernel unit, so fewer lanes.
LARGE_LANES = {"vgg19": (4, 16), "alexnet": (1, 4)}


def _large_options(name: str) -> CompileOptions:
    in_lanes, out_lanes = LARGE_LANES[name.split("-")[0]]
    return CompileOptions(calib=1, in_lanes=in_lanes, out_lanes=out_lanes, fc_in_lanes=8, fc_out_lanes=16)


def large(board, out: dict) -> None:
    out["large"] = {}
    for name, spec in LARGE.items():
        net = network_from_graph(spec(), name)
        net.init_params(0)
        gmac = sum(i.macs for i in net.info()) / 1e9
        t0 = time.perf_counter()
        try:
            prog = compile_network(net, board, _large_options(name)).program
        except ConvcError as exc:
            print(f"{name} ({gmac:.2f} GMAC): refused by the compiler: {exc}")
            out["large"][name] = {"gmac": gmac, "refused": str(exc)}
            continue
        compile_s = time.perf_counter() - t0
        x = np.random.default_rng(2).random((1, *prog.input.shape), dtype=np.float32)
        codes = _codes(prog, x)
        tracemalloc.start()
        t0 = time.perf_counter()
        golden.run(prog, codes)
        first = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        _, med, _ = _timed(prog, codes, None, 2)
        print(f"golden {name} ({gmac:.2f} GMAC, {len(prog.image) / 1e6:.1f} M constant words, "
              f"compiled in {compile_s:.0f} s): one frame, first call {first:.2f} s, median "
              f"{med:.2f} s = {gmac / med:.1f} GMAC/s; peak traced memory of the first call "
              f"{peak / 2**20:.0f} MiB")
        out["large"][name] = {"gmac": gmac, "compile_s": compile_s, "first_s": first,
                              "median_s": med, "gmac_per_s": gmac / med,
                              "peak_traced_mib": peak / 2**20,
                              "constant_words": len(prog.image)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-hls4ml", action="store_true", help="skip hls4ml even if installed")
    ap.add_argument("--no-large", action="store_true", help="skip the ImageNet-size networks")
    args = ap.parse_args(argv)
    board = get_board("virtex6")
    out: dict = {}
    digits(board, not args.no_hls4ml, out)
    sceneparse(board, out)
    if not args.no_large:
        large(board, out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Naive and fast golden models agree bit for bit on compiled networks."""

import numpy as np
import pytest

from convc.boards import get_board
from convc.pipeline import CompileOptions, compile_network
from convc.sim import golden, golden_naive

V6 = get_board("virtex6")


def _agree(program, codes):
    fast = golden.run(program, codes)
    slow = golden_naive.run(program, codes)
    np.testing.assert_array_equal(fast.memory, slow.memory)
    assert fast.saturations == slow.saturations
    assert fast.overflows == slow.overflows
    return fast


def test_small_networks_naive_equals_fast(small_net):
    name, net = small_net
    rng = np.random.default_rng(11)
    calib = rng.random((8,) + net.input.shape, dtype=np.float32)
    prog = compile_network(net, V6, CompileOptions(calib=8), calib=calib).program
    x = rng.random((2,) + net.input.shape, dtype=np.float32) * 1.5  # a little beyond calibration
    codes, _ = prog.quantize_input(x)
    _agree(prog, np.asarray(codes))


def test_bands_and_lanes_do_not_change_results(small_net):
    """Forcing other lane counts (other chunks and passes) leaves every output word the same."""
    name, net = small_net
    rng = np.random.default_rng(12)
    calib = rng.random((8,) + net.input.shape, dtype=np.float32)
    a = compile_network(net, V6, CompileOptions(calib=8), calib=calib).program
    b = compile_network(net, V6, CompileOptions(calib=8, in_lanes=1, out_lanes=1), calib=calib).program
    x = rng.random((3,) + net.input.shape, dtype=np.float32)
    codes, _ = a.quantize_input(x)
    ra, rb = golden.run(a, np.asarray(codes)), golden.run(b, np.asarray(codes))
    np.testing.assert_array_equal(ra.region(a.output), rb.region(b.output))


def test_lenet_naive_equals_fast(lenet_digits):
    _, net, _ = lenet_digits
    prog = compile_network(net, V6, CompileOptions(calib=32)).program
    x = np.random.default_rng(2).random((2, 1, 32, 32), dtype=np.float32)
    codes, _ = prog.quantize_input(x)
    _agree(prog, np.asarray(codes))


@pytest.mark.slow
def test_sceneparse_frame_runs_without_overflow():
    from convc.reference.archs import build_network

    net = build_network("sceneparse")
    prog = compile_network(net, V6, CompileOptions(calib=1)).program
    x = np.random.default_rng(3).random((1, 3, 240, 320), dtype=np.float32)
    codes, _ = prog.quantize_input(x)
    res = golden.run(prog, np.asarray(codes))
    assert sum(res.overflows.values()) == 0
    assert res.region(prog.output).shape == (1, 8, 49, 69)

"""The size pass: the configuration the one cycle model finds fastest, by an exact search."""

import numpy as np
import pytest

from convc.boards import get_board
from convc.compiler.passes import size
from convc.pipeline import CompileOptions, board_cycles, compile_network
from convc.errors import ConvcError
from convc.reference.archs import build_network
from convc.reference.modelfile import network_from_graph

V6 = get_board("virtex6")


SMALL = {"name": "small", "input": {"shape": [2, 16, 16]}, "classes": 10, "layers": [
    {"type": "conv2d", "attrs": {"out_channels": 6, "kernel": 5}}, {"type": "tanh"},
    {"type": "maxpool2d", "attrs": {"kernel": 2}}, {"type": "flatten"},
    {"type": "linear", "attrs": {"out_features": 24}}, {"type": "relu"},
    {"type": "linear", "attrs": {"out_features": 10}}]}


def _compiled(arch):
    net = build_network(arch) if arch != "small" else network_from_graph(SMALL, "small")
    net.init_params(seed=4)
    calib = np.random.default_rng(4).random((2,) + net.input.shape, dtype=np.float32)
    return compile_network(net, V6, CompileOptions(calib=2), calib=calib)


@pytest.mark.parametrize("arch", ["small"] + [pytest.param(a, marks=pytest.mark.slow)
                                              for a in ("lenet", "sceneparse")])
def test_pruned_search_finds_the_exhaustive_best(arch):
    """Pruning on the FC floor changes nothing: the chosen configuration is the one the
    search finds when every floor is the full figure (an exact bound: candidates are
    timed in order until the next one's full time exceeds the best), and the report's
    cycles are the model's for it."""
    res = _compiled(arch)
    graph, hw = res.graph, res.program.hw
    def exhaustive(prog, fc_floor):
        return board_cycles(prog, False)            # the floor is the full figure

    hw_all, tried_all = size.run(graph, V6, hw.bits, where=arch, cycles=exhaustive)
    assert hw_all == hw
    timed = [c for c in res.candidates if c["cycles"] is not None]
    assert len(timed) < len(res.candidates) == len(tried_all)       # it did prune
    best = min(c["cycles"] for c in tried_all if c["cycles"] is not None)
    assert best == min(c["cycles"] for c in timed) == res.report["cycles"]
    for c in res.candidates:                                       # a floor never exceeds the model
        if c["floor"] is not None and c["cycles"] is not None:
            assert c["floor"] <= c["cycles"]


def test_no_fit_is_refused_with_both_numbers():
    res = _compiled("lenet")
    with pytest.raises(ConvcError, match="does not fit virtex6"):
        size.run(res.graph, V6, 16, in_lanes=200, out_lanes=200, where="lenet", cycles=board_cycles)

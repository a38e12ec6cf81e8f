"""Compiling a network that is not a chain (issue 15): the multiscale scene parser at a
reduced size. The shared trunk's weights are stored once and read by every scale's
records; the pyramid is a depthwise stride-2 convolution keeping its input's format; the
classifier over the concatenation is folded into a classifier a scale, each reading its
scale upsampled (``up``), and a sum; the golden model equals the naive one on every word
of every region, and the fixed point follows the float reference."""

from __future__ import annotations

import numpy as np
import pytest

from convc.boards import BOARDS
from convc.compiler import isa
from convc.pipeline import CompileOptions, compile_network
from convc.errors import ConvcError
from convc.reference.archs import multiscale
from convc.reference.modelfile import network_from_graph
from convc.sim import golden
from convc.sim.compare import compare
from convc.sim.golden_naive import run as naive_run


@pytest.fixture(scope="module")
def compiled():
    net = network_from_graph(multiscale("ms-tiny", (3, 32, 48), maps=(4, 8, 8), fan_in=(4, 4), classes=8), "t")
    net.init_params(seed=0)
    calib = np.random.default_rng(1).random((8,) + net.input.shape, dtype=np.float32)
    res = compile_network(net, BOARDS["virtex6"], CompileOptions(), where="ms-tiny", calib=calib)
    return net, res


def _records(program, name):
    return [ins for ins, n in zip(program.instrs, program.names) if n == name]


def test_shared_weights_are_stored_once(compiled):
    _, res = compiled
    prog = res.program
    for base in ("conv1", "conv2", "conv3"):
        owner = [(i.w_addr, i.list_addr, i.o0, i.n_out) for i in _records(prog, base)]
        owner_passes = sorted(set(owner))
        for scale in ("_s2", "_s3"):
            assert sorted({(i.w_addr, i.list_addr, i.o0, i.n_out) for i in _records(prog, base + scale)}) \
                == owner_passes, (base, scale)
    # each weight block once in the image: no two passes of different layers at one address
    # unless they share
    by_addr = {}
    for ins, name in zip(prog.instrs, prog.names):
        if ins.op in (isa.OP_CONV, isa.OP_FC):
            by_addr.setdefault(ins.w_addr, set()).add(name.split("_s")[0])
    assert all(len(v) == 1 for v in by_addr.values()), by_addr


def test_pyramid_and_fold(compiled):
    _, res = compiled
    prog = res.program
    pyr = _records(prog, "pyr1")
    assert {(i.kernel, i.stride, i.pad, i.n_in) for i in pyr} == {(5, 2, 2, 1)}
    assert [r for r in prog.layers if r.name == "pyr1"][0].fmt == prog.layers[0].fmt     # keeps the LCN's
    parts = _records(prog, "classifier.parts")
    ups = sorted({i.up for i in parts})
    assert ups == [0, 1, 2]
    assert all(i.op == isa.OP_CONV for i in parts if i.up)           # the FC engine reads no upsampling
    region = [r for r in prog.layers if r.name == "classifier.parts"][0]
    assert region.shape == (24, 8, 12)
    assert sorted({i.o0 // 8 for i in parts}) == [0, 1, 2]            # each scale its 8 maps
    cls = _records(prog, "classifier")
    assert len(cls) >= 1 and cls[0].in_c == 24 and prog.output.name == "classifier"
    assert prog.meta["ref_layers"]["classifier.parts"] is None
    assert prog.meta["ref_layers"]["classifier"] == "classifier"
    assert any("runs as one classifier a part" in n for n in res.graph.notes)


def test_golden_equals_naive_and_follows_float(compiled):
    net, res = compiled
    prog = res.program
    x = np.random.default_rng(5).random((2,) + net.input.shape, dtype=np.float32)
    codes, _ = prog.quantize_input(x)
    g = golden.run(prog, np.asarray(codes, dtype=np.int64))
    n = naive_run(prog, np.asarray(codes[:1], dtype=np.int64))
    for r in prog.layers:
        np.testing.assert_array_equal(np.asarray(g.region(r))[:1].reshape(-1), np.asarray(n.region(r)).reshape(-1),
                                      err_msg=r.name)
    assert not any(g.overflows.values())
    cmp = compare(net, prog, x)
    rows = {c.name: c for c in cmp.layers}
    assert rows["classifier.parts"].ref_layer is None and np.isnan(rows["classifier.parts"].sqnr_db)
    assert rows["classifier"].sqnr_db > 30, rows["classifier"]
    assert cmp.top1_agreement > 0.95


def test_refusals_name_the_layer():
    spec = multiscale("ms", (3, 32, 32), maps=(2, 4, 4), fan_in=(2, 2), classes=3)
    bad = dict(spec, layers=[dict(e, attrs={"kernel": 5}) if e["name"] == "pyr1" else e for e in spec["layers"]])
    net = network_from_graph(bad, "ms")
    net.init_params(0)
    with pytest.raises(ConvcError, match="layer 8 'pyr1'.*edge 'replicate' has no engine"):
        compile_network(net, BOARDS["virtex6"], CompileOptions(), where="ms", calib=np.zeros((1, 3, 32, 32)))
    up3 = {"input": {"shape": [1, 4, 4]}, "layers": [
        {"name": "c", "type": "conv2d", "attrs": {"out_channels": 2, "kernel": 1}},
        {"name": "u", "type": "upsample", "attrs": {"factor": 3}}]}
    net = network_from_graph(up3, "up3")
    net.init_params(0)
    with pytest.raises(ConvcError, match="layer 1 'u': upsampling by 3: the record's 'up' field takes a power"):
        compile_network(net, BOARDS["virtex6"], CompileOptions(), where="up3", calib=np.zeros((1, 1, 4, 4)))


def test_an_upsampling_left_alone_is_an_identity_convolution_reading_up():
    spec = {"input": {"shape": [2, 4, 6]}, "layers": [
        {"name": "c", "type": "conv2d", "attrs": {"out_channels": 2, "kernel": 3, "padding": 1}},
        {"name": "u", "type": "upsample", "attrs": {"factor": 2}},
        {"name": "d", "type": "conv2d", "attrs": {"out_channels": 3, "kernel": 3}}]}
    net = network_from_graph(spec, "up")
    net.init_params(0)
    x = np.random.default_rng(2).random((4, 2, 4, 6), dtype=np.float32)
    prog = compile_network(net, BOARDS["virtex6"], CompileOptions(), where="up", calib=x).program
    ups = _records(prog, "u")
    assert ups and {(i.up, i.kernel, i.n_in) for i in ups} == {(1, 1, 1)}
    codes, _ = prog.quantize_input(x)
    g = golden.run(prog, np.asarray(codes, dtype=np.int64))
    c, u = [r for r in prog.layers if r.name == "c"][0], [r for r in prog.layers if r.name == "u"][0]
    cv = np.asarray(g.region(c)).reshape((4,) + c.shape)
    np.testing.assert_array_equal(np.asarray(g.region(u)).reshape((4,) + u.shape),
                                  cv.repeat(2, axis=2).repeat(2, axis=3))       # exactly the repeated codes

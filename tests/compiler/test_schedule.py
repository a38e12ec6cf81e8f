"""The schedule pass: memory layout of the records' constants, and the limits it checks."""

import dataclasses

import numpy as np
import pytest

from convc.boards import get_board
from convc.compiler import isa
from convc.compiler.hwconfig import HardwareConfig
from convc.compiler.ir import ConvNode
from convc.compiler.passes import frontend, fuse, lower_unfused, pwl_tables, quantize, schedule, shapes
from convc.pipeline import CompileOptions, compile_network
from convc.errors import ConvcError
from convc.reference.modelfile import network_from_graph
from convc.sim import golden

V6 = get_board("virtex6")

SMALL_FC = {"name": "small_fc", "input": {"shape": [2, 8, 8]}, "classes": 5, "layers": [
    {"type": "conv2d", "attrs": {"out_channels": 3, "kernel": 3}}, {"type": "tanh"},
    {"type": "maxpool2d", "attrs": {"kernel": 2}},
    {"type": "flatten"}, {"type": "linear", "attrs": {"out_features": 7}}, {"type": "relu"},
    {"type": "linear", "attrs": {"out_features": 5}}]}


def _compile(spec: dict, seed: int = 3):
    net = network_from_graph(spec, spec["name"])
    net.init_params(seed=seed)
    rng = np.random.default_rng(seed)
    calib = rng.random((8,) + net.input.shape, dtype=np.float32)
    return net, compile_network(net, V6, CompileOptions(calib=8), where=spec["name"], calib=calib)


def _with_fc(hw: HardwareConfig, fi: int = 4, fo: int = 3) -> HardwareConfig:
    """``hw`` with an FC engine of ``fi x fo`` lanes (outputs split into chunks of ``fo``)."""
    return dataclasses.replace(hw, fc_in_lanes=fi, fc_out_lanes=fo)


def _signed(words: np.ndarray) -> np.ndarray:
    words = np.asarray(words, dtype=np.int64)
    return np.where(words >= 1 << 15, words - (1 << 16), words)


def _node(graph, name: str) -> ConvNode:
    return next(n for n in graph.nodes if n.name == name)


def _record_weights(prog, ins: isa.Instr) -> tuple[np.ndarray, np.ndarray]:
    """The image's input-map list and the (n_out, n_in, K, K) weight block a record reads by the
    OP_CONV formula ``((o*n_in + j)*K + p)*K + q`` (for OP_FC: the words before any transpose)."""
    lst = prog.image[ins.list_addr:ins.list_addr + ins.n_in]
    k = ins.kernel
    w = _signed(prog.image[ins.w_addr:ins.w_addr + ins.n_out * ins.n_in * k * k])
    return lst, w


def test_fc_weights_are_input_major():
    """W[o, j] of an OP_FC record at w_addr + j*ld + o (ld = n_out rounded up to 16, w_addr
    aligned, zeros in the padding), for every (o, j); biases after."""
    _, res = _compile(SMALL_FC)
    graph = res.graph
    for hw in (res.program.hw, _with_fc(res.program.hw)):
        prog = schedule.run(graph, hw) if hw is not res.program.hw else res.program
        fc = [(i, n) for i, n in zip(prog.instrs, prog.names) if i.op == isa.OP_FC]
        if hw.has_fc:
            assert {n for _, n in fc} == {n.name for n in graph.nodes
                                         if isinstance(n, ConvNode) and schedule.on_fc(n, hw)}
            assert fc, "the FC engine runs the linear layers"
        for ins, name in fc:
            q = _node(graph, name).quant
            lst = prog.image[ins.list_addr:ins.list_addr + ins.n_in]
            assert ins.kernel == 1
            assert ins.w_addr % isa.FC_ALIGN == 0
            ld = isa.fc_ld(ins.n_out)
            for j in range(ins.n_in):
                for o in range(ld):
                    word = int(prog.image[ins.w_addr + j * ld + o])
                    want = int(q.weight[ins.o0 + o, lst[j], 0, 0]) & 0xFFFF if o < ins.n_out else 0
                    assert word == want, (name, o, j)
            nw = ld * ins.n_in
            b = prog.image[ins.w_addr + nw:ins.w_addr + nw + 2 * ins.n_out]
            u = b[0::2] | (b[1::2] << 16)
            np.testing.assert_array_equal(u - ((u >> 31) << 32), q.bias[ins.o0:ins.o0 + ins.n_out])
    # the FC engine's layer is split over several records when fc_out_lanes < out_features
    prog = schedule.run(graph, _with_fc(res.program.hw))
    assert sum(1 for i in prog.instrs if i.op == isa.OP_FC and i.n_out < 7) >= 2


def test_conv_weights_stay_output_major():
    _, res = _compile(SMALL_FC)
    prog = schedule.run(res.graph, _with_fc(res.program.hw))
    conv = [(i, n) for i, n in zip(prog.instrs, prog.names) if i.op == isa.OP_CONV]
    assert conv
    for ins, name in conv:
        q = _node(res.graph, name).quant
        lst, w = _record_weights(prog, ins)
        k = ins.kernel
        expect = q.weight[ins.o0:ins.o0 + ins.n_out][:, lst]
        np.testing.assert_array_equal(w.reshape(ins.n_out, ins.n_in, k, k), expect)


def test_fc_engine_or_not_same_results():
    """The same network scheduled with and without the FC engine computes the same words."""
    net, res = _compile(SMALL_FC)
    hw = res.program.hw
    no_fc = schedule.run(res.graph, dataclasses.replace(hw, fc_in_lanes=0, fc_out_lanes=0))
    with_fc = schedule.run(res.graph, _with_fc(hw))
    assert not any(i.op == isa.OP_FC for i in no_fc.instrs)
    assert any(i.op == isa.OP_FC for i in with_fc.instrs)
    x = np.random.default_rng(1).integers(-300, 300, (3,) + tuple(net.input.shape))
    a, b = golden.run(no_fc, x), golden.run(with_fc, x)
    for ra, rb in zip(no_fc.layers, with_fc.layers):
        np.testing.assert_array_equal(a.region(ra), b.region(rb))
    assert a.saturations == b.saturations


def _graph(spec: dict, seed: int = 3):
    """The IR of ``spec`` through every pass before sizing (so any configuration can be tried)."""
    net = network_from_graph(spec, spec["name"])
    net.init_params(seed=seed)
    graph = frontend.run(net, spec["name"])
    shapes.run(graph, spec["name"])
    fuse.run(graph)
    lower_unfused.run(graph)
    calib = np.random.default_rng(seed).random((4,) + net.input.shape, dtype=np.float32)
    quantize.run(graph, net, calib, 16, spec["name"])
    pwl_tables.run(graph, CompileOptions().pwl_segments)
    return graph


def test_fc_output_row_longer_than_max_width_is_refused():
    """A 1x1 convolution on the FC engine writes rows of out_w words through a max_width buffer."""
    spec = {"name": "wide_1x1", "input": {"shape": [2, 4, 20]}, "classes": 3, "layers": [
        {"name": "mix", "type": "conv2d", "attrs": {"out_channels": 3, "kernel": 1}}]}
    graph = _graph(spec)
    hw = HardwareConfig(board="t", clock_mhz=100.0, bits=16, kmax=1, in_lanes=1, out_lanes=1, max_width=20,
                        psum_words=1024, fc_in_lanes=2, fc_out_lanes=2)
    assert schedule.on_fc(_node(graph, "mix"), hw)
    prog = schedule.run(graph, hw)
    assert [i.op for i in prog.instrs] == [isa.OP_FC, isa.OP_FC, isa.OP_END]   # outputs 0-1, 2
    with pytest.raises(ConvcError) as info:
        schedule.run(graph, dataclasses.replace(hw, max_width=19))
    msg = str(info.value)
    assert "'mix'" in msg and "20" in msg and "19" in msg
    # on the convolution engine the same layer meets the line-buffer check instead
    with pytest.raises(ConvcError, match="'mix'.*line buffer 19"):
        schedule.run(graph, dataclasses.replace(hw, max_width=19, fc_in_lanes=0, fc_out_lanes=0))


def test_lists_longer_than_the_list_memory():
    """The input-map list memory holds list_words entries; a longer list must be a run of
    consecutive maps (the feeders step from one group's map base to the next): a dense
    layer's always is, a connection table's row that is not is refused, naming the layer."""
    _, res = _compile(SMALL_FC)   # fc1 reads 3*3*3 = 27 inputs, conv1 2
    hw = dataclasses.replace(res.program.hw, in_lanes=1, fc_in_lanes=2)
    name = next(n.name for n in res.graph.nodes if isinstance(n, ConvNode) and len(n.inputs_of(0)) == 27)
    prog = schedule.run(res.graph, dataclasses.replace(hw, list_words=2))
    fc1 = [ins for ins, n in zip(prog.instrs, prog.names) if n == name]
    assert fc1 and all(ins.n_in == 27 for ins in fc1)
    assert list(prog.image[fc1[0].list_addr:fc1[0].list_addr + 27]) == list(range(27))   # the whole list
    with pytest.raises(ConvcError, match="list_words=1 is less than the 2 input lanes"):
        dataclasses.replace(hw, list_words=1)
    # a connection table: rows of consecutive maps may be longer, others may not
    spec = {"name": "tabled", "input": {"shape": [4, 8, 8]}, "classes": 3, "layers": [
        {"name": "c1", "type": "conv2d",
         "attrs": {"out_channels": 3, "kernel": 3, "table": [[0, 1, 2], [1, 2, 3], [0, 1, 3]]}}]}
    _, res = _compile(spec)     # 4 input maps, 3 read by each output
    hw = dataclasses.replace(res.program.hw, in_lanes=1, fc_in_lanes=0, fc_out_lanes=0)
    schedule.run(res.graph, dataclasses.replace(hw, list_words=3))
    with pytest.raises(ConvcError, match=r"'c1': output map 2 reads 3 input maps that are not consecutive.* 2"):
        schedule.run(res.graph, dataclasses.replace(hw, list_words=2))
    spec["layers"][0]["attrs"]["table"][2] = [1, 2, 3]
    _, res = _compile(spec)
    schedule.run(res.graph, dataclasses.replace(hw, list_words=2))     # every row consecutive


def test_list_words_in_hwconfig():
    hw = HardwareConfig(board="t", clock_mhz=100.0, bits=16, kmax=3, in_lanes=1, out_lanes=1, max_width=8,
                        psum_words=64)
    assert hw.list_words == 1024
    d = hw.to_json()
    del d["list_words"]   # a hwconfig.json written before the field existed
    assert HardwareConfig.from_json(d) == hw
    assert HardwareConfig.from_json(dataclasses.replace(hw, list_words=65536).to_json()).list_words == 65536
    for bad in (0, 65537):
        with pytest.raises(ConvcError, match="list_words"):
            dataclasses.replace(hw, list_words=bad)

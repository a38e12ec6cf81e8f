"""The whole accelerator (hdl/accel.py) in RTL simulation against the golden model and
the cycle-level model.

Every test compiles a network, runs the accelerator's Verilog through the native
harness (``convc.sim.verify``: Verilator with a C++ AXI memory and host, every image in
one run) and checks
- every word of every layer's output region equals the golden model's,
- the RTL's CYCLES register, each record's and each layer's cycles (the records' starts
  from the trace port), are within 1% of the cycle model (``MemoryTiming.axi_ram``).

Default run: LeNet at the size ``convc compile --board virtex6`` gives it (the build the
demo verifies) on 20 held-out digits (the multiscale scene parser is in
test_accel_multiscale.py), and three small networks with other kernels,
strides, padding, pooling and activations on 8 inputs each, one of them again under
random AXI backpressure (bit-exact; only the cycles grow).  ``slow``: the single-scale
scene parser at 3x64x80, LeNet on 200 digits with the board's DDR3 timing and with
backpressure, and the cocotb harness on a small LeNet build (Icarus).
"""

from __future__ import annotations

import numpy as np
import pytest

from needs import needs_iverilog
from convc.compiler import isa
from convc.compiler.hwconfig import HardwareConfig
from convc.compiler.program import schedule_addr
from convc.hdl.accel import Accelerator, reader_count, record_layout


SMALL_NETS = {
    # 3x3 kernels, stride 2, padding 1, ReLU, 2x2 average pooling, a linear layer on the FC engine
    "k3s2p1_relu_avg_fc": {"input": {"shape": [2, 13, 11]}, "classes": 4, "layers": [
        {"type": "conv2d", "attrs": {"out_channels": 5, "kernel": 3, "stride": 2, "padding": 1}},
        {"type": "relu"}, {"type": "avgpool2d", "attrs": {"kernel": 2}},
        {"type": "flatten"}, {"type": "linear", "attrs": {"out_features": 4}}]},
    # 5x5 kernels with padding 2 and a connection table, abs, 3x3/2 max pooling, then 5x5
    "k5p2_table_abs_max3s2": {"input": {"shape": [4, 12, 12]}, "classes": 6, "layers": [
        {"type": "conv2d", "attrs": {"out_channels": 6, "kernel": 5, "padding": 2,
                                     "table": [[0, 1], [0, 1], [0, 1], [2, 3], [2, 3], [1, 2]]}},
        {"type": "abs"}, {"type": "maxpool2d", "attrs": {"kernel": 3, "stride": 2}},
        {"type": "conv2d", "attrs": {"out_channels": 6, "kernel": 5}}]},
    # 7x7 kernel, tanh (PWL table), no pooling, then a 1x1 convolution on the FC engine
    "k7_tanh_1x1": {"input": {"shape": [1, 14, 12]}, "classes": 3, "layers": [
        {"type": "conv2d", "attrs": {"out_channels": 3, "kernel": 7}}, {"type": "tanh"},
        {"type": "conv2d", "attrs": {"out_channels": 3, "kernel": 1}}, {"type": "relu"}]},
}

# OP_LCN in every configuration the compiler emits: odd windows 3..9 (the build's lcn_kmax
# and below), 1..4 maps (the build's lcn_channels and below: lanes past in_c idle), odd
# and even frame sizes, LCN first and after a convolution
LCN_NETS = {
    # lcn_channels 3, lcn_kmax 7: a 1-map 3x3 LCN on a 9x13 frame, then 3 maps 7x7
    "lcn_odd_1map_k3_3maps_k7": {"input": {"shape": [1, 9, 13]}, "classes": 3, "layers": [
        {"type": "lcn", "attrs": {"kernel": 3}},
        {"type": "conv2d", "attrs": {"out_channels": 3, "kernel": 3, "padding": 1}}, {"type": "tanh"},
        {"type": "lcn", "attrs": {"kernel": 7}},
        {"type": "conv2d", "attrs": {"out_channels": 3, "kernel": 3}}]},
    # lcn_channels 4, lcn_kmax 9: 4 maps 9x9 on a 12x20 frame, then 2 maps 5x5 on 8x16
    "lcn_even_4maps_k9_2maps_k5": {"input": {"shape": [4, 12, 20]}, "classes": 2, "layers": [
        {"type": "lcn", "attrs": {"kernel": 9}},
        {"type": "conv2d", "attrs": {"out_channels": 2, "kernel": 5}}, {"type": "relu"},
        {"type": "lcn", "attrs": {"kernel": 5}},
        {"type": "conv2d", "attrs": {"out_channels": 2, "kernel": 3, "padding": 1}}]},
}

# small lanes keep the Icarus runs short (the sizes the board would get are far larger)
SMALL_LANES = dict(in_lanes=1, out_lanes=2, fc_in_lanes=1, fc_out_lanes=4)
LENET_LANES = dict(in_lanes=1, out_lanes=4, fc_in_lanes=1, fc_out_lanes=16)


# ---- construction and the record layout (no simulation) ------------------------------
def _hw(**kw) -> HardwareConfig:
    base = dict(board="test", clock_mhz=200.0, bits=16, kmax=3, in_lanes=2, out_lanes=2, max_width=16,
                psum_words=256, fc_in_lanes=1, fc_out_lanes=4)
    base.update(kw)
    return HardwareConfig(**base)


def test_bad_parameters_are_named():
    with pytest.raises(TypeError, match="HardwareConfig"):
        Accelerator({"in_lanes": 1})
    with pytest.raises(ValueError, match="data_width=100"):
        Accelerator(_hw(), data_width=100)


def test_readers_and_schedule_address():
    # parameters + main feeders (max of conv and FC input lanes) + preload feeders
    assert reader_count(_hw(in_lanes=2, fc_in_lanes=3)) == 1 + 3 + 2
    assert reader_count(_hw(in_lanes=3, fc_in_lanes=0, fc_out_lanes=0)) == 1 + 3 + 3
    assert Accelerator(_hw()).readers == 1 + 2 + 2
    assert schedule_addr(0) == 0 and schedule_addr(1) == 32 and schedule_addr(64) == 64


def test_record_layout_is_the_isa_encoding():
    """The sequencer views the fetched 512 bits through record_layout(): each field must
    sit where isa.encode put it."""
    rng = np.random.default_rng(0)
    layout = record_layout()
    for _ in range(20):
        vals = {}
        for f in isa.FIELDS:
            lo, hi = ((-(1 << (f.bits - 1)), (1 << (f.bits - 1)) - 1) if f.signed else (0, (1 << f.bits) - 1))
            vals[f.name] = int(rng.integers(lo, hi + 1))
        word = int.from_bytes(isa.encode(isa.Instr(**vals)), "little")
        for name, field in layout:
            raw = (word >> field.offset) & ((1 << field.width) - 1)
            if field.shape.signed and raw >> (field.width - 1):
                raw -= 1 << field.width
            assert raw == vals[name], name


# ---- RTL against the golden model and the cycle model --------------------------------
def _compile(tmp_path, net, lanes, calib=None):
    from convc.boards import get_board
    from convc.outputs import write_outputs
    from convc.pipeline import CompileOptions, compile_network
    from convc.reference.modelfile import save_model

    model = save_model(net, tmp_path / "model.npz")
    result = compile_network(net, get_board("virtex6"), CompileOptions(calib=8, **lanes), where=str(model),
                             calib=calib)
    out = tmp_path / "out"
    write_outputs(result, out, log=None)
    return out, model, result.program


def _check(res, program, images, tolerance=0.01):
    assert res.error is None, res.error
    assert res.images_run == images
    assert res.total_words == images * sum(r.words for r in program.layers)
    assert res.mismatched_words == 0, res.first_mismatch
    assert len(res.rtl_cycles) == images and min(res.rtl_cycles) > 0
    assert res.sim_cycles, "the cycle model gave no figure"
    for c in res.rtl_cycles:
        assert abs(res.sim_cycles - c) <= tolerance * c, (res.sim_cycles, res.rtl_cycles)
    if res.harness == "native":
        # every record timed from the trace port; each record and layer within the tolerance
        assert len(res.record_cycles) == len(program.instrs)
        assert all(r["rtl"] is not None for r in res.record_cycles)
        for rec in res.record_cycles:
            assert abs(rec["error"]) <= tolerance, rec
        for lay in res.layer_cycles:
            assert abs(lay["error"]) <= tolerance, lay


def _small_net(name, tmp_path):
    from convc.reference.modelfile import network_from_graph

    net = network_from_graph(dict({**SMALL_NETS, **LCN_NETS}[name], name=name), name)
    net.init_params(seed=7)
    calib = np.random.default_rng(1).random((8,) + net.input.shape, dtype=np.float32)
    return _compile(tmp_path, net, SMALL_LANES, calib=calib)


@pytest.mark.parametrize("name", sorted(SMALL_NETS))
def test_small_net_rtl_equals_golden_and_cycle_model(name, tmp_path):
    from convc.sim.verify import verify

    out, model, program = _small_net(name, tmp_path)
    assert isa.OP_CONV in {ins.op for ins in program.instrs}
    res = verify(out, images=8, model=model, report_dir=tmp_path / "verify", log=None)
    _check(res, program, 8)
    if name == "k7_tanh_1x1":
        # the same build under random AXI backpressure, delays and ID interleaving: every
        # word still exact, only the cycles grow
        bp = verify(out, images=8, model=model, report_dir=tmp_path / "bp", backpressure=3, log=None)
        assert bp.build["cached"] and bp.error is None and bp.images_run == 8
        assert bp.mismatched_words == 0 and bp.total_words == res.total_words, bp.first_mismatch
        assert min(bp.rtl_cycles) > max(res.rtl_cycles)


@pytest.mark.parametrize("name", sorted(LCN_NETS))
def test_lcn_net_rtl_equals_golden_and_cycle_model(name, tmp_path):
    """OP_LCN on the LCN engine: every word of v, s (scratch, checked through y) and y,
    and of the convolutions around it; the cycle model within 1% per layer."""
    from convc.sim.verify import verify

    out, model, program = _small_net(name, tmp_path)
    lcns = [ins for ins in program.instrs if ins.op == isa.OP_LCN]
    hw = program.hw
    assert len(lcns) == 2 and max(i.in_c for i in lcns) == hw.lcn_channels
    assert max(i.kernel for i in lcns) == hw.lcn_kmax and min(i.in_c for i in lcns) < hw.lcn_channels
    res = verify(out, images=4, model=model, report_dir=tmp_path / "verify", log=None)
    _check(res, program, 4)


@pytest.mark.slow
def test_sceneparse_reduced_rtl_equals_golden_and_cycle_model(tmp_path):
    """(slow: the default run's multiscale test, tests/hdl/test_accel_multiscale.py, runs the
    same layers at the same lanes, and more.) The scene parser's layers (LCN, three 7x7 convolutions with tanh and max pooling,
    the 1x1 classifier) on a 3x64x80 input, at the lanes the board gives (1 x 13, FC 5 x 4:
    every convolution has at least 2 input groups and 2 output passes), from one start:
    every word of every layer; the cycle model within 1% per layer and in total."""
    from convc.reference.archs import sceneparse
    from convc.reference.modelfile import network_from_graph
    from convc.sim.verify import verify

    spec = sceneparse()
    spec["input"]["shape"] = [3, 64, 80]
    net = network_from_graph(spec, "sceneparse-64x80")
    net.init_params(seed=7)
    calib = np.random.default_rng(1).random((4,) + net.input.shape, dtype=np.float32)
    out, model, program = _compile(tmp_path, net, dict(fc_out_lanes=4), calib=calib)
    hw = program.hw
    layers = {}
    for ins, name in zip(program.instrs, program.names):
        layers.setdefault(name, []).append(ins)
    assert layers["lcn"][0].op == isa.OP_LCN
    for name in ("conv1", "conv2", "conv3", "classifier"):
        lanes_in, lanes_out = ((hw.fc_in_lanes, hw.fc_out_lanes) if layers[name][0].op == isa.OP_FC
                               else (hw.in_lanes, hw.out_lanes))
        assert -(-layers[name][0].n_in // lanes_in) >= 2, name                      # input groups
        assert sum(-(-ins.n_out // lanes_out) for ins in layers[name][:1]) >= 1
        assert len({ins.o0 for ins in layers[name]}) >= 2, name                      # output passes
    res = verify(out, images=1, model=model, report_dir=tmp_path / "verify", log=None)
    _check(res, program, 1)                            # LCN, every band and pass, the end


# input-map lists longer than the list memory (issue 13: a linear layer of 25,088 inputs):
# with list_words forced to 4, a connection table of consecutive runs (6 maps, the second
# run starting at map 6), a dense convolution over 8 maps and a linear layer of 54 inputs,
# two input lanes in each engine (the feeders step from one group's map base to the next)
LONG_LIST_NET = {"input": {"shape": [12, 6, 6]}, "classes": 4, "layers": [
    {"type": "conv2d", "attrs": {"out_channels": 8, "kernel": 3, "padding": 1,
                                 "table": [list(range(6))] * 4 + [list(range(6, 12))] * 4}},
    {"type": "relu"},
    {"type": "conv2d", "attrs": {"out_channels": 6, "kernel": 3, "padding": 1}}, {"type": "relu"},
    {"type": "maxpool2d", "attrs": {"kernel": 2}},
    {"type": "flatten"}, {"type": "linear", "attrs": {"out_features": 4}}]}


def test_lists_longer_than_the_list_memory_rtl_equals_golden(tmp_path):
    import dataclasses

    from convc.boards import get_board
    from convc.compiler.passes import schedule
    from convc.report import make_report
    from convc.reference.modelfile import network_from_graph
    from convc.sim.verify import verify

    net = network_from_graph(dict(LONG_LIST_NET, name="long_lists"), "long_lists")
    net.init_params(seed=5)
    calib = np.random.default_rng(2).random((8,) + net.input.shape, dtype=np.float32)
    lanes = dict(in_lanes=2, out_lanes=2, fc_in_lanes=2, fc_out_lanes=4)
    from convc.outputs import write_outputs
    from convc.pipeline import CompileOptions, compile_network
    from convc.reference.modelfile import save_model

    model = save_model(net, tmp_path / "model.npz")
    result = compile_network(net, get_board("virtex6"), CompileOptions(calib=8, **lanes), where=str(model),
                             calib=calib)
    hw = dataclasses.replace(result.program.hw, list_words=4)
    program = schedule.run(result.graph, hw)
    program.meta.update({k: v for k, v in result.program.meta.items() if k not in program.meta})
    result.program, result.report = program, make_report(result.graph, program, get_board("virtex6"))
    long = [ins for ins in program.instrs if ins.op in (isa.OP_CONV, isa.OP_FC) and ins.n_in > hw.list_words]
    assert {ins.op for ins in long} == {isa.OP_CONV, isa.OP_FC}
    assert any(program.image[ins.list_addr] > 0 for ins in long)       # a run not starting at map 0
    out = tmp_path / "out"
    write_outputs(result, out, log=None)
    res = verify(out, images=4, model=model, report_dir=tmp_path / "verify", log=None)
    _check(res, program, 4)


def test_lenet_board_build_rtl_equals_golden_and_cycle_model(lenet_digits, tmp_path):
    """The build ``convc compile --board virtex6`` writes, on 20 held-out digits: every
    word of every layer, top-1, cycles per image and per layer."""
    from convc.sim.verify import verify

    path, net, _ = lenet_digits
    out, _, program = _compile(tmp_path, net, {})
    hw = program.hw
    assert hw.dsp > 700 and hw.fc_out_lanes >= 32        # the board's size, not a side build
    assert {isa.OP_CONV, isa.OP_FC} <= {ins.op for ins in program.instrs}
    res = verify(out, images=20, model=path, report_dir=tmp_path / "verify", log=None)
    _check(res, program, 20)
    assert res.top1_agreement == 1.0
    assert (tmp_path / "verify" / "report.html").is_file()


@pytest.mark.slow
def test_lenet_board_build_200_digits_ddr3_and_backpressure(lenet_digits, tmp_path):
    from convc.sim.verify import verify

    path, net, _ = lenet_digits
    out, _, program = _compile(tmp_path, net, {})
    res = verify(out, images=200, model=path, memory="board", report_dir=tmp_path / "ddr3", log=None)
    _check(res, program, 200)                   # the DDR3 timing: cycle model within 1% per layer too
    bp = verify(out, images=200, model=path, backpressure=11, report_dir=tmp_path / "bp", log=None)
    assert bp.error is None and bp.mismatched_words == 0 and bp.images_run == 200, bp.first_mismatch


@pytest.mark.slow
@needs_iverilog
def test_lenet_small_build_cocotb_icarus(lenet_digits, tmp_path):
    from convc.sim.verify import verify

    path, net, _ = lenet_digits
    out, _, program = _compile(tmp_path, net, LENET_LANES)
    res = verify(out, images=2, harness="cocotb", sim="icarus", model=path, report_dir=tmp_path / "verify",
                 log=None)
    _check(res, program, 2)

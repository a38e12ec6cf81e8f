"""Valid networks are compiled, and what the hardware cannot run is refused up front
(issue 13): every limit is read from the record's field widths (``isa.FIELDS``) or from
the engines (``HardwareConfig.field_range``), never copied, and every refusal names the
model file and the layer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from convc.boards import get_board
from convc.compiler import isa
from convc import pipeline
from convc.compiler.hwconfig import HardwareConfig, HardwareConfigError, engine_limits
from convc.compiler.passes import size
from convc.pipeline import CompileOptions, board_cycles, compile_network
from convc.errors import ConvcError
from convc.reference.modelfile import network_from_graph
from convc.sim import golden, golden_naive

V6 = get_board("virtex6")


def _spec(name, shape, layers):
    return {"name": name, "input": {"shape": shape}, "classes": 10, "layers": layers}


def _conv(out, k, **kw):
    return {"type": "conv2d", "attrs": {"out_channels": out, "kernel": k, **kw}}


def _net(spec):
    net = network_from_graph(spec, f"{spec['name']}.json")
    net.init_params(0)
    return net


def _compile(spec, board=V6, **opts):
    net = _net(spec)
    calib = np.random.default_rng(0).random((2,) + net.input.shape, dtype=np.float32)
    return compile_network(net, board, CompileOptions(calib=2, **opts), where=f"{spec['name']}.json", calib=calib)


@pytest.fixture
def no_calibration(monkeypatch):
    """Refusals come before any work: calibration (the first costly step) must not run."""
    def refuse(*a, **kw):
        raise AssertionError("calibration ran before the refusal")
    monkeypatch.setattr(pipeline, "calibration_inputs", refuse)
    monkeypatch.setattr(pipeline.quantize, "run", refuse)


def _refused(spec, *patterns):
    net = _net(spec)
    with pytest.raises(ConvcError) as info:
        compile_network(net, V6, CompileOptions(calib=2), where=f"{spec['name']}.json")
    msg = str(info.value)
    for p in (f"{spec['name']}.json",) + patterns:
        assert p in msg, (p, msg)
    return msg


# ---- valid networks that were refused -------------------------------------------------
def test_all_1x1_network_compiles():
    """Every convolution 1x1: the FC-engine candidate has no line buffers, only the row
    writer's output rows (it used to be sized to 1 word and abort the whole search)."""
    spec = _spec("all1x1", [3, 8, 8], [_conv(4, 1), {"type": "relu"}, _conv(5, 1), {"type": "flatten"},
                                       {"type": "linear", "attrs": {"out_features": 10}}])
    res = _compile(spec)
    hw = res.program.hw
    assert hw.max_width >= 8
    assert {c["fc_in_lanes"] > 0 for c in res.candidates} == {False, True}     # both kinds were tried


def test_size_search_skips_a_candidate_that_cannot_hold_a_layer(monkeypatch):
    """A candidate the schedule refuses is skipped, not fatal; only when none is left is the
    user told, with the layer and the limit."""
    spec = _spec("skip", [3, 8, 8], [_conv(4, 1), {"type": "relu"}, _conv(5, 3), {"type": "flatten"},
                                     {"type": "linear", "attrs": {"out_features": 10}}])
    res = _compile(spec)
    real = size.schedule.run

    def no_fc(graph, hw, fill=True):            # pretend no FC-engine configuration holds 'layer0'
        if hw.has_fc:
            raise ConvcError("layer 'layer0': pretend the FC engine cannot hold it")
        return real(graph, hw, fill=fill)

    monkeypatch.setattr(size.schedule, "run", no_fc)
    hw, tried = size.run(res.graph, V6, 16, where="skip.json", cycles=board_cycles)
    assert not hw.has_fc and tried and all(c["fc_in_lanes"] == 0 for c in tried)

    def nothing(graph, hw, fill=True):
        raise ConvcError("layer 'layer2': pretend nothing holds it")

    monkeypatch.setattr(size.schedule, "run", nothing)
    with pytest.raises(ConvcError, match=r"skip.json does not fit virtex6: layer 'layer2': pretend"):
        size.run(res.graph, V6, 16, where="skip.json", cycles=board_cycles)


def test_wide_conv_stays_within_every_engine():
    """128 output maps of a 3x3 convolution: the size pass used to pick 73 output lanes,
    beyond the pooling engine's 64, and the Verilog export failed."""
    from convc.hdl.accel import Accelerator
    from convc.hdl.engines import ENGINES, build_engine
    from convc.hdl.pool import PoolEngine

    spec = _spec("conv128", [3, 5, 5], [_conv(128, 3), {"type": "relu"},
                                        {"type": "maxpool2d", "attrs": {"kernel": 3}}, {"type": "flatten"},
                                        {"type": "linear", "attrs": {"out_features": 10}}])
    res = _compile(spec, board=dataclasses.replace(V6, luts=10 ** 7))     # DSP-bound, not LUT-bound
    hw = res.program.hw
    assert HardwareConfig.field_range("out_lanes")[1] == PoolEngine.LIMITS["lanes"][1]
    assert hw.out_lanes == PoolEngine.LIMITS["lanes"][1]      # as many as the engines take
    for cand in res.candidates:
        for name, _, lo, hi in engine_limits():
            if name in cand:
                assert lo <= cand[name] <= hi or cand[name] == 0, (name, cand)
    for name in ENGINES:                                      # every engine takes it (not elaborated)
        if name == "lcn":
            continue
        build_engine(name, hw)._MustUse__silence = True
    Accelerator(hw)._MustUse__silence = True


def test_hardware_config_refuses_what_no_engine_can_be_built_for():
    base = dict(board="t", clock_mhz=200.0, bits=16, kmax=3, in_lanes=1, out_lanes=8, max_width=16,
                psum_words=256, fc_in_lanes=2, fc_out_lanes=4)
    HardwareConfig(**base)
    cases = {"out_lanes": (73, "PoolEngine: lanes=73 outside [1, 64]"),
             "in_lanes": (65, "ConvEngine: in_lanes=65 outside [1, 64]"),
             "kmax": (32, f"kmax=32 outside [1, {isa.field_max('kernel')}]"),
             "pool_kmax": (16, f"pool_kmax=16 outside [1, {isa.field_max('pool_k')}]"),
             "fc_in_lanes": (300, "readers"),
             "list_words": (1, "list_words=1 is less than the 2 input lanes")}
    for field, (value, pattern) in cases.items():
        with pytest.raises(HardwareConfigError) as info:
            HardwareConfig(**{**base, field: value})
        assert pattern in str(info.value) and isinstance(info.value, ConvcError), (field, str(info.value))
    with pytest.raises(HardwareConfigError, match="clock_mhz"):
        HardwareConfig(**{**base, "clock_mhz": float("nan")})
    # an engine that is not built does not bound its fields
    HardwareConfig(**{**base, "fc_in_lanes": 0, "fc_out_lanes": 0, "lcn_kmax": 0, "lcn_channels": 0})


def test_forced_lanes_beyond_an_engine_are_refused_with_the_field():
    spec = _spec("small", [1, 12, 12], [_conv(4, 3), {"type": "flatten"},
                                        {"type": "linear", "attrs": {"out_features": 10}}])
    res = _compile(spec)
    with pytest.raises(ConvcError, match=r"small.json does not fit virtex6 with in_lanes=200: the hardware takes in_lanes 1..64"):
        size.run(res.graph, V6, 16, in_lanes=200, where="small.json", cycles=board_cycles)


def test_linear_layer_beyond_the_list_memory_compiles():
    """A linear layer of more inputs than the list memory's 1024 entries (VGG's fc6 has
    25,088): its list is consecutive, so the hardware needs only the first entries."""
    spec = _spec("fc1100", [11, 10, 10], [{"type": "flatten"}, {"type": "linear", "attrs": {"out_features": 10}}])
    res = _compile(spec)
    prog, hw = res.program, res.program.hw
    recs = [ins for ins in prog.instrs if ins.op in (isa.OP_CONV, isa.OP_FC)]
    assert recs and all(ins.n_in == 1100 > hw.list_words for ins in recs)
    assert list(prog.image[recs[0].list_addr:recs[0].list_addr + 1100]) == list(range(1100))
    x = np.random.default_rng(3).random((2, 11, 10, 10), dtype=np.float32)
    codes = prog.quantize_input(x)[0]
    fast, slow = golden.run(prog, codes), golden_naive.run(prog, codes[:1])
    o = prog.output
    assert np.array_equal(fast.memory[0][o.addr:o.addr + o.words], slow.memory[0][o.addr:o.addr + o.words])


def test_non_consecutive_long_list_refused_before_any_work(no_calibration):
    table = [[i for i in range(1100) if i != 500]]          # 1099 maps with a gap
    spec = _spec("gap", [1100, 3, 3], [_conv(1, 1, table=table)])
    _refused(spec, "'layer0'", "1099 input maps that are not consecutive", "1024")


# ---- what no record can carry: refused before any work, naming the file and layer -------
def test_kernel_beyond_the_record_field_refused_before_any_work(no_calibration):
    k = isa.field_max("kernel") + 1
    msg = _refused(_spec("k33", [1, 40, 40], [_conv(2, k), {"type": "flatten"},
                                              {"type": "linear", "attrs": {"out_features": 10}}]),
                   "'layer0'", f"kernel {k}", f"{k - 1}", "'kernel' field")
    assert "layer 0" in msg


@pytest.mark.parametrize("layer, attr, field", [
    ({"type": "conv2d", "attrs": {"out_channels": 2, "kernel": 3, "stride": 16}}, "stride", "stride"),
    ({"type": "conv2d", "attrs": {"out_channels": 2, "kernel": 3, "padding": 16}}, "padding", "pad"),
    ({"type": "maxpool2d", "attrs": {"kernel": 16}}, "kernel", "pool_k"),
    ({"type": "avgpool2d", "attrs": {"kernel": 2, "stride": 16}}, "stride", "pool_s"),
])
def test_window_attributes_beyond_the_record_refused(no_calibration, layer, attr, field):
    hi = isa.field_max(field)
    _refused(_spec("win", [1, 40, 40], [layer]), "'layer0'", f"{attr} {hi + 1}", f"of {hi}")


def test_sizes_beyond_the_record_fields_refused(no_calibration):
    # 5000 columns: the 12-bit in_w field holds 4095
    _refused(_spec("wide", [1, 2, 5000], [_conv(1, 1)]), "'layer0'", "5000 input columns", "in_w")


def test_values_beyond_every_format_are_refused_before_the_size_search(monkeypatch):
    """Weights that make the activations explode (as VGG-19's constant ONNX weights do):
    one message naming the layer, before the (long) size search runs."""
    spec = _spec("explode", [1, 8, 8], [_conv(2, 3), _conv(2, 3)])
    net = network_from_graph(spec, "explode")
    net.init_params(seed=1)
    net.layers[1].params["weight"] *= np.float32(1e25)
    net.layers[1].params["bias"][:] = 0
    monkeypatch.setattr(size, "run", lambda *a, **k: pytest.fail("the size search ran"))
    calib = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    with pytest.raises(ConvcError, match="layer 'layer1' .*: the values are too large for a fixed-point format"):
        compile_network(net, V6, CompileOptions(calib=2), where="explode.json", calib=calib)

"""hdl/engines.py: ``build_engine(name, hw)`` builds each engine sized by the one hardware
configuration, the way the accelerator sizes it (``convc synth`` counts these), and refuses
an engine the configuration has not got with one message. Two engines built this way are
also run in Amaranth simulation against plain loops."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from amaranth.lib import data

import streams
from convc.compiler import isa
from convc.compiler.hwconfig import HardwareConfig
from convc.errors import ConvcError
from convc.hdl.conv import ConvEngine
from convc.hdl.engines import ENGINES, build_engine
from convc.hdl.fc import FCEngine
from convc.hdl.lcn import LCNEngine
from convc.hdl.pointwise import PointwiseEngine
from convc.hdl.pool import PoolEngine

# every engine present; sizes chosen distinct so that a field read in place of another shows
HW = HardwareConfig(board="t", clock_mhz=100.0, bits=8, kmax=3, in_lanes=2, out_lanes=3, max_width=12,
                    psum_words=64, pool_kmax=2, fc_in_lanes=4, fc_out_lanes=5, fc_psum_words=96,
                    lcn_kmax=5, lcn_channels=2, pwl_segments=6)


def _unused(engine):
    """Silence Amaranth's 'created but never elaborated' warning for a built-only engine."""
    engine._MustUse__silence = True
    return engine


def _lanes(port) -> int:
    """Lanes of a stream port whose payload has an array ``data`` field."""
    shape = port.payload.shape()["data"].shape
    assert isinstance(shape, data.ArrayLayout)
    return shape.length


def test_the_five_engines():
    assert sorted(ENGINES) == ["conv", "fc", "lcn", "pointwise", "pool"]


def test_conv_is_sized_by_the_configuration():
    eng = _unused(build_engine("conv", HW))
    assert type(eng) is ConvEngine and eng.hw is HW
    assert (eng.in_lanes, eng.out_lanes, eng.kmax, eng.bits, eng.max_width, eng.psum_words) == (2, 3, 3, 8, 12, 64)
    assert _lanes(eng.i) == 2 and _lanes(eng.ip) == 2
    assert len(eng.weight.payload) == 8              # one signed weight of `bits`


def test_pool_is_sized_by_the_configuration():
    eng = _unused(build_engine("pool", HW))
    assert type(eng) is PoolEngine
    assert (eng.lanes, eng.bits, eng.kmax, eng.max_width) == (3, 8, 2, 12)     # out_lanes, pool_kmax
    assert _lanes(eng.i) == 3 and _lanes(eng.o) == 3
    assert len(eng.width) == 4                        # range(12 + 1): 4 bits
    wide = _unused(build_engine("pool", dataclasses.replace(HW, pool_kmax=4, max_width=300)))
    assert (wide.kmax, wide.max_width, len(wide.width)) == (4, 300, 9)


def test_fc_is_sized_by_the_configuration():
    eng = _unused(build_engine("fc", HW))
    assert type(eng) is FCEngine
    assert (eng.in_lanes, eng.out_lanes, eng.bits, eng.psum_words) == (4, 5, 8, 96)
    assert _lanes(eng.i) == 4 and _lanes(eng.o) == 5
    assert len(eng.pixels) == 7                       # range(96 + 1): 7 bits


def test_lcn_is_sized_by_the_configuration():
    eng = _unused(build_engine("lcn", HW))
    assert type(eng) is LCNEngine
    assert (eng.channels, eng.bits, eng.kmax, eng.max_width) == (2, 8, 5, 12)
    assert len(eng.k) == 3 and len(eng.n_maps) == 2   # range(5 + 1), range(2 + 1)


@pytest.mark.parametrize("out_lanes, fc, want", [(3, (4, 5), 5), (6, (4, 5), 6), (3, None, 3), (7, (2, 1), 7)])
def test_pointwise_has_a_lane_for_each_lane_after_the_engines(out_lanes, fc, want):
    """max(out_lanes, fc_out_lanes), fc_out_lanes only counting with an FC engine."""
    hw = dataclasses.replace(HW, out_lanes=out_lanes, fc_in_lanes=fc[0] if fc else 0,
                             fc_out_lanes=fc[1] if fc else 0)
    eng = _unused(build_engine("pointwise", hw))
    assert type(eng) is PointwiseEngine
    assert (eng.lanes, eng.bits, eng.max_segments) == (want, 8, 6)
    assert _lanes(eng.i) == want


def test_half_an_fc_engine_is_none():
    """fc_in_lanes > 0 with fc_out_lanes = 0 is no FC engine: the pointwise lanes ignore it
    and ``fc`` is refused."""
    hw = dataclasses.replace(HW, fc_in_lanes=4, fc_out_lanes=0)
    assert _unused(build_engine("pointwise", hw)).lanes == 3
    with pytest.raises(ConvcError, match="no fully connected engine"):
        build_engine("fc", hw)


def test_absent_engines_and_unknown_names_are_refused():
    no_fc = dataclasses.replace(HW, fc_in_lanes=0, fc_out_lanes=0)
    with pytest.raises(ConvcError, match=r"no fully connected engine \(fc_in_lanes = 0\)"):
        build_engine("fc", no_fc)
    no_lcn = dataclasses.replace(HW, lcn_kmax=0, lcn_channels=0)
    with pytest.raises(ConvcError, match=r"no LCN engine \(lcn_kmax = 0, lcn_channels = 0\)"):
        build_engine("lcn", no_lcn)
    for name in ("conv", "pool", "pointwise"):      # the others are still there
        _unused(build_engine(name, no_fc))
        _unused(build_engine(name, no_lcn))
    with pytest.raises(ConvcError) as info:
        build_engine("softmax", HW)
    assert str(info.value) == "unknown engine 'softmax'; choose one of conv, pool, fc, lcn, pointwise"


def test_lcn_without_channels_is_no_lcn_engine():
    hw = dataclasses.replace(HW, lcn_kmax=5, lcn_channels=0)      # accepted: no LCN engine is built
    with pytest.raises(ConvcError, match="no LCN engine"):
        build_engine("lcn", hw)


# ---- built engines run ---------------------------------------------------------------------
def test_built_pool_engine_max_pools_like_a_loop():
    """The pool engine ``build_engine`` makes (3 lanes, 2x2 windows) max-pools a 4x6 frame of
    every lane like a plain loop, under random idle cycles and backpressure."""
    dut = build_engine("pool", HW)
    H, W, lanes = 4, 6, 3
    rng = np.random.default_rng(5)
    frame = rng.integers(-128, 128, size=(H, W, lanes))
    sent = [{"data": [int(v) for v in frame[r, c]], "first": int(r == 0 and c == 0),
             "last": int(r == H - 1 and c == W - 1)} for r in range(H) for c in range(W)]

    async def setup(ctx):
        ctx.set(dut.kind, isa.POOL_MAX)
        ctx.set(dut.k, 2)
        ctx.set(dut.s, 2)
        ctx.set(dut.width, W)

    got = streams.run_stream_test(dut, dut.i, dut.o, sent, count=(H // 2) * (W // 2), seed=3,
                                  idle_prob=0.2, bp_prob=0.3, setup=setup)
    want = []
    for y in range(H // 2):
        for x in range(W // 2):
            want.append([max(frame[2 * y + u, 2 * x + v, l] for u in range(2) for v in range(2))
                         for l in range(lanes)])
    assert [[int(p.data[l]) for l in range(lanes)] for p in got] == want
    assert [int(p.first) for p in got] == [1] + [0] * 5 and [int(p.last) for p in got] == [0] * 5 + [1]


def test_built_pointwise_engine_applies_relu_and_abs_on_every_lane():
    """The pointwise engine ``build_engine`` makes has max(out_lanes, fc_out_lanes) = 5 lanes,
    each of them runs ReLU (max(0, x)) and abs (saturated: -128 -> 127 at 8 bits)."""
    rng = random.Random(9)
    codes = [[-128, 127, 0, -1, 1]] + [[rng.randint(-128, 127) for _ in range(5)] for _ in range(20)]
    sent = [{"data": c, "first": int(k == 0), "last": int(k == len(codes) - 1)} for k, c in enumerate(codes)]
    for act, f in ((isa.ACT_RELU, lambda v: max(v, 0)), (isa.ACT_ABS, lambda v: min(abs(v), 127))):
        dut = build_engine("pointwise", HW)

        async def setup(ctx, act=act):
            ctx.set(dut.act, act)

        got = streams.run_stream_test(dut, dut.i, dut.o, sent, seed=act, idle_prob=0.2, bp_prob=0.3,
                                      setup=setup)
        assert [[int(p.data[l]) for l in range(5)] for p in got] == [[f(v) for v in c] for c in codes]

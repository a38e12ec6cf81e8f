"""Every engine port that carries a record field has that field's shape, taken from the ISA
(``isa.shape`` through ``hdl.fields.field_shape``): a field whose width changes in
``isa.FIELDS`` changes the ports with it, and a port written by hand fails here."""

from __future__ import annotations

import pytest
from amaranth.hdl import Shape, signed, unsigned

from convc.compiler import isa
from convc.compiler.hwconfig import HardwareConfig
from convc.hdl.accel import record_layout
from convc.hdl.conv import ConvEngine
from convc.hdl.fc import FCEngine
from convc.hdl.feeder import MapFeeder
from convc.hdl.fields import GROUP_BITS, field_shape
from convc.hdl.lcn import LCNEngine
from convc.hdl.pointwise import PointwiseEngine
from convc.hdl.pool import PoolEngine, config_layout
from convc.hdl.rowwriter import RowWriter

HW = HardwareConfig(board="t", clock_mhz=100.0, bits=8, kmax=3, in_lanes=2, out_lanes=3, max_width=12,
                    psum_words=64, pool_kmax=2, fc_in_lanes=4, fc_out_lanes=5, fc_psum_words=96,
                    lcn_kmax=5, lcn_channels=2, pwl_segments=6)


def _engines() -> dict:
    """Each engine that takes record fields, built afresh (so that it reads the ISA now)."""
    return {
        "conv": ConvEngine(HW),
        "fc": FCEngine(in_lanes=4, out_lanes=5, bits=8, psum_words=96),
        "pool": PoolEngine(lanes=3, bits=8, kmax=2, max_width=12),
        "lcn": LCNEngine(channels=2, bits=8, kmax=5, max_width=12),
        "pointwise": PointwiseEngine(8, lanes=3),
        "feeder": MapFeeder(bits=8, list_words=16),
        "rowwriter": RowWriter(lanes=3, bits=8, max_width=12),
    }


#: (engine, port, record field) for every port that holds a field as it is
FIELD_PORTS = [
    ("conv", "kernel", "kernel"), ("conv", "stride", "stride"), ("conv", "acc_shift", "acc_shift"),
    ("conv", "bias_shift", "bias_shift"),
    ("fc", "acc_shift", "acc_shift"), ("fc", "bias_shift", "bias_shift"),
    ("pool", "kind", "pool"), ("pool", "k", "pool_k"), ("pool", "s", "pool_s"), ("pool", "avg_mul", "avg_mul"),
    ("pool", "avg_shift", "avg_shift"),
    ("lcn", "m_shift", "acc_shift"), ("lcn", "sq_shift", "sq_shift"), ("lcn", "s2_shift", "s2_shift"),
    ("lcn", "y_shift", "y_shift"), ("lcn", "mean_mul", "mean_mul"), ("lcn", "mean_shift", "mean_shift"),
    ("lcn", "eps", "eps"),
    ("pointwise", "act", "act"),
    ("feeder", "pad", "pad"), ("feeder", "n_in", "n_in"), ("feeder", "up", "up"),
    ("rowwriter", "n_out", "n_out"),
]

#: (engine, port, record field) for ports sized by a module constant derived from a field
#: (``isa.ROW_COL_BITS``, ``hdl.fields.GROUP_BITS``): they follow the field at import time
CONSTANT_PORTS = [
    ("conv", "width", "in_w"), ("conv", "rows", "rows"), ("conv", "groups", "n_in"),
    ("fc", "groups", "n_in"),
    ("feeder", "groups", "n_in"), ("feeder", "rs", "in_h"), ("feeder", "nr", "in_h"),
    ("feeder", "in_h", "in_h"), ("feeder", "in_w", "in_w"),
    ("rowwriter", "out_w", "out_w"), ("rowwriter", "rows", "rows"),
]


def _port_shape(engine, port: str) -> Shape:
    return Shape.cast(engine.signature.members[port].shape)


def _expected(name: str) -> Shape:
    bits, is_signed = isa.shape(name)
    return signed(bits) if is_signed else unsigned(bits)


def test_isa_shapes_are_the_field_table():
    for f in isa.FIELDS:
        assert isa.shape(f.name) == (f.bits, f.signed)
        assert field_shape(f.name) == (signed(f.bits) if f.signed else unsigned(f.bits))
    assert GROUP_BITS == isa.field("n_in").bits
    assert {isa.field(n).bits for n in ("in_h", "in_w", "out_h", "out_w", "row0", "rows")} == {isa.ROW_COL_BITS}


@pytest.mark.parametrize("engine, port, name", FIELD_PORTS + CONSTANT_PORTS)
def test_port_has_the_field_shape(engine, port, name):
    assert _port_shape(_engines()[engine], port) == _expected(name), (engine, port, name)


def test_record_layout_and_pool_config_have_the_field_shapes():
    lay = record_layout()
    for f in isa.FIELDS:
        assert Shape.cast(lay[f.name].shape) == _expected(f.name)
    cfg = config_layout(12)
    for member, name in (("kind", "pool"), ("k", "pool_k"), ("s", "pool_s"), ("avg_mul", "avg_mul"),
                         ("avg_shift", "avg_shift")):
        assert Shape.cast(cfg[member].shape) == _expected(name)


def test_ports_follow_a_field_whose_width_changes(monkeypatch):
    """Widen every field by a bit (as an edit of ``isa.FIELDS`` would): each port built
    afterwards has the new width; a hand-written port would keep the old one."""
    orig = isa.shape
    monkeypatch.setattr(isa, "shape", lambda name: isa.FieldShape(orig(name).bits + 1, orig(name).signed))
    engines = _engines()
    for engine, port, name in FIELD_PORTS:
        want = orig(name).bits + 1
        got = _port_shape(engines[engine], port)
        assert (got.width, got.signed) == (want, orig(name).signed), (engine, port, name)
    lay = record_layout()
    assert all(Shape.cast(lay[f.name].shape).width == f.bits + 1 for f in isa.FIELDS)


def test_engines_check_the_isa_limits():
    conv = ConvEngine(HW)
    s_lo, s_hi = isa.limit("stride")
    assert conv.check_band(1, s_hi, 12, 4, 1) == (1, 1)
    for bad in ({"stride": s_hi + 1}, {"stride": s_lo - 1}, {"acc_shift": isa.limit("acc_shift")[1] + 1},
                {"bias_shift": isa.limit("bias_shift")[1] + 1}):
        args = dict(kernel=1, stride=1, width=12, rows=4, groups=1) | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            conv.check_band(**args)
    assert PoolEngine.LIMITS["kmax"][1] == isa.limit("pool_k")[1]
    assert ConvEngine.LIMITS["kmax"][1] == LCNEngine.LIMITS["kmax"][1] == isa.limit("kernel")[1]
    assert HardwareConfig.field_range("bits") == isa.limit("bits")

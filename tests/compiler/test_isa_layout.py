"""The one root of the record's limits and layouts (compiler/isa.py): field shapes and
limits, the band geometry and the weight and bias layout, each a function that the
compiler, the models and the hardware share; and the one test of which layers the fully
connected engine runs (compiler/passes/schedule.py)."""

from __future__ import annotations

import numpy as np
import pytest

from convc.compiler import isa
from convc.compiler.hwconfig import HardwareConfig
from convc.compiler.ir import ConvNode, Pool
from convc.compiler.numeric import signed_range
from convc.compiler.passes import schedule


@pytest.mark.parametrize("name, lo, hi", [("bits", 2, isa.WORD_BITS), ("kernel", 1, 31), ("stride", 1, 15),
                                          ("pool_k", 1, 15), ("pool_s", 1, 15), ("pad", 0, 15),
                                          ("acc_shift", -128, 127), ("bias_shift", 0, 63), ("in_w", 0, 4095),
                                          ("n_in", 0, 65535)])
def test_limit_is_the_width_narrowed_by_the_meaning(name, lo, hi):
    assert isa.limit(name) == (lo, hi)
    f = isa.field(name)
    assert isa.shape(name) == (f.bits, f.signed)
    wlo, whi = signed_range(f.bits) if f.signed else (0, (1 << f.bits) - 1)
    assert wlo <= lo <= hi <= whi == isa.field_max(name)


def test_constants_derive_from_the_field_table():
    assert isa.RECORD_WORDS * isa.WORD_BITS == isa.RECORD_BITS
    for name in ("in_h", "in_w", "out_h", "out_w", "row0", "rows"):
        assert isa.field(name).bits == isa.ROW_COL_BITS
    assert HardwareConfig.field_range("max_width")[1] <= (1 << isa.ROW_COL_BITS) - 1


def test_band_geometry():
    # 3 pooled rows, 2x2 pooling at stride 2: conv rows 0..5; 3x3 kernel at stride 2: input rows 0..12
    assert isa.conv_rows(3, 2, 2) == 6
    assert isa.in_rows(6, 3, 2) == 13
    assert isa.conv_rows(1, 1, 1) == 1 and isa.in_rows(1, 5, 1) == 5


def _instr(op, n_in, n_out, K):
    return isa.Instr(op=op, n_in=n_in, n_out=n_out, kernel=K)


@pytest.mark.parametrize("op, n_in, n_out, K", [(isa.OP_CONV, 3, 4, 3), (isa.OP_CONV, 2, 1, 1),
                                                (isa.OP_FC, 5, 3, 1), (isa.OP_FC, 2, 17, 1)])
def test_weight_layout_one_definition(op, n_in, n_out, K):
    """The element offsets, the NumPy view, the image and its reading agree; the layout is
    the one the module docstring states."""
    rng = np.random.default_rng(1)
    w = rng.integers(-(1 << 15), 1 << 15, size=(n_out, n_in, K, K))
    b = rng.integers(-(1 << 31), 1 << 31, size=n_out)
    words = isa.weight_image(op, w, b)
    ins = _instr(op, n_in, n_out, K)
    assert words.size == ins.weight_words == isa.weight_words(op, n_in, n_out, K)
    s = words - ((words >> 15) << 16)
    view = isa.weight_view(op, s, n_in, n_out, K)
    assert np.shares_memory(view, s) and (view == w).all()
    for o in range(n_out):
        for j in range(n_in):
            for p in range(K):
                for q in range(K):
                    off = isa.weight_offset(op, n_in, n_out, K, o, j, p, q)
                    doc = j * isa.fc_ld(n_out) + o if op == isa.OP_FC else ((o * n_in + j) * K + p) * K + q
                    assert off == doc and s[off] == w[o, j, p, q]
    nb = isa.bias_offset(op, n_in, n_out, K)
    assert [isa.join_bias(int(words[nb + 2 * o]), int(words[nb + 2 * o + 1])) for o in range(n_out)] == b.tolist()
    w2, b2 = isa.read_weights(ins, words)
    assert (w2 == w).all() and (b2 == b).all()


def test_bias_words():
    for v in (0, 1, -1, (1 << 31) - 1, -(1 << 31), 0x12345678):
        lo, hi = isa.bias_words(v)
        assert 0 <= lo <= 0xFFFF and 0 <= hi <= 0xFFFF
        assert isa.join_bias(lo, hi) == v
        # a word read back sign-extended (as the models hold memory) gives the same bias
        assert isa.join_bias(lo - ((lo >> 15) << 16), hi - ((hi >> 15) << 16)) == v


def test_weight_view_refuses_short_words():
    with pytest.raises(ValueError, match="weights need 36"):
        isa.weight_view(isa.OP_CONV, np.zeros(35, dtype=np.int64), 2, 2, 3)


def _conv(kernel=1, stride=1, pad=0, pool=None):
    return ConvNode(name="c", sources=["c"], in_shape=(4, 6, 6), out_shape=(3, 6, 6), in_c=4, out_c=3,
                    kernel=kernel, stride=stride, pad=pad, weight=np.zeros((3, 4, kernel, kernel)),
                    bias=np.zeros(3), pool=pool)


def test_fc_eligible_is_the_one_test():
    hw_fc = HardwareConfig(board="t", clock_mhz=100.0, bits=8, kmax=3, in_lanes=1, out_lanes=1, max_width=12,
                           psum_words=64, fc_in_lanes=2, fc_out_lanes=2)
    hw = HardwareConfig(board="t", clock_mhz=100.0, bits=8, kmax=3, in_lanes=1, out_lanes=1, max_width=12,
                        psum_words=64)
    assert schedule.fc_eligible(_conv())
    for node in (_conv(kernel=3), _conv(stride=2), _conv(pad=1), _conv(pool=Pool("max", 2, 2))):
        assert not schedule.fc_eligible(node)
        assert not schedule.on_fc(node, hw_fc)
    assert schedule.on_fc(_conv(), hw_fc) and not schedule.on_fc(_conv(), hw)

"""Tests of the golden models: the fast vectorized one (convc.sim.golden)
against the slow literal one (convc.sim.golden_naive), word for word, on small
programs built by hand, plus a few results worked out by hand.
"""

from __future__ import annotations

import zlib
from functools import lru_cache
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convc.compiler import isa
from convc.compiler.hwconfig import HardwareConfig
from convc.compiler.numeric import QFormat
from convc.compiler.program import Program, Region
from convc.compiler.pwl_fit import fit_pwl, make_tanh
from convc.sim import golden, golden_conv, golden_exact, golden_naive

Q88 = QFormat(16, 8)
HW = HardwareConfig(board="test", clock_mhz=100.0, bits=16, kmax=9, in_lanes=2, out_lanes=2,
                    max_width=128, psum_words=1024, lcn_kmax=9)


# ----------------------------------------------------------------------------
# hand-built programs
# ----------------------------------------------------------------------------
@lru_cache(maxsize=None)
def tanh_table():
    return make_tanh(8, Q88, Q88)[0]


@lru_cache(maxsize=None)
def sqrt_table():
    return fit_pwl(np.sqrt, 0.0, 127.0, 8, Q88, Q88)[0]


@lru_cache(maxsize=None)
def recip_table(lo: float):
    return fit_pwl(lambda v: 1.0 / v, lo, 64.0, 16, Q88, QFormat(16, 12))[0]


class Builder:
    """Lays out a program by hand: constants from address 0 (weights, biases,
    lists; the PWL tables are appended by :meth:`finish`), activations from
    ``act_base`` up."""

    def __init__(self, rng, in_shape, act_base: int = 1 << 14):
        self.rng = rng
        self.image: list[int] = []
        self.tables: list = []
        self.instrs: list[isa.Instr] = []
        self.names: list[str] = []
        self.layers: list[Region] = []
        self.act_base = self.act_next = act_base
        self.input = self.alloc("input", tuple(in_shape))

    def const(self, values) -> int:
        addr = len(self.image)
        self.image.extend(int(v) & 0xFFFF for v in values)
        return addr

    def alloc(self, name: str, shape, fmt: QFormat = Q88) -> Region:
        reg = Region(name, self.act_next, tuple(shape), fmt)
        self.act_next += reg.words
        return reg

    def table(self, t) -> int:
        self.tables.append(t)
        return len(self.tables) - 1

    def conv(self, name, src: Region, n_out, K, S=1, P=0, act=isa.ACT_NONE, pool=isa.POOL_NONE,
             pool_k=1, pool_s=1, in_list=None, o_splits=None, row_splits=None, wmax=300,
             bmax=1 << 12, bias_shift=8, acc_shift=8, avg_mul=0, avg_shift=0, pwl_id=0, bits=16,
             weights=None, bias=None, op=isa.OP_CONV, split_lists=None, out=None, up=0) -> Region:
        """``split_lists``: one input-map list per ``o_splits`` entry (all of
        one length) instead of ``in_list``; ``out``: write into this region
        instead of a new one; ``up``: read the input upsampled by ``2**up``."""
        C, H, W = src.shape
        lst = list(range(C)) if in_list is None else list(in_list)
        n_in = len(lst) if split_lists is None else len(split_lists[0])
        ch, cw = ((H << up) + 2 * P - K) // S + 1, ((W << up) + 2 * P - K) // S + 1
        oh, ow = (ch - pool_k) // pool_s + 1, (cw - pool_k) // pool_s + 1
        out = out if out is not None else self.alloc(name, (n_out, oh, ow))
        o_splits = o_splits or [(0, n_out)]
        row_splits = row_splits or [(0, oh)]
        list_addrs = [self.const(s) for s in (split_lists or [lst] * len(o_splits))]
        if weights is None:
            weights = self.rng.integers(-wmax, wmax + 1, size=(n_out, n_in, K, K))
        if bias is None:
            bias = self.rng.integers(-bmax, bmax + 1, size=n_out)
        for (o0, no), list_addr in zip(o_splits, list_addrs):
            if op == isa.OP_FC:                                           # aligned columns (isa.py)
                self.const([0] * (-len(self.image) % isa.FC_ALIGN))
            w_addr = self.const(isa.weight_image(op, np.asarray(weights)[o0:o0 + no],
                                                 np.asarray(bias)[o0:o0 + no]))
            for row0, rows in row_splits:
                self.instrs.append(isa.Instr(
                    op=op, bits=bits, act=act, pool=pool, kernel=K, stride=S, pad=P,
                    pool_k=pool_k, pool_s=pool_s, pwl_id=pwl_id, in_c=C, in_h=H, in_w=W,
                    out_h=oh, out_w=ow, n_in=n_in, n_out=no, o0=o0, row0=row0, rows=rows,
                    in_addr=src.addr, out_addr=out.addr, w_addr=w_addr, list_addr=list_addr,
                    bias_shift=bias_shift, acc_shift=acc_shift, avg_mul=avg_mul,
                    avg_shift=avg_shift, up=up))
                self.names.append(name)
        self.layers.append(out)
        return out

    def lcn(self, name, src: Region, K, G, sqrt_id, recip_id, eps, acc_shift=12, sq_shift=8,
            s2_shift=12, y_shift=12, mean_shift=20, mean_mul=None, bits=16) -> Region:
        C, H, W = src.shape
        out = self.alloc(name, (C, H, W))
        scratch = self.alloc(name + ".scratch", (C * H * W + H * W,))
        if mean_mul is None:
            mean_mul = round(2 ** mean_shift / (H * W))
        self.instrs.append(isa.Instr(
            op=isa.OP_LCN, bits=bits, kernel=K, pwl_id=sqrt_id, pwl2_id=recip_id, in_c=C, in_h=H,
            in_w=W, out_h=H, out_w=W, in_addr=src.addr, out_addr=out.addr,
            w_addr=self.const(np.asarray(G).ravel()), scratch_addr=scratch.addr,
            acc_shift=acc_shift, sq_shift=sq_shift, s2_shift=s2_shift, y_shift=y_shift,
            mean_mul=mean_mul, mean_shift=mean_shift, eps=eps))
        self.names.append(name)
        self.layers.append(out)
        return out

    def flat(self, reg: Region) -> Region:
        """The same words seen as a vector of 1x1 maps (no copy)."""
        return Region(reg.name + ".flat", reg.addr, (reg.words, 1, 1), reg.fmt)

    def finish(self) -> Program:
        table_addr = len(self.image)
        for t in self.tables:
            self.const(isa.table_words(t))
        assert len(self.image) <= self.act_base, "constants overlap the activations"
        instrs = self.instrs + [isa.Instr(op=isa.OP_END)]
        return Program(hw=HW, instrs=instrs, names=self.names + ["end"],
                       image=np.asarray(self.image, dtype=np.int64), memory_words=self.act_next,
                       table_addr=table_addr, n_tables=len(self.tables), input=self.input,
                       output=self.layers[-1], layers=list(self.layers))


def inputs(rng, prog: Program, n: int, lim: int = 600) -> np.ndarray:
    return rng.integers(-lim, lim + 1, size=(n, *prog.input.shape))


def both(prog: Program, x: np.ndarray):
    """Run fast and naive; assert every word and every count agree.  The fast
    model runs three times: as is, with tiny im2col chunks (chunked over
    images and rows), and with its weights in tiny column blocks."""
    fast = golden.run(prog, x)
    with mock.patch.object(golden_exact, "_CHUNK_ELEMS", 64):
        chunked = golden.run(prog, x)
    with mock.patch.object(golden_conv, "_WEIGHT_ELEMS", 16):     # weights widened in column blocks
        blocked = golden.run(prog, x)
    slow = golden_naive.run(prog, x)
    assert fast.memory.dtype == np.int64 and fast.memory.shape == (x.shape[0], prog.memory_words)
    for res in (fast, chunked, blocked):
        np.testing.assert_array_equal(res.memory, slow.memory)
        assert res.saturations == slow.saturations
        assert res.overflows == slow.overflows
    # every written word fits a signed 16-bit memory word
    assert fast.memory.min() >= -(1 << 15) and fast.memory.max() < (1 << 15)
    return fast


# ----------------------------------------------------------------------------
# convolution cases: fast == naive
# ----------------------------------------------------------------------------
CONV_CASES = {
    "k3s1": dict(shape=(1, 8, 8), n_out=4, K=3),
    "stride2_pad1": dict(shape=(3, 9, 8), n_out=4, K=3, S=2, P=1),
    "stride2_pad2_k5": dict(shape=(2, 7, 10), n_out=3, K=5, S=2, P=2),
    "stride3": dict(shape=(2, 10, 11), n_out=2, K=2, S=3, P=1),
    "kernel_is_image": dict(shape=(2, 5, 5), n_out=5, K=5),
    "kernel_is_padded_image": dict(shape=(1, 3, 3), n_out=2, K=5, P=1),
    "one_input_map_many_out": dict(shape=(1, 6, 7), n_out=9, K=3, P=1),
    "many_maps": dict(shape=(12, 5, 5), n_out=3, K=3, wmax=80),
    "fc_1x1": dict(shape=(12, 1, 1), n_out=7, K=1),
    "op_fc": dict(shape=(12, 1, 1), n_out=7, K=1, op=isa.OP_FC, act=isa.ACT_RELU),
    "op_fc_per_pixel": dict(shape=(5, 3, 4), n_out=4, K=1, op=isa.OP_FC, row_splits=[(0, 1), (1, 2)]),
    "fc_split": dict(shape=(20, 1, 1), n_out=9, K=1, o_splits=[(0, 4), (4, 3), (7, 2)]),
    "list_subset_perm": dict(shape=(5, 6, 6), n_out=3, K=3, in_list=[3, 0, 4]),
    "list_repeat": dict(shape=(3, 5, 5), n_out=2, K=3, in_list=[2, 2, 0, 1]),
    "splits_o_rows": dict(shape=(2, 9, 7), n_out=5, K=3, P=1, o_splits=[(0, 3), (3, 2)],
                          row_splits=[(0, 2), (2, 4), (6, 3)]),
    # output groups outside bands (as the compiler may emit them), each group
    # with its own list: grouped by band across the run, one product per list
    "band_outer_lists": dict(shape=(3, 8, 7), n_out=5, K=3, P=1, o_splits=[(0, 3), (3, 2)],
                             row_splits=[(0, 3), (3, 5)], split_lists=[[0, 2], [2, 1]]),
    "same_list_split": dict(shape=(3, 8, 7), n_out=5, K=3, P=1, o_splits=[(0, 2), (2, 3)],
                            row_splits=[(0, 4), (4, 4)], split_lists=[[2, 0, 1], [2, 0, 1]]),
    # a later record rewrites words of an earlier one: record order must hold
    "overlapping_blocks": dict(shape=(2, 6, 6), n_out=4, K=3, o_splits=[(0, 3), (1, 3)],
                               row_splits=[(0, 2), (2, 2)]),
    "relu": dict(shape=(2, 6, 6), n_out=3, K=3, act=isa.ACT_RELU),
    "abs": dict(shape=(2, 6, 6), n_out=3, K=3, act=isa.ACT_ABS),
    "pwl_tanh": dict(shape=(2, 6, 6), n_out=3, K=3, act=isa.ACT_PWL, acc_shift=10),
    "maxpool2": dict(shape=(2, 9, 9), n_out=3, K=2, pool=isa.POOL_MAX, pool_k=2, pool_s=2,
                     row_splits=[(0, 1), (1, 3)]),
    "maxpool3s2_overlap": dict(shape=(1, 10, 9), n_out=2, K=3, act=isa.ACT_RELU,
                               pool=isa.POOL_MAX, pool_k=3, pool_s=2, row_splits=[(0, 2), (2, 1)]),
    "maxpool2s3_gaps": dict(shape=(1, 11, 12), n_out=2, K=2, pool=isa.POOL_MAX, pool_k=2,
                            pool_s=3, row_splits=[(0, 2), (2, 1)]),
    "avgpool2": dict(shape=(2, 8, 8), n_out=3, K=3, P=1, act=isa.ACT_PWL, pool=isa.POOL_AVG,
                     pool_k=2, pool_s=2, avg_mul=1 << 14, avg_shift=16, acc_shift=10),
    "avgpool3_mul": dict(shape=(1, 9, 9), n_out=2, K=1, pool=isa.POOL_AVG, pool_k=3, pool_s=3,
                         avg_mul=7282, avg_shift=16, row_splits=[(0, 1), (1, 2)]),
    "bias_shift0": dict(shape=(2, 5, 5), n_out=2, K=3, bias_shift=0, bmax=1 << 20),
    "bias_shift_big": dict(shape=(2, 5, 5), n_out=2, K=3, bias_shift=12, bmax=1 << 14, acc_shift=12),
    "neg_acc_shift": dict(shape=(1, 4, 4), n_out=2, K=1, wmax=3, bmax=3, bias_shift=0, acc_shift=-2),
    "bits8": dict(shape=(2, 6, 6), n_out=2, K=3, bits=8, acc_shift=12, act=isa.ACT_ABS),
    "bits3_relu_maxpool": dict(shape=(1, 6, 6), n_out=2, K=3, bits=3, acc_shift=14,
                               act=isa.ACT_RELU, pool=isa.POOL_MAX, pool_k=2, pool_s=2),
    # the input read nearest-upsampled by 2**up (X_up[j][y][x] = X[j][y >> up][x >> up]):
    # padding, kernel, stride and bands in upsampled coordinates, the maps stored small
    "up1_k3_pad1_list": dict(shape=(4, 6, 5), n_out=3, K=3, P=1, up=1, in_list=[2, 0, 3],
                             o_splits=[(0, 2), (2, 1)], row_splits=[(0, 5), (5, 7)]),
    "up2_k3_pad1_table": dict(shape=(3, 6, 5), n_out=4, K=3, P=1, up=2, act=isa.ACT_RELU,
                              o_splits=[(0, 2), (2, 2)], split_lists=[[0, 2], [1, 1]],
                              row_splits=[(0, 7), (7, 10), (17, 7)]),
    "up1_k1_pad1": dict(shape=(3, 6, 5), n_out=4, K=1, P=1, up=1, in_list=[1, 2]),
    "up2_k1_pad1_rows": dict(shape=(2, 6, 5), n_out=3, K=1, P=1, up=2,
                             row_splits=[(0, 1), (1, 12), (13, 13)]),
    "up1_k3_stride2_pad1": dict(shape=(2, 5, 7), n_out=2, K=3, S=2, P=1, up=1),
    "up2_k3_pad2_maxpool": dict(shape=(2, 3, 4), n_out=2, K=3, P=2, up=2, pool=isa.POOL_MAX,
                                pool_k=2, pool_s=2, row_splits=[(0, 3), (3, 4)]),
    "up3_k3_pad1": dict(shape=(1, 2, 3), n_out=2, K=3, P=1, up=3, act=isa.ACT_PWL, acc_shift=10),
}


@pytest.mark.parametrize("name", sorted(CONV_CASES))
def test_conv_fast_equals_naive(name):
    case = dict(CONV_CASES[name])
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    b = Builder(rng, case.pop("shape"))
    if case.get("act") == isa.ACT_PWL:
        case["pwl_id"] = b.table(tanh_table())
    b.conv("c", b.input, **case)
    prog = b.finish()
    both(prog, inputs(rng, prog, 3))


def test_saturation_counted():
    """Large weights and inputs: requantize, |z|, the average pooling and the
    requantize before a PWL all clamp; the counts agree and are positive."""
    rng = np.random.default_rng(1)
    b = Builder(rng, (2, 6, 6))
    t = b.table(tanh_table())
    c1 = b.conv("sat_none", b.input, 3, 3, wmax=30000, acc_shift=8)
    c2 = b.conv("sat_abs", c1, 2, 3, P=1, wmax=20000, acc_shift=12, act=isa.ACT_ABS)
    # identity 1x1 conv (no clamp), then an average of 4 values times ~4
    ident = np.array([[[[256]], [[0]]], [[[0]], [[256]]]])
    c3 = b.conv("sat_avg", c2, 2, 1, weights=ident, bias=[0, 0], pool=isa.POOL_AVG, pool_k=2,
                pool_s=2, avg_mul=(1 << 18) - 1, avg_shift=16)
    # acc_shift 0 with a large bias: z clamps before the tanh table
    b.conv("sat_pwl", c3, 2, 1, acc_shift=0, act=isa.ACT_PWL, pwl_id=t, bmax=1 << 20,
           weights=np.array([[[[1]], [[0]]], [[[-1]], [[0]]]]))
    prog = b.finish()
    x = inputs(rng, prog, 2, lim=30000)
    x[0, 0, 0, 0] = -(1 << 15)
    res = both(prog, x)
    for name in ("sat_none", "sat_abs", "sat_avg", "sat_pwl"):
        assert res.saturations[name] > 0, name
    assert res.overflows == dict.fromkeys(res.saturations, 0)


def test_abs_of_most_negative_saturates():
    """|z| of the most negative code saturates to the maximum and is counted."""
    rng = np.random.default_rng(2)
    b = Builder(rng, (1, 1, 2))
    b.conv("abs", b.input, 1, 1, weights=[[[[1]]]], bias=[0], bias_shift=0, acc_shift=0,
           act=isa.ACT_ABS)
    prog = b.finish()
    res = both(prog, np.array([[[[-32768, -5]]]]))
    np.testing.assert_array_equal(res.region(prog.output), [[[[32767, 5]]]])
    assert res.saturations == {"abs": 1}


def test_overflow_counted():
    """An accumulator beyond signed 48 bits is counted (not wrapped)."""
    rng = np.random.default_rng(3)
    b = Builder(rng, (1, 3, 3))
    b.conv("ovf", b.input, 2, 1, weights=[[[[1]]], [[[0]]]], bias=[(1 << 31) - 1, -(1 << 31)],
           bias_shift=20, acc_shift=40)
    prog = b.finish()
    res = both(prog, inputs(rng, prog, 2))
    assert res.overflows == {"ovf": 2 * 2 * 9}
    # exact (unwrapped) accumulator, then requantize: (2**51 - 2**20 + x) >> 40 -> 2048
    np.testing.assert_array_equal(res.region(prog.output)[:, 0], 2048)
    np.testing.assert_array_equal(res.region(prog.output)[:, 1], -2048)


# ----------------------------------------------------------------------------
# results worked out by hand
# ----------------------------------------------------------------------------
def test_hand_conv_rounding_and_padding():
    """3x3 input, 3x3 all-ones kernel, pad 1, acc_shift 2: round half up of
    the 3x3 neighbourhood sum / 4."""
    x = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    rng = np.random.default_rng(0)
    b = Builder(rng, (1, 3, 3))
    b.conv("c", b.input, 1, 3, P=1, weights=np.ones((1, 1, 3, 3), int), bias=[1], bias_shift=1,
           acc_shift=2)
    prog = b.finish()
    res = both(prog, x[None, None])
    pad = np.pad(x, 1)
    sums = np.array([[pad[i:i + 3, j:j + 3].sum() for j in range(3)] for i in range(3)]) + 2
    expect = np.floor(sums / 4 + 0.5).astype(int)
    np.testing.assert_array_equal(res.region(prog.output)[0, 0], expect)
    assert res.saturations == {"c": 0} and res.overflows == {"c": 0}


def test_hand_negative_ties_round_up():
    """-2.5 -> -2 and 2.5 -> 3 (round half up), -2.75 -> -3."""
    rng = np.random.default_rng(0)
    b = Builder(rng, (1, 1, 3))
    b.conv("c", b.input, 1, 1, weights=[[[[1]]]], bias=[0], bias_shift=0, acc_shift=2)
    prog = b.finish()
    res = both(prog, np.array([[[[-10, 10, -11]]]]))
    np.testing.assert_array_equal(res.region(prog.output), [[[[-2, 3, -3]]]])


def test_hand_maxpool_and_avgpool():
    x = np.arange(16).reshape(4, 4) - 8
    rng = np.random.default_rng(0)
    b = Builder(rng, (1, 4, 4))
    ident = dict(weights=[[[[1]]]], bias=[0], bias_shift=0, acc_shift=0)
    mx = b.conv("max", b.input, 1, 1, pool=isa.POOL_MAX, pool_k=2, pool_s=2, **ident)
    av = b.conv("avg", b.input, 1, 1, pool=isa.POOL_AVG, pool_k=2, pool_s=2, avg_mul=1,
                avg_shift=2, **ident)
    prog = b.finish()
    res = both(prog, x[None, None])
    blocks = x.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(2, 2, 4)
    np.testing.assert_array_equal(res.region(mx)[0, 0], blocks.max(-1))
    np.testing.assert_array_equal(res.region(av)[0, 0], np.floor(blocks.sum(-1) / 4 + 0.5))


def test_hand_list_selects_maps():
    """Output o = map list[o]'s pixel times 1 (an identity 1x1 conv through a list)."""
    rng = np.random.default_rng(0)
    b = Builder(rng, (4, 2, 2))
    w = np.zeros((3, 3, 1, 1), int)
    for o in range(3):
        w[o, o] = 1
    b.conv("sel", b.input, 3, 1, in_list=[2, 0, 3], weights=w, bias=[0, 0, 0], acc_shift=0)
    prog = b.finish()
    x = inputs(rng, prog, 2)
    res = both(prog, x)
    np.testing.assert_array_equal(res.region(prog.output), x[:, [2, 0, 3]])


def test_hand_fc_weights_input_major():
    """OP_FC reads W[o, j] at w_addr + j*ld + o, ld = fc_ld(n_out) = 16 (OP_CONV: w_addr +
    o*n_in + j): the same words, read as columns of 16, give the transposed matrix."""
    n_in, n_out = 3, 2
    ld = isa.fc_ld(n_out)
    assert ld == isa.FC_ALIGN == 16
    cols = np.zeros((n_in, ld), dtype=np.int64)
    cols[:, :n_out] = np.arange(1, n_in * n_out + 1).reshape(n_in, n_out)
    words = cols.reshape(-1)                                 # the FC weight words in memory order
    conv_words = np.arange(1, n_in * n_out + 1)
    # list at 0, FC weights at 16 (aligned), biases (zero) after both weight blocks
    image = np.zeros(200, dtype=np.int64)
    image[:n_in] = np.arange(n_in)
    image[16:16 + n_in * ld] = words
    conv_at = 16 + n_in * ld + 2 * n_out
    image[conv_at:conv_at + n_in * n_out] = conv_words
    inp = Region("input", 200, (n_in, 1, 1), Q88)
    outs = {}
    instrs, names = [], []
    for name, op, w_addr in (("fc", isa.OP_FC, 16), ("conv", isa.OP_CONV, conv_at)):
        outs[name] = Region(name, 200 + 16 * (len(outs) + 1), (n_out, 1, 1), Q88)
        instrs.append(isa.Instr(op=op, kernel=1, in_c=n_in, in_h=1, in_w=1, out_h=1, out_w=1, n_in=n_in,
                                n_out=n_out, rows=1, in_addr=inp.addr, out_addr=outs[name].addr,
                                w_addr=w_addr, list_addr=0))
        names.append(name)
    prog = Program(hw=HW, instrs=instrs + [isa.Instr(op=isa.OP_END)], names=names + ["end"],
                   image=image.astype(np.int64), memory_words=256, table_addr=0, n_tables=0, input=inp,
                   output=outs["conv"], layers=list(outs.values()))
    x = np.array([[[[5]], [[-7]], [[11]]]])
    res = both(prog, x)
    v = x[0, :, 0, 0]
    np.testing.assert_array_equal(res.region(outs["fc"])[0, :, 0, 0], cols[:, :n_out].T @ v)
    np.testing.assert_array_equal(res.region(outs["conv"])[0, :, 0, 0], conv_words.reshape(n_out, n_in) @ v)


# ----------------------------------------------------------------------------
# LCN
# ----------------------------------------------------------------------------
def gauss_window(K: int, C: int, frac: int = 12) -> np.ndarray:
    r = np.arange(K) - K // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * (K / 4) ** 2))
    return np.round(g / g.sum() / C * 2 ** frac).astype(int)


@pytest.mark.parametrize("K,shape,eps,lim", [
    (5, (3, 7, 8), 64, 600),      # eps = 0.25 in Q8.8
    (3, (1, 6, 5), 384, 400),     # eps = 1.5: mostly the floor
    (4, (2, 5, 6), 32, 2000),     # even window
])
def test_lcn_fast_equals_naive(K, shape, eps, lim):
    rng = np.random.default_rng(K)
    b = Builder(rng, shape)
    sq, rc = b.table(sqrt_table()), b.table(recip_table(eps / 256))
    b.lcn("lcn", b.input, K, gauss_window(K, shape[0]), sq, rc, eps)
    prog = b.finish()
    x = inputs(rng, prog, 2, lim)
    x[0, :, :2, :2] = 100               # a flat patch: s ~ 0, the floor decides
    res = both(prog, x)
    assert res.overflows == {"lcn": 0}


def test_lcn_saturates_and_chains():
    """Negative window taps, shifts that clamp m, v, sq, s2 and y; then a conv
    reads the LCN output."""
    rng = np.random.default_rng(7)
    b = Builder(rng, (2, 6, 6))
    sq, rc = b.table(sqrt_table()), b.table(recip_table(0.125))
    G = rng.integers(-300, 700, size=(3, 3))
    out = b.lcn("lcn", b.input, 3, G, sq, rc, 32, acc_shift=9, sq_shift=4, s2_shift=10, y_shift=9)
    b.conv("c", out, 2, 3, P=1, act=isa.ACT_RELU)
    prog = b.finish()
    res = both(prog, inputs(rng, prog, 2, 20000))
    assert res.saturations["lcn"] > 0


def test_lcn_scratch_layout():
    """v lands at scratch_addr (C maps), s right after, y at out_addr."""
    rng = np.random.default_rng(8)
    b = Builder(rng, (2, 4, 5))
    sq, rc = b.table(sqrt_table()), b.table(recip_table(0.25))
    out = b.lcn("lcn", b.input, 3, gauss_window(3, 2), sq, rc, 64)
    prog = b.finish()
    x = inputs(rng, prog, 1)
    res = both(prog, x)
    ins = prog.instrs[0]
    scratch = res.memory[0, ins.scratch_addr:ins.scratch_addr + 2 * 20 + 20]
    v, s = scratch[:40].reshape(2, 4, 5), scratch[40:].reshape(4, 5)
    assert np.all(s >= 0)
    # y = v * r >> 12 with r = recip(max(s, mean, eps)) >= 0: signs of y follow v
    y = res.region(out)[0]
    assert np.all(np.sign(y) * np.sign(v) >= 0)


# ----------------------------------------------------------------------------
# random geometry (hypothesis)
# ----------------------------------------------------------------------------
@st.composite
def conv_case(draw):
    C = draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    P = draw(st.integers(0, 2))
    K = draw(st.integers(1, min(H, W) + 2 * P))
    S = draw(st.integers(1, 3))
    ch, cw = (H + 2 * P - K) // S + 1, (W + 2 * P - K) // S + 1
    pool = draw(st.sampled_from([isa.POOL_NONE, isa.POOL_MAX, isa.POOL_AVG]))
    pk = ps = 1
    if pool != isa.POOL_NONE:
        pk = draw(st.integers(1, min(ch, cw)))
        ps = draw(st.integers(1, 3))
    oh = (ch - pk) // ps + 1
    n_out = draw(st.integers(1, 4))
    n_in = draw(st.integers(1, 4))
    lst = draw(st.lists(st.integers(0, C - 1), min_size=n_in, max_size=n_in))
    cut_o = draw(st.integers(1, n_out))
    cut_r = draw(st.integers(1, oh))
    return dict(shape=(C, H, W), n_out=n_out, K=K, S=S, P=P, pool=pool, pool_k=pk, pool_s=ps,
                in_list=lst, act=draw(st.sampled_from(sorted(isa.ACT_NAMES))),
                o_splits=[(0, cut_o)] + ([(cut_o, n_out - cut_o)] if cut_o < n_out else []),
                row_splits=[(0, cut_r)] + ([(cut_r, oh - cut_r)] if cut_r < oh else []),
                bias_shift=draw(st.integers(0, 10)), acc_shift=draw(st.integers(-1, 12)),
                avg_mul=draw(st.integers(0, (1 << 18) - 1)), avg_shift=draw(st.integers(0, 20)),
                bits=draw(st.sampled_from([4, 8, 12, 16])), wmax=draw(st.sampled_from([3, 300, 32767])),
                seed=draw(st.integers(0, 2 ** 32 - 1)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_case())
def test_conv_random_geometry(case):
    rng = np.random.default_rng(case.pop("seed"))
    b = Builder(rng, case.pop("shape"))
    if case["act"] == isa.ACT_PWL:
        case["pwl_id"] = b.table(tanh_table())
    if case["pool"] != isa.POOL_AVG:
        case["avg_mul"] = case["avg_shift"] = 0
    b.conv("c", b.input, **case)
    prog = b.finish()
    both(prog, inputs(rng, prog, 2, lim=int(rng.choice([50, 32767]))))


@st.composite
def up_case(draw):
    """A random record that reads its input upsampled by 2 or 4 (``up`` 1, 2)."""
    C = draw(st.integers(1, 3))
    up = draw(st.integers(1, 2))
    H, W = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    P = draw(st.integers(0, 2))
    K = draw(st.sampled_from([k for k in (1, 2, 3, 5) if k <= min(H << up, W << up) + 2 * P]))
    S = draw(st.integers(1, 3))
    ch = ((H << up) + 2 * P - K) // S + 1
    n_in = draw(st.integers(1, 3))
    cut_r = draw(st.integers(1, ch))
    return dict(shape=(C, H, W), up=up, n_out=draw(st.integers(1, 3)), K=K, S=S, P=P,
                in_list=draw(st.lists(st.integers(0, C - 1), min_size=n_in, max_size=n_in)),
                row_splits=[(0, cut_r)] + ([(cut_r, ch - cut_r)] if cut_r < ch else []),
                act=draw(st.sampled_from([isa.ACT_NONE, isa.ACT_RELU])), seed=draw(st.integers(0, 2 ** 32 - 1)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(up_case())
def test_conv_random_upsampled(case):
    rng = np.random.default_rng(case.pop("seed"))
    b = Builder(rng, case.pop("shape"))
    b.conv("c", b.input, **case)
    prog = b.finish()
    both(prog, inputs(rng, prog, 2))


def test_up_is_nearest_upsampling():
    """A 1x1 identity kernel with up = 1 writes the input map with every pixel repeated
    2x2, padding around it; up = 0 records are untouched by the field."""
    rng = np.random.default_rng(3)
    b = Builder(rng, (1, 3, 4))
    out = b.conv("c", b.input, 1, 1, P=1, up=1, weights=np.ones((1, 1, 1, 1)), bias=[0], bias_shift=0,
                 acc_shift=0)
    prog = b.finish()
    assert prog.instrs[0].up_h == 6 and prog.instrs[0].conv_w == 10
    assert " 1x3x4 up2 list@" in isa.listing(prog.instrs) and " up" not in isa.listing(
        [prog.instrs[0].replace(up=0)])
    x = inputs(rng, prog, 2)
    res = both(prog, x)
    want = np.zeros((2, 1, 8, 10), dtype=np.int64)
    want[:, :, 1:7, 1:9] = x.repeat(2, axis=2).repeat(2, axis=3)
    np.testing.assert_array_equal(res.region(out), want)


def check_first_up_refused(rng, b, up, match):
    """The built program with ``up`` set on its first record: both golden models raise
    ValueError matching ``match``."""
    prog = b.finish()
    x = inputs(rng, prog, 1)
    bad = Program(**{**prog.__dict__, "instrs": [prog.instrs[0].replace(up=up), prog.instrs[-1]]})
    for model in (golden, golden_naive):
        with pytest.raises(ValueError, match=match):
            model.run(bad, x)


def test_up_refused_on_fc_and_lcn():
    rng = np.random.default_rng(4)
    b = Builder(rng, (3, 1, 1))
    b.conv("fc", b.input, 2, 1, op=isa.OP_FC)
    check_first_up_refused(rng, b, 1, "up=1 on an OP_FC record")
    b = Builder(rng, (1, 4, 4))
    b.lcn("l", b.input, 3, gauss_window(3, 1), b.table(sqrt_table()), b.table(recip_table(0.5)), eps=16)
    check_first_up_refused(rng, b, 2, "up=2 on an OP_LCN record")
    with pytest.raises(ValueError, match="upsampled input 4096x8"):
        isa.check_up(isa.Instr(op=isa.OP_CONV, in_h=512, in_w=1, up=3))


# ----------------------------------------------------------------------------
# a whole LeNet-like network, encode/decode
# ----------------------------------------------------------------------------
def lenet_program(rng) -> Program:
    """conv5 (6) tanh max2 -> conv5 (16) tanh max2 -> fc 400->120 tanh -> fc 120->10,
    on 1x32x32, with the layers split over several records as a compiler might."""
    b = Builder(rng, (1, 32, 32), act_base=1 << 16)
    t = b.table(tanh_table())
    c1 = b.conv("conv1", b.input, 6, 5, act=isa.ACT_PWL, pwl_id=t, pool=isa.POOL_MAX, pool_k=2,
                pool_s=2, wmax=120, acc_shift=8, row_splits=[(0, 7), (7, 7)])
    c2 = b.conv("conv2", c1, 16, 5, act=isa.ACT_PWL, pwl_id=t, pool=isa.POOL_MAX, pool_k=2,
                pool_s=2, wmax=60, acc_shift=8, o_splits=[(0, 8), (8, 8)])
    f1 = b.conv("fc1", b.flat(c2), 120, 1, act=isa.ACT_PWL, pwl_id=t, wmax=25, acc_shift=8,
                o_splits=[(0, 64), (64, 56)], op=isa.OP_FC)
    b.conv("fc2", b.flat(f1), 10, 1, wmax=60, acc_shift=8, op=isa.OP_FC)
    return b.finish()


def test_lenet_program_fast_equals_naive():
    rng = np.random.default_rng(11)
    prog = lenet_program(rng)
    res = both(prog, inputs(rng, prog, 2, 400))
    assert set(res.saturations) == {"conv1", "conv2", "fc1", "fc2"}


def test_encode_decode_round_trip():
    rng = np.random.default_rng(12)
    b = Builder(rng, (2, 8, 8))
    sq, rc, t = b.table(sqrt_table()), b.table(recip_table(0.25)), b.table(tanh_table())
    l0 = b.lcn("lcn", b.input, 5, gauss_window(5, 2), sq, rc, 64)
    c1 = b.conv("c1", l0, 4, 3, S=2, P=1, act=isa.ACT_PWL, pwl_id=t, pool=isa.POOL_AVG,
                pool_k=2, pool_s=2, avg_mul=1 << 14, avg_shift=16, row_splits=[(0, 1), (1, 1)])
    b.conv("c2", b.flat(c1), 3, 1, in_list=[5, 0, 15, 2], act=isa.ACT_ABS)
    prog = b.finish()
    blob = isa.encode_program(prog.instrs)
    assert len(blob) == isa.RECORD_BYTES * len(prog.instrs)
    decoded = isa.decode_program(blob)
    assert decoded == prog.instrs
    x = inputs(rng, prog, 3)
    ref = both(prog, x)
    prog2 = Program(**{**prog.__dict__, "instrs": decoded})
    again = golden.run(prog2, x)
    np.testing.assert_array_equal(again.memory, ref.memory)
    assert again.saturations == ref.saturations and again.overflows == ref.overflows


def test_chunking_and_int64_paths(monkeypatch):
    """Tiny im2col chunks (row and batch chunking) and the int64 matrix
    product (no float64 shortcut) give the same words."""
    rng = np.random.default_rng(17)
    b = Builder(rng, (3, 9, 8))
    sq, rc = b.table(sqrt_table()), b.table(recip_table(0.25))
    l0 = b.lcn("lcn", b.input, 3, gauss_window(3, 3), sq, rc, 64)
    b.conv("c", l0, 4, 3, P=1, pool=isa.POOL_MAX, pool_k=2, pool_s=2, row_splits=[(0, 1), (1, 3)])
    prog = b.finish()
    x = inputs(rng, prog, 4)
    ref = both(prog, x)
    for chunk, exact in [(1, 1 << 53), (200, 1 << 53), (5000, 1 << 53), (1 << 23, 0)]:
        monkeypatch.setattr(golden_exact, "_CHUNK_ELEMS", chunk)
        monkeypatch.setattr(golden_exact, "_F64_EXACT", exact)
        res = golden.run(prog, x)
        np.testing.assert_array_equal(res.memory, ref.memory)
        assert res.saturations == ref.saturations and res.overflows == ref.overflows


def test_record_rewrites_input_region():
    """A record may overwrite an earlier layer's input; a later record with the
    same geometry reads the new words."""
    rng = np.random.default_rng(18)
    b = Builder(rng, (2, 6, 6))
    b.conv("a", b.input, 2, 3, P=1)
    a = b.layers[-1]
    # rewrite the input region in place from "a" (1x1 conv, 2 -> 2 maps)
    b.conv("rewrite", a, 2, 1, acc_shift=4)
    b.instrs[-1] = b.instrs[-1].replace(out_addr=b.input.addr)
    b.conv("again", b.input, 2, 3, P=1)
    prog = b.finish()
    res = both(prog, inputs(rng, prog, 2))
    assert not np.array_equal(res.region(b.layers[0]), res.region(b.layers[2]))


def test_record_rewrites_its_own_band():
    """Records of one band that write the band's input maps run one after
    another: the second output group reads the map the first one wrote."""
    rng = np.random.default_rng(19)
    b = Builder(rng, (2, 6, 6))
    b.conv("self", b.input, 2, 3, P=1, acc_shift=10, o_splits=[(0, 1), (1, 1)],
           row_splits=[(0, 3), (3, 3)], out=b.input)
    prog = b.finish()
    x = inputs(rng, prog, 2)
    res = both(prog, x)
    # the same records with the writes elsewhere give other words for map 1
    b2 = Builder(np.random.default_rng(19), (2, 6, 6))
    b2.conv("self", b2.input, 2, 3, P=1, acc_shift=10, o_splits=[(0, 1), (1, 1)],
            row_splits=[(0, 3), (3, 3)])
    other = golden.run(b2.finish(), x)
    assert not np.array_equal(res.region(b.input)[:, 1], other.region(b2.layers[-1])[:, 1])


def test_batches_and_threads_give_the_same_words():
    """Batches of any size, run side by side on threads, or all on one
    thread, give the same words and counts as the naive model."""
    rng = np.random.default_rng(20)
    prog = lenet_program(rng)
    x = inputs(rng, prog, 7, 400)
    slow = golden_naive.run(prog, x)
    for batch, threads in [(None, 1), (1, 2), (3, 2), (2, 1), (7, None)]:
        res = golden.run(prog, x, batch=batch, threads=threads)
        np.testing.assert_array_equal(res.memory, slow.memory)
        assert res.saturations == slow.saturations and res.overflows == slow.overflows


def test_batch_rows_independent():
    """Running images one at a time gives the same rows as the batch."""
    rng = np.random.default_rng(13)
    prog = lenet_program(rng)
    x = inputs(rng, prog, 5, 400)
    res = golden.run(prog, x)
    for i in range(5):
        np.testing.assert_array_equal(golden.run(prog, x[i:i + 1]).memory[0], res.memory[i])


# ----------------------------------------------------------------------------
# float64 products: exact below the bound, int64 past it
# ----------------------------------------------------------------------------
def _extremes(rng, shape, mx):
    """Integers in [-mx, mx] with the extremes +-mx in every other place."""
    a = rng.integers(-mx, mx + 1, size=shape, dtype=np.int64)
    a.flat[::2] = rng.choice([-mx, mx], size=a.flat[::2].shape)
    return a


@settings(max_examples=60, deadline=None)
@given(L=st.integers(1, 300), log_a=st.integers(0, 52), seed=st.integers(0, 2 ** 32 - 1))
def test_f64_products_exact_at_the_bound(L, log_a, seed):
    """At the largest magnitudes f64_exact allows (max|a|*max|b|*L just
    below 2**53) float64 products are exact; one step past, the int64 path
    is taken, and is exact too."""
    rng = np.random.default_rng(seed)
    max_a = max(1, (1 << log_a) // L)
    max_b = (golden_exact._F64_EXACT - 1) // (max_a * L)
    if max_b < 1:
        return
    assert golden_exact.f64_exact(max_a, max_b, L) and not golden_exact.f64_exact(max_a, max_b + 1, L)
    a, b = _extremes(rng, (3, L), max_a), _extremes(rng, (L, 4), max_b)
    exact = a.astype(object) @ b.astype(object)
    np.testing.assert_array_equal(golden_exact.exact_matmul(a, b, max_a, max_b), exact.astype(np.int64))
    b[0, 0] = max_b + 1 if b[0, 0] > 0 else -(max_b + 1)     # past the bound: int64
    exact = a.astype(object) @ b.astype(object)
    np.testing.assert_array_equal(golden_exact.exact_matmul(a, b, max_a, max_b + 1),
                                  exact.astype(np.int64))


def test_f64_bound_is_needed():
    """Past the bound float64 does round: three products of (2**26+1)**2
    sum to an odd integer above 2**53."""
    v = (1 << 26) + 1
    a, b = np.full((1, 3), v, dtype=np.int64), np.full((3, 1), v, dtype=np.int64)
    exact = 3 * v * v
    assert int((a.astype(np.float64) @ b.astype(np.float64))[0, 0]) != exact
    assert not golden_exact.f64_exact(v, v, 3)
    assert int(golden_exact.exact_matmul(a, b, v, v)[0, 0]) == exact


# ----------------------------------------------------------------------------
# malformed programs are errors, not silent results
# ----------------------------------------------------------------------------
def test_errors():
    rng = np.random.default_rng(16)
    b = Builder(rng, (1, 4, 4))
    b.conv("c", b.input, 1, 3)
    prog = b.finish()
    x = inputs(rng, prog, 1)
    with pytest.raises(ValueError, match="OP_END"):
        golden.run(Program(**{**prog.__dict__, "instrs": prog.instrs[:-1],
                              "names": prog.names[:-1]}), x)
    with pytest.raises(ValueError, match="image"):
        bad = prog.instrs[0].replace(out_addr=0)
        golden.run(Program(**{**prog.__dict__, "instrs": [bad, prog.instrs[-1]]}), x)
    with pytest.raises(ValueError, match="pooled"):
        bad = prog.instrs[0].replace(out_h=3)
        golden.run(Program(**{**prog.__dict__, "instrs": [bad, prog.instrs[-1]]}), x)
    with pytest.raises(ValueError, match="OP_FC"):
        bad = prog.instrs[0].replace(op=isa.OP_FC)     # a 3x3 kernel
        golden.run(Program(**{**prog.__dict__, "instrs": [bad, prog.instrs[-1]]}), x)
    with pytest.raises(ValueError, match="shape"):
        golden.run(prog, x[:, 0])
    with pytest.raises(ValueError, match="outside"):
        golden.run(prog, x + 40000)

"""The engine models the HDL tests check against are the golden model's functions.

Each cocotb/Amaranth test compares an engine with a small NumPy model
(``model_conv``, ``model_pool``, ``model_fc``). Here those models are held
to ``sim/golden.py`` on one-record programs, so an engine that matches its
model matches the golden model word for word.
"""

import numpy as np
import pytest

from convc.compiler import isa
from convc.compiler.hwconfig import HardwareConfig
from convc.compiler.numeric import QFormat
from convc.compiler.program import Program, Region
from convc.sim import golden

from model_conv import Band, conv_band
from model_fc import fc_model
from model_pool import pool_model

HW = HardwareConfig(board="test", clock_mhz=100.0, bits=16, kmax=5, in_lanes=2, out_lanes=3, max_width=64,
                    psum_words=4096)
Q = QFormat(16, 8)


def _program(ins_kw: dict, n_in: int, n_out: int, k: int, in_shape, out_shape, weights, bias):
    """A one-record program: list, weights, biases at 0, then input and output regions."""
    list_addr = 0
    w_addr = -(-n_in // isa.FC_ALIGN) * isa.FC_ALIGN    # aligned (OP_FC needs it)
    words = isa.weight_image(ins_kw["op"], np.asarray(weights, dtype=np.int64).reshape(n_out, n_in, k, k), bias)
    image = np.zeros(w_addr + len(words), dtype=np.int64)
    image[list_addr:list_addr + n_in] = np.arange(n_in)
    image[w_addr:] = words
    inp = Region("input", image.size, tuple(in_shape), Q)
    out = Region("layer", inp.addr + inp.words, tuple(out_shape), Q)
    c, h, w = in_shape
    ins = isa.Instr(in_c=c, in_h=h, in_w=w, out_h=out_shape[1], out_w=out_shape[2], n_in=n_in, n_out=n_out,
                    o0=0, row0=0, rows=out_shape[1], in_addr=inp.addr, out_addr=out.addr, w_addr=w_addr,
                    list_addr=list_addr, kernel=k, **ins_kw)
    return Program(hw=HW, instrs=[ins, isa.Instr(op=isa.OP_END)], names=["layer", "end"], image=image,
                   memory_words=out.addr + out.words, table_addr=0, n_tables=0, input=inp, output=out,
                   layers=[out])


@pytest.mark.parametrize("pool", [isa.POOL_NONE, isa.POOL_MAX, isa.POOL_AVG])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_and_pool_models_equal_golden(pool, stride):
    rng = np.random.default_rng(10 * pool + stride)
    G, Po, Pi, K, H, W = 2, 3, 2, 3, 11, 12
    weights = rng.integers(-3000, 3000, (G, Po, Pi, K, K))
    pixels = rng.integers(-4000, 4000, (G, Pi, H, W))
    bias = rng.integers(-2 ** 20, 2 ** 20, Po)
    band = Band(kernel=K, stride=stride, acc_shift=14, bias_shift=3, bits=16, bias=bias, weights=weights,
                pixels=pixels)
    z, _, _, _ = conv_band(band)                           # (ch, cw, Po)
    pk, ps, mul, sh = (2, 2, 1, 2) if pool else (1, 1, 0, 0)
    expect, _ = pool_model(z, pool, pk, ps, mul, sh, 16) if pool else (z, 0)
    # golden: map j = g*Pi + i, W[o][j] = weights[g, o, i]
    n_in = G * Pi
    wg = weights.transpose(1, 0, 2, 3, 4).reshape(Po, n_in, K, K)
    ch, cw = z.shape[:2]
    out_shape = (Po, (ch - pk) // ps + 1, (cw - pk) // ps + 1)
    prog = _program(dict(op=isa.OP_CONV, stride=stride, pool=pool, pool_k=pk, pool_s=ps, avg_mul=mul,
                         avg_shift=sh, bias_shift=3, acc_shift=14), n_in, Po, K, (n_in, H, W), out_shape,
                    wg, bias)
    res = golden.run(prog, pixels.reshape(1, n_in, H, W))
    got = res.region(prog.output)[0]                       # (Po, Ho, Wo)
    np.testing.assert_array_equal(got, np.asarray(expect).transpose(2, 0, 1))


def test_fc_model_equals_golden():
    rng = np.random.default_rng(3)
    G, IL, OL, H, W = 3, 4, 5, 2, 3
    x = rng.integers(-30000, 30000, (G, H * W, IL))
    w = rng.integers(-30000, 30000, (G, OL, IL))
    b = rng.integers(-2 ** 31, 2 ** 31 - 1, OL)
    z, _, _ = fc_model(x, w, b, acc_shift=20, bias_shift=5, bits=16)   # (P, OL)
    n_in = G * IL
    wg = w.transpose(1, 0, 2).reshape(OL, n_in, 1, 1)
    maps = x.transpose(0, 2, 1).reshape(n_in, H, W)                   # map g*IL+i, pixel p
    prog = _program(dict(op=isa.OP_FC, bias_shift=5, acc_shift=20), n_in, OL, 1, (n_in, H, W), (OL, H, W),
                    wg, b)
    res = golden.run(prog, maps[None])
    np.testing.assert_array_equal(res.region(prog.output)[0].reshape(OL, -1), z.T)

"""The convolution engine's exported Verilog under cocotb (Icarus; Verilator with
CONVC_SIM=verilator): Pi=2, Po=3, kmax=3, 8-bit; several bands back to back (K = kmax
and K < kmax, K = 1, stride 1 and 2, K equal to the image, one and several input
groups, width = max_width, saturating outputs, with and without the preload stream),
random idle cycles on the bias, weight and both pixel streams, random backpressure; every output word checked against the numpy
model (tests/hdl/model_conv.py) by tests/hdl/cocotb/test_conv_tb.py."""

from __future__ import annotations

from needs import needs_sim
import cocotb_harness
from convc.compiler.hwconfig import HardwareConfig
from convc.hdl.conv import ConvEngine

BANDS = [
    dict(kernel=3, stride=1, rows=6, width=12, groups=2),                 # K = kmax, width = max_width
    dict(kernel=2, stride=2, rows=7, width=9, groups=3, bias_shift=4),    # K < kmax, stride 2
    dict(kernel=3, stride=1, rows=3, width=3, groups=3),                  # K = image: one output
    dict(kernel=1, stride=1, rows=3, width=12, groups=1, acc_shift=3),    # K = 1, one group
    dict(kernel=3, stride=2, rows=9, width=11, groups=2, acc_shift=7),    # stride 2, saturating
    dict(kernel=1, stride=1, rows=1, width=1, groups=5),                  # 1-pixel groups
    dict(kernel=3, stride=1, rows=10, width=12, groups=3, bias_shift=9),  # a larger one
    # the same kinds with the preload stream (second line-buffer bank)
    dict(kernel=3, stride=1, rows=7, width=12, groups=4, preload=True),
    dict(kernel=2, stride=2, rows=6, width=10, groups=3, preload=True, acc_shift=6),
    dict(kernel=3, stride=1, rows=3, width=4, groups=4, preload=True),    # one main row a group
    dict(kernel=1, stride=1, rows=2, width=5, groups=2, preload=True),    # K = 1: preload ignored
]


@needs_sim
def test_conv_cocotb_pi2_po3_k3(tmp_path_factory):
    hw = HardwareConfig(board="test", clock_mhz=100.0, bits=8, kmax=3, in_lanes=2, out_lanes=3,
                        max_width=12, psum_words=96)
    dut = ConvEngine(hw)
    for b in BANDS:
        dut.check_band(b["kernel"], b["stride"], b["width"], b["rows"], b["groups"])
    cfg = {"in_lanes": 2, "out_lanes": 3, "bits": 8, "seed": 21, "bands": BANDS,
           "idle_prob": 0.2, "bp_prob": 0.3, "expect_saturation": True}
    cocotb_harness.run_cocotb(dut, "conv_pi2_po3_k3", "test_conv_tb",
                              tmp_path_factory.mktemp("cocotb"), config=cfg)

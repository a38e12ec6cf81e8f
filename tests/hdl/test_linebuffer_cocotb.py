"""The window generator's exported Verilog under cocotb (Icarus; Verilator with
CONVC_SIM=verilator): random frames of several widths (incl. width 1 and max_width),
random idle cycles and backpressure, every output word (all window pixels, row, col,
first, last) checked against the numpy model (tests/hdl/cocotb/test_linebuffer_tb.py)."""

from __future__ import annotations

from needs import needs_sim
import cocotb_harness
from convc.hdl.linebuffer import WindowGenerator


@needs_sim
def test_linebuffer_cocotb_lanes2_k3(tmp_path_factory):
    cfg = {"lanes": 2, "bits": 8, "kmax": 3, "max_width": 24, "seed": 1,
           "frames": [(10, 24), (7, 5), (4, 1), (2, 17), (12, 24)],
           "idle_prob": 0.2, "bp_prob": 0.3}
    dut = WindowGenerator(lanes=2, bits=8, kmax=3, max_width=24)
    cocotb_harness.run_cocotb(dut, "linebuffer_l2k3", "test_linebuffer_tb",
                              tmp_path_factory.mktemp("cocotb"), config=cfg)


@needs_sim
def test_linebuffer_cocotb_lanes1_k7(tmp_path_factory):
    cfg = {"lanes": 1, "bits": 16, "kmax": 7, "max_width": 64, "seed": 2,
           "frames": [(12, 64), (3, 9), (9, 1), (8, 30)],
           "idle_prob": 0.2, "bp_prob": 0.3}
    dut = WindowGenerator(lanes=1, bits=16, kmax=7, max_width=64)
    cocotb_harness.run_cocotb(dut, "linebuffer_l1k7", "test_linebuffer_tb",
                              tmp_path_factory.mktemp("cocotb"), config=cfg)

"""The pointwise engine's exported Verilog under cocotb (Icarus; Verilator with
CONVC_SIM=verilator): a 16-bit Q8.8 tanh table (pwl_fit.make_tanh), every mode with
random idle cycles and backpressure, ACT_PWL on all 65,536 input codes, every output
word checked against numeric.py (tests/hdl/cocotb/test_pointwise_tb.py)."""

from __future__ import annotations

from needs import needs_sim
import cocotb_harness
from convc.compiler.numeric import QFormat
from convc.compiler.pwl_fit import make_tanh
from convc.hdl.pointwise import PointwiseEngine


@needs_sim
def test_pointwise_cocotb_tanh16(tmp_path_factory):
    table, _ = make_tanh(8, QFormat(16, 8), QFormat(16, 8))
    dut = PointwiseEngine(16)
    dut.check_table(table)
    cocotb_harness.run_cocotb(
        dut, "pointwise", "test_pointwise_tb", tmp_path_factory.mktemp("cocotb"),
        config={"bits": 16, "table": table.to_json(), "seed": 1, "n_random": 2000,
                "idle_prob": 0.2, "bp_prob": 0.3, "exhaustive_pwl": True},
    )


@needs_sim
def test_pointwise_cocotb_small_width(tmp_path_factory):
    """A narrow engine (6 bits) whose table saturates: every mode exhaustively."""
    table, _ = make_tanh(5, QFormat(6, 3), QFormat(6, 4))
    cocotb_harness.run_cocotb(
        PointwiseEngine(6, max_segments=8), "pointwise6", "test_pointwise_tb",
        tmp_path_factory.mktemp("cocotb"),
        config={"bits": 6, "table": table.to_json(), "seed": 2, "n_random": 300,
                "idle_prob": 0.4, "bp_prob": 0.5, "exhaustive_pwl": True},
    )

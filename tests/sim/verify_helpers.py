"""Shared pieces of the ``convc verify`` tests: a small compiled network with its float
model, and a stand-in accelerator (the real one's ports and host registers, no
datapath) to drive the testbench harness without the accelerator RTL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from convc.boards import get_board
from convc.pipeline import CompileOptions, compile_network
from convc.compiler.program import save_program
from convc.hdl import axi
from convc.hdl.regs import HostRegisters
from convc.reference.modelfile import network_from_graph, save_model

SPEC = {"name": "tiny", "input": {"shape": [1, 10, 10]}, "classes": 3, "layers": [
    {"type": "conv2d", "attrs": {"out_channels": 2, "kernel": 3}},
    {"type": "maxpool2d", "attrs": {"kernel": 2}}, {"type": "tanh"},
    {"type": "flatten"}, {"type": "linear", "attrs": {"out_features": 3}}, {"type": "logsoftmax"}]}


def make_compiled(folder: Path, **opts) -> tuple[Path, Path]:
    """A small net with random weights (no dataset: verify takes random inputs), saved
    as ``folder/model.npz`` and compiled into ``folder/out`` (program.json, schedule.bin,
    weights.bin only)."""
    folder = Path(folder)
    net = network_from_graph(dict(SPEC), "tiny")
    net.init_params(seed=5)
    model = save_model(net, folder / "model.npz")
    calib = np.random.default_rng(4).random((8,) + net.input.shape, dtype=np.float32)
    result = compile_network(net, get_board("virtex6"), CompileOptions(calib=8, **opts),
                             where=str(model), calib=calib)
    out = folder / "out"
    out.mkdir()
    save_program(result.program, out)   # what verify reads (no Verilog: tests pass their own)
    return out, model


class StubAccelerator(wiring.Component):
    """The accelerator's ports and host registers (convc.hdl.regs) around a counter: a
    start makes it busy for ``latency`` cycles, then run ``k`` ends as ``script[k]``
    says (the last entry repeats): ``"done"``, ``"error"`` or ``"hang"`` (busy forever).
    RECORDS reads ``records``.  It never touches memory, unless ``read_at`` is a byte
    address: then each start also asks for one 64-bit beat there (an AR, the R taken)."""

    def __init__(self, latency: int = 200, records: int = 3, script=("done",), read_at: int | None = None):
        assert script and all(s in ("done", "error", "hang") for s in script)
        self._args = (latency, records, tuple(script), read_at)
        super().__init__({
            "s_axil": In(axi.AXI4LiteSignature(32, 32)),
            "m_axi": Out(axi.AXI4Signature(32, 64, 1)),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        latency, records, script, read_at = self._args
        m = Module()
        m.submodules.regs = regs = HostRegisters()
        wiring.connect(m, wiring.flipped(self.s_axil), regs.s_axil)
        busy, done, error = Signal(), Signal(), Signal()
        count = Signal(32)
        cycles = Signal(64)
        run = Signal(8)          # starts so far
        with m.If(regs.start):
            m.d.sync += [busy.eq(1), done.eq(0), error.eq(0), count.eq(0), cycles.eq(0)]
            if read_at is not None:
                m.d.sync += self.m_axi.arvalid.eq(1)
        if read_at is not None:
            m.d.comb += [self.m_axi.araddr.eq(read_at), self.m_axi.arsize.eq(3), self.m_axi.arburst.eq(1)]
            with m.If(self.m_axi.arvalid & self.m_axi.arready):
                m.d.sync += self.m_axi.arvalid.eq(0)
        with m.Elif(busy):
            m.d.sync += [count.eq(count + 1), cycles.eq(cycles + 1)]
            with m.If(count == latency - 1):
                m.d.sync += run.eq(run + 1)
                with m.Switch(run):
                    for k, what in enumerate(script):
                        with (m.Case(k) if k < len(script) - 1 else m.Default()):
                            if what != "hang":
                                m.d.sync += [busy.eq(0), (error if what == "error" else done).eq(1)]
        m.d.comb += [regs.busy.eq(busy), regs.done.eq(done), regs.error.eq(error),
                     regs.cycles.eq(cycles), regs.records.eq(records), self.irq.eq(done),
                     self.m_axi.bready.eq(1), self.m_axi.rready.eq(1)]
        return m

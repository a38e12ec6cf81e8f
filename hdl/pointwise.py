r"""The pointwise (activation) engine: ``a = act(z)`` for a stream of ``bits``-wide
signed codes, bit-exact to the activation step of :mod:`convc.compiler.isa`::

    ACT_NONE  a = z
    ACT_RELU  a = max(z, 0)
    ACT_ABS   a = saturate(|z|, bits)          (|-2**(bits-1)| saturates to 2**(bits-1)-1)
    ACT_PWL   a = pwl_eval(table, z)           (hdl/pwl.py, one DSP48E1)

Ports
-----
``i``      In(stream of :func:`code_layout`\ ``(bits)``): ``data`` (signed), ``first``, ``last``
``o``      Out(stream, same layout): ``first``/``last`` travel with their element
``act``    In(2): the activation code (``isa.ACT_*``).  It is sampled together with each
           accepted input element and travels down the pipeline with it, so it may change
           between any two elements (the controller drives it from the record's ``act``).
``table``  In(:func:`~convc.hdl.pwl.table_write_signature`): loads the PWL table at
           configuration time (isa table-word layout, see hdl/pwl.py).

One element a cycle; fixed :attr:`PointwiseEngine.latency` (the PWL datapath plus one
output-select stage) for every mode, so elements never reorder; the whole pipeline
stalls while ``o.valid & ~o.ready`` (no loss, no duplication).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from convc.compiler import isa

from .arith import check_param, delay, saturate_hdl, stall_pipeline
from .pwl import PWLCore, check_table, table_write_signature

__all__ = ["PointwiseEngine", "code_layout"]


def code_layout(bits: int) -> data.StructLayout:
    """The payload of code streams: ``data`` (signed ``bits``, low bits), ``first``,
    ``last`` (one bit each, above ``data``)."""
    return data.StructLayout({"data": signed(bits), "first": 1, "last": 1})


class PointwiseEngine(wiring.Component):
    """Activation engine (see the module docstring).

    Parameters
    ----------
    bits : int
        Code width, 2..16.
    max_segments : int
        PWL segments held in hardware (1..32, default ``isa.MAX_SEGMENTS``).
    """

    def __init__(self, bits: int = 16, *, max_segments: int = isa.MAX_SEGMENTS):
        check_param(self, "bits", bits, 2, 16)
        check_param(self, "max_segments", max_segments, 1, isa.MAX_SEGMENTS)
        self._bits, self._max_segments = bits, max_segments
        layout = code_layout(bits)
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
            "act": In(2),
            "table": In(table_write_signature()),
        })

    @property
    def bits(self) -> int:
        return self._bits

    @property
    def max_segments(self) -> int:
        return self._max_segments

    @property
    def latency(self) -> int:
        """Cycles from an accepted input to its output being valid (no backpressure)."""
        return PWLCore.LATENCY + 1

    def check_table(self, table) -> None:
        """Raise ``ValueError`` if ``table`` does not fit this engine's PWL unit."""
        check_table(table, self._bits, self._bits, self._max_segments)

    def elaborate(self, platform):
        m = Module()
        bits, lat = self._bits, self.latency
        m.submodules.pwl = core = PWLCore(bits, bits, max_segments=self._max_segments)
        wiring.connect(m, wiring.flipped(self.table), core.table)

        en = stall_pipeline(m, self.i, self.o, lat, name="pw")
        z = self.i.payload.data
        m.d.comb += [core.en.eq(en), core.x.eq(z)]

        # s1: the non-table activations (the PWL path runs in parallel for every mode)
        neg = Signal(signed(bits + 1), name="neg_z")
        m.d.comb += neg.eq(-z)
        absz = saturate_hdl(m, Mux(z < 0, neg, z), bits, name="abs_z")
        simple = Signal(signed(bits), name="simple")
        with m.Switch(self.act):
            with m.Case(isa.ACT_RELU):
                m.d.comb += simple.eq(Mux(z < 0, 0, z))
            with m.Case(isa.ACT_ABS):
                m.d.comb += simple.eq(absz)
            with m.Default():
                m.d.comb += simple.eq(z)
        s1 = delay(m, simple, 1, en=en, name="simple")
        # align with the PWL output (stage core.latency), then select (stage lat)
        s_aligned = delay(m, s1, core.latency - 1, en=en, name="simple_al")
        use_pwl = delay(m, self.act == isa.ACT_PWL, core.latency, en=en, name="use_pwl")
        first = delay(m, self.i.payload.first, lat - 1, en=en, name="first")
        last = delay(m, self.i.payload.last, lat - 1, en=en, name="last")

        out = Signal(code_layout(bits), name="out", reset_less=True)
        with m.If(en):
            m.d.sync += [
                out.data.eq(Mux(use_pwl, core.y, s_aligned)),
                out.first.eq(first),
                out.last.eq(last),
            ]
        m.d.comb += self.o.payload.eq(out)
        return m

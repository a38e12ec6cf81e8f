r"""The pointwise (activation) engine: ``a = act(z)`` for a stream of ``bits``-wide
signed codes, ``lanes`` codes an element, bit-exact to the activation step of
:mod:`convc.compiler.isa`::

    ACT_NONE  a = z
    ACT_RELU  a = max(z, 0)
    ACT_ABS   a = saturate(|z|, bits)          (|-2**(bits-1)| saturates to 2**(bits-1)-1)
    ACT_PWL   a = pwl_eval(table, z)           (hdl/pwl.py, one DSP48E1)

Ports
-----
``i``      In(stream of :func:`code_layout`\ ``(bits, lanes)``): ``data`` (one signed code,
           or an array of ``lanes``), ``first``, ``last``
``o``      Out(stream, same layout): ``first``/``last`` travel with their element
``act``    In(2): the activation code (``isa.ACT_*``).  It is sampled together with each
           accepted input element and travels down the pipeline with it, so it may change
           between any two elements (the controller drives it from the record's ``act``).
``table``  In(:func:`~convc.hdl.pwl.table_write_signature`): loads the PWL table at
           configuration time (isa table-word layout, see hdl/pwl.py).

One element a cycle; fixed :attr:`PointwiseEngine.latency` (the PWL datapath plus one
output-select stage) for every mode, so elements never reorder; the whole pipeline
stalls while ``o.valid & ~o.ready`` (no loss, no duplication).  The lanes share the
pipeline control, the activation code and the PWL table (one copy, one write decoder:
:class:`~convc.hdl.pwl.PWLCore` with ``lanes``); each lane has its own comparators and
DSP.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from convc.compiler import isa
from convc.compiler.engine_figures import POINTWISE_LIMITS, POINTWISE_LUTS_PER_LANE

from .arith import check_param, delay, param, saturate_hdl, stall_pipeline
from .fields import field_shape
from .pwl import PWLCore, check_table, lane_shape, lanes_of, table_write_signature

__all__ = ["PointwiseEngine", "code_layout"]


def code_layout(bits: int, lanes: int = 1) -> data.StructLayout:
    r"""The payload of code streams: ``data`` (signed ``bits``, or an array of ``lanes``
    of them, lane 0 in the low bits), ``first``, ``last`` (one bit each, above ``data``).
    For ``lanes > 1`` it is :func:`~convc.hdl.linebuffer.pixel_layout`\ ``(lanes, bits)``."""
    return data.StructLayout({"data": lane_shape(bits, lanes), "first": 1, "last": 1})


class PointwiseEngine(wiring.Component):
    """Activation engine (see the module docstring).

    Parameters
    ----------
    bits : int
        Code width, 2..16.
    max_segments : int
        PWL segments held in hardware (1..32, default ``isa.MAX_SEGMENTS``).
    lanes : int
        Codes an element (1..1024, default 1).
    """

    #: LUTs a lane, for the size search's logic estimate, and the limits: figures of
    #: :mod:`convc.compiler.engine_figures` (with their measurements)
    LUTS_PER_LANE = POINTWISE_LUTS_PER_LANE

    LIMITS = POINTWISE_LIMITS

    def __init__(self, bits: int = 16, *, max_segments: int = isa.MAX_SEGMENTS, lanes: int = 1):
        check_param(self, "bits", bits, *isa.limit("bits"))
        check_param(self, "max_segments", max_segments, 1, isa.MAX_SEGMENTS)
        check_param(self, "lanes", lanes, *self.LIMITS["lanes"])
        self._bits, self._max_segments, self._lanes = bits, max_segments, lanes
        layout = code_layout(bits, lanes)
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
            "act": In(field_shape("act")),
            "table": In(table_write_signature()),
        })

    bits = param("bits")
    max_segments = param("max_segments")
    lanes = param("lanes")

    @property
    def latency(self) -> int:
        """Cycles from an accepted input to its output being valid (no backpressure)."""
        return PWLCore.LATENCY + 1

    def check_table(self, table) -> None:
        """Raise ``ValueError`` if ``table`` does not fit this engine's PWL unit."""
        check_table(table, self._bits, self._bits, self._max_segments)

    def elaborate(self, platform):
        m = Module()
        bits, lat, L = self._bits, self.latency, self._lanes
        m.submodules.pwl = core = PWLCore(bits, bits, max_segments=self._max_segments, lanes=L)
        wiring.connect(m, wiring.flipped(self.table), core.table)

        en = stall_pipeline(m, self.i, self.o, lat, name="pw")
        m.d.comb += [core.en.eq(en), core.x.eq(self.i.payload.data)]

        # the controls, once: the activation travels with its element
        act = self.act
        use_pwl = delay(m, act == isa.ACT_PWL, core.latency, en=en, name="use_pwl")
        first = delay(m, self.i.payload.first, lat - 1, en=en, name="first")
        last = delay(m, self.i.payload.last, lat - 1, en=en, name="last")
        out = Signal(code_layout(bits, L), name="out", reset_less=True)
        with m.If(en):
            m.d.sync += [out.first.eq(first), out.last.eq(last)]
        m.d.comb += self.o.payload.eq(out)

        zs, ys, outs = lanes_of(self.i.payload.data, L), lanes_of(core.y, L), lanes_of(out.data, L)
        for lane, (z, y, o) in enumerate(zip(zs, ys, outs)):
            sfx = f"_l{lane}" if L > 1 else ""
            # s1: the non-table activations (the PWL path runs in parallel for every mode)
            neg = Signal(signed(bits + 1), name=f"neg_z{sfx}")
            m.d.comb += neg.eq(-z)
            absz = saturate_hdl(m, Mux(z < 0, neg, z), bits, name=f"abs_z{sfx}")
            simple = Signal(signed(bits), name=f"simple{sfx}")
            with m.Switch(act):
                with m.Case(isa.ACT_RELU):
                    m.d.comb += simple.eq(Mux(z < 0, 0, z))
                with m.Case(isa.ACT_ABS):
                    m.d.comb += simple.eq(absz)
                with m.Default():
                    m.d.comb += simple.eq(z)
            s1 = delay(m, simple, 1, en=en, name=f"simple{sfx}")
            # align with the PWL output (stage core.latency), then select (stage lat)
            s_aligned = delay(m, s1, core.latency - 1, en=en, name=f"simple_al{sfx}")
            with m.If(en):
                m.d.sync += o.eq(Mux(use_pwl, y, s_aligned))
        return m

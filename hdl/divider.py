"""A serial (restoring) divider: one quotient bit a cycle, one subtractor.

The sequencer divides once a record (a band's convolution width, ``(in_w + 2 pad - K) //
stride + 1``); a combinational divider there is a chain of ``num_bits`` subtractors, the
slowest path of the accelerator. This one takes :attr:`SerialDivider.latency` cycles.

Ports
-----
``start``   In(1): load ``num`` and ``den`` (any cycle; restarts a division under way)
``num``     In(num_bits), ``den`` In(den_bits): unsigned; ``den = 0`` gives an all-ones quotient
``quotient`` Out(num_bits), ``remainder`` Out(den_bits): valid while ``done``
``done``    Out(1): high from :attr:`latency` cycles after ``start`` until the next ``start``
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SerialDivider"]


class SerialDivider(wiring.Component):
    """``num // den`` and ``num % den`` in ``num_bits`` cycles (see the module docstring)."""

    def __init__(self, num_bits: int, den_bits: int):
        for name, v in (("num_bits", num_bits), ("den_bits", den_bits)):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 64:
                raise ValueError(f"SerialDivider: {name}={v!r} outside [1, 64]")
        self._nb, self._db = num_bits, den_bits
        super().__init__({"start": In(1), "num": In(num_bits), "den": In(den_bits),
                          "quotient": Out(num_bits), "remainder": Out(den_bits), "done": Out(1)})

    @property
    def latency(self) -> int:
        """Cycles from ``start`` to ``done``: one a quotient bit."""
        return self._nb

    def elaborate(self, platform):
        m = Module()
        nb, db = self._nb, self._db
        rem = Signal(db + 1)                 # partial remainder, one bit wider than den
        quo = Signal(nb)                     # shifts the dividend out, the quotient in
        den = Signal(db)
        left = Signal(range(nb + 1))
        trial = Signal(db + 2)
        m.d.comb += [trial.eq(Cat(quo[-1], rem) - den),
                     self.quotient.eq(quo), self.remainder.eq(rem[:db]), self.done.eq(left == 0)]
        with m.If(self.start):
            m.d.sync += [rem.eq(0), quo.eq(self.num), den.eq(self.den), left.eq(nb)]
        with m.Elif(left != 0):
            with m.If(trial[-1]):            # negative: keep the remainder, quotient bit 0
                m.d.sync += [rem.eq(Cat(quo[-1], rem)), quo.eq(Cat(0, quo[:-1]))]
            with m.Else():
                m.d.sync += [rem.eq(trial), quo.eq(Cat(1, quo[:-1]))]
            m.d.sync += left.eq(left - 1)
        return m

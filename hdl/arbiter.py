r"""Read arbiter: several AXI4 read masters (:class:`~convc.hdl.memport.MemReader` s) on
one AXI4 read port.

AR: round-robin among the requesting masters; a grant is held until its AR handshake
(AXI forbids dropping ``arvalid``/changing ``araddr`` before it).  ``arvalid`` goes out
the cycle a master asks when the port is free (no added latency), one AR a cycle at
most.  R: each master has its own ARID (master ``k`` must use ``axi_id = k``); beats go
back to the master whose ID they carry, so the slave may return them in any order the
AXI rules allow.  ``rready`` is always high: the masters must take every beat they asked for (a
MemReader reserves room for a burst before asking).

Ports
-----
``s``   list of ``n`` In(read-half :class:`~convc.hdl.axi.AXI4Signature`) (slaves facing
        the masters), ``s[k]`` for master ``k``
``m``   Out(read-half :class:`~convc.hdl.axi.AXI4Signature`) to memory
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import axi
from .arith import check_param

__all__ = ["ReadArbiter"]

_AR = ("addr", "len", "size", "burst", "lock", "cache", "prot", "qos")


class ReadArbiter(wiring.Component):
    """``n`` read masters onto one read port (module docstring)."""

    def __init__(self, n: int, *, addr_width: int = 32, data_width: int = 64, id_width: int = 1):
        check_param(self, "n", n, 1, 1 << id_width)
        self._n = n
        sig = axi.AXI4Signature(addr_width, data_width, id_width, write=False)
        super().__init__({
            "s": In(sig).array(n),
            "m": Out(sig),
        })

    n = property(lambda self: self._n)

    def elaborate(self, platform):
        m = Module()
        n = self._n
        bus = self.m
        grant = Signal(range(n), name="grant")
        locked = Signal(name="locked")          # grant held for a pending AR
        nxt = Signal(range(n), name="next")     # round-robin pointer

        # the first requester at or after the pointer (expressions, not processes: Icarus
        # leaves an always-block that sees no event at X, and X on arvalid upsets models)
        reqs = [self.s[k].arvalid for k in range(n)]
        pick = Signal(range(n), name="pick")
        cands = []
        for base in range(n):
            order = [(base + off) % n for off in range(n)]
            v = Const(order[-1], range(n))
            for k in reversed(order[:-1]):
                v = Mux(reqs[k], k, v)
            cands.append(v)
        v = cands[-1]
        for base in reversed(range(n - 1)):
            v = Mux(nxt == base, cands[base], v)
        m.d.comb += pick.eq(v)
        sel = Signal(range(n), name="sel")
        m.d.comb += sel.eq(Mux(locked, grant, pick))
        with m.If(bus.arvalid & ~bus.arready):
            m.d.sync += [locked.eq(1), grant.eq(sel)]
        with m.Elif(bus.arvalid & bus.arready):
            m.d.sync += [locked.eq(0), nxt.eq(Mux(sel == n - 1, 0, sel + 1))]

        for f in _AR + ("valid",):
            fields = [getattr(self.s[k], "ar" + f) for k in range(n)]
            m.d.comb += getattr(bus, "ar" + f).eq(Cat(*fields).word_select(sel, len(fields[0])))
        # MemReaders reserve room before asking, so read data is always taken
        m.d.comb += [bus.arid.eq(sel), bus.rready.eq(1)]
        for k in range(n):
            s = self.s[k]
            m.d.comb += s.arready.eq((sel == k) & bus.arready)
            # R: by ID
            m.d.comb += [s.rid.eq(k), s.rdata.eq(bus.rdata), s.rresp.eq(bus.rresp),
                         s.rlast.eq(bus.rlast), s.rvalid.eq(bus.rvalid & (bus.rid == k))]
        return m

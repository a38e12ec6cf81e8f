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

__all__ = ["ReadArbiter", "WriteArbiter"]

_AR = ("addr", "len", "size", "burst", "lock", "cache", "prot", "qos")


def round_robin(m: Module, reqs: list, nxt) -> Signal:
    """The first requester at or after ``nxt`` (comb).  Built from expressions, not
    processes: Icarus leaves an always-block that sees no event at X, and an X on a valid
    output upsets the AXI models."""
    n = len(reqs)
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
    pick = Signal(range(n), name="pick")
    m.d.comb += pick.eq(v)
    return pick


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

        pick = round_robin(m, [self.s[k].arvalid for k in range(n)], nxt)
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


_AW = ("addr", "len", "size", "burst", "lock", "cache", "prot", "qos")
_W = ("data", "strb", "last")


class WriteArbiter(wiring.Component):
    """``n`` AXI4 write masters (:class:`~convc.hdl.memport.MemWriter` s, master ``k`` with
    ``axi_id = k``) on one write port.

    AW: round-robin among the requesting masters, the grant held until the AW handshake;
    then W is locked to that master until its ``wlast`` beat, and no other AW is granted
    meanwhile, so W beats always follow their AW in order (a MemWriter presents a burst
    only once all its beats are buffered, so the lock costs no idle beats).  B goes back to
    the master whose ID it carries; ``bready`` is always high (MemWriters always take B).

    Ports: ``s`` (list of ``n`` In(write-half AXI4Signature)), ``m`` (Out(write half)).
    """

    def __init__(self, n: int, *, addr_width: int = 32, data_width: int = 64, id_width: int = 1):
        check_param(self, "n", n, 1, 1 << id_width)
        self._n = n
        sig = axi.AXI4Signature(addr_width, data_width, id_width, read=False)
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
        aw_locked = Signal(name="aw_locked")    # grant held for a pending AW
        w_busy = Signal(name="w_busy")          # W locked to ``wsel`` until wlast
        wsel = Signal(range(n), name="wsel")
        nxt = Signal(range(n), name="next")

        pick = round_robin(m, [self.s[k].awvalid for k in range(n)], nxt)
        sel = Signal(range(n), name="sel")
        m.d.comb += sel.eq(Mux(aw_locked, grant, pick))

        aw_fields = {f: [getattr(self.s[k], "aw" + f) for k in range(n)] for f in _AW + ("valid",)}
        for f, vals in aw_fields.items():
            src = Cat(*vals).word_select(sel, len(vals[0]))
            if f == "valid":
                src = src & ~w_busy
            m.d.comb += getattr(bus, "aw" + f).eq(src)
        m.d.comb += bus.awid.eq(sel)
        with m.If(bus.awvalid & ~bus.awready):
            m.d.sync += [aw_locked.eq(1), grant.eq(sel)]
        with m.Elif(bus.awvalid & bus.awready):
            m.d.sync += [aw_locked.eq(0), nxt.eq(Mux(sel == n - 1, 0, sel + 1)), w_busy.eq(1),
                         wsel.eq(sel)]
        with m.If(bus.wvalid & bus.wready & bus.wlast):
            m.d.sync += w_busy.eq(0)

        for f in _W + ("valid",):
            vals = [getattr(self.s[k], "w" + f) for k in range(n)]
            src = Cat(*vals).word_select(wsel, len(vals[0]))
            if f == "valid":
                src = src & w_busy
            m.d.comb += getattr(bus, "w" + f).eq(src)
        m.d.comb += bus.bready.eq(1)
        for k in range(n):
            s = self.s[k]
            m.d.comb += [
                s.awready.eq((sel == k) & bus.awready & ~w_busy),
                s.wready.eq(w_busy & (wsel == k) & bus.wready),
                s.bid.eq(k), s.bresp.eq(bus.bresp), s.bvalid.eq(bus.bvalid & (bus.bid == k)),
            ]
        return m

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
from amaranth.lib.fifo import SyncFIFO
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


def _select(sources: list, sel):
    """``sources[sel]`` as an expression (word_select, not a process; see round_robin)."""
    return Cat(*sources).word_select(sel, len(sources[0]))


class _Arbiter(wiring.Component):
    """``n`` masters on one port of one AXI4 half (``read`` or write), and the address
    channel's arbitration both halves share: round-robin among the requesting masters,
    the grant held from a request until its handshake (AXI forbids dropping ``*valid`` or
    changing the address before it)."""

    _READ = True

    def __init__(self, n: int, *, addr_width: int = 32, data_width: int = 64, id_width: int = 1):
        check_param(self, "n", n, 1, 1 << id_width)
        self._n = n
        sig = axi.AXI4Signature(addr_width, data_width, id_width, read=self._READ, write=not self._READ)
        super().__init__({
            "s": In(sig).array(n),
            "m": Out(sig),
        })

    n = property(lambda self: self._n)

    def _address(self, m: Module, ch: str, fields: tuple, block=None) -> Signal:
        """Drive channel ``ch`` ("ar"/"aw") of ``m`` from the granted master (nothing while
        ``block``); returns the selected master's index."""
        n, bus = self._n, self.m
        grant = Signal(range(n), name="grant")
        locked = Signal(name="locked")          # grant held for a pending request
        nxt = Signal(range(n), name="next")     # round-robin pointer
        pick = round_robin(m, [getattr(self.s[k], ch + "valid") for k in range(n)], nxt)
        sel = Signal(range(n), name="sel")
        m.d.comb += sel.eq(Mux(locked, grant, pick))
        for f in fields:
            m.d.comb += getattr(bus, ch + f).eq(_select([getattr(self.s[k], ch + f) for k in range(n)], sel))
        valid = _select([getattr(self.s[k], ch + "valid") for k in range(n)], sel)
        m.d.comb += [getattr(bus, ch + "valid").eq(valid if block is None else valid & ~block),
                     getattr(bus, ch + "id").eq(sel)]
        go, ready = getattr(bus, ch + "valid"), getattr(bus, ch + "ready")
        with m.If(go & ~ready):
            m.d.sync += [locked.eq(1), grant.eq(sel)]
        with m.Elif(go & ready):
            m.d.sync += [locked.eq(0), nxt.eq(Mux(sel == n - 1, 0, sel + 1))]
        for k in range(n):
            ok = (sel == k) & ready
            m.d.comb += getattr(self.s[k], ch + "ready").eq(ok if block is None else ok & ~block)
        return sel


class ReadArbiter(_Arbiter):
    """``n`` read masters onto one read port (module docstring)."""

    _READ = True

    def elaborate(self, platform):
        m = Module()
        bus = self.m
        self._address(m, "ar", _AR)
        # MemReaders reserve room before asking, so read data is always taken
        m.d.comb += bus.rready.eq(1)
        for k in range(self._n):
            s = self.s[k]
            # R: by ID
            m.d.comb += [s.rid.eq(k), s.rdata.eq(bus.rdata), s.rresp.eq(bus.rresp),
                         s.rlast.eq(bus.rlast), s.rvalid.eq(bus.rvalid & (bus.rid == k))]
        return m


_AW = ("addr", "len", "size", "burst", "lock", "cache", "prot", "qos")
_W = ("data", "strb", "last")


class WriteArbiter(_Arbiter):
    """``n`` AXI4 write masters (:class:`~convc.hdl.memport.MemWriter` s, master ``k`` with
    ``axi_id = k``) on one write port.

    AW: round-robin among the requesting masters, the grant held until the AW handshake.
    W follows AW order (AXI4 has no write interleaving) through a small queue of the
    masters whose AW went out and whose W burst has not ended (:data:`W_QUEUE` entries;
    AW waits while it is full): W takes the head's beats until ``wlast``.  When the
    queue is empty, W takes the beats of the master offering AW, before or in the same
    cycle as its AW handshake (AXI lets write data lead its address; the grant is then
    held on that master until its AW is taken), so a one-beat burst moves in one cycle
    and the next master's AW goes out while a burst's W beats are still moving: W runs
    at a beat a cycle across masters.  B goes back to the master whose ID it carries;
    ``bready`` is always high (MemWriters always take B).

    Ports: ``s`` (list of ``n`` In(write-half AXI4Signature)), ``m`` (Out(write half)).
    """

    _READ = False
    W_QUEUE = 4

    def elaborate(self, platform):
        m = Module()
        n, bus = self._n, self.m
        m.submodules.wq = wq = SyncFIFO(width=max(1, (n - 1).bit_length()), depth=self.W_QUEUE)
        sel = self._address(m, "aw", _AW, block=~wq.w_rdy)
        aw_fire = bus.awvalid & bus.awready

        # W source: the queue's head, else the AW candidate (its data may lead its address)
        lead = Signal(name="w_lead")              # serving the AW candidate's burst
        lead_done = Signal(name="w_lead_done")    # ... whose wlast went before its AW
        wsel = Signal(range(n), name="wsel")
        m.d.comb += [lead.eq(~wq.r_rdy & bus.awvalid & ~lead_done),
                     wsel.eq(Mux(wq.r_rdy, wq.r_data, sel))]
        for f in _W:
            m.d.comb += getattr(bus, "w" + f).eq(_select([getattr(self.s[k], "w" + f) for k in range(n)], wsel))
        m.d.comb += [bus.wvalid.eq(_select([self.s[k].wvalid for k in range(n)], wsel) & (wq.r_rdy | lead)),
                     bus.bready.eq(1)]
        w_last = bus.wvalid & bus.wready & bus.wlast
        m.d.comb += wq.r_en.eq(wq.r_rdy & w_last)
        # a burst joins the queue at its AW handshake unless its W already ended
        m.d.comb += [wq.w_en.eq(aw_fire & ~lead_done & ~(lead & w_last)), wq.w_data.eq(sel)]
        with m.If(aw_fire):
            m.d.sync += lead_done.eq(0)
        with m.Elif(lead & w_last):
            m.d.sync += lead_done.eq(1)

        for k in range(n):
            s = self.s[k]
            m.d.comb += [
                s.wready.eq((wq.r_rdy | lead) & (wsel == k) & bus.wready),
                s.bid.eq(k), s.bresp.eq(bus.bresp), s.bvalid.eq(bus.bvalid & (bus.bid == k)),
            ]
        return m

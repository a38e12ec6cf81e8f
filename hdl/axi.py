r"""AXI4 and AXI4-Lite interface signatures (``amaranth.lib.wiring``), master's view.

The accelerator's memory port is AXI4 (so a Xilinx MIG can attach on the ML605); the
host side is an AXI4-Lite register slave.  A master component declares
``Out(AXI4Signature(...))``, a slave ``In(...)`` (``AXI4LiteSignature`` for the host).

Member names are the AXI signal names in lower case without a prefix (``awaddr``,
``wvalid``, ``rdata``, ...), so the Verilog export of a port named ``m_axi`` has ports
``m_axi__awaddr``, ``m_axi__wvalid``, ... (Amaranth joins a port and its members with a
double underscore).

Binding in cocotb (cocotbext-axi)
---------------------------------
cocotbext-axi finds signals as ``<prefix><bus_separator><name>`` (cocotb-bus ``Bus``,
separator ``"_"`` by default, matched case-insensitively).  Pass the double underscore::

    from cocotbext.axi import AxiBus, AxiLiteBus, AxiRam, AxiLiteMaster
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi", bus_separator="__"), dut.clk, dut.rst, size=...)
    host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__"),
                         dut.clk, dut.rst)

(:data:`COCOTB_BUS_SEPARATOR` holds the ``"__"``.)  Half ports bind the same way with
``AxiReadBus`` / ``AxiWriteBus`` (e.g. ``AxiRamRead(AxiReadBus.from_prefix(...))``).  A
Verilog wrapper for Xilinx tools that expect ``m_axi_araddr`` just renames the ports.

Signals present
---------------
AXI4 write half: ``aw{id,addr,len,size,burst,lock,cache,prot,qos,valid,ready}``,
``w{data,strb,last,valid,ready}``, ``b{id,resp,valid,ready}``; read half:
``ar{id,addr,len,size,burst,lock,cache,prot,qos,valid,ready}``,
``r{id,data,resp,last,valid,ready}``.  No ``*region``/``*user`` (optional in AXI4 and
in cocotbext-axi).  ``read=False`` or ``write=False`` gives a half port (a stream reader
needs no write channels); :func:`join_halves` puts a read half and a write half on one
full port.

AXI4-Lite: ``aw{addr,prot,valid,ready}``, ``w{data,strb,valid,ready}``,
``b{resp,valid,ready}``, ``ar{addr,prot,valid,ready}``, ``r{data,resp,valid,ready}``.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from convc.compiler.engine_figures import DATA_WIDTHS

__all__ = ["AXI4Signature", "AXI4LiteSignature", "join_halves", "COCOTB_BUS_SEPARATOR",
           "BURST_FIXED", "BURST_INCR", "BURST_WRAP", "RESP_OKAY", "RESP_EXOKAY",
           "RESP_SLVERR", "RESP_DECERR", "DATA_WIDTHS", "READ_MEMBERS", "WRITE_MEMBERS"]

COCOTB_BUS_SEPARATOR = "__"

BURST_FIXED, BURST_INCR, BURST_WRAP = 0, 1, 2
RESP_OKAY, RESP_EXOKAY, RESP_SLVERR, RESP_DECERR = 0, 1, 2, 3



def _check(owner, name, value, allowed):
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        lo_hi = (f"[{allowed.start}, {allowed.stop - 1}]" if isinstance(allowed, range)
                 else str(tuple(allowed)))
        raise ValueError(f"{type(owner).__name__}: {name}={value!r} outside {lo_hi}")
    return value


def _write_members(aw: int, dw: int, iw: int) -> dict:
    return {
        "awid": Out(iw), "awaddr": Out(aw), "awlen": Out(8), "awsize": Out(3),
        "awburst": Out(2), "awlock": Out(1), "awcache": Out(4), "awprot": Out(3),
        "awqos": Out(4), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(dw), "wstrb": Out(dw // 8), "wlast": Out(1), "wvalid": Out(1),
        "wready": In(1),
        "bid": In(iw), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
    }


def _read_members(aw: int, dw: int, iw: int) -> dict:
    return {
        "arid": Out(iw), "araddr": Out(aw), "arlen": Out(8), "arsize": Out(3),
        "arburst": Out(2), "arlock": Out(1), "arcache": Out(4), "arprot": Out(3),
        "arqos": Out(4), "arvalid": Out(1), "arready": In(1),
        "rid": In(iw), "rdata": In(dw), "rresp": In(2), "rlast": In(1), "rvalid": In(1),
        "rready": Out(1),
    }


WRITE_MEMBERS = tuple(_write_members(32, 64, 1))
READ_MEMBERS = tuple(_read_members(32, 64, 1))


class AXI4Signature(wiring.Signature):
    """AXI4 (full) interface, master's view (``Out`` = driven by the master).

    Parameters
    ----------
    addr_width : int
        Byte-address width, 12..64 (default 32).
    data_width : int
        32, 64 (default), 128 or 256.
    id_width : int
        1..8 (default 1).
    read, write : bool
        Include the read channels (AR, R) / the write channels (AW, W, B).  Default both.
    """

    def __init__(self, addr_width: int = 32, data_width: int = 64, id_width: int = 1, *,
                 read: bool = True, write: bool = True):
        _check(self, "addr_width", addr_width, range(12, 65))
        _check(self, "data_width", data_width, DATA_WIDTHS)
        _check(self, "id_width", id_width, range(1, 9))
        if not (read or write):
            raise ValueError("AXI4Signature: needs read or write channels (or both)")
        self._params = (addr_width, data_width, id_width, bool(read), bool(write))
        members = {}
        if write:
            members.update(_write_members(addr_width, data_width, id_width))
        if read:
            members.update(_read_members(addr_width, data_width, id_width))
        super().__init__(members)

    addr_width = property(lambda self: self._params[0])
    data_width = property(lambda self: self._params[1])
    id_width = property(lambda self: self._params[2])
    has_read = property(lambda self: self._params[3])
    has_write = property(lambda self: self._params[4])

    @property
    def bytes_per_beat(self) -> int:
        return self.data_width // 8

    def __eq__(self, other):
        return type(other) is type(self) and other._params == self._params

    def __hash__(self):
        return hash((type(self), self._params))

    def __repr__(self):
        half = "" if self.has_read and self.has_write else (", read only" if self.has_read
                                                            else ", write only")
        return (f"AXI4Signature(addr_width={self.addr_width}, data_width={self.data_width}, "
                f"id_width={self.id_width}{half})")


class AXI4LiteSignature(wiring.Signature):
    """AXI4-Lite interface, master's view.  ``addr_width`` 3..64 (default 32),
    ``data_width`` 32 (default) or 64."""

    def __init__(self, addr_width: int = 32, data_width: int = 32):
        _check(self, "addr_width", addr_width, range(3, 65))
        _check(self, "data_width", data_width, (32, 64))
        self._params = (addr_width, data_width)
        aw, dw = addr_width, data_width
        super().__init__({
            "awaddr": Out(aw), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(dw), "wstrb": Out(dw // 8), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(aw), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(dw), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    addr_width = property(lambda self: self._params[0])
    data_width = property(lambda self: self._params[1])

    def __eq__(self, other):
        return type(other) is type(self) and other._params == self._params

    def __hash__(self):
        return hash((type(self), self._params))

    def __repr__(self):
        return f"AXI4LiteSignature(addr_width={self.addr_width}, data_width={self.data_width})"


def join_halves(m: Module, full, read=None, write=None) -> None:
    """Put the read half of ``read`` and the write half of ``write`` (master ports of
    submodules, e.g. ``MemReader.m_axi`` / ``MemWriter.m_axi``) on the master port
    ``full`` (a component's own ``Out(AXI4Signature(...))``).  Widths must match.  A
    missing half is tied off: no requests (``*valid`` = 0), responses accepted
    (``bready``/``rready`` = 1)."""
    for names, src in ((READ_MEMBERS, read), (WRITE_MEMBERS, write)):
        for name in names:
            dst = getattr(full, name)
            flow = full.signature.members[name].flow
            if src is None:
                if flow == wiring.Out:
                    m.d.comb += dst.eq(1 if name in ("bready", "rready") else 0)
                continue
            s = getattr(src, name)
            if len(s) != len(dst):
                raise ValueError(f"join_halves: {name} is {len(s)} bits on the half port, "
                                 f"{len(dst)} on the full port")
            if flow == wiring.Out:
                m.d.comb += dst.eq(s)
            else:
                m.d.comb += s.eq(dst)

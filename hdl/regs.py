r"""Host registers: an AXI4-Lite slave (32-bit data) in front of the accelerator.

Register map (byte offsets; the slave decodes ``araddr/awaddr[2:12]``, one 4 KB page,
and ignores the low two bits)

====== ============ ==== ==============================================================
offset name         mode meaning
====== ============ ==== ==============================================================
0x00   CTRL         W    bit0 START: writing 1 gives a one-cycle ``start`` pulse (reads 0)
0x04   STATUS       R    bit0 busy, bit1 done, bit2 error (the ``busy``/``done``/``error``
                         inputs, sampled when read)
0x08   SCHED_ADDR   RW   word address of the first instruction record (``sched_addr``)
0x0C   IMAGE_ADDR   RW   word address of the constant image (``image_addr``)
0x10   CYCLES_LO    R    ``cycles[0:32]``; reading it latches ``cycles[32:64]``
0x14   CYCLES_HI    R    the high half latched by the last CYCLES_LO read
0x18   RECORDS      R    the ``records`` input (records executed)
0x1C   VERSION      R    the ``version`` constant
====== ============ ==== ==============================================================

Other offsets read 0 and ignore writes (OKAY response).  Writes honour WSTRB byte
lanes (CTRL: START needs ``wstrb[0]``).  Read a 64-bit count as LO then HI.

AXI4-Lite behaviour: AW and W are accepted independently (in either order); the write
takes effect in the cycle after both are held, and B follows (one write at a time).  A
read answers in the cycle after AR (``rvalid`` registered, ``rdata`` held until
``rready``).  Responses are always OKAY.  Exported names: ``s_axil__awaddr``, ... (see
:mod:`convc.hdl.axi` for binding cocotbext-axi).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import axi
from .arith import check_param, param

__all__ = ["HostRegisters", "CTRL", "STATUS", "SCHED_ADDR", "IMAGE_ADDR", "CYCLES_LO",
           "CYCLES_HI", "RECORDS", "VERSION", "REGISTERS", "DEFAULT_VERSION", "STATUS_BUSY", "STATUS_DONE",
           "STATUS_ERROR"]

CTRL, STATUS, SCHED_ADDR, IMAGE_ADDR = 0x00, 0x04, 0x08, 0x0C
CYCLES_LO, CYCLES_HI, RECORDS, VERSION = 0x10, 0x14, 0x18, 0x1C
REGISTERS = {"CTRL": CTRL, "STATUS": STATUS, "SCHED_ADDR": SCHED_ADDR,
             "IMAGE_ADDR": IMAGE_ADDR, "CYCLES_LO": CYCLES_LO, "CYCLES_HI": CYCLES_HI,
             "RECORDS": RECORDS, "VERSION": VERSION}
DEFAULT_VERSION = 0x0001_0000          # major.minor in the high/low halves
STATUS_BUSY, STATUS_DONE, STATUS_ERROR = 1, 2, 4   # STATUS bits


class HostRegisters(wiring.Component):
    """AXI4-Lite register slave (see the module docstring for the map).

    Parameters
    ----------
    version : int
        The VERSION register value (32 bits, default :data:`DEFAULT_VERSION`).
    addr_width : int
        AXI4-Lite address width, 12..32 (default 32).

    Ports
    -----
    ``s_axil``      In(:class:`~convc.hdl.axi.AXI4LiteSignature` with ``addr_width``, 32-bit data)
    ``start``       Out(1): one-cycle pulse, the cycle after a CTRL write with bit0 set
    ``sched_addr``  Out(32), ``image_addr`` Out(32): register values (reset 0)
    ``busy``, ``done``, ``error`` In(1); ``cycles`` In(64); ``records`` In(32)
    """

    def __init__(self, version: int = DEFAULT_VERSION, *, addr_width: int = 32):
        check_param(self, "version", version, 0, (1 << 32) - 1)
        check_param(self, "addr_width", addr_width, 12, 32)
        self._version, self._aw = version, addr_width
        super().__init__({
            "s_axil": In(axi.AXI4LiteSignature(addr_width, 32)),
            "start": Out(1),
            "sched_addr": Out(32),
            "image_addr": Out(32),
            "busy": In(1),
            "done": In(1),
            "error": In(1),
            "cycles": In(64),
            "records": In(32),
        })

    version = param("version")

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axil

        # ---- write: hold AW and W (either order), then write and answer on B
        aw_full = Signal()
        w_full = Signal()
        waddr = Signal(10)
        wdata = Signal(32)
        wstrb = Signal(4)
        m.d.comb += [bus.awready.eq(~aw_full), bus.wready.eq(~w_full), bus.bresp.eq(axi.RESP_OKAY)]
        with m.If(bus.awvalid & ~aw_full):
            m.d.sync += [aw_full.eq(1), waddr.eq(bus.awaddr[2:12])]
        with m.If(bus.wvalid & ~w_full):
            m.d.sync += [w_full.eq(1), wdata.eq(bus.wdata), wstrb.eq(bus.wstrb)]

        do_write = aw_full & w_full & ~bus.bvalid
        m.d.sync += self.start.eq(0)
        with m.If(do_write):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), bus.bvalid.eq(1)]
            with m.Switch(waddr):
                with m.Case(CTRL >> 2):
                    m.d.sync += self.start.eq(wstrb[0] & wdata[0])
                for off, reg in ((SCHED_ADDR, self.sched_addr), (IMAGE_ADDR, self.image_addr)):
                    with m.Case(off >> 2):
                        for k in range(4):
                            with m.If(wstrb[k]):
                                m.d.sync += reg[8 * k:8 * k + 8].eq(wdata[8 * k:8 * k + 8])
        with m.Elif(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)

        # ---- read: one cycle after AR, held until R is taken
        cycles_hi = Signal(32)
        m.d.comb += [bus.arready.eq(~bus.rvalid), bus.rresp.eq(axi.RESP_OKAY)]
        with m.If(bus.arvalid & ~bus.rvalid):
            m.d.sync += bus.rvalid.eq(1)
            with m.Switch(bus.araddr[2:12]):
                with m.Case(STATUS >> 2):
                    m.d.sync += bus.rdata.eq((self.busy * STATUS_BUSY) | (self.done * STATUS_DONE)
                                             | (self.error * STATUS_ERROR))
                with m.Case(SCHED_ADDR >> 2):
                    m.d.sync += bus.rdata.eq(self.sched_addr)
                with m.Case(IMAGE_ADDR >> 2):
                    m.d.sync += bus.rdata.eq(self.image_addr)
                with m.Case(CYCLES_LO >> 2):
                    m.d.sync += [bus.rdata.eq(self.cycles[:32]), cycles_hi.eq(self.cycles[32:])]
                with m.Case(CYCLES_HI >> 2):
                    m.d.sync += bus.rdata.eq(cycles_hi)
                with m.Case(RECORDS >> 2):
                    m.d.sync += bus.rdata.eq(self.records)
                with m.Case(VERSION >> 2):
                    m.d.sync += bus.rdata.eq(self._version)
                with m.Default():
                    m.d.sync += bus.rdata.eq(0)
        with m.Elif(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        return m

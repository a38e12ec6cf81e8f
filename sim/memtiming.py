r"""Memory timing for the cycle model: how the external memory looks to the
accelerator's ports (:class:`MemoryTiming`).

Two settings:

* :meth:`MemoryTiming.axi_ram`, the testbenches' cocotbext-axi ``AxiRam``, one beat a
  cycle each way, latencies MEASURED (cocotb + Icarus against ``AxiRam``, and the native
  harness's memory, which copies its timing): a read command's first word 7 cycles
  after its handshake (:data:`AXI_RAM_READ_LATENCY`), the writer idle 4 cycles plus the
  last burst's beats after its last word (:data:`AXI_RAM_WRITE_LATENCY`).
* :meth:`MemoryTiming.board`, the board's DDR3, ASSUMED, TO CALIBRATE on the board (no
  ML605 measurement yet): the controller's latencies :data:`DDR3_AR_TO_R` and
  :data:`DDR3_W_TO_B`, and the sustained bandwidth, the board's figure
  ``hw.mem_bytes_per_cycle`` (ML605: 6.4 GB/s peak x 0.7 assumed efficiency = 22.4
  bytes = 11.2 words a cycle at 200 MHz; :mod:`convc.boards.catalog`).

The memory ports' own timing is published by :mod:`convc.hdl.memport` and named here
(``READER_*``, ``WRITER_*``), so that a latency seen at a port splits into the port's
part and the memory's (:attr:`MemoryTiming.ar_to_r`, :attr:`MemoryTiming.w_to_b`,
what the native harness models).  The model that uses it: :mod:`convc.sim.cycle`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from convc.compiler import isa
from convc.compiler.hwconfig import HardwareConfig
from convc.errors import ConvcError
from convc.hdl import axi
from convc.hdl.memport import DEFAULT_OUTSTANDING, MemReader, MemWriter, default_max_burst

__all__ = ["MemoryTiming", "AXI_RAM_READ_LATENCY", "AXI_RAM_WRITE_LATENCY", "DDR3_AR_TO_R", "DDR3_W_TO_B",
           "READER_CMD_TO_AR", "READER_R_TO_WORD", "READER_FREE_TO_AR", "WRITER_CMD_TO_WORD", "WRITER_WORD_TO_AW",
           "WRITER_B_TO_IDLE", "READER_OUTSTANDING", "WRITER_OUTSTANDING"]

# ---- the memory ports' timing, published by hdl/memport.py ------------------------------
READER_CMD_TO_AR = MemReader.CMD_TO_AR
READER_R_TO_WORD = MemReader.R_TO_WORD
READER_FREE_TO_AR = MemReader.FREE_TO_AR
WRITER_CMD_TO_WORD = MemWriter.CMD_TO_WORD
WRITER_WORD_TO_AW = MemWriter.WORD_TO_AW
WRITER_B_TO_IDLE = MemWriter.B_TO_IDLE
READER_OUTSTANDING = WRITER_OUTSTANDING = DEFAULT_OUTSTANDING     # the accelerator's ports

# ---- AxiRam (cocotbext-axi), measured: see the module docstring -------------------------
AXI_RAM_READ_LATENCY = 7    # read command handshake -> first word (3 + AxiRam 2 + 2)
AXI_RAM_WRITE_LATENCY = 4   # writer's last word -> idle, beyond the last burst's beats

# ---- ML605 DDR3 through the MIG, assumed (calibrate on the board) -----------------------
DDR3_AR_TO_R = 28           # AR accepted -> first R beat, MIG AXI at the 200 MHz UI clock
DDR3_W_TO_B = 12            # last W beat -> B response


def _ceil(x: float) -> int:
    return int(math.ceil(x - 1e-9))


@dataclass(frozen=True, kw_only=True)
class MemoryTiming:
    """How the external memory looks to the accelerator's ports.

    Attributes
    ----------
    name : str
    note : str
        Where the figures come from.
    duplex : bool
        Reads and writes each move ``words_per_cycle`` (True: separate channels, as
        cocotbext-axi's ``AxiRam`` and the native harness's ``axi-ram`` setting), or
        share it (False: one DDR3 bus).
    data_width : int
        AXI data width (bits): words a beat = ``data_width // 16``.
    max_burst : int
        Beats a burst (``memport.default_max_burst``).
    words_per_cycle : float
        Sustained 16-bit words a cycle, all ports together (the bandwidth bound).
    read_latency : int
        A reader's command handshake to its first word on the stream side.
    write_latency : int
        The writer's last word to its ``idle``, beyond the beats of its last burst.
    cmd_overhead : int
        Cycles a command costs a port beyond its words (back-to-back commands).

    The memory side alone (what the native harness models, :mod:`convc.sim.native`):
    :attr:`ar_to_r` and :attr:`w_to_b`, the latencies left when the ports' own
    (``READER_CMD_TO_AR``, ``READER_R_TO_WORD``, ``WRITER_WORD_TO_AW``,
    ``WRITER_B_TO_IDLE``) are taken out.
    """

    name: str
    note: str = ""
    duplex: bool = False
    data_width: int = 256
    max_burst: int = 32
    words_per_cycle: float
    read_latency: int
    write_latency: int
    cmd_overhead: int = 0

    def __post_init__(self):
        if not self.words_per_cycle > 0:
            raise ConvcError(f"memory timing {self.name!r}: words_per_cycle must be > 0")
        for f in ("read_latency", "write_latency", "cmd_overhead"):
            if getattr(self, f) < 0:
                raise ConvcError(f"memory timing {self.name!r}: {f} must be >= 0")

    @property
    def words_per_beat(self) -> int:
        return self.data_width // isa.WORD_BITS

    @property
    def ar_to_r(self) -> int:
        """An AR handshake to its first R beat (the memory's read latency)."""
        return max(1, self.read_latency - READER_CMD_TO_AR - READER_R_TO_WORD)

    @property
    def w_to_b(self) -> int:
        """A burst's last W beat to its B response (the memory's write latency)."""
        return max(1, self.write_latency - WRITER_WORD_TO_AW - WRITER_B_TO_IDLE)

    @property
    def beats_per_cycle(self) -> float:
        """Sustained beats a cycle (each way when :attr:`duplex`, else in all)."""
        return self.words_per_cycle / self.words_per_beat

    @property
    def bucket_beats(self) -> float:
        """The most beats of credit the memory holds: ``max(1, rate) + rate``, so the
        long-run rate is exact (no fraction is lost) and a short burst after an idle
        spell may go at a beat a cycle (the native harness's token bucket)."""
        return max(1.0, self.beats_per_cycle) + self.beats_per_cycle

    def beat_cycles(self, beats_read: float, beats_written: float) -> int:
        """The bandwidth bound: cycles to move these beats (reads and writes together,
        or each on its own channel when :attr:`duplex`).  A command moves every beat its
        words touch, so the bound counts beats, not words."""
        moved = max(beats_read, beats_written) if self.duplex else beats_read + beats_written
        return _ceil(moved / self.beats_per_cycle)

    def write_cmd_cycles(self, words: int) -> float:
        """Likewise for the writer (bursts waiting for their B response)."""
        return max(words, self.write_latency / WRITER_OUTSTANDING) + self.cmd_overhead

    def write_drain(self, last_cmd_words: int, ports: int = 1) -> float:
        """The writers' last word to ``idle``: the last burst's beats, then the response.
        With ``ports`` writers finishing together, their final bursts queue on the one
        write channel: the first at once, the others at the memory's beat rate."""
        beats = min(-(-max(last_cmd_words, 1) // self.words_per_beat), self.max_burst)
        return self.write_latency + beats + (ports - 1) * beats / self.beats_per_cycle

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def board(cls, hw: HardwareConfig) -> "MemoryTiming":
        """The board's memory: ``hw.mem_bytes_per_cycle`` (the board's peak times its
        assumed efficiency, at ``hw.clock_mhz``) and the DDR3 controller's latencies
        (:data:`DDR3_AR_TO_R`, :data:`DDR3_W_TO_B`, assumed) behind the ports."""
        return cls(name="board", words_per_cycle=hw.mem_words_per_cycle,
                   read_latency=READER_CMD_TO_AR + DDR3_AR_TO_R + READER_R_TO_WORD,
                   write_latency=WRITER_WORD_TO_AW + DDR3_W_TO_B + WRITER_B_TO_IDLE,
                   data_width=hw.data_width, max_burst=default_max_burst(hw.data_width),
                   note=f"{hw.board} DDR3: {hw.mem_bytes_per_cycle:g} bytes/cycle sustained at "
                        f"{hw.clock_mhz:g} MHz (board peak x assumed efficiency); latencies assumed "
                        f"(AR->R {DDR3_AR_TO_R}, W->B {DDR3_W_TO_B} cycles)")

    @classmethod
    def axi_ram(cls, data_width: int = 256) -> "MemoryTiming":
        """The testbenches' cocotbext-axi ``AxiRam``: one beat a cycle, latencies
        measured (:data:`AXI_RAM_READ_LATENCY`, :data:`AXI_RAM_WRITE_LATENCY`)."""
        if data_width not in axi.DATA_WIDTHS:
            raise ConvcError(f"memory timing axi-ram: data_width={data_width!r} not in {axi.DATA_WIDTHS}")
        return cls(name="axi-ram", words_per_cycle=data_width / isa.WORD_BITS,
                   read_latency=AXI_RAM_READ_LATENCY, write_latency=AXI_RAM_WRITE_LATENCY,
                   data_width=data_width, max_burst=default_max_burst(data_width), duplex=True,
                   note=f"cocotbext-axi AxiRam, {data_width}-bit, one beat a cycle each way; latencies measured")

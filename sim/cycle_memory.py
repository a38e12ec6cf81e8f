"""The memory side of the cycle model (:mod:`convc.sim.cycle`): what a record's phases
cost on the memory ports and what they move on the AXI data channels.

* :func:`read_phase` and :func:`fetch_cycles`: a parameter read (a command, the read
  latency, its words) and the record's FETCH + DECODE;
* :class:`RowOut`, :func:`row_cost` and :func:`row_writer`: the row writer's two-row
  buffer recurrence (the engines' stall and when the last word is taken);
* :class:`Traffic`: the beats a record's commands move (exact, from their addresses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convc.compiler import isa
from convc.compiler.isa import RECORD_WORDS
from convc.hdl.accel import Accelerator
from convc.hdl.rowwriter import RowWriter

from .memtiming import WRITER_CMD_TO_WORD, MemoryTiming

__all__ = ["RowOut", "row_cost", "row_writer", "read_phase", "fetch_cycles", "Traffic"]


@dataclass
class RowOut:
    """The output side of a streaming phase: per row, when its first element reaches the
    row buffer (``first``) and when it is complete (``done``), without stalls; the
    busiest write port writes each row as ``cmds`` commands of ``words`` words, and all
    ports together ``beats`` beats a row on the one write channel."""

    first: list
    done: list
    cmds: int
    words: int
    beats: float = 0.0
    ports: int = 1          # write ports whose final bursts of the last row queue together

    def shifted(self, d: float) -> "RowOut":
        return RowOut([a + d for a in self.first], [c + d for c in self.done], self.cmds, self.words, self.beats,
                    self.ports)


def row_cost(out: RowOut, mem: MemoryTiming) -> float:
    """The row writer's time for one row: the busiest port's commands back to back, or
    the row's beats on the shared write channel (:class:`~convc.hdl.arbiter.WriteArbiter`:
    a beat a cycle across the ports), whichever is longer."""
    return max(out.cmds * (mem.write_cmd_cycles(out.words) + RowWriter.CMD_GAP),
               out.beats / mem.beats_per_cycle)


def row_writer(out: RowOut, mem: MemoryTiming) -> tuple[float, float]:
    """The two-row buffer recurrence (module docstring); returns (the engines' stall D,
    the time the writer takes the last word).  A row's first command is issued when the
    row is complete; its words go in ``WRITER_CMD_TO_WORD`` cycles later, or right after
    the previous row's (back-to-back commands have no gap)."""
    cost = row_cost(out, mem)
    D = 0.0
    wend: list[float] = []
    for r, (a, c) in enumerate(zip(out.first, out.done)):
        if r >= RowWriter.BUFFER_ROWS and a + D < wend[r - RowWriter.BUFFER_ROWS]:
            D += wend[r - RowWriter.BUFFER_ROWS] - (a + D)
        ws = max(c + D + WRITER_CMD_TO_WORD, wend[-1] if wend else 0.0)
        wend.append(ws + cost)
    return D, (wend[-1] if wend else 0.0)


def read_phase(words: int, mem: MemoryTiming) -> int:
    # the command's handshake cycle is the first of the read latency (measured on the RTL)
    return Accelerator.PHASE_GAP + mem.read_latency - 1 + words


def fetch_cycles(mem: MemoryTiming) -> int:
    """FETCH: the record's words read, then DECODE."""
    return read_phase(RECORD_WORDS, mem) + Accelerator.DECODE_CYCLES


class Traffic:
    """Beats a record moves on the AXI data channels: every read and write command
    covers the whole beats its words touch (``MemoryTiming.words_per_beat`` words a
    beat), so a 1-word read costs a beat of bandwidth like a 16-word one.  Exact from the
    command addresses; the input-map addresses come from the record's list in the
    program's constant image (when the program has none: maps in list order)."""

    def __init__(self, program, mem: MemoryTiming):
        self.W = mem.words_per_beat
        image = getattr(program, "image", None)
        self.image = None if image is None else np.asarray(image)
        self.table_addr = int(getattr(program, "table_addr", 0))

    def span(self, addr, words) -> int:
        """Beats covered by commands of ``words`` words at ``addr`` (arrays broadcast)."""
        a = np.asarray(addr, dtype=np.int64)
        n = np.asarray(words, dtype=np.int64)
        b = np.where(n > 0, (a + n - 1) // self.W - a // self.W + 1, 0)
        return int(np.sum(b))

    def map_bases(self, ins: isa.Instr) -> np.ndarray:
        """The word address of each input map ``j < n_in`` (the LIST phase's result)."""
        idx = np.arange(ins.n_in, dtype=np.int64)
        if self.image is not None and ins.list_addr + ins.n_in <= self.image.size:
            idx = self.image[ins.list_addr:ins.list_addr + ins.n_in].astype(np.int64)
        return ins.in_addr + idx * ins.in_h * ins.in_w

    def setup(self, ins: isa.Instr, table: bool, bias_addr: int) -> int:
        beats = -(-RECORD_WORDS // self.W)                 # records are 32-word aligned
        if table:
            beats += self.span(self.table_addr + ins.pwl_id * isa.TABLE_WORDS, isa.TABLE_WORDS)
        return beats + self.span(ins.list_addr, ins.n_in) + self.span(bias_addr, 2 * ins.n_out)

    def rows(self, ins: isa.Instr, first: int, count: int) -> int:
        """Input rows ``first .. first+count-1`` of every input map, one command a row: rows
        of the upsampled map (``up``), row ``y`` a command of the ``in_w`` words of stored row
        ``y >> up``."""
        y = np.arange(max(first, 0), min(first + count, ins.up_h), dtype=np.int64) >> ins.up
        if y.size == 0 or ins.in_w == 0:
            return 0
        addr = self.map_bases(ins)[:, None] + y[None, :] * ins.in_w
        return self.span(addr, ins.in_w)

    def fc_read(self, ins: isa.Instr, in_lanes: int) -> int:
        """An OP_FC record's stream reads: each group's weight block (``in_lanes`` inputs'
        columns of ``isa.fc_ld(n_out)`` words, one command) and the band's input rows."""
        ld = isa.fc_ld(ins.n_out)
        g = np.arange(max(-(-ins.n_in // in_lanes), 1), dtype=np.int64)
        return (self.span(ins.w_addr + g * in_lanes * ld, np.minimum(in_lanes, ins.n_in - g * in_lanes) * ld)
                + self.rows(ins, ins.row0, ins.rows))

    def written(self, ins: isa.Instr, ports: int) -> int:
        """The row writer's commands: ``out_w`` words a map a row, or for a vector output
        one command of each port's maps."""
        map_out = ins.out_h * ins.out_w
        base = ins.out_addr + ins.o0 * map_out + ins.row0 * ins.out_w
        if map_out == 1:
            q = -(-ins.n_out // ports)
            starts = np.arange(0, ins.n_out, q)
            return self.span(base + starts, np.minimum(q, ins.n_out - starts))
        o = np.arange(ins.n_out, dtype=np.int64)[:, None]
        r = np.arange(ins.rows, dtype=np.int64)[None, :]
        return self.span(base + o * map_out + r * ins.out_w, ins.out_w)

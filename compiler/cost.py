"""The compiler's cost estimate of a record: cycles, MACs, memory traffic.

Used to size the accelerator and for the compile report. It counts what
the streaming engine must do; the cycle-level simulator (``sim/``) is the
finer model, checked against the RTL.

CONV record (``n_in`` input maps, ``n_out`` outputs, a band of ``rows``)::

    conv_rows = (rows - 1) * pool_s + pool_k
    in_rows   = min((conv_rows - 1) * stride + K, the rows that exist + padding)
    Wp        = in_w + 2 * pad                      one pixel a cycle, per lane
    groups    = ceil(n_in / in_lanes)               input groups accumulate on chip
    warmup    = (K - 1) * Wp                        the first group's first K-1 rows
    sweep     = max(in_rows - (K - 1), K - 1) * Wp  later groups' first rows are
                                                    preloaded into the second bank
                                                    while the previous group streams
    compute   = warmup + groups * sweep
    words     = n_in * in_rows * in_w               input (re-read per record)
              + n_out * n_in * K * K + 2 * n_out    weights and biases
              + n_out * rows * out_w                output
    memory    = words / (bytes_per_cycle / 2)
    cycles    = max(compute, memory) + SETUP

FC record (the matrix-vector engine; ``pixels = rows * out_w``)::

    compute   = pixels * ceil(n_in / fc_in_lanes)
    words     = n_in * pixels + n_out * n_in + 2 * n_out + n_in + n_out * pixels

LCN record: two sweeps of the frame, one pixel (all maps) a cycle; the first
writes v and s to scratch, the second reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import isa
from .hwconfig import HardwareConfig

SETUP = 32  # record fetch/decode, weight-load start, pipeline fill and drain

__all__ = ["RecordCost", "record_cost", "SETUP"]


@dataclass(frozen=True)
class RecordCost:
    cycles: int
    compute_cycles: int
    memory_cycles: int
    macs: int          # multiplies the engine performs (incl. padding pixels)
    words_read: int
    words_written: int

    @property
    def bound(self) -> str:
        return "memory" if self.memory_cycles > self.compute_cycles else "compute"


def record_cost(ins: isa.Instr, hw: HardwareConfig) -> RecordCost:
    wpc = hw.mem_words_per_cycle
    if ins.op == isa.OP_CONV:
        conv_rows = (ins.rows - 1) * ins.pool_s + ins.pool_k
        in_rows = min((conv_rows - 1) * ins.stride + ins.kernel, ins.in_h + 2 * ins.pad)
        wp = ins.in_w + 2 * ins.pad
        groups = -(-ins.n_in // hw.in_lanes)
        warmup = (ins.kernel - 1) * wp
        sweep = max(in_rows - (ins.kernel - 1), ins.kernel - 1) * wp
        compute = warmup + groups * sweep
        read = ins.n_in * min(in_rows, ins.in_h) * ins.in_w + ins.weight_words + ins.n_in
        written = ins.n_out * ins.rows * ins.out_w
        memory = int(-(-(read + written) // wpc))
        conv_w = ins.conv_w
        macs = ins.n_out * ins.n_in * conv_rows * conv_w * ins.kernel * ins.kernel
        return RecordCost(max(compute, memory) + SETUP, compute, memory, macs, read, written)
    if ins.op == isa.OP_FC:
        pixels = ins.rows * ins.out_w
        compute = pixels * -(-ins.n_in // hw.fc_in_lanes)
        read = ins.n_in * pixels + ins.weight_words + ins.n_in
        written = ins.n_out * pixels
        memory = int(-(-(read + written) // wpc))
        macs = ins.n_out * ins.n_in * pixels
        return RecordCost(max(compute, memory) + SETUP, compute, memory, macs, read, written)
    if ins.op == isa.OP_LCN:
        h, w, c = ins.in_h, ins.in_w, ins.in_c
        half = ins.kernel // 2
        compute = 2 * (h + 2 * half) * (w + 2 * half)
        read = c * h * w + (c + 1) * h * w + ins.kernel ** 2
        written = (c + 1) * h * w + c * h * w
        memory = int(-(-(read + written) // wpc))
        macs = 2 * h * w * ins.kernel ** 2 + 3 * c * h * w
        return RecordCost(max(compute, memory) + SETUP, compute, memory, macs, read, written)
    return RecordCost(SETUP if ins.op == isa.OP_END else 1, 0, 0, 0, 0, 0)

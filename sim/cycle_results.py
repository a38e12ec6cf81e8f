"""The cycle model's results: :class:`RecordTiming` (one record's accounting),
:class:`LayerTiming` (a layer's records together) and :class:`CycleReport` (the whole
run: :meth:`CycleReport.text` and :meth:`CycleReport.to_json`, what ``convc simulate``
prints), as :func:`convc.sim.cycle.simulate` returns them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from convc.compiler.hwconfig import HardwareConfig

from .memtiming import MemoryTiming

__all__ = ["RecordTiming", "LayerTiming", "CycleReport", "cycles_by_bound"]


def cycles_by_bound(records) -> dict[str, int]:
    """Cycles per bound label over ``records`` (in order of first appearance)."""
    out: dict[str, int] = {}
    for r in records:
        out[r.bound] = out.get(r.bound, 0) + r.cycles
    return out


class _Row:
    """A row of the report: its JSON is its fields."""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class RecordTiming(_Row):
    """One record's accounting.  ``phases`` sums to ``cycles``."""

    index: int
    name: str
    op: str
    start: int
    cycles: int
    phases: dict
    compute_cycles: int        # the engine's own timeline (conv: band_cycles), no writer stalls
    writer_stall: int          # cycles the engines stalled on the row buffer
    memory_cycles: int         # words moved / words per cycle (the bandwidth bound)
    bound: str                 # compute, writer, memory, weights, setup
    words_read: int
    words_written: int
    macs: int


@dataclass
class LayerTiming(_Row):
    """A layer's records together (:meth:`of`)."""

    name: str
    op: str
    passes: int
    cycles: int
    ms: float
    macs: int
    utilization: float | None
    bytes_read: int
    bytes_written: int
    bound: str
    writer_stall: int

    @classmethod
    def of(cls, name: str, records: list[RecordTiming], hw: HardwareConfig) -> "LayerTiming":
        """Layer ``name`` from its ``records`` (its passes): their sums, the utilization of
        ``hw``'s multipliers (none for LCN: its DSPs are not in ``macs_per_cycle``) and the
        bound of the most cycles."""
        cycles = sum(r.cycles for r in records)
        macs = sum(r.macs for r in records)
        ops = sorted({r.op for r in records})
        util = macs / (cycles * hw.macs_per_cycle) if cycles and "lcn" not in ops else None
        return cls(name=name, op="/".join(ops), passes=len(records), cycles=cycles,
                   ms=cycles / (hw.clock_mhz * 1e3), macs=macs, utilization=util,
                   bytes_read=2 * sum(r.words_read for r in records),
                   bytes_written=2 * sum(r.words_written for r in records),
                   bound=max(cycles_by_bound(records).items(), key=lambda kv: kv[1])[0],
                   writer_stall=sum(r.writer_stall for r in records))


@dataclass
class CycleReport:
    """The result of :func:`simulate`."""

    hw: HardwareConfig
    memory: MemoryTiming
    cycles: int
    records: list[RecordTiming]
    layers: list[LayerTiming]
    overhead_cycles: int                 # start and OP_END
    notes: list[str] = field(default_factory=list)

    @property
    def ms_per_frame(self) -> float:
        return self.cycles / (self.hw.clock_mhz * 1e3)

    @property
    def macs(self) -> int:
        """Conv and FC MACs (the utilization's numerator)."""
        return sum(r.macs for r in self.records if r.op in ("conv", "fc"))

    @property
    def mac_utilization(self) -> float:
        return self.macs / (self.cycles * self.hw.macs_per_cycle) if self.cycles else 0.0

    @property
    def words_read(self) -> int:
        return sum(r.words_read for r in self.records)

    @property
    def words_written(self) -> int:
        return sum(r.words_written for r in self.records)

    def bound_cycles(self) -> dict:
        """Cycles per bound label over all records."""
        return cycles_by_bound(self.records)

    def to_json(self, records: bool = True) -> dict:
        d = {
            "cycles": self.cycles, "ms_per_frame": self.ms_per_frame, "mac_utilization": self.mac_utilization,
            "clock_mhz": self.hw.clock_mhz, "macs": self.macs, "macs_per_cycle": self.hw.macs_per_cycle,
            "bytes_read": 2 * self.words_read, "bytes_written": 2 * self.words_written,
            "memory": self.memory.to_json(),
            "layers": [lt.to_json() for lt in self.layers],
            "totals": {"cycles": self.cycles, "ms_per_frame": self.ms_per_frame, "macs": self.macs,
                       "mac_utilization": self.mac_utilization, "passes": len(self.records) - 1,
                       "bytes_read": 2 * self.words_read, "bytes_written": 2 * self.words_written,
                       "overhead_cycles": self.overhead_cycles,
                       "writer_stall": sum(r.writer_stall for r in self.records),
                       "bound_cycles": self.bound_cycles()},
            "notes": list(self.notes),
        }
        if records:
            d["records"] = [r.to_json() for r in self.records]
        return d

    def text(self, records: bool = False) -> str:
        hw, mem = self.hw, self.memory
        lines = [f"cycle model: {hw.board} at {hw.clock_mhz:g} MHz, memory {mem.name} "
                 f"({mem.words_per_cycle:g} words/cycle, read latency {mem.read_latency}, "
                 f"write latency {mem.write_latency} cycles)", ""]
        head = (f"{'layer':<12} {'op':<4} {'passes':>6} {'cycles':>11} {'ms':>8} {'MACs':>15} {'util':>6} "
                f"{'KB in':>9} {'KB out':>9} {'stall':>9} bound")
        lines.append(head)
        for lt in self.layers:
            util = f"{lt.utilization:.1%}" if lt.utilization is not None else "-"
            lines.append(f"{lt.name:<12} {lt.op:<4} {lt.passes:>6} {lt.cycles:>11,} {lt.ms:>8.3f} {lt.macs:>15,} "
                         f"{util:>6} {lt.bytes_read / 1024:>9.1f} {lt.bytes_written / 1024:>9.1f} "
                         f"{lt.writer_stall:>9,} {lt.bound}")
        lines.append(f"{'(start/end)':<12} {'':<4} {'':>6} {self.overhead_cycles:>11,}")
        bounds = ", ".join(f"{k} {v / self.cycles:.0%}" for k, v in
                           sorted(self.bound_cycles().items(), key=lambda kv: -kv[1])) if self.cycles else ""
        lines += ["", f"total: {self.cycles:,} cycles = {self.ms_per_frame:.3f} ms per frame at {hw.clock_mhz:g} MHz, "
                      f"MAC utilization {self.mac_utilization:.1%} of {hw.macs_per_cycle} multipliers",
                  f"records by bound (share of the time): {bounds}; engines stalled on the row writer "
                  f"{sum(r.writer_stall for r in self.records):,} cycles"]
        lines += [f"note: {n}" for n in self.notes]
        if records:
            lines += ["", f"{'#':>5} {'layer':<12} {'op':<4} {'start':>11} {'cycles':>10} {'compute':>10} "
                          f"{'stall':>8} {'memory':>9} {'read':>9} {'written':>9} bound  phases"]
            for r in self.records:
                ph = " ".join(f"{k}={v}" for k, v in r.phases.items() if v)
                lines.append(f"{r.index:>5} {r.name:<12} {r.op:<4} {r.start:>11,} {r.cycles:>10,} "
                             f"{r.compute_cycles:>10,} {r.writer_stall:>8,} {r.memory_cycles:>9,} "
                             f"{r.words_read:>9,} {r.words_written:>9,} {r.bound:<6} {ph}")
        return "\n".join(lines)

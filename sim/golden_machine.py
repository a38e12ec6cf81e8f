"""The memory of the golden model (:mod:`convc.sim.golden`) during a run.

:class:`ConstImage` is what every batch of a run shares, read once: the
constant image (weights, biases, lists, tables), the PWL tables and their
lookup tables, the grouped records and the conv group plans.
:class:`Machine` is one batch of images: per-image memory words after the
constant image, checked reads and writes, and PWL evaluation.  The records
run on it are in :mod:`convc.sim.golden_conv` and :mod:`convc.sim.golden_lcn`.

Memory holds *signed codes*: the constant image (16-bit two's-complement
words) is kept once, and no record may write it (checked); each image has
its own copy of the words after it (``int16``).  Input-map lists and PWL
tables are read from the raw (unsigned) image words with the
:mod:`~convc.compiler.isa` conventions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convc.compiler import isa
from convc.compiler.numeric import QFormat
from convc.compiler.program import Program
from convc.compiler.pwl_table import PWL_LUT_MAX_BITS, PWLTable, pwl_eval, pwl_lut

from .golden_steps import record_steps

__all__ = ["ConstImage", "Machine", "word_fmt"]


@dataclass
class ConstImage:
    """A program's constant image, read once for all batches: ``raw``
    (unsigned words: lists, tables, bias halves), ``const`` (signed codes:
    weights, LCN windows), the PWL tables and the grouped records."""

    program: Program
    raw: np.ndarray
    const: np.ndarray
    tables: list[PWLTable]
    words: int
    #: the records to run, grouped (see :func:`~convc.sim.golden_steps.record_steps`)
    steps: list
    #: per first record index, the plan of a conv group (built by the first
    #: batch that runs it; batches in other threads may build it again, the same)
    groups: dict = field(default_factory=dict)
    #: per table index, the table evaluated on every input code (see
    #: :func:`~convc.compiler.pwl_table.pwl_lut`)
    luts: dict = field(default_factory=dict)
    #: keep the group plans for later batches (with one batch, each plan's
    #: float64 weights are freed after use)
    keep_plans: bool = True

    @classmethod
    def read(cls, program: Program) -> "ConstImage":
        """Check ``program``'s image, tables and records and read them."""
        image = np.asarray(program.image)
        if image.ndim != 1 or image.dtype.kind not in "iu":
            raise ValueError("program.image must be a 1-D integer array of words")
        if image.size and (int(image.min()) < 0 or int(image.max()) > 0xFFFF):
            raise ValueError("program.image words must be in 0..0xFFFF")
        if image.size > int(program.memory_words):
            raise ValueError(f"image ({image.size} words) larger than memory "
                             f"({program.memory_words} words)")
        end = program.table_addr + program.n_tables * isa.TABLE_WORDS
        if program.n_tables and not (0 <= program.table_addr and end <= image.size):
            raise ValueError(f"PWL tables [{program.table_addr:#x}, {end:#x}) outside the image")
        if len(program.names) != len(program.instrs):
            raise ValueError(f"{len(program.instrs)} records but {len(program.names)} names")
        raw = image.astype(np.int64, copy=False)
        tables = [isa.read_table(raw, program.table_addr + i * isa.TABLE_WORDS)
                  for i in range(program.n_tables)]
        # signed codes as int16 (a quarter of int64: the image of a large
        # network is tens of millions of words); widened where read
        return cls(program, raw, image.astype(np.uint16).view(np.int16), tables,
                   int(program.memory_words), record_steps(list(program.instrs)))


class Machine:
    """Memory, constants, tables and counters of one batch.

    Words below ``base`` (the constant image) are read from ``const``; the
    words from ``base`` on are kept per image in ``data`` (int16: every word
    is a signed 16-bit code).
    """

    def __init__(self, image: ConstImage, x: np.ndarray, data: np.ndarray):
        """``x``: checked input codes (n, *input.shape) int64 (see
        :func:`convc.sim.golden._input_codes`); ``data``: the (n,
        memory_words - base) rows of the result this machine fills."""
        self.image = image
        self.raw, self.const, self.tables = image.raw, image.const, image.tables
        self.words = image.words
        self.base = self.raw.size
        self.n = x.shape[0]
        self.data = data
        self.data[:] = 0
        reg = image.program.input
        self.write(reg.addr, x.reshape(self.n, -1), "input region")

    # -- memory ---------------------------------------------------------------
    def read(self, addr: np.ndarray) -> np.ndarray:
        """Codes at the word addresses ``addr`` (checked): (N, *addr.shape) int64."""
        addr = np.asarray(addr, dtype=np.int64)
        low = addr < self.base
        if not low.any():
            return self.data[:, addr - self.base].astype(np.int64)
        out = np.empty((self.n, *addr.shape), dtype=np.int64)
        out[:, low] = self.const[addr[low]]
        out[:, ~low] = self.data[:, addr[~low] - self.base]
        return out

    def read_span(self, addr: int, n: int, what: str) -> np.ndarray:
        """Codes of the words ``addr .. addr+n-1``: (N, n) int64."""
        self.check(addr, n, what)
        if addr >= self.base:
            return self.data[:, addr - self.base:addr - self.base + n].astype(np.int64)
        return self.read(np.arange(addr, addr + n))

    def write(self, addr, values: np.ndarray, what: str) -> None:
        """Write ``values`` (N, k) at ``addr`` (an int: k contiguous words; or
        an int array of k addresses)."""
        if np.ndim(addr) == 0:
            addr = int(addr)
            self.check_write(addr, addr + values.shape[1], what)
            self.data[:, addr - self.base:addr - self.base + values.shape[1]] = values
        else:
            addr = np.asarray(addr, dtype=np.int64)
            if addr.size:
                self.check_write(int(addr.min()), int(addr.max()) + 1, what)
                self.data[:, addr - self.base] = values

    # -- checks ---------------------------------------------------------------
    def check(self, addr: int, n: int, what: str) -> None:
        """The words ``addr .. addr+n-1`` must be in memory."""
        if n > 0 and not (0 <= addr and addr + n <= self.words):
            raise ValueError(f"{what}: [{addr:#x}, {addr + n:#x}) outside memory ({self.words} words)")

    def check_const(self, addr: int, n: int, what: str) -> None:
        """The words ``addr .. addr+n-1`` must be in the constant image."""
        if n > 0 and not (0 <= addr and addr + n <= self.raw.size):
            raise ValueError(f"{what}: [{addr:#x}, {addr + n:#x}) outside the constant image "
                             f"({self.raw.size} words)")

    def check_write(self, lo: int, hi: int, what: str) -> None:
        """Writes go to [lo, hi); they must be in memory and miss the image
        (constants are read from the image, not from memory)."""
        self.check(lo, hi - lo, what)
        if hi > lo and lo < self.raw.size:
            raise ValueError(f"{what}: writes [{lo:#x}, {hi:#x}) into the constant image "
                             f"(0..{self.raw.size:#x})")

    # -- PWL tables -----------------------------------------------------------
    def table(self, i: int, what: str) -> PWLTable:
        """PWL table ``i`` (checked: it exists and its outputs fit a word)."""
        if not 0 <= i < len(self.tables):
            raise ValueError(f"{what}: PWL table {i} does not exist ({len(self.tables)} tables)")
        t = self.tables[i]
        if t.out_fmt.width > isa.WORD_BITS:
            raise ValueError(f"{what}: PWL table {i} outputs {t.out_fmt.width} bits, "
                             f"more than a {isa.WORD_BITS}-bit memory word")
        return t

    def pwl(self, i: int, x: np.ndarray, fmt: QFormat | None, what: str) -> tuple[np.ndarray, int]:
        """``pwl_eval(table i, x)`` for int64 codes ``x`` (of ``fmt`` if given:
        then the input range needs no check when the table takes all of
        ``fmt``), by lookup in :func:`~convc.compiler.pwl_table.pwl_lut` (built
        once per run) when the table's input is at most 16 bits."""
        t = self.table(i, what)
        if t.in_fmt.width > PWL_LUT_MAX_BITS:
            return pwl_eval(t, x)
        lut = self.image.luts.get(i)
        if lut is None:
            y, clamped = pwl_lut(t)
            lut = self.image.luts[i] = (y, clamped, bool(clamped.any()))
        y, clamped, any_clamped = lut
        lo, hi = t.in_fmt.min_int, t.in_fmt.max_int
        if (fmt is None or fmt.min_int < lo or fmt.max_int > hi) and x.size and (
                int(x.min()) < lo or int(x.max()) > hi):
            raise ValueError(f"pwl_eval: input codes outside {t.in_fmt}")
        idx = x - lo
        return y.take(idx), (int(np.count_nonzero(clamped.take(idx))) if any_clamped else 0)


def word_fmt(bits: int) -> QFormat:
    """The integer format of a record's ``bits`` (codes only: frac 0)."""
    lo, hi = isa.limit("bits")
    if not lo <= bits <= hi:
        raise ValueError(f"record bits={bits} outside {lo}..{hi}")
    return QFormat(bits, 0)

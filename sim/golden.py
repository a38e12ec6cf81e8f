r"""The fast, bit-exact golden model of the accelerator.

:func:`run` executes a compiled :class:`~convc.compiler.program.Program` on a
batch of quantized inputs exactly as the pseudo-code of
:mod:`convc.compiler.isa` says, with every arithmetic rule taken from
:mod:`convc.compiler.numeric` (``requantize``, ``saturate``, ``round_shift``,
``pwl_eval``, ``check_acc``).  It is vectorized over the batch with numpy;
:mod:`convc.sim.golden_naive` is the slow, literal version the tests compare it to,
word for word.

Memory
------
Memory holds *signed codes*.  The constant image (16-bit two's-complement
words: weights, biases, lists, tables) is the same for every image and no
record may write it (checked), so it is kept once; each image has its own
copy of the words after it (``int16``), where the input codes are written at
``program.input.addr`` and every record writes the codes it produces.
Input-map lists and PWL tables are read from the raw (unsigned) image words
with the :mod:`~convc.compiler.isa` conventions.

Batches and threads
-------------------
Images are independent, so they run in batches (:func:`auto_batch`: a
record's temporaries stay within a few MiB, buffers the allocator reuses
instead of fresh pages), several batches side by side on threads with one
BLAS thread each; a single batch (one large frame) gives the threads to BLAS.
What every batch shares is computed once per run: the record groups, each
group's stacked weights, and each PWL table evaluated on all 2**16 input
codes (:func:`~convc.compiler.numeric.pwl_lut`; a lookup then replaces the
segment search, with the same outputs and clamp counts).

Convolution
-----------
``OP_FC`` records are ``OP_CONV`` records restricted to 1x1 kernels, stride
1, no pad, no upsampling and no pooling (checked), and run exactly the same way once their
input-major weights (``W[o, j]`` at ``w_addr + j*ld + o``) are read into
the same ``(n_out, n_in)`` matrix.

A CONV record computes only the conv outputs its row band's pooling windows
need (as the pseudo-code says): the input band those outputs read (rows and
columns of the map upsampled by ``2**up``, stored row ``y >> up``) is gathered
once, laid out as im2col columns by ``K*K`` block copies, and multiplied by
the weight matrix, in chunks of images / rows that bound temporary memory.
Records of one layer that read the same band (output groups, FC column
groups) run together: one im2col and one product per distinct input-map
list, their weight matrices stacked (a tall product runs several times faster
than one per record).  Records are grouped across a layer's run of records
only when the run's writes miss its input and each other (then any order
gives the same memory); otherwise only neighbours are (see :func:`_steps`).

The product is done in float64 (BLAS) when that is exact
(:func:`f64_exact`): every product ``w*x`` and every partial sum of a dot
product of length ``L = n_in*K*K`` is an integer of magnitude at most
``max|w| * 2**15 * L`` (``max|w|`` over the group's weights; every memory
word is a 16-bit code, so ``|x| <= 2**15``); if that bound is below
``2**53`` every intermediate float64 value is an exactly representable
integer, whatever the summation order (FMA included), so the result is
exact.  The bound is proved per group from the weights and the word format
before any data is seen; it holds for every ``L < 2**23``.  Otherwise the
product is done in int64, exact because ``|acc| <= max|w| * 2**15 * L +
|bias term| < 2**63`` (checked; ``OverflowError`` otherwise).

Accumulators are exact (not wrapped to 48 bits); every value an accumulator
holds at the end of a sum that leaves the signed 48-bit range is counted with
``check_acc`` as an overflow (with two's-complement wrap-around only the final
value matters).  Checked accumulators: the conv sum, the average-pooling
product, and in LCN the two window sums, ``v*v``, the frame-mean sum and
``v*r``.

LCN scratch
-----------
The isa says ``v`` and ``s`` "may be kept in scratch memory at scratch_addr
(C*H*W + H*W words)".  This model writes them there: ``v`` (``in_c`` maps of
``in_h x in_w``) at ``scratch_addr``, ``s`` (one map) right after, then ``y``
at ``out_addr``.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import ThreadpoolController

from convc.compiler import isa
from convc.compiler.numeric import (
    PWL_LUT_MAX_BITS,
    PWLTable,
    QFormat,
    check_acc,
    pwl_eval,
    pwl_lut,
    requantize,
    round_shift,
    saturate,
    signed_range,
)
from convc.compiler.program import Program, Region

__all__ = ["GoldenResult", "auto_batch", "f64_exact", "run"]

#: A memory word holds a signed code of at most this many bits.
_WORD_MIN, _WORD_MAX = signed_range(isa.WORD_BITS)
#: float64 represents every integer of magnitude below this exactly.
_F64_EXACT = 1 << 53
_I64_LIMIT = 1 << 63
#: Largest im2col block (elements) built at once; bounds temporary memory
#: (2 MiB of float64: buffers the allocator reuses, no fresh pages to fault in).
_CHUNK_ELEMS = 1 << 18
#: Per-image memory words: every word is a signed 16-bit code.
_WORD_DTYPE = np.int16
#: Largest per-batch temporary (elements) that :func:`auto_batch` aims for:
#: 1 MiB of int64, small enough for buffers that the allocator reuses.
_BATCH_ELEMS = 1 << 17
#: Stacked weight matrices up to this many elements are widened once per run;
#: larger ones a column block at a time (64 MiB of float64).
_WEIGHT_ELEMS = 1 << 23


@dataclass
class GoldenResult:
    """The state after a run.

    The constant image (weights, lists, tables) is the same for every image
    and a run never writes it, so it is kept once (``const``) and only the
    words from ``base`` on are kept per image (``data``).

    Attributes
    ----------
    data : ndarray of int, shape (N, memory_words - base)
        Signed codes of the words ``base ..`` after the run.
    saturations : dict of str to int
        Per layer name, clamps counted by the numeric functions, summed over
        the layer's records and the batch.
    overflows : dict of str to int
        Per layer name, accumulator values outside signed 48 bits.
    base : int
        The first word kept per image (the end of the constant image).
    const : ndarray of int, shape (base,)
        Signed codes of the words ``0 .. base-1``.
    """

    data: np.ndarray
    saturations: dict[str, int] = field(default_factory=dict)
    overflows: dict[str, int] = field(default_factory=dict)
    base: int = 0
    const: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def memory(self) -> np.ndarray:
        """Signed codes of every word, ``(N, memory_words)`` int64 (built on
        each call: the constant image is repeated per image)."""
        n = self.data.shape[0]
        full = np.empty((n, self.base + self.data.shape[1]), dtype=np.int64)
        full[:, :self.base] = self.const
        full[:, self.base:] = self.data
        return full

    def region(self, region: Region) -> np.ndarray:
        """The codes of ``region``, shape ``(N, *region.shape)``, int64."""
        words = self.base + self.data.shape[1]
        if not (0 <= region.addr and region.addr + region.words <= words):
            raise ValueError(f"region {region.name!r} at {region.addr:#x} ({region.words} words) "
                             f"is outside memory ({words} words)")
        lo, hi = region.addr, region.addr + region.words
        if lo >= self.base:
            out = self.data[:, lo - self.base:hi - self.base].astype(np.int64)
        else:
            out = self.memory[:, lo:hi]
        return out.reshape((self.data.shape[0], *region.shape))


# ----------------------------------------------------------------------------
# exact matrix products
# ----------------------------------------------------------------------------
def _max_abs(a: np.ndarray) -> int:
    return int(np.abs(a).max()) if a.size else 0


def f64_exact(max_a: int, max_b: int, length: int) -> bool:
    r"""Whether float64 computes every dot product of ``length`` terms
    ``a_i * b_i`` exactly, for integers ``|a_i| <= max_a``, ``|b_i| <= max_b``.

    Every product and every partial sum, in any order (FMA included), is an
    integer of magnitude at most :math:`B = \max|a| \cdot \max|b| \cdot L`.
    float64 has a 53-bit significand, so it represents every integer of
    magnitude below :math:`2^{53}`; if :math:`B < 2^{53}` no rounding ever
    happens and the float64 result is the exact integer.
    """
    return max_a * max_b * length < _F64_EXACT


def _exact_matmul(a: np.ndarray, b: np.ndarray, max_a: int, max_b: int) -> np.ndarray:
    """Exact integer ``a @ b`` (int64 result) for int64 ``a`` (M, L), ``b`` (L, n),
    ``max_a`` / ``max_b`` bounding their magnitudes.

    float64 (BLAS) when :func:`f64_exact` proves it exact, else int64 (exact
    below ``2**63``, which is checked).
    """
    if f64_exact(max_a, max_b, a.shape[1]):
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    if max_a * max_b * a.shape[1] >= _I64_LIMIT:
        raise OverflowError(f"a dot product of length {a.shape[1]} may reach "
                            f"{max_a * max_b * a.shape[1]}, beyond int64")
    return a.astype(np.int64) @ b.astype(np.int64)


@dataclass
class _Image:
    """A program's constant image, read once for all batches: ``raw``
    (unsigned words: lists, tables, bias halves), ``const`` (signed codes:
    weights, LCN windows), the PWL tables and the grouped records."""

    program: Program
    raw: np.ndarray
    const: np.ndarray
    tables: list[PWLTable]
    words: int
    #: the records to run, grouped (see :func:`_steps`)
    steps: list
    #: per first record index, the plan of a conv group (built by the first
    #: batch that runs it; batches in other threads may build it again, the same)
    groups: dict = field(default_factory=dict)
    #: per table index, the table evaluated on every input code (see :func:`pwl_lut`)
    luts: dict = field(default_factory=dict)
    #: keep the group plans for later batches (with one batch, each plan's
    #: float64 weights are freed after use)
    keep_plans: bool = True

    @classmethod
    def read(cls, program: Program) -> "_Image":
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
                   int(program.memory_words), _steps(list(program.instrs)))


@dataclass
class _ConvGroup:
    """What every batch of a conv group shares: the passes, the conv rows /
    columns the pooling windows need (``ys``, ``xs``; window positions
    ``r_pos``, ``c_pos``; ``dense`` when the windows tile them exactly), and
    per distinct input-map list the stacked weight matrix of its passes
    (``(maps, wm, cuts, members)``)."""

    passes: list
    ys: np.ndarray
    xs: np.ndarray
    r_pos: np.ndarray
    c_pos: np.ndarray
    dense: bool
    classes: list


class _Weights:
    """The stacked weight matrix of a group's passes that share a list,
    ``(rows, L)`` of ``dtype``, as column blocks of ``block`` columns: one
    block (built once) when small, else widened from the int16 image block
    by block on each use, so a large layer never holds its float64 copy."""

    def __init__(self, parts: list[np.ndarray], dtype, L: int, block: int):
        self.parts, self.dtype, self.L, self.block = parts, np.dtype(dtype), L, block
        self._whole = np.concatenate(parts).astype(dtype) if block >= L else None

    def blocks(self):
        """``(l0, l1, W[:, l0:l1])`` for every column block."""
        if self._whole is not None:
            yield 0, self.L, self._whole
            return
        for l0 in range(0, self.L, self.block):
            l1 = min(self.L, l0 + self.block)
            yield l0, l1, np.concatenate([p[:, l0:l1] for p in self.parts]).astype(self.dtype)


@dataclass
class _ConvPass:
    """The constants of one CONV / FC record, read from the image.

    ``wq`` is (n_out, n_in*K*K) in the conv layout (row ``o``, column
    ``(j*K + p)*K + q``); ``bterm`` is ``B << bias_shift`` (n_out,)."""

    ins: isa.Instr
    lst: np.ndarray
    wq: np.ndarray      # int16 view of the image (no copy: FC layers hold tens of millions)
    bterm: np.ndarray
    wmax: int           # max |w|


class _Machine:
    """Memory, constants, tables and counters of one run.

    Words below ``base`` (the constant image) are read from ``const``; the
    words from ``base`` on are kept per image in ``data`` (int16: every word
    is a signed 16-bit code).
    """

    def __init__(self, image: "_Image", x: np.ndarray, data: np.ndarray):
        """``x``: checked input codes (n, *input.shape) int64 (see
        :func:`_input_codes`); ``data``: the (n, memory_words - base) rows of
        the result this machine fills."""
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
        self._check(addr, n, what)
        if addr >= self.base:
            return self.data[:, addr - self.base:addr - self.base + n].astype(np.int64)
        return self.read(np.arange(addr, addr + n))

    def write(self, addr, values: np.ndarray, what: str) -> None:
        """Write ``values`` (N, k) at ``addr`` (an int: k contiguous words; or
        an int array of k addresses)."""
        if np.ndim(addr) == 0:
            addr = int(addr)
            self._check_write(addr, addr + values.shape[1], what)
            self.data[:, addr - self.base:addr - self.base + values.shape[1]] = values
        else:
            addr = np.asarray(addr, dtype=np.int64)
            if addr.size:
                self._check_write(int(addr.min()), int(addr.max()) + 1, what)
                self.data[:, addr - self.base] = values

    # -- checks ---------------------------------------------------------------
    def _check(self, addr: int, n: int, what: str) -> None:
        if n > 0 and not (0 <= addr and addr + n <= self.words):
            raise ValueError(f"{what}: [{addr:#x}, {addr + n:#x}) outside memory ({self.words} words)")

    def _check_const(self, addr: int, n: int, what: str) -> None:
        if n > 0 and not (0 <= addr and addr + n <= self.raw.size):
            raise ValueError(f"{what}: [{addr:#x}, {addr + n:#x}) outside the constant image "
                             f"({self.raw.size} words)")

    def _check_write(self, lo: int, hi: int, what: str) -> None:
        """Writes go to [lo, hi); they must be in memory and miss the image
        (constants are read from the image, not from memory)."""
        self._check(lo, hi - lo, what)
        if hi > lo and lo < self.raw.size:
            raise ValueError(f"{what}: writes [{lo:#x}, {hi:#x}) into the constant image "
                             f"(0..{self.raw.size:#x})")

    def table(self, i: int, what: str) -> PWLTable:
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
        ``fmt``), by lookup in :func:`~convc.compiler.numeric.pwl_lut` (built
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

    # -- convolution ----------------------------------------------------------------
    def conv_pass(self, ins: isa.Instr) -> _ConvPass:
        """Check one CONV / FC record and read its list, weights and bias."""
        K, n_in, n_out = ins.kernel, ins.n_in, ins.n_out
        L = n_in * K * K
        self._check_const(ins.list_addr, n_in, "input-map list")
        lst = self.raw[ins.list_addr:ins.list_addr + n_in]
        if n_in and int(lst.max()) >= ins.in_c:
            raise ValueError(f"input-map list entry {int(lst.max())} >= in_c={ins.in_c}")
        self._check_const(ins.w_addr, ins.weight_words, "weights")
        if ins.op == isa.OP_FC and ins.w_addr % isa.FC_ALIGN:
            raise ValueError(f"OP_FC weights at word {ins.w_addr}: not a multiple of "
                             f"isa.FC_ALIGN = {isa.FC_ALIGN}")
        nb = isa.bias_offset(ins.op, n_in, n_out, K)
        # the isa layout as a view of the image (no copy), one row an output
        wq = isa.weight_view(ins.op, self.const[ins.w_addr:ins.w_addr + nb], n_in, n_out, K).reshape(n_out, L)
        bw = self.raw[ins.w_addr + nb:ins.w_addr + nb + 2 * n_out]
        b = isa.join_bias(bw[0::2], bw[1::2])
        bterm = round_shift(b, -ins.bias_shift)  # B << bias_shift, exact (raises past int64)
        # Memory words are signed 16-bit, so |dot| <= max|w| * 2**15 * L; int64 must hold it.
        wmax = max(-int(wq.min()), int(wq.max())) if wq.size else 0   # no int16 abs (-2**15)
        if wmax * (1 << (isa.WORD_BITS - 1)) * L + _max_abs(bterm) >= _I64_LIMIT:
            raise OverflowError("conv accumulator may exceed int64")
        return _ConvPass(ins, lst, wq, bterm, wmax)

    def conv_group(self, first: int, group: list[isa.Instr]) -> list[tuple[int, int]]:
        """Execute the CONV / FC records ``group`` (the first being record
        ``first``) that read the same input band (see :func:`_steps`);
        returns (saturations, overflows) per record.

        The records' dot products are computed together: records with the
        same input-map list share one im2col and one matrix product, their
        weight matrices stacked.
        """
        plan = self.image.groups.get(first)
        if plan is None:
            plan = self._plan_group(group)
            if self.image.keep_plans:
                self.image.groups[first] = plan
        if plan is None:   # no rows
            return [(0, 0)] * len(group)
        accs = self._conv_dots(group[0], plan)
        return [self._conv_finish(p, acc, plan) for p, acc in zip(plan.passes, accs)]

    def _plan_group(self, group: list[isa.Instr]) -> _ConvGroup | None:
        ins0 = group[0]
        pk, ps = _conv_geometry(ins0)
        for ins in group[1:]:
            _conv_geometry(ins)
        if ins0.rows == 0:
            return None
        passes = [self.conv_pass(ins) for ins in group]
        self._check(ins0.in_addr, ins0.in_c * ins0.in_h * ins0.in_w, "conv input")
        # the conv rows / columns the band's pooling windows need
        r_idx = np.arange(ins0.row0, ins0.row0 + ins0.rows)[:, None] * ps + np.arange(pk)
        c_idx = np.arange(ins0.out_w)[:, None] * ps + np.arange(pk)
        ys, r_pos = np.unique(r_idx, return_inverse=True)
        xs, c_pos = np.unique(c_idx, return_inverse=True)
        # passes with the same list: one im2col, weights stacked
        by_list: dict[tuple[int, ...], list[int]] = {}
        for i, p in enumerate(passes):
            if p.ins.n_out:
                by_list.setdefault(tuple(int(j) for j in p.lst), []).append(i)
        classes = []
        K = ins0.kernel
        for lst, members in by_list.items():
            maps = np.asarray(lst, dtype=np.int64)
            L = maps.size * K * K
            # float64 when exact for any 16-bit memory word (f64_exact), else int64
            exact = f64_exact(max(passes[i].wmax for i in members), 1 << (isa.WORD_BITS - 1), L)
            cuts = np.cumsum([0] + [passes[i].ins.n_out for i in members])
            rows = int(cuts[-1])
            # weights over _WEIGHT_ELEMS stay in the image as int16 and are widened
            # a block of columns at a time (a VGG fc6 matrix is 100M weights)
            block = L if rows * L <= _WEIGHT_ELEMS else max(1, _WEIGHT_ELEMS // rows)
            wm = _Weights([passes[i].wq for i in members], np.float64 if exact else np.int64, L, block)
            classes.append((maps, wm, cuts, members))
        return _ConvGroup(passes, ys, xs, r_pos.reshape(r_idx.shape), c_pos.reshape(c_idx.shape),
                          pk == ps, classes)

    def _conv_finish(self, p: _ConvPass, dots: np.ndarray, plan: _ConvGroup) -> tuple[int, int]:
        """Bias, activation, pooling and write-back of one record, from its
        exact dot products ``dots`` (n_out, N, ny, nx)."""
        ins, n = p.ins, self.n
        if ins.n_out == 0:
            return 0, 0
        fmt = _word_fmt(ins.bits)
        acc = dots.transpose(1, 0, 2, 3) + p.bterm[None, :, None, None]
        ovf = check_acc(acc)
        z, sat = requantize(acc, ins.acc_shift, fmt)
        a, s2 = _activation(self, ins, z, fmt)
        sat += s2

        if ins.pool == isa.POOL_NONE:   # 1x1 windows
            out = a
        else:
            pooled = _pool(a, ins.pool_k, plan, np.add if ins.pool == isa.POOL_AVG else np.maximum)
            if ins.pool == isa.POOL_AVG:
                prod = pooled * ins.avg_mul
                ovf += check_acc(prod)
                out, s3 = requantize(prod, ins.avg_shift, fmt)
                sat += s3
            else:
                out = pooled

        # write out[o0+o] rows row0.. of the layer's out_h x out_w maps
        hw = ins.out_h * ins.out_w
        addr = (ins.out_addr + (ins.o0 + np.arange(ins.n_out))[:, None] * hw
                + ins.row0 * ins.out_w + np.arange(ins.rows * ins.out_w)[None, :])
        self.write(addr.ravel(), out.reshape(n, -1), "conv output")
        return int(sat), int(ovf)

    def _band(self, ins: isa.Instr, maps: np.ndarray, ys: np.ndarray, xs: np.ndarray,
              i0: int, i1: int) -> np.ndarray:
        """Input maps ``maps`` of images ``i0:i1`` over the rows / columns the
        conv outputs ``ys`` x ``xs`` read, zero padded: (i1-i0, len(maps), BH,
        BW) float64, band row 0 being input row ``ys[0]*S - P`` (likewise
        columns).  Rows and columns are those of the upsampled map
        (``up_h x up_w``): row ``y`` is stored row ``y >> up``."""
        K, S, P, H, W, up = ins.kernel, ins.stride, ins.pad, ins.in_h, ins.in_w, ins.up
        iy0, iy1 = int(ys[0]) * S - P, int(ys[-1]) * S - P + K
        ix0, ix1 = int(xs[0]) * S - P, int(xs[-1]) * S - P + K
        vy0, vy1 = max(iy0, 0), min(iy1, ins.up_h)
        vx0, vx1 = max(ix0, 0), min(ix1, ins.up_w)
        band = np.zeros((i1 - i0, maps.size, iy1 - iy0, ix1 - ix0), dtype=np.float64)
        if vy1 > vy0 and vx1 > vx0:
            addr = (ins.in_addr + maps[:, None, None] * (H * W)
                    + (np.arange(vy0, vy1) >> up)[None, :, None] * W
                    + (np.arange(vx0, vx1) >> up)[None, None, :])
            if int(addr.min()) >= self.base:
                band[:, :, vy0 - iy0:vy1 - iy0, vx0 - ix0:vx1 - ix0] = self.data[i0:i1, addr - self.base]
            else:
                band[:, :, vy0 - iy0:vy1 - iy0, vx0 - ix0:vx1 - ix0] = self.read(addr)[i0:i1]
        return band

    def _conv_dots(self, ins: isa.Instr, plan: _ConvGroup) -> list[np.ndarray]:
        """``sum_{j,p,q} W[o,j,p,q] X[j][y*S+p-P][x*S+q-P]`` for the conv outputs
        ``plan.ys`` x ``plan.xs`` of every pass: (n_out, N, len(ys), len(xs))
        int64 each, exact.

        One matrix product per distinct input-map list, with all its passes'
        outputs as rows (tall products run several times faster than one per
        record), over im2col columns built in chunks of images / rows that
        bound temporary memory.
        """
        n, K, S = self.n, ins.kernel, ins.stride
        ys, xs = plan.ys, plan.xs
        ny, nx = ys.size, xs.size
        sel_r = (ys - ys[0]) * S        # band row of each needed conv row's window
        sel_c = (xs - xs[0]) * S
        accs = [np.empty((p.ins.n_out, n, ny, nx), dtype=np.int64) for p in plan.passes]
        for maps, wm, cuts, members in plan.classes:
            per_row = max(nx * maps.size * K * K, 1)
            rows_step = max(1, min(ny, _CHUNK_ELEMS // per_row))
            imgs_step = max(1, _CHUNK_ELEMS // (per_row * ny)) if rows_step == ny else 1
            for i0 in range(0, n, imgs_step):
                i1 = min(n, i0 + imgs_step)
                band = self._band(ins, maps, ys, xs, i0, i1)
                for y0 in range(0, ny, rows_step):
                    y1 = min(ny, y0 + rows_step)
                    cols = _im2col(band, K, sel_r[y0:y1], sel_c, wm.dtype)
                    # partial products over column blocks add up exactly: every
                    # partial sum is within the same f64_exact bound
                    prod = None
                    for l0, l1, w in wm.blocks():
                        part = w @ cols[l0:l1]
                        if prod is None:
                            prod = part
                        else:
                            prod += part
                    prod = prod.reshape(-1, i1 - i0, y1 - y0, nx)
                    for k, i in enumerate(members):
                        accs[i][:, i0:i1, y0:y1] = prod[cuts[k]:cuts[k + 1]]
        return accs

    def lcn(self, ins: isa.Instr) -> tuple[int, int]:
        """Execute one OP_LCN record; returns (saturations, overflows)."""
        fmt = _word_fmt(ins.bits)
        isa.check_up(ins)
        K, C, H, W = ins.kernel, ins.in_c, ins.in_h, ins.in_w
        if K < 1:
            raise ValueError("LCN window must be at least 1x1")
        h = K // 2
        n, hw = self.n, H * W
        self._check_const(ins.w_addr, K * K, "LCN window")
        g = self.const[ins.w_addr:ins.w_addr + K * K].astype(np.int64)
        self.table(ins.pwl_id, "LCN sqrt")
        self.table(ins.pwl2_id, "LCN reciprocal")
        x = self.read_span(ins.in_addr, C * hw, "LCN input").reshape(n, C, H, W)
        sat = ovf = 0

        # sum_{c,p,q} G[p,q] X[c][..] = sum_{p,q} G[p,q] (sum_c X[c])[..]: exact integers
        m_acc = _window_sum(x.sum(axis=1), g, K, h)
        ovf += check_acc(m_acc)
        m, c1 = requantize(m_acc, ins.acc_shift, fmt)
        v, c2 = saturate(x - m[:, None], fmt)
        vv = v * v
        ovf += check_acc(vv)
        sq, c3 = requantize(vv, ins.sq_shift, fmt)
        s2_acc = _window_sum(sq.sum(axis=1), g, K, h)
        ovf += check_acc(s2_acc)
        s2, c4 = requantize(s2_acc, ins.s2_shift, fmt)
        s, c5 = self.pwl(ins.pwl_id, s2, fmt, "LCN sqrt")
        # frame mean: per image, exact Python ints (sum(s*mul) = mul*sum(s));
        # an object array makes the numeric functions raise rather than wrap past int64
        total = np.array([int(t) * ins.mean_mul for t in s.reshape(n, -1).sum(axis=1)], dtype=object)
        ovf += check_acc(total)
        mean, c8 = saturate(np.asarray(round_shift(total, ins.mean_shift), dtype=np.int64), fmt)
        sat += c8
        d = np.maximum(np.maximum(s, mean[:, None, None]), ins.eps)
        r, c6 = self.pwl(ins.pwl2_id, d, None, "LCN reciprocal")
        vr = v * r[:, None]
        ovf += check_acc(vr)
        y, c7 = requantize(vr, ins.y_shift, fmt)
        sat += c1 + c2 + c3 + c4 + c5 + c6 + c7

        sa = ins.scratch_addr
        self._check_write(sa, sa + C * hw + hw, "LCN scratch")
        self._check_write(ins.out_addr, ins.out_addr + C * hw, "LCN output")
        self.write(sa, v.reshape(n, -1), "LCN scratch")
        self.write(sa + C * hw, s.reshape(n, -1), "LCN scratch")
        self.write(ins.out_addr, y.reshape(n, -1), "LCN output")
        return int(sat), int(ovf)


def _check_fc(ins: isa.Instr) -> None:
    """OP_FC is OP_CONV restricted to 1x1 kernels, stride 1, no pad, no pool (and no
    upsampling: :func:`~convc.compiler.isa.check_up`)."""
    isa.check_up(ins)
    if (ins.kernel, ins.stride, ins.pad, ins.pool) != (1, 1, 0, isa.POOL_NONE):
        raise ValueError(f"OP_FC needs kernel = stride = 1, pad = 0, no pooling; got kernel "
                         f"{ins.kernel}, stride {ins.stride}, pad {ins.pad}, pool {ins.pool}")


def _word_fmt(bits: int) -> QFormat:
    """The integer format of a record's ``bits`` (codes only: frac 0)."""
    lo, hi = isa.limit("bits")
    if not lo <= bits <= hi:
        raise ValueError(f"record bits={bits} outside {lo}..{hi}")
    return QFormat(bits, 0)


def _conv_geometry(ins: isa.Instr) -> tuple[int, int]:
    """Validate a CONV record's sizes; return the pooling window and stride."""
    isa.check_up(ins)
    if ins.kernel < 1 or ins.stride < 1:
        raise ValueError(f"conv kernel {ins.kernel} / stride {ins.stride} must be >= 1")
    if ins.pool == isa.POOL_NONE:
        if (ins.pool_k, ins.pool_s) != (1, 1):
            raise ValueError("POOL_NONE needs pool_k = pool_s = 1")
    elif ins.pool in (isa.POOL_MAX, isa.POOL_AVG):
        if ins.pool_k < 1 or ins.pool_s < 1:
            raise ValueError("pool_k and pool_s must be >= 1")
    else:
        raise ValueError(f"unknown pool mode {ins.pool}")
    if ins.act not in isa.ACT_NAMES:
        raise ValueError(f"unknown activation {ins.act}")
    ch, cw = ins.conv_h, ins.conv_w
    if ch < 1 or cw < 1:
        raise ValueError(f"conv output {ch}x{cw} is empty")
    ph, pw = (ch - ins.pool_k) // ins.pool_s + 1, (cw - ins.pool_k) // ins.pool_s + 1
    if ch < ins.pool_k or cw < ins.pool_k or (ph, pw) != (ins.out_h, ins.out_w):
        raise ValueError(f"out {ins.out_h}x{ins.out_w} is not the pooled conv output "
                         f"({ch}x{cw} pooled {ins.pool_k}/{ins.pool_s})")
    if ins.row0 + ins.rows > ins.out_h:
        raise ValueError(f"rows {ins.row0}..{ins.row0 + ins.rows - 1} beyond out_h={ins.out_h}")
    return ins.pool_k, ins.pool_s


def _im2col(band: np.ndarray, K: int, sel_r: np.ndarray, sel_c: np.ndarray, dtype) -> np.ndarray:
    """Columns for a matrix product: (m*K*K, n*len(sel_r)*len(sel_c)) of ``dtype``,
    row ``(j*K + p)*K + q`` (the weight layout), column ``(i*ny + y)*nx + x``
    holding ``band[i, j, sel_r[y] + p, sel_c[x] + q]``.

    Built by K*K block copies whose inner rows are contiguous (basic slicing
    when the needed rows / columns are evenly spaced, which they are unless
    pool_s > pool_k); several times faster than gathering a strided
    sliding-window view.
    """
    n, m = band.shape[:2]
    bt = band.transpose(1, 0, 2, 3)
    cols = np.empty((m, K, K, n, sel_r.size, sel_c.size), dtype=dtype)
    rs, cs = _as_slice(sel_r), _as_slice(sel_c)
    for p in range(K):
        rows = bt[:, :, _shift(rs, p)] if rs is not None else bt[:, :, sel_r + p]
        for q in range(K):
            cols[:, p, q] = rows[..., _shift(cs, q)] if cs is not None else rows[..., sel_c + q]
    return cols.reshape(m * K * K, -1)


def _pool(a: np.ndarray, pk: int, plan: _ConvGroup, op) -> np.ndarray:
    """Reduce every pooling window of ``a`` (n, o, ny, nx) with ``op``
    (``np.maximum`` or ``np.add``): (n, o, rows, out_w).

    When the windows tile the rows / columns (``plan.dense``), window
    element ``(p, q)`` of every window is the strided slice
    ``a[..., p::pk, q::pk]``: pk*pk elementwise ops, no gather.
    """
    if plan.dense:
        out = a[..., 0::pk, 0::pk].copy()
        for p in range(pk):
            for q in range(pk):
                if p or q:
                    op(out, a[..., p::pk, q::pk], out=out)
        return out
    wins = a[:, :, plan.r_pos[:, :, None, None], plan.c_pos[None, None, :, :]]
    return wins.sum(axis=(3, 5)) if op is np.add else wins.max(axis=(3, 5))


def _shift(sl: slice, d: int) -> slice:
    return slice(sl.start + d, sl.stop + d, sl.step)


def _as_slice(idx: np.ndarray) -> slice | None:
    """``idx`` (increasing, non-empty) as an equivalent slice, if it is an
    arithmetic progression."""
    if idx.size == 1:
        return slice(int(idx[0]), int(idx[0]) + 1)
    step = int(idx[1] - idx[0])
    if step > 0 and np.all(np.diff(idx) == step):
        return slice(int(idx[0]), int(idx[-1]) + 1, step)
    return None


def _activation(m: _Machine, ins: isa.Instr, z: np.ndarray, fmt: QFormat) -> tuple[np.ndarray, int]:
    if ins.act == isa.ACT_NONE:
        return z, 0
    if ins.act == isa.ACT_RELU:
        return np.maximum(z, 0), 0
    if ins.act == isa.ACT_ABS:
        return saturate(np.abs(z), fmt)
    return m.pwl(ins.pwl_id, z, fmt, "conv activation")


def _window_sum(p: np.ndarray, g: np.ndarray, K: int, h: int) -> np.ndarray:
    """``sum_{p,q} G[p,q] P[y+p-h][x+q-h]`` of (N, H, W) int64 maps, zero outside."""
    n, H, W = p.shape
    pad = np.zeros((n, 1, H + K - 1, W + K - 1), dtype=np.int64)
    pad[:, 0, h:h + H, h:h + W] = p
    max_p, max_g = _max_abs(p), _max_abs(g)
    out = np.empty((n, H, W), dtype=np.int64)
    rows_step = max(1, min(H, _CHUNK_ELEMS // max(W * K * K, 1)))
    imgs_step = max(1, _CHUNK_ELEMS // max(H * W * K * K, 1)) if rows_step == H else 1
    ys, xs = np.arange(H), np.arange(W)
    for i0 in range(0, n, imgs_step):
        i1 = min(n, i0 + imgs_step)
        for y0 in range(0, H, rows_step):
            y1 = min(H, y0 + rows_step)
            cols = _im2col(pad[i0:i1], K, ys[y0:y1], xs, np.int64)      # (K*K, pixels)
            out[i0:i1, y0:y1] = _exact_matmul(g[None, :], cols, max_g, max_p).reshape(
                i1 - i0, y1 - y0, W)
    return out


# ----------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------
def run(program: Program, x_codes: np.ndarray, *, batch: int | None = None,
        threads: int | None = None) -> GoldenResult:
    """Run ``program`` on a batch of input codes, bit-exactly.

    Parameters
    ----------
    program : Program
    x_codes : array_like of int, shape (N, *program.input.shape)
        Quantized inputs (codes of ``program.input.fmt``).
    batch : int, optional
        Images run together (default :func:`auto_batch`: temporaries of a few
        MiB, which stay in cache-friendly, reused buffers).
    threads : int, optional
        Threads to use (default: the cores this process may run on).  Several
        batches run side by side, one thread each; a single batch (one large
        frame) gives its threads to BLAS.  ``threads=1`` runs everything,
        BLAS included, on one thread.

    Returns
    -------
    GoldenResult
        Memory after the run, and per layer name the saturation and
        accumulator-overflow counts (summed over records and batch).

    Raises
    ------
    ValueError
        A malformed program: an access outside memory, a write into the
        constant image, inconsistent record sizes, a missing table, no
        ``OP_END``, an ``OP_FC`` record that is not a 1x1 convolution, or a
        PWL input outside its 16-bit range.
    OverflowError
        An intermediate value beyond int64 (only with absurd shifts).
    """
    image = _Image.read(program)
    x = _input_codes(program, x_codes)
    n = x.shape[0]
    base = image.raw.size
    data = np.empty((n, image.words - base), dtype=_WORD_DTYPE)
    step = max(1, int(batch) if batch else auto_batch(program))
    starts = list(range(0, n, step)) or [0]
    workers = max(1, min(int(threads) if threads else _cores(), len(starts)))
    image.keep_plans = len(starts) > 1

    def one(i0: int):
        return _run_batch(image, x[i0:i0 + step], data[i0:i0 + step])

    if threads == 1 or workers > 1:
        # one BLAS thread per worker: the workers are the parallelism
        with _blas_controller().limit(limits=1, user_api="blas"):
            if workers > 1:
                with ThreadPoolExecutor(workers) as pool:
                    counts = list(pool.map(one, starts))
            else:
                counts = [one(i0) for i0 in starts]
    else:
        counts = [one(i0) for i0 in starts]
    sats: dict[str, int] = {}
    ovfs: dict[str, int] = {}
    for s_b, o_b in counts:
        for k, v in s_b.items():
            sats[k] = sats.get(k, 0) + v
        for k, v in o_b.items():
            ovfs[k] = ovfs.get(k, 0) + v
    return GoldenResult(data=data, saturations=sats, overflows=ovfs, base=base, const=image.const)


def auto_batch(program: Program) -> int:
    """Images per batch: as many as keep one record's largest temporary (its
    int64 accumulators, or an LCN's maps) and the per-image memory within
    :data:`_BATCH_ELEMS` elements, at least 1."""
    per_image = program.memory_words - len(program.image)
    for ins in program.instrs:
        if ins.op in (isa.OP_CONV, isa.OP_FC):
            per_image = max(per_image, ins.n_out * max(ins.conv_h, 0) * max(ins.conv_w, 0))
        elif ins.op == isa.OP_LCN:
            per_image = max(per_image, 4 * ins.in_c * ins.in_h * ins.in_w)
    return max(1, _BATCH_ELEMS // max(per_image, 1))


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """The process's BLAS thread pools (found once: finding them takes
    milliseconds)."""
    return ThreadpoolController()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _input_codes(program: Program, x_codes) -> np.ndarray:
    """``x_codes`` checked against the input region: (N, *shape) int64."""
    reg = program.input
    x = np.asarray(x_codes)
    if x.dtype.kind not in "iu" and not (x.dtype == object):
        raise TypeError(f"x_codes must be integer codes, got dtype {x.dtype}")
    if x.ndim != 1 + len(reg.shape) or tuple(x.shape[1:]) != tuple(reg.shape):
        raise ValueError(f"x_codes shape {x.shape} is not (N, *{tuple(reg.shape)})")
    x = x.astype(np.int64)
    lo, hi = max(reg.fmt.min_int, _WORD_MIN), min(reg.fmt.max_int, _WORD_MAX)
    if x.size and (int(x.min()) < lo or int(x.max()) > hi):
        raise ValueError(f"x_codes outside the codes of {reg.fmt} / a 16-bit word")
    return x


def _run_batch(image: _Image, x: np.ndarray, data: np.ndarray):
    """Run every record on the images ``x``, filling ``data``; returns the
    per-layer (saturations, overflows) of this batch."""
    m = _Machine(image, x, data)
    sats: dict[str, int] = {}
    ovfs: dict[str, int] = {}
    program = image.program
    for kind, idx in image.steps:
        if kind == "lcn":
            counts = [m.lcn(program.instrs[idx[0]])]
        else:
            counts = m.conv_group(idx[0], [program.instrs[k] for k in idx])
        for k, (s, o) in zip(idx, counts):
            name = program.names[k]
            sats[name] = sats.get(name, 0) + s
            ovfs[name] = ovfs.get(name, 0) + o
    return sats, ovfs


def _steps(instrs: list[isa.Instr]) -> list[tuple[str, list[int]]]:
    """The records to run, in order, as ``("lcn", [i])`` and ``("conv",
    [i, j, ..])`` steps; the records of a conv step read the same input
    band and run together (:meth:`_Machine.conv_group`).

    A run of consecutive CONV / FC records of one layer (same input and
    output maps) whose writes miss the input and each other gives the same
    memory in any order, so its records are grouped by band wherever they
    stand in the run (a compiler may emit output groups outside bands);
    otherwise only neighbours with the same band are grouped.
    """
    steps: list[tuple[str, list[int]]] = []
    i = 0
    while True:
        if i == len(instrs):
            raise ValueError("the schedule has no OP_END record")
        ins = instrs[i]
        if ins.op == isa.OP_END:
            return steps
        if ins.op == isa.OP_NOP:
            i += 1
            continue
        if ins.op == isa.OP_LCN:
            steps.append(("lcn", [i]))
            i += 1
            continue
        if ins.op not in (isa.OP_CONV, isa.OP_FC):
            raise ValueError(f"unknown op {ins.op} in record {i}")
        j = i + 1
        while j < len(instrs) and _same_layer(ins, instrs[j]):
            j += 1
        run = list(range(i, j))
        for k in run:
            if instrs[k].op == isa.OP_FC:
                _check_fc(instrs[k])
        if _reorderable([instrs[k] for k in run]):
            groups: dict[tuple, list[int]] = {}
            for k in run:
                groups.setdefault(_band_key(instrs[k]), []).append(k)
            steps += [("conv", g) for g in groups.values()]
        else:
            g = [i]
            for k in run[1:]:
                if _band_key(instrs[k]) == _band_key(instrs[g[0]]) and not _writes_input(instrs[k - 1]):
                    g.append(k)
                else:
                    steps.append(("conv", g))
                    g = [k]
            steps.append(("conv", g))
        i = j


_BAND_KEYS = ("op", "in_addr", "in_c", "in_h", "in_w", "up", "kernel", "stride", "pad", "pool", "pool_k",
              "pool_s", "out_h", "out_w", "row0", "rows")
_LAYER_KEYS = ("op", "in_addr", "in_c", "in_h", "in_w", "up", "out_addr", "out_h", "out_w")


def _band_key(r: isa.Instr) -> tuple:
    """Records with equal keys read exactly the same input band (lists and
    weights may differ)."""
    return tuple(getattr(r, k) for k in _BAND_KEYS)


def _same_layer(a: isa.Instr, b: isa.Instr) -> bool:
    return b.op in (isa.OP_CONV, isa.OP_FC) and all(getattr(a, k) == getattr(b, k)
                                                     for k in _LAYER_KEYS)


def _reorderable(run: list[isa.Instr]) -> bool:
    """Whether the records of one layer (same input and output maps) may run
    in any order: none writes its input maps, and their output blocks (maps
    ``o0..`` x rows ``row0..``) do not overlap."""
    if any(_writes_input(r) for r in run):
        return False
    maps = max(r.o0 + r.n_out for r in run)
    rows = max(r.row0 + r.rows for r in run)
    if maps < 0 or min(min(r.o0, r.row0, r.n_out, r.rows) for r in run) < 0:
        return False
    cover = np.zeros((maps, rows), dtype=np.int32)
    for r in run:
        cover[r.o0:r.o0 + r.n_out, r.row0:r.row0 + r.rows] += 1
    return int(cover.max(initial=0)) <= 1


def _writes_input(r: isa.Instr) -> bool:
    """Whether CONV / FC record ``r`` writes a word of its own input maps (a
    later record of the same band must then wait for it; constants are never
    written)."""
    if r.n_out == 0 or r.rows == 0:
        return False
    lo, hi = r.in_addr, r.in_addr + r.in_c * r.in_h * r.in_w
    hw = r.out_h * r.out_w
    w_lo = r.out_addr + r.o0 * hw + r.row0 * r.out_w
    w_hi = r.out_addr + (r.o0 + r.n_out - 1) * hw + (r.row0 + r.rows) * r.out_w
    return w_lo < hi and lo < w_hi

r"""The fast, bit-exact golden model of the accelerator.

:func:`run` executes a compiled :class:`~convc.compiler.program.Program` on a
batch of quantized inputs exactly as the pseudo-code of
:mod:`convc.compiler.isa` says, with every arithmetic rule taken from
:mod:`convc.compiler.numeric` (``requantize``, ``saturate``, ``round_shift``,
``pwl_eval``, ``check_acc``).  It is vectorized over the batch with numpy;
:mod:`convc.sim.naive` is the slow, literal version the tests compare it to,
word for word.

Memory
------
Memory is an ``(N, memory_words)`` int64 array of *signed codes*: the
constant image (16-bit two's-complement words) is sign-extended into it, the
input codes are written at ``program.input.addr``, and every record writes
the codes it produces.  Input-map lists and PWL tables are read from the raw
(unsigned) image words with the :mod:`~convc.compiler.isa` conventions.

Constants (weights, biases, lists, LCN windows) are read from the image once
per record rather than per batch row; to make that equivalent to reading
memory, :func:`run` rejects a record that writes into the image.

Convolution
-----------
``OP_FC`` records are ``OP_CONV`` records restricted to 1x1 kernels, stride
1, no pad and no pooling (checked), and run exactly the same way once their
input-major weights (``W[o, j]`` at ``w_addr + j*ld + o``) are read into
the same ``(n_out, n_in)`` matrix.

A CONV record computes only the conv outputs its row band's pooling windows
need (as the pseudo-code says): the input band those outputs read is gathered
once, laid out as im2col columns by ``K*K`` block copies, and multiplied by
the weight matrix, in chunks of images / rows that bound temporary memory.
The product is done in float64 (BLAS) when that is exact: every product
``w*x`` and every partial sum of a dot product of length ``L = n_in*K*K`` is
an integer of magnitude at most ``max|w| * max|x| * L``; if that bound is
below ``2**53`` every intermediate float64 value is an exactly representable
integer, whatever the summation order (FMA included), so the result is
exact.  It holds for all 16-bit data with ``L < 2**23``.  Otherwise the
product is done in int64, exact because memory words are 16-bit so
``|acc| <= max|w| * 2**15 * L + |bias term| < 2**63`` (checked;
``OverflowError`` otherwise).

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

from dataclasses import dataclass, field

import numpy as np

from convc.compiler import isa
from convc.compiler.numeric import (
    PWLTable,
    QFormat,
    check_acc,
    pwl_eval,
    requantize,
    round_shift,
    saturate,
)
from convc.compiler.program import Program, Region

__all__ = ["GoldenResult", "run", "sign_extend"]

#: A memory word holds a signed code of at most this many bits.
_WORD_MIN, _WORD_MAX = -(1 << (isa.WORD_BITS - 1)), (1 << (isa.WORD_BITS - 1)) - 1
#: float64 represents every integer of magnitude below this exactly.
_F64_EXACT = 1 << 53
_I64_LIMIT = 1 << 63
#: Largest im2col block (elements) built at once; bounds temporary memory
#: (64 MiB of float64).
_CHUNK_ELEMS = 1 << 23


@dataclass
class GoldenResult:
    """The state after a run.

    Attributes
    ----------
    memory : ndarray of int64, shape (N, program.memory_words)
        Signed codes of every word after the run.
    saturations : dict of str to int
        Per layer name, clamps counted by the numeric functions, summed over
        the layer's records and the batch.
    overflows : dict of str to int
        Per layer name, accumulator values outside signed 48 bits.
    """

    memory: np.ndarray
    saturations: dict[str, int] = field(default_factory=dict)
    overflows: dict[str, int] = field(default_factory=dict)

    def region(self, region: Region) -> np.ndarray:
        """The codes of ``region``, shape ``(N, *region.shape)``."""
        words = self.memory[:, region.addr:region.addr + region.words]
        if words.shape[1] != region.words:
            raise ValueError(f"region {region.name!r} at {region.addr:#x} ({region.words} words) "
                             f"is outside memory ({self.memory.shape[1]} words)")
        return words.reshape((self.memory.shape[0], *region.shape))


def sign_extend(words) -> np.ndarray:
    """16-bit memory words (any integers, low 16 bits used) -> signed values."""
    w = np.asarray(words, dtype=np.int64) & 0xFFFF
    return (w ^ 0x8000) - 0x8000


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
def _max_abs(a: np.ndarray) -> int:
    return int(np.abs(a).max()) if a.size else 0


def _exact_matmul(a: np.ndarray, b: np.ndarray, max_a: int, max_b: int) -> np.ndarray:
    """Exact integer ``a @ b`` (int64 result) for int64 ``a`` (M, L), ``b`` (L, n),
    ``max_a`` / ``max_b`` bounding their magnitudes.

    float64 (BLAS) when ``max_a * max_b * L < 2**53`` -- then every partial
    sum is an integer float64 holds exactly -- else int64 (exact below
    ``2**63``, which is checked).
    """
    bound = max_a * max_b * a.shape[1]
    if bound < _F64_EXACT:
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    if bound >= _I64_LIMIT:
        raise OverflowError(f"a dot product of length {a.shape[1]} may reach {bound}, beyond int64")
    return a @ b


class _Machine:
    """Memory, constants, tables and counters of one run."""

    def __init__(self, program: Program, x_codes: np.ndarray):
        self.program = program
        image = np.asarray(program.image)
        if image.ndim != 1 or image.dtype.kind not in "iu":
            raise ValueError("program.image must be a 1-D integer array of words")
        image = image.astype(np.int64)
        if image.size and (int(image.min()) < 0 or int(image.max()) > 0xFFFF):
            raise ValueError("program.image words must be in 0..0xFFFF")
        self.raw = image                       # unsigned words: lists, tables, bias halves
        self.const = sign_extend(image)        # signed words: weights, LCN windows
        self.words = int(program.memory_words)
        if image.size > self.words:
            raise ValueError(f"image ({image.size} words) larger than memory ({self.words} words)")

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
        self.n = x.shape[0]
        row = np.zeros(self.words, dtype=np.int64)
        row[:image.size] = self.const
        # np.empty + one broadcast copy: several times faster than np.zeros
        # (lazily zeroed pages) followed by a second write of the image
        self.mem = np.empty((self.n, self.words), dtype=np.int64)
        self.mem[:] = row
        self._check_write(reg.addr, reg.addr + reg.words, "input region")
        self.mem[:, reg.addr:reg.addr + reg.words] = x.reshape(self.n, -1)

        end = program.table_addr + program.n_tables * isa.TABLE_WORDS
        if program.n_tables and not (0 <= program.table_addr and end <= image.size):
            raise ValueError(f"PWL tables [{program.table_addr:#x}, {end:#x}) outside the image")
        self.tables = [isa.read_table(image, program.table_addr + i * isa.TABLE_WORDS)
                       for i in range(program.n_tables)]

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

    # -- ops --------------------------------------------------------------------
    def conv(self, ins: isa.Instr) -> tuple[int, int]:
        """Execute one OP_CONV (or OP_FC) record; returns (saturations, overflows)."""
        fmt = _word_fmt(ins.bits)
        K = ins.kernel
        pk, ps = _conv_geometry(ins)
        if ins.n_out == 0 or ins.rows == 0:
            return 0, 0
        n, n_in, n_out = self.n, ins.n_in, ins.n_out
        H, W = ins.in_h, ins.in_w
        L = n_in * K * K

        # constants: list, weights, bias
        self._check_const(ins.list_addr, n_in, "input-map list")
        lst = self.raw[ins.list_addr:ins.list_addr + n_in]
        if n_in and int(lst.max()) >= ins.in_c:
            raise ValueError(f"input-map list entry {int(lst.max())} >= in_c={ins.in_c}")
        self._check_const(ins.w_addr, ins.weight_words, "weights")
        if ins.op == isa.OP_FC:  # input-major (K = 1): W[o, j] at w_addr + j*ld + o
            if ins.w_addr % isa.FC_ALIGN:
                raise ValueError(f"OP_FC weights at word {ins.w_addr}: not a multiple of "
                                 f"isa.FC_ALIGN = {isa.FC_ALIGN}")
            ld = isa.fc_ld(n_out)
            nb = L * ld
            wq = self.const[ins.w_addr:ins.w_addr + nb].reshape(L, ld)[:, :n_out].T
        else:                    # W[o, j, p, q] at w_addr + ((o*n_in + j)*K + p)*K + q
            nb = n_out * L
            wq = self.const[ins.w_addr:ins.w_addr + nb].reshape(n_out, L)
        bw = self.raw[ins.w_addr + nb:ins.w_addr + nb + 2 * n_out]
        b = bw[0::2] | (bw[1::2] << 16)
        b = b - ((b >> 31) << 32)              # int32, low word first
        bterm = round_shift(b, -ins.bias_shift)  # B << bias_shift, exact (raises past int64)

        # the conv rows / columns the band's pooling windows need
        r_idx = np.arange(ins.row0, ins.row0 + ins.rows)[:, None] * ps + np.arange(pk)
        c_idx = np.arange(ins.out_w)[:, None] * ps + np.arange(pk)
        ys, r_pos = np.unique(r_idx, return_inverse=True)
        xs, c_pos = np.unique(c_idx, return_inverse=True)
        r_pos, c_pos = r_pos.reshape(r_idx.shape), c_pos.reshape(c_idx.shape)

        # acc[n, o, y, x]: exact dot products, then the bias term.  Memory words
        # are signed 16-bit, so |dot| <= max|w| * 2**15 * L; int64 must hold it.
        self._check(ins.in_addr, ins.in_c * H * W, "conv input")
        if _max_abs(wq) * (1 << (isa.WORD_BITS - 1)) * L + _max_abs(bterm) >= _I64_LIMIT:
            raise OverflowError("conv accumulator may exceed int64")
        acc = self._conv_dots(ins, lst, wq, ys, xs)
        acc = acc.transpose(1, 0, 2, 3) + bterm[None, :, None, None]

        ovf = check_acc(acc)
        z, sat = requantize(acc, ins.acc_shift, fmt)
        a, s2 = _activation(self, ins, z, fmt)
        sat += s2

        # pooling: gather every window (n, o, rows, pk, out_w, pk), reduce
        wins = a[:, :, r_pos[:, :, None, None], c_pos[None, None, :, :]]
        if ins.pool == isa.POOL_AVG:
            prod = wins.sum(axis=(3, 5)) * ins.avg_mul
            ovf += check_acc(prod)
            out, s3 = requantize(prod, ins.avg_shift, fmt)
            sat += s3
        else:  # POOL_MAX, and POOL_NONE (1x1 windows)
            out = wins.max(axis=(3, 5))

        # write out[o0+o] rows row0.. of the layer's out_h x out_w maps
        hw = ins.out_h * ins.out_w
        addr = (ins.out_addr + (ins.o0 + np.arange(n_out))[:, None] * hw
                + ins.row0 * ins.out_w + np.arange(ins.rows * ins.out_w)[None, :])
        self._check_write(int(addr.min()), int(addr.max()) + 1, "conv output")
        self.mem[:, addr.ravel()] = out.reshape(n, -1)
        return int(sat), int(ovf)

    def _band(self, ins: isa.Instr, maps: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Input maps ``maps`` over the rows / columns the conv outputs ``ys`` x
        ``xs`` read, zero padded: (N, len(maps), BH, BW) int64, band row 0 being
        input row ``ys[0]*S - P`` (likewise columns)."""
        K, S, P, H, W = ins.kernel, ins.stride, ins.pad, ins.in_h, ins.in_w
        iy0, iy1 = int(ys[0]) * S - P, int(ys[-1]) * S - P + K
        ix0, ix1 = int(xs[0]) * S - P, int(xs[-1]) * S - P + K
        vy0, vy1 = max(iy0, 0), min(iy1, H)
        vx0, vx1 = max(ix0, 0), min(ix1, W)
        band = np.zeros((self.n, maps.size, iy1 - iy0, ix1 - ix0), dtype=np.int64)
        if vy1 > vy0 and vx1 > vx0:
            addr = (ins.in_addr + maps[:, None, None] * (H * W)
                    + np.arange(vy0, vy1)[None, :, None] * W + np.arange(vx0, vx1)[None, None, :])
            band[:, :, vy0 - iy0:vy1 - iy0, vx0 - ix0:vx1 - ix0] = self.mem[:, addr]
        return band

    def _conv_dots(self, ins: isa.Instr, lst: np.ndarray, wq: np.ndarray, ys: np.ndarray,
                   xs: np.ndarray) -> np.ndarray:
        """``sum_{j,p,q} W[o,j,p,q] X[j][y*S+p-P][x*S+q-P]`` for the conv outputs
        ``ys`` x ``xs``: (n_out, N, len(ys), len(xs)) int64, exact."""
        n, n_out, n_in, K, S = self.n, ins.n_out, ins.n_in, ins.kernel, ins.stride
        ny, nx = ys.size, xs.size
        sel_r = (ys - ys[0]) * S        # band row of each needed conv row's window
        sel_c = (xs - xs[0]) * S

        # im2col of the list's maps, in chunks of images / rows
        band = self._band(ins, lst, ys, xs)
        L = n_in * K * K
        use_f64 = _max_abs(wq) * _max_abs(band) * L < _F64_EXACT   # see _exact_matmul
        dtype = np.float64 if use_f64 else np.int64
        wm = wq.astype(dtype)
        acc = np.empty((n_out, n, ny, nx), dtype=np.int64)
        per_row = max(nx * L, 1)
        rows_step = max(1, min(ny, _CHUNK_ELEMS // per_row))
        imgs_step = max(1, _CHUNK_ELEMS // (per_row * ny)) if rows_step == ny else 1
        for i0 in range(0, n, imgs_step):
            i1 = min(n, i0 + imgs_step)
            for y0 in range(0, ny, rows_step):
                y1 = min(ny, y0 + rows_step)
                cols = _im2col(band[i0:i1], K, sel_r[y0:y1], sel_c, dtype)
                acc[:, i0:i1, y0:y1] = (wm @ cols).reshape(n_out, i1 - i0, y1 - y0, nx)  # exact
        return acc

    def lcn(self, ins: isa.Instr) -> tuple[int, int]:
        """Execute one OP_LCN record; returns (saturations, overflows)."""
        fmt = _word_fmt(ins.bits)
        K, C, H, W = ins.kernel, ins.in_c, ins.in_h, ins.in_w
        if K < 1:
            raise ValueError("LCN window must be at least 1x1")
        h = K // 2
        n, hw = self.n, H * W
        self._check_const(ins.w_addr, K * K, "LCN window")
        g = self.const[ins.w_addr:ins.w_addr + K * K]
        t_sqrt = self.table(ins.pwl_id, "LCN sqrt")
        t_recip = self.table(ins.pwl2_id, "LCN reciprocal")
        self._check(ins.in_addr, C * hw, "LCN input")
        x = self.mem[:, ins.in_addr:ins.in_addr + C * hw].reshape(n, C, H, W)
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
        s, c5 = pwl_eval(t_sqrt, s2)
        # frame mean: per image, exact Python ints (sum(s*mul) = mul*sum(s));
        # an object array makes the numeric functions raise rather than wrap past int64
        total = np.array([int(t) * ins.mean_mul for t in s.reshape(n, -1).sum(axis=1)], dtype=object)
        ovf += check_acc(total)
        mean, c8 = saturate(np.asarray(round_shift(total, ins.mean_shift), dtype=np.int64), fmt)
        sat += c8
        d = np.maximum(np.maximum(s, mean[:, None, None]), ins.eps)
        r, c6 = pwl_eval(t_recip, d)
        vr = v * r[:, None]
        ovf += check_acc(vr)
        y, c7 = requantize(vr, ins.y_shift, fmt)
        sat += c1 + c2 + c3 + c4 + c5 + c6 + c7

        sa = ins.scratch_addr
        self._check_write(sa, sa + C * hw + hw, "LCN scratch")
        self._check_write(ins.out_addr, ins.out_addr + C * hw, "LCN output")
        self.mem[:, sa:sa + C * hw] = v.reshape(n, -1)
        self.mem[:, sa + C * hw:sa + C * hw + hw] = s.reshape(n, -1)
        self.mem[:, ins.out_addr:ins.out_addr + C * hw] = y.reshape(n, -1)
        return int(sat), int(ovf)


def _check_fc(ins: isa.Instr) -> None:
    """OP_FC is OP_CONV restricted to 1x1 kernels, stride 1, no pad, no pool."""
    if (ins.kernel, ins.stride, ins.pad, ins.pool) != (1, 1, 0, isa.POOL_NONE):
        raise ValueError(f"OP_FC needs kernel = stride = 1, pad = 0, no pooling; got kernel "
                         f"{ins.kernel}, stride {ins.stride}, pad {ins.pad}, pool {ins.pool}")


def _word_fmt(bits: int) -> QFormat:
    """The integer format of a record's ``bits`` (codes only: frac 0)."""
    if not 2 <= bits <= isa.WORD_BITS:
        raise ValueError(f"record bits={bits} outside 2..{isa.WORD_BITS}")
    return QFormat(bits, 0)


def _conv_geometry(ins: isa.Instr) -> tuple[int, int]:
    """Validate a CONV record's sizes; return the pooling window and stride."""
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
    return pwl_eval(m.table(ins.pwl_id, "conv activation"), z)


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
def run(program: Program, x_codes: np.ndarray) -> GoldenResult:
    """Run ``program`` on a batch of input codes, bit-exactly.

    Parameters
    ----------
    program : Program
    x_codes : array_like of int, shape (N, *program.input.shape)
        Quantized inputs (codes of ``program.input.fmt``).

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
    m = _Machine(program, x_codes)
    if len(program.names) != len(program.instrs):
        raise ValueError(f"{len(program.instrs)} records but {len(program.names)} names")
    sats: dict[str, int] = {}
    ovfs: dict[str, int] = {}
    for ins, name in zip(program.instrs, program.names):
        if ins.op == isa.OP_END:
            break
        if ins.op == isa.OP_NOP:
            continue
        if ins.op == isa.OP_CONV:
            s, o = m.conv(ins)
        elif ins.op == isa.OP_FC:
            _check_fc(ins)
            s, o = m.conv(ins)
        elif ins.op == isa.OP_LCN:
            s, o = m.lcn(ins)
        else:
            raise ValueError(f"unknown op {ins.op} in record for {name!r}")
        sats[name] = sats.get(name, 0) + s
        ovfs[name] = ovfs.get(name, 0) + o
    else:
        raise ValueError("the schedule has no OP_END record")
    return GoldenResult(memory=m.mem, saturations=sats, overflows=ovfs)

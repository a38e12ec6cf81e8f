r"""The one instruction format: an engine pass is one 512-bit record.

The compiler encodes records (:func:`encode`), the golden and cycle models
decode them (:func:`decode`) and the HDL sequencer decodes the same bits. A
record's fields are listed once, in :data:`FIELDS`, in the order they are
packed, first field in the lowest bits (little-endian bit order; the record
is 64 bytes, byte 0 holding bits 0..7).

Memory
------
External memory is an array of 16-bit words with 32-bit word addresses.
An activation code of ``bits`` <= 16 bits is stored sign-extended in one
word. Feature maps are stored map after map, each a raster (row-major):
map ``c`` of an ``H x W`` layer at ``addr + c*H*W``, pixel ``(y, x)`` at
``+ y*W + x``. A vector of ``F`` features is ``F`` maps of ``1 x 1``, so a
flattened ``(C, H, W)`` tensor needs no copy.

Ops and their meaning (pseudo-code; ``requantize``, ``round_shift`` and
``saturate`` are those of :mod:`convc.compiler.numeric`, ``pwl_eval`` that of
:mod:`convc.compiler.pwl_table`, ``sat`` counts every clamp)
--------------------------------------------------------------------------

``OP_CONV``: convolution + bias + requantize + activation + pooling, for
output maps ``o0 .. o0+n_out-1`` of a layer and final output rows
``row0 .. row0+rows-1``::

    K, S, P, U = kernel, stride, pad, 2**up
    X[j]    = map list[j] of the input (list[j] = word list_addr + j),
              an in_h x in_w raster at in_addr + list[j]*in_h*in_w
    X_up[j][y][x] = X[j][y >> up][x >> up]     (nearest-neighbour upsampling by U:
              an up_h x up_w map, up_h = in_h << up, up_w = in_w << up),
              zero outside (padding)
    W[o,j,p,q] = signed word at w_addr + ((o*n_in + j)*K + p)*K + q
    B[o]    = int32 at w_addr + n_out*n_in*K*K + 2*o   (low word first)
    for o in 0..n_out-1, for every conv output (y, x) the pool needs:
        acc  = (B[o] << bias_shift)
               + sum_{j,p,q} W[o,j,p,q] * X_up[j][y*S + p - P][x*S + q - P]
        z    = requantize(acc, acc_shift, bits)           # sat
        a    = z                       if act == ACT_NONE
               max(z, 0)               if act == ACT_RELU
               saturate(|z|, bits)     if act == ACT_ABS   # sat
               pwl_eval(table[pwl_id], z)  if act == ACT_PWL   # sat
    pooled over pool_k x pool_k windows at stride pool_s:
        POOL_NONE: out = a                                (pool_k = pool_s = 1)
        POOL_MAX:  out = max(a over the window)
        POOL_AVG:  out = requantize(sum(a over window) * avg_mul, avg_shift, bits)
    write out[o0 + o] at out_addr + (o0+o)*out_h*out_w + r*out_w + c

The list is read whole (``n_in`` words, any length the field holds); the hardware
keeps the first ``hw.list_words`` entries, so a longer list must be a run of
consecutive maps (``list[j] = list[0] + j``, as every dense layer's is): see
``list_words`` in :mod:`~convc.compiler.hwconfig`.

``out_h, out_w`` are the layer's final (pooled) sizes; the conv output is
``conv_h = (up_h + 2P - K) // S + 1`` (likewise ``conv_w``) and the pooled
output ``(conv_h - pool_k) // pool_s + 1``.

``up`` (0..3) reads the input nearest-neighbour upsampled by ``2**up`` (a classifier
reading a coarse map at a finer scale): ``in_h`` and ``in_w`` stay the sizes of the maps
*as stored* (so the map addresses do not change), while padding, kernel, stride, pooling,
the band rows (``row0 * pool_s * stride - pad`` ..) and the output sizes all see the
virtual ``up_h x up_w`` map (:attr:`Instr.up_h`, :attr:`Instr.up_w`), which must fit
:data:`ROW_COL_BITS` like a stored map. ``up = 0`` is the plain convolution. Only
``OP_CONV`` upsamples: ``OP_FC`` and ``OP_LCN`` records need ``up = 0``.

``OP_FC``: exactly ``OP_CONV`` with ``kernel = stride = 1``, ``pad = 0``,
``up = 0`` and ``pool = POOL_NONE``, run by the fully connected (matrix-vector) engine
instead of the convolution engine: a linear layer (F maps of 1x1) or a 1x1
convolution (a matrix-vector product per pixel). Only the weight layout
differs: ``OP_FC`` weights are stored input-major, each input's column
padded to ``ld = fc_ld(n_out)`` words (``n_out`` rounded up to
``FC_ALIGN = 16``, zeros after ``n_out``), from a ``w_addr`` that is a
multiple of ``FC_ALIGN``::

    W[o,j]  = signed word at w_addr + j*ld + o
    B[o]    = int32 at w_addr + n_in*ld + 2*o          (low word first)

so the weights of consecutive inputs (an input group of the FC engine's
lanes) are one aligned block: the hardware reads it with one command, a
whole memory beat (up to 256 bits) a cycle. :func:`weight_image` and
:func:`read_weights` pack and unpack both layouts.

``OP_LCN``: local contrast normalization of ``in_c`` maps, one whole frame
(the divisor's floor is the frame mean of ``s``, so it needs every pixel)::

    h = K // 2;  G[p,q] = signed word at w_addr + p*K + q    (window / C)
    the compiler makes G an exact outer product: G[p,q] = R[p] * Q[q], with
    R at w_addr + K*K and Q at w_addr + K*K + K (K signed words each), so an
    engine may sum rows then columns and stay bit-exact
    X, SQ zero outside the frame
    m     = requantize(sum_{c,p,q} G[p,q] X[c][y+p-h][x+q-h], m_shift, bits)  # sat
    v[c]  = saturate(x[c] - m, bits)                                        # sat
    sq[c] = requantize(v[c] * v[c], sq_shift, bits)                         # sat
    s2    = requantize(sum_{c,p,q} G[p,q] SQ[c][y+p-h][x+q-h], s2_shift, bits)  # sat
    s     = pwl_eval(table[pwl_id], s2)                                     # sat
    mean  = saturate(round_shift(sum_{y,x} s * mean_mul, mean_shift), bits)  # sat
    d     = max(s, mean, eps)                      (eps <= 2**(bits-1) - 1)
    r     = pwl_eval(table[pwl2_id], d)                                     # sat
    y[c]  = requantize(v[c] * r, y_shift, bits)                             # sat
    write v (in_c maps) at scratch_addr and s (one map) right after it
    (the engine's first sweep keeps them there for the second), then y at
    out_addr (in_c maps of in_h x in_w).

Accumulators are exact in the models; the hardware's are 48 bits and wrap.
The models count every accumulator value outside 48 bits (the convolution
sum, the average-pool product, the LCN window sums, ``v*v``, the frame-mean
sum and ``v*r``) as an overflow: a run that reports one is a compiler error.
Where two records of one layer share conv rows at a band edge, both compute
(and count the saturations of) those rows, as the hardware does.

``OP_END``: the schedule ends; the accelerator raises done.

PWL tables
----------
Loaded at configuration time from ``table_addr`` (in the manifest), table
``i`` at ``table_addr + i*TABLE_WORDS``::

    word 0           segments N (1..MAX_SEGMENTS)
    word 1           acc_shift (signed) = in.frac + slope_frac - out.frac
    word 2           out width in bits
    words 3..34      breakpoints b[0..N-2] (signed 16), rest 0
    words 35..98     slopes, int32 each, two words, low first
    words 99..226    offsets, int64 each (48 bits used), four words, low first
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .numeric import QFormat, signed_range
from .pwl_table import PWLTable

__all__ = ["OP_NOP", "OP_CONV", "OP_LCN", "OP_FC", "OP_END", "OP_NAMES", "ACT_NONE", "ACT_RELU", "ACT_ABS",
           "ACT_PWL", "ACT_NAMES", "POOL_NONE", "POOL_MAX", "POOL_AVG", "POOL_NAMES", "Field", "FIELDS",
           "RECORD_BITS", "RECORD_BYTES", "RECORD_WORDS", "Instr", "encode", "decode", "encode_program",
           "decode_program", "listing", "field", "field_max", "FieldShape", "shape", "limit", "FC_ALIGN", "fc_ld",
           "conv_rows", "in_rows", "bias_offset", "weight_words", "weight_offset", "weight_view", "bias_words",
           "join_bias", "weight_image", "read_weights", "MAX_SEGMENTS", "TABLE_WORDS", "table_words",
           "read_table", "WORD_BITS", "ROW_COL_BITS", "BIAS_BITS", "check_up"]

#: A memory word: every code, weight and table entry is one (a bias is two).
WORD_BITS = 16
#: Rows and columns of a map: the ``in_h``, ``in_w``, ``out_h``, ``out_w``, ``row0`` and
#: ``rows`` fields, and the engines' row and column counters (so 4095 is the longest row).
ROW_COL_BITS = 12
#: A bias: an int32 in two words, low word first (see ``OP_CONV`` above).
BIAS_BITS = 32

OP_NOP, OP_CONV, OP_LCN, OP_FC, OP_END = 0, 1, 2, 3, 15
OP_NAMES = {OP_NOP: "nop", OP_CONV: "conv", OP_LCN: "lcn", OP_FC: "fc", OP_END: "end"}
ACT_NONE, ACT_RELU, ACT_ABS, ACT_PWL = 0, 1, 2, 3
ACT_NAMES = {ACT_NONE: "none", ACT_RELU: "relu", ACT_ABS: "abs", ACT_PWL: "pwl"}
POOL_NONE, POOL_MAX, POOL_AVG = 0, 1, 2
POOL_NAMES = {POOL_NONE: "none", POOL_MAX: "max", POOL_AVG: "avg"}


@dataclass(frozen=True)
class Field:
    name: str
    bits: int
    signed: bool
    doc: str


FIELDS: tuple[Field, ...] = (
    Field("op", 4, False, "OP_CONV, OP_FC, OP_LCN, OP_END (OP_NOP does nothing)"),
    Field("bits", 5, False, "activation and weight width (2..16)"),
    Field("act", 2, False, "CONV: ACT_NONE, ACT_RELU, ACT_ABS, ACT_PWL"),
    Field("pool", 2, False, "CONV: POOL_NONE, POOL_MAX, POOL_AVG"),
    Field("kernel", 5, False, "K: conv kernel, or LCN window"),
    Field("stride", 4, False, "conv stride S"),
    Field("pad", 4, False, "conv zero padding P on each side"),
    Field("pool_k", 4, False, "pooling window"),
    Field("pool_s", 4, False, "pooling stride"),
    Field("pwl_id", 4, False, "CONV: activation table; LCN: sqrt table"),
    Field("pwl2_id", 4, False, "LCN: reciprocal table"),
    Field("in_c", 16, False, "input maps of the layer"),
    Field("in_h", ROW_COL_BITS, False, "input rows"),
    Field("in_w", ROW_COL_BITS, False, "input columns"),
    Field("out_h", ROW_COL_BITS, False, "final (pooled) output rows of the layer"),
    Field("out_w", ROW_COL_BITS, False, "final (pooled) output columns of the layer"),
    Field("n_in", 16, False, "CONV: input maps read per output (length of the list)"),
    Field("n_out", 16, False, "CONV: output maps in this pass"),
    Field("o0", 16, False, "CONV: first output map of this pass"),
    Field("row0", ROW_COL_BITS, False, "CONV: first final output row of this pass"),
    Field("rows", ROW_COL_BITS, False, "CONV: final output rows in this pass"),
    Field("in_addr", 32, False, "word address of input map 0"),
    Field("out_addr", 32, False, "word address of output map 0 of the layer"),
    Field("w_addr", 32, False, "word address of the weights (CONV) or window (LCN)"),
    Field("list_addr", 32, False, "CONV: word address of the input-map list"),
    Field("scratch_addr", 32, False, "LCN: scratch for v and s"),
    Field("bias_shift", 6, False, "CONV: bias is shifted up by this into the accumulator"),
    Field("acc_shift", 8, True, "CONV: accumulator -> activation shift; LCN: m_shift"),
    Field("avg_mul", 18, False, "CONV: average pooling multiplier"),
    Field("avg_shift", 6, False, "CONV: average pooling shift"),
    Field("sq_shift", 8, True, "LCN: v*v -> sq shift"),
    Field("s2_shift", 8, True, "LCN: window sum of sq -> s2 shift"),
    Field("y_shift", 8, True, "LCN: v*r -> y shift"),
    Field("mean_mul", 32, False, "LCN: frame-mean multiplier ~ 2**mean_shift / (H*W)"),
    Field("mean_shift", 6, False, "LCN: frame-mean shift"),
    Field("eps", 16, False, "LCN: smallest divisor, a code in the format of s"),
    Field("up", 2, False, "CONV: the input is read nearest-upsampled by 2**up (FC, LCN: 0)"),
)

RECORD_BITS = 512
RECORD_BYTES = RECORD_BITS // 8
RECORD_WORDS = RECORD_BITS // WORD_BITS   # 32: what the sequencer's FETCH reads
assert sum(f.bits for f in FIELDS) <= RECORD_BITS, "fields overflow the record"

_FIELD_BY_NAME = {f.name: f for f in FIELDS}


def field(name: str) -> Field:
    """The :class:`Field` called ``name``."""
    return _FIELD_BY_NAME[name]


def field_max(name: str) -> int:
    """The largest value field ``name`` holds (its width decides what a record can say:
    the kernel, stride, padding and pooling limits, the maps and sizes of a layer)."""
    return _width_range(_FIELD_BY_NAME[name])[1]


class FieldShape(NamedTuple):
    """A field's shape: ``bits`` wide, two's complement if ``signed``
    (:func:`convc.hdl.fields.field_shape` makes the Amaranth shape of it)."""

    bits: int
    signed: bool


def shape(name: str) -> FieldShape:
    """The shape of field ``name``: every port and register of the hardware that holds the
    field has it."""
    f = _FIELD_BY_NAME[name]
    return FieldShape(f.bits, f.signed)


# fields whose meaning narrows what their width holds: (lowest, highest), None for the width's
_MEANING = {"bits": (2, WORD_BITS), "kernel": (1, None), "stride": (1, None), "pool_k": (1, None),
            "pool_s": (1, None)}


def limit(name: str) -> tuple[int, int]:
    """``(lo, hi)``: the values field ``name`` may take in a record the engines run: its
    width's range, narrowed by its meaning (``bits`` 2..:data:`WORD_BITS`; ``kernel``,
    ``stride``, ``pool_k`` and ``pool_s`` from 1). The compiler refuses, and the engines
    check, anything outside."""
    lo, hi = _width_range(_FIELD_BY_NAME[name])
    mlo, mhi = _MEANING.get(name, (lo, hi))
    return mlo, hi if mhi is None else mhi


def _width_range(f: Field) -> tuple[int, int]:
    return signed_range(f.bits) if f.signed else (0, (1 << f.bits) - 1)


FC_ALIGN = 16  # words: a 256-bit memory beat


def fc_ld(n_out):
    """Column stride of ``OP_FC`` weights: ``n_out`` rounded up to :data:`FC_ALIGN` (an int,
    or an Amaranth value in the hardware)."""
    return ((n_out + FC_ALIGN - 1) >> 4) << 4


def conv_rows(rows, pool_k, pool_s):
    """Conv output rows a band of ``rows`` final (pooled) rows needs:
    ``(rows - 1) * pool_s + pool_k`` (ints, or Amaranth values in the hardware)."""
    return (rows - 1) * pool_s + pool_k


def in_rows(conv_rows, kernel, stride):
    """Input rows (padding included) a band of ``conv_rows`` conv output rows reads:
    ``(conv_rows - 1) * stride + kernel``, from input row ``row0 * pool_s * stride - pad``
    (ints, or Amaranth values in the hardware)."""
    return (conv_rows - 1) * stride + kernel


def check_up(ins: "Instr") -> None:
    """Check record ``ins``'s ``up`` field as every model does.

    Parameters
    ----------
    ins : Instr
        A decoded record.

    Raises
    ------
    ValueError
        ``up != 0`` on an ``OP_FC`` or ``OP_LCN`` record (only ``OP_CONV`` upsamples), or
        an upsampled map (:attr:`Instr.up_h` x :attr:`Instr.up_w`) beyond what a map's
        rows and columns hold (:data:`ROW_COL_BITS`).
    """
    if ins.up == 0:
        return
    if ins.op in (OP_FC, OP_LCN):
        raise ValueError(f"up={ins.up} on an OP_{OP_NAMES[ins.op].upper()} record: only OP_CONV reads "
                         f"its input upsampled (OP_FC and OP_LCN need up = 0)")
    most = (1 << ROW_COL_BITS) - 1
    if ins.up_h > most or ins.up_w > most:
        raise ValueError(f"up={ins.up}: the upsampled input {ins.up_h}x{ins.up_w} (stored {ins.in_h}x{ins.in_w}) "
                         f"exceeds {most} rows or columns ({ROW_COL_BITS} bits)")


def _weight_strides(op: int, n_in: int, n_out: int, kernel: int) -> tuple[int, int, int, int]:
    """The weight layout, the one statement of it: ``W[o, j, p, q]`` is the word at
    ``w_addr + o*so + j*sj + p*sp + q*sq`` for ``(so, sj, sp, sq)`` = this. ``OP_CONV``:
    output-major; ``OP_FC``: input-major columns of ``fc_ld(n_out)`` words (K = 1)."""
    if op == OP_FC:
        return 1, fc_ld(n_out), 0, 0
    return n_in * kernel * kernel, kernel * kernel, kernel, 1


def bias_offset(op: int, n_in: int, n_out: int, kernel: int) -> int:
    """Words from ``w_addr`` to ``B[0]``: the weights of a CONV (``n_out*n_in*K*K``) or FC
    (``n_in*fc_ld(n_out)``) record."""
    so, sj, _, _ = _weight_strides(op, n_in, n_out, kernel)
    return n_in * sj if op == OP_FC else n_out * so


def weight_words(op: int, n_in: int, n_out: int, kernel: int) -> int:
    """Words of a CONV or FC record's weights and biases (:attr:`Instr.weight_words`)."""
    return bias_offset(op, n_in, n_out, kernel) + 2 * n_out


def weight_offset(op: int, n_in: int, n_out: int, kernel: int, o, j, p=0, q=0):
    """Where ``W[o, j, p, q]`` is, in words from ``w_addr`` (``o``, ``j``, ``p``, ``q``:
    ints, NumPy arrays or Amaranth values; the sizes are ints)."""
    so, sj, sp, sq = _weight_strides(op, n_in, n_out, kernel)
    return o * so + j * sj + p * sp + q * sq


def weight_view(op: int, words: np.ndarray, n_in: int, n_out: int, kernel: int) -> np.ndarray:
    """``W[o, j, p, q]`` of a CONV or FC record as an ``(n_out, n_in, K, K)`` view of
    ``words`` (1-D, its words from ``w_addr``), without a copy (FC layers hold tens of
    millions of weights); writable if ``words`` is."""
    words = np.asarray(words)
    if words.ndim != 1 or words.size < bias_offset(op, n_in, n_out, kernel):
        raise ValueError(f"weight_view: {words.size} words, the weights need "
                         f"{bias_offset(op, n_in, n_out, kernel)}")
    step = words.strides[0]
    return np.lib.stride_tricks.as_strided(
        words, shape=(n_out, n_in, kernel, kernel),
        strides=tuple(s * step for s in _weight_strides(op, n_in, n_out, kernel)))


def bias_words(b):
    """The two words (low, high) of each int32 bias ``b`` (ints or NumPy arrays)."""
    u = b & ((1 << BIAS_BITS) - 1)
    return u & ((1 << WORD_BITS) - 1), u >> WORD_BITS


def join_bias(lo, hi):
    """The int32 bias of its two words ``lo``, ``hi`` (ints or NumPy arrays; only their
    low :data:`WORD_BITS` bits are read): the inverse of :func:`bias_words`."""
    mask = (1 << WORD_BITS) - 1
    u = (lo & mask) | ((hi & mask) << WORD_BITS)
    return u - ((u >> (BIAS_BITS - 1)) << BIAS_BITS)


def weight_image(op: int, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The words (int64, 0..0xFFFF) of a record's weights ``w`` (n_out, n_in, K, K) and
    int32 biases ``b`` (n_out), in the layout of ``op`` (``OP_CONV`` or ``OP_FC``)."""
    w = np.asarray(w, dtype=np.int64)
    n_out, n_in, K = w.shape[0], w.shape[1], w.shape[2]
    if op == OP_FC and w.shape[2:] != (1, 1):
        raise ValueError(f"OP_FC weights must be 1x1, got {w.shape}")
    body = np.zeros(bias_offset(op, n_in, n_out, K), dtype=np.int64)
    weight_view(op, body, n_in, n_out, K)[...] = w
    lo, hi = bias_words(np.asarray(b, dtype=np.int64))
    bias = np.stack([lo, hi], axis=1).reshape(-1)
    return np.concatenate([body & 0xFFFF, bias])


def read_weights(ins: "Instr", words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`weight_image` for record ``ins``: ``words`` (its
    ``weight_words`` words from ``w_addr``) -> (signed weights (n_out, n_in, K, K), int32
    biases)."""
    words = np.asarray(words, dtype=np.int64)
    s = words - ((words >> 15) << 16)
    w = weight_view(ins.op, s, ins.n_in, ins.n_out, ins.kernel)
    nb = bias_offset(ins.op, ins.n_in, ins.n_out, ins.kernel)
    bw = words[nb:nb + 2 * ins.n_out]
    return w, join_bias(bw[0::2], bw[1::2])


@dataclass(frozen=True)
class Instr:
    """One decoded record; every field of :data:`FIELDS`, default 0."""

    op: int = OP_NOP
    bits: int = 16
    act: int = ACT_NONE
    pool: int = POOL_NONE
    kernel: int = 1
    stride: int = 1
    pad: int = 0
    pool_k: int = 1
    pool_s: int = 1
    pwl_id: int = 0
    pwl2_id: int = 0
    in_c: int = 0
    in_h: int = 0
    in_w: int = 0
    out_h: int = 0
    out_w: int = 0
    n_in: int = 0
    n_out: int = 0
    o0: int = 0
    row0: int = 0
    rows: int = 0
    in_addr: int = 0
    out_addr: int = 0
    w_addr: int = 0
    list_addr: int = 0
    scratch_addr: int = 0
    bias_shift: int = 0
    acc_shift: int = 0
    avg_mul: int = 0
    avg_shift: int = 0
    sq_shift: int = 0
    s2_shift: int = 0
    y_shift: int = 0
    mean_mul: int = 0
    mean_shift: int = 0
    eps: int = 0
    up: int = 0

    def __post_init__(self):
        for f in FIELDS:
            v = getattr(self, f.name)
            lo, hi = _width_range(f)
            if not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
                raise ValueError(f"instruction field {f.name}={v!r} does not fit {f.bits} "
                                 f"{'signed' if f.signed else 'unsigned'} bits [{lo}, {hi}]")
            object.__setattr__(self, f.name, int(v))

    # sizes every model derives the same way
    @property
    def up_h(self) -> int:
        """Rows of the input maps as the record reads them: ``in_h << up`` (``OP_CONV``
        reads them nearest-upsampled by ``2**up``; ``in_h`` otherwise)."""
        return self.in_h << self.up

    @property
    def up_w(self) -> int:
        """Columns of the input maps as the record reads them: ``in_w << up``."""
        return self.in_w << self.up

    @property
    def conv_h(self) -> int:
        """Convolution output rows: ``(up_h + 2 pad - K) // S + 1``."""
        return (self.up_h + 2 * self.pad - self.kernel) // self.stride + 1

    @property
    def conv_w(self) -> int:
        """Convolution output columns: ``(up_w + 2 pad - K) // S + 1``."""
        return (self.up_w + 2 * self.pad - self.kernel) // self.stride + 1

    @property
    def weight_words(self) -> int:
        """Weights then biases of a CONV or FC pass, in words (:func:`weight_words`)."""
        return weight_words(self.op, self.n_in, self.n_out, self.kernel)

    def replace(self, **changes) -> "Instr":
        return dataclasses.replace(self, **changes)


assert {f.name for f in FIELDS} == {f.name for f in dataclasses.fields(Instr)}


def encode(instr: Instr) -> bytes:
    """Pack one record into :data:`RECORD_BYTES` bytes."""
    word, pos = 0, 0
    for f in FIELDS:
        v = getattr(instr, f.name) & ((1 << f.bits) - 1)
        word |= v << pos
        pos += f.bits
    return word.to_bytes(RECORD_BYTES, "little")


def decode(data: bytes) -> Instr:
    """Unpack one record (the inverse of :func:`encode`)."""
    if len(data) != RECORD_BYTES:
        raise ValueError(f"a record is {RECORD_BYTES} bytes, got {len(data)}")
    word = int.from_bytes(data, "little")
    values, pos = {}, 0
    for f in FIELDS:
        v = (word >> pos) & ((1 << f.bits) - 1)
        if f.signed and v >> (f.bits - 1):
            v -= 1 << f.bits
        values[f.name] = v
        pos += f.bits
    return Instr(**values)


def encode_program(instrs: list[Instr]) -> bytes:
    return b"".join(encode(i) for i in instrs)


def decode_program(data: bytes) -> list[Instr]:
    if len(data) % RECORD_BYTES:
        raise ValueError(f"schedule image is {len(data)} bytes, not a whole number of "
                         f"{RECORD_BYTES}-byte records")
    return [decode(data[i:i + RECORD_BYTES]) for i in range(0, len(data), RECORD_BYTES)]


def listing(instrs: list[Instr], names: list[str] | None = None) -> str:
    """A readable listing: one line a record, only the fields its op uses."""
    lines = []
    for k, ins in enumerate(instrs):
        tag = f"{k:5d}  {OP_NAMES.get(ins.op, ins.op):<4}"
        if names:
            tag += f" {names[k]:<12}"
        if ins.op in (OP_CONV, OP_FC):
            lines.append(
                f"{tag} in@{ins.in_addr:#x} {ins.in_c}x{ins.in_h}x{ins.in_w}"
                + (f" up{1 << ins.up}" if ins.up else "")
                + f" list@{ins.list_addr:#x}"
                f"[{ins.n_in}] k{ins.kernel} s{ins.stride} p{ins.pad} w@{ins.w_addr:#x}"
                f" out[{ins.o0}:{ins.o0 + ins.n_out}] rows[{ins.row0}:{ins.row0 + ins.rows}]"
                f" of {ins.out_h}x{ins.out_w} @{ins.out_addr:#x} bias<<{ins.bias_shift}"
                f" acc>>{ins.acc_shift} act={ACT_NAMES[ins.act]}"
                + (f"#{ins.pwl_id}" if ins.act == ACT_PWL else "")
                + (f" pool={POOL_NAMES[ins.pool]}{ins.pool_k}/{ins.pool_s}" if ins.pool else "")
                + (f" avg*{ins.avg_mul}>>{ins.avg_shift}" if ins.pool == POOL_AVG else "")
                + f" q{ins.bits}")
        elif ins.op == OP_LCN:
            lines.append(
                f"{tag} in@{ins.in_addr:#x} {ins.in_c}x{ins.in_h}x{ins.in_w} win{ins.kernel}@{ins.w_addr:#x}"
                f" out@{ins.out_addr:#x} scratch@{ins.scratch_addr:#x} m>>{ins.acc_shift}"
                f" sq>>{ins.sq_shift} s2>>{ins.s2_shift} sqrt#{ins.pwl_id} recip#{ins.pwl2_id}"
                f" mean*{ins.mean_mul}>>{ins.mean_shift} eps={ins.eps} y>>{ins.y_shift} q{ins.bits}")
        else:
            lines.append(tag)
    return "\n".join(lines) + "\n"


MAX_SEGMENTS = 32
_BP0, _SL0, _OF0 = 3, 3 + MAX_SEGMENTS, 3 + MAX_SEGMENTS + 2 * MAX_SEGMENTS
TABLE_WORDS = _OF0 + 4 * MAX_SEGMENTS


def _split(value: int, words: int) -> list[int]:
    u = value & ((1 << (16 * words)) - 1)
    return [(u >> (16 * k)) & 0xFFFF for k in range(words)]


def _join(words: np.ndarray) -> int:
    u = 0
    for k, w in enumerate(words):
        u |= (int(w) & 0xFFFF) << (16 * k)
    bits = 16 * len(words)
    return u - (1 << bits) if u >> (bits - 1) else u


def _s16(v: int) -> int:
    v &= 0xFFFF
    return v - 0x10000 if v & 0x8000 else v


def table_words(table: PWLTable) -> np.ndarray:
    """The :data:`TABLE_WORDS` memory words of one PWL table (int64, 0..0xFFFF)."""
    n = table.segments
    if n > MAX_SEGMENTS:
        raise ValueError(f"PWL table has {n} segments, the hardware holds at most {MAX_SEGMENTS}")
    if table.in_fmt.width > 16:
        raise ValueError("PWL input wider than 16 bits")
    words = np.zeros(TABLE_WORDS, dtype=np.int64)
    words[0] = n
    words[1] = table.acc_shift & 0xFFFF
    words[2] = table.out_fmt.width
    for i, b in enumerate(table.breakpoints):
        words[_BP0 + i] = b & 0xFFFF
    for i, s in enumerate(table.slopes):
        words[_SL0 + 2 * i:_SL0 + 2 * i + 2] = _split(s, 2)
    for i, o in enumerate(table.offsets):
        words[_OF0 + 4 * i:_OF0 + 4 * i + 4] = _split(o, 4)
    return words


def read_table(mem: np.ndarray, addr: int) -> PWLTable:
    """Rebuild a table from memory words: a :class:`PWLTable` whose
    :func:`~convc.compiler.pwl_table.pwl_eval` gives the same integers as the
    original (formats are reduced to what the integers need: input fraction
    0, slope fraction 0, output fraction ``-acc_shift``)."""
    words = mem[addr:addr + TABLE_WORDS]
    n = int(words[0])
    if not 1 <= n <= MAX_SEGMENTS:
        raise ValueError(f"PWL table at {addr:#x}: bad segment count {n}")
    shift = _s16(int(words[1]))
    width = int(words[2])
    bps = tuple(_s16(int(words[_BP0 + i])) for i in range(n - 1))
    slopes = tuple(_join(words[_SL0 + 2 * i:_SL0 + 2 * i + 2]) for i in range(n))
    offsets = tuple(_join(words[_OF0 + 4 * i:_OF0 + 4 * i + 4]) for i in range(n))
    return PWLTable(in_fmt=QFormat(16, 0), out_fmt=QFormat(width, -shift), slope_frac=0,
                    breakpoints=bps, slopes=slopes, offsets=offsets)

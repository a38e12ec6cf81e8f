r"""The fast, bit-exact golden model of the accelerator.

:func:`run` executes a compiled :class:`~convc.compiler.program.Program` on a
batch of quantized inputs exactly as the pseudo-code of
:mod:`convc.compiler.isa` says, with every arithmetic rule taken from
:mod:`convc.compiler.numeric` (``requantize``, ``saturate``, ``round_shift``,
``pwl_eval``, ``check_acc``).  It is vectorized over the batch with numpy;
:mod:`convc.sim.golden_naive` is the slow, literal version the tests compare it to,
word for word.  This file holds the entry point and its result; the model is in

* :mod:`convc.sim.golden_machine`: the constant image shared by a run and the
  memory of one batch (checked reads and writes, PWL lookups);
* :mod:`convc.sim.golden_steps`: which records run together;
* :mod:`convc.sim.golden_conv` and :mod:`convc.sim.golden_lcn`: the records;
* :mod:`convc.sim.golden_exact`: exact integer matrix products (float64 when
  provably exact, else int64) over im2col columns;
* :mod:`convc.sim.golden_batch`: batches of images and threads.

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
Images are independent, so they run in batches, side by side on threads
(:mod:`convc.sim.golden_batch`).  What every batch shares
is computed once per run: the record groups, each group's stacked weights,
and each PWL table evaluated on all 2**16 input codes
(:func:`~convc.compiler.pwl_table.pwl_lut`; a lookup then replaces the segment
search, with the same outputs and clamp counts).

Exactness
---------
A CONV / FC record's dot products run as one matrix product per group of
records (:mod:`convc.sim.golden_conv`).  The product is done in float64
(BLAS) when that is exact (:func:`~convc.sim.golden_exact.f64_exact`): every product ``w*x`` and every
partial sum of a dot product of length ``L = n_in*K*K`` is an integer of
magnitude at most ``max|w| * 2**15 * L`` (``max|w|`` over the group's
weights; every memory word is a 16-bit code, so ``|x| <= 2**15``); if that
bound is below ``2**53`` every intermediate float64 value is an exactly
representable integer, whatever the summation order (FMA included), so the
result is exact.  The bound is proved per group from the weights and the
word format before any data is seen; it holds for every ``L < 2**23``.
Otherwise the product is done in int64, exact because ``|acc| <= max|w| *
2**15 * L + |bias term| < 2**63`` (checked; ``OverflowError`` otherwise).

Accumulators are exact (not wrapped to 48 bits); every value an accumulator
holds at the end of a sum that leaves the signed 48-bit range is counted with
``check_acc`` as an overflow (with two's-complement wrap-around only the final
value matters).  Checked accumulators: the conv sum, the average-pooling
product, and in LCN the two window sums, ``v*v``, the frame-mean sum and
``v*r``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convc.compiler import isa
from convc.compiler.numeric import signed_range
from convc.compiler.program import Program, Region

from .golden_batch import run_batches
from .golden_machine import ConstImage

__all__ = ["GoldenResult", "run"]

#: A memory word holds a signed code of at most this many bits.
_WORD_MIN, _WORD_MAX = signed_range(isa.WORD_BITS)
#: Per-image memory words: every word is a signed 16-bit code.
_WORD_DTYPE = np.int16


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


def run(program: Program, x_codes: np.ndarray, *, batch: int | None = None,
        threads: int | None = None) -> GoldenResult:
    """Run ``program`` on a batch of input codes, bit-exactly.

    Parameters
    ----------
    program : Program
    x_codes : array_like of int, shape (N, *program.input.shape)
        Quantized inputs (codes of ``program.input.fmt``).
    batch : int, optional
        Images run together (default
        :func:`~convc.sim.golden_batch.auto_batch`: temporaries of a few
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
    image = ConstImage.read(program)
    x = _input_codes(program, x_codes)
    base = image.raw.size
    data = np.empty((x.shape[0], image.words - base), dtype=_WORD_DTYPE)
    sats, ovfs = run_batches(image, x, data, batch, threads)
    return GoldenResult(data=data, saturations=sats, overflows=ovfs, base=base, const=image.const)


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


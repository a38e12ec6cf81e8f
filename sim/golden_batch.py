"""Batches of images and threads for the golden model (:mod:`convc.sim.golden`).

Images are independent, so they run in batches (:func:`auto_batch`: a
record's temporaries stay within a few MiB, buffers the allocator reuses
instead of fresh pages), several batches side by side on threads with one
BLAS thread each; a single batch (one large frame) gives the threads to BLAS
(:func:`run_batches`).  Each batch is a
:class:`~convc.sim.golden_machine.Machine` that runs every step of the
program's records.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import ThreadpoolController

from convc.compiler import isa
from convc.compiler.program import Program

from .golden_conv import conv_group
from .golden_lcn import lcn
from .golden_machine import ConstImage, Machine

__all__ = ["auto_batch", "run_batches"]

#: Largest per-batch temporary (elements) that :func:`auto_batch` aims for:
#: 1 MiB of int64, small enough for buffers that the allocator reuses.
_BATCH_ELEMS = 1 << 17


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


def run_batches(image: ConstImage, x: np.ndarray, data: np.ndarray, batch: int | None,
                threads: int | None) -> tuple[dict[str, int], dict[str, int]]:
    """Run every record on the images ``x`` in batches, filling ``data``.

    Parameters
    ----------
    image : ConstImage
        The program's constant image and grouped records.
    x : ndarray of int64, shape (N, *program.input.shape)
        Checked input codes.
    data : ndarray of int16, shape (N, memory_words - base)
        The per-image words, filled.
    batch, threads : int, optional
        As for :func:`convc.sim.golden.run`.

    Returns
    -------
    (saturations, overflows) : dict of str to int
        Per layer name, summed over the layer's records and the images.
    """
    n = x.shape[0]
    step = max(1, int(batch) if batch else auto_batch(image.program))
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
    return sats, ovfs


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


def _run_batch(image: ConstImage, x: np.ndarray, data: np.ndarray):
    """Run every record on the images ``x``, filling ``data``; returns the
    per-layer (saturations, overflows) of this batch."""
    m = Machine(image, x, data)
    sats: dict[str, int] = {}
    ovfs: dict[str, int] = {}
    program = image.program
    for kind, idx in image.steps:
        if kind == "lcn":
            counts = [lcn(m, program.instrs[idx[0]])]
        else:
            counts = conv_group(m, idx[0], [program.instrs[k] for k in idx])
        for k, (s, o) in zip(idx, counts):
            name = program.names[k]
            sats[name] = sats.get(name, 0) + s
            ovfs[name] = ovfs.get(name, 0) + o
    return sats, ovfs

"""The pooling engine's exported Verilog under cocotb (Icarus; Verilator with
CONVC_SIM=verilator): frames of different pooling configurations back to back (max,
average with the compiler's constants and with saturating ones, pass-through; k = image
size, stride > 1, stride != k, width = max_width), random idle cycles and backpressure,
every output word checked against numeric.py (tests/hdl/cocotb/test_pool_tb.py)."""

from __future__ import annotations

import random

import pytest

from needs import needs_sim
import cocotb_harness
from convc.compiler import isa
from convc.hdl.pool import PoolEngine
from model_pool import avg_constants

MAX, AVG, NONE = isa.POOL_MAX, isa.POOL_AVG, isa.POOL_NONE


def jobs_for(lanes, bits, kmax, mw, seed, n_random):
    """Fixed edge cases, then random frames."""
    jobs = [
        (6, mw, MAX, kmax, 2, None), (kmax, kmax, AVG, kmax, 1, "mixed"),  # width = max_width; k = size
        (7, mw, AVG, 2, 3, None), (5, 6, MAX, min(3, kmax), 2, "min"),     # s > k; s != k
        (4, 5, NONE, 1, 1, None), (3, 4, AVG, 2, 1, "max"), (2, 1, MAX, 1, 1, None),
    ]
    jobs = [(H, W, kind, k, s, e, *avg_constants(k)) for H, W, kind, k, s, e in jobs]
    jobs += [(4, 4, AVG, 2, 2, "max", 0x3FFFF, 9), (4, 4, AVG, 2, 2, "min", 0x3FFFF, 9)]  # saturate
    rng = random.Random(seed)
    for _ in range(n_random):
        k = rng.randint(1, kmax)
        s = rng.randint(1, 4)
        H, W = rng.randint(k, k + 6), rng.randint(k, mw)
        kind = rng.choice([MAX, AVG, AVG, NONE])
        mul, shift = avg_constants(k) if rng.random() < 0.7 else (rng.randrange(1 << 18), rng.randrange(8, 30))
        jobs.append((H, W, kind, k, s, rng.choice([None, None, "mixed"]), mul, shift))
    return jobs


CONFIGS = [(2, 16, 3, 12, 20), (1, 8, 2, 9, 30)]  # lanes, bits, kmax, max_width, random frames


@needs_sim
@pytest.mark.parametrize("n", range(len(CONFIGS)))
def test_pool_cocotb(tmp_path_factory, n):
    lanes, bits, kmax, mw, n_random = CONFIGS[n]
    cocotb_harness.run_cocotb(
        PoolEngine(lanes=lanes, bits=bits, kmax=kmax, max_width=mw), f"pool{n}", "test_pool_tb",
        tmp_path_factory.mktemp("cocotb"),
        config={"lanes": lanes, "bits": bits, "max_width": mw, "seed": 20 + n,
                "jobs": jobs_for(lanes, bits, kmax, mw, 20 + n, n_random),
                "idle_prob": 0.2, "bp_prob": 0.3})

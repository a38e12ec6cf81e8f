"""The LCN engine's exported Verilog under cocotb (Icarus; Verilator with
CONVC_SIM=verilator): C=3 maps, K=3 and K=5 (kmax=5), frames 1x1 .. 12x16 (16 =
max_width), random windows and inputs (extremes too), back-to-back frames, random idle
cycles and backpressure; every a_o word, the mean and every b_o word checked against
convc.sim.golden (tests/hdl/cocotb/test_lcn_tb.py, tests/hdl/model_lcn.py)."""

from __future__ import annotations

import random


from needs import needs_sim
import cocotb_harness
from convc.hdl.lcn import LCNEngine
from model_lcn import lcn_job


def _job(rng, C, K, shapes, **kw):
    """:func:`model_lcn.lcn_job` as JSON (the cocotb config)."""
    return [c.to_json() for c in lcn_job(rng, C, K, shapes, **kw)]


@needs_sim
def test_lcn_cocotb(tmp_path_factory):
    rng = random.Random(11)
    jobs = [
        _job(rng, 3, 5, [(1, 1)]),
        _job(rng, 3, 3, [(5, 7)]),
        _job(rng, 3, 5, [(12, 16)], gaussian=True),          # width = max_width
        _job(rng, 3, 3, [(4, 5)], extreme=True),
        _job(rng, 2, 5, [(3, 6), (4, 6)]),                    # C < channels, back to back
    ]
    cocotb_harness.run_cocotb(
        LCNEngine(channels=3, bits=16, kmax=5, max_width=16), "lcn", "test_lcn_tb",
        tmp_path_factory.mktemp("cocotb"),
        config={"channels": 3, "bits": 16, "seed": 3, "idle_prob": 0.2, "bp_prob": 0.3,
                "jobs": jobs},
    )

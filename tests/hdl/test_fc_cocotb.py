"""The FC engine's exported Verilog under cocotb (Icarus; Verilator with
CONVC_SIM=verilator): bands back to back (G = 1 and > 1, P = 1 and P = psum_words,
saturating extremes), random idle cycles on the bias, weights and pixel streams, random
backpressure, every output word checked against numeric.py
(tests/hdl/cocotb/test_fc_tb.py)."""

from __future__ import annotations

import random

import pytest

from needs import needs_sim
import cocotb_harness
from convc.hdl.fc import FCEngine

CONFIGS = [
    # in_lanes, out_lanes, bits, psum_words, bands (G, P, extreme)
    (4, 3, 16, 16, [(1, 16, None), (5, 9, "mixed"), (3, 1, None), (1, 1, "max"), (4, 16, None),
                    (8, 1, "min"), (2, 5, None)]),
    (3, 1, 8, 4, [(2, 4, "max"), (6, 1, None), (1, 3, "min"), (3, 4, "mixed"), (9, 2, None)]),
]


@needs_sim
@pytest.mark.parametrize("k", range(len(CONFIGS)))
def test_fc_cocotb(tmp_path_factory, k):
    il, ol, bits, pw, bands = CONFIGS[k]
    rng = random.Random(k)  # plus random shapes, back to back
    bands = bands + [(rng.randint(1, 6), rng.randint(1, pw), rng.choice([None, None, "mixed"]))
                     for _ in range(25)]
    cocotb_harness.run_cocotb(
        FCEngine(in_lanes=il, out_lanes=ol, bits=bits, psum_words=pw), f"fc{k}", "test_fc_tb",
        tmp_path_factory.mktemp("cocotb"),
        config={"in_lanes": il, "out_lanes": ol, "bits": bits, "psum_words": pw, "bands": bands,
                "seed": 10 + k, "idle_prob": 0.2, "bp_prob": 0.3})

"""cocotb testbench of the pooling engine (hdl/pool.py) on its exported Verilog.

Started by tests/hdl/test_pool_cocotb.py through ``cocotb_harness.run_cocotb``; the
configuration (lanes, bits, kmax, max_width, the frames' shapes and pooling configs,
seeds, probabilities) comes in ``$CONVC_TB_CONFIG``.  Driver (random idle cycles; the
frame config set with each frame's first pixel, garbage otherwise) -> DUT -> monitor
(random backpressure); the model is tests/hdl/model_pool.py (numeric.py); the checker
compares every output word (all lanes, first, last)."""

from __future__ import annotations

import random

import numpy as np

try:  # only inside the simulator
    import cocotb
except ImportError:  # pragma: no cover
    cocotb = None

import cocotb_harness as h
from model_pool import pool_outputs, random_frame


if cocotb is not None:

    @cocotb.test()
    async def pool_frames_random(dut):
        cfg = h.tb_config()
        lanes, bits, mw = cfg["lanes"], cfg["bits"], cfg["max_width"]
        seed = cfg["seed"]
        rng = np.random.default_rng(seed)
        await h.start_clock_and_reset(dut, zero=("i__valid", "o__ready", "kind", "k", "s", "width",
                                                 "avg_mul", "avg_shift"))
        fields = h.pixel_fields(lanes, bits)
        words, cfgs, want = [], [], []
        for H, W, kind, k, s, extreme, mul, shift in cfg["jobs"]:
            frame = random_frame(rng, H, W, lanes, bits, extreme)
            for r in range(H):
                for c in range(W):
                    words.append(fields.pack(**{f"d{l}": int(frame[r, c, l]) for l in range(lanes)},
                                             first=int(r == 0 and c == 0), last=int(r == H - 1 and c == W - 1)))
                    cfgs.append((kind, k, s, W, mul, shift) if r == 0 and c == 0 else None)
            for d, f, l in pool_outputs(frame, kind, k, s, mul, shift, bits):
                want.append(fields.pack(**{f"d{j}": d[j] for j in range(lanes)}, first=f, last=l))
        grng = random.Random(seed + 9)

        def set_cfg(n):
            c = cfgs[n]
            if c is None:  # garbage: only a frame's first pixel samples the config
                c = (grng.randrange(4), grng.randrange(16), grng.randrange(16), grng.randrange(mw + 1),
                     grng.randrange(1 << 18), grng.randrange(64))
            dut.kind.value, dut.k.value, dut.s.value, dut.width.value = c[0], c[1], c[2], c[3]
            dut.avg_mul.value, dut.avg_shift.value = c[4], c[5]

        drv = h.StreamDriver(dut, "i", idle_prob=cfg["idle_prob"], rng=random.Random(seed + 1),
                             before_word=set_cfg)
        mon = h.StreamMonitor(dut, "o", backpressure_prob=cfg["bp_prob"], rng=random.Random(seed + 2))
        task = cocotb.start_soon(drv.send(words))
        got = await mon.collect(len(want), timeout_cycles=500 + 10 * len(words))
        await task
        await mon.expect_idle(30)
        n = h.check_words(got, want, what="output word", describe=lambda j: f"got {fields.unpack(got[j])}")
        dut._log.info("pool: %d frames, %d pixels in, %d words checked, 0 mismatches",
                      len(cfg["jobs"]), len(words), n)

"""cocotb testbench of the fully connected engine (hdl/fc.py) on its exported Verilog.

Started by tests/hdl/test_fc_cocotb.py through ``cocotb_harness.run_cocotb``; the
configuration (lanes, bits, psum_words, the bands' shapes, seeds, probabilities) comes
in ``$CONVC_TB_CONFIG``.  Three drivers (bias, weights, pixels; each with random idle
cycles; the band config set with each band's first pixel, garbage otherwise) -> DUT ->
monitor with random backpressure; the model is tests/hdl/model_fc.py (numeric.py); the
checker compares every output word (all lanes, first, last)."""

from __future__ import annotations

import random

import numpy as np

try:  # only inside the simulator
    import cocotb
except ImportError:  # pragma: no cover
    cocotb = None

import cocotb_harness as h
from model_fc import band_expected, make_band


if cocotb is not None:

    @cocotb.test()
    async def fc_bands_random(dut):
        cfg = h.tb_config()
        il, ol, bits, pw = cfg["in_lanes"], cfg["out_lanes"], cfg["bits"], cfg["psum_words"]
        seed = cfg["seed"]
        rng = np.random.default_rng(seed)
        bands = [make_band(rng, il, ol, bits, G, P, extreme=e) for G, P, e in cfg["bands"]]
        await h.start_clock_and_reset(dut, zero=("i__valid", "weights__valid", "bias__valid", "o__ready",
                                                 "groups", "pixels", "acc_shift", "bias_shift"))
        pf, of = h.pixel_fields(il, bits), h.pixel_fields(ol, bits)
        wf = h.Fields([(f"w{o}_{i}", bits, True) for o in range(ol) for i in range(il)])
        bf = h.Fields([(f"b{o}", 32, True) for o in range(ol)])

        bias_words = [bf.pack(**{f"b{o}": int(b["b"][o]) for o in range(ol)}) for b in bands]
        w_words = [wf.pack(**{f"w{o}_{i}": int(b["w"][g][o][i]) for o in range(ol) for i in range(il)})
                   for b in bands for g in range(b["G"])]
        px_words, px_cfg = [], []
        for b in bands:
            G, P = b["G"], b["P"]
            for g in range(G):
                for p in range(P):
                    px_words.append(pf.pack(**{f"d{i}": int(b["x"][g][p][i]) for i in range(il)},
                                            first=int(p == 0), last=int(p == P - 1)))
                    px_cfg.append((G, P, b["acc_shift"], b["bias_shift"]) if g == 0 and p == 0 else None)
        grng = random.Random(seed + 5)

        def set_cfg(k):
            c = px_cfg[k]
            if c is None:  # garbage: only the band's first pixel samples the config
                c = (grng.randrange(1 << 16), grng.randrange(pw + 1), grng.randrange(-128, 128),
                     grng.randrange(64))
            dut.groups.value, dut.pixels.value = c[0], c[1]
            dut.acc_shift.value, dut.bias_shift.value = h.to_unsigned(c[2], 8), c[3]

        ip, bp = cfg["idle_prob"], cfg["bp_prob"]
        drivers = [
            h.StreamDriver(dut, "bias", idle_prob=ip, rng=random.Random(seed + 1)).send(bias_words),
            h.StreamDriver(dut, "weights", idle_prob=ip, rng=random.Random(seed + 2)).send(w_words),
            h.StreamDriver(dut, "i", idle_prob=ip, rng=random.Random(seed + 3), before_word=set_cfg).send(px_words),
        ]
        tasks = [cocotb.start_soon(d) for d in drivers]
        want_t = [w for b in bands for w in band_expected(b)]
        want = [of.pack(**{f"d{o}": d[o] for o in range(ol)}, first=f, last=l) for d, f, l in want_t]
        mon = h.StreamMonitor(dut, "o", backpressure_prob=bp, rng=random.Random(seed + 4))
        got = await mon.collect(len(want), timeout_cycles=500 + 10 * len(px_words))
        for t in tasks:
            await t
        await mon.expect_idle(30)
        n = h.check_words(got, want, what="output word", describe=lambda k: f"got {of.unpack(got[k])}")
        dut._log.info("fc: %d bands, %d pixels in, %d words checked, 0 mismatches",
                      len(bands), len(px_words), n)

"""cocotb testbench of the convolution engine (hdl/conv.py) on its exported Verilog.

Started by tests/hdl/test_conv_cocotb.py through ``cocotb_harness.run_cocotb``; the
configuration (the engine's sizes, the bands' shapes, seeds, idle/backpressure
probabilities) comes in ``$CONVC_TB_CONFIG``.

* drivers: four :class:`cocotb_harness.StreamDriver` s -- ``bias`` (the band's
  configuration inputs are set right before its bias word is offered; garbage
  otherwise), ``weight``, ``i`` (main pixels) and ``ip`` (preload pixels) -- each with
  random idle cycles, all running at the same time;
* monitor: :class:`cocotb_harness.StreamMonitor` on ``o`` with random backpressure;
* model: tests/hdl/model_conv.py (numeric.py's round_shift / requantize / check_acc);
* checker: :func:`cocotb_harness.check_words` compares every output word (all lanes,
  first, last), in order; then nothing more may come out and ``busy`` must be low.
"""

from __future__ import annotations

import random

import numpy as np

try:  # only inside the simulator
    import cocotb
    from cocotb.triggers import RisingEdge
except ImportError:  # pragma: no cover
    cocotb = None

import cocotb_harness as h
from model_conv import band_streams, conv_band, expected_outputs, random_band

CONFIG_INPUTS = ("kernel", "stride", "width", "rows", "groups", "acc_shift", "bias_shift", "preload")


def pixel_fields(lanes: int, bits: int) -> h.Fields:
    return h.Fields([(f"d{k}", bits, True) for k in range(lanes)] + [("first", 1, False), ("last", 1, False)])


def bias_fields(lanes: int) -> h.Fields:
    return h.Fields([(f"d{k}", 32, True) for k in range(lanes)])


def make_bands(cfg: dict):
    rng = np.random.default_rng(cfg["seed"])
    return [random_band(rng, Pi=cfg["in_lanes"], Po=cfg["out_lanes"], bits=cfg["bits"], **kw)
            for kw in cfg["bands"]]


def band_words(cfg: dict, bands):
    """The input words of every band and the expected output words."""
    Pi, Po, bits = cfg["in_lanes"], cfg["out_lanes"], cfg["bits"]
    pf, of, bf = pixel_fields(Pi, bits), pixel_fields(Po, bits), bias_fields(Po)
    bias_w, weight_w, pixel_w, pre_w, want, labels = [], [], [], [], [], []
    for n, b in enumerate(bands):
        assert conv_band(b)[3] == 0, "test band overflows the 48-bit accumulator"
        bias, weights, pixels, preload = band_streams(b)
        pre_w += [pf.pack(first=fi, last=la, **{f"d{k}": v for k, v in enumerate(px)})
                  for px, fi, la in preload]
        bias_w.append(bf.pack(**{f"d{k}": v for k, v in enumerate(bias)}))
        weight_w += [h.to_unsigned(w, bits) for w in weights]
        pixel_w += [pf.pack(first=fi, last=la, **{f"d{k}": v for k, v in enumerate(px)})
                    for px, fi, la in pixels]
        for k, (z, fi, la) in enumerate(expected_outputs(b)):
            want.append(of.pack(first=fi, last=la, **{f"d{j}": v for j, v in enumerate(z)}))
            labels.append(f"band {n} output {k} (y={k // b.conv_w}, x={k % b.conv_w})")
    return bias_w, weight_w, pixel_w, pre_w, want, labels


if cocotb is not None:

    @cocotb.test()
    async def conv_random_bands(dut):
        """Several bands back to back, random idle cycles on all inputs, random
        backpressure; every output word checked."""
        cfg = h.tb_config()
        zero = ("bias__valid", "weight__valid", "i__valid", "ip__valid", "o__ready") + CONFIG_INPUTS
        await h.start_clock_and_reset(dut, zero=zero)
        bands = make_bands(cfg)
        bias_w, weight_w, pixel_w, pre_w, want, labels = band_words(cfg, bands)
        seed = cfg["seed"]
        crng = random.Random(seed + 10)

        def set_config(k):
            for name, val in bands[k].config().items():
                getattr(dut, name).value = h.to_unsigned(int(val), 8) if name == "acc_shift" else int(val)

        def garbage():
            dut.kernel.value = crng.randrange(32)
            dut.stride.value = crng.randrange(16)
            dut.width.value = crng.randrange(4096)
            dut.rows.value = crng.randrange(4096)
            dut.groups.value = crng.randrange(1 << 16)
            dut.acc_shift.value = crng.randrange(256)
            dut.bias_shift.value = crng.randrange(64)
            dut.preload.value = crng.randrange(2)

        async def send_bias():
            for k, word in enumerate(bias_w):
                drv = h.StreamDriver(dut, "bias", idle_prob=cfg["idle_prob"],
                                     rng=random.Random(seed + 20 + k), before_word=lambda _k, k=k: set_config(k))
                await drv.send([word])
                garbage()  # the configuration is sampled with the bias word only

        idle = cfg["idle_prob"]
        wdrv = h.StreamDriver(dut, "weight", idle_prob=idle, rng=random.Random(seed + 1))
        pdrv = h.StreamDriver(dut, "i", idle_prob=idle, rng=random.Random(seed + 2))
        ipdrv = h.StreamDriver(dut, "ip", idle_prob=idle, rng=random.Random(seed + 4))
        mon = h.StreamMonitor(dut, "o", backpressure_prob=cfg["bp_prob"], rng=random.Random(seed + 3))
        tasks = [cocotb.start_soon(send_bias()), cocotb.start_soon(wdrv.send(weight_w)),
                 cocotb.start_soon(pdrv.send(pixel_w)), cocotb.start_soon(ipdrv.send(pre_w))]
        got = await mon.collect(len(want), timeout_cycles=4000 + 30 * (len(pixel_w) + len(weight_w)))
        for t in tasks:
            await t
        await mon.expect_idle(40)
        assert int(dut.busy.value) == 0, "busy after the last band"
        assert int(dut.err.value) == 0, "err raised on a valid band"
        of = pixel_fields(cfg["out_lanes"], cfg["bits"])
        lo, hi = -(1 << (cfg["bits"] - 1)), (1 << (cfg["bits"] - 1)) - 1
        codes = [v for w in want for k, v in of.unpack(w).items() if k.startswith("d")]
        n_lo, n_hi = codes.count(lo), codes.count(hi)
        dut._log.info("expected codes: %d at %d (saturated low), %d at %d (high), %d inside",
                      n_lo, lo, n_hi, hi, len(codes) - n_lo - n_hi)
        if cfg.get("expect_saturation"):
            assert n_lo and n_hi and len(codes) > n_lo + n_hi, "the bands do not saturate both ways"
        n = h.check_words(got, want, what="output word",
                          describe=lambda k: f"{labels[k]}: got {of.unpack(got[k])} want {of.unpack(want[k])}")
        dut._log.info("%d bands, %d + %d preload pixels, %d weights: %d output words checked, "
                      "0 mismatches", len(bands), len(pixel_w), len(pre_w), len(weight_w), n)
        await RisingEdge(dut.clk)

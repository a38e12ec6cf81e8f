"""cocotb testbench of the LCN engine (hdl/lcn.py) on its exported Verilog.

Started by tests/hdl/test_lcn_cocotb.py through ``cocotb_harness.run_cocotb``; the
configuration (channels, bits, the jobs as LCNCase JSON, seeds, probabilities) comes in
``$CONVC_TB_CONFIG``.  Per job: configuration inputs set, the window block (G, R, Q, in a
random order) and both PWL tables written through their ports; sweep A: driver (random
idle cycles) -> DUT -> monitor (random backpressure) for every frame of the job back to
back; the frame mean read when ``mean_valid`` rises; sweep B on the last frame (its v and
s from the model).  The model is convc.sim.golden on a one-record OP_LCN program
(tests/hdl/model_lcn.py); the checker compares every a_o word (v[..], s, first, last),
the mean and every b_o word (y[..], first, last)."""

from __future__ import annotations

import random

try:  # only inside the simulator
    import cocotb
    from cocotb.triggers import FallingEdge, RisingEdge
except ImportError:  # pragma: no cover
    cocotb = None

import cocotb_harness as h
from convc.compiler import isa
from model_lcn import LCNCase, golden_lcn


def a_in_fields(channels: int, bits: int) -> h.Fields:
    return h.Fields([(f"x{c}", bits, True) for c in range(channels)] + [("first", 1, False), ("last", 1, False)])


def vs_fields(channels: int, bits: int) -> h.Fields:
    return h.Fields([(f"v{c}", bits, True) for c in range(channels)]
                    + [("s", bits, True), ("first", 1, False), ("last", 1, False)])


CONFIG = ("n_maps", "width", "k", "m_shift", "sq_shift", "s2_shift", "y_shift", "mean_mul",
          "mean_shift", "eps")
ZERO = ("a_i__valid", "a_o__ready", "b_i__valid", "b_o__ready", "window__en", "sqrt_table__en",
        "recip_table__en") + CONFIG


async def configure(dut, case: LCNCase, rng: random.Random):
    dut.n_maps.value = case.C
    dut.width.value = case.W
    dut.k.value = case.K
    for name in ("m_shift", "sq_shift", "s2_shift", "y_shift"):
        getattr(dut, name).value = h.to_unsigned(getattr(case, name), 8)
    dut.mean_mul.value = case.mean_mul
    dut.mean_shift.value = case.mean_shift
    dut.eps.value = case.eps
    words = list(enumerate(w & 0xFFFF for w in case.window_words()))
    rng.shuffle(words)
    t1 = cocotb.start_soon(h.write_words(dut, "sqrt_table", enumerate(isa.table_words(case.sqrt))))
    t2 = cocotb.start_soon(h.write_words(dut, "recip_table", enumerate(isa.table_words(case.recip))))
    await h.write_words(dut, "window", words)
    await t1
    await t2


if cocotb is not None:

    @cocotb.test()
    async def lcn_jobs_random(dut):
        cfg = h.tb_config()
        C, bits = cfg["channels"], cfg["bits"]
        seed = cfg["seed"]
        rng = random.Random(seed)
        await h.start_clock_and_reset(dut, zero=ZERO)
        af, vf = a_in_fields(C, bits), vs_fields(C, bits)
        checked = 0
        for j, job_json in enumerate(cfg["jobs"]):
            job = [LCNCase.from_json(d) for d in job_json]
            results = [golden_lcn(case) for case in job]
            assert all(r.overflows == 0 for r in results)
            await configure(dut, job[0], rng)

            # ---- sweep A: every frame back to back ------------------------------
            words, want = [], []
            for case, res in zip(job, results):
                H, W = case.H, case.W
                for k in range(H * W):
                    px = {f"x{c}": int(case.x[c, k // W, k % W]) for c in range(case.C)}
                    px.update({f"x{c}": rng.randint(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
                               for c in range(case.C, C)})             # ignored maps
                    words.append(af.pack(**px, first=int(k == 0), last=int(k == H * W - 1)))
                for w in res.a_words():
                    want.append(vf.pack(**{f"v{c}": (w["v"][c] if c < case.C else 0) for c in range(C)},
                                        s=w["s"], first=w["first"], last=w["last"]))
            drv = h.StreamDriver(dut, "a_i", idle_prob=cfg["idle_prob"], rng=random.Random(rng.random()))
            mon = h.StreamMonitor(dut, "a_o", backpressure_prob=cfg["bp_prob"],
                                  rng=random.Random(rng.random()))
            task = cocotb.start_soon(drv.send(words))
            got = await mon.collect(len(want), timeout_cycles=500 + 40 * len(want))
            await task
            checked += h.check_words(got, want, what=f"job {j} a_o word",
                                     describe=lambda k: f"got {vf.unpack(got[k])} want {vf.unpack(want[k])}")
            for _ in range(30):
                await FallingEdge(dut.clk)
                if dut.mean_valid.value:
                    break
                await RisingEdge(dut.clk)
            assert dut.mean_valid.value, "mean_valid did not rise"
            mean = dut.mean.value.to_signed()
            assert mean == results[-1].mean, f"job {j}: mean {mean}, want {results[-1].mean}"
            await RisingEdge(dut.clk)

            # ---- sweep B: the last frame ------------------------------------------
            last = results[-1]
            bwords = [vf.pack(**{f"v{c}": (w["v"][c] if c < len(w["v"]) else 0) for c in range(C)},
                              s=w["s"], first=w["first"], last=w["last"]) for w in last.a_words()]
            bwant = [af.pack(**{f"x{c}": (w["data"][c] if c < len(w["data"]) else 0) for c in range(C)},
                             first=w["first"], last=w["last"]) for w in last.b_words()]
            drv = h.StreamDriver(dut, "b_i", idle_prob=cfg["idle_prob"], rng=random.Random(rng.random()))
            mon = h.StreamMonitor(dut, "b_o", backpressure_prob=cfg["bp_prob"],
                                  rng=random.Random(rng.random()))
            task = cocotb.start_soon(drv.send(bwords))
            got = await mon.collect(len(bwant), timeout_cycles=500 + 40 * len(bwant))
            await task
            checked += h.check_words(got, bwant, what=f"job {j} b_o word",
                                     describe=lambda k: f"got {af.unpack(got[k])} want {af.unpack(bwant[k])}")
            await mon.expect_idle(20)
            dut._log.info("job %d (K=%d, %d frame(s), last %dx%d): a_o, mean, b_o match",
                          j, job[0].K, len(job), job[-1].H, job[-1].W)
        dut._log.info("%d words checked, 0 mismatches", checked)

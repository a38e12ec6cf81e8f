"""cocotb testbench of the pointwise engine (hdl/pointwise.py) on its exported Verilog.

Started by tests/hdl/test_pointwise_cocotb.py through ``cocotb_harness.run_cocotb``;
the configuration (bits, the PWL table as JSON, seeds, probabilities, sizes) comes in
``$CONVC_TB_CONFIG``.  Driver -> DUT -> monitor, with random idle cycles on ``i`` and
random backpressure on ``o``; the model is :func:`pointwise_model` (numeric.py's
saturate / pwl_eval); the checker compares every output word (data, first, last).
"""

from __future__ import annotations

import random

import numpy as np

from convc.compiler import isa
from convc.compiler.numeric import QFormat, saturate
from convc.compiler.pwl_table import PWLTable, pwl_eval

try:  # only inside the simulator
    import cocotb
    from cocotb.triggers import RisingEdge
except ImportError:  # pragma: no cover
    cocotb = None

import cocotb_harness as h


def pointwise_model(act, z, bits: int, table: PWLTable | None):
    """The activation step of isa (as in convc.sim.golden): codes in, codes out.
    ``act`` is one code or an array (one per element)."""
    z = np.asarray(z, dtype=np.int64)
    act = np.broadcast_to(np.asarray(act), z.shape)
    out = z.copy()
    out[act == isa.ACT_RELU] = np.maximum(z[act == isa.ACT_RELU], 0)
    sel = act == isa.ACT_ABS
    out[sel] = saturate(np.abs(z[sel]), QFormat(bits, 0))[0]
    sel = act == isa.ACT_PWL
    if sel.any():
        out[sel] = pwl_eval(table, z[sel])[0]
    return out


def payload_fields(bits: int) -> h.Fields:
    return h.Fields([("data", bits, True), ("first", 1, False), ("last", 1, False)])


def frame_flags(n: int, rng: random.Random) -> list[tuple[int, int]]:
    """(first, last) per element: frames of random length 1..40."""
    flags, k = [], 0
    while k < n:
        length = min(rng.randint(1, 40), n - k)
        for j in range(length):
            flags.append((int(j == 0), int(j == length - 1)))
        k += length
    return flags


def input_codes(bits: int, n_random: int, rng: random.Random, table: PWLTable | None) -> list[int]:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    codes = [lo, lo + 1, hi, hi - 1, 0, 1, -1]
    if table is not None:
        for b in table.breakpoints:
            codes += [c for c in (b - 1, b, b + 1) if lo <= c <= hi]
    codes += [rng.randint(lo, hi) for _ in range(n_random)]
    return codes


async def _setup(dut, cfg):
    await h.start_clock_and_reset(dut, zero=("i__valid", "o__ready", "table__en", "act"))
    table = PWLTable.from_json(cfg["table"])
    await h.write_words(dut, "table", enumerate(isa.table_words(table)))
    return table


async def _run_stream(dut, cfg, codes, acts, seed, label):
    """Send codes (act per element), collect, check every word; then check that no
    extra word follows."""
    bits = cfg["bits"]
    table = PWLTable.from_json(cfg["table"])
    fields = payload_fields(bits)
    rng = random.Random(seed)
    flags = frame_flags(len(codes), rng)
    words = [fields.pack(data=c, first=f, last=l) for c, (f, l) in zip(codes, flags)]

    def set_act(k):
        dut.act.value = int(acts[k])

    drv = h.StreamDriver(dut, "i", idle_prob=cfg["idle_prob"], rng=random.Random(seed + 1),
                         before_word=set_act)
    mon = h.StreamMonitor(dut, "o", backpressure_prob=cfg["bp_prob"], rng=random.Random(seed + 2))
    task = cocotb.start_soon(drv.send(words))
    got = await mon.collect(len(words))
    await task
    await mon.expect_idle(PIPE_DRAIN)

    want_data = pointwise_model(np.asarray(acts), codes, bits, table)
    want = [fields.pack(data=int(d), first=f, last=l) for d, (f, l) in zip(want_data, flags)]
    n = h.check_words(got, want, what=f"{label} word",
                      describe=lambda k: f"act={isa.ACT_NAMES[int(acts[k])]} z={codes[k]} "
                                         f"got={fields.unpack(got[k])}")
    dut._log.info("%s: %d words checked, 0 mismatches", label, n)


PIPE_DRAIN = 20

if cocotb is not None:

    @cocotb.test()
    async def pointwise_each_mode(dut):
        """Every mode on its own stream; ACT_PWL on every input code when
        ``exhaustive_pwl`` (all 2**bits codes)."""
        cfg = h.tb_config()
        bits = cfg["bits"]
        table = await _setup(dut, cfg)
        rng = random.Random(cfg["seed"])
        for act in (isa.ACT_NONE, isa.ACT_RELU, isa.ACT_ABS, isa.ACT_PWL):
            codes = input_codes(bits, cfg["n_random"], rng, table)
            if act == isa.ACT_PWL and cfg.get("exhaustive_pwl"):
                codes = list(range(-(1 << (bits - 1)), 1 << (bits - 1)))
                rng.shuffle(codes)
            await _run_stream(dut, cfg, codes, [act] * len(codes), rng.randint(0, 1 << 30),
                              isa.ACT_NAMES[act])

    @cocotb.test()
    async def pointwise_mode_per_element(dut):
        """The mode changes between elements (it travels with its element)."""
        cfg = h.tb_config()
        bits = cfg["bits"]
        table = await _setup(dut, cfg)
        rng = random.Random(cfg["seed"] + 7)
        codes = input_codes(bits, cfg["n_random"], rng, table)
        acts = [rng.choice(list(isa.ACT_NAMES)) for _ in codes]
        await _run_stream(dut, cfg, codes, acts, rng.randint(0, 1 << 30), "mixed")
        await RisingEdge(dut.clk)

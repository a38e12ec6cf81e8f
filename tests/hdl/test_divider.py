"""The serial divider against Python's ``//`` and ``%``, every cycle count as promised."""

import random

import pytest
from amaranth.sim import Simulator

from convc.hdl.divider import SerialDivider


@pytest.mark.parametrize("nb,db", [(13, 4), (8, 8), (5, 3)])
def test_quotient_and_remainder_after_latency_cycles(nb, db):
    dut = SerialDivider(nb, db)
    rng = random.Random(nb * 100 + db)
    cases = [(0, 1), ((1 << nb) - 1, 1), ((1 << nb) - 1, (1 << db) - 1), (5, 7)]
    cases += [(rng.randrange(1 << nb), rng.randrange(1, 1 << db)) for _ in range(40)]

    async def bench(ctx):
        for num, den in cases:
            ctx.set(dut.num, num)
            ctx.set(dut.den, den)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            for _ in range(dut.latency - 1):
                assert not ctx.get(dut.done)
                await ctx.tick()
            await ctx.tick()
            assert ctx.get(dut.done)
            assert (ctx.get(dut.quotient), ctx.get(dut.remainder)) == (num // den, num % den), (num, den)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_bad_widths_are_named():
    with pytest.raises(ValueError, match="num_bits=0"):
        SerialDivider(0, 4)

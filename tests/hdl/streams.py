"""Amaranth-simulation helpers for ``amaranth.lib.stream`` ports.

Import with ``import streams`` from a test in ``tests/hdl`` (``tests/hdl/conftest.py``
puts this folder on ``sys.path``; pytest runs with ``--import-mode=importlib``).

All helpers are ``async`` and take the testbench context ``ctx`` of
``sim.add_testbench(async def bench(ctx): ...)``; they use the ``sync`` clock domain.

* :func:`stream_put` / :func:`stream_get` -- one transfer, no extra delay.
* :func:`drive` -- send a list of payloads, with random idle cycles (``idle_prob``).
* :func:`collect` -- receive ``count`` payloads, with random backpressure
  (``ready`` low with probability ``bp_prob``).
* :func:`run_stream_test` -- build a simulator, run ``drive`` and ``collect`` in
  parallel (plus an optional ``setup`` coroutine, e.g. a table load, first) and
  return the collected payloads.

Payloads are whatever ``ctx.set`` accepts / ``ctx.get`` returns: ints for plain shapes,
dicts (``{"data": -3, "first": 1, "last": 0}``) in, ``data.Const`` views out for struct
layouts.  :func:`as_dict` turns such a view into a plain dict for comparisons.
"""

from __future__ import annotations

import random

from amaranth.lib import data
from amaranth.sim import Simulator

__all__ = ["stream_put", "stream_get", "drive", "collect", "as_dict", "run_stream_test"]


async def stream_put(ctx, port, payload) -> None:
    """Offer ``payload`` on ``port`` until it is accepted (valid & ready at an edge)."""
    ctx.set(port.valid, 1)
    ctx.set(port.payload, payload)
    await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def stream_get(ctx, port):
    """Raise ``ready`` on ``port`` until a payload arrives; return it."""
    ctx.set(port.ready, 1)
    (payload,) = await ctx.tick().sample(port.payload).until(port.valid)
    ctx.set(port.ready, 0)
    return payload


async def drive(ctx, port, payloads, *, rng: random.Random | None = None,
                idle_prob: float = 0.0) -> None:
    """Send every payload in order; before each, idle (valid low) for one cycle at a
    time with probability ``idle_prob``."""
    rng = rng or random.Random(0)
    for p in payloads:
        while idle_prob and rng.random() < idle_prob:
            await ctx.tick()
        await stream_put(ctx, port, p)


async def collect(ctx, port, count: int, *, rng: random.Random | None = None,
                  bp_prob: float = 0.0, timeout: int | None = None) -> list:
    """Receive ``count`` payloads; each cycle ``ready`` is low with probability
    ``bp_prob``.  Raises ``TimeoutError`` after ``timeout`` cycles (default
    ``100 + 20 * count``)."""
    rng = rng or random.Random(1)
    timeout = 100 + 20 * count if timeout is None else timeout
    out = []
    cycles = 0
    while len(out) < count:
        ready = not (bp_prob and rng.random() < bp_prob)
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if valid and ready:
            out.append(payload)
        cycles += 1
        if cycles > timeout:
            raise TimeoutError(f"collect: {len(out)} of {count} payloads after {cycles} cycles")
    ctx.set(port.ready, 0)
    return out


def as_dict(view) -> dict:
    """A ``data.Const`` struct view as ``{field: int}`` (nested structs: nested dicts)."""
    if isinstance(view, data.Const):
        return {name: as_dict(view[name]) for name, _ in view.shape()}
    return int(view)


def run_stream_test(dut, i_port, o_port, payloads, *, count: int | None = None,
                    seed: int = 0, idle_prob: float = 0.0, bp_prob: float = 0.0,
                    setup=None, after=None, vcd: str | None = None) -> list:
    """Simulate ``dut``: (optional ``await setup(ctx)``), then drive ``payloads`` into
    ``i_port`` while collecting ``count`` (default ``len(payloads)``) from ``o_port``;
    ``await after(ctx)`` runs once everything is collected.  Returns the collected
    payloads.  Idle cycles and backpressure come from independent RNGs seeded by
    ``seed``."""
    count = len(payloads) if count is None else count
    result: list = []
    ready_to_go = {"flag": setup is None}

    async def bench_in(ctx):
        if setup is not None:
            await setup(ctx)
            ready_to_go["flag"] = True
        await drive(ctx, i_port, payloads, rng=random.Random(seed * 2 + 1), idle_prob=idle_prob)

    async def bench_out(ctx):
        while not ready_to_go["flag"]:
            await ctx.tick()
        result.extend(await collect(ctx, o_port, count, rng=random.Random(seed * 2 + 2),
                                    bp_prob=bp_prob))
        if after is not None:
            await after(ctx)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench_in, background=True)
    sim.add_testbench(bench_out)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return result

"""Amaranth-simulation helpers for ``amaranth.lib.stream`` ports.

Import with ``import streams`` from a test in ``tests/hdl`` (``tests/hdl/conftest.py``
puts this folder on ``sys.path``; pytest runs with ``--import-mode=importlib``).

All helpers are ``async`` and take the testbench context ``ctx`` of
``sim.add_testbench(async def bench(ctx): ...)``; they use the ``sync`` clock domain.

* :func:`stream_put` / :func:`stream_get` -- one transfer, no extra delay.
* :func:`drive` -- send a list of payloads, with random idle cycles (``idle_prob``).
* :func:`collect` -- receive ``count`` payloads, with random backpressure
  (``ready`` low with probability ``bp_prob``).
* :func:`expect_quiet` -- ``ready`` high for some cycles, nothing may come out.
* :func:`trace_bench` -- a background testbench logging the handshakes of ``i`` and ``o``.
* :func:`check_outputs` -- compare two lists, naming the first differences.
* :func:`randomize` -- garbage on inputs the design must ignore at the moment.
* :func:`run_testbenches` -- simulate a design with background testbenches until the
  main one returns.
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

__all__ = ["stream_put", "stream_get", "drive", "collect", "as_dict", "expect_quiet", "trace_bench",
           "check_outputs", "randomize", "run_testbenches",
           "run_stream_test"]


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


async def expect_quiet(ctx, port, cycles: int, what: str = "extra output word") -> None:
    """Hold ``ready`` high on ``port`` for ``cycles`` cycles: ``valid`` must stay low
    (nothing extra, nothing duplicated after the expected payloads)."""
    ctx.set(port.ready, 1)
    for _ in range(cycles):
        _, _, valid = await ctx.tick().sample(port.valid)
        assert not valid, what


def trace_bench(dut, trace: list):
    """A testbench appending ``(cycle, i.valid, i.ready, o.valid, o.ready)`` of every
    cycle to ``trace`` (add it as a background testbench)."""
    async def bench(ctx):
        cyc = 0
        async for _, _, iv, ir, ov, orr in ctx.tick().sample(dut.i.valid, dut.i.ready,
                                                            dut.o.valid, dut.o.ready):
            trace.append((cyc, iv, ir, ov, orr))
            cyc += 1
    return bench


def check_outputs(got: list, want: list) -> None:
    """Same length and equal element by element; the message names the first difference."""
    assert len(got) == len(want), f"{len(got)} outputs, {len(want)} expected"
    bad = [k for k in range(len(want)) if got[k] != want[k]]
    assert not bad, (f"{len(bad)} of {len(want)} outputs differ; first #{bad[0]}: "
                     f"got {got[bad[0]]} want {want[bad[0]]}")


def as_dict(view) -> dict:
    """A ``data.Const`` struct view as ``{field: int}`` (nested structs: nested dicts)."""
    if isinstance(view, data.Const):
        return {name: as_dict(view[name]) for name, _ in view.shape()}
    return int(view)


def randomize(ctx, rng: random.Random, signals) -> None:
    """Set each of ``signals`` to a random value of its width (garbage on inputs the
    design must ignore now, e.g. a configuration outside its ``start`` cycle)."""
    for sig in signals:
        ctx.set(sig, rng.randrange(1 << len(sig)))


def run_testbenches(dut, background, main, *, vcd: str | None = None) -> None:
    """Simulate ``dut`` (10 ns clock) with the ``background`` testbenches (added in this
    order) and ``main``, until ``main`` returns; ``vcd``: write a waveform file."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in background:
        sim.add_testbench(tb, background=True)
    sim.add_testbench(main)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()


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

    run_testbenches(dut, [bench_in], bench_out, vcd=vcd)
    return result

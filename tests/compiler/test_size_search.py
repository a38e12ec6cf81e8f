"""The size pass's search (``compiler/passes/size.py``), with stand-in timings.

``tests/compiler/test_size.py`` checks, with the real cycle model, that the pruned search
finds the exhaustive best and that an impossible forced size is refused. Here the
``cycles`` callback is a stand-in whose full figures and floors the test chooses, so that
the result can be checked against a plain enumeration: pruning by floor with loose floors,
ties going to fewer DSP slices, forced lanes, the refusals naming the resource, the helpers,
and the logic limit (``Board.holds_logic``, a board with few LUTs)."""

from __future__ import annotations

import dataclasses
import random
import re

import numpy as np
import pytest

from convc.boards import get_board
from convc.compiler.hwconfig import HardwareConfig, HardwareConfigError
from convc.compiler.passes import frontend, fuse, lower_unfused, pwl_tables, quantize, schedule, shapes, size
from convc.errors import ConvcError
from convc.reference.modelfile import network_from_graph

V6 = get_board("virtex6")

# convolutions only (no FC-eligible layer): 3 -> 16 -> 16 maps, 3x3 kernels, a tanh table
CONV = {"name": "conv", "input": {"shape": [3, 16, 16]}, "classes": 4, "layers": [
    {"type": "conv2d", "attrs": {"out_channels": 16, "kernel": 3}}, {"type": "relu"},
    {"type": "maxpool2d", "attrs": {"kernel": 2}},
    {"type": "conv2d", "attrs": {"out_channels": 16, "kernel": 3}}, {"type": "tanh"}]}

# a convolution and two linear layers (FC-eligible): both kinds of candidate
FC = {"name": "fc", "input": {"shape": [2, 12, 12]}, "classes": 10, "layers": [
    {"type": "conv2d", "attrs": {"out_channels": 6, "kernel": 5}}, {"type": "relu"},
    {"type": "maxpool2d", "attrs": {"kernel": 2}}, {"type": "flatten"},
    {"type": "linear", "attrs": {"out_features": 24}}, {"type": "relu"},
    {"type": "linear", "attrs": {"out_features": 10}}]}


def _graph(spec, segments=16):
    """The IR after every pass before ``size`` (what ``size.run`` is given)."""
    net = network_from_graph(spec, spec["name"])
    net.init_params(seed=0)
    g = frontend.run(net, spec["name"])
    shapes.run(g, spec["name"])
    fuse.run(g)
    lower_unfused.run(g)
    calib = np.random.default_rng(0).random((2,) + net.input.shape, dtype=np.float32)
    quantize.run(g, net, calib, 16, spec["name"])
    pwl_tables.run(g, segments)
    return g


@pytest.fixture(scope="module")
def conv_graph():
    return _graph(CONV)


@pytest.fixture(scope="module")
def fc_graph():
    return _graph(FC)


def _key(hw):
    return (hw.in_lanes, hw.out_lanes, hw.fc_in_lanes, hw.fc_out_lanes)


class Timing:
    """A stand-in for the cycle model: ``full(hw)`` falls with the multipliers (conv and FC
    weighed differently); the floor is ``full`` less a pseudo-random slack up to ``loose``
    of it (a valid lower bound, in an order unlike the full figures'). Records every call."""

    def __init__(self, loose=0.6, full=None):
        self.loose = loose
        self._full = full
        self.calls = []           # (config key, fc_floor)
        self.hw = {}              # config key -> HardwareConfig

    def full(self, hw) -> int:
        if self._full is not None:
            return self._full(hw)
        conv = 4_000_000 // hw.conv_macs_per_cycle
        fc = 300_000 // hw.dsp_fc if hw.has_fc else 200_000
        return conv + fc

    def floor(self, hw) -> int:
        f = self.full(hw)
        slack = random.Random(hash(_key(hw))).random() * self.loose
        return int(f * (1 - slack))

    def __call__(self, prog, fc_floor):
        hw = prog.hw
        self.calls.append((_key(hw), fc_floor))
        self.hw[_key(hw)] = hw
        return self.floor(hw) if fc_floor else self.full(hw)


# ---- helpers ------------------------------------------------------------------------------
def test_writers_for_by_hand():
    # one port per 2 output lanes, a power of two, at most 8
    want = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 8: 4, 9: 8, 16: 8, 17: 8, 64: 8}
    assert {n: size.writers_for(n) for n in want} == want


def test_psum_choices_by_hand():
    # 5000 words: whole RAMB18 depths from ceil(5000/1024)*1024 halving, then the least need
    assert size._psum_choices(5000, 100) == [5120, 3072, 2048, 1024, 100]
    assert size._psum_choices(1024, 1024) == [1024]
    assert size._psum_choices(196, 28) == [1024, 28]
    for need_max, need_min in ((70_000, 300), (4096, 4096), (3000, 2500), (1, 1)):
        got = size._psum_choices(need_max, need_min)
        assert got[0] >= need_max and got[-1] == need_min
        assert all(a > b for a, b in zip(got, got[1:]))                 # largest first, no repeats
        assert all(v % 1024 == 0 for v in got[:-1])


def test_largest_is_the_linear_scan():
    rng = random.Random(2)
    for _ in range(300):
        lo = rng.randint(-3, 5)
        hi = lo + rng.randint(-2, 40)
        t = rng.randint(lo - 3, hi + 3)                                # ok(v) <=> v <= t
        want = max([v for v in range(lo, hi + 1) if v <= t], default=None)
        assert size._largest(lo, hi, lambda v: v <= t) == want, (lo, hi, t)


def test_pwl_segments(conv_graph):
    assert size.pwl_segments(conv_graph) == 16                          # the tanh table
    assert size.pwl_segments(_graph(CONV, segments=6)) == 6
    assert size.pwl_segments(_graph(FC)) == 1                           # ReLU only: no table


# ---- pruning --------------------------------------------------------------------------------
@pytest.mark.parametrize("loose", [0.0, 0.3, 0.9])
def test_pruning_by_floor_finds_the_enumerated_best(fc_graph, loose):
    """With floors up to 90% below the full figures, the pruned search still picks the
    candidate of least (full cycles, DSP) over all it considered, times only FC candidates
    by their floor, and leaves untimed only candidates whose floor is beyond the winner."""
    timing = Timing(loose=loose)
    hw, tried = size.run(fc_graph, V6, 16, where="fc", cycles=timing)
    rows = {(c["in_lanes"], c["out_lanes"], c["fc_in_lanes"], c["fc_out_lanes"]): c for c in tried}
    assert len(rows) == len(tried) > 10
    assert {c["fc_out_lanes"] > 0 for c in tried} == {False, True}           # both kinds
    best = min(rows, key=lambda k: (timing.full(timing.hw[k]), timing.hw[k].dsp))
    assert (timing.full(hw), hw.dsp) == (timing.full(timing.hw[best]), timing.hw[best].dsp)
    assert _key(hw) == best
    assert len(set(timing.calls)) == len(timing.calls)          # nothing is timed twice
    for key, floor_asked in timing.calls:
        if key[3] == 0:                               # without an FC engine: timed in full, no floor
            assert not floor_asked and (key, False) in timing.calls
        else:                                         # with one: its floor first, in full only if needed
            assert (key, True) in timing.calls
            assert ((key, False) in timing.calls) == (rows[key]["cycles"] is not None)
    for k, c in rows.items():
        if c["cycles"] is None:
            assert c["floor"] > timing.full(hw), (k, c)
        else:
            assert c["cycles"] == timing.full(timing.hw[k])
    untimed = sum(c["cycles"] is None for c in tried)
    if loose < 0.5:
        assert untimed > 0                            # it did prune


def test_pruned_and_exhaustive_agree(fc_graph):
    """The same search with every floor equal to the full figure picks the same."""
    pruned, _ = size.run(fc_graph, V6, 16, cycles=Timing(loose=0.5))
    full = Timing()
    exhaustive, tried = size.run(fc_graph, V6, 16, cycles=lambda p, f: full(p, False))
    assert pruned == exhaustive
    for c in tried:                                   # exact floors: only the slower ones are left
        assert c["cycles"] is not None or c["floor"] > full.full(exhaustive)


def test_ties_go_to_fewer_dsp(fc_graph, conv_graph):
    for graph in (fc_graph, conv_graph):
        hw, tried = size.run(graph, V6, 16, cycles=Timing(full=lambda hw: 1000))
        assert len({c["dsp"] for c in tried}) > 1
        assert hw.dsp == min(c["dsp"] for c in tried)
    # equal time for equal conv multipliers: the fewest DSP among the fastest
    timing = Timing(full=lambda hw: 10_000_000 // hw.conv_macs_per_cycle)
    hw, tried = size.run(conv_graph, V6, 16, cycles=timing)
    fastest = min(timing.full(timing.hw[k]) for k in timing.hw)
    assert timing.full(hw) == fastest
    assert hw.dsp == min(h.dsp for h in timing.hw.values() if timing.full(h) == fastest)


# ---- forced sizes ---------------------------------------------------------------------------
def test_forced_conv_lanes_are_honoured(conv_graph):
    timing = Timing()
    hw, tried = size.run(conv_graph, V6, 16, in_lanes=2, out_lanes=5, cycles=timing)
    assert (hw.in_lanes, hw.out_lanes, hw.writers) == (2, 5, 4)
    assert tried and all((c["in_lanes"], c["out_lanes"]) == (2, 5) for c in tried)
    hw, tried = size.run(conv_graph, V6, 16, in_lanes=3, cycles=timing)
    assert hw.in_lanes == 3 and {c["in_lanes"] for c in tried} == {3}
    hw, tried = size.run(conv_graph, V6, 16, out_lanes=7, cycles=timing)
    assert hw.out_lanes == 7 and {c["out_lanes"] for c in tried} == {7}
    assert len({c["in_lanes"] for c in tried}) > 1                      # in_lanes still searched


def test_forced_fc_lanes_are_honoured(fc_graph):
    timing = Timing()
    hw, tried = size.run(fc_graph, V6, 16, fc_lanes=(3, 2), cycles=timing)
    assert (hw.fc_in_lanes, hw.fc_out_lanes) == (3, 2)
    assert {(c["fc_in_lanes"], c["fc_out_lanes"]) for c in tried} == {(3, 2)}   # no candidate without FC
    hw, tried = size.run(fc_graph, V6, 16, fc_lanes=(None, 4), cycles=timing)
    assert hw.fc_out_lanes == 4 and {c["fc_out_lanes"] for c in tried} == {4}
    assert all(c["fc_in_lanes"] >= 1 for c in tried)
    hw, tried = size.run(fc_graph, V6, 16, fc_lanes=(5, None), cycles=timing)
    assert hw.fc_in_lanes == 5 and {c["fc_in_lanes"] for c in tried} == {5}
    assert len({c["fc_out_lanes"] for c in tried}) > 1                  # fc_out_lanes still searched


@pytest.mark.parametrize("field", ["in_lanes", "out_lanes", "fc_in_lanes", "fc_out_lanes"])
def test_forced_sizes_beyond_the_hardware_are_refused(fc_graph, field):
    lo, hi = HardwareConfig.field_range(field)
    kw = {"fc_lanes": (hi + 1, None) if field == "fc_in_lanes" else (None, hi + 1) if field == "fc_out_lanes"
          else (None, None)}
    if field in ("in_lanes", "out_lanes"):
        kw[field] = hi + 1
    with pytest.raises(ConvcError) as info:
        size.run(fc_graph, V6, 16, where="m.npz", cycles=Timing(), **kw)
    assert str(info.value) == (f"m.npz does not fit virtex6 with {field}={hi + 1}: the hardware takes "
                               f"{field} {max(lo, 1)}..{hi}")


def test_forced_lanes_beyond_the_board_name_the_dsp(conv_graph):
    # 16 x 16 kernel units of 3x3: 2,304 multipliers, the board has 768
    with pytest.raises(ConvcError) as info:
        size.run(conv_graph, V6, 16, in_lanes=16, out_lanes=16, where="m.npz", cycles=Timing())
    msg = str(info.value)
    assert msg.startswith("m.npz does not fit virtex6 with in_lanes=16, out_lanes=16: ")
    assert "768 DSP48E1" in msg


# ---- refusals name the resource -------------------------------------------------------------
def _number_before(msg, words):
    m = re.search(r"needs (?:about )?([\d,]+) " + words, msg)
    assert m, msg
    return int(m.group(1).replace(",", ""))


def test_too_few_dsp_is_refused_naming_dsp(conv_graph, fc_graph):
    board = dataclasses.replace(V6, dsp=9)
    with pytest.raises(ConvcError) as info:
        size.run(conv_graph, board, 16, where="m.npz", cycles=Timing())
    msg = str(info.value)
    assert msg.startswith("m.npz does not fit virtex6: layer 'layer0': DSP48E1 slices: one 3x3 kernel unit "
                          "with its post-processing needs ")
    need = int(re.search(r"needs (\d+), the board has 9$", msg).group(1))
    assert need >= 3 * 3 + 1                   # nine multipliers and the output lane's DSP at least
    # with FC-eligible layers both kinds of candidate are refused, each said
    with pytest.raises(ConvcError) as info:
        size.run(fc_graph, dataclasses.replace(V6, dsp=25), 16, where="m.npz", cycles=Timing())
    msg = str(info.value)
    assert "one 5x5 kernel unit" in msg and "the board has 25 (without an FC engine)" in msg
    assert "the board has 25 (with the FC engine)" in msg


def test_too_little_block_ram_is_refused_naming_it(conv_graph):
    with pytest.raises(ConvcError) as info:
        size.run(conv_graph, dataclasses.replace(V6, bram36=2), 16, where="m.npz", cycles=Timing())
    msg = str(info.value)
    assert msg.startswith("m.npz does not fit virtex6: block RAM: the smallest configuration needs ")
    assert msg.endswith("RAMB36, the board has 2")
    assert _number_before(msg, "RAMB36") > 2


def test_too_few_luts_is_refused_naming_luts(conv_graph):
    from convc.hdl.accel import CONTROL_LUTS

    with pytest.raises(ConvcError) as info:
        size.run(conv_graph, dataclasses.replace(V6, luts=8000), 16, where="m.npz", cycles=Timing())
    msg = str(info.value)
    assert msg.startswith("m.npz does not fit virtex6: logic: the smallest configuration needs about ")
    assert msg.endswith("LUTs, the board has 8,000")
    need = _number_before(msg, "LUTs")
    assert need > 8000 and need > CONTROL_LUTS + 9 * 64        # control, and nine multipliers at least


# ---- the logic limit ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def unbounded(conv_graph):
    """The winner on the virtex6 with the stand-in timing, and that timing."""
    timing = Timing(full=lambda hw: 10_000_000 // hw.conv_macs_per_cycle)
    hw, _ = size.run(conv_graph, V6, 16, cycles=timing)
    return hw, timing


def test_holds_logic_at_the_boundary(unbounded):
    hw, _ = unbounded
    assert hw.luts > 0
    assert dataclasses.replace(V6, luts=hw.luts).holds_logic(hw)
    assert not dataclasses.replace(V6, luts=hw.luts - 1).holds_logic(hw)
    assert dataclasses.replace(V6, luts=1, lut_inputs=4).holds_logic(hw)     # ECP5: not this estimate
    assert get_board("ulx3s").lut_inputs == 4 and V6.lut_inputs == 6
    small = dataclasses.replace(hw, in_lanes=1, out_lanes=1, writers=1)
    assert small.luts < hw.luts                                          # fewer lanes, less logic


def test_the_winner_fits_the_boards_luts(unbounded):
    hw, _ = unbounded
    assert V6.holds_logic(hw) and hw.dsp <= V6.dsp and hw.bram36 <= V6.bram36


@pytest.mark.parametrize("luts", [60_000, 40_000, 15_000, 8_000])
def test_few_luts_pick_a_smaller_configuration_or_refuse_naming_luts(conv_graph, unbounded, luts):
    big, timing = unbounded
    assert big.luts > luts
    board = dataclasses.replace(V6, luts=luts)
    try:
        hw, tried = size.run(conv_graph, board, 16, where="m.npz", cycles=timing)
    except ConvcError as exc:
        assert "LUTs" in str(exc) and f"{luts:,}" in str(exc), str(exc)
        return
    assert board.holds_logic(hw) and hw.luts <= luts
    assert hw.conv_macs_per_cycle < big.conv_macs_per_cycle


def test_a_four_input_lut_board_is_not_bound_by_the_estimate(conv_graph, unbounded):
    big, timing = unbounded
    hw, _ = size.run(conv_graph, dataclasses.replace(V6, luts=10, lut_inputs=4), 16, cycles=timing)
    assert hw == big


def _enumerated_best(graph, board, ref, cost):
    """The least (cost, DSP) over every (in_lanes, out_lanes) up to the network's maps that
    the board holds (DSP, block RAM, LUTs) and the schedule accepts, or None."""
    best = None
    for pi in range(1, 17):
        for po in range(1, 17):
            try:
                hw = dataclasses.replace(ref, in_lanes=pi, out_lanes=po, writers=size.writers_for(po))
            except HardwareConfigError:
                continue
            if hw.dsp > board.dsp or hw.bram36 > board.bram36 or hw.luts > board.luts:
                continue
            try:
                schedule.run(graph, hw, fill=False)
            except ConvcError:
                continue
            key = (cost(hw), hw.dsp)
            best = key if best is None or key < best else best
    return best




@pytest.mark.parametrize("luts", [None, 60_000, 40_000, 15_000])
def test_the_search_is_exact_under_a_lut_limit(conv_graph, unbounded, luts):
    """The fastest configuration that fits the LUTs wins (the size pass's docstring), as a
    plain enumeration of every lane split finds it."""
    ref, timing = unbounded
    board = V6 if luts is None else dataclasses.replace(V6, luts=luts)
    want = _enumerated_best(conv_graph, board, ref, timing.full)
    assert want is not None                   # something fits
    hw, _ = size.run(conv_graph, board, 16, cycles=timing)
    assert (timing.full(hw), hw.dsp) == want

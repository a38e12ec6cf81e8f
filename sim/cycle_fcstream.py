"""The cycle model's ``OP_FC`` stream, burst by burst: :func:`_fc_stream`.

An FC record's pace comes from its reads (the module docstring of
:mod:`convc.sim.cycle`, "OP_FC streaming"): the parameter reader's weight blocks and the
map feeders' rows, each reader (:class:`_Reader`, a
:class:`~convc.hdl.memport.MemReader`) with ``READER_OUTSTANDING`` bursts in flight,
their ARs round-robin onto one in-order read channel (:class:`_ReadChannel`, the native
harness's memory), and the engine's intake freeing the slots.  :class:`convc.sim.cycle._Model`
calls it; nothing here is public.
"""

from __future__ import annotations

import math

import numpy as np

from convc.compiler import isa
from convc.compiler.hwconfig import HardwareConfig
from convc.errors import ConvcError
from convc.hdl.feeder import MapFeeder

from .memtiming import READER_CMD_TO_AR, READER_FREE_TO_AR, READER_OUTSTANDING, READER_R_TO_WORD, MemoryTiming

__all__: list[str] = []

FEEDER_GROUP_CYCLES = MapFeeder.GROUP_CYCLES     # the map feeder's, published by hdl/feeder.py


# ---- the FC stream's reads: outstanding-burst loops on one in-order read channel -------
class _ReadChannel:
    """The memory's read side as the native harness serves it (``sim/native/harness.cpp``):
    bursts in AR order, a burst's first beat ``mem.ar_to_r`` cycles after its AR at the
    earliest, one beat a cycle at most, each beat taking a token from a bucket refilled by
    ``mem.beats_per_cycle`` a cycle that holds at most ``mem.bucket_beats``.  Write beats
    (in the same bucket unless ``duplex``) are left out: an FC stream writes little while it
    reads (the record's bandwidth bound counts them).  Times in cycles from any origin."""

    def __init__(self, mem: MemoryTiming):
        self.lat = mem.ar_to_r
        self.rate = mem.beats_per_cycle
        self.cap = mem.bucket_beats
        self.tok = self.cap            # idle before the stream: a full bucket
        self.t = None                  # the cycle of the last beat (tok: what it left)

    def serve(self, ar: float, beats: int) -> tuple[float, float]:
        """Queue a burst whose AR handshake is at cycle ``ar``; returns ``(s, tok)`` for
        :meth:`beat_times` (the burst's first possible cycle and the tokens then)."""
        s = ar + self.lat if self.t is None else max(ar + self.lat, self.t + 1)
        tok = self.cap if self.t is None else min(self.cap, self.tok + self.rate * (s - self.t))
        last = self._wait(beats - 1, tok)
        self.t, self.tok = s + last, tok + self.rate * last - beats
        return s, tok

    def _wait(self, k, tok):
        # beat k (0-based) goes ``_wait`` cycles after s: one a cycle, and not before the
        # bucket holds a token for it (inside a burst it never reaches its cap).  Exact
        # arithmetic: the harness's floating-point bucket may refuse a beat at exactly one
        # token (0.7 a cycle sums to a hair less), a cycle now and then
        if self.rate >= 1.0:
            return k
        if isinstance(k, int):
            return max(k, math.ceil((k + 1 - tok) / self.rate - 1e-9))
        return np.maximum(k, np.ceil((k + 1 - tok) / self.rate - 1e-9))

    def beat_times(self, served: tuple[float, float], k):
        """When beats ``k`` (int or array) of a served burst are on the R channel."""
        s, tok = served
        return s + self._wait(k, tok)


def _command_bursts(addr: int, words: int, W: int, max_burst: int) -> list[tuple[int, int]]:
    """A read command's bursts (hdl/memport.py's splitter): ``(first beat, beats)`` each,
    beats counted from the command's first, cut at ``max_burst``-aligned beat addresses."""
    if words <= 0:
        return []
    b0, b1 = addr // W, (addr + words - 1) // W
    out, b = [], b0
    while b <= b1:
        n = min(max_burst - b % max_burst, b1 - b + 1)
        out.append((b - b0, n))
        b += n
    return out


class _Reader:
    """One :class:`~convc.hdl.memport.MemReader` in a stream: its commands and their
    bursts, in order, and when each burst's AR can go.

    A command is accepted (``a``) ``gap`` cycles after the previous one (its command
    loop; the first: ``gap`` cycles after the stream's first command), but not before the
    splitter has handed out the previous command's last burst; the splitter puts a burst
    a cycle into its one-deep output register (``go``), which the load empties; a burst
    is loaded (its FIFO room reserved, ``L``) the cycle after it is in that register,
    once the previous AR has gone and one of the ``READER_OUTSTANDING`` slots is free (a
    slot frees when its burst's last word is taken, ``READER_FREE_TO_AR - 1`` cycles
    before the load); its AR is the cycle after the load when the arbiter grants it.
    Accept, go, load, AR: ``READER_CMD_TO_AR`` cycles at best."""

    def __init__(self):
        self.gap: list[int] = []               # per command
        self.cmd_info: list[tuple] = []        # feeders: (element of its first word, words, addr % W)
        self.b_cmd: list[int] = []             # per burst: its command, group, first beat in the
        self.b_group: list[int] = []           # command, beats, first/last of the command
        self.b_beat0: list[int] = []
        self.b_beats: list[int] = []
        self.b_first: list[bool] = []
        self.b_last: list[bool] = []
        self.served: list = []                 # per burst: the channel's (s, tok), once its AR went
        self.free: list = []                   # per burst: the cycle its last word is taken
        self.nxt = 0                           # the next burst to load
        self.cur = 0                           # feeders: the next burst whose words are not placed
        self.a = self.go = self.L = self.ar = None      # the last burst loaded
        self.go_last = -math.inf               # the splitter's last burst of the previous command

    def command(self, group: int, addr: int, words: int, gap: int, W: int, max_burst: int, info=None):
        """Append a command of ``words`` words at ``addr`` for group ``group``."""
        k = len(self.gap)
        self.gap.append(gap)
        self.cmd_info.append(info)
        bl = _command_bursts(addr, words, W, max_burst)
        for q, (b0, n) in enumerate(bl):
            self.b_cmd.append(k)
            self.b_group.append(group)
            self.b_beat0.append(b0)
            self.b_beats.append(n)
            self.b_first.append(q == 0)
            self.b_last.append(q == len(bl) - 1)
            self.served.append(None)
            self.free.append(None)

    def load_time(self):
        """``(a, go, L)`` of the next burst, or None (none left, or the burst whose slot
        it needs is not taken yet)."""
        b = self.nxt
        if b >= len(self.b_cmd):
            return None
        free = -math.inf
        if b >= READER_OUTSTANDING:
            free = self.free[b - READER_OUTSTANDING]
            if free is None:
                return None
            free += READER_FREE_TO_AR - 1
        if self.b_first[b]:
            k = self.b_cmd[b]
            a = self.gap[k] if self.a is None else max(self.a + self.gap[k], self.go_last)
            go = a + 1
        else:
            a, go = self.a, self.go + 1
        if self.L is not None:
            go = max(go, self.L)
        L = max(go + READER_CMD_TO_AR - 2, free, self.ar if self.ar is not None else -math.inf)
        return a, go, L

    def issue(self, a, go, L, ar, served):
        """The next burst is loaded as :meth:`load_time` said and its AR is at ``ar``;
        ``served``: the channel's :meth:`_ReadChannel.serve`."""
        b = self.nxt
        self.a, self.go, self.L, self.ar = a, go, L, ar
        if self.b_last[b]:
            self.go_last = go
        self.served[b] = served
        self.nxt += 1


def _fc_stream(ins: isa.Instr, hw: HardwareConfig, mem: MemoryTiming, traffic) -> tuple[np.ndarray, float]:
    """An OP_FC record's stream, burst by burst (module docstring, OP_FC streaming): the
    parameter reader's weight blocks and the map feeders' rows on one in-order read channel,
    each reader's ``READER_OUTSTANDING`` bursts in flight freed only as the engine takes
    their words.  Times in cycles from the weight reader's first command (the stream's
    command state + 1).  Returns the last group's elements' intake cycles and the cycles
    the engine waited for its inputs."""
    W, mb = mem.words_per_beat, mem.max_burst
    IL = hw.fc_in_lanes
    G = max(-(-ins.n_in // IL), 1)
    P = ins.rows * ins.out_w
    ld = isa.fc_ld(ins.n_out)
    # reader 0: one command a group, its lanes' weight columns (one aligned block, wide mode)
    wr = _Reader()
    for g in range(G):
        nl = max(min(IL, ins.n_in - g * IL), 0)
        wr.command(g, ins.w_addr + g * IL * ld, nl * ld, 0 if g == 0 else 1, W, mb)
    # readers 1..IL: the map feeders, one command a row inside the map; their command loop
    # looks up the list (LOOK, BASE) before the first group, BASE before each later one
    bases = traffic.map_bases(ins)
    feeders = []
    for i in range(IL):
        rd = _Reader()
        pend = 1 + FEEDER_GROUP_CYCLES
        for g in range(G):
            j = g * IL + i
            if j >= ins.n_in:
                break
            if g:
                pend += FEEDER_GROUP_CYCLES
            for r in range(ins.rows):
                y = ins.row0 + r
                if 0 <= y < ins.in_h and ins.in_w:
                    addr = int(bases[j]) + y * ins.in_w
                    rd.command(g, addr, ins.in_w, pend, W, mb, (r * ins.in_w, ins.in_w, addr % W))
                    pend = 1
                else:
                    pend += 1                  # a row outside the map: zeros, no command
        if rd.b_cmd:
            feeders.append(rd)
    readers = [wr] + feeders
    ch = _ReadChannel(mem)

    # the engine's intake, as far as the served bursts allow
    full = [None] * G          # group g's matrix complete (its last beat taken + 1)
    take = [None] * G          # ... handed to the engine's "next" buffer
    e0 = [None] * G            # group g's first element taken (the buffer free again)
    wb, p_w = 0, -math.inf     # weights: next burst, its group's last beat taken so far
    gt = 0                     # next group to hand over
    ge, pe = 0, 0              # elements: group and element next
    A = np.full(P, -math.inf)  # group ge's elements: when all lanes' words are there
    E = np.full(P, math.nan)   # ... and when the engine takes them
    e_prev, e_first = -math.inf, None
    pending = []               # feeder bursts of group ge filled in A: (reader, burst, last element)

    def intake() -> None:
        nonlocal wb, p_w, gt, ge, pe, A, E, e_prev, e_first, pending
        moved = True
        while moved:
            moved = False
            # weights: a beat a cycle into the matrix, from the cycle the previous matrix
            # is handed over (its slot frees with the burst's last beat)
            while wb < len(wr.b_cmd) and wr.served[wb] is not None:
                g = wr.b_group[wb]
                if wr.b_first[wb]:
                    if g and take[g - 1] is None:
                        break
                    p_w = take[g - 1] - 1 if g else -math.inf
                n = wr.b_beats[wb]
                first = max(p_w + 1, ch.beat_times(wr.served[wb], 0) + READER_R_TO_WORD)
                # the burst's beats come no faster than one a cycle: its last one bounds
                p_w = max(first + n - 1, ch.beat_times(wr.served[wb], n - 1) + READER_R_TO_WORD)
                wr.free[wb] = p_w
                if wr.b_last[wb]:
                    full[g] = p_w + 1
                wb += 1
                moved = True
            # the matrix goes to the engine once complete and the previous one has started
            while gt < G and full[gt] is not None and (gt == 0 or e0[gt - 1] is not None):
                take[gt] = max(full[gt], e0[gt - 1] if gt else -math.inf)
                gt += 1
                moved = True
            # elements: one a cycle, all lanes' words there (zeros where no map), a group's
            # first once its matrix is in the buffer
            if ge < G and take[ge] is not None:
                upto = P
                for rd in feeders:
                    while rd.cur < len(rd.b_cmd) and rd.b_group[rd.cur] == ge and rd.served[rd.cur] is not None:
                        b = rd.cur
                        c0, nw, off = rd.cmd_info[rd.b_cmd[b]]
                        w0 = max(0, rd.b_beat0[b] * W - off)
                        w1 = min(nw, (rd.b_beat0[b] + rd.b_beats[b]) * W - off)
                        beat = (off + np.arange(w0, w1)) // W - rd.b_beat0[b]
                        seg = slice(c0 + w0, c0 + w1)
                        A[seg] = np.maximum(A[seg], ch.beat_times(rd.served[b], beat) + READER_R_TO_WORD)
                        pending.append((rd, b, c0 + w1 - 1))
                        rd.cur += 1
                    if rd.cur < len(rd.b_cmd) and rd.b_group[rd.cur] == ge:
                        c0, nw, off = rd.cmd_info[rd.b_cmd[rd.cur]]
                        upto = min(upto, c0 + max(0, rd.b_beat0[rd.cur] * W - off))
                if upto > pe:
                    lo = max(e_prev + 1, take[ge] + 1) if pe == 0 else e_prev + 1
                    k = np.arange(upto - pe)
                    a = A[pe:upto].copy()
                    a[0] = max(a[0], lo)
                    E[pe:upto] = k + np.maximum.accumulate(a - k)
                    if pe == 0:
                        e0[ge] = float(E[0])
                        if e_first is None:
                            e_first = e0[ge]
                    pe, e_prev = upto, float(E[upto - 1])
                    keep = []
                    for rd, b, last in pending:
                        if last < pe:
                            rd.free[b] = float(E[last])
                        else:
                            keep.append((rd, b, last))
                    pending = keep
                    moved = True
                if pe == P:
                    ge, pe = ge + 1, 0
                    if ge < G:
                        A = np.full(P, -math.inf)
                        E = np.full(P, math.nan)

    last_ar = -math.inf
    rr = 1 % len(readers)        # the arbiter's pointer: the parameter reader went last (BIAS)
    while True:
        intake()
        reqs = {}
        for rid, rd in enumerate(readers):
            q = rd.load_time()
            if q is not None:
                reqs[rid] = q
        if not reqs:
            break
        # one AR a cycle, round-robin among the readers whose AR is waiting
        t = max(min(q[2] for q in reqs.values()) + 1, last_ar + 1)
        rid = min((r for r, q in reqs.items() if q[2] + 1 <= t), key=lambda r: (r - rr) % len(readers))
        rd = readers[rid]
        rd.issue(*reqs[rid], t, ch.serve(t, rd.b_beats[rd.nxt]))
        last_ar, rr = t, (rid + 1) % len(readers)
    if ge < G:
        raise ConvcError(f"cycle model: the FC stream of {ins.n_in} inputs stalled (internal error)")
    return E, float(e_prev - e_first + 1 - G * P)

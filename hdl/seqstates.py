r"""Builders of the sequencer's FSM states (inside :class:`~convc.hdl.accel.Accelerator`'s
FSM, on its parameter reader ``pr``): a read command, a PWL table's load, and the
``OP_LCN`` phase (tables, window taps, the two sweeps).

The ``OP_LCN`` sweeps: each LIST (``lcn_channels + 1`` map bases into the list memory,
one a cycle, no read), GO, STREAM, DRAIN:

* sweep A: map feeders ``0 .. lcn_channels-1`` read the ``in_c`` input maps (one
  command of ``in_w`` words a row), the engine's ``a_i``; its ``a_o`` (``v`` of each
  map and ``s``) goes to the row writer as ``in_c + 1`` maps at ``scratch_addr``;
* sweep B, once the writer is idle (every scratch word acknowledged) and the frame mean
  is known: feeders ``0 .. lcn_channels`` read ``v`` and ``s`` back (lanes past ``in_c``
  all read ``s``), the engine's ``b_i``; its ``b_o`` (``y``) goes to the row writer as
  ``in_c`` maps at ``out_addr``.

Each builder adds statements to ``m`` inside the caller's ``with m.FSM()``; ``k`` is the
sequencer's word counter, ``word`` the parameter reader's current word.
"""

from __future__ import annotations

from convc.compiler import isa

__all__ = ["command_state", "table_states", "lcn_states"]


def command_state(m, pr, k, addr, length, nxt: str, *also) -> None:
    """The body of a ``*_CMD`` state: offer the read command (``addr``, ``length`` words)
    to the parameter reader ``pr``; once it is taken, clear the word counter ``k``, do
    the statements ``also`` (sync) and go to state ``nxt``, which reads the words."""
    m.d.comb += [pr.cmd.payload.addr.eq(addr), pr.cmd.payload.length.eq(length), pr.cmd.valid.eq(1)]
    with m.If(pr.cmd.ready):
        m.d.sync += [k.eq(0), *also]
        m.next = nxt


def table_states(m, pr, k, word, state, nxt, port, image_addr, table_id):
    """States ``<state>_CMD`` and ``<state>``: PWL table ``table_id`` (``isa.TABLE_WORDS``
    words at ``image_addr + table_id * isa.TABLE_WORDS``) into the table write ``port``,
    then ``nxt`` (the LCN engine's two tables)."""
    with m.State(state + "_CMD"):
        command_state(m, pr, k, image_addr + table_id * isa.TABLE_WORDS, isa.TABLE_WORDS, state)
    with m.State(state):
        m.d.comb += [pr.o.ready.eq(1), port.addr.eq(k), port.data.eq(word), port.en.eq(pr.o.valid)]
        with m.If(pr.o.valid):
            m.d.sync += k.eq(k + 1)
            with m.If(k == isa.TABLE_WORDS - 1):
                m.next = nxt


def lcn_states(m, hw, R, pr, word, k, kk, lcn, lw, map_in, lcn_b, lcn_base, groups,
               lcn_start, stream_busy, writers_idle, regs):
    """The sequencer's ``OP_LCN`` states (inside its FSM): the sqrt and 1/x tables and the
    window's R and Q taps into the LCN engine, then the two sweeps, each a list of map
    bases (LIST), a start (GO), the stream and the writer's drain.

    Sweep A: feeders ``0 .. CL-1`` read the ``in_c`` input maps, the row writer writes
    ``v`` (``in_c`` maps) then ``s`` at ``scratch_addr``.  Sweep B (after the frame mean
    and every scratch write are done): feeders ``0 .. CL`` read them back (``v`` of map
    ``c`` at ``scratch + c*H*W``, ``s`` after the ``in_c`` maps; lanes ``in_c .. CL``
    all read ``s``), the row writer writes ``y`` (``in_c`` maps) at ``out_addr``."""
    CL = hw.lcn_channels

    table_states(m, pr, k, word, "LCN_SQRT", "LCN_RECIP_CMD", lcn.sqrt_table, regs.image_addr, R.pwl_id)
    table_states(m, pr, k, word, "LCN_RECIP", "LCN_WIN_CMD", lcn.recip_table, regs.image_addr, R.pwl2_id)
    with m.State("LCN_WIN_CMD"):                        # R and Q: 2K words after G
        command_state(m, pr, k, R.w_addr + kk, 2 * R.kernel, "LCN_WIN", lcn_base.eq(R.in_addr))
    with m.State("LCN_WIN"):
        m.d.comb += [pr.o.ready.eq(1), lcn.window.addr.eq(kk + k), lcn.window.data.eq(word),
                     lcn.window.en.eq(pr.o.valid)]
        with m.If(pr.o.valid):
            m.d.sync += k.eq(k + 1)
            with m.If(k == 2 * R.kernel - 1):
                m.d.sync += k.eq(0)
                m.next = "LCN_LIST"
    with m.State("LCN_LIST"):                           # list[c] = base + min(c, in_c) * H*W
        m.d.comb += [lw.addr.eq(k), lw.data.eq(lcn_base), lw.en.eq(1)]
        m.d.sync += [k.eq(k + 1), groups.eq(1)]
        with m.If(k < R.in_c):
            m.d.sync += lcn_base.eq(lcn_base + map_in)
        with m.If(k == CL):
            m.next = "LCN_GO"
    with m.State("LCN_GO"):
        m.d.comb += lcn_start.eq(1)
        m.next = "LCN_STREAM"
    with m.State("LCN_STREAM"):
        with m.If(~stream_busy):
            m.next = "LCN_DRAIN"
    with m.State("LCN_DRAIN"):
        # sweep B reads what sweep A wrote: every write acknowledged, the mean known
        with m.If(writers_idle & (lcn_b | lcn.mean_valid)):
            m.d.sync += [k.eq(0), lcn_b.eq(1), lcn_base.eq(R.scratch_addr)]
            with m.If(lcn_b):
                m.next = "NEXT"
            with m.Else():
                m.next = "LCN_LIST"

r"""The accelerator's datapath for the current record (:class:`~convc.hdl.accel.Accelerator`
builds the blocks and the sequencer, then calls :func:`connect_datapath`): the map feeders
joined into the engines' pixel inputs, the engines' band configuration from the record,
the weight loaders lent the parameter reader, and the output chain engine -> pointwise
engine -> pooling engine (OP_CONV) -> row writer, with the LCN engine's two sweeps beside
it.  All of it is wiring (combinational, plus the bias handshake); the timing is the
sequencer's and the blocks'.

Row writer: the band's output rows (``out_w`` elements of all lanes) go into a
two-row buffer; each finished row is written map by map, one write command of ``out_w``
words per output map ``o < n_out`` (at ``out_addr + (o0+o)*out_h*out_w + (row0+r)*out_w``),
or, for a vector output (``out_h = out_w = 1``), one command of ``n_out`` words.  The
maps are shared among ``hw.writers`` write ports (port ``p`` writes maps ``p*Q ..``
with ``Q = ceil(n_out / ports)``), each a :class:`~convc.hdl.memport.MemWriter` taking
one word a cycle, behind a write arbiter (:class:`~convc.hdl.arbiter.WriteArbiter`:
round-robin AW, W in AW order, a burst's data with or ahead of its address, so the
write channel moves a beat a cycle across the ports; B by ID).
"""

from __future__ import annotations

from operator import attrgetter

from amaranth.hdl import Cat, Mux
from amaranth.lib import wiring

from convc.compiler.engine_figures import lcn_lanes, post_lanes

from .weights import ConvWeightLoader, FCWeightAssembler

__all__ = ["connect_datapath"]

_BLOCKS = ("pr", "mains", "pres", "conv", "fc", "pw", "pool", "lcn", "rw")
_BAND = ("R", "is_fc", "is_lcn", "lcn_b", "start_stream", "lcn_start", "stream_busy", "w_done", "bias",
         "bias_pending", "groups", "list_contig", "list_step", "rs0", "r_in", "wp", "conv_w", "kk", "n_kk", "ld",
         "ld_beats", "pixels", "map_in", "map_out", "out_base", "L_lanes")


def connect_datapath(m, hw, dw, blocks, band) -> None:
    """Wire the datapath of ``hw`` into ``m``.

    Parameters
    ----------
    m : Module
        The accelerator's module.
    hw : HardwareConfig
    dw : int
        AXI data width (the FC weight assembler's beats).
    blocks : namespace
        The blocks: ``pr`` (parameter reader), ``mains`` and ``pres`` (main and preload
        map feeders), ``conv``, ``fc``, ``pw``, ``pool``, ``lcn`` (engines; ``fc`` and
        ``lcn`` None when absent), ``rw`` (row writer).
    band : namespace
        The sequencer's record view ``R`` and its derived per-record signals (registered in
        DECODE / DERIVE; see the names in ``_BAND``): driven here are ``stream_busy``,
        ``w_done`` and the clearing of ``bias_pending``.
    """
    pr, mains, pres, conv, fc, pw, pool, lcn, rw = attrgetter(*_BLOCKS)(blocks)
    (R, is_fc, is_lcn, lcn_b, start_stream, lcn_start, stream_busy, w_done, bias, bias_pending, groups,
     list_contig, list_step, rs0, r_in, wp, conv_w, kk, n_kk, ld, ld_beats, pixels, map_in, map_out,
     out_base, L_lanes) = attrgetter(*_BAND)(band)
    Pi, Po, bits = hw.in_lanes, hw.out_lanes, hw.bits
    has_fc = hw.has_fc
    fi, fo = (hw.fc_in_lanes, hw.fc_out_lanes) if has_fc else (0, 0)
    NL = post_lanes(hw)
    NRW = max(NL, lcn_lanes(hw))                        # row-writer lanes
    CL = hw.lcn_channels if hw.lcn_kmax else 0

    # ---- feeders ----------------------------------------------------------------------
    K = R.kernel
    pre = K > 1
    for l, f in enumerate(mains):
        conv_lane = l < Pi
        fc_lane = l < fi
        m.d.comb += [
            f.start.eq(start_stream & Mux(is_fc, fc_lane, conv_lane)),
            f.lane.eq(l), f.lanes.eq(L_lanes), f.groups.eq(groups), f.n_in.eq(R.n_in),
            f.rs.eq(Mux(is_fc, rs0, rs0 + Mux(pre, K - 1, 0))),
            f.nr.eq(Mux(is_fc, R.rows, r_in - Mux(pre, K - 1, 0))),
            f.pad.eq(Mux(is_fc, 0, R.pad)), f.in_h.eq(R.in_h), f.in_w.eq(R.in_w),
            f.up.eq(Mux(is_fc, 0, R.up)), f.width.eq(Mux(is_fc, R.in_w, wp)),
            f.contig.eq(list_contig & ~is_lcn), f.step.eq(list_step),
        ]
        if l <= CL:
            # OP_LCN: lane l reads map l of the sweep's list (sweep A: the in_c inputs;
            # sweep B: v of every map and s), whole frames, no padding
            with m.If(is_lcn):
                m.d.comb += [f.start.eq(lcn_start & ((l < CL) | lcn_b)), f.lanes.eq(CL + 1),
                             f.n_in.eq(Mux(lcn_b, CL + 1, R.in_c)), f.rs.eq(0), f.nr.eq(R.in_h),
                             f.pad.eq(0), f.up.eq(0), f.width.eq(R.in_w)]
    for l, f in enumerate(pres):
        m.d.comb += [
            f.start.eq(start_stream & ~is_fc & pre),
            f.lane.eq(l), f.lanes.eq(Pi), f.groups.eq(groups), f.n_in.eq(R.n_in),
            f.rs.eq(rs0), f.nr.eq(K - 1), f.pad.eq(R.pad), f.in_h.eq(R.in_h), f.in_w.eq(R.in_w),
            f.up.eq(R.up), f.width.eq(wp), f.contig.eq(list_contig), f.step.eq(list_step),
        ]
    feeders_busy = Cat(*[f.busy for f in mains + pres]).any()

    def join(feeds, sink, enable, targets=None):
        """All lanes' feeders -> one element (they move in step); feeder ``i``'s code
        goes to ``targets[i]`` (default: the element's ``data[i]``)."""
        if targets is None:
            targets = [sink.payload.data[i] for i in range(len(feeds))]
        allv = Cat(*[f.o.valid for f in feeds]).all()
        m.d.comb += sink.valid.eq(enable & allv)
        for t, f in zip(targets, feeds):
            m.d.comb += t.eq(f.o.payload.data)
            with m.If(enable):
                m.d.comb += f.o.ready.eq(sink.ready & allv)
        m.d.comb += [sink.payload.first.eq(feeds[0].o.payload.first),
                     sink.payload.last.eq(feeds[0].o.payload.last)]

    is_conv = ~is_fc & ~is_lcn
    join(mains[:Pi], conv.i, is_conv)
    join(pres, conv.ip, is_conv)
    if has_fc:
        join(mains[:fi], fc.i, is_fc)
    if CL:
        join(mains[:CL], lcn.a_i, is_lcn & ~lcn_b)
        join(mains[:CL + 1], lcn.b_i, is_lcn & lcn_b,
             [lcn.b_i.payload.v[c] for c in range(CL)] + [lcn.b_i.payload.s])
        m.d.comb += [
            lcn.n_maps.eq(R.in_c), lcn.width.eq(R.in_w), lcn.k.eq(R.kernel),
            lcn.m_shift.eq(R.acc_shift), lcn.sq_shift.eq(R.sq_shift), lcn.s2_shift.eq(R.s2_shift),
            lcn.y_shift.eq(R.y_shift), lcn.mean_mul.eq(R.mean_mul), lcn.mean_shift.eq(R.mean_shift),
            lcn.eps.eq(R.eps),
        ]

    # ---- engine configuration ---------------------------------------------------------
    m.d.comb += [
        conv.kernel.eq(K), conv.stride.eq(R.stride), conv.width.eq(wp), conv.rows.eq(r_in),
        conv.groups.eq(groups), conv.acc_shift.eq(R.acc_shift), conv.bias_shift.eq(R.bias_shift),
        conv.preload.eq(1),
        pool.kind.eq(R.pool), pool.k.eq(R.pool_k), pool.s.eq(R.pool_s), pool.width.eq(conv_w),
        pool.avg_mul.eq(R.avg_mul), pool.avg_shift.eq(R.avg_shift),
    ]
    m.d.comb += pw.act.eq(R.act)
    for o in range(Po):
        m.d.comb += conv.bias.payload[o].eq(bias[o])
    m.d.comb += conv.bias.valid.eq(bias_pending & ~is_fc)
    with m.If(conv.bias.valid & conv.bias.ready):
        m.d.sync += bias_pending.eq(0)
    if has_fc:
        m.d.comb += [fc.groups.eq(groups), fc.pixels.eq(pixels), fc.acc_shift.eq(R.acc_shift),
                     fc.bias_shift.eq(R.bias_shift), fc.bias.valid.eq(bias_pending & is_fc)]
        for o in range(fo):
            m.d.comb += fc.bias.payload[o].eq(bias[o])
        with m.If(fc.bias.valid & fc.bias.ready):
            m.d.sync += bias_pending.eq(0)

    # ---- weights from the parameter reader (lent to the loaders while they are busy) ------
    m.submodules.conv_weights = cwl = ConvWeightLoader(in_lanes=Pi, out_lanes=Po, bits=bits)
    m.d.comb += [cwl.start.eq(start_stream & ~is_fc), cwl.w_addr.eq(R.w_addr), cwl.n_in.eq(R.n_in),
                 cwl.n_out.eq(R.n_out), cwl.kk.eq(kk), cwl.n_kk.eq(n_kk), cwl.groups.eq(groups)]
    wiring.connect(m, cwl.weight, conv.weight)
    with m.If(cwl.busy):
        m.d.comb += [pr.cmd.valid.eq(cwl.cmd.valid), pr.cmd.payload.eq(cwl.cmd.payload),
                     cwl.cmd.ready.eq(pr.cmd.ready), cwl.word.valid.eq(pr.o.valid),
                     cwl.word.payload.eq(pr.o.payload), pr.o.ready.eq(cwl.word.ready)]
    loaders_busy = cwl.busy
    if has_fc:
        m.submodules.fc_weights = fwa = FCWeightAssembler(in_lanes=fi, out_lanes=fo, bits=bits, data_width=dw)
        m.d.comb += [fwa.start.eq(start_stream & is_fc), fwa.w_addr.eq(R.w_addr), fwa.n_in.eq(R.n_in),
                     fwa.ld.eq(ld), fwa.ld_beats.eq(ld_beats), fwa.groups.eq(groups)]
        wiring.connect(m, fwa.weights, fc.weights)
        m.d.comb += pr.wide.eq(fwa.busy)               # the reader's beats, not words
        with m.If(fwa.busy):
            m.d.comb += [pr.cmd.valid.eq(fwa.cmd.valid), pr.cmd.payload.eq(fwa.cmd.payload),
                         fwa.cmd.ready.eq(pr.cmd.ready), fwa.beat.valid.eq(pr.beat.valid),
                         fwa.beat.payload.eq(pr.beat.payload), pr.beat.ready.eq(fwa.beat.ready)]
        loaders_busy = loaders_busy | fwa.busy
    m.d.comb += w_done.eq(~loaders_busy)

    # ---- outputs: engine -> pointwise -> (pool) -> row writer ---------------------------
    src_valid = Mux(is_fc, fc.o.valid if has_fc else 0, conv.o.valid)
    m.d.comb += conv.o.ready.eq(~is_fc & pw.i.ready)
    if has_fc:
        m.d.comb += fc.o.ready.eq(is_fc & pw.i.ready)
    m.d.comb += [
        pw.i.valid.eq(src_valid),
        pw.i.payload.first.eq(Mux(is_fc, fc.o.payload.first if has_fc else 0, conv.o.payload.first)),
        pw.i.payload.last.eq(Mux(is_fc, fc.o.payload.last if has_fc else 0, conv.o.payload.last)),
    ]
    for n in range(NL):
        cd = conv.o.payload.data[n] if n < Po else 0
        fd = fc.o.payload.data[n] if has_fc and n < fo else 0
        m.d.comb += pw.i.payload.data[n].eq(Mux(is_fc, fd, cd))
    m.d.comb += [
        pw.o.ready.eq(Mux(is_fc, rw.i.ready, pool.i.ready)),
        pool.i.valid.eq(~is_fc & pw.o.valid),
        pool.i.payload.first.eq(pw.o.payload.first),
        pool.i.payload.last.eq(pw.o.payload.last),
    ]
    for o in range(Po):
        m.d.comb += pool.i.payload.data[o].eq(pw.o.payload.data[o])
    m.d.comb += [
        pool.o.ready.eq(~is_fc & rw.i.ready),
        rw.i.valid.eq(Mux(is_fc, pw.o.valid, pool.o.valid)),
    ]
    for n in range(NL):
        pd = pool.o.payload.data[n] if n < Po else 0
        m.d.comb += rw.i.payload.data[n].eq(Mux(is_fc, pw.o.payload.data[n], pd))
    for n in range(NL, NRW):
        m.d.comb += rw.i.payload.data[n].eq(0)
    m.d.comb += [
        rw.start.eq(start_stream), rw.base.eq(out_base), rw.map_words.eq(map_out),
        rw.out_w.eq(R.out_w), rw.rows.eq(R.rows), rw.n_out.eq(R.n_out), rw.vector.eq(map_out == 1),
    ]
    if CL:
        # OP_LCN: sweep A writes v (in_c maps) then s to scratch, sweep B y to out_addr
        ao, bo = lcn.a_o, lcn.b_o
        m.d.comb += [ao.ready.eq(is_lcn & ~lcn_b & rw.i.ready), bo.ready.eq(is_lcn & lcn_b & rw.i.ready)]
        with m.If(is_lcn):
            m.d.comb += [
                pool.o.ready.eq(0),
                rw.i.valid.eq(Mux(lcn_b, bo.valid, ao.valid)),
                rw.start.eq(lcn_start), rw.base.eq(Mux(lcn_b, R.out_addr, R.scratch_addr)),
                rw.map_words.eq(map_in), rw.out_w.eq(R.in_w), rw.rows.eq(R.in_h),
                rw.n_out.eq(Mux(lcn_b, R.in_c, R.in_c + 1)), rw.vector.eq(0),
            ]
            for n in range(CL + 1):
                a_n = Mux(n < R.in_c, ao.payload.v[n], ao.payload.s) if n < CL else ao.payload.s
                b_n = bo.payload.data[n] if n < CL else 0
                m.d.comb += rw.i.payload.data[n].eq(Mux(lcn_b, b_n, a_n))
    m.d.comb += stream_busy.eq(rw.busy | feeders_busy)

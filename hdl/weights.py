r"""Weight loaders: the parameter reader's words -> the convolution and FC engines.

Both take their configuration as plain inputs, held stable while a band runs (the
sequencer drives them from the record it holds), start on a ``start`` pulse and raise
``busy`` from the next cycle until the band's last group of weights has gone to the
engine.  Their command and word ports are the parameter reader's
(:class:`~convc.hdl.memport.MemReader`), which the sequencer lends them while they are
busy.

:class:`ConvWeightLoader` (``OP_CONV``; weights output-major, ``isa.py``)
    for each input group ``g < groups``, each output lane ``o < out_lanes`` and input
    lane ``i < in_lanes``: the ``K*K`` weights of output ``o`` and input
    ``j = g*in_lanes + i`` (one read command of ``K*K`` words at
    ``w_addr + o*n_in*K*K + j*K*K``), or ``K*K`` zeros (no read) if ``o >= n_out`` or
    ``j >= n_in``; one word a cycle on ``weight``.  The command loop runs ahead of the
    word loop as far as the reader takes commands.

    Timing (:meth:`ConvWeightLoader.group_words`): ``out_lanes * in_lanes * K*K`` words
    a group, one a cycle when the reader keeps up.

:class:`FCWeightAssembler` (``OP_FC``; weights input-major, ``isa.fc_ld``)
    group ``g``'s weights are one aligned block (input ``j``'s column at
    ``w_addr + j*ld``): one read command of ``min(in_lanes, n_in - g*in_lanes) * ld``
    words in wide mode, a beat a cycle into the ``out_lanes x in_lanes`` matrix, which
    goes to the engine as one element when complete (then cleared: input lanes past
    ``n_in`` and output lanes past ``ld`` stay zero; those past ``n_out`` take the
    column's padding, zero in the isa layout).  The next group's first beat may come in the cycle the
    full matrix is taken.

    Timing (:meth:`FCWeightAssembler.group_beats`): ``lanes_in_group * ld_beats`` beats
    a group, one a cycle when the reader keeps up.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from convc.compiler.engine_figures import FC_ASSEMBLER_LUTS_PER_MULTIPLIER, FC_ASSEMBLER_MULTIPLIERS

from .arith import check_param
from .fc import weights_layout
from .memport import WORD_BITS, beat_layout, cmd_layout, word_layout

__all__ = ["ConvWeightLoader", "FCWeightAssembler"]


def _busy(m: Module, loader) -> Signal:
    """The loader's ``busy``: set the cycle after ``start``; the loader clears the returned
    register when its band's last group has gone to the engine."""
    active = Signal(name="active")
    m.d.comb += loader.busy.eq(active)
    with m.If(loader.start):
        m.d.sync += active.eq(1)
    return active


class ConvWeightLoader(wiring.Component):
    """``OP_CONV`` weights, group by group (module docstring).

    Parameters
    ----------
    in_lanes, out_lanes : int   the convolution engine's lanes
    bits : int                  weight width (the low ``bits`` of each word, signed)

    Ports
    -----
    ``start``   In(1); ``w_addr`` (32), ``n_in``, ``n_out`` (16), ``kk`` (``K*K``),
                ``n_kk`` (``n_in*K*K``), ``groups`` (16): configuration
    ``cmd``     Out(stream of :func:`~convc.hdl.memport.cmd_layout`), ``word``
                In(stream of :func:`~convc.hdl.memport.word_layout`): the reader's
    ``weight``  Out(stream of signed ``bits``): to ``ConvEngine.weight``
    ``busy``    Out(1)
    """

    def __init__(self, *, in_lanes: int, out_lanes: int, bits: int = 16):
        check_param(self, "in_lanes", in_lanes, 1, 1024)
        check_param(self, "out_lanes", out_lanes, 1, 1024)
        check_param(self, "bits", bits, 2, WORD_BITS)
        self._pi, self._po, self._bits = in_lanes, out_lanes, bits
        super().__init__({
            "start": In(1),
            "w_addr": In(32), "n_in": In(16), "n_out": In(16), "kk": In(10), "n_kk": In(26), "groups": In(16),
            "cmd": Out(stream.Signature(cmd_layout())),
            "word": In(stream.Signature(word_layout())),
            "weight": Out(stream.Signature(signed(bits))),
            "busy": Out(1),
        })

    def group_words(self, kernel: int) -> int:
        """Words (one a cycle) a group takes: every (output lane, input lane) pair."""
        return self._po * self._pi * kernel * kernel

    def elaborate(self, platform):
        m = Module()
        Pi, Po, bits = self._pi, self._po, self._bits
        kk, groups = self.kk, self.groups
        active = _busy(m, self)
        # command loop: (g, o, i) blocks of K*K words, ahead of the data loop
        cg = Signal(16, name="c_g")
        co = Signal(16, name="c_o")
        ci = Signal(16, name="c_i")
        cj = Signal(17, name="c_j")                        # g*Pi + i
        c_oaddr = Signal(32, name="c_oaddr")               # w_addr + o*n_in*K*K
        c_jaddr = Signal(32, name="c_jaddr")               # j*K*K
        c_active = Signal(name="c_active")
        dg = Signal(16, name="d_g")
        do = Signal(16, name="d_o")
        di = Signal(16, name="d_i")
        dj = Signal(17, name="d_j")
        dq = Signal(10, name="d_q")
        c_real = (co < self.n_out) & (cj < self.n_in)
        d_real = (do < self.n_out) & (dj < self.n_in)
        with m.If(self.start):
            m.d.sync += [cg.eq(0), co.eq(0), ci.eq(0), cj.eq(0), c_oaddr.eq(self.w_addr), c_jaddr.eq(0),
                         c_active.eq(1), dg.eq(0), do.eq(0), di.eq(0), dj.eq(0), dq.eq(0)]
        with m.If(active & c_active):
            m.d.comb += [self.cmd.valid.eq(c_real), self.cmd.payload.addr.eq(c_oaddr + c_jaddr),
                         self.cmd.payload.length.eq(kk)]
            with m.If(~c_real | self.cmd.ready):
                with m.If(ci == Pi - 1):
                    m.d.sync += [ci.eq(0), cj.eq(cj - (Pi - 1)), c_jaddr.eq(c_jaddr - (Pi - 1) * kk)]
                    with m.If(co == Po - 1):
                        m.d.sync += [co.eq(0), c_oaddr.eq(self.w_addr), cg.eq(cg + 1), cj.eq(cj + 1),
                                     c_jaddr.eq(c_jaddr + kk)]
                        with m.If(cg == groups - 1):
                            m.d.sync += c_active.eq(0)
                    with m.Else():
                        m.d.sync += [co.eq(co + 1), c_oaddr.eq(c_oaddr + self.n_kk)]
                with m.Else():
                    m.d.sync += [ci.eq(ci + 1), cj.eq(cj + 1), c_jaddr.eq(c_jaddr + kk)]
        # data loop: a real block's words from the reader, zeros for the others
        with m.If(active):
            m.d.comb += [self.weight.valid.eq(~d_real | self.word.valid),
                         self.weight.payload.eq(Mux(d_real, self.word.payload.data[:bits].as_signed(), 0)),
                         self.word.ready.eq(d_real & self.weight.ready)]
            with m.If(self.weight.valid & self.weight.ready):
                m.d.sync += dq.eq(dq + 1)
                with m.If(dq == kk - 1):
                    m.d.sync += dq.eq(0)
                    with m.If(di == Pi - 1):
                        m.d.sync += [di.eq(0), dj.eq(dj - (Pi - 1))]
                        with m.If(do == Po - 1):
                            m.d.sync += [do.eq(0), dg.eq(dg + 1), dj.eq(dj + 1)]
                            with m.If(dg == groups - 1):
                                m.d.sync += active.eq(0)
                        with m.Else():
                            m.d.sync += do.eq(do + 1)
                    with m.Else():
                        m.d.sync += [di.eq(di + 1), dj.eq(dj + 1)]
        return m


class FCWeightAssembler(wiring.Component):
    """``OP_FC`` weights, a group's matrix at a time (module docstring).

    Parameters
    ----------
    in_lanes, out_lanes : int   the FC engine's lanes
    bits : int                  weight width
    data_width : int            the reader's beat (wide mode), bits

    Ports
    -----
    ``start``    In(1); ``w_addr`` (32), ``n_in`` (16), ``ld`` (17: ``isa.fc_ld(n_out)``),
                 ``ld_beats`` (17: ``ld`` in beats), ``groups`` (16): configuration
    ``cmd``      Out(stream of :func:`~convc.hdl.memport.cmd_layout`), ``beat``
                 In(stream of :func:`~convc.hdl.memport.beat_layout`): the reader's, in
                 wide mode
    ``weights``  Out(stream of :func:`~convc.hdl.fc.weights_layout`): to ``FCEngine.weights``
    ``busy``     Out(1)
    """

    #: LUTs a weight of the matrix it assembles (the size search's logic estimate) and the
    #: multipliers of its read addresses: figures of :mod:`convc.compiler.engine_figures`
    LUTS_PER_MULTIPLIER = FC_ASSEMBLER_LUTS_PER_MULTIPLIER
    MULTIPLIERS = FC_ASSEMBLER_MULTIPLIERS

    def __init__(self, *, in_lanes: int, out_lanes: int, bits: int = 16, data_width: int = 256):
        check_param(self, "in_lanes", in_lanes, 1, 1024)
        check_param(self, "out_lanes", out_lanes, 1, 1024)
        check_param(self, "bits", bits, 2, WORD_BITS)
        check_param(self, "data_width", data_width, WORD_BITS, 1024)
        self._fi, self._fo, self._bits, self._dw = in_lanes, out_lanes, bits, data_width
        super().__init__({
            "start": In(1),
            "w_addr": In(32), "n_in": In(16), "ld": In(17), "ld_beats": In(17), "groups": In(16),
            "cmd": Out(stream.Signature(cmd_layout())),
            "beat": In(stream.Signature(beat_layout(data_width))),
            "weights": Out(stream.Signature(weights_layout(in_lanes, out_lanes, bits))),
            "busy": Out(1),
        })

    def group_beats(self, n_in_group: int, ld_beats: int) -> int:
        """Beats (one a cycle) a group of ``n_in_group`` inputs takes."""
        return n_in_group * ld_beats

    def elaborate(self, platform):
        m = Module()
        fi, fo, bits = self._fi, self._fo, self._bits
        W = self._dw // WORD_BITS
        ld, groups = self.ld, self.groups
        active = _busy(m, self)
        # commands: one aligned block a group
        f_addr = Signal(32, name="c_addr")
        f_left = Signal(17, name="c_left")                 # inputs not yet requested
        f_cact = Signal(name="c_active")
        with m.If(self.start):
            m.d.sync += [f_addr.eq(self.w_addr), f_left.eq(self.n_in), f_cact.eq(1)]
        with m.If(active & f_cact):
            nl = Mux(f_left >= fi, fi, f_left)
            m.d.comb += [self.cmd.valid.eq(1), self.cmd.payload.addr.eq(f_addr),
                         self.cmd.payload.length.eq(nl * ld)]
            with m.If(self.cmd.ready):
                m.d.sync += [f_addr.eq(f_addr + fi * ld), f_left.eq(f_left - nl)]
                with m.If(f_left <= fi):
                    m.d.sync += f_cact.eq(0)
        # data: fill the group's matrix beat by beat, hand it to the engine, clear it
        mat = [[Signal(signed(bits), name=f"w_o{o}_i{i}") for i in range(fi)] for o in range(fo)]
        mfull = Signal(name="full")
        fd_left = Signal(17, name="d_left")
        fdi = Signal(range(fi + 1), name="d_i")
        fdb = Signal(16, name="d_beat")
        fdg = Signal(16, name="d_g")
        with m.If(self.start):
            m.d.sync += [fd_left.eq(self.n_in), fdi.eq(0), fdb.eq(0), fdg.eq(0), mfull.eq(0)]
        for o in range(fo):
            for i in range(fi):
                m.d.comb += self.weights.payload[o][i].eq(mat[o][i])
        m.d.comb += self.weights.valid.eq(active & mfull)
        with m.If(self.weights.valid & self.weights.ready):
            m.d.sync += [mfull.eq(0), fdg.eq(fdg + 1)]
            m.d.sync += [mat[o][i].eq(0) for o in range(fo) for i in range(fi)]
            with m.If(fdg == groups - 1):
                m.d.sync += active.eq(0)
        # the next group's first beat may come in the cycle the full matrix is taken
        # (its words override the clearing): one cycle a group-beat, not two
        with m.If(active & (~mfull | (self.weights.valid & self.weights.ready))):
            m.d.comb += self.beat.ready.eq(1)
            with m.If(self.beat.valid):
                bw = self.beat.payload.data
                for o in range(fo):
                    for i in range(fi):
                        with m.If((fdi == i) & (fdb == o // W)):
                            m.d.sync += mat[o][i].eq(bw[16 * (o % W):16 * (o % W) + bits].as_signed())
                with m.If(fdb == self.ld_beats - 1):
                    m.d.sync += [fdb.eq(0), fdi.eq(fdi + 1)]
                    with m.If((fdi == fi - 1) | (fd_left == 1)):
                        m.d.sync += [fdi.eq(0), mfull.eq(1), fd_left.eq(fd_left - 1)]
                    with m.Else():
                        m.d.sync += fd_left.eq(fd_left - 1)
                with m.Else():
                    m.d.sync += fdb.eq(fdb + 1)
        return m

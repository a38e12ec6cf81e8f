"""OP_CONV records that read their input nearest-upsampled by ``2**up`` (the ``up`` field,
:mod:`convc.compiler.isa`), on the whole accelerator in RTL (hdl/accel.py through the native
Verilator harness, :mod:`convc.sim.native`) against the golden model and the cycle model.

A hand-built program: three maps of 6x5 read upsampled to 12x10 (``up = 1``: a 3x3 kernel,
pad 1, a list of two of them in another order, two bands and two output passes; a 5x5
kernel, pad 2) and to 24x20 (``up = 2``: a 1x1 kernel, pad 1, a 26x22 output in three
bands; a 3x3 kernel, pad 1, ReLU, over a list that names a map twice, two bands), then
the first layer's output read again upsampled by 2 (3x3, stride 2), and two ``up = 0``
convolutions beside them.  Checked: every word of every layer's output equals the golden
model's, for 3 images; the cycle model (``MemoryTiming.axi_ram``) within 1% of the RTL's
CYCLES and of each record's cycles (the trace port's record starts).  Records the
hardware must refuse (``up`` on ``OP_LCN``; an upsampled map wider than 4095 columns,
whose width would reach the engines cut to 12 bits) stop the run with STATUS.error at
the record's decoding, before it reads anything.

The accelerator is the one ``tests/hdl/test_accel.py`` builds for its
``lcn_even_4maps_k9_2maps_k5`` network (one input lane, two output lanes, widths up to 28,
an LCN engine, no FC engine, no pooling): the same Verilog, so one Verilator build (about
a minute, cached by the Verilog's hash) serves both.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from convc.compiler import isa
from convc.compiler.hwconfig import HardwareConfig
from convc.compiler.numeric import QFormat
from convc.compiler.program import Program, Region

Q88 = QFormat(16, 8)
HW = HardwareConfig(board="virtex6", clock_mhz=200.0, bits=16, kmax=5, in_lanes=1, out_lanes=2, max_width=28,
                    psum_words=1024, lcn_kmax=9, lcn_channels=4, pool_kmax=1, fc_in_lanes=0, fc_out_lanes=0,
                    fc_psum_words=1024, pwl_tables=16, pwl_segments=16, list_words=1024, writers=1,
                    mem_bytes_per_cycle=22.4, burst_words=64, acc_bits=48, data_width=256)
TOLERANCE = 0.01


class _Builder:
    """Constants from word 0 (lists, weights, biases), activations from ``act_base``."""

    def __init__(self, rng, in_shape, act_base=1 << 13):
        self.rng = rng
        self.image: list[int] = []
        self.instrs: list[isa.Instr] = []
        self.names: list[str] = []
        self.layers: list[Region] = []
        self.act = act_base
        self.input = self.alloc("input", in_shape)

    def alloc(self, name, shape) -> Region:
        reg = Region(name, self.act, tuple(shape), Q88)
        self.act += reg.words
        return reg

    def const(self, words) -> int:
        addr = len(self.image)
        self.image.extend(int(w) & 0xFFFF for w in words)
        return addr

    def conv(self, name, src: Region, n_out, K, *, P=0, S=1, up=0, lst=None, o_splits=None, row_splits=None,
             act=isa.ACT_NONE, pool=isa.POOL_NONE, pk=1, op=isa.OP_CONV) -> Region:
        C, H, W = src.shape
        lst = list(range(C)) if lst is None else lst
        ch, cw = ((H << up) + 2 * P - K) // S + 1, ((W << up) + 2 * P - K) // S + 1
        oh, ow = (ch - pk) // pk + 1, (cw - pk) // pk + 1
        out = self.alloc(name, (n_out, oh, ow))
        w = self.rng.integers(-300, 301, size=(n_out, len(lst), K, K))
        b = self.rng.integers(-4000, 4001, size=n_out)
        list_addr = self.const(lst)
        lanes = HW.fc_out_lanes if op == isa.OP_FC else HW.out_lanes
        o_splits = o_splits or [(o0, min(lanes, n_out - o0)) for o0 in range(0, n_out, lanes)]
        assert all(no <= lanes for _, no in o_splits), "a record computes at most its engine's output lanes"
        for o0, no in o_splits:
            if op == isa.OP_FC:
                self.const([0] * (-len(self.image) % isa.FC_ALIGN))
            w_addr = self.const(isa.weight_image(op, w[o0:o0 + no], b[o0:o0 + no]))
            for row0, rows in row_splits or [(0, oh)]:
                self.instrs.append(isa.Instr(
                    op=op, bits=16, act=act, pool=pool, kernel=K, stride=S, pad=P, pool_k=pk, pool_s=pk,
                    in_c=C, in_h=H, in_w=W, up=up, out_h=oh, out_w=ow, n_in=len(lst), n_out=no, o0=o0,
                    row0=row0, rows=rows, in_addr=src.addr, out_addr=out.addr, w_addr=w_addr,
                    list_addr=list_addr, bias_shift=8, acc_shift=9))
                self.names.append(name)
        self.layers.append(out)
        return out

    def finish(self) -> Program:
        assert len(self.image) <= self.input.addr, "constants overlap the activations"
        return Program(hw=HW, instrs=self.instrs + [isa.Instr(op=isa.OP_END, bits=16)],
                       names=self.names + ["end"], image=np.asarray(self.image, dtype=np.int64),
                       memory_words=self.act, table_addr=len(self.image), n_tables=0, input=self.input,
                       output=self.layers[-1], layers=list(self.layers))


def _program() -> Program:
    b = _Builder(np.random.default_rng(5), (3, 6, 5))
    x = b.input
    u1 = b.conv("up1_k3p1", x, 3, 3, P=1, up=1, lst=[2, 0], o_splits=[(0, 2), (2, 1)],
                row_splits=[(0, 5), (5, 7)], act=isa.ACT_RELU)                          # 12x10
    b.conv("up1_k5p2", x, 2, 5, P=2, up=1, lst=[0, 1])                                  # 12x10
    b.conv("up2_k1p1", x, 2, 1, P=1, up=2, row_splits=[(0, 9), (9, 9), (18, 8)])      # 26x22
    b.conv("up2_k3p1", x, 3, 3, P=1, up=2, lst=[1, 2, 1], act=isa.ACT_RELU,
           row_splits=[(0, 12), (12, 12)])                                             # 24x20
    b.conv("up1_k3s2", u1, 2, 3, P=1, S=2, up=1)                                       # 24x20 -> 12x10
    b.conv("plain_k3p1", x, 2, 3, P=1, lst=[0, 2])                                      # up = 0
    b.conv("plain_k1", x, 2, 1, row_splits=[(0, 2), (2, 4)])                           # up = 0
    return b.finish()


def _build(tmp_path):
    from convc.hdl.boardtop import accelerator_verilog
    from convc.sim import native

    v = tmp_path / "convc_accel.v"
    v.write_text(accelerator_verilog(HW))           # as a compiled folder holds it
    return native.build(v)


def _run(nb, program, codes, folder, max_cycles=400_000, poll_cycles=256):
    from convc.sim import native
    from convc.sim.memtiming import MemoryTiming

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "schedule.bin").write_bytes(isa.encode_program(program.instrs))
    (folder / "weights.bin").write_bytes(np.asarray(program.image, dtype="<u2").tobytes())
    mem = MemoryTiming.axi_ram(HW.data_width)
    return native.run(nb, program, folder, codes.reshape(len(codes), -1), mem, folder / "run",
                      max_cycles=max_cycles, poll_cycles=poll_cycles), mem


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("accel_up"))


def test_upsampled_records_rtl_equal_golden_and_cycle_model(harness, tmp_path):
    from convc.sim import golden
    from convc.sim.cycle import simulate
    from convc.sim.rtlrun import record_cycles

    program = _program()
    assert {ins.up for ins in program.instrs if ins.op == isa.OP_CONV} == {0, 1, 2}
    rng = np.random.default_rng(9)
    images = 3
    codes = rng.integers(-600, 601, size=(images, *program.input.shape))
    ref = golden.run(program, codes)
    for region in program.layers:               # no layer's check is vacuous: most words nonzero
        assert np.count_nonzero(ref.region(region)) > 0.3 * images * region.words, region.name
    rtl, mem = _run(harness, program, codes, tmp_path)
    assert rtl.error is None, rtl.error
    assert len(rtl.cycles) == images
    # every word of every layer, every image
    for region, words in zip(program.layers, rtl.layers):
        got = words.astype(np.int64)
        got = np.where(got >= 1 << 15, got - (1 << 16), got).reshape(images, *region.shape)
        want = ref.region(region)
        bad = np.argwhere(got != want)
        assert bad.size == 0, (f"layer {region.name}: {len(bad)} of {want.size} words differ, first at "
                               f"{tuple(bad[0])}: RTL {got[tuple(bad[0])]}, golden {want[tuple(bad[0])]}")
    # the cycle model: the run and every record within 1%
    rep = simulate(program, mem)
    for i in range(images):
        assert abs(rep.cycles - rtl.cycles[i]) <= TOLERANCE * rtl.cycles[i], (rep.cycles, rtl.cycles)
        rec = record_cycles(rtl.record_starts[i], rtl.cycles[i])
        assert len(rec) == len(program.instrs)
        for k, (r_rtl, r_sim) in enumerate(zip(rec, rep.records)):
            assert abs(r_sim.cycles - r_rtl) <= TOLERANCE * r_rtl, \
                (k, program.names[k], "model", r_sim.cycles, "rtl", r_rtl)


@pytest.mark.parametrize("bad", ["lcn_up", "too_wide"])
def test_refused_up_records_raise_error(harness, tmp_path, bad):
    """The hardware refuses what the models refuse (isa.check_up): ``up`` on an OP_LCN
    record the LCN engine would otherwise run, and an upsampled map beyond 4095 columns
    (1027 << 2: its padded width, 4110, would reach the engines as 14, cut to 12 bits, a
    band they take): STATUS.error in the record's first cycles (its fetch and decoding),
    before any other read."""
    program = _program()
    x = program.input
    if bad == "lcn_up":
        wrong = isa.Instr(op=isa.OP_LCN, bits=16, kernel=3, in_c=3, in_h=6, in_w=5, out_h=6, out_w=5,
                          in_addr=x.addr, out_addr=program.layers[0].addr,
                          scratch_addr=program.layers[1].addr, up=1)
    else:
        wrong = program.instrs[0].replace(in_w=1027, up=2, out_w=1)
    with pytest.raises(ValueError, match="up="):
        isa.check_up(wrong)
    prog = Program(**{**program.__dict__, "instrs": [wrong, program.instrs[-1]],
                      "names": [program.names[0], "end"]})
    codes = np.zeros((1, *x.shape), dtype=np.int64)
    rtl, _ = _run(harness, prog, codes, tmp_path, max_cycles=20_000, poll_cycles=8)
    assert rtl.error is not None and "STATUS.error" in rtl.error and "record 0" in rtl.error, rtl.error
    elapsed = int(re.search(r"after about (\d+) cycles", rtl.error).group(1))
    assert elapsed <= isa.RECORD_WORDS + 40, rtl.error          # the fetch, then the decoding

"""The cycle-level model (sim/cycle.py): invariants on compiled small networks, the conv
streaming phase against ConvEngine.band_cycles, the row writer's bound, memory timings,
JSON and the command line."""

import json
import math

import numpy as np
import pytest

from convc.boards import get_board
from convc.cli import main
from convc.compiler import isa
from convc.compiler.hwconfig import HardwareConfig
from convc.compiler.numeric import QFormat
from convc.pipeline import CompileOptions, compile_network
from convc.compiler.program import Program, Region, save_program
from convc.errors import ConvcError
from convc.hdl.accel import Accelerator
from convc.hdl.conv import ConvEngine
from convc.hdl.pointwise import PointwiseEngine
from convc.hdl.pool import PoolEngine
from convc.hdl.rowwriter import RowWriter
from convc.reference.archs import build_network
from convc.reference.modelfile import network_from_graph, save_model
from convc.sim import memtiming
from convc.sim.cycle import simulate
from convc.sim.memtiming import MemoryTiming

V6 = get_board("virtex6")


def _compile(net, seed=11):
    calib = np.random.default_rng(seed).random((4,) + net.input.shape, dtype=np.float32)
    return compile_network(net, V6, CompileOptions(calib=4), calib=calib)


# ---- hand-built one-record programs ---------------------------------------------------
def _hw(**kw):
    base = dict(board="virtex6", clock_mhz=200.0, bits=16, kmax=3, in_lanes=1, out_lanes=8, max_width=64,
                psum_words=1024, pool_kmax=2)
    base.update(kw)
    return HardwareConfig(**base)


def _program(hw, ins):
    fmt = QFormat(16, 8)
    out = Region("l", ins.out_addr, (ins.o0 + ins.n_out, ins.out_h, ins.out_w), fmt)
    return Program(hw=hw, instrs=[ins, isa.Instr(op=isa.OP_END)], names=["l", "end"],
                   image=np.zeros(64, dtype=np.int64), memory_words=1 << 16, table_addr=0, n_tables=0,
                   input=Region("input", 4096, (ins.in_c, ins.in_h, ins.in_w), fmt), output=out, layers=[out])


def _conv(in_h, in_w, n_out, pool, K=3, n_in=1):
    pk = 2 if pool else 1
    conv_h, conv_w = in_h - K + 1, in_w - K + 1
    out_h, out_w = (conv_h - pk) // pk + 1, (conv_w - pk) // pk + 1
    return isa.Instr(op=isa.OP_CONV, kernel=K, pool=isa.POOL_MAX if pool else isa.POOL_NONE, pool_k=pk,
                     pool_s=pk, in_c=n_in, in_h=in_h, in_w=in_w, out_h=out_h, out_w=out_w, n_in=n_in,
                     n_out=n_out, rows=out_h, in_addr=4096, out_addr=20000, w_addr=100, list_addr=90)


def test_writer_light_conv_streams_in_band_cycles():
    """Few outputs behind 2x2 pooling: the row writer keeps up, so the streaming phase is
    the read latency plus exactly ConvEngine.band_cycles."""
    hw = _hw(out_lanes=4)
    ins = _conv(20, 24, n_out=2, pool=True)
    for mem in (MemoryTiming.board(hw), MemoryTiming.axi_ram()):
        rec = simulate(_program(hw, ins), mem).records[0]
        band = ConvEngine(hw).band_cycles(3, 24, 20, 1, preload=True, stride=1)
        assert rec.writer_stall == 0 and rec.bound == "compute"
        assert rec.compute_cycles == band
        assert rec.phases["stream"] == Accelerator.PHASE_GAP + mem.read_latency + band
        assert rec.cycles == sum(rec.phases.values())


def test_writer_bound_conv_takes_rows_times_row_cost():
    """Eight outputs, no pooling, one group: a 38-word row per map (304 words a row) comes
    every 40 cycles, so the writer is busy from row 0's completion to the end and the
    record is longer than band_cycles by about rows * 304 - (band - row 0)."""
    hw = _hw()
    ins = _conv(12, 40, n_out=8, pool=False)
    mem = MemoryTiming.board(hw)
    rec = simulate(_program(hw, ins), mem).records[0]
    K, Wp, rows = 3, 40, ins.out_h
    conv = ConvEngine(hw)
    band = conv.band_cycles(K, Wp, 12, 1, preload=True, stride=1)
    assert Wp * 8 > hw.out_lanes * K * K  # no weight wait: row timing is plain geometry
    # row 0 is complete one cycle before row 1's first output: the pixel (K, K-1) of the
    # band, accepted in cycle K*Wp + K, plus the pipeline to the row buffer
    row0 = (K * Wp + K + conv.latency + PointwiseEngine(16).latency
            + PoolEngine(lanes=8, bits=16, kmax=2, max_width=64).latency + RowWriter.BUFFER_LATENCY - 1)
    expected = (row0 + memtiming.WRITER_CMD_TO_WORD + rows * ins.n_out * mem.write_cmd_cycles(ins.out_w)
                + mem.write_drain(ins.out_w))
    lead = Accelerator.PHASE_GAP + mem.read_latency
    streamed = rec.phases["stream"] + rec.phases["drain"] - lead
    assert abs(streamed - expected) <= 2, (streamed, expected)
    assert streamed - band > rows * ins.n_out * ins.out_w - band
    assert rec.bound == "writer" and rec.writer_stall > 0
    # the engines stall by about what the writer needs beyond the engine's own time
    assert rec.writer_stall > rows * ins.n_out * ins.out_w - band - 4 * ins.n_out * ins.out_w


def test_memory_timings():
    hw = _hw()
    b, a = MemoryTiming.board(hw), MemoryTiming.axi_ram()
    assert b.words_per_cycle == pytest.approx(hw.mem_bytes_per_cycle / 2)
    assert a.words_per_cycle == 16 and MemoryTiming.axi_ram(64).words_per_cycle == 4
    assert a.read_latency == memtiming.AXI_RAM_READ_LATENCY and b.read_latency > a.read_latency
    assert b.write_latency > a.write_latency
    # the memory side alone, as the native harness runs it
    assert a.ar_to_r == memtiming.AXI_RAM_READ_LATENCY - memtiming.READER_CMD_TO_AR - memtiming.READER_R_TO_WORD
    assert b.ar_to_r == memtiming.DDR3_AR_TO_R and b.w_to_b == memtiming.DDR3_W_TO_B
    rate = hw.mem_bytes_per_cycle / 32                    # 256-bit beats
    assert a.beats_per_cycle == 1 and b.beats_per_cycle == pytest.approx(rate)
    assert a.bucket_beats == 2 and b.bucket_beats == pytest.approx(max(1, rate) + rate)
    # bandwidth in beats: each way on the AXI RAM, shared on the DDR3
    assert a.beat_cycles(10, 10) == 10 and b.beat_cycles(7, 7) == math.ceil(14 / rate - 1e-9)
    assert a.write_drain(69) == memtiming.AXI_RAM_WRITE_LATENCY + 5        # measured: 9 cycles
    with pytest.raises(ConvcError, match="data_width"):
        MemoryTiming.axi_ram(100)
    with pytest.raises(ConvcError, match="words_per_cycle"):
        MemoryTiming(name="x", words_per_cycle=0, read_latency=1, write_latency=1)


# ---- compiled small networks ----------------------------------------------------------
def test_invariants_on_small_networks(small_net):
    name, net = small_net
    res = _compile(net)
    prog = res.program
    board = simulate(prog)
    axi = simulate(prog, MemoryTiming.axi_ram())
    hw = prog.hw
    conv = ConvEngine(hw)
    wpc = board.memory.words_per_cycle
    assert board.cycles == Accelerator.START_CYCLES + sum(r.cycles for r in board.records)
    assert board.cycles == sum(lt.cycles for lt in board.layers) + board.overhead_cycles
    assert board.records[-1].op == "end" and len(board.records) == len(prog.instrs)
    for r, ins in zip(board.records, prog.instrs):
        assert r.cycles == sum(r.phases.values())
        assert r.cycles >= r.compute_cycles
        assert r.cycles >= math.ceil((r.words_read + r.words_written) / wpc - 1e-9)
        if ins.op == isa.OP_CONV:
            R = isa.in_rows(isa.conv_rows(ins.rows, ins.pool_k, ins.pool_s), ins.kernel, ins.stride)
            G = -(-ins.n_in // hw.in_lanes)
            # the band's timing from the engine; group 0's weights at most a read latency late
            # (a band whose first rows are padding starts before the first read returns)
            band = conv.band_cycles(ins.kernel, ins.in_w + 2 * ins.pad, R, G, True, ins.stride)
            assert band <= r.compute_cycles <= band + board.memory.read_latency
            if ins.pad == 0:                                    # no padding before the first read
                assert r.compute_cycles == band
        if ins.op in (isa.OP_CONV, isa.OP_FC):
            assert r.words_written == ins.n_out * ins.rows * ins.out_w
    # every output word of a conv/FC layer is written exactly once
    regions = {reg.name: reg for reg in prog.layers}
    for lt in board.layers:
        if lt.op in ("conv", "fc"):
            assert lt.bytes_written == 2 * regions[lt.name].words
    # MACs as the compiler counts them
    assert board.macs == sum(row["macs"] for row in res.report["layers"] if row["type"] == "conv")
    assert 0 < board.mac_utilization <= 1
    # the board's DDR3 is slower than the testbench RAM, record by record
    for rb, ra in zip(board.records, axi.records):
        assert rb.cycles >= ra.cycles
    assert board.cycles > axi.cycles


def conv_pool_linear(name, shape, out_channels, act, classes, *, seed):
    """conv 3x3 (``out_channels``) -> ``act`` -> maxpool 2 -> flatten -> linear
    (``classes``) on a ``shape`` input, random weights."""
    spec = {"name": name, "input": {"shape": shape}, "classes": classes, "layers": [
        {"type": "conv2d", "attrs": {"out_channels": out_channels, "kernel": 3}}, {"type": act},
        {"type": "maxpool2d", "attrs": {"kernel": 2}}, {"type": "flatten"},
        {"type": "linear", "attrs": {"out_features": classes}}]}
    net = network_from_graph(spec, name)
    net.init_params(seed=seed)
    return net


def test_json_and_text():
    net = conv_pool_linear("t", [2, 14, 14], 4, "tanh", 3, seed=1)
    rep = simulate(_compile(net).program)
    d = json.loads(json.dumps(rep.to_json()))
    for key in ("cycles", "ms_per_frame", "mac_utilization", "layers", "totals", "records", "memory"):
        assert key in d
    assert d["cycles"] == rep.cycles and d["totals"]["cycles"] == rep.cycles
    assert d["ms_per_frame"] == pytest.approx(rep.cycles / 200e3)
    for key in ("name", "cycles", "ms", "macs", "utilization", "bytes_read", "bytes_written", "bound"):
        assert key in d["layers"][0]
    for key in ("name", "op", "cycles", "bound", "words_read", "words_written", "phases"):
        assert key in d["records"][0]
    assert "records" not in rep.to_json(records=False)
    assert [lt["name"] for lt in d["layers"]] == [lt.name for lt in rep.layers]
    assert "total:" in rep.text() and "fetch=" in rep.text(records=True)


def test_fc_floor_is_a_lower_bound_and_the_rest_is_the_model():
    """run_cycles(fc_floor=True), which the size pass prunes with, never exceeds the full
    model, record by record, and equals it where there is no OP_FC record."""
    from convc.sim.cycle import _run, run_cycles

    for arch in ("lenet", "sceneparse"):
        prog = _compile(build_network(arch)).program
        mem = MemoryTiming.board(prog.hw)
        full, floor = _run(prog, mem), _run(prog, mem, fc_floor=True)
        assert [r.op for r in full] == [r.op for r in floor]
        assert any(r.op == "fc" for r in full)
        for a, b in zip(full, floor):
            if a.op == "fc":
                assert 0 < b.cycles <= a.cycles, (arch, a.index, b.cycles, a.cycles)
            else:
                assert a.cycles == b.cycles
        assert run_cycles(prog, mem) == simulate(prog, mem).cycles > run_cycles(prog, mem, fc_floor=True)


# ---- command line ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    net = conv_pool_linear("tiny", [1, 12, 12], 3, "relu", 4, seed=2)
    d = tmp_path_factory.mktemp("tiny")
    model = save_model(net, d / "tiny.npz")
    out = d / "compiled"
    out.mkdir()
    save_program(_compile(net).program, out)   # what simulate reads of a 'convc compile' folder
    return model, out


def test_cli_on_compiled_folder_and_model(tiny, capsys):
    model, folder = tiny
    assert main(["simulate", str(folder), "--json"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert {"cycles", "ms_per_frame", "mac_utilization", "layers", "totals"} <= set(a)
    assert "records" not in a and a["memory"]["name"] == "board"
    assert main(["simulate", str(model), "--json", "--records", "--memory", "axi-ram"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert b["memory"]["name"] == "axi-ram" and len(b["records"]) == len(a["layers"]) + 1 + sum(
        lt["passes"] - 1 for lt in a["layers"])
    assert b["cycles"] < a["cycles"]
    assert main(["simulate", str(folder), "--records"]) == 0
    text = capsys.readouterr().out
    assert "ms per frame" in text and a["layers"][0]["name"] in text and "fetch=" in text


def test_cli_errors(tmp_path, capsys):
    missing = tmp_path / "nothere"
    assert main(["simulate", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["simulate", str(empty)]) == 2
    assert "program.json" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    assert main(["simulate", str(bad)]) == 2
    assert "bad.npz" in capsys.readouterr().err

"""``convc compile --bitstream``: the memory image, the plumbing into the compiled folder and
its report (the tools replaced by a stand-in; the real flow is bench/bench_boards.py)."""

import json
from pathlib import Path

import numpy as np
import pytest

from convc.cli import main
from convc import bitstream
from convc.compiler import isa
from convc.compiler.isa import encode_program
from convc.compiler.program import load_program
from convc.hdl import ecp5
from convc.compiler.program import schedule_addr
from convc.reference.archs import build_network
from convc.reference.modelfile import save_model

HW = ["--calib", "2", "--in-lanes", "1", "--out-lanes", "1", "--fc-in-lanes", "1", "--fc-out-lanes", "8"]


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    return save_model(build_network("lenet", seed=2), tmp_path_factory.mktemp("m") / "lenet.npz")


def test_memory_image_holds_constants_input_and_schedule(lenet, tmp_path):
    assert main(["compile", str(lenet), "--board", "ulx3s", "-o", str(tmp_path / "c"), "--no-hdl", *HW]) == 0
    prog = load_program(tmp_path / "c")
    x = np.random.default_rng(0).random(prog.input.shape)
    image, at = bitstream.memory_image(prog, x)
    assert at == schedule_addr(prog.memory_words)
    np.testing.assert_array_equal(image[:prog.image.size], np.asarray(prog.image, np.int64) & 0xFFFF)
    codes, _ = prog.quantize_input(x[None])
    n = prog.input.words
    np.testing.assert_array_equal(image[prog.input.addr:prog.input.addr + n], np.asarray(codes).reshape(-1) & 0xFFFF)
    np.testing.assert_array_equal(image[at:], np.frombuffer(encode_program(prog.instrs), "<u2"))


def test_writable_words_cover_every_output_and_spare_the_constants(lenet, tmp_path):
    """The ECP5 RAM window: every record's output maps and the input inside it, every
    constant word and the schedule outside it (the ROM)."""
    assert main(["compile", str(lenet), "--board", "ulx3s", "-o", str(tmp_path / "c"), "--no-hdl", *HW]) == 0
    prog = load_program(tmp_path / "c")
    lo, hi = bitstream.writable_words(prog)
    assert prog.image.size <= lo <= prog.input.addr and prog.input.addr + prog.input.words <= hi
    for ins in prog.instrs:
        if ins.op in (isa.OP_CONV, isa.OP_FC, isa.OP_LCN):
            end = ins.out_addr + (ins.o0 + ins.n_out) * ins.out_h * ins.out_w
            assert lo <= ins.out_addr and end <= hi, ins
    assert hi <= schedule_addr(prog.memory_words)


def test_bitstream_build_lands_in_the_folder_and_the_report(lenet, tmp_path, monkeypatch, capsys):
    def fake_build(top, folder, log=None, seed=1, timeout=0):
        assert top.depth * top.hw.data_width // 16 >= len(top.beats) and top.hw.board == "ulx3s"
        top._MustUse__silence = True            # a stand-in for the tools: never elaborated
        Path(folder, "convc_ulx3s.bit").write_bytes(b"\xff\x00bit")
        return ecp5.BitstreamResult(Path(folder), Path(folder, "convc_ulx3s.bit"), 61.5, 100.0,
                                    {"from": "a", "to": "b", "delay_ns": 16.3}, {"MULT18X18D": {"used": 90,
                                                                                            "total": 156}},
                                    {"yosys": 1.0, "nextpnr-ecp5": 2.0, "ecppack": 0.5})

    monkeypatch.setattr(ecp5, "build_bitstream", fake_build)
    out = tmp_path / "c"
    assert main(["compile", str(lenet), "--board", "ulx3s", "-o", str(out), "--bitstream", "--json", *HW]) == 0
    b = json.loads(capsys.readouterr().out)["bitstream"]
    assert b["fmax_mhz"] == 61.5 and b["bitstream"] == "bitstream/convc_ulx3s.bit"
    assert b["ms_per_frame_at_fmax"] == pytest.approx(b["cycles_onchip"] / 61.5e3)
    assert (out / "bitstream" / "convc_ulx3s.bit").read_bytes() == b"\xff\x00bit"
    load_program(out)                      # the manifest covers the build
    assert "Fmax 61.5 MHz (MISSES" in (out / "report.txt").read_text()


def test_bitstream_whose_memory_overflows_the_ebrs_is_refused_before_the_tools(lenet, tmp_path, monkeypatch,
                                                                                capsys):
    """FC 1 x 4 pads LeNet's FC weights four times (16 columns a pass): the image needs
    more EBRs than the ECP5-85 has, which is said before any tool runs."""
    def no_build(*a, **k):
        raise AssertionError("the flow must not start")

    monkeypatch.setattr(ecp5, "build_bitstream", no_build)
    hw4 = HW[:-1] + ["4"]
    assert main(["compile", str(lenet), "--board", "ulx3s", "-o", str(tmp_path / "c"), "--bitstream", *hw4]) == 2
    err = capsys.readouterr().err
    assert "EBRs" in err and "the ulx3s has 208" in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()


def test_ebr_count_follows_rom_and_ram():
    """36-bit columns of 512 beats: a 64-bit memory of 1,000 beats is 2 x 2 EBRs; split
    into a 100-beat RAM and a 900-beat ROM it is 2 x 1 + 2 x 2."""
    assert ecp5.ebr_count(1000, 64) == 4
    assert ecp5.ebr_count(1000, 64, (300, 400)) == 6


def test_bitstream_on_a_board_without_the_flow_is_refused(lenet, tmp_path, capsys):
    assert main(["compile", str(lenet), "--board", "virtex6", "-o", str(tmp_path / "c"), "--bitstream", *HW]) == 2
    assert "the virtex6 has no open flow to a bitstream" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()

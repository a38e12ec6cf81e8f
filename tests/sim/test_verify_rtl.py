"""``convc verify`` through real simulators, on stand-in accelerators (host registers and
a counter, no datapath; tests/sim/verify_helpers.py), and its answers to bad input and
faults.

* The native harness (Verilator, the default): runs images, reads the cycle count,
  reads every layer region back and finds every word unwritten; STATUS.error stops the
  run with a message naming the image and the record; a design that never finishes
  gives the timeout message (cycle budget, record); a read outside the memory image
  names the address.  The cocotb harness (Icarus) on the same stub.
* Bad input: a compiled folder without Verilog (``--no-hdl``), a Verilator that does not
  run, a Verilog that does not build: one message each, a non-zero exit, no traceback,
  no report left behind.

The whole accelerator in RTL is tests/hdl/test_accel.py.
"""

from __future__ import annotations

import json
import shutil
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verify_helpers import StubAccelerator, make_compiled  # noqa: E402

from convc.cli import main  # noqa: E402
from convc.hdl.export import write_verilog  # noqa: E402
from convc.sim import native  # noqa: E402
from convc.sim.verify import verify  # noqa: E402

needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None,
                                  reason="iverilog not installed (make iverilog)")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_compiled(tmp_path_factory.mktemp("tiny"))


def _check_done_then_error(res, tmp_path, rep):
    """Image 0 ends with done (a stub writes nothing: every word differs), image 1 with
    STATUS.error: image 0 is still compared and the error names image 1."""
    assert res.images == 2 and res.images_run == 1
    assert res.error.startswith("image 1: STATUS.error set")
    assert "3 of" in res.error and "records executed" in res.error
    assert res.rtl_cycles == [300]
    assert res.records == [3]
    words = sum(r.words for r in res.layers)
    assert res.total_words == words
    assert res.mismatched_words == words       # nothing written
    first = res.first_mismatch
    assert (first["image"], first["layer"], first["map"], first["row"], first["col"]) == \
        (0, res.layers[0].name, 0, 0, 0)
    assert first["not_written"] and first["rtl_hex"] == "0xdead"
    assert not res.ok
    data = json.loads((rep / "report.json").read_text())
    assert data["rtl_cycles"] == [300] and data["error"] == res.error
    assert "image 1: STATUS.error" in (rep / "report.html").read_text()


def test_native_stub_reads_cycles_finds_unwritten_words_and_stops_on_error(tiny, tmp_path):
    out, model = tiny
    v = write_verilog(StubAccelerator(latency=300, records=3, script=("done", "error")),
                      tmp_path / "stub.v", "convc_accel")
    res = verify(out, images=2, model=model, verilog=v, report_dir=tmp_path / "rep", log=None)
    assert res.harness == "native" and res.memory == "axi-ram"
    _check_done_then_error(res, tmp_path, tmp_path / "rep")
    assert res.sim_rate and res.sim_rate > 0
    # the same build again: from the cache
    again = verify(out, images=1, model=model, verilog=v, report_dir=tmp_path / "rep2", log=None)
    assert again.build["cached"] and again.images_run == 1 and again.rtl_cycles == [300]


@needs_icarus
def test_cocotb_stub_same_answers(tiny, tmp_path):
    out, model = tiny
    v = write_verilog(StubAccelerator(latency=300, records=3, script=("done", "error")),
                      tmp_path / "stub.v", "convc_accel")
    res = verify(out, images=2, model=model, verilog=v, harness="cocotb", sim="icarus",
                 report_dir=tmp_path / "rep", log=None)
    assert res.harness == "cocotb" and res.sim == "icarus"
    _check_done_then_error(res, tmp_path, tmp_path / "rep")


def test_native_timeout_names_the_budget_and_the_record(tiny, tmp_path, capsys):
    out, model = tiny
    v = write_verilog(StubAccelerator(records=1, script=("hang",)), tmp_path / "hang.v", "convc_accel")
    res = verify(out, images=1, model=model, verilog=v, report_dir=tmp_path / "hang", max_cycles=1500,
                 log=None)
    assert res.images_run == 0 and not res.ok and res.total_words == 0
    assert res.error.startswith("image 0: timeout: STATUS.done not set")
    assert "budget 1500 cycles" in res.error and "busy=1" in res.error
    assert "record 1" in res.error          # RECORDS=1: the second record did not finish
    code = main(["verify", str(out), "--model", str(model), "--verilog", str(v), "--images", "1",
                 "--max-cycles", "1500", "--report", str(tmp_path / "hang2")])
    err = capsys.readouterr().err
    assert code == 1 and "timeout" in err and "Traceback" not in err


def test_native_read_outside_the_memory_names_the_address(tiny, tmp_path, capsys):
    out, model = tiny
    v = write_verilog(StubAccelerator(script=("done",), read_at=0x7FF0_0000), tmp_path / "far.v", "convc_accel")
    code = main(["verify", str(out), "--model", str(model), "--verilog", str(v), "--images", "1",
                 "--report", str(tmp_path / "far")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "image 0" in err and "0x7ff00000" in err and "outside the memory image" in err
    data = json.loads((tmp_path / "far" / "report.json").read_text())
    assert not data["ok"] and "outside the memory image" in data["error"]


def test_folder_without_verilog(tiny, tmp_path, capsys):
    out, model = tiny                       # make_compiled writes no hdl/ (as --no-hdl)
    code = main(["verify", str(out), "--model", str(model), "--images", "1", "--report", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"{out} has no hdl/convc_accel.v" in err and "--no-hdl" in err
    assert not (tmp_path / "r" / "report.json").exists()


def test_broken_verilator_and_failed_build(tiny, tmp_path, capsys, monkeypatch):
    out, model = tiny
    v = write_verilog(StubAccelerator(), tmp_path / "ok.v", "convc_accel")
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "report.json").write_text("{}")            # a stale verdict is not left behind
    fake = tmp_path / "verilator"
    fake.write_text("#!/bin/sh\necho 'verilator: cannot load libfoo.so' >&2\nexit 127\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with monkeypatch.context() as mp:
        mp.setattr(native, "_verilator_bin", lambda: fake)
        code = main(["verify", str(out), "--model", str(model), "--verilog", str(v), "--images", "1",
                     "--report", str(rep)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert str(fake) in err and "libfoo" in err and "reinstall" in err
    assert not (rep / "report.json").exists()

    bad = tmp_path / "bad.v"
    bad.write_text("module convc_accel(input clk);\n  wire x = ;\nendmodule\n")
    code = main(["verify", str(out), "--model", str(model), "--verilog", str(bad), "--images", "1",
                 "--report", str(rep)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "could not build" in err and "bad.v" in err and "log" in err


def test_option_checks(tiny, tmp_path, capsys):
    out, model = tiny
    for args, msg in ((["--harness", "cocotb", "--memory", "board"], "need the native harness"),
                      (["--backpressure", "0"], "--backpressure 0"),
                      (["--trace", str(tmp_path / "w.txt")], ".fst or .vcd"),
                      (["--sim", "icarus"], "the native harness is Verilator"),
                      (["--max-cycles", "0"], "--max-cycles 0")):
        code = main(["verify", str(out), "--model", str(model), "--images", "1", *args])
        err = capsys.readouterr().err
        assert code == 2 and msg in err and "Traceback" not in err, (args, err)


def test_trace_writes_a_waveform_of_the_first_image(tiny, tmp_path):
    out, model = tiny
    v = write_verilog(StubAccelerator(latency=50, script=("done",)), tmp_path / "stub.v", "convc_accel")
    wave = tmp_path / "wave.vcd"
    res = verify(out, images=2, model=model, verilog=v, report_dir=tmp_path / "rep", trace=wave, log=None)
    assert res.images_run == 2 and res.trace == str(wave)
    text = wave.read_text()
    assert "$enddefinitions" in text and "s_axil__awvalid" in text and "irq" in text
    assert f"waveform of image 0: {wave}" in res.text()

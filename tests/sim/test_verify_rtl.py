"""``convc verify`` through a real simulator.

* The harness on a stand-in accelerator (host registers and a counter, no datapath;
  tests/sim/verify_helpers.py): builds with Icarus, runs images, reads the cycle count,
  reads every layer region back and finds every word unwritten; STATUS.error stops the
  run with a message naming the image and the record, and a design that never finishes
  gives the timeout message.
* The end-to-end test (``slow``): LeNet compiled with small lanes, one image, the real
  accelerator RTL (``convc.hdl.accel.Accelerator``, the ``hdl/convc_accel.v`` that
  ``convc compile`` writes, or exported here), every word equal to the golden model.
  It fails until the accelerator RTL runs the schedule.  ``CONVC_SIM=verilator``
  selects Verilator, as for the tests in tests/hdl.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verify_helpers import StubAccelerator, make_compiled  # noqa: E402

from convc.hdl.export import write_verilog  # noqa: E402
from convc.sim.verify import verify  # noqa: E402

needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None,
                                  reason="iverilog not installed (make iverilog)")
pytest.importorskip("cocotbext.axi")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_compiled(tmp_path_factory.mktemp("tiny"))


@needs_icarus
def test_harness_on_a_stub_reads_cycles_finds_unwritten_words_and_stops_on_error(tiny, tmp_path):
    """Image 0 ends with done (a stub writes nothing: every word differs), image 1 with
    STATUS.error: image 0 is still compared and the error names image 1."""
    out, model = tiny
    v = write_verilog(StubAccelerator(latency=300, records=3, script=("done", "error")),
                      tmp_path / "stub.v", "convc_accel")
    res = verify(out, images=2, model=model, verilog=v, report_dir=tmp_path / "rep", log=None)
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
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["rtl_cycles"] == [300] and data["error"] == res.error
    assert "image 1: STATUS.error" in (tmp_path / "rep" / "report.html").read_text()


@needs_icarus
def test_harness_timeout_message(tiny, tmp_path):
    out, model = tiny
    v = write_verilog(StubAccelerator(records=1, script=("hang",)), tmp_path / "hang.v", "convc_accel")
    res = verify(out, images=1, model=model, verilog=v, report_dir=tmp_path / "hang", max_cycles=1500,
                 log=None)
    assert res.images_run == 0 and not res.ok and res.total_words == 0
    assert res.error.startswith("image 0: timeout: STATUS.done not set")
    assert "budget 1500 cycles" in res.error and "busy=1" in res.error
    assert "record 1" in res.error          # RECORDS=1: the second record did not finish


SIM = (os.environ.get("CONVC_SIM") or "icarus").lower()


@pytest.mark.slow
@pytest.mark.skipif(SIM == "icarus" and shutil.which("iverilog") is None, reason="iverilog not installed")
def test_lenet_one_image_in_rtl_matches_golden(lenet_digits, tmp_path):
    """The accelerator's Verilog on one held-out digit, every word against the golden
    model (fails until the accelerator RTL runs the schedule).  Icarus by default (about
    100 cycles/s on this design: many minutes); ``CONVC_SIM=verilator`` is far faster
    after a longer build."""
    from convc.boards import get_board
    from convc.compiler.pipeline import CompileOptions, compile_network, write_outputs

    path, net, _ = lenet_digits
    result = compile_network(net, get_board("virtex6"),
                             CompileOptions(calib=32, in_lanes=2, out_lanes=2, fc_in_lanes=1, fc_out_lanes=16),
                             where=str(path))
    out = tmp_path / "lenet"
    write_outputs(result, out)
    res = verify(out, images=1, sim=SIM, model=path, report_dir=tmp_path / "verify")
    assert res.error is None, res.error
    assert res.images_run == 1
    assert res.mismatched_words == 0, res.first_mismatch
    assert res.total_words == sum(r.words for r in result.program.layers)
    assert res.top1_agreement == 1.0
    assert res.rtl_cycles and res.rtl_cycles[0] > 0
    assert res.sim_cycles, "no cycle-model figure"   # against the RTL's own count
    if res.sim_cycles:
        assert abs(res.cycle_error) < 0.01, (f"RTL {res.rtl_cycles[0]} cycles, cycle model "
                                             f"{res.sim_cycles} ({100 * res.cycle_error:+.1f}%)")

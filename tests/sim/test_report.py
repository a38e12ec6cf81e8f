"""``convc verify``'s report (sim/report.py) from synthetic results: report.json keys and
counts, the located mismatch, the two inline SVG figures, a self-contained page, atomic
writes, and a scene parser's label maps as pictures."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from convc.sim.labelmap import collect
from convc.sim.report import render_html, svg_bars, write_report
from convc.sim.verify_results import LayerResult, VerifyResult


def _result(**kw) -> VerifyResult:
    layers = [
        LayerResult("conv1", "pool1", "Q2.14", (6, 14, 14), 1176, 0, 51.3, 1.8, 0.21, 0, 0),
        LayerResult("conv2", "pool2", "Q2.14", (16, 5, 5), 400, 2, 48.0, 3.5, 0.4, 4, 0),
        LayerResult("fc1", "tanh3", "Q2.14", (120, 1, 1), 120, 1, float("inf"), 0.0, 0.0, 0, 1),
        LayerResult("fc2", "fc2", "Q5.11", (10, 1, 1), 10, 0, None, None, None, 0, 0),
    ]
    mism = [
        {"image": 1, "layer": "conv2", "layer_index": 1, "map": 3, "row": 4, "col": 2, "word": 97,
         "addr": 0xD7CF, "rtl": -8531, "golden": 12, "rtl_hex": "0xdead", "golden_hex": "0x000c",
         "diff_lsb": -8543, "rtl_real": -0.52, "golden_real": 0.0007, "not_written": True},
        {"image": 1, "layer": "conv2", "layer_index": 1, "map": 3, "row": 4, "col": 3, "word": 98,
         "addr": 0xD7D0, "rtl": 5, "golden": 4, "rtl_hex": "0x0005", "golden_hex": "0x0004",
         "diff_lsb": 1, "rtl_real": 0.0003, "golden_real": 0.0002, "not_written": False},
        {"image": 2, "layer": "fc1", "layer_index": 2, "map": 17, "row": 0, "col": 0, "word": 17,
         "addr": 0xDA17, "rtl": 100, "golden": -100, "rtl_hex": "0x0064", "golden_hex": "0xff9c",
         "diff_lsb": 200, "rtl_real": 0.006, "golden_real": -0.006, "not_written": False},
    ]
    d = dict(compiled="out/lenet", model="out/model.npz", source="digits test split", sim="icarus",
             verilog="out/lenet/hdl/convc_accel.v", images=3, images_run=3, mismatched_words=3,
             total_words=3 * 1706, layers=layers, mismatches=mism, top1_agreement=2 / 3,
             top1_rtl_float=2 / 3, top1_float_golden=1.0, accuracy_float=1.0, accuracy_golden=1.0,
             accuracy_rtl=2 / 3, rtl_cycles=[41000, 41010, 40990], records=[9, 9, 9], sim_cycles=40000,
             input_saturations=0, notes=["a note <with> markup"])
    d.update(kw)
    return VerifyResult(**d)


def test_report_json_and_html(tmp_path):
    res = _result()
    jpath, hpath = write_report(res, tmp_path / "rep")
    assert res.report_json == str(jpath) and res.report_html == str(hpath)
    data = json.loads(jpath.read_text())
    for key in ("ok", "images", "images_run", "mismatched_words", "total_words", "first_mismatch", "mismatches",
                "top1_agreement", "top1_rtl_float", "top1_float_golden", "rtl_cycles", "rtl_cycles_mean",
                "sim_cycles", "cycle_error", "cycle_errors", "layers", "error", "notes", "report"):
        assert key in data, key
    assert data["ok"] is False and data["mismatched_words"] == 3 and data["total_words"] == 5118
    assert data["first_mismatch"]["map"] == 3 and data["first_mismatch"]["not_written"] is True
    assert data["report"]["html"] == str(hpath)
    assert data["cycle_error"] == pytest.approx(41000 / 40000 - 1)
    assert [lay["mismatched_words"] for lay in data["layers"]] == [0, 2, 1, 0]
    assert data["layers"][2]["exact"] is True and data["layers"][2]["sqnr_db"] is None

    page = hpath.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert 'class="fail"' in page and "FAIL" in page
    # per-layer table with formats, SQNR, errors, saturations and RTL mismatches
    assert "Q5.11" in page and "51.30" in page and "exact" in page
    # the located mismatch table
    assert re.search(r"<td>1</td><td class=\"l\">conv2</td><td>3</td><td>4</td><td>2</td>", page)
    assert "0xdead" in page and "never written" in page
    # both figures, inline
    assert page.count("<svg") == 2 and 'id="sqnr"' in page and 'id="cycles"' in page
    assert "41,000" in page
    # self-contained: no scripts, no external resources; text escaped
    assert "<script" not in page and "src=" not in page and "<link" not in page and "href=" not in page
    assert "a note &lt;with&gt; markup" in page
    assert "Label maps" not in page       # a classifier: no label-map section
    assert not [p for p in (tmp_path / "rep").iterdir() if p.name.startswith(".")]


def test_svgs_are_well_formed(tmp_path):
    page = render_html(_result().to_json())
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert len(svgs) == 2
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg")
        assert len(root.findall(".//{http://www.w3.org/2000/svg}rect")) >= 4


def test_bars_handle_none_inf_and_negative():
    svg = svg_bars(["a", "b", "c", "d"], [("s", [3.0, None, float("inf"), -2.0], "#123456")], title="t")
    ET.fromstring(svg)
    assert "n/a" in svg and "exact" in svg
    assert svg_bars([], [], title="empty").startswith("<svg")


def test_passing_report_without_cycle_model(tmp_path):
    res = _result(mismatched_words=0, mismatches=[], top1_agreement=1.0, sim_cycles=None,
                  notes=["cycle-level simulator not available (convc.sim.cycle: No module); sim_cycles is null"])
    for layer in res.layers:
        layer.mismatched_words = 0
    jpath, hpath = write_report(res, tmp_path)
    data = json.loads(jpath.read_text())
    assert data["ok"] is True and data["sim_cycles"] is None and data["cycle_error"] is None
    page = hpath.read_text()
    assert 'class="pass"' in page and "None." in page and "n/a" in page
    assert "cycle-level simulator not available" in page


def test_report_of_a_run_that_stopped(tmp_path):
    res = _result(images_run=0, mismatched_words=0, total_words=0, mismatches=[], rtl_cycles=[], records=[],
                  top1_agreement=None, top1_rtl_float=None, accuracy_rtl=None,
                  error="image 0: timeout: STATUS.done not set 400000 cycles after start")
    jpath, hpath = write_report(res, tmp_path)
    page = hpath.read_text()
    assert "image 0: timeout" in page and "No image finished in RTL" in page
    assert page.count("<svg") == 1
    assert json.loads(jpath.read_text())["error"].startswith("image 0: timeout")
    # rendering again from the saved JSON gives the same page
    assert render_html(json.loads(jpath.read_text())) == page


def test_label_maps_section(tmp_path):
    """Synthetic maps for 3 images of which the RTL finished 2: one <img> per known panel,
    a note for the missing one, the agreement figures, the ignore grey in the legend."""
    rng = np.random.default_rng(0)
    frames = rng.random((3, 3, 12, 16), dtype=np.float32)
    truth = rng.integers(0, 4, (3, 3, 4))
    truth[0, 0, 0] = -1
    flt = truth.copy()
    flt[flt < 0] = 0
    rtl = flt[:2].copy()
    rtl[1, 0, :2] = (rtl[1, 0, :2] + 1) % 4          # 2 of 12 pixels differ
    maps = collect(frames, {"truth": truth, "float": flt, "rtl": rtl, "golden": flt},
                   columns=[("truth", "ground truth"), ("float", "float reference"), ("rtl", "RTL")],
                   classes=4, grid=(2.5, 4.0), images_total=7)
    res = _result(images=7, images_run=2)
    jpath, hpath = write_report(res, tmp_path, label_maps=maps)
    data = json.loads(jpath.read_text())
    assert data["label_maps"]["images"][2]["maps"]["rtl"] is None
    page = hpath.read_text()
    rows = re.findall(r'<div class="lm-row">(.*?)</div>\n', page)
    assert [len(re.findall(r"<img ", r)) for r in rows] == [4, 4, 3]
    assert "no RTL output" in rows[2]
    assert page.count("data:image/png;base64,") == 11
    assert "image-rendering:pixelated" in page
    assert "The first 3 of 7 images" in page and "ignored (-1)" in page and "class 3" in page
    assert "agrees with the float reference on 83.3% of pixels" in page      # image 1's RTL
    assert "pixel accuracy 100.0%" in page
    assert render_html(data) == page

"""Label maps as pictures (sim/labelmap.py): the standard-library PNG encoder
(reference/imagefiles.py) decoded by hand, the palette, the ignore grey, input frames; and the label-map section of the
``convc verify`` and ``convc compare`` reports of a tiny scene parser (no simulator: the
RTL run is the golden model's words)."""

from __future__ import annotations

import json
import re
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verify_helpers import make_compiled  # noqa: E402

from convc.boards import get_board  # noqa: E402
from convc.cli import main  # noqa: E402
from convc.pipeline import CompileOptions, compile_network  # noqa: E402
from convc.compiler.program import load_program, save_program  # noqa: E402
from convc.reference.imagefiles import read_png  # noqa: E402
from convc.reference.modelfile import load_model, network_from_graph, save_model  # noqa: E402
from convc.reference.scenes import SCENE_CLASSES, scene_palette  # noqa: E402
from convc.sim import labelmap as L  # noqa: E402
from convc.sim import verify as V  # noqa: E402
from convc.sim.compare import compare  # noqa: E402
from convc.reference.imagefiles import png_bytes  # noqa: E402
from convc.sim.report import render_compare_html, render_html  # noqa: E402


def _decode_png(data: bytes) -> tuple[int, int, int, np.ndarray]:
    """(width, height, colour type, pixels (H, W, channels)) of an 8-bit, unfiltered PNG,
    checking the signature, the chunk CRCs and the chunk order."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    w, h, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, comp, filt, interlace) == (8, 0, 0, 0)
    ch = {0: 1, 2: 3}[ctype]
    raw = np.frombuffer(zlib.decompress(chunks[1][1]), dtype=np.uint8).reshape(h, 1 + w * ch)
    assert not raw[:, 0].any()          # filter type 0 on every row
    return w, h, ctype, raw[:, 1:].reshape(h, w, ch)


def test_png_round_trips(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    w, h, ctype, pix = _decode_png(png_bytes(rgb))
    assert (w, h, ctype) == (7, 5, 2) and np.array_equal(pix, rgb)
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    w, h, ctype, pix = _decode_png(png_bytes(grey))
    assert (w, h, ctype) == (4, 3, 0) and np.array_equal(pix[..., 0], grey)
    # the project's own PNG reader agrees
    (tmp_path / "a.png").write_bytes(png_bytes(rgb))
    assert np.array_equal(np.asarray(read_png(tmp_path / "a.png")).reshape(rgb.shape), rgb)
    for bad in (rgb.astype(np.int16), np.zeros((2, 2, 4), np.uint8), np.zeros((0, 3), np.uint8)):
        with pytest.raises(ValueError):
            png_bytes(bad)


def test_palette_is_distinct_and_the_scenes_own():
    assert np.array_equal(L.palette(8), scene_palette())
    assert L.class_names(9, "scenes") == list(SCENE_CLASSES) + ["class 8"]
    assert L.class_names(2) == ["class 0", "class 1"]
    for n in (1, 8, 21, 64):
        p = L.palette(n)
        assert p.shape == (n, 3) and p.dtype == np.uint8
        assert len({tuple(c) for c in p}) == n
        assert tuple(L.IGNORE_COLOUR) not in {tuple(c) for c in p}


def test_label_map_colours_and_ignore_grey():
    pal = L.palette(8)
    lab = np.array([[0, 1, -1], [7, -1, 2]])
    rgb = L.label_rgb(lab, pal)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb[0, 0], pal[0]) and np.array_equal(rgb[1, 0], pal[7])
    r, g, b = L.IGNORE_COLOUR
    assert r == g == b
    assert (rgb[lab == -1] == L.IGNORE_COLOUR).all()
    with pytest.raises(ValueError, match="label 8"):
        L.label_rgb(np.array([[8]]), pal)
    with pytest.raises(ValueError, match="label -2"):
        L.label_rgb(np.array([[-2]]), pal)


def test_frames_to_rgb():
    f = np.zeros((3, 2, 2), np.float32)
    f[0, 0, 0], f[1, 0, 1], f[2, 1, 0] = 1.0, 0.5, 0.25
    rgb = L.frame_rgb(f)
    assert rgb.shape == (2, 2, 3) and tuple(rgb[0, 0]) == (255, 0, 0) and tuple(rgb[0, 1]) == (0, 128, 0)
    grey = L.frame_rgb(np.array([[[-1.0, 1.0]]]))       # one channel, outside [0, 1]: stretched
    assert grey.tolist() == [[[0, 0, 0], [255, 255, 255]]]
    u8 = np.full((1, 1, 2), 77, np.uint8)
    assert L.frame_rgb(u8).tolist() == [[[77] * 3, [77] * 3]]
    assert L.frame_rgb(np.full((3, 1, 1), 5.0)).tolist() == [[[128] * 3]]


# ----------------------------------------------------------------------------
# reports of a tiny scene parser
# ----------------------------------------------------------------------------
SCENE_SPEC = {"name": "tinyscene", "input": {"shape": [3, 16, 16]}, "classes": 8, "layers": [
    {"type": "conv2d", "attrs": {"out_channels": 4, "kernel": 3}}, {"type": "tanh"},
    {"type": "maxpool2d", "attrs": {"kernel": 2}},
    {"type": "conv2d", "attrs": {"out_channels": 8, "kernel": 1}}]}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A scene parser (8 x 7 x 7 scores) with random weights that records the ``scenes``
    dataset (its test split: 16x16 scenes with label maps), compiled without Verilog."""
    folder = tmp_path_factory.mktemp("scene")
    net = network_from_graph(dict(SCENE_SPEC), "tinyscene")
    net.init_params(seed=3)
    net.meta = {"dataset": "scenes", "data_seed": 0}
    model = save_model(net, folder / "model.npz")
    calib = np.random.default_rng(1).random((8,) + net.input.shape, dtype=np.float32)
    result = compile_network(net, get_board("virtex6"), CompileOptions(calib=8), where=str(model), calib=calib)
    out = folder / "out"
    out.mkdir()
    save_program(result.program, out)
    return out, model


def _panels(page: str) -> list[list[str]]:
    """The ``<img>`` tags of each row of the label-map section."""
    return [re.findall(r"<img [^>]*>", row) for row in re.findall(r'<div class="lm-row">(.*?)</div>\n', page + "\n")]


def _fake_native(monkeypatch, prep_holder):
    """native.build/run stand-ins: the RTL writes the golden model's words."""
    def run(nb, program, compiled, codes, memory, run_dir, **kw):
        prep = prep_holder[0]
        return V.RtlRun(layers=[(g & 0xFFFF).astype(np.uint16) for g in prep.golden_layers],
                        cycles=[1000] * prep.images, records=[3] * prep.images, harness="native")
    real_prepare = V.prepare

    def prepare(*a, **k):
        prep_holder[:] = [real_prepare(*a, **k)]
        return prep_holder[0]
    monkeypatch.setattr(V, "prepare", prepare)
    monkeypatch.setattr(V.native, "build", lambda *a, **k: None)
    monkeypatch.setattr(V.native, "run", run)


def test_verify_report_of_a_scene_parser(scene, tmp_path, monkeypatch):
    out, model = scene
    (tmp_path / "accel.v").write_text("module convc_accel; endmodule\n")
    holder: list = []
    _fake_native(monkeypatch, holder)
    res = V.verify(out, images=2, model=model, report_dir=tmp_path / "rep", verilog=tmp_path / "accel.v", log=None)
    assert res.ok
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    lm = data["label_maps"]
    assert lm["classes"] == list(SCENE_CLASSES) and lm["columns"][0] == ["truth", "ground truth"]
    assert [c[0] for c in lm["columns"]] == ["truth", "float", "rtl"] and lm["grid"] == [1.5, 2.0]
    im = lm["images"][0]
    assert im["frame_size"] == [16, 16] and np.asarray(im["maps"]["rtl"]).shape == (7, 7)
    assert im["maps"]["rtl"] == im["maps"]["golden"]
    # the ground truth: the scenes' test labels, sampled at the output's pixels
    truth = load_model(model).label_grid(L.dataset_truth(load_model(model), 2))
    assert np.array_equal(np.asarray(im["maps"]["truth"]), truth[0])
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "<h2>Label maps</h2>" in page and "sky" in page and "object" in page
    rows = _panels(page)
    assert len(rows) == 2 and all(len(r) == 4 for r in rows)       # input, truth, float, RTL
    assert all('src="data:image/png;base64,' in tag for r in rows for tag in r)
    assert "agrees with the float reference on" in page and "with the golden model on 100.0%" in page
    assert page == render_html(data)        # renders again from report.json


def test_compare_report_of_a_scene_parser(scene, tmp_path, capsys):
    out, model = scene
    assert main(["compare", str(model), str(out), "--limit", "3", "--report", str(tmp_path / "c"), "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert "label_maps" not in obj and obj["report"]["html"] == str(tmp_path / "c" / "report.html")
    data = json.loads((tmp_path / "c" / "report.json").read_text())
    assert [c[0] for c in data["label_maps"]["columns"]] == ["truth", "float", "golden"]
    page = (tmp_path / "c" / "report.html").read_text()
    rows = _panels(page)
    assert len(rows) == 3 and all(len(r) == 4 for r in rows)       # input, truth, float, golden
    assert "golden fixed point" in page and page.count("<svg") == 1
    assert page == render_compare_html(data)


def test_no_ground_truth_and_no_maps_for_a_classifier(scene, tmp_path):
    out, model = scene
    net = load_model(model)
    prog = load_program(out)
    x = np.random.default_rng(2).random((2,) + net.input.shape, dtype=np.float32)
    res = compare(net, prog, x, source="random")
    assert [c[0] for c in res.label_maps["columns"]] == ["float", "golden"]     # no truth given
    # a classifier (a vector output) has no label maps
    lenet_out, lenet_model = make_compiled(tmp_path)
    lnet = load_model(lenet_model)
    lres = compare(lnet, load_program(lenet_out), np.random.default_rng(0).random((2,) + lnet.input.shape,
                                                                                  dtype=np.float32))
    assert lres.label_maps is None and L.dataset_truth(lnet, 2) is None

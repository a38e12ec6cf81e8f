"""``convc verify``'s comparison logic with injected RTL results (no simulator): every
word compared, a flipped word found and located, top-1 and cycle figures, partial runs,
the results file, the command line's exit status and messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verify_helpers import make_compiled  # noqa: E402

from convc import commands_run  # noqa: E402
from convc.cli import main  # noqa: E402
from convc.compiler.manifest import write_manifest  # noqa: E402
from convc.compiler.program import PROGRAM_FILES  # noqa: E402
from convc.errors import ConvcError  # noqa: E402
from convc.sim import verify as V  # noqa: E402
from convc.sim.tb_results import load_results, save_results  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_compiled(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def prep(tiny):
    out, model = tiny
    return V.prepare(out, images=3, model=model)


def _rtl_from_golden(prep, n=None, **kw) -> V.RtlRun:
    """An RTL run that wrote exactly the golden words (raw 16-bit patterns)."""
    n = prep.images if n is None else n
    layers = [(g[:n] & 0xFFFF).astype(np.uint16) for g in prep.golden_layers]
    return V.RtlRun(layers=layers, cycles=[1000 + k for k in range(n)], records=[3] * n, sim="icarus", **kw)


def test_prepare_runs_golden_and_float(prep):
    prog = prep.program
    assert prep.images == 3 and prep.codes.shape == (3,) + tuple(prog.input.shape)
    assert [g.shape for g in prep.golden_layers] == [(3, r.words) for r in prog.layers]
    assert all(f is not None and f.shape == g.shape for f, g in zip(prep.float_layers, prep.golden_layers))


def test_all_equal_gives_no_mismatch(prep):
    res = V.assemble(prep, _rtl_from_golden(prep), sim_cycles=1000)
    words = sum(r.words for r in prep.program.layers)
    assert res.mismatched_words == 0 and res.total_words == 3 * words
    assert res.mismatches == [] and res.first_mismatch is None
    assert all(layer.mismatched_words == 0 for layer in res.layers)
    assert res.ok and res.error is None
    assert res.top1_agreement == 1.0
    assert res.top1_rtl_float == res.top1_float_golden
    assert res.rtl_cycles == [1000, 1001, 1002]
    assert res.cycle_errors == pytest.approx([0.0, 0.001, 0.002])
    assert res.cycle_error == pytest.approx(0.001)
    j = res.to_json()
    for key in ("images", "mismatched_words", "total_words", "top1_agreement", "rtl_cycles", "sim_cycles",
                "cycle_error", "report", "first_mismatch", "layers"):
        assert key in j
    json.dumps(j)   # serializable


def test_one_flipped_word_is_found_and_located(prep):
    prog = prep.program
    rtl = _rtl_from_golden(prep)
    li = 0
    region = prog.layers[li]
    c, h, w = region.shape
    img, mp, row, col = 2, c - 1, h - 2, 1
    k = mp * h * w + row * w + col
    before = int(rtl.layers[li][img, k])
    rtl.layers[li][img, k] ^= 0x0004
    res = V.assemble(prep, rtl)
    assert res.mismatched_words == 1
    assert [layer.mismatched_words for layer in res.layers] == [1] + [0] * (len(prog.layers) - 1)
    assert not res.ok
    m = res.first_mismatch
    assert (m["image"], m["layer"], m["map"], m["row"], m["col"]) == (img, region.name, mp, row, col)
    assert m["addr"] == region.addr + k
    assert m["golden"] == int(prep.golden_layers[li][img, k])
    assert m["rtl"] == int(np.int16(np.uint16(before ^ 0x0004)))
    assert abs(m["diff_lsb"]) == 4 and not m["not_written"]
    text = V.describe_mismatch(m)
    assert f"image {img}, layer {region.name}, map {mp}, row {row}, column {col}" in text


def test_mismatches_are_ordered_image_then_layer(prep):
    prog = prep.program
    rtl = _rtl_from_golden(prep)
    last = len(prog.layers) - 1
    rtl.layers[last][0, 0] ^= 1          # image 0, last layer
    rtl.layers[0][1, 5] ^= 1             # image 1, first layer
    assert int(prep.golden_layers[0][0, 7]) & 0xFFFF != V.DEFAULT_POISON
    rtl.layers[0][0, 7] = V.DEFAULT_POISON   # image 0, first layer: never written
    res = V.assemble(prep, rtl)
    assert res.mismatched_words == 3
    assert [(m["image"], m["layer_index"], m["word"]) for m in res.mismatches] == \
        [(0, 0, 7), (0, last, 0), (1, 0, 5)]
    assert [m["not_written"] for m in res.mismatches] == [True, False, False]
    assert "never written" in V.describe_mismatch(res.mismatches[0])


def test_output_word_changes_top1(prep):
    prog = prep.program
    rtl = _rtl_from_golden(prep)
    out = len(prog.layers) - 1
    g = prep.golden_layers[out][0]
    loser = int(np.argmin(g))
    rtl.layers[out][0, loser] = 0x7FFF   # the largest code: now the arg-max
    res = V.assemble(prep, rtl)
    assert res.top1_agreement == pytest.approx(2 / 3)
    assert res.mismatches[0]["layer"] == prog.layers[out].name


def test_partial_run_compares_the_images_done(prep):
    rtl = _rtl_from_golden(prep, n=1, error="image 1: timeout: STATUS.done not set")
    res = V.assemble(prep, rtl, sim_cycles=None)
    assert res.images == 3 and res.images_run == 1
    assert res.total_words == sum(r.words for r in prep.program.layers)
    assert res.mismatched_words == 0 and not res.ok
    assert res.cycle_error is None and res.to_json()["sim_cycles"] is None
    none = V.assemble(prep, _rtl_from_golden(prep, n=0, error="no clk"))
    assert none.total_words == 0 and none.top1_agreement is None and not none.ok


def test_results_file_round_trip(tmp_path, prep):
    prog = prep.program
    layers = [[(g[k] & 0xFFFF).astype(np.uint16) for k in range(2)] for g in prep.golden_layers]
    path = tmp_path / "r.npz"
    save_results(path, layers, [10, 11], [3, 3], [2, 2], {"error": None, "version": 65536})
    back = load_results(path, len(prog.layers))
    assert back["cycles"].tolist() == [10, 11] and back["info"]["version"] == 65536
    for a, g in zip(back["layers"], prep.golden_layers):
        np.testing.assert_array_equal(a.astype(np.int64), g[:2] & 0xFFFF)
    assert not list(tmp_path.glob(".*tmp"))


def test_top_module():
    text = "module sub(a);\nendmodule\n(* top =  1  *)\n(* generator = \"Amaranth\" *)\nmodule convc_accel(a, b);\n"
    assert V.top_module(text) == "convc_accel"
    assert V.top_module("(* top =  1  *)\nmodule other(x);\nmodule \\other.sub (y);") == "other"
    with pytest.raises(V.VerifyError):
        V.top_module("module a(x);\nmodule b(y);\n")


def test_cycle_model_failure_is_reported_not_faked(prep, monkeypatch):
    def broken(program, memory):
        raise RuntimeError("no such record")
    monkeypatch.setattr(V, "simulate", broken)
    cycles, why = V.cycle_model(prep.program)
    assert cycles is None and "RuntimeError: no such record" in why and "null" in why


def test_cycle_budget_follows_the_cycle_model(prep):
    assert V.cycle_budget(prep.program, sim_cycles=50_000) == 4 * 50_000 + 100_000
    assert V.cycle_budget(prep.program) == V.NO_MODEL_BUDGET > 4 * 50_000 + 100_000


# ---- errors and the command line ------------------------------------------------------
def test_missing_compiled_folder(tmp_path, capsys):
    with pytest.raises(ConvcError, match="no such folder"):
        V.verify(tmp_path / "nope", images=1, log=None)
    assert main(["verify", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "nope: no such folder" in err and "Traceback" not in err


def test_not_a_compiled_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["verify", str(tmp_path / "empty"), "--images", "1"]) == 2
    assert "missing program.json" in capsys.readouterr().err


def test_missing_models(tiny, tmp_path):
    out, _ = tiny
    with pytest.raises(ConvcError, match="no such file"):
        V.prepare(out, images=1, model=tmp_path / "gone.npz")
    prog_json = json.loads((out / "program.json").read_text())
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("schedule.bin", "weights.bin", "hwconfig.json"):
        (moved / name).write_bytes((out / name).read_bytes())
    prog_json["meta"]["model"] = str(tmp_path / "elsewhere" / "model.npz")
    (moved / "program.json").write_text(json.dumps(prog_json))
    write_manifest(moved, PROGRAM_FILES)
    with pytest.raises(ConvcError, match="pass --model"):
        V.prepare(moved, images=1)
    with pytest.raises(ConvcError, match="--images"):
        V.prepare(out, images=0)


def test_unknown_simulator(tiny):
    out, model = tiny
    with pytest.raises(ConvcError, match="icarus or verilator"):
        V.verify(out, images=1, model=model, sim="xsim", log=None)


def test_cli_exit_status_and_messages(prep, monkeypatch, capsys, tmp_path):
    good = V.assemble(prep, _rtl_from_golden(prep), sim_cycles=1000)
    monkeypatch.setattr(commands_run, "verify", lambda *a, **k: good)
    assert main(["verify", str(prep.compiled), "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["ok"] and j["mismatched_words"] == 0 and j["images"] == 3 and j["sim_cycles"] == 1000

    rtl = _rtl_from_golden(prep)
    rtl.layers[0][1, 3] ^= 0x100
    bad = V.assemble(prep, rtl)
    monkeypatch.setattr(commands_run, "verify", lambda *a, **k: bad)
    assert main(["verify", str(prep.compiled)]) == 1
    cap = capsys.readouterr()
    assert "FAIL" in cap.out
    assert "1 of" in cap.err and f"image 1, layer {prep.program.layers[0].name}" in cap.err

    stopped = V.assemble(prep, _rtl_from_golden(prep, n=0, error="image 0: timeout: STATUS.done not set"))
    monkeypatch.setattr(commands_run, "verify", lambda *a, **k: stopped)
    assert main(["verify", str(prep.compiled)]) == 1
    assert "image 0: timeout" in capsys.readouterr().err

    def broken(*a, **k):
        raise V.VerifyError("icarus could not build x.v")
    monkeypatch.setattr(commands_run, "verify", broken)
    assert main(["verify", str(prep.compiled)]) == 1
    assert "could not build" in capsys.readouterr().err

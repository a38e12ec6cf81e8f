"""The compiler end to end: LeNet and sceneparse, small networks, refusals."""

import json

import numpy as np
import pytest

from convc.boards import get_board
from convc.cli import main
from convc.compiler import isa
from convc.pipeline import CompileOptions, compile_network
from convc.compiler.program import load_program
from convc.errors import ConvcError
from convc.reference.archs import build_network
from convc.reference.modelfile import network_from_graph
from convc.sim import golden
from convc.sim.compare import compare

V6 = get_board("virtex6")


def test_lenet_digits_fixed_point_meets_targets(lenet_digits, tmp_path, capsys):
    """Issue figures: top-1 agreement >= 99.5%, accuracy drop <= 0.3 points."""
    path, _, _ = lenet_digits
    out = tmp_path / "lenet"
    assert main(["compile", str(path), "--board", "virtex6", "-o", str(out), "--json", "--no-hdl"]) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("passes", "dsp", "bram36", "macs"):
        assert key in summary
    assert summary["dsp"] <= 768 and summary["bram36"] <= 416
    assert main(["compare", str(path), str(out), "--json"]) == 0
    cmp = json.loads(capsys.readouterr().out)
    print(json.dumps(cmp, indent=1))
    assert cmp["images"] == 359
    assert cmp["top1_agreement"] >= 0.995
    assert cmp["accuracy_float"] - cmp["accuracy_fixed"] <= 0.003
    for layer in cmp["layers"]:
        assert layer["sqnr_db"] is None or layer["sqnr_db"] > 30
        assert "saturations" in layer


def test_compile_writes_every_output(lenet_digits, tmp_path):
    """The compiler's files (the hardware ones, hdl/ and ise/, are checked on a small
    configuration in tests/convc/test_cli_compile.py: LeNet's Verilog takes minutes)."""
    path, net, _ = lenet_digits
    out = tmp_path / "c"
    assert main(["compile", str(path), "-o", str(out), "--no-hdl"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["hwconfig.json", "manifest.json", "program.json", "report.json", "report.txt",
                     "schedule.bin", "schedule.txt", "weights.bin"]
    prog = load_program(out)
    assert prog.instrs[-1].op == isa.OP_END
    assert len((out / "schedule.bin").read_bytes()) == isa.RECORD_BYTES * len(prog.instrs)
    assert (out / "schedule.txt").read_text().count("\n") == len(prog.instrs)
    report = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in report["layers"]] == ["conv1", "conv2", "fc1", "fc2"]
    assert report["layers"][0]["pwl_error"] <= 2 ** -8


def test_sceneparse_compiles_for_virtex6(tmp_path):
    net = build_network("sceneparse")
    res = compile_network(net, V6, CompileOptions(calib=1))
    r = res.report
    assert r["dsp"] <= V6.dsp and r["bram36"] <= V6.bram36
    assert [layer["name"] for layer in r["layers"]] == ["lcn", "conv1", "conv2", "conv3", "classifier"]
    assert r["macs"] > 1.9e9 and r["ms_per_frame"] > 0
    # every record fits its fields and decodes to itself
    blob = isa.encode_program(res.program.instrs)
    assert isa.decode_program(blob) == res.program.instrs


def refusal(spec: dict, where: str) -> str:
    """The message of the ConvcError compiling ``spec`` (random weights) for V6 raises."""
    net = network_from_graph(spec, where)
    net.init_params(0)
    with pytest.raises(ConvcError) as info:
        compile_network(net, V6, CompileOptions(calib=1), where=where)
    return str(info.value)


def test_too_big_for_the_board_is_refused(tmp_path):
    spec = {"name": "huge", "input": {"shape": [1, 64, 64]}, "layers": [
        {"type": "conv2d", "attrs": {"out_channels": 2, "kernel": 29}}]}
    msg = refusal(spec, "huge.json")
    assert "DSP48E1" in msg and "768" in msg and "huge.json" in msg and "virtex6" in msg


def test_unsupported_layer_is_refused():
    spec = {"name": "l2", "input": {"shape": [1, 8, 8]}, "layers": [
        {"type": "conv2d", "attrs": {"out_channels": 2, "kernel": 3}},
        {"name": "mypool", "type": "l2pool2d", "attrs": {"kernel": 2}}]}
    msg = refusal(spec, "l2.json")
    assert "mypool" in msg and "l2pool2d" in msg and "conv2d" in msg and "supports" in msg


def test_bits_option_changes_formats(lenet_digits):
    _, net, _ = lenet_digits
    res = compile_network(net, V6, CompileOptions(bits=8, calib=64))
    assert all(r["in_fmt"].startswith("Q") for r in res.report["layers"])
    assert res.program.hw.bits == 8 and all(i.bits == 8 for i in res.program.instrs)
    with pytest.raises(ConvcError, match="bits"):
        compile_network(net, V6, CompileOptions(bits=20, calib=4))


def test_small_networks_compile_and_track_float(small_net):
    """Every small network compiles; fixed point follows the float reference."""
    name, net = small_net
    rng = np.random.default_rng(5)
    calib = rng.random((16,) + net.input.shape, dtype=np.float32)
    res = compile_network(net, V6, CompileOptions(calib=16), calib=calib)
    x = rng.random((8,) + net.input.shape, dtype=np.float32)
    cmp = compare(net, res.program, x, source="random")
    for layer in cmp.layers:
        assert layer.overflows == 0
        assert layer.sqnr_db > 25, (name, layer)


def test_saturation_is_counted_not_silent(lenet_digits):
    """Inputs far outside calibration saturate, and the count says so."""
    _, net, _ = lenet_digits
    res = compile_network(net, V6, CompileOptions(calib=32))
    x = np.full((2, 1, 32, 32), 50.0, dtype=np.float32)
    codes, in_sat = res.program.quantize_input(x)
    out = golden.run(res.program, np.asarray(codes))
    assert in_sat > 0 or sum(out.saturations.values()) > 0


def test_lcn_window_is_an_exact_outer_product():
    """The LCN window in memory factors into its row and column taps (separable hardware stays exact)."""
    net = build_network("sceneparse")
    prog = compile_network(net, V6, CompileOptions(calib=1)).program
    ins = [i for i in prog.instrs if i.op == isa.OP_LCN][0]
    k = ins.kernel
    words = prog.image[ins.w_addr:ins.w_addr + k * k + 2 * k]
    signed = np.where(words >= 1 << 15, words - (1 << 16), words)
    g, r, q = signed[:k * k].reshape(k, k), signed[k * k:k * k + k], signed[k * k + k:]
    np.testing.assert_array_equal(g, np.outer(r, q))
    assert g.max() > 1000  # the taps keep precision

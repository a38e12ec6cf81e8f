"""ONNX export held to convc's reference with onnxruntime; the import/export command line."""

import json
import subprocess
import sys

import numpy as np
import pytest

from onnx_graphs import RTOL, Graph, onnx, rel_error, run_ort

from convc.reference.modelfile import load_model, network_from_graph, save_model
from convc.reference.onnx_export import to_onnx
from convc.reference.onnx_import import import_onnx

EXTRA = {"lrn_l2_norm": {"input": {"shape": [3, 10, 10], "mean": [0.5, 0.2, -0.1], "std": [0.3, 2.0, 1.0]},
                         "classes": 5, "layers": [
                             {"type": "conv2d", "attrs": {"out_channels": 6, "kernel": 3, "padding": 1}},
                             {"type": "relu"}, {"type": "lrn", "attrs": {"size": 3, "alpha": 0.5, "bias": 2.0}},
                             {"type": "l2pool2d", "attrs": {"kernel": 2}}, {"type": "abs"},
                             {"type": "flatten"}, {"type": "linear", "attrs": {"out_features": 5}},
                             {"type": "logsoftmax"}]}}


def _roundtrip(net, seed=0):
    model = to_onnx(net)
    x = np.random.default_rng(seed).random((1,) + tuple(net.input.shape), dtype=np.float32)
    ours = net.forward(x.astype(np.float64))
    err = rel_error(ours, run_ort(model, x))
    assert err < RTOL, err
    return model, x, ours


def test_small_networks_export_and_match_onnxruntime(small_net):
    name, net = small_net
    model, x, ours = _roundtrip(net)
    if "lcn" not in [l.type for l in net.layers]:        # LCN exports as a graph, not a chain
        again = import_onnx(model)
        np.testing.assert_allclose(again.forward(x.astype(np.float64)), ours, rtol=1e-6, atol=1e-6)
        assert again.names == net.names


def test_lrn_l2pool_and_input_normalization_export():
    net = network_from_graph(dict(EXTRA["lrn_l2_norm"], name="extra"), "extra")
    net.init_params(seed=2)
    model, x, ours = _roundtrip(net)
    assert [n.op_type for n in model.graph.node][:2] == ["Sub", "Div"]


@pytest.mark.parametrize("arch", ["lenet", "sceneparse"])
def test_built_in_architectures_export(arch):
    from convc.reference.archs import build_network
    net = build_network(arch, seed=1)
    _roundtrip(net)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "convc", *map(str, args)], capture_output=True, text=True)


def test_import_and_export_commands(tmp_path):
    from convc.reference.archs import build_network
    net = build_network("lenet", seed=5)
    npz = save_model(net, tmp_path / "lenet.npz")
    out = _cli("export", npz, "-o", tmp_path / "lenet.onnx", "--check", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["max_rel_error"] < RTOL and report["opset"] == 13
    out = _cli("import", tmp_path / "lenet.onnx", "-o", tmp_path / "back.npz", "--mean", "0.1", "--std", "0.5",
               "--json")
    assert out.returncode == 0, out.stderr
    back = load_model(tmp_path / "back.npz")
    assert back.input.mean == [0.1] and back.input.std == [0.5]
    x = np.random.default_rng(0).random((2, 1, 32, 32))
    np.testing.assert_allclose(back.forward(x * 0.5 + 0.1), net.forward(x), rtol=1e-6, atol=1e-6)
    out = _cli("info", tmp_path / "lenet.onnx", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["macs"] == sum(r.macs for r in net.info())


def test_bad_onnx_input_gives_one_message_and_writes_nothing(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"definitely not protobuf" * 3)
    g = Graph((2, 1, 5, 5)).add("Relu")
    batch2 = tmp_path / "batch2.onnx"
    onnx.save_model(g.model(13), str(batch2))
    g = Graph((1, 1, "H", "W")).add("Relu")
    dynamic = tmp_path / "dynamic.onnx"
    onnx.save_model(g.model(13), str(dynamic))
    g = Graph((1, 2, 6, 6))
    g.add("Conv", g.weight(3, 2, 3, 3), kernel_shape=[3, 3], dilations=[2, 2])
    dilated = tmp_path / "dilated.onnx"
    onnx.save_model(g.model(13), str(dilated))
    for path, words in ((junk, "not an ONNX model"), (batch2, "batch size 2"),
                        (dynamic, "pass --input-shape C,H,W"), (dilated, "'dilations' = [2, 2]")):
        target = tmp_path / f"{path.stem}.npz"
        out = _cli("import", path, "-o", target)
        assert out.returncode == 2, (path, out.stderr)
        assert words in out.stderr and "Traceback" not in out.stderr
        assert out.stderr.count("\n") == 1
        assert not target.exists() and not list(tmp_path.glob(f".{target.name}*"))
        out = _cli("compile", path, "-o", tmp_path / f"{path.stem}-out", "--no-hdl")
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr
    out = _cli("import", dynamic, "-o", tmp_path / "dyn.npz", "--input-shape", "1,7,9")
    assert out.returncode == 0, out.stderr
    assert load_model(tmp_path / "dyn.npz").input.shape == (1, 7, 9)
    out = _cli("import", dynamic, "-o", tmp_path / "dyn2.npz", "--input-shape", "1,7")
    assert out.returncode == 2 and "--input-shape: expected three whole numbers" in out.stderr

"""Networks that are not chains (``reference/network.py``, ``modelfile.py``, ``archs.py``):
layers that name their inputs, a concatenation, weights shared between layers, model
files of format version 2 (and version 1 still read), and the multiscale scene parser.
Gradients are held against central differences of the loss, shared weights included."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from convc.errors import ConvcError
from convc.reference.archs import build_network, multiscale
from convc.reference.layers import Concat, Conv2d, Tanh, Upsample
from convc.reference.modelfile import load_model, network_from_graph, save_model
from convc.reference.network import InputSpec, Network


def _tiny_ms(scales=3):
    """A multiscale net small enough for finite differences (float64)."""
    spec = multiscale("tiny-ms", (3, 16, 16), maps=(2, 4, 4), fan_in=(2, 2), classes=3, scales=scales,
                      kernel=3)
    net = network_from_graph(spec, "tiny")
    net.init_params(seed=1, dtype=np.float64)
    return net


def _branchy():
    """input -> a (conv) -> b (tanh) ; input -> c (conv, shares a) ; concat(b, c) -> d (conv)."""
    layers = [Conv2d(in_channels=2, out_channels=3, kernel=3, padding=1), Tanh(),
              Conv2d(in_channels=2, out_channels=3, kernel=3, padding=1), Concat(),
              Conv2d(in_channels=6, out_channels=2, kernel=1)]
    net = Network(InputSpec((2, 5, 6)), layers, ["a", "b", "c", "cat", "d"],
                  inputs=[["input"], ["a"], ["input"], ["b", "c"], ["cat"]], shares=[None, None, "a", None, None])
    net.init_params(seed=3, dtype=np.float64)
    return net


def test_graph_forward_by_hand():
    net = _branchy()
    x = np.random.default_rng(0).normal(size=(2, 2, 5, 6))
    a, _, c, _, d = net.layers
    assert c.params is a.params                       # one set of weights
    ya = a.forward(x)
    want = d.forward(np.concatenate([np.tanh(ya), ya], axis=1))   # c = a on the same input
    np.testing.assert_allclose(net.forward(x), want, rtol=1e-12)
    outs = net.forward_all(x)
    assert len(outs) == 6 and outs[3].shape == (2, 3, 5, 6) and outs[4].shape == (2, 6, 5, 6)


@pytest.mark.parametrize("make", [_branchy, _tiny_ms])
def test_graph_gradients_against_central_differences(make):
    net = make()
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2,) + net.input.shape)
    r = rng.normal(size=(2,) + net.output_shape)

    def loss():
        return float(np.sum(net.forward(x) * r))

    loss()
    net.backward(r)
    groups = net.param_groups()
    keys = [k for k, _, _ in groups]
    assert len(keys) == len(set(keys)) and len(keys) == len(net.arrays())   # each array once
    for key, p, g in groups:
        for flat in rng.choice(p.size, size=min(4, p.size), replace=False):
            idx = np.unravel_index(flat, p.shape)
            old = p[idx]
            p[idx] = old + 1e-6
            up = loss()
            p[idx] = old - 1e-6
            down = loss()
            p[idx] = old
            num = (up - down) / 2e-6
            assert abs(num - g[idx]) <= 1e-6 + 1e-5 * abs(num), (key, idx, num, g[idx])


def test_shared_gradient_is_the_sum_over_users():
    net = _branchy()
    x = np.random.default_rng(1).normal(size=(1, 2, 5, 6))
    y = net.forward(x)
    net.backward(np.ones_like(y))
    a, c = net.layers[0], net.layers[2]
    (key, p, g), = [t for t in net.param_groups() if t[0] == "a.weight"]
    np.testing.assert_allclose(g, a.grads["weight"] + c.grads["weight"], rtol=0, atol=0)
    assert not np.allclose(c.grads["weight"], 0)


def test_model_file_version2_round_trip(tmp_path):
    net = _tiny_ms()
    path = save_model(net, tmp_path / "ms.npz")
    with np.load(path, allow_pickle=False) as z:
        graph = json.loads(z["graph"].tobytes())
        files = set(z.files)
    assert graph["version"] == 2
    assert "conv1.weight" in files and "conv1_s2.weight" not in files and "conv3_s3.bias" not in files
    by_name = {e["name"]: e for e in graph["layers"]}
    assert by_name["conv1_s2"]["share"] == "conv1" and by_name["concat"]["inputs"] == ["conv3", "up2", "up3"]
    back = load_model(path)
    assert back.inputs == net.inputs and back.shares == net.shares
    assert back.layers[back.names.index("conv2_s3")].params is back.layers[back.names.index("conv2")].params
    x = np.random.default_rng(2).normal(size=(2,) + net.input.shape)
    np.testing.assert_allclose(back.forward(x), net.forward(x), rtol=1e-5, atol=1e-5)


def test_chain_is_still_written_and_read_as_version1(tmp_path):
    net = build_network("lenet", seed=0)
    path = save_model(net, tmp_path / "lenet.npz")
    with np.load(path, allow_pickle=False) as z:
        graph = json.loads(z["graph"].tobytes())
    assert graph["version"] == 1 and all("inputs" not in e for e in graph["layers"])
    assert load_model(path).is_chain


def _spec(layers, version=2):
    return {"format": "convc-model", "version": version, "input": {"shape": [1, 4, 4]}, "layers": layers}


@pytest.mark.parametrize("layers, version, words", [
    ([{"name": "a", "type": "relu", "inputs": ["b"]}, {"name": "b", "type": "relu"}], 2,
     "'b', which is not an earlier layer"),
    ([{"name": "a", "type": "relu", "inputs": ["nowhere"]}], 2, "'nowhere', which is not a layer of the graph"),
    ([{"name": "a", "type": "relu", "inputs": []}], 2, "non-empty list"),
    ([{"name": "a", "type": "relu"}, {"name": "b", "type": "relu", "inputs": ["a", "input"]}], 2,
     "relu takes one input"),
    ([{"name": "a", "type": "relu"}, {"name": "b", "type": "concat", "inputs": ["a", "input"]}], 1,
     "needs format version 2"),
    ([{"name": "a", "type": "conv2d", "attrs": {"out_channels": 2, "kernel": 3}},
      {"name": "b", "type": "conv2d", "attrs": {"out_channels": 2, "kernel": 1}, "inputs": ["input"],
       "share": "a"}], 2, "attributes differ"),
    ([{"name": "a", "type": "relu", "share": "zz"}], 2, "field 'share' must name an earlier layer"),
    ([{"name": "input", "type": "relu"}], 2, "bad name 'input'"),
    ([{"name": "a", "type": "relu"}, {"name": "b", "type": "concat", "inputs": ["a", "c"]},
      {"name": "c", "type": "relu"}], 2, "'c', which is not an earlier layer"),
])
def test_bad_graphs_are_refused_with_the_layer_named(layers, version, words):
    with pytest.raises(ConvcError) as err:
        network_from_graph(_spec(layers, version), "spec g.json")
    assert "spec g.json" in str(err.value) and words in str(err.value), str(err.value)


def test_concat_of_different_sizes_is_refused():
    layers = [{"name": "a", "type": "maxpool2d", "attrs": {"kernel": 2}},
              {"name": "c", "type": "concat", "inputs": ["a", "input"]}]
    with pytest.raises(ConvcError, match="layer 1 'c'.*same height and width"):
        network_from_graph(_spec(layers), "g")


def test_multiscale_arch_shapes_and_costs():
    net = build_network("sceneparse-ms", seed=0)
    single = build_network("sceneparse-ss", seed=0)
    assert net.output_shape == single.output_shape == (8, 24, 32)
    assert not net.is_chain and single.is_chain
    # the trunk's weights are stored once: the multiscale net adds only the classifier's columns
    params = sum(r.params for r in net.info())
    assert params - sum(r.params for r in single.info()) == 8 * 256 * 2
    conv = lambda n: sum(r.macs for r in n.info() if r.type == "conv2d" and r.name != "classifier")
    assert conv(net) / conv(single) == pytest.approx(1 + 1 / 4 + 1 / 16)
    with pytest.raises(ValueError, match="multiple of 16"):
        multiscale("x", (3, 40, 48))


def test_convc_info_shows_the_graph(tmp_path):
    path = save_model(_tiny_ms(), tmp_path / "ms.npz")
    proc = subprocess.run([sys.executable, "-m", "convc", "info", str(path)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "a graph" in proc.stdout
    line = next(v for v in proc.stdout.splitlines() if " concat " in v)
    assert "conv3, up2, up3" in line
    assert "(weights of conv1)" in next(v for v in proc.stdout.splitlines() if " conv1_s2 " in v)
    proc = subprocess.run([sys.executable, "-m", "convc", "info", str(path), "--json"], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)
    rows = {r["name"]: r for r in json.loads(proc.stdout)["layers"]}
    assert rows["conv2_s3"]["share"] == "conv2" and rows["conv2_s3"]["params"] == 0


def test_a_multiscale_net_trains_on_scenes():
    """A few epochs of the trainer on a small multiscale net: the shared trunk moves once
    per step (one velocity per array), the loss falls and the pixel accuracy beats the
    most frequent class's share."""
    from convc.reference.datasets import load_dataset
    from convc.reference.train import TrainConfig, train

    spec = multiscale("ms-train", (3, 32, 32), maps=(6, 8, 8), fan_in=(6, 8), classes=8, kernel=3)
    net = network_from_graph(spec, "ms")
    net.init_params(seed=0)
    before = net.layers[net.names.index("conv1")].params["weight"].copy()
    data = load_dataset("scenes", net.input.shape, 8, seed=0)
    res = train(net, data, TrainConfig(epochs=4, batch_size=16, lr=0.05, shift=0), quiet=True)
    owner = net.layers[net.names.index("conv1")]
    assert net.layers[net.names.index("conv1_s3")].params is owner.params
    assert not np.allclose(owner.params["weight"], before)
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    majority = np.bincount(net.label_grid(data.test_y).reshape(-1) + 1).max() / net.label_grid(data.test_y).size
    assert res.test_accuracy > majority + 0.05, (res.test_accuracy, majority)

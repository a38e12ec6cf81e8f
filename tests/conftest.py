"""Shared fixtures: models trained once per test session."""

import pytest

from convc.reference.archs import build_network
from convc.reference.datasets import load_digits
from convc.reference.modelfile import save_model
from convc.reference.train import TrainConfig, train


@pytest.fixture(scope="session")
def lenet_digits(tmp_path_factory):
    """LeNet trained on digits with the default settings, and its result."""
    net = build_network("lenet")
    result = train(net, load_digits(), TrainConfig(), quiet=True)
    path = save_model(net, tmp_path_factory.mktemp("lenet") / "lenet.npz")
    return path, net, result


def small_specs() -> dict[str, dict]:
    """Small networks covering kernels, strides, padding, pooling, activations,
    tables, LCN and standalone layers (for compiler and golden-model tests)."""
    return {
        "stride_avg_relu": {"input": {"shape": [2, 13, 11]}, "classes": 4, "layers": [
            {"type": "conv2d", "attrs": {"out_channels": 5, "kernel": 3, "stride": 2, "padding": 1}},
            {"type": "relu"}, {"type": "avgpool2d", "attrs": {"kernel": 2}},
            {"type": "flatten"}, {"type": "linear", "attrs": {"out_features": 4}}]},
        "table_abs_max": {"input": {"shape": [4, 12, 12]}, "classes": 6, "layers": [
            {"type": "conv2d", "attrs": {"out_channels": 6, "kernel": 5, "padding": 2,
                                         "table": [[0, 1], [0, 1], [0, 1], [2, 3], [2, 3], [1, 2]]}},
            {"type": "abs"}, {"type": "maxpool2d", "attrs": {"kernel": 3, "stride": 2}},
            {"type": "conv2d", "attrs": {"out_channels": 6, "kernel": 5}}]},
        "lcn_tanh": {"input": {"shape": [3, 16, 18]}, "classes": 3, "layers": [
            {"type": "lcn", "attrs": {"kernel": 5}},
            {"type": "conv2d", "attrs": {"out_channels": 4, "kernel": 3}}, {"type": "tanh"},
            {"type": "maxpool2d", "attrs": {"kernel": 2}},
            {"type": "conv2d", "attrs": {"out_channels": 3, "kernel": 1}}]},
        "standalone": {"input": {"shape": [2, 9, 9]}, "classes": 3, "layers": [
            {"type": "maxpool2d", "attrs": {"kernel": 2, "stride": 1}}, {"type": "tanh"},
            {"type": "conv2d", "attrs": {"out_channels": 3, "kernel": 8}}, {"type": "relu"},
            {"type": "relu"}]},
        "pool_then_act": {"input": {"shape": [1, 10, 10]}, "classes": 2, "layers": [
            {"type": "conv2d", "attrs": {"out_channels": 2, "kernel": 3}},
            {"type": "maxpool2d", "attrs": {"kernel": 2}}, {"type": "tanh"},
            {"type": "flatten"}, {"type": "linear", "attrs": {"out_features": 2}}, {"type": "logsoftmax"}]},
    }


@pytest.fixture(params=sorted(small_specs()))
def small_net(request):
    """(name, network with random weights) for each small spec."""
    from convc.reference.modelfile import network_from_graph

    spec = dict(small_specs()[request.param], name=request.param)
    net = network_from_graph(spec, request.param)
    net.init_params(seed=3)
    return request.param, net

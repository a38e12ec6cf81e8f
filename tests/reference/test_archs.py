"""Built-in architectures and user spec files."""

import json

import pytest

from convc.errors import ConvcError
from convc.reference.archs import build_network


def test_lenet_shapes_and_macs():
    net = build_network("lenet")
    assert net.shapes[1] == (6, 28, 28)
    assert net.shapes[net.names.index("pool2") + 1] == (16, 5, 5)
    assert net.output_shape == (10,)
    info = {r.name: r for r in net.info()}
    assert info["conv1"].macs == 6 * 28 * 28 * 25
    assert info["conv2"].macs == 16 * 10 * 10 * 6 * 25
    assert info["fc1"].macs == 400 * 120 and info["fc1"].params == 400 * 120 + 120


def test_sceneparse_shapes_and_tables():
    net = build_network("sceneparse")
    shape = dict(zip(net.names, net.shapes[1:]))
    assert shape["conv1"] == (16, 234, 314)
    assert shape["pool1"] == (16, 117, 157)
    assert shape["conv2"] == (64, 111, 151)
    assert shape["conv3"] == (256, 49, 69)
    assert shape["classifier"] == (8, 49, 69)
    conv3 = net.layers[net.names.index("conv3")]
    assert all(len(row) == 32 for row in conv3.table)
    info = {r.name: r for r in net.info()}
    assert info["conv3"].macs == 256 * 49 * 69 * 32 * 49
    # every input map is read, as evenly as the table allows
    used = sorted(sum(conv3.table, []))
    assert set(used) == set(range(64))


def test_user_spec_file(tmp_path):
    spec = {"name": "tiny", "input": {"shape": [2, 12, 12]}, "classes": 3,
            "layers": [{"type": "conv2d", "attrs": {"out_channels": 4, "kernel": 3}},
                       {"type": "relu"}, {"type": "avgpool2d", "attrs": {"kernel": 2}},
                       {"type": "flatten"}, {"type": "linear", "attrs": {"out_features": 3}},
                       {"type": "logsoftmax"}]}
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(spec))
    net = build_network(str(p))
    assert net.name == "tiny" and net.output_shape == (3,)
    assert net.names[0] == "layer0"


@pytest.mark.parametrize("layers, fragment", [
    ([{"type": "conv2d", "attrs": {"out_channels": 4, "kernel": 30}}], "layer 0"),
    ([{"type": "linear", "attrs": {"out_features": 3}}], "layer 0"),
    ([{"type": "dropout"}], "unknown layer type 'dropout'"),
    ([{"type": "conv2d", "attrs": {"out_channels": 4, "kernel": 3, "dilation": 2}}], "dilation"),
])
def test_bad_spec(tmp_path, layers, fragment):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"input": {"shape": [1, 8, 8]}, "layers": layers}))
    with pytest.raises(ConvcError) as info:
        build_network(str(p))
    assert fragment in str(info.value) and "bad.json" in str(info.value)


def test_unknown_arch():
    with pytest.raises(ConvcError, match="unknown architecture"):
        build_network("resnet50")

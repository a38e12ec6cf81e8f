"""model.npz: round trip, and one clear error for each kind of bad file."""

import json

import numpy as np
import pytest

from convc.cli import main
from convc.errors import ConvcError
from convc.reference.archs import build_network
from convc.reference.modelfile import VERSION, load_model, save_model


@pytest.fixture
def good(tmp_path):
    net = build_network("lenet", seed=1)
    return save_model(net, tmp_path / "good.npz"), net


def _arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _graph(arrays):
    return json.loads(arrays["graph"].tobytes().decode())


def _write(path, arrays, graph=None):
    if graph is not None:
        arrays["graph"] = np.frombuffer(json.dumps(graph).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def test_round_trip(good):
    path, net = good
    back = load_model(path)
    assert back.names == net.names and back.input.shape == net.input.shape
    for key, value in net.arrays().items():
        np.testing.assert_array_equal(back.arrays()[key], value)
    x = np.random.default_rng(0).random((3, 1, 32, 32), dtype=np.float32)
    np.testing.assert_array_equal(back.forward(x), net.forward(x))


def test_sceneparse_round_trip_keeps_tables(tmp_path):
    net = build_network("sceneparse")
    back = load_model(save_model(net, tmp_path / "sp.npz"))
    conv2 = back.layers[back.names.index("conv2")]
    assert len(conv2.table) == 64 and all(len(row) == 8 for row in conv2.table)
    assert conv2.table == net.layers[net.names.index("conv2")].table


def _expect(path, *fragments):
    with pytest.raises(ConvcError) as info:
        load_model(path)
    msg = str(info.value)
    assert str(path) in msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_missing_file(tmp_path):
    _expect(tmp_path / "nope.npz", "no such file")


def test_not_a_zip(tmp_path):
    p = tmp_path / "text.npz"
    p.write_text("hello")
    _expect(p, "not a convc model")


def test_truncated(good, tmp_path):
    path, _ = good
    data = path.read_bytes()
    p = tmp_path / "trunc.npz"
    p.write_bytes(data[: len(data) // 2])
    _expect(p, "truncated")


def test_no_graph(good, tmp_path):
    arrays = _arrays(good[0])
    del arrays["graph"]
    _expect(_write(tmp_path / "b.npz", arrays), "'graph'")


def test_graph_not_json(good, tmp_path):
    arrays = _arrays(good[0])
    arrays["graph"] = np.frombuffer(b"{not json", dtype=np.uint8)
    _expect(_write(tmp_path / "b.npz", arrays), "'graph'", "not valid JSON")


def test_newer_version(good, tmp_path):
    arrays = _arrays(good[0])
    graph = _graph(arrays)
    graph["version"] = VERSION + 1
    _expect(_write(tmp_path / "b.npz", arrays, graph), f"version {VERSION + 1}", "newer")


def test_unknown_layer_type(good, tmp_path):
    arrays = _arrays(good[0])
    graph = _graph(arrays)
    graph["layers"][1]["type"] = "swish"
    _expect(_write(tmp_path / "b.npz", arrays, graph), "layer 1", "tanh1", "'swish'", "supported")


def test_bad_attribute(good, tmp_path):
    arrays = _arrays(good[0])
    graph = _graph(arrays)
    graph["layers"][0]["attrs"]["kernel"] = 40
    _expect(_write(tmp_path / "b.npz", arrays, graph), "layer 0", "conv1")


def test_missing_array(good, tmp_path):
    arrays = _arrays(good[0])
    del arrays["conv2.bias"]
    _expect(_write(tmp_path / "b.npz", arrays), "missing", "conv2.bias")


def test_extra_array(good, tmp_path):
    arrays = _arrays(good[0])
    arrays["conv9.weight"] = np.zeros(3, np.float32)
    _expect(_write(tmp_path / "b.npz", arrays), "unexpected", "conv9.weight")


def test_wrong_shape(good, tmp_path):
    arrays = _arrays(good[0])
    arrays["fc1.weight"] = arrays["fc1.weight"][:, :-1]
    _expect(_write(tmp_path / "b.npz", arrays), "'fc1'", "'weight'", "shape")


def test_wrong_dtype(good, tmp_path):
    arrays = _arrays(good[0])
    arrays["conv1.weight"] = arrays["conv1.weight"].astype(np.int32)
    _expect(_write(tmp_path / "b.npz", arrays), "'conv1'", "'weight'", "int32")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite(good, tmp_path, bad):
    arrays = _arrays(good[0])
    arrays["conv2.weight"] = arrays["conv2.weight"].copy()
    arrays["conv2.weight"][3, 1, 2, 0] = bad
    _expect(_write(tmp_path / "b.npz", arrays), "'conv2'", "NaN or infinite", "[3, 1, 2, 0]")


def test_pickled_array_refused(good, tmp_path):
    arrays = _arrays(good[0])
    p = tmp_path / "pickle.npz"
    obj = np.empty(1, dtype=object)
    obj[0] = {"evil": True}
    arrays["conv1.bias"] = obj
    with open(p, "wb") as fh:
        np.savez(fh, **arrays)  # np.savez pickles object arrays
    _expect(p, "conv1.bias", "pickle")


def test_weights_outside_table(tmp_path):
    net = build_network("sceneparse")
    path = save_model(net, tmp_path / "sp.npz")
    arrays = _arrays(path)
    conv2 = net.layers[net.names.index("conv2")]
    o, i = np.argwhere(~conv2.connection_mask())[0]
    arrays["conv2.weight"][o, i, 0, 0] = 1.0
    _expect(_write(tmp_path / "b.npz", arrays), "'conv2'", "connection table")


def test_cli_reports_bad_file_without_traceback(tmp_path, capsys):
    p = tmp_path / "text.npz"
    p.write_text("not a model")
    assert main(["info", str(p)]) == 2
    err = capsys.readouterr().err
    assert "text.npz" in err and "Traceback" not in err


def test_save_is_atomic(tmp_path, good, monkeypatch):
    """A failed write keeps the old file intact and leaves no temporary behind."""
    path, net = good
    before = path.read_bytes()

    def failing_savez(fh, **arrays):
        fh.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(ConvcError, match="cannot write"):
        save_model(net, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]

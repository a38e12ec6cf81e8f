"""Issue 13: a model remembers where its data came from; compile calibrates on its
training split, compare and verify use its test split, or say once that they cannot."""

import json
import shutil

import numpy as np
import pytest

from convc.cli import main
from convc.inputs import model_inputs
from convc.reference.datasets import write_idx
from convc.reference.modelfile import load_model, network_from_graph, save_model

SMALL = {"name": "small", "input": {"shape": [1, 32, 32]}, "classes": 10, "layers": [
    {"type": "conv2d", "attrs": {"out_channels": 2, "kernel": 5, "stride": 3}}, {"type": "tanh"},
    {"type": "maxpool2d", "attrs": {"kernel": 2}}, {"type": "flatten"},
    {"type": "linear", "attrs": {"out_features": 10}}, {"type": "logsoftmax"}]}


def _warnings(err: str) -> list[str]:
    return [l for l in err.splitlines() if l.startswith("convc: warning:")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small net trained one epoch on a small MNIST folder (train 40, test 12 images)."""
    d = tmp_path_factory.mktemp("prov")
    folder = d / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for prefix, n in (("train", 40), ("t10k", 12)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n))
    spec = d / "small.json"
    spec.write_text(json.dumps(SMALL))
    model = d / "m.npz"
    assert main(["train", "--arch", str(spec), "--dataset", "mnist", "--data-dir", str(folder), "--epochs", "1",
                 "--seed", "4", "-q", "--json", "-o", str(model)]) == 0
    return d, folder, model


def test_train_records_dataset_folder_and_seed(trained):
    _, folder, model = trained
    meta = load_model(model).meta
    assert meta["dataset"] == "mnist"
    assert meta["data_dir"] == str(folder.resolve())
    assert meta["data_seed"] == 4


def test_compile_compare_verify_use_the_recorded_data(trained, tmp_path, capsys):
    from convc.compiler.program import load_program
    from convc.sim.verify_inputs import prepare

    _, folder, model = trained
    capsys.readouterr()
    out = tmp_path / "out"
    assert main(["compile", str(model), "--no-hdl", "--calib", "16", "-o", str(out), "--json"]) == 0
    err = capsys.readouterr().err
    assert not _warnings(err), err
    calibration = load_program(out).meta["calibration"]
    assert "mnist train split" in calibration and "16 images" in calibration
    assert main(["compare", str(model), str(out), "--json"]) == 0
    cap = capsys.readouterr()
    obj = json.loads(cap.out)
    assert not _warnings(cap.err)
    assert obj["images"] == 12 and "mnist test split" in obj["source"]
    assert obj["accuracy_float"] is not None
    prep = prepare(out, images=5)
    assert "mnist test split" in prep.source and prep.labels is not None and len(prep.x) == 5


def test_folder_gone_warns_once_and_falls_back(trained, tmp_path, capsys):
    d, folder, model = trained
    moved = tmp_path / "model.npz"
    shutil.copy(model, moved)
    gone = d / "mnist-moved"
    folder.rename(gone)
    try:
        capsys.readouterr()
        out = tmp_path / "out"
        assert main(["compile", str(moved), "--no-hdl", "--calib", "4", "-o", str(out), "--json"]) == 0
        warns = _warnings(capsys.readouterr().err)
        assert len(warns) == 1 and str(folder.resolve()) in warns[0] and "gone" in warns[0]
        assert str(moved) in warns[0] and "random" in warns[0]
        assert main(["compare", str(moved), str(out), "--json"]) == 0
        cap = capsys.readouterr()
        assert len(_warnings(cap.err)) == 1 and "random" in json.loads(cap.out)["source"]
    finally:
        gone.rename(folder)


def test_model_without_dataset_warns_once(tmp_path, capsys):
    net = network_from_graph(dict(SMALL), "small")
    net.init_params(0)
    model = save_model(net, tmp_path / "m.npz")
    assert main(["compile", str(model), "--no-hdl", "--calib", "4", "-o", str(tmp_path / "out"), "--json"]) == 0
    warns = _warnings(capsys.readouterr().err)
    assert len(warns) == 1 and "records no dataset" in warns[0] and str(model) in warns[0]


def test_random_fallback_is_bounded(monkeypatch):
    import convc.inputs as inputs

    net = network_from_graph(dict(SMALL), "small")
    monkeypatch.setattr(inputs, "CALIB_BYTES", 3 * 4 * 32 * 32)
    said = []
    x, labels, src = model_inputs(net, "train", 256, log=said.append)
    assert x.shape == (3, 1, 32, 32) and labels is None and len(said) == 1 and "MiB at most" in src


def test_synthetic_model_uses_its_seed(tmp_path, capsys):
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps(SMALL))
    model = tmp_path / "m.npz"
    assert main(["train", "--arch", str(spec), "--dataset", "synthetic", "--epochs", "1", "--seed", "7", "-q",
                 "--json", "-o", str(model)]) == 0
    net = load_model(model)
    assert net.meta["data_seed"] == 7 and net.meta["data_dir"] is None
    from convc.reference.datasets import make_synthetic

    x, y, src = model_inputs(net, "test", 5)
    ref = make_synthetic((1, 32, 32), 10, seed=7)
    assert np.array_equal(x, ref.test_x[:5]) and np.array_equal(y, ref.test_y[:5])
    assert "synthetic test split" in src

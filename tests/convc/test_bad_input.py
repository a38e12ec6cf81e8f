"""Issue 13: every bad input gets one message naming the file and the field, exit 2,
no traceback, nothing half-written. One or more cases per class, run in-process."""

import gzip
import json
import warnings

import numpy as np
import pytest

from convc import commands_compile
from convc.cli import main
from convc.reference.datasets import write_idx
from convc.reference.modelfile import network_from_graph, save_model

TINY = {"name": "tiny", "input": {"shape": [1, 8, 8]}, "classes": 3, "layers": [
    {"type": "conv2d", "attrs": {"out_channels": 2, "kernel": 3}}, {"type": "tanh"},
    {"type": "maxpool2d", "attrs": {"kernel": 2}}, {"type": "flatten"},
    {"type": "linear", "attrs": {"out_features": 3}}, {"type": "logsoftmax"}]}


def _refused(capsys, argv, *words):
    """Run the CLI: exit 2, one 'convc: error:' line naming every word, no traceback."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.startswith("convc: error:")]
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny spec file, its model with random weights and its compiled folder."""
    d = tmp_path_factory.mktemp("tiny")
    spec = d / "tiny.json"
    spec.write_text(json.dumps(TINY))
    net = network_from_graph(dict(TINY), "tiny")
    net.init_params(1)
    model = save_model(net, d / "tiny.npz")
    out = d / "out"
    assert main(["compile", str(model), "--no-hdl", "--calib", "4", "-o", str(out), "--json"]) == 0
    return spec, model, out


def _spec(tmp_path, spec, name="s.json"):
    p = tmp_path / name
    p.write_text(json.dumps(spec) if not isinstance(spec, str) else spec)
    return p


# -- 1. output paths that cannot be written ----------------------------------------------

def test_output_paths(tmp_path, capsys, tiny):
    spec, model, out = tiny
    folder = tmp_path / "existing"
    folder.mkdir()
    _refused(capsys, ["init", "--arch", str(spec), "-o", str(folder)], str(folder), "folder")
    afile = tmp_path / "afile"
    afile.write_text("x")
    _refused(capsys, ["init", "--arch", str(spec), "-o", str(afile / "m.npz")], str(afile), "not a folder")
    _refused(capsys, ["init", "--arch", str(spec), "-o", "/proc/m.npz"], "/proc")
    _refused(capsys, ["init", "--arch", str(spec), "-o", str(tmp_path / "no" / "m.npz")], "does not exist")
    # train: refused before the data is read or the training starts
    _refused(capsys, ["train", "--arch", str(spec), "--dataset", "synthetic", "--epochs", "1", "-o",
                      str(folder)], "-o", str(folder))
    x = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    _refused(capsys, ["run", str(out), "--images", str(tmp_path / "x.npy"), "--save", str(folder)],
             "--save", str(folder))
    _refused(capsys, ["run", str(out), "--images", str(tmp_path / "x.npy"), "--save", str(afile / "y.npy")],
             "--save", "not a folder")
    _refused(capsys, ["verify", str(out), "--report", str(afile)], "--report", str(afile))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "existing", "x.npy"]
    assert list(folder.iterdir()) == []


def test_run_save_writes_whole_file(tmp_path, capsys, tiny):
    _, _, out = tiny
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32))
    assert main(["run", str(out), "--images", str(tmp_path / "x.npy"), "--save", str(tmp_path / "y.npy")]) == 0
    assert np.load(tmp_path / "y.npy").shape[:2] == (3, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy", "y.npy"]


# -- 2. sizes far beyond the machine ----------------------------------------------------

def test_sizes_beyond_the_machine(tmp_path, capsys, tiny):
    _, _, out = tiny
    huge = json.loads(json.dumps(TINY))
    huge["layers"][0]["attrs"]["out_channels"] = 3_000_000_000
    _refused(capsys, ["init", "--arch", str(_spec(tmp_path, huge)), "-o", str(tmp_path / "m.npz")],
             "s.json", "out_channels", "limit")
    wide = json.loads(json.dumps(TINY))
    wide["input"]["shape"] = [1, 100_000, 100_000]
    _refused(capsys, ["init", "--arch", str(_spec(tmp_path, wide)), "-o", str(tmp_path / "m.npz")],
             "s.json", "input", "limits")
    lin = json.loads(json.dumps(TINY))
    lin["layers"][4]["attrs"]["out_features"] = 2_000_000_000
    _refused(capsys, ["init", "--arch", str(_spec(tmp_path, lin)), "-o", str(tmp_path / "m.npz")],
             "s.json", "layer 4", "out_features", "limit")
    # an .npy header declaring a huge shape: refused from the header, nothing allocated
    big = tmp_path / "big.npy"
    with open(big, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10**6, 1, 100_000, 100_000)})
        fh.write(b"\0" * 64)
    _refused(capsys, ["run", str(out), "--images", str(big)], str(big), "shape")
    _refused(capsys, ["train", "--arch", str(_spec(tmp_path, TINY)), "--dataset", "synthetic",
                      "--shift", str(10**8), "-o", str(tmp_path / "m.npz")], "--shift", "8x8")
    assert not (tmp_path / "m.npz").exists()


def test_huge_npz_member_header(tmp_path, capsys, tiny):
    import zipfile

    _, model, _ = tiny
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(model) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "layer0.weight.npy":
                import io
                buf = io.BytesIO()
                np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False,
                                                           "shape": (10**9, 10**9)})
                data = buf.getvalue()
            dst.writestr(info, data)
    _refused(capsys, ["info", str(bad)], str(bad), "layer0.weight")


# -- 3. deeply nested JSON --------------------------------------------------------------

def test_deeply_nested_json(tmp_path, capsys):
    deep = '{"name": "d", "input": {"shape": [1, 8, 8]}, "layers": ' + "[" * 100_000 + "]" * 100_000 + "}"
    _refused(capsys, ["init", "--arch", str(_spec(tmp_path, deep)), "-o", str(tmp_path / "m.npz")],
             "s.json", "nested")
    meta = json.loads(json.dumps(TINY))
    meta["meta"] = {"a": json.loads("[" * 500 + "]" * 500)}
    _refused(capsys, ["init", "--arch", str(_spec(tmp_path, meta)), "-o", str(tmp_path / "m.npz")],
             "s.json", "nested")
    # in a model file's graph
    graph = json.dumps({"format": "convc-model", "version": 1, **TINY, "meta": "X"}).replace(
        '"X"', "[" * 50_000 + "]" * 50_000)
    bad = tmp_path / "deep.npz"
    np.savez(bad, graph=np.frombuffer(graph.encode(), dtype=np.uint8))
    _refused(capsys, ["info", str(bad)], str(bad), "graph", "nested")


# -- 4. numbers not checked ---------------------------------------------------------------

@pytest.mark.parametrize("argv, words", [
    (["--seed", "-1"], ["--seed"]),
    (["--lr-gamma", "inf"], ["--lr-gamma", "finite"]),
    (["--weight-decay", "nan"], ["--weight-decay", "finite"]),
    (["--lr", "nan"], ["--lr"]),
    (["--momentum=-inf"], ["--momentum"]),
])
def test_training_numbers(tmp_path, capsys, argv, words):
    _refused(capsys, ["train", "--arch", str(_spec(tmp_path, TINY)), "--dataset", "synthetic", "--epochs", "1",
                      "-o", str(tmp_path / "m.npz")] + argv, *words)
    assert not (tmp_path / "m.npz").exists()


def test_init_negative_seed(tmp_path, capsys):
    _refused(capsys, ["init", "--arch", "lenet", "--seed", "-3", "-o", str(tmp_path / "m.npz")], "--seed")


@pytest.mark.parametrize("shape, word", [([1, 32.7, 32], "input"), ([1, "Infinity", 8], "input"),
                                         ([1, 8, True], "input")])
def test_spec_numbers(tmp_path, capsys, shape, word):
    spec = json.dumps(dict(TINY, input={"shape": [1, 8, 8]})).replace("[1, 8, 8]", json.dumps(shape))
    spec = spec.replace('"Infinity"', "Infinity")
    _refused(capsys, ["init", "--arch", str(_spec(tmp_path, spec)), "-o", str(tmp_path / "m.npz")],
             "s.json", word, "whole")


def test_meta_numbers(tmp_path, capsys):
    net = network_from_graph(dict(TINY, meta={"dataset": "synthetic", "data_seed": 2.5}), "tiny")
    net.init_params(0)
    model = save_model(net, tmp_path / "m.npz")
    _refused(capsys, ["compile", str(model), "--no-hdl", "-o", str(tmp_path / "out")], str(model),
             "meta.data_seed")


def test_limit_and_bits(tmp_path, capsys, tiny):
    _, model, out = tiny
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 1, 8, 8), dtype=np.float32))
    for limit in ("-1", "0"):
        _refused(capsys, ["run", str(out), "--images", str(x), "--limit", limit], "--limit")
        _refused(capsys, ["compare", str(model), str(out), "--limit", limit], "--limit")


def test_bits_with_too_many_segments(tmp_path, capsys):
    spec = {"name": "t", "input": {"shape": [1, 6, 6]}, "classes": 2, "layers": [
        {"type": "maxpool2d", "attrs": {"kernel": 2}}, {"type": "tanh"},
        {"type": "conv2d", "attrs": {"out_channels": 2, "kernel": 3}}]}
    net = network_from_graph(spec, "t")
    net.init_params(0)
    model = save_model(net, tmp_path / "t.npz")
    _refused(capsys, ["compile", str(model), "--bits", "2", "--no-hdl", "--calib", "2", "-o",
                      str(tmp_path / "out")], "--bits 2", "--pwl-segments")


# -- 5. datasets ------------------------------------------------------------------------

def _mnist(folder, n_train=20, n_test=10, gz=False):
    rng = np.random.default_rng(0)
    folder.mkdir(exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        ext = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, 28, 28)), compress=gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", rng.integers(0, 10, n), compress=gz)
    return folder


def _train_mnist(tmp_path, folder):
    return ["train", "--dataset", "mnist", "--data-dir", str(folder), "--epochs", "1", "-q",
            "-o", str(tmp_path / "m.npz")]


def test_idx_dimensions_overflow(tmp_path, capsys):
    folder = _mnist(tmp_path / "mnist")
    f = folder / "train-images-idx3-ubyte"
    raw = bytearray(f.read_bytes())
    raw[4:16] = (0xFFFFFFFF).to_bytes(4, "big") * 3
    f.write_bytes(bytes(raw))
    _refused(capsys, _train_mnist(tmp_path, folder), str(f), "header")


def test_idx_empty_split(tmp_path, capsys):
    folder = _mnist(tmp_path / "mnist", n_test=0)
    _refused(capsys, _train_mnist(tmp_path, folder), "t10k-images", "no images")


def test_idx_labels_out_of_range_or_fractional(tmp_path, capsys):
    folder = _mnist(tmp_path / "mnist")
    write_idx(folder / "t10k-labels-idx1-ubyte", np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 12]))
    _refused(capsys, _train_mnist(tmp_path, folder), "t10k-labels", "label 9", "0..9")
    lab = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 2.5], dtype=">f4")
    head = bytes([0, 0, 0x0D, 1]) + len(lab).to_bytes(4, "big")
    (folder / "t10k-labels-idx1-ubyte").write_bytes(head + lab.tobytes())
    _refused(capsys, _train_mnist(tmp_path, folder), "t10k-labels", "whole number")


def test_idx_corrupt_gz(tmp_path, capsys):
    folder = _mnist(tmp_path / "mnist", gz=True)
    f = folder / "train-images-idx3-ubyte.gz"
    raw = bytearray(f.read_bytes())
    raw[20:40] = b"\xff" * 20
    f.write_bytes(bytes(raw))
    _refused(capsys, _train_mnist(tmp_path, folder), str(f), "gzip")
    f.write_bytes(gzip.compress(b"\0\0\x08\x03")[:-6])
    _refused(capsys, _train_mnist(tmp_path, folder), str(f))


def test_bad_labels_for_compare(tmp_path, capsys, tiny):
    _, model, out = tiny
    np.save(tmp_path / "x.npy", np.zeros((3, 1, 8, 8), dtype=np.float32))
    for labels, word in (([0, 1, 7], "outside"), ([0, 1.5, 2], "whole number"), ([0, 1], "2 labels")):
        np.save(tmp_path / "y.npy", np.array(labels))
        _refused(capsys, ["compare", str(model), str(out), "--images", str(tmp_path / "x.npy"), "--labels",
                          str(tmp_path / "y.npy")], "y.npy", word)


def test_json_output_stays_strict_with_nan_in_meta(tmp_path, capsys):
    net = network_from_graph(dict(TINY, meta={"test_accuracy": float("nan"), "x": [float("inf")]}), "tiny")
    net.init_params(0)
    model = save_model(net, tmp_path / "m.npz")
    assert main(["info", str(model), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))["meta"]
    assert meta == {"test_accuracy": None, "x": [None]}


# -- 6. empty inputs ----------------------------------------------------------------------

def test_empty_image_arrays(tmp_path, capsys, tiny):
    _, model, out = tiny
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 1, 8, 8), dtype=np.float32))
    _refused(capsys, ["compile", str(model), "--images", str(empty), "--no-hdl", "-o", str(tmp_path / "o")],
             "--images", str(empty), "no images")
    _refused(capsys, ["run", str(out), "--images", str(empty)], str(empty), "no images")
    _refused(capsys, ["compare", str(model), str(out), "--images", str(empty)], str(empty), "no images")
    assert not (tmp_path / "o").exists()


# -- 7. interrupts --------------------------------------------------------------------------

def test_interrupt_prints_one_line(tmp_path, capsys, monkeypatch, tiny):
    import gc

    from amaranth.hdl import Elaboratable
    from amaranth._unused import MustUse

    monkeypatch.setattr(MustUse, "_MustUse__silence", False)   # restored after the test

    class Engine(Elaboratable):
        def elaborate(self, platform):
            raise AssertionError

    def interrupted(*args, **kwargs):
        Engine()                      # built, never elaborated: Amaranth warns when it is freed
        raise KeyboardInterrupt

    monkeypatch.setattr(commands_compile, "compile_network", interrupted)
    _, model, _ = tiny
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc = main(["compile", str(model), "--no-hdl", "-o", str(tmp_path / "o")])
        gc.collect()
    err = capsys.readouterr().err
    assert rc == 130 and err.strip() == "convc: interrupted"
    assert not [w for w in caught if "never used" in str(w.message)]


# -- 8. compare of a foreign model, JSON output stays strict ----------------------------------

def test_compare_foreign_model(tmp_path, capsys, tiny):
    _, _, out = tiny
    other = json.loads(json.dumps(TINY))
    other["layers"][0]["attrs"]["out_channels"] = 3
    net = network_from_graph(other, "other")
    net.init_params(0)
    model = save_model(net, tmp_path / "other.npz")
    _refused(capsys, ["compare", str(model), str(out)], str(model), "another model")

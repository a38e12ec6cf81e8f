"""The command line: --json output, exit codes, no tracebacks."""

import json
import os
import subprocess
import sys

from convc.cli import main


def _json(capsys):
    out = capsys.readouterr().out
    return json.loads(out)


def test_init_and_info_json(tmp_path, capsys):
    model = tmp_path / "sp.npz"
    assert main(["init", "--arch", "sceneparse", "-o", str(model), "--json"]) == 0
    init = _json(capsys)
    assert init["params"] > 0 and model.exists()
    assert main(["info", str(model), "--json"]) == 0
    info = _json(capsys)
    assert info["params"] == init["params"] and info["macs"] == init["macs"]
    assert [l["name"] for l in info["layers"]][:2] == ["lcn", "conv1"]
    assert info["layers"][-1]["out_shape"] == [8, 49, 69]


def test_train_json_on_synthetic(tmp_path, capsys):
    model = tmp_path / "m.npz"
    rc = main(["train", "--dataset", "synthetic", "--epochs", "1", "-o", str(model), "--json"])
    assert rc == 0
    obj = _json(capsys)
    for key in ("test_accuracy", "train_seconds", "epochs"):
        assert key in obj
    assert obj["epochs"] == 1 and model.exists()


def test_info_text(tmp_path, capsys):
    model = tmp_path / "m.npz"
    main(["init", "--arch", "lenet", "-o", str(model)])
    capsys.readouterr()
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "total:" in out


def test_bad_input_exit_code_no_traceback(tmp_path):
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "convc", "info", str(tmp_path / "absent.npz")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert "absent.npz" in proc.stderr and "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "convc", "train", "--arch", "nosuch"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "unknown architecture" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_boards(capsys):
    assert main(["boards", "--json"]) == 0
    boards = _json(capsys)["boards"]
    v6 = [b for b in boards if b["name"] == "virtex6"][0]
    assert (v6["dsp"], v6["bram36"], v6["luts"], v6["ffs"]) == (768, 416, 150720, 301440)
    assert main(["boards"]) == 0
    assert "ML605" in capsys.readouterr().out


def test_compile_run_compare_on_synthetic(tmp_path, capsys):
    import numpy as np

    model = tmp_path / "m.npz"
    assert main(["train", "--dataset", "synthetic", "--epochs", "1", "-o", str(model), "-q"]) == 0
    capsys.readouterr()
    out = tmp_path / "c"
    assert main(["compile", str(model), "-o", str(out), "--calib", "16", "--no-hdl"]) == 0
    assert "DSP48E1" in capsys.readouterr().out
    images = tmp_path / "x.npy"
    np.save(images, np.random.default_rng(0).random((3, 1, 32, 32), dtype=np.float32))
    assert main(["run", str(out), "--images", str(images), "--json"]) == 0
    run = _json(capsys)
    assert run["images"] == 3 and len(run["predictions"]) == 3
    assert main(["compare", str(model), str(out), "--limit", "20", "--json"]) == 0
    cmp = _json(capsys)
    for key in ("top1_agreement", "accuracy_float", "accuracy_fixed"):
        assert key in cmp
    assert all("sqnr_db" in l and "saturations" in l for l in cmp["layers"])
    assert main(["compare", str(model), str(out), "--limit", "5"]) == 0
    assert "top-1 agreement" in capsys.readouterr().out


def test_compile_errors(tmp_path, capsys):
    assert main(["compile", str(tmp_path / "none.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    model = tmp_path / "m.npz"
    main(["init", "--arch", "lenet", "-o", str(model)])
    assert main(["compile", str(model), "--board", "zynq"]) == 2
    assert "unknown board 'zynq'" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "nofolder"), "--images", "x.npy"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["compile", str(model), "-o", str(tmp_path / "c"), "--images", str(tmp_path / "x.npy")]) == 2
    assert "x.npy" in capsys.readouterr().err


def test_synth_reports_yosys_counts(tmp_path, capsys):
    model = tmp_path / "m.npz"
    main(["init", "--arch", "lenet", "-o", str(model)])
    out = tmp_path / "c"
    assert main(["compile", str(model), "-o", str(out), "--calib", "4", "--no-hdl", "--out-lanes", "2",
                 "--fc-out-lanes", "2"]) == 0
    capsys.readouterr()
    assert main(["synth", str(out), "--engine", "pointwise", "--json"]) == 0
    obj = _json(capsys)
    counts = obj["engines"]["pointwise"]
    assert counts["DSP48E1"] == 2 and counts["FF"] > 0          # one a lane
    assert obj["device"]["DSP48E1"] == 768

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

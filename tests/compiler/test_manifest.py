"""The manifest of a compiled folder: written, read back, and every damage refused."""

import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convc import __version__
from convc.compiler import manifest as M
from convc.errors import ConvcError

FILES = {"program.json": b'{"format": "convc-program"}\n', "weights.bin": bytes(range(256)) * 40,
         "hdl/convc_accel.v": b"module convc_accel();\nendmodule\n", "ise/convc_ml605.ucf": b"# pins\n"}


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "c"
    for name, data in FILES.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
    model = tmp_path / "m.npz"
    model.write_bytes(b"model bytes")
    M.write_manifest(d, FILES, M.model_record(model), editable=["ise/convc_ml605.ucf"])
    return d


def test_round_trip(folder, tmp_path):
    m = M.read_manifest(folder)
    assert m["format"] == "convc-manifest" and m["version"] == M.MANIFEST_VERSION and m["convc"] == __version__
    assert sorted(m["files"]) == sorted(FILES)
    for name, data in FILES.items():
        assert m["files"][name]["size"] == len(data)
        assert m["files"][name]["sha256"] == hashlib.sha256(data).hexdigest()
    assert m["files"]["ise/convc_ml605.ucf"]["editable"] is True
    assert m["model"] == {"path": str(tmp_path / "m.npz"), "size": 11,
                          "sha256": hashlib.sha256(b"model bytes").hexdigest()}
    assert "seal" not in m
    M.check_files(folder, m)
    assert M.listed_files(folder) == set(FILES)
    assert M.is_manifest(folder / "manifest.json") and not M.is_manifest(folder / "program.json")
    # the file is plain JSON for people and other tools
    assert json.loads((folder / "manifest.json").read_text())["files"] == m["files"]


def test_model_record_without_a_file():
    assert M.model_record(None) is None
    assert M.model_record("lenet") == {"path": "lenet", "size": None, "sha256": None}


def test_sidecars_are_hidden_siblings(tmp_path):
    staging, backup = M.sidecars(tmp_path / "out")
    assert staging == tmp_path / ".out.convc-staging" and backup == tmp_path / ".out.convc-backup"


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(0, 10_000), value=st.integers(0, 255))
def test_any_changed_byte_of_the_manifest_is_refused(folder, pos, value):
    path = folder / "manifest.json"
    good = path.read_bytes()
    raw = bytearray(good)
    raw[pos % len(raw)] = value
    if bytes(raw) == good:
        return
    path.write_bytes(bytes(raw))
    try:
        with pytest.raises(ConvcError, match="manifest.json"):
            M.read_manifest(folder)
        assert M.listed_files(folder) is None
    finally:
        path.write_bytes(good)


@pytest.mark.parametrize("raw", [b"", b"\x00" * 300, b"[1, 2]", b"{" * 100_000, "é".encode("latin-1")])
def test_unreadable_manifest_is_refused(folder, raw):
    (folder / "manifest.json").write_bytes(raw)
    with pytest.raises(ConvcError, match=r"c/manifest.json: damaged or edited"):
        M.read_manifest(folder)


def _write(folder, body):
    (folder / "manifest.json").write_bytes(M.sealed(body))


def _body(folder):
    return M.read_manifest(folder)


@pytest.mark.parametrize("edit, message", [
    (lambda b: b.update(version=M.MANIFEST_VERSION + 1), "version 2 is newer than this convc reads"),
    (lambda b: b.update(version="1"), "version '1' is not a manifest version"),
    (lambda b: b.update(format="other"), "not a convc manifest"),
    (lambda b: b.update(files=[]), "files: expected an object"),
    (lambda b: b["files"].update({"../escape": {"size": 1, "sha256": "0" * 64}}), "'../escape' is not a file inside"),
    (lambda b: b["files"].update({"/etc/passwd": {"size": 1, "sha256": "0" * 64}}), "is not a file inside"),
    (lambda b: b["files"]["weights.bin"].update(size=-1), r"files.weights.bin.size: -1"),
    (lambda b: b["files"]["weights.bin"].update(size=True), r"files.weights.bin.size: True"),
    (lambda b: b["files"]["weights.bin"].update(sha256="abc"), r"files.weights.bin.sha256: 'abc'"),
    (lambda b: b.update(model=3), "model: expected null"),
])
def test_resealed_bad_fields_are_refused(folder, edit, message):
    body = _body(folder)
    edit(body)
    _write(folder, body)
    with pytest.raises(ConvcError, match=message) as info:
        M.read_manifest(folder)
    assert "manifest.json" in str(info.value)


def test_missing_manifest_names_the_cause(tmp_path, folder):
    (folder / "manifest.json").unlink()
    with pytest.raises(ConvcError, match="compiled by an older convc.*compile it again"):
        M.read_manifest(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConvcError, match="missing program.json and manifest.json; is this a 'convc compile' output folder"):
        M.read_manifest(empty)


@pytest.mark.parametrize("damage, message", [
    ("delete", "weights.bin is missing"),
    ("truncate", "weights.bin: 5119 bytes, manifest.json of .* says 10240"),
    ("flip", "weights.bin: contents differ from manifest.json"),
])
def test_check_files_names_the_file(folder, damage, message):
    path = folder / "weights.bin"
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-5121])
    else:
        raw = bytearray(path.read_bytes())
        raw[77] ^= 1
        path.write_bytes(bytes(raw))
    with pytest.raises(ConvcError, match=message) as info:
        M.check_files(folder, M.read_manifest(folder))
    assert str(folder) in str(info.value)


def test_editable_files_are_listed_not_checked(folder):
    (folder / "ise" / "convc_ml605.ucf").write_text("# my pins\nNET x LOC=A1;\n")
    m = M.read_manifest(folder)
    M.check_files(folder, m)                          # the user's edit is fine
    with pytest.raises(ConvcError, match="convc_ml605.ucf"):
        M.check_files(folder, m, editable=True)
    with pytest.raises(ConvcError, match="does not list nothing.bin"):
        M.check_files(folder, m, ["nothing.bin"])

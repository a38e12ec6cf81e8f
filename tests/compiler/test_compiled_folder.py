"""Compiled folders (issue 13): damage of every kind is refused with the file named,
hand edits that keep a valid manifest are refused by the content checks, and a
compile replaces the folder as a whole, whatever point it is killed at."""

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convc.outputs as pipeline
from convc.boards import get_board
from convc.compiler import isa
from convc.compiler.manifest import read_manifest, sidecars, write_manifest
from convc.outputs import write_outputs
from convc.pipeline import CompileOptions, compile_network
from convc.compiler.program import load_program, save_program
from convc.errors import ConvcError
from convc.reference.modelfile import network_from_graph

V6 = get_board("virtex6")
SPEC = {"name": "small", "input": {"shape": [2, 10, 10]}, "classes": 5, "layers": [
    {"type": "conv2d", "attrs": {"out_channels": 3, "kernel": 3}}, {"type": "tanh"},
    {"type": "maxpool2d", "attrs": {"kernel": 2}},
    {"type": "flatten"}, {"type": "linear", "attrs": {"out_features": 7}}, {"type": "relu"},
    {"type": "linear", "attrs": {"out_features": 5}}]}
PROGRAM = ["hwconfig.json", "manifest.json", "program.json", "schedule.bin", "weights.bin"]
ALL = sorted(PROGRAM + ["report.json", "report.txt", "schedule.txt"])


def _compile(seed: int):
    net = network_from_graph(SPEC, "small.json")
    net.init_params(seed=seed)
    calib = np.random.default_rng(seed).random((8,) + net.input.shape, dtype=np.float32)
    return compile_network(net, V6, CompileOptions(calib=8), where="small.json", calib=calib)


@pytest.fixture(scope="module")
def results():
    """Two compiles of one network with different weights: the old and the new folder."""
    return _compile(1), _compile(2)


@pytest.fixture(scope="module")
def template(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("tpl") / "c"
    write_outputs(results[0], out, hdl=False)
    return out


@pytest.fixture
def folder(template, tmp_path):
    out = tmp_path / "c"
    shutil.copytree(template, out)
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _rehash(folder: Path) -> None:
    """What a user who edits a file and then hashes the manifest again does."""
    m = read_manifest(folder)
    write_manifest(folder, m["files"], m["model"])


def _refused(folder: Path, *parts: str) -> str:
    with pytest.raises(ConvcError) as info:
        load_program(folder)
    msg = str(info.value)
    for part in parts:
        assert part in msg, msg
    return msg


# ----------------------------------------------------------------------------
# what a compile writes, and reads back
# ----------------------------------------------------------------------------
def test_written_folder_round_trips(results, folder):
    prog = load_program(folder)
    ref = results[0].program
    assert prog.instrs == ref.instrs and prog.names == ref.names
    np.testing.assert_array_equal(prog.image, ref.image)
    assert prog.input == ref.input and prog.layers == ref.layers and prog.hw == ref.hw
    assert sorted(_files(folder)) == ALL
    m = read_manifest(folder)
    assert sorted(m["files"]) == [n for n in ALL if n != "manifest.json"]
    assert m["model"] is None          # "small.json" is not a file here


def test_manifest_records_the_model(results, tmp_path):
    model = tmp_path / "m.npz"
    model.write_bytes(b"a model")
    write_outputs(results[0], tmp_path / "a", hdl=False, model=model)
    m = read_manifest(tmp_path / "a")["model"]
    assert m["path"] == str(model) and m["size"] == 7 and len(m["sha256"]) == 64


def test_memory_beyond_the_board_is_refused_at_compile():
    net = network_from_graph(SPEC, "small.json")
    net.init_params(seed=1)
    small_board = dataclasses.replace(V6, mem_mbytes=0)
    with pytest.raises(ConvcError, match=r"small.json: the network needs 0 MB of memory .* has 0 MB"):
        compile_network(net, small_board, CompileOptions(calib=1), where="small.json",
                        calib=np.zeros((1,) + net.input.shape, dtype=np.float32))


def test_save_program_alone_loads(results, tmp_path):
    assert save_program(results[0].program, tmp_path) == ["program.json", "schedule.bin", "weights.bin",
                                                          "hwconfig.json"]
    assert load_program(tmp_path).instrs == results[0].program.instrs


def test_folder_without_manifest_is_an_older_compile(folder):
    (folder / "manifest.json").unlink()
    _refused(folder, str(folder), "older convc", "compile it again")


def test_report_and_listing_are_checked_too(folder):
    (folder / "report.txt").write_text("edited\n")
    _refused(folder, "report.txt", "compile again")


# ----------------------------------------------------------------------------
# damage: every changed byte of a file load_program reads is refused
# ----------------------------------------------------------------------------
def _damage(data: bytes, kind: str, pos: int, value: int) -> bytes:
    if kind == "truncate":
        return data[:pos % max(len(data), 1)]
    if kind == "zero":
        return bytes(len(data))
    if kind == "append":
        return data + bytes([value])
    if kind == "random":
        return np.random.default_rng(pos).integers(0, 256, len(data), dtype=np.uint8).tobytes()
    raw = bytearray(data)
    raw[pos % len(raw)] = value
    return bytes(raw)


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(ALL), kind=st.sampled_from(["byte", "truncate", "zero", "append", "random", "delete"]),
       pos=st.integers(0, 100_000), value=st.integers(0, 255))
def test_damaged_file_is_refused_naming_it(template, tmp_path_factory, name, kind, pos, value):
    folder = tmp_path_factory.mktemp("d") / "c"
    shutil.copytree(template, folder)
    victim = folder / name
    before = victim.read_bytes()
    if kind == "delete":
        victim.unlink()
    else:
        after = _damage(before, kind, pos, value)
        if after == before:
            return
        victim.write_bytes(after)
    _refused(folder, str(folder), name)


# ----------------------------------------------------------------------------
# hand edits with a valid manifest: the contents are checked
# ----------------------------------------------------------------------------
def _edit_json(name, fn):
    def edit(folder):
        path = folder / name
        doc = json.loads(path.read_text())
        fn(doc)
        path.write_text(json.dumps(doc))
    return edit


def _edit_record(k, **fields):
    def edit(folder):
        path = folder / "schedule.bin"
        instrs = isa.decode_program(path.read_bytes())
        memory = json.loads((folder / "program.json").read_text())["memory_words"]
        changes = {f: (v(memory) if callable(v) else v) for f, v in fields.items()}
        instrs[k] = instrs[k].replace(**changes)
        path.write_bytes(isa.encode_program(instrs))
    return edit


def _edit_weights(word, value):
    def edit(folder):
        path = folder / "weights.bin"
        w = np.frombuffer(path.read_bytes(), dtype="<u2").copy()
        w[word] = value
        path.write_bytes(w.tobytes())
    return edit


def _set(*keys, value):
    def fn(doc):
        for k in keys[:-1]:
            doc = doc[k]
        doc[keys[-1]] = value
    return fn


EDITS = {
    "input shape fraction": (_edit_json("program.json", _set("input", "shape", 1, value=10.5)),
                             "program.json", "input.shape[1]: 10.5 is not a whole number"),
    "input shape other size": (_edit_json("program.json", _set("input", "shape", 2, value=9)),
                               "schedule.bin", "record 0"),
    "input shape 2-d": (_edit_json("program.json", _set("input", "shape", value=[2, 100])),
                        "program.json", "input.shape"),
    "input format width": (_edit_json("program.json", _set("input", "fmt", "width", value=24)),
                           "program.json", "input.fmt.width: 24 outside [2, 16]"),
    "input format signed": (_edit_json("program.json", _set("input", "fmt", "signed", value="yes")),
                            "program.json", "input.fmt.signed"),
    "input format string": (_edit_json("program.json", _set("input", "fmt", value="Q8.8")),
                            "program.json", "input.fmt: expected an object"),
    "input_std zero": (_edit_json("program.json", _set("input_std", value=[0.0, 1.0])),
                       "program.json", "input_std[0]"),
    "input_std nan": (_edit_json("program.json", _set("input_std", value=[float("nan"), 1.0])),
                      "program.json", "input_std[0]: nan is not a finite number"),
    "input_mean infinite": (_edit_json("program.json", _set("input_mean", value=[float("inf"), 0.0])),
                            "program.json", "input_mean[0]"),
    "input_std count": (_edit_json("program.json", _set("input_std", value=[1.0, 1.0, 1.0])),
                        "program.json", "input_std: 3 values for 2 input maps"),
    "names count": (_edit_json("program.json", lambda d: d["names"].pop()),
                    "program.json", "names: 3 names for the 4 records"),
    "memory too small": (_edit_json("program.json", lambda d: d.update(memory_words=d["memory_words"] - 1)),
                         "program.json", "not inside the activation memory"),
    "memory beyond the board": (_edit_json("program.json", _set("memory_words", value=1 << 40)),
                                "program.json", "memory_words"),
    "image words": (_edit_json("program.json", lambda d: d.update(image_words=d["image_words"] + 2)),
                    "weights.bin", "size"),
    "region outside memory": (_edit_json("program.json", lambda d: d["layers"][0].update(addr=1 << 31)),
                              "program.json", "layers[0]"),
    "output not the last layer": (_edit_json("program.json", lambda d: d["output"].update(name="x")),
                                  "program.json", "output"),
    "too many tables": (_edit_json("program.json", _set("n_tables", value=9)),
                        "program.json", "n_tables"),
    "hw field type": (_edit_json("program.json", _set("hw", "in_lanes", value="4")),
                      "program.json", "hw.in_lanes: '4' is not a whole number"),
    "hw unknown board": (_edit_json("program.json", _set("hw", "board", value="zynq")),
                         "program.json", "hw.board"),
    "hw clock infinite": (_edit_json("program.json", _set("hw", "clock_mhz", value=float("inf"))),
                          "program.json", "hw.clock_mhz"),
    "hwconfig differs": (_edit_json("hwconfig.json", _set("psum_words", value=7)),
                         "hwconfig.json", "psum_words"),
    "format": (_edit_json("program.json", _set("format", value="other")), "program.json", "format"),
    "newer version": (_edit_json("program.json", _set("version", value=99)), "program.json", "version: 99"),
    "meta ref_layers": (_edit_json("program.json", _set("meta", "ref_layers", value=[1])),
                        "program.json", "meta.ref_layers"),
    "not an object": (lambda f: (f / "program.json").write_text("[1, 2, 3]"), "program.json", "JSON object"),
    "deep nesting": (lambda f: (f / "program.json").write_text("[" * 100_000 + "]" * 100_000),
                     "program.json", "not valid JSON"),
    "record in_addr past memory": (_edit_record(0, in_addr=lambda m: m + 5), "schedule.bin", "record 0"),
    "record out_addr past memory": (_edit_record(1, out_addr=lambda m: m), "schedule.bin", "record 1"),
    "record w_addr past image": (_edit_record(0, w_addr=lambda m: m), "schedule.bin", "weights ["),
    "record list past image": (_edit_record(0, list_addr=lambda m: m), "schedule.bin", "input-map list"),
    "record rows past the layer": (_edit_record(0, rows=4000), "schedule.bin", "rows"),
    "record kernel zero": (_edit_record(0, kernel=0), "schedule.bin", "kernel 0 < 1"),
    "record unknown op": (_edit_record(1, op=7), "schedule.bin", "unknown op 7"),
    "record bits": (_edit_record(0, bits=9), "schedule.bin", "bits 9"),
    "record table id": (_edit_record(0, pwl_id=5), "schedule.bin", "pwl_id 5"),
    "no end record": (_edit_record(-1, op=isa.OP_CONV), "schedule.bin", "OP_END"),
    "schedule not whole records": (lambda f: (f / "schedule.bin").write_bytes(b"\0" * 100),
                                   "schedule.bin", "records"),
    "table segment count": (_edit_weights(0, 0), "weights.bin", "PWL table 0"),
    "map list entry": (_edit_weights(isa.TABLE_WORDS, 60000), "schedule.bin", "names a map"),
}


@pytest.mark.parametrize("case", sorted(EDITS))
def test_hand_edit_with_a_valid_manifest_is_refused(folder, case):
    edit, name, field = EDITS[case]
    edit(folder)
    _rehash(folder)
    _refused(folder, str(folder / name), field)


def test_missing_folder_with_a_backup_says_so(folder):
    _, backup = sidecars(folder)
    os.rename(folder, backup)
    _refused(folder, "interrupted", str(backup))


# ----------------------------------------------------------------------------
# the output folder: replaced as a whole, the user's files kept, never deleted
# ----------------------------------------------------------------------------
def _user_files(folder: Path) -> None:
    (folder / "notes").mkdir()
    (folder / "notes" / "mine.txt").write_text("keep me\n")
    (folder / "empty").mkdir()
    (folder / "verify").mkdir()
    (folder / "verify" / "report.html").write_text("<html></html>\n")


def test_recompile_keeps_the_users_files(results, folder, tmp_path):
    _user_files(folder)
    write_outputs(results[1], folder, hdl=False)
    assert (folder / "notes" / "mine.txt").read_text() == "keep me\n"
    assert (folder / "empty").is_dir() and (folder / "verify" / "report.html").is_file()
    np.testing.assert_array_equal(load_program(folder).image, results[1].program.image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]        # no staging or backup left


def test_foreign_folder_is_refused_untouched(results, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    with pytest.raises(ConvcError, match=r"mine: exists, is not empty \(thesis.tex\).*new or empty folder"):
        write_outputs(results[0], out, hdl=False)
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_empty_folder_and_new_parents_are_fine(results, tmp_path):
    (tmp_path / "e").mkdir()
    write_outputs(results[0], tmp_path / "e", hdl=False)
    write_outputs(results[0], tmp_path / "a" / "b" / "c", hdl=False)
    load_program(tmp_path / "e")
    load_program(tmp_path / "a" / "b" / "c")


def test_paths_that_cannot_be_output_folders(results, tmp_path):
    (tmp_path / "f").write_text("a file")
    with pytest.raises(ConvcError, match=r"f: exists and is not a folder"):
        write_outputs(results[0], tmp_path / "f", hdl=False)
    with pytest.raises(ConvcError, match=r"f/out: .*f is a file, not a folder"):
        write_outputs(results[0], tmp_path / "f" / "out", hdl=False)
    with pytest.raises(ConvcError, match=r"/proc/convc-out: cannot"):
        write_outputs(results[0], "/proc/convc-out", hdl=False)
    assert (tmp_path / "f").read_text() == "a file"


def test_users_file_where_the_compile_writes_is_refused(results, folder):
    m = read_manifest(folder)
    files = dict(m["files"])
    del files["report.txt"]                 # as if the user had put their own report.txt there
    write_manifest(folder, files, m["model"])
    (folder / "report.txt").write_text("my own\n")
    with pytest.raises(ConvcError, match=r"report.txt: not written by convc .*move it away"):
        write_outputs(results[1], folder, hdl=False)
    assert (folder / "report.txt").read_text() == "my own\n"


def test_folder_of_an_older_convc_is_replaced(results, folder):
    """No manifest: convc's files are known by name, the rest is kept; a staging
    folder that an older convc left inside goes."""
    (folder / "manifest.json").unlink()
    (folder / ".convc-abc123").mkdir()
    (folder / ".convc-abc123" / "program.json").write_text("{}")
    (folder / "ise").mkdir()
    (folder / "ise" / "convc_ml605.ucf").write_text("# old project\n")
    (folder / "ise" / "my_mig.ucf").write_text("# mine\n")
    write_outputs(results[1], folder, hdl=False)
    assert sorted(_files(folder)) == sorted(ALL + ["ise/my_mig.ucf"])
    load_program(folder)


@pytest.mark.parametrize("left", ["staging", "backup"])
def test_stale_staging_or_backup_is_cleaned_up(results, folder, left):
    """What a killed compile leaves beside a folder that is in place: a staging folder
    (killed while writing it, or while deleting the previous folder after an atomic
    exchange), or part of the backup (killed while deleting it)."""
    staging, backup = sidecars(folder)
    stale = staging if left == "staging" else backup
    shutil.copytree(folder, stale)
    (stale / "weights.bin").write_bytes(b"half")
    write_outputs(results[1], folder, hdl=False)
    assert not staging.exists() and not backup.exists()
    np.testing.assert_array_equal(load_program(folder).image, results[1].program.image)


def test_staging_backup_and_folder_together_are_left_to_the_user(results, folder):
    """Only a person makes all three exist (a compile never does): nothing is deleted."""
    staging, backup = sidecars(folder)
    shutil.copytree(folder, staging)
    shutil.copytree(folder, backup)
    with pytest.raises(ConvcError, match="keep the one you want"):
        write_outputs(results[1], folder, hdl=False)
    assert staging.is_dir() and backup.is_dir()


def test_missing_folder_is_restored_from_its_backup(results, folder):
    _user_files(folder)
    _, backup = sidecars(folder)
    os.rename(folder, backup)
    messages = []
    write_outputs(results[1], folder, hdl=False, log=messages.append)
    assert any("restored" in m for m in messages)
    assert (folder / "notes" / "mine.txt").is_file() and not backup.exists()


def test_symlinked_output_folder(results, folder, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(folder)
    files = write_outputs(results[1], link, hdl=False)
    assert link.is_symlink() and files[0].parent == link
    np.testing.assert_array_equal(load_program(link).image, results[1].program.image)


FAKE_VERILOG = "module convc_accel(irq);\n  output irq;\n  assign irq = 1'b0;\nendmodule\n"


def test_editable_ise_project_and_checked_verilog(tmp_path):
    """With the HDL: the Verilog is checked on load, the ISE project (which its README
    asks the user to edit) is not."""
    net = network_from_graph({"name": "tiny", "input": {"shape": [1, 8, 8]}, "classes": 2,
                              "layers": [{"type": "conv2d", "attrs": {"out_channels": 2, "kernel": 3}}]}, "t")
    net.init_params(seed=0)
    calib = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    res = compile_network(net, V6, CompileOptions(calib=4, in_lanes=1, out_lanes=1), calib=calib)
    out = tmp_path / "c"
    write_outputs(res, out, accel_verilog=FAKE_VERILOG)
    m = read_manifest(out)
    assert m["files"]["ise/convc_ml605.ucf"]["editable"] and "editable" not in m["files"]["hdl/convc_accel.v"]
    with open(out / "ise" / "convc_ml605.ucf", "a") as f:
        f.write("NET my_led LOC=AE21;\n")
    load_program(out)
    (out / "ise" / "my_mig.ucf").write_text("# mine\n")
    write_outputs(res, out, hdl=False)       # no HDL this time: convc's HDL files go, the user's stay
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        ALL + ["ise/my_mig.ucf"])
    write_outputs(res, out, accel_verilog=FAKE_VERILOG)
    with open(out / "hdl" / "convc_accel.v", "a") as f:
        f.write("// edited\n")
    _refused(out, "hdl/convc_accel.v", "compile again")


# ----------------------------------------------------------------------------
# a compile killed at every point
# ----------------------------------------------------------------------------
class Killed(BaseException):
    """The process dies here (a BaseException: nothing catches it as an error)."""


KILL_POINTS = [(os, "rename"), (os, "link"), (os, "symlink"), (Path, "write_text"), (Path, "write_bytes"),
               (Path, "mkdir"), (pipeline, "write_manifest"), (pipeline, "load_program"), (pipeline, "_sync"),
               (pipeline, "_exchange"), (pipeline, "_remove_tree"), (shutil, "copy2")]


def _arm(monkeypatch, kill_at: int | None, hard: bool) -> dict:
    """Count the calls of every kill point; raise :class:`Killed` at call ``kill_at``.
    ``hard``: nothing runs after the kill (no clean-up in ``finally``: every kill point
    raises again)."""
    state = {"calls": 0, "dead": False}
    for owner, name in KILL_POINTS:
        real = getattr(owner, name)

        def wrapper(*args, _real=real, _name=name, **kwargs):
            if state["dead"]:
                if hard:                # a dead process runs nothing more
                    raise Killed(_name)
                return _real(*args, **kwargs)
            state["calls"] += 1
            if state["calls"] == kill_at:
                state["dead"] = True
                raise Killed(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)
    return state


@pytest.mark.parametrize("mode", ["exchange", "two renames"])
def test_compile_killed_at_every_point(results, template, tmp_path, monkeypatch, mode):
    old_res, new_res = results
    base = tmp_path / "base" / "c"
    shutil.copytree(template, base)
    _user_files(base)
    old = _files(base)
    ref = tmp_path / "ref" / "c"                      # what the new compile writes, kept files included
    shutil.copytree(base, ref)
    write_outputs(new_res, ref, hdl=False)
    new = _files(ref)
    assert old != new and old["notes/mine.txt"] == new["notes/mine.txt"]
    if mode == "two renames":
        monkeypatch.setattr(pipeline, "_exchange", lambda a, b: False)
    monkeypatch.setattr(os, "fsync", lambda fd: None)          # the disk is not what is tested here

    with monkeypatch.context() as mp:                  # how many points there are
        state = _arm(mp, None, hard=False)
        probe = tmp_path / "probe" / "c"
        shutil.copytree(base, probe)
        write_outputs(new_res, probe, hdl=False)
        points = state["calls"]
    assert points > 10

    seen = set()
    for hard in (True, False):
        for k in range(1, points + 1):
            parent = tmp_path / f"k{k}{'h' if hard else 's'}"
            out = parent / "c"
            shutil.copytree(base, out)
            with monkeypatch.context() as mp:
                _arm(mp, k, hard)
                with pytest.raises(Killed):
                    write_outputs(new_res, out, hdl=False)
            staging, backup = sidecars(out)
            if out.exists():
                now = _files(out)
                assert now in (old, new), (k, hard, sorted(now))
                load_program(out)
                seen.add("old" if now == old else "new")
            else:                                      # between the two renames: the old one is whole
                assert mode == "two renames" and _files(backup) == old, (k, hard)
                _refused(out, "interrupted", str(backup))
                seen.add("missing")
            if not hard:
                assert not staging.exists() and not backup.exists(), (k, sorted(os.listdir(parent)))
            # the next compile succeeds and leaves nothing beside the folder
            write_outputs(new_res, out, hdl=False)
            assert _files(out) == new
            assert sorted(os.listdir(parent)) == ["c"], (k, hard)
    assert seen == ({"old", "new", "missing"} if mode == "two renames" else {"old", "new"})

"""Fuzzing the command line with malformed files (issue 13).

Hypothesis generates damaged model files, architecture specs, IDX datasets,
``.npy`` inputs and compiled folders; each is handed to the CLI in-process
(``convc.cli.main``).  Every case must end in exit 0 (the damage left a valid
input) or exit 2 with one ``convc: error:`` line that names the file, and
never in an exception: ``main`` lets anything but ``ConvcError`` through, so
a traceback fails the test.  Damage that no reader may accept (a truncated
file, any changed byte of a compiled folder) must give exit 2.

The default run tries a few dozen cases per kind; ``-m slow`` runs
:data:`SLOW_EXAMPLES` per kind.  The session summary prints how many cases
were tried (``tests/convc/conftest.py``).
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convc.cli import main
from convc.reference.datasets import write_idx

#: cases tried per kind; the session summary prints them (tests/convc/conftest.py)
FUZZ_COUNTS: dict[str, int] = {}

FAST_EXAMPLES = 25
SLOW_EXAMPLES = 300

SPEC = {"name": "tiny", "input": {"shape": [1, 8, 8]}, "classes": 3, "layers": [
    {"name": "conv1", "type": "conv2d", "attrs": {"out_channels": 2, "kernel": 3}},
    {"name": "tanh1", "type": "tanh"},
    {"name": "pool1", "type": "maxpool2d", "attrs": {"kernel": 2}},
    {"name": "flatten", "type": "flatten"},
    {"name": "fc", "type": "linear", "attrs": {"out_features": 3}},
    {"name": "logsoftmax", "type": "logsoftmax"}]}


def _settings(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def _cli(kind: str, argv: list[str], capsys, named: str | None = None) -> int:
    """Run the CLI on one case; assert exit 0 or 2 with one error line."""
    FUZZ_COUNTS[kind] = FUZZ_COUNTS.get(kind, 0) + 1
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:      # argparse: usage error, exit 2 with a message
        rc = int(exc.code or 0)
    err = capsys.readouterr().err
    assert rc in (0, 2), f"{argv}: exit {rc}\n{err}"
    assert "Traceback" not in err
    if rc == 2:
        lines = [ln for ln in err.splitlines() if ln.startswith("convc: error:") or ln.startswith("usage:")]
        assert lines, f"{argv}: exit 2 without a message:\n{err}"
        if named is not None and lines[0].startswith("convc: error:"):
            assert named in err, f"{argv}: the message does not name {named}:\n{err}"
    return rc


# ----------------------------------------------------------------------------
# shared valid inputs (built once per module)
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A valid spec, model, compiled folder and input array."""
    root = tmp_path_factory.mktemp("fuzz")
    spec = root / "tiny.json"
    spec.write_text(json.dumps(SPEC))
    model = root / "tiny.npz"
    assert main(["init", "--arch", str(spec), "-o", str(model), "--json"]) == 0
    compiled = root / "tiny-v6"
    assert main(["compile", str(model), "--board", "virtex6", "-o", str(compiled), "--no-hdl",
                 "--calib", "4", "--json"]) == 0
    x = root / "x.npy"
    np.save(x, np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32))
    return {"root": root, "spec": spec, "model": model, "compiled": compiled, "x": x}


# ----------------------------------------------------------------------------
# damage
# ----------------------------------------------------------------------------
@st.composite
def byte_damage(draw, size: int):
    """(kind, position, value): truncate, flip one byte, zero a run, or append."""
    kind = draw(st.sampled_from(["truncate", "flip", "zero", "append"]))
    pos = draw(st.integers(0, max(0, size - 1)))
    return kind, pos, draw(st.integers(1, 255))


def _damage(data: bytes, dmg) -> bytes:
    kind, pos, v = dmg
    pos = min(pos, max(0, len(data) - 1))
    if not data:
        return bytes([v]) if kind in ("flip", "append") else data
    if kind == "truncate":
        return data[:pos]
    if kind == "flip":
        return data[:pos] + bytes([data[pos] ^ v]) + data[pos + 1:]
    if kind == "zero":
        return data[:pos] + bytes(min(v, len(data) - pos)) + data[pos + v:]
    return data + bytes([v]) * v


#: stands for 5,000 nested lists (too deep for Python's recursion), written by _dump
_DEEP = "__deeply_nested__"


def _dump(obj) -> str:
    return json.dumps(obj, allow_nan=True).replace(json.dumps(_DEEP), "[" * 5000 + "]" * 5000)


#: JSON values a careless or hostile file may hold where a number is expected
ODD_VALUES = st.one_of(
    st.integers(-(2 ** 40), 2 ** 40), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.none(), st.text(max_size=5),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.integers(0, 30).map(lambda d: json.loads("[" * d + "1" + "]" * d)), st.just(_DEEP),
    st.just(10 ** 12), st.just(32.7), st.just(-1))


def _json_paths(obj, prefix=()):
    """Every (path) to a leaf or container of a JSON object."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _json_paths(v, prefix + (i,))


@st.composite
def json_edit(draw, obj):
    """A copy of ``obj`` with one field replaced, deleted or deeply nested."""
    paths = [p for p in _json_paths(obj) if p]
    path = draw(st.sampled_from(paths))
    how = draw(st.sampled_from(["replace", "delete", "nest"]))
    new = json.loads(json.dumps(obj))
    parent = new
    for k in path[:-1]:
        parent = parent[k]
    if how == "delete":
        if isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    elif how == "nest":
        parent[path[-1]] = _DEEP
    else:
        parent[path[-1]] = draw(ODD_VALUES)
    return new


# ----------------------------------------------------------------------------
# the fuzz tests, each run fast (default) and long (slow)
# ----------------------------------------------------------------------------
def _model_bytes_case(base, tmp_path, capsys, dmg):
    data = base["model"].read_bytes()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(_damage(data, dmg))
    rc = _cli("model files", ["info", str(bad)], capsys, named=str(bad))
    if dmg[0] == "truncate":
        assert rc == 2


def _model_graph_case(base, tmp_path, capsys, edit):
    with np.load(base["model"], allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["graph"] = np.frombuffer(_dump(edit).encode(), dtype=np.uint8)
    bad = tmp_path / "graph.npz"
    np.savez(bad, **arrays)
    rc = _cli("model graphs", ["info", str(bad)], capsys, named=str(bad))
    if rc == 0:   # accepted: it must also compile or be refused cleanly
        _cli("model graphs", ["compile", str(bad), "--board", "virtex6", "-o", str(tmp_path / "c"),
                              "--no-hdl", "--calib", "2"], capsys)


def _spec_case(base, tmp_path, capsys, edit):
    spec = tmp_path / "spec.json"
    spec.write_text(_dump(edit))
    out = tmp_path / "m.npz"
    rc = _cli("specs", ["init", "--arch", str(spec), "-o", str(out)], capsys, named=str(spec))
    if rc == 0:
        assert out.exists()
    else:
        assert not out.exists(), "a refused spec left a model behind"


def _idx_case(base, tmp_path, capsys, header, n, gz):
    folder = tmp_path / "mnist"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(n)
    for prefix in ("train", "t10k"):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n))
    victim = folder / f"{header[0]}-ubyte"
    raw = bytearray(victim.read_bytes())
    for pos, val in header[1]:
        if pos < len(raw):
            raw[pos] = val
    if gz == "corrupt":
        victim.write_bytes(b"\x1f\x8b" + bytes(raw[:40]))
    else:
        victim.write_bytes(bytes(raw))
    _cli("IDX datasets", ["train", "--dataset", "mnist", "--data-dir", str(folder), "--epochs", "1",
                          "-o", str(tmp_path / "mnist.npz"), "--json", "--quiet"], capsys)


def _npy_case(base, tmp_path, capsys, dtype, shape, damage):
    x = tmp_path / "in.npy"
    buf = io.BytesIO()
    arr = np.zeros(shape, dtype=dtype) if dtype != "object" else np.empty(shape, dtype=object)
    np.save(buf, arr, allow_pickle=True)
    data = buf.getvalue()
    if damage is not None:
        data = _damage(data, damage)
    x.write_bytes(data)
    _cli(".npy inputs", ["run", str(base["compiled"]), "--images", str(x)], capsys)


def _compiled_case(base, tmp_path, capsys, name, dmg):
    folder = tmp_path / "c"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(base["compiled"], folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    victim = files[name % len(files)]
    before = victim.read_bytes()
    after = _damage(before, dmg)
    victim.write_bytes(after)
    rc = _cli("compiled folders", ["run", str(folder), "--images", str(base["x"])], capsys)
    if after != before and victim.name in ("program.json", "schedule.bin", "weights.bin",
                                           "hwconfig.json", "manifest.json"):
        assert rc == 2, f"damaged {victim.name} ({dmg}) was trusted"


def _both(fn, strategy_args):
    """The same case function as a default test and a ``slow`` long run."""
    fast = _settings(FAST_EXAMPLES)(given(*strategy_args)(fn))
    slow = pytest.mark.slow(_settings(SLOW_EXAMPLES)(given(*strategy_args)(fn)))
    return fast, slow


_MODEL_SIZE = 4000   # bytes: positions beyond a file's end are clamped by _damage
_idx_header = st.tuples(
    st.sampled_from(["train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"]),
    st.lists(st.tuples(st.integers(0, 15), st.integers(0, 255)), min_size=1, max_size=4))


def _model_bytes(base, tmp_path_factory, capsys, dmg):
    _model_bytes_case(base, tmp_path_factory.mktemp("mb"), capsys, dmg)


def _model_graph(base, tmp_path_factory, capsys, edit):
    _model_graph_case(base, tmp_path_factory.mktemp("mg"), capsys, edit)


def _spec(base, tmp_path_factory, capsys, edit):
    _spec_case(base, tmp_path_factory.mktemp("sp"), capsys, edit)


def _idx(base, tmp_path_factory, capsys, header, n, gz):
    _idx_case(base, tmp_path_factory.mktemp("idx"), capsys, header, n, gz)


def _npy(base, tmp_path_factory, capsys, dtype, shape, damage):
    _npy_case(base, tmp_path_factory.mktemp("npy"), capsys, dtype, shape, damage)


def _compiled(base, tmp_path_factory, capsys, name, dmg):
    _compiled_case(base, tmp_path_factory.mktemp("cf"), capsys, name, dmg)


_GRAPH = {"format": "convc-model", "version": 1, **SPEC, "meta": {"dataset": "digits"}}

test_fuzz_model_bytes, test_fuzz_model_bytes_slow = _both(_model_bytes, [byte_damage(_MODEL_SIZE)])
test_fuzz_model_graph, test_fuzz_model_graph_slow = _both(_model_graph, [json_edit(_GRAPH)])
test_fuzz_spec, test_fuzz_spec_slow = _both(_spec, [json_edit(SPEC)])
test_fuzz_idx, test_fuzz_idx_slow = _both(
    _idx, [_idx_header, st.integers(0, 6), st.sampled_from(["plain", "plain", "corrupt"])])
test_fuzz_npy, test_fuzz_npy_slow = _both(
    _npy, [st.sampled_from(["<f4", "<f8", "<i8", "|u1", "?", "<c8", "object", "<U3"]),
           st.one_of(st.tuples(st.integers(0, 3), st.just(1), st.just(8), st.just(8)),
                     st.lists(st.integers(0, 9), min_size=0, max_size=5).map(tuple)),
           st.one_of(st.none(), byte_damage(200))])
test_fuzz_compiled, test_fuzz_compiled_slow = _both(
    _compiled, [st.integers(0, 1000), byte_damage(_MODEL_SIZE)])


def test_npz_with_pickled_array_refused(base, tmp_path, capsys):
    """An object array in a model archive is refused without unpickling it."""
    with np.load(base["model"], allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    bad = tmp_path / "pickled.npz"
    with zipfile.ZipFile(bad, "w") as z:
        for k, v in arrays.items():
            buf = io.BytesIO()
            np.save(buf, v)
            z.writestr(k + ".npy", buf.getvalue())
        buf = io.BytesIO()
        np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
        z.writestr("conv1.weight.npy", buf.getvalue())
    assert _cli("model files", ["info", str(bad)], capsys, named=str(bad)) == 2


def test_fuzz_inputs_are_real(base):
    """The valid inputs the fuzzers damage are accepted as they are."""
    assert main(["info", str(base["model"])]) == 0
    assert main(["run", str(base["compiled"]), "--images", str(base["x"])]) == 0

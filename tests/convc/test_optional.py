"""The layering rule on imports (convc/optional.py): every import sits at the top of its
module, except the optional heavy tools named in ``OPTIONAL_TOOLS``, which are imported
inside the function that needs them and marked with a comment naming convc.optional."""

import ast
import importlib.util
from pathlib import Path

import pytest

from convc.optional import OPTIONAL_TOOLS

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("convc", "compiler", "sim", "hdl", "reference", "boards")
MARK = "optional tool: convc.optional"


def _late_imports(path: Path):
    """(line number, imported module, source line) of each import inside a function."""
    text = path.read_text()
    lines = text.splitlines()
    for fn in ast.walk(ast.parse(text)):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        yield node.lineno, alias.name, lines[node.lineno - 1]
                elif isinstance(node, ast.ImportFrom):
                    yield node.lineno, "." * node.level + (node.module or ""), lines[node.lineno - 1]


def _top_imports(module: str) -> set[str]:
    """The top-level module names a convc module imports at its top."""
    origin = Path(importlib.util.find_spec(module).origin)
    names = set()
    for node in ast.parse(origin.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def _is_optional(module: str) -> bool:
    top = module.split(".")[0]
    if top in OPTIONAL_TOOLS:
        return True
    # a convc module that exists to wrap an optional tool (it imports one at its top)
    return top == "convc" and bool(_top_imports(module) & set(OPTIONAL_TOOLS))


def _sources():
    for pkg in PACKAGES:
        yield from sorted((ROOT / pkg).rglob("*.py"))


def test_the_source_tree_is_found():
    assert len(list(_sources())) > 100


@pytest.mark.parametrize("pkg", PACKAGES)
def test_only_optional_tools_are_imported_inside_functions(pkg):
    bad = []
    for path in sorted((ROOT / pkg).rglob("*.py")):
        for line, module, text in _late_imports(path):
            where = f"{path.relative_to(ROOT)}:{line}: {text.strip()}"
            if module.startswith(".") or not _is_optional(module):
                bad.append(f"{where} (not an optional tool: import it at the top)")
            elif MARK not in text:
                bad.append(f"{where} (say why with '# {MARK}')")
    assert not bad, "\n".join(bad)


def test_the_rule_catches_a_late_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    import json\n    from onnx import helper  # optional tool: convc.optional\n")
    found = [(m, _is_optional(m)) for _, m, _ in _late_imports(f)]
    assert found == [("json", False), ("onnx", True)]

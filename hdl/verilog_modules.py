"""The module hierarchy of a Verilog text: its modules, their instances, which are alike.

Amaranth writes one Verilog module per instance (the accelerator's memory writers,
feeders ...). For synthesis per distinct module (:func:`convc.hdl.synth.synthesize`,
``method="modules"`` or ``"hier"``) the text is split into its modules
(:func:`split_modules`), each module gets a canonical key that is equal for two modules
that are the same text up to names and generated numbers, and the modules under the
top are grouped by key (:func:`module_classes`) with their instance counts; a
submodule becomes a black box (:func:`blackbox_stub`) when its parent is synthesized
alone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

__all__ = ["VModule", "ModuleClass", "split_modules", "module_classes", "blackbox_stub"]

_ID = r"(?:\\\S+|[A-Za-z_][A-Za-z0-9_$]*)"
_MODULE_RE = re.compile(r"^module\s+(" + _ID + r")\s*\(", re.M)
_ENDMODULE_RE = re.compile(r"^endmodule\b.*$", re.M)
_INST_RE = re.compile(r"^\s*(" + _ID + r")\s+(" + _ID + r")\s*\(", re.M)
_PIN_RE = re.compile(r"^(\s*\.)(" + _ID + r")(\s*\()", re.M)
_PORT_DECL_RE = re.compile(r"^\s*(?:input|output|inout)\b[^;]*;", re.M)
_NUM_RE = re.compile(r"\$(\d+)")


@dataclass
class VModule:
    """One ``module ... endmodule`` of a Verilog text."""
    name: str                       # without the escaping backslash
    text: str                       # from ``module`` to ``endmodule``
    children: list = field(default_factory=list)   # (module name, instance name), in order
    key: str = ""                   # canonical hash: equal keys = the same module up to names
    numbers: dict = field(default_factory=dict)     # its $<digits> renaming: (space, n) -> rank


def _plain(ident: str) -> str:
    ident = ident.strip()
    return ident[1:] if ident.startswith("\\") else ident


def split_modules(text: str) -> dict[str, VModule]:
    """The modules of a Verilog text (as Amaranth/Yosys write it), by name, each with its
    instantiations of the other modules."""
    mods: dict[str, VModule] = {}
    for m in _MODULE_RE.finditer(text):
        end = _ENDMODULE_RE.search(text, m.end())
        if end is None:
            raise ValueError(f"module {m.group(1)} has no endmodule")
        name = _plain(m.group(1))
        mods[name] = VModule(name, text[m.start():end.end()] + "\n")
    for mod in mods.values():
        body = mod.text[mod.text.index(";") + 1:]
        for inst in _INST_RE.finditer(body):
            kind = _plain(inst.group(1))
            if kind in mods and kind != mod.name:
                mod.children.append((kind, _plain(inst.group(2))))
    return mods


def _topo(mods: dict[str, VModule], top: str) -> list[str]:
    """The modules under ``top``, children before parents."""
    order, seen, busy = [], set(), set()

    def visit(n):
        if n in seen:
            return
        if n in busy:
            raise ValueError(f"recursive module hierarchy at {n}")
        busy.add(n)
        for c, _ in mods[n].children:
            visit(c)
        busy.discard(n)
        seen.add(n)
        order.append(n)

    visit(top)
    return order


def _items(text: str) -> list[str]:
    """The module items of a module body as Yosys writes it (a declaration, an ``assign``,
    an ``always`` or ``initial`` block, an instantiation; an attribute line goes with the
    item after it), each one string: Verilog gives them no order."""
    items, cur, attrs = [], None, []
    for line in text.split("\n"):
        s = line.strip()
        if not s:
            continue
        top_level = len(line) - len(line.lstrip(" ")) <= 2
        if top_level and s.startswith("(*"):
            if cur is not None:
                items.append("\n".join(cur))
                cur = None
            attrs.append(s)
        elif top_level and not s.startswith(("end", ")")):
            if cur is not None:
                items.append("\n".join(cur))
            cur, attrs = attrs + [s], []
        elif cur is None:
            cur, attrs = attrs + [s], []
        else:
            cur.append(s)
    if cur is not None or attrs:
        items.append("\n".join((cur or []) + attrs))
    return items


def _namespace(text: str, at: int) -> str:
    """The counter a ``$<digits>`` at ``at`` belongs to: the name part before it."""
    k = at
    while k > 0 and (text[k - 1].isalnum() or text[k - 1] in "_.:"):
        k -= 1
    word = text[k:at]
    return "#" if word.isdigit() else word.lstrip("0123456789")


def _canonical(mod: VModule, mods: dict[str, VModule]) -> None:
    """``mod.key``: a hash of the module with its own name, its children's names (replaced
    by their keys), the pins of its instantiations (in the child's own numbering) and
    every generated number (``$<digits>``: Amaranth's and Yosys' global counters; renamed
    to its rank among the module's numbers) made anonymous, its items sorted (Yosys writes
    them sorted by name, so the order changes with the names).  Two modules with the same
    key are the same hardware; two modules the generator numbered differently (not in
    the same order) just stay two distinct modules."""
    text = mod.text
    open_paren = text.index("(")
    header_end = text.index(";")
    ports = sorted(p.strip() for p in text[open_paren + 1:text.rindex(")", 0, header_end)].split(","))
    body = text[header_end + 1:text.rindex("endmodule")]
    child_kinds = {c for c, _ in mod.children}
    # instantiations: the module name -> the child's key; pins -> the child's own numbering
    out, pos = [], 0
    for inst in _INST_RE.finditer(body):
        kind = _plain(inst.group(1))
        if kind not in child_kinds:
            continue
        close = body.index(");", inst.end())
        child = mods[kind]

        def pin(pm, child=child):
            name = pm.group(2)
            name = _NUM_RE.sub(lambda n: "\u00a7" + str(child.numbers.get(
                (_namespace(name, n.start()), int(n.group(1))), "?" + n.group(1))), name)
            return pm.group(1) + name + pm.group(3)

        out.append(body[pos:inst.start(1)])
        out.append("<" + child.key + ">" + body[inst.end(1):inst.end()])
        out.append(_PIN_RE.sub(pin, body[inst.end():close]))
        pos = close
    out.append(body[pos:])
    body = "".join(out)
    head = "<self>(" + ", ".join(ports) + ");"
    # every number gets its rank among the numbers of its namespace (the name before its
    # "$"; a number after a number: that one's suffix), so that two counters never mix
    full = head + "\n" + body
    spaces: dict[str, set] = {}
    marks = []
    for n in _NUM_RE.finditer(full):
        space = _namespace(full, n.start())
        spaces.setdefault(space, set()).add(int(n.group(1)))
        marks.append((n.start(), n.end(), space, int(n.group(1))))
    ranks = {sp: {v: k for k, v in enumerate(sorted(vals))} for sp, vals in spaces.items()}
    pieces, pos = [], 0
    for a, b, space, v in marks:
        pieces.append(full[pos:a])
        pieces.append(f"$#{ranks[space][v]}")
        pos = b
    pieces.append(full[pos:])
    full = "".join(pieces)
    head, body = full.split("\n", 1)
    items = sorted(_items(body))
    # this module's own numbering, for its ports as a parent's pins name them
    mod.numbers = {(space, v): ranks[space][v] for _, _, space, v in marks}
    mod.key = hashlib.sha1((head + "\n" + "\n".join(items)).encode()).hexdigest()[:16]


def blackbox_stub(mod: VModule) -> str:
    """A black-box declaration of ``mod``: its header and port declarations only."""
    header = mod.text[:mod.text.index(";") + 1]
    ports = "\n".join(p.group(0).strip() for p in _PORT_DECL_RE.finditer(mod.text))
    return f"(* blackbox *)\n{header}\n{ports}\nendmodule\n"


@dataclass
class ModuleClass:
    """The modules under the top with one key: one distinct module."""
    key: str
    rep: str                        # the module synthesized
    members: list                   # every module name with this key
    instances: int = 0
    children: dict = field(default_factory=dict)    # child key -> instances inside one


def module_classes(mods: dict[str, VModule], top: str) -> tuple[list[ModuleClass], dict[str, int]]:
    """The distinct modules under ``top`` and how often each module is instantiated.

    Parameters
    ----------
    mods : dict of str to VModule
        :func:`split_modules` of the design; sets the ``key`` and ``numbers`` of the
        modules under ``top``.
    top : str
        The top module's name.

    Returns
    -------
    classes : list of ModuleClass
        Children before parents; each with its instances in the whole design.
    count : dict of str to int
        Module name -> its instances in the whole design (the top: 1).
    """
    order = _topo(mods, top)
    for n in order:
        _canonical(mods[n], mods)
    count = {n: 0 for n in order}
    count[top] = 1
    for n in reversed(order):            # parents before children
        for c, _ in mods[n].children:
            count[c] += count[n]
    classes: dict[str, ModuleClass] = {}
    for n in order:
        mod = mods[n]
        cl = classes.get(mod.key)
        if cl is None:
            cl = classes[mod.key] = ModuleClass(mod.key, n, [])
            for c, _ in mod.children:
                ck = mods[c].key
                cl.children[ck] = cl.children.get(ck, 0) + 1
        cl.members.append(n)
        cl.instances += count[n]
    return list(classes.values()), count


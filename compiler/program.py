"""A compiled program: the schedule, the constant memory image and the map.

This is what ``convc compile`` writes to its output folder and what the
golden model, the cycle model and the RTL testbenches load:

``schedule.bin``   the records (:mod:`convc.compiler.isa`), 64 bytes each
``weights.bin``    the constant image: little-endian 16-bit words loaded at
                   word address 0 (weights, biases, input-map lists, PWL tables)
``program.json``   this dataclass without the two binaries: the memory map
                   (input, output, and each layer's output region with its
                   fixed-point format), table address, the hardware
                   configuration and the per-instruction layer names
``hwconfig.json``  the hardware configuration (the same as ``program.json``'s)
``manifest.json``  sizes and hashes of the files (:mod:`convc.compiler.manifest`)

:func:`load_program` trusts nothing it reads: it checks the manifest, then every
field of ``program.json`` and ``hwconfig.json``, every record of ``schedule.bin``
and the tables of ``weights.bin`` against each other (sizes, formats, every
address inside the memory), and refuses a folder with one :class:`ConvcError`
naming the file and the field or record.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import numpy as np

from convc.boards import ALIASES, BOARDS
from convc.errors import ConvcError

from . import isa
from .hwconfig import HardwareConfig
from .isa import Instr, decode_program, encode_program
from .manifest import check_files, read_manifest, sidecars, write_manifest
from .numeric import ACC_BITS, QFormat

__all__ = ["Region", "Program", "save_program", "load_program", "schedule_addr", "PROGRAM_FILES"]

PROGRAM_VERSION = 1

SCHEDULE_ALIGN = isa.RECORD_WORDS   # words: the schedule starts on a record boundary


def schedule_addr(memory_words: int) -> int:
    """Where the host puts the schedule (the accelerator's ``SCHED_ADDR`` register): the
    first record boundary after the program's ``memory_words`` (image, activations and
    scratch)."""
    return -(-int(memory_words) // SCHEDULE_ALIGN) * SCHEDULE_ALIGN

#: the files that make a program, in every compiled folder (what :func:`load_program` reads)
PROGRAM_FILES = ("program.json", "schedule.bin", "weights.bin", "hwconfig.json")

#: a JSON file larger than this is not one convc wrote
MAX_JSON_BYTES = 64 << 20
#: more records than this is not a schedule convc wrote (64 MiB of schedule.bin)
MAX_RECORDS = 1 << 20
#: addresses are 32-bit words (isa)
ADDR_LIMIT = 1 << 32
#: fraction bits of a region's format, either way (a real format is within +-48)
MAX_FRAC = 64


@dataclass(frozen=True)
class Region:
    """A tensor in memory: ``shape`` words from ``addr``, codes of ``fmt``.

    ``shape`` is ``(C, H, W)`` (a vector of F features is ``(F, 1, 1)``).
    """

    name: str
    addr: int
    shape: tuple[int, ...]
    fmt: QFormat

    @property
    def words(self) -> int:
        return int(np.prod(self.shape))

    def to_json(self) -> dict:
        return {"name": self.name, "addr": self.addr, "shape": list(self.shape), "fmt": self.fmt.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> "Region":
        return cls(d["name"], int(d["addr"]), tuple(int(v) for v in d["shape"]), QFormat.from_json(d["fmt"]))


@dataclass
class Program:
    """Everything the accelerator and its models need to run one network.

    Attributes
    ----------
    hw : HardwareConfig
    instrs : list of Instr
        The schedule, ending with an ``OP_END`` record.
    names : list of str
        The layer each record belongs to (``"end"`` for the last).
    image : ndarray of int64, shape (image_words,)
        Constant words (0..0xFFFF) at address 0.
    memory_words : int
        Words of memory the program touches (image, activations, scratch).
    table_addr, n_tables : int
        Where the PWL tables are (``isa.TABLE_WORDS`` words each).
    input : Region
        Where the host writes the quantized, normalized input.
    output : Region
        The network's result (the last layer's output).
    layers : list of Region
        Every layer's output region, in order (the last is ``output``).
    input_mean, input_std : list of float
        Host-side normalization before quantizing the input.
    meta : dict
        Free-form facts (model name, bits, options) for reports.
    """

    hw: HardwareConfig
    instrs: list[Instr]
    names: list[str]
    image: np.ndarray
    memory_words: int
    table_addr: int
    n_tables: int
    input: Region
    output: Region
    layers: list[Region]
    input_mean: list[float] = field(default_factory=list)
    input_std: list[float] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def quantize_input(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """Normalize raw inputs ``(N, C, H, W)`` on the host and quantize them.

        Returns the codes (int64) and the number of saturated values.
        """
        x = np.asarray(x, dtype=np.float64)
        mean = np.asarray(self.input_mean or [0.0] * x.shape[1]).reshape(1, -1, 1, 1)
        std = np.asarray(self.input_std or [1.0] * x.shape[1]).reshape(1, -1, 1, 1)
        return self.input.fmt.quantize((x - mean) / std)

    def to_json(self) -> dict:
        return {
            "format": "convc-program", "version": PROGRAM_VERSION,
            "hw": self.hw.to_json(), "names": self.names, "image_words": int(self.image.size),
            "memory_words": self.memory_words, "table_addr": self.table_addr, "n_tables": self.n_tables,
            "input": self.input.to_json(), "output": self.output.to_json(),
            "layers": [r.to_json() for r in self.layers],
            "input_mean": self.input_mean, "input_std": self.input_std, "meta": self.meta,
        }


def save_program(prog: Program, folder: str | Path, manifest: bool = True) -> list[str]:
    """Write the program's files (:data:`PROGRAM_FILES`) into ``folder``.

    Parameters
    ----------
    prog : Program
    folder : str or Path
        An existing folder.
    manifest : bool
        Also write ``manifest.json`` over the files written, so that the folder loads
        on its own (``convc compile`` writes one manifest over all its files instead).

    Returns
    -------
    list of str
        The names written (without the manifest).
    """
    folder = Path(folder)
    (folder / "schedule.bin").write_bytes(encode_program(prog.instrs))
    (folder / "weights.bin").write_bytes(np.asarray(prog.image).astype("<u2").tobytes())
    (folder / "program.json").write_text(json.dumps(prog.to_json(), indent=1))
    (folder / "hwconfig.json").write_text(json.dumps(prog.hw.to_json(), indent=1))
    if manifest:
        write_manifest(folder, PROGRAM_FILES)
    return list(PROGRAM_FILES)


def load_program(folder: str | Path) -> Program:
    """Read a compiled folder, trusting nothing in it.

    The manifest is checked first (every file it lists is there, of its size and
    hash; see :func:`convc.compiler.manifest.check_files`), then the contents: the
    fields of ``program.json`` and ``hwconfig.json`` (types, ranges, formats), the
    records of ``schedule.bin`` and the PWL tables in ``weights.bin``, and that they
    agree (every record's addresses inside the memory, its sizes those of its layer's
    region, every region inside the memory).

    Parameters
    ----------
    folder : str or Path
        The output folder of ``convc compile`` (or of :func:`save_program`).

    Returns
    -------
    Program

    Raises
    ------
    ConvcError
        Any problem, naming the folder or file and the field or record.
    """
    folder = Path(folder)
    if not folder.is_dir():
        backup = sidecars(folder)[1]
        if backup.is_dir():
            raise ConvcError(f"{folder}: no such folder; a compile was interrupted while replacing it and left "
                             f"the previous one as {backup}: compile again (or rename that folder back)")
        raise ConvcError(f"{folder}: no such folder (expected the output of 'convc compile')")
    manifest = read_manifest(folder)
    for name in PROGRAM_FILES:
        if name not in manifest["files"]:
            raise ConvcError(f"{folder / 'manifest.json'}: does not list {name}; compile the folder again")
    check_files(folder, manifest)
    try:
        doc = _read_json(folder / "program.json")
        hwdoc = _read_json(folder / "hwconfig.json")
        prog = _program(doc, hwdoc, folder)
        _check_program(prog)
    except _Bad as bad:
        raise ConvcError(f"{folder / bad.file}: {bad.field}: {bad.problem}") from None
    return prog


class _Bad(Exception):
    """One problem in a compiled folder: the file, the field (or record) and what is wrong."""

    def __init__(self, file: str, field: str, problem: str):
        super().__init__(f"{file}: {field}: {problem}")
        self.file, self.field, self.problem = file, field, problem


def _read_json(path: Path) -> dict:
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise _Bad(path.name, "size", f"{size} bytes, larger than any file convc writes ({MAX_JSON_BYTES})")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _Bad(path.name, "contents", f"not valid JSON ({type(exc).__name__}: "
                                          f"{str(exc)[:80] or 'nested too deeply'})") from None
    if not isinstance(doc, dict):
        raise _Bad(path.name, "contents", f"expected a JSON object, got {type(doc).__name__}")
    return doc


class _Fields:
    """Strict reading of one JSON file's fields: every problem is a :class:`_Bad`
    naming the file and the field."""

    def __init__(self, file: str):
        self.file = file

    def bad(self, name: str, problem: str) -> _Bad:
        return _Bad(self.file, name, problem)

    def get(self, d: dict, key: str, name: str):
        if key not in d:
            raise self.bad(name, "missing")
        return d[key]

    def integer(self, v, name: str, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.bad(name, f"{v!r} is not a whole number")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.bad(name, f"{v} outside [{lo if lo is not None else '-inf'}, "
                                 f"{hi if hi is not None else 'inf'}]")
        return v

    def number(self, v, name: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.bad(name, f"{v!r} is not a finite number")
        return float(v)

    def text(self, v, name: str) -> str:
        if not isinstance(v, str):
            raise self.bad(name, f"{v!r} is not a string")
        return v

    def array(self, v, name: str) -> list:
        if not isinstance(v, list):
            raise self.bad(name, f"expected a list, got {type(v).__name__}")
        return v

    def obj(self, v, name: str) -> dict:
        if not isinstance(v, dict):
            raise self.bad(name, f"expected an object, got {type(v).__name__}")
        return v

    def fmt(self, v, name: str) -> QFormat:
        d = self.obj(v, name)
        width = self.integer(self.get(d, "width", f"{name}.width"), f"{name}.width", 2, isa.WORD_BITS)
        frac = self.integer(self.get(d, "frac", f"{name}.frac"), f"{name}.frac", -MAX_FRAC, MAX_FRAC)
        signed = d.get("signed", True)
        if not isinstance(signed, bool):
            raise self.bad(f"{name}.signed", f"{signed!r} is not true or false")
        return QFormat(width, frac, signed)

    def region(self, v, name: str) -> Region:
        d = self.obj(v, name)
        rname = self.text(self.get(d, "name", f"{name}.name"), f"{name}.name")
        addr = self.integer(self.get(d, "addr", f"{name}.addr"), f"{name}.addr", 0, ADDR_LIMIT - 1)
        shape = self.array(self.get(d, "shape", f"{name}.shape"), f"{name}.shape")
        if len(shape) != 3:
            raise self.bad(f"{name}.shape", f"{shape!r}: expected [C, H, W]")
        dims = tuple(self.integer(s, f"{name}.shape[{i}]", 1, ADDR_LIMIT - 1) for i, s in enumerate(shape))
        return Region(rname, addr, dims, self.fmt(self.get(d, "fmt", f"{name}.fmt"), f"{name}.fmt"))

    def hw(self, v, name: str) -> HardwareConfig:
        d = self.obj(v, name)
        kw = {}
        for f in fields(HardwareConfig):
            key = f"{name}.{f.name}"
            if f.name not in d:
                if f.default is MISSING:
                    raise self.bad(key, "missing")
                continue
            value = d[f.name]
            kw[f.name] = (self.integer(value, key) if f.type == "int" else self.number(value, key)
                          if f.type == "float" else self.text(value, key))
        try:
            hw = HardwareConfig(**kw)
        except ConvcError as exc:
            raise self.bad(name, exc.message) from None
        if hw.acc_bits != ACC_BITS:
            raise self.bad(f"{name}.acc_bits", f"{hw.acc_bits}: the accumulators are {ACC_BITS} bits")
        if hw.board not in BOARDS:
            raise self.bad(f"{name}.board", f"{hw.board!r} is not a board this convc knows "
                                            f"({', '.join(sorted(BOARDS))})")
        return hw


def _program(doc: dict, hwdoc: dict, folder: Path) -> Program:
    """The Program described by ``program.json`` (``doc``), ``hwconfig.json`` and the
    two binaries, every field checked for type and range (not yet against each other)."""
    f = _Fields("program.json")
    if doc.get("format") != "convc-program":
        raise f.bad("format", f"{doc.get('format')!r}: not a convc program description")
    version = f.integer(f.get(doc, "version", "version"), "version", 1)
    if version > PROGRAM_VERSION:
        raise f.bad("version", f"{version} is newer than this convc reads ({PROGRAM_VERSION}); update convc")
    hw = f.hw(f.get(doc, "hw", "hw"), "hw")
    if hwdoc != doc["hw"]:
        diff = sorted(k for k in set(hwdoc) | set(doc["hw"]) if hwdoc.get(k, MISSING) != doc["hw"].get(k, MISSING))
        raise _Bad("hwconfig.json", diff[0] if diff else "contents",
                   f"{hwdoc.get(diff[0]) if diff else hwdoc!r} differs from program.json's hw "
                   f"({doc['hw'].get(diff[0]) if diff else doc['hw']!r})")
    board = BOARDS[hw.board]
    memory_limit = board.mem_mbytes * (1 << 20) // 2
    memory_words = f.integer(f.get(doc, "memory_words", "memory_words"), "memory_words", 1, memory_limit)
    image_words = f.integer(f.get(doc, "image_words", "image_words"), "image_words", 0, memory_words)
    names = [f.text(n, f"names[{i}]") for i, n in enumerate(f.array(f.get(doc, "names", "names"), "names"))]
    table_addr = f.integer(f.get(doc, "table_addr", "table_addr"), "table_addr", 0, ADDR_LIMIT - 1)
    n_tables = f.integer(f.get(doc, "n_tables", "n_tables"), "n_tables", 0, hw.pwl_tables)
    inp = f.region(f.get(doc, "input", "input"), "input")
    out = f.region(f.get(doc, "output", "output"), "output")
    layers = [f.region(r, f"layers[{i}]") for i, r in enumerate(f.array(f.get(doc, "layers", "layers"), "layers"))]
    stats = {}
    for key in ("input_mean", "input_std"):
        values = f.array(doc.get(key, []), key)
        if len(values) not in (0, inp.shape[0]):
            raise f.bad(key, f"{len(values)} values for {inp.shape[0]} input maps")
        stats[key] = [f.number(v, f"{key}[{i}]") for i, v in enumerate(values)]
    for i, v in enumerate(stats["input_std"]):
        if not v > 0:
            raise f.bad(f"input_std[{i}]", f"{v}: must be > 0 (the host divides by it)")
    meta = f.obj(doc.get("meta", {}), "meta")
    for key in ("model", "board", "name", "calibration"):
        if meta.get(key) is not None:
            f.text(meta[key], f"meta.{key}")
    if meta.get("board") is not None and ALIASES.get(meta["board"], meta["board"]) not in BOARDS:
        raise f.bad("meta.board", f"{meta['board']!r} is not a board this convc knows")
    refs = f.obj(meta.get("ref_layers", {}), "meta.ref_layers")
    for k, v in refs.items():
        if v is not None:                  # None: a region the compiler made (no reference layer)
            f.text(v, f"meta.ref_layers.{k}")

    sched = folder / "schedule.bin"
    size = sched.stat().st_size
    if size > MAX_RECORDS * isa.RECORD_BYTES:
        raise _Bad("schedule.bin", "size", f"{size} bytes: more than {MAX_RECORDS} records")
    try:
        instrs = decode_program(sched.read_bytes())
    except ValueError as exc:
        raise _Bad("schedule.bin", "records", str(exc)) from None
    weights = folder / "weights.bin"
    size = weights.stat().st_size
    if size != 2 * image_words:
        raise _Bad("weights.bin", "size", f"{size} bytes, program.json's image_words says {image_words} "
                                          f"words ({2 * image_words} bytes)")
    image = np.frombuffer(weights.read_bytes(), dtype="<u2").astype(np.int64)
    return Program(hw=hw, instrs=instrs, names=names, image=image, memory_words=memory_words,
                   table_addr=table_addr, n_tables=n_tables, input=inp, output=out, layers=layers,
                   input_mean=stats["input_mean"], input_std=stats["input_std"], meta=meta)


def _check_program(prog: Program) -> None:
    """Check that a program's parts agree: regions inside the memory and above the
    constant image, the PWL tables inside the image and readable, and every record's
    op, sizes and addresses (those of its layer's region, inside the memory; its
    weights, map list and tables inside the image).

    Raises
    ------
    _Bad
        The file (``program.json``, ``schedule.bin``, ``weights.bin``), the field or
        record, and the problem.
    """
    f = _Fields("program.json")
    hw, mem, img = prog.hw, prog.memory_words, int(prog.image.size)
    if len(prog.names) != len(prog.instrs):
        raise f.bad("names", f"{len(prog.names)} names for the {len(prog.instrs)} records of schedule.bin")
    if not prog.layers:
        raise f.bad("layers", "empty")
    for label, r in [("input", prog.input)] + [(f"layers[{i}]", r) for i, r in enumerate(prog.layers)]:
        if r.fmt.width > hw.bits:
            raise f.bad(f"{label}.fmt.width", f"{r.fmt.width} > the hardware's {hw.bits} bits")
        if r.addr < img or r.addr + r.words > mem:
            raise f.bad(label, f"{r.name!r} at words [{r.addr}, {r.addr + r.words}) is not inside the "
                               f"activation memory [{img}, {mem}) (image_words, memory_words)")
    if prog.output != prog.layers[-1]:
        raise f.bad("output", "differs from the last of layers")
    by_name = {}
    for i, r in enumerate(prog.layers):
        if r.name in by_name or r.name == "end":
            raise f.bad(f"layers[{i}].name", f"{r.name!r} names two regions (or the end record)")
        by_name[r.name] = r
    tables_end = prog.table_addr + prog.n_tables * isa.TABLE_WORDS
    if prog.n_tables and tables_end > img:
        raise f.bad("n_tables", f"{prog.n_tables} PWL tables from word {prog.table_addr} end at word "
                                f"{tables_end}, past the image's {img} words")
    for i in range(prog.n_tables):
        addr = prog.table_addr + i * isa.TABLE_WORDS
        try:
            table = isa.read_table(prog.image, addr)
        except (ValueError, TypeError) as exc:
            raise _Bad("weights.bin", f"PWL table {i} at word {addr}", str(exc)) from None
        if table.segments > hw.pwl_segments:
            raise _Bad("weights.bin", f"PWL table {i} at word {addr}",
                       f"{table.segments} segments, the hardware's tables hold {hw.pwl_segments}")
    sources = {prog.input.addr: prog.input, **{r.addr: r for r in prog.layers}}
    last = len(prog.instrs) - 1
    for k, (ins, name) in enumerate(zip(prog.instrs, prog.names)):
        _check_record(prog, k, ins, name, k == last, by_name, sources)


def _check_record(prog: Program, k: int, ins: Instr, name: str, is_last: bool, by_name: dict,
                  sources: dict) -> None:
    """One record against the program (see :func:`check_program`)."""
    hw, mem, img = prog.hw, prog.memory_words, int(prog.image.size)
    where = f"record {k} (layer {name!r})"

    def need(ok: bool, problem: str) -> None:
        if not ok:
            raise _Bad("schedule.bin", where, problem)

    need(ins.op in isa.OP_NAMES, f"unknown op {ins.op}")
    try:
        isa.check_up(ins)
    except ValueError as exc:
        need(False, str(exc))
    if ins.op == isa.OP_END or is_last:
        need(ins.op == isa.OP_END and is_last, "the schedule must end with one OP_END record, its last")
        return
    if ins.op == isa.OP_NOP:
        return
    need(ins.bits == hw.bits, f"bits {ins.bits}, the hardware's are {hw.bits}")
    region = by_name.get(name)
    need(region is not None, "program.json's names give it no layer region")
    need(ins.out_addr == region.addr, f"out_addr {ins.out_addr} is not its layer's region at {region.addr}")
    words_in = ins.in_c * ins.in_h * ins.in_w
    src = sources.get(ins.in_addr)
    need(words_in > 0 and src is not None and src.words == words_in,
         f"input {ins.in_c}x{ins.in_h}x{ins.in_w} at word {ins.in_addr} is not the input or a layer's region")
    need(ins.pwl_id < prog.n_tables or not (ins.act == isa.ACT_PWL or ins.op == isa.OP_LCN),
         f"pwl_id {ins.pwl_id}: the program has {prog.n_tables} PWL tables")
    if ins.op == isa.OP_LCN:
        need(ins.pwl2_id < prog.n_tables, f"pwl2_id {ins.pwl2_id}: the program has {prog.n_tables} PWL tables")
        need(1 <= ins.kernel <= hw.lcn_kmax, f"LCN window {ins.kernel}: the hardware's holds {hw.lcn_kmax}")
        need(ins.in_c <= hw.lcn_channels, f"{ins.in_c} maps: the LCN engine normalizes {hw.lcn_channels}")
        need((ins.out_h, ins.out_w) == (ins.in_h, ins.in_w) and region.shape == (ins.in_c, ins.in_h, ins.in_w),
             f"output {ins.in_c}x{ins.out_h}x{ins.out_w} is not its region's {list(region.shape)}")
        wend = ins.w_addr + ins.kernel ** 2 + 2 * ins.kernel
        need(wend <= img, f"window [{ins.w_addr}, {wend}) past the image's {img} words")
        send = ins.scratch_addr + (ins.in_c + 1) * ins.in_h * ins.in_w
        need(img <= ins.scratch_addr and send <= mem,
             f"scratch [{ins.scratch_addr}, {send}) is not inside the activation memory [{img}, {mem})")
        return
    need(ins.pool in isa.POOL_NAMES, f"unknown pool {ins.pool}")
    for fname in ("kernel", "stride", "pool_k", "pool_s", "n_in", "n_out", "rows"):
        need(getattr(ins, fname) >= 1, f"{fname} {getattr(ins, fname)} < 1")
    need(ins.pool != isa.POOL_NONE or (ins.pool_k, ins.pool_s) == (1, 1), "pool_k, pool_s must be 1 without pooling")
    need(ins.conv_h >= ins.pool_k and ins.conv_w >= ins.pool_k,
         f"a {ins.kernel}x{ins.kernel} window over {ins.in_h}x{ins.in_w} (pad {ins.pad}, stride {ins.stride}) "
         f"leaves no {ins.pool_k}x{ins.pool_k} pooling window")
    out_h = (ins.conv_h - ins.pool_k) // ins.pool_s + 1
    out_w = (ins.conv_w - ins.pool_k) // ins.pool_s + 1
    need((ins.out_h, ins.out_w) == (out_h, out_w) == region.shape[1:],
         f"output {ins.out_h}x{ins.out_w} (its sizes give {out_h}x{out_w}), its region is {list(region.shape)}")
    need(ins.o0 + ins.n_out <= region.shape[0], f"output maps [{ins.o0}, {ins.o0 + ins.n_out}) past the "
                                               f"region's {region.shape[0]}")
    need(ins.row0 + ins.rows <= ins.out_h, f"rows [{ins.row0}, {ins.row0 + ins.rows}) past {ins.out_h}")
    if ins.op == isa.OP_FC:
        need(hw.has_fc, "an OP_FC record, but the hardware has no fully connected engine")
        need((ins.kernel, ins.stride, ins.pad, ins.pool) == (1, 1, 0, isa.POOL_NONE),
             "OP_FC must be a 1x1 convolution, stride 1, no padding, no pooling")
        need(ins.w_addr % isa.FC_ALIGN == 0, f"w_addr {ins.w_addr} not a multiple of {isa.FC_ALIGN}")
    else:
        need(ins.kernel <= hw.kmax, f"kernel {ins.kernel} > the hardware's {hw.kmax}")
        need(ins.pool_k <= hw.pool_kmax or ins.pool == isa.POOL_NONE,
             f"pooling window {ins.pool_k} > the hardware's {hw.pool_kmax}")
    lend = ins.list_addr + ins.n_in
    need(lend <= img, f"input-map list [{ins.list_addr}, {lend}) past the image's {img} words")
    need(int(prog.image[ins.list_addr:lend].max()) < ins.in_c,
         f"input-map list at word {ins.list_addr} names a map >= in_c {ins.in_c}")
    if ins.n_in > hw.list_words:   # the hardware steps through a consecutive list past its list memory
        lst = np.asarray(prog.image[ins.list_addr:lend], dtype=np.int64)
        need(bool(np.all(lst == lst[0] + np.arange(ins.n_in))),
             f"n_in {ins.n_in} > the list memory's {hw.list_words} words and the list is not consecutive maps")
    wend = ins.w_addr + ins.weight_words
    need(wend <= img, f"weights [{ins.w_addr}, {wend}) past the image's {img} words")

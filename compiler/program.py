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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convc.errors import ConvcError

from .hwconfig import HardwareConfig
from .isa import Instr, decode_program, encode_program
from .numeric import QFormat

__all__ = ["Region", "Program", "save_program", "load_program"]

PROGRAM_VERSION = 1


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


def save_program(prog: Program, folder: Path) -> None:
    folder = Path(folder)
    (folder / "schedule.bin").write_bytes(encode_program(prog.instrs))
    (folder / "weights.bin").write_bytes(prog.image.astype("<u2").tobytes())
    (folder / "program.json").write_text(json.dumps(prog.to_json(), indent=1))


def load_program(folder: str | Path) -> Program:
    """Read a compiled folder; every problem is a :class:`ConvcError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConvcError(f"{folder}: no such folder (expected the output of 'convc compile')")
    files = {name: folder / name for name in ("program.json", "schedule.bin", "weights.bin")}
    for name, path in files.items():
        if not path.is_file():
            raise ConvcError(f"{folder}: missing {name}; is this a 'convc compile' output folder?")
    try:
        meta = json.loads(files["program.json"].read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConvcError(f"{files['program.json']}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != "convc-program":
        raise ConvcError(f"{files['program.json']}: not a convc program description")
    if meta.get("version", 0) > PROGRAM_VERSION:
        raise ConvcError(f"{files['program.json']}: version {meta.get('version')} is newer than this "
                         f"convc reads ({PROGRAM_VERSION})")
    try:
        instrs = decode_program(files["schedule.bin"].read_bytes())
        raw = files["weights.bin"].read_bytes()
        if len(raw) % 2:
            raise ValueError("weights.bin has an odd number of bytes")
        image = np.frombuffer(raw, dtype="<u2").astype(np.int64)
        if image.size != meta["image_words"]:
            raise ValueError(f"weights.bin holds {image.size} words, program.json says {meta['image_words']}")
        prog = Program(
            hw=HardwareConfig.from_json(meta["hw"]), instrs=instrs, names=list(meta["names"]), image=image,
            memory_words=int(meta["memory_words"]), table_addr=int(meta["table_addr"]),
            n_tables=int(meta["n_tables"]), input=Region.from_json(meta["input"]),
            output=Region.from_json(meta["output"]), layers=[Region.from_json(r) for r in meta["layers"]],
            input_mean=list(meta.get("input_mean", [])), input_std=list(meta.get("input_std", [])),
            meta=dict(meta.get("meta", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConvcError(f"{folder}: inconsistent compiled program ({exc})") from None
    if len(prog.names) != len(prog.instrs):
        raise ConvcError(f"{folder}: {len(prog.instrs)} records but {len(prog.names)} names")
    return prog


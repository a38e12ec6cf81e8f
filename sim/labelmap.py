r"""Label maps as pictures, for the HTML reports of ``convc verify`` and ``convc compare``.

A scene parser's output is per-pixel class scores ``(C, h, w)``; the arg-max over the
classes is a label map ``(h, w)``.  This module draws label maps and input frames as RGB
pictures, encodes them as PNG with the standard library alone
(:func:`convc.reference.imagefiles.png_bytes`: zlib and struct, no imaging library) and embeds them
in HTML as ``data:image/png;base64`` images that the browser upscales with
``image-rendering: pixelated``: every panel of a row is shown in a box the input
frame's shape, :data:`DISPLAY_WIDTH` pixels wide.  A label
map sits in that box where its pixels lie on the input (:meth:`Network.output_grid
<convc.reference.network.Network.output_grid>`: valid convolutions leave a margin), so
the input, the ground truth and the predictions line up.

Colours (:func:`palette`): classes 0 to 7 take the scene dataset's colours
(:func:`convc.reference.scenes.scene_palette`: sky, tree, road, grass, water, building,
mountain, object, the Stanford Background classes); a network with more classes gets, for
class ``k >= 8``, the hue ``k`` times the golden angle (137.5 degrees) around the colour
wheel, saturation 0.65, value 0.95 or 0.7 alternately.  The ignore label
(:data:`~convc.reference.layers.IGNORE_LABEL`, -1) is light grey, :data:`IGNORE_COLOUR`,
which no class has (road is a darker grey).  Class names are the scene classes when the
model was trained on ``scenes``, else ``class k``.

The report section is stored in ``report.json`` under ``label_maps`` (built by
:func:`collect`: :func:`model_maps` for a model's output, :func:`verify_maps` for
``convc verify``) and drawn by
:func:`section_html`, so a saved report renders again without the model::

    {"classes": [name, ...], "palette": [[r, g, b], ...],
     "columns": [[key, title], ...],        # the map panels after the input, in order
     "grid": [offset, stride] or null,      # output pixel i is centred on input offset + stride i
     "images_total": N,
     "images": [{"index": i, "frame": base64 PNG, "frame_size": [H, W],
                 "maps": {key: [[label, ...], ...] or null, ...}}, ...]}

A map under a key that is no column (``golden`` in ``convc verify``) is only compared
with: each prediction's caption gives its pixel agreement with the float reference (and
with the golden model when it is there), and its pixel accuracy against the ground truth
(pixels labelled -1 left out).
"""

from __future__ import annotations

import colorsys
import html

import numpy as np

from convc.errors import ConvcError
from convc.inputs import dataset_of
from convc.reference.datasets import DATASETS, load_dataset
from convc.reference.imagefiles import png_base64
from convc.reference.layers import IGNORE_LABEL
from convc.reference.modelfile import load_model
from convc.reference.scenes import SCENE_CLASSES, scene_palette


__all__ = ["MAX_IMAGES", "DISPLAY_WIDTH", "IGNORE_COLOUR", "CSS", "palette", "class_names", "label_rgb",
           "frame_rgb", "img_tag", "legend_html", "has_maps", "top_labels", "dataset_truth",
           "collect", "model_maps", "verify_maps", "section_html"]

MAX_IMAGES = 4              # images drawn in a report
DISPLAY_WIDTH = 240         # CSS pixels of every panel's width
IGNORE_COLOUR = (215, 215, 215)

#: The section's style (the report pages include it).
CSS = """
.lm-row{display:flex;gap:10px;margin:10px 0 18px 0;align-items:flex-start}
.lm{margin:0;width:%dpx} .lm figcaption{font-size:12px;line-height:1.35;margin-top:3px}
.lm-box{position:relative;overflow:hidden;background:#f4f4f4;outline:1px solid #ccc}
.lm-box img{position:absolute;image-rendering:pixelated;image-rendering:crisp-edges}
.lm-box .lm-none{position:absolute;inset:0;display:flex;align-items:center;justify-content:center;color:#888;font-size:12px}
.lm-legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;margin:6px 0}
.lm-swatch{display:inline-block;width:13px;height:13px;vertical-align:-2px;margin-right:4px;outline:1px solid #999}
""" % DISPLAY_WIDTH


# ----------------------------------------------------------------------------
# colours and pictures
# ----------------------------------------------------------------------------
def palette(classes: int) -> np.ndarray:
    """One RGB colour per class.

    Parameters
    ----------
    classes : int
        Number of classes, ``>= 0``.

    Returns
    -------
    ndarray
        uint8 ``(classes, 3)``: the scene dataset's colours for classes 0 to 7, then
        golden-angle hues (see the module's notes); all distinct, none the ignore grey.
    """
    base = scene_palette()
    extra = []
    for k in range(len(base), classes):
        r, g, b = colorsys.hsv_to_rgb((k * 0.381966) % 1.0, 0.65, 0.95 if k % 2 == 0 else 0.7)
        extra.append([round(255 * r), round(255 * g), round(255 * b)])
    out = np.concatenate([base, np.asarray(extra, dtype=np.uint8).reshape(-1, 3)])
    return out[:max(int(classes), 0)]


def class_names(classes: int, dataset: str | None = None) -> list[str]:
    """Names of ``classes`` classes: the scene classes (:data:`~convc.reference.scenes.SCENE_CLASSES`)
    for a model trained on ``scenes``, else (and beyond them) ``class k``.

    Parameters
    ----------
    classes : int
    dataset : str or None
        The dataset the model records (``meta.dataset``).

    Returns
    -------
    list of str
    """
    known = SCENE_CLASSES if dataset == "scenes" else ()
    return [known[k] if k < len(known) else f"class {k}" for k in range(int(classes))]


def label_rgb(labels: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Draw a label map in colour.

    Parameters
    ----------
    labels : ndarray
        Integer ``(h, w)`` labels in ``0 .. len(colours) - 1``, or :data:`IGNORE_LABEL` (-1).
    colours : ndarray
        uint8 ``(classes, 3)``, from :func:`palette`.

    Returns
    -------
    ndarray
        uint8 ``(h, w, 3)``; ignored pixels :data:`IGNORE_COLOUR`.

    Raises
    ------
    ValueError
        Not two-dimensional, or a label outside the palette that is not the ignore label.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2 or lab.dtype.kind not in "iu":
        raise ValueError(f"label_rgb: need an integer (h, w) label map, got {lab.dtype} {lab.shape}")
    lab = lab.astype(np.int64)
    colours = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    bad = (lab != IGNORE_LABEL) & ((lab < 0) | (lab >= len(colours)))
    if bad.any():
        raise ValueError(f"label_rgb: label {int(lab[bad][0])} outside 0..{len(colours) - 1} "
                         f"(and {IGNORE_LABEL}, ignored)")
    table = np.concatenate([colours, np.asarray([IGNORE_COLOUR], dtype=np.uint8)])
    return table[np.where(lab == IGNORE_LABEL, len(colours), lab)]


def frame_rgb(frame: np.ndarray) -> np.ndarray:
    """An input frame as an RGB picture.

    Parameters
    ----------
    frame : ndarray
        Raw input ``(C, H, W)``: three (or more) channels are drawn as RGB (the first
        three), one or two as grey (the first).  uint8 values are kept; floats in
        [0, 1] are scaled by 255, other floats stretched from their minimum to their
        maximum (a constant frame is mid grey); values that are not finite are 0.

    Returns
    -------
    ndarray
        uint8 ``(H, W, 3)``.
    """
    a = np.asarray(frame)
    if a.ndim != 3 or a.shape[0] < 1:
        raise ValueError(f"frame_rgb: need a (C, H, W) frame, got shape {a.shape}")
    a = a[:3] if a.shape[0] >= 3 else a[:1].repeat(3, axis=0)
    if a.dtype != np.uint8:
        f = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(f.min()), float(f.max())
        if lo >= 0.0 and hi <= 1.0:
            f = f * 255.0
        elif hi > lo:
            f = (f - lo) * (255.0 / (hi - lo))
        else:
            f = np.full_like(f, 128.0)
        a = np.clip(np.round(f), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a.transpose(1, 2, 0))


def img_tag(png_b64: str, *, left: float, top: float, width: float, height: float, alt: str) -> str:
    """An ``<img>`` of a base64 PNG, placed and sized in CSS pixels inside a panel box
    (upscaled pixelated by the page's :data:`CSS`).

    Parameters
    ----------
    png_b64 : str
        The PNG file, base64 (as :func:`collect` stores it).
    left, top, width, height : float
        Where it goes in its box, CSS pixels.
    alt : str
        Text for readers without images.

    Returns
    -------
    str
        HTML.
    """
    return (f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png_b64}" '
            f'style="left:{left:.1f}px;top:{top:.1f}px;width:{width:.1f}px;height:{height:.1f}px">')


def legend_html(names, colours, ignore: bool = False) -> str:
    """A colour swatch and the name of each class (and of the ignore label, when
    ``ignore``), as one HTML line.

    Parameters
    ----------
    names : sequence of str
    colours : array-like
        ``(len(names), 3)`` RGB.
    ignore : bool
        Also show the ignore label's grey.

    Returns
    -------
    str
        HTML.
    """
    items = [(str(n), tuple(int(v) for v in c)) for n, c in zip(names, np.asarray(colours).reshape(-1, 3))]
    if ignore:
        items.append((f"ignored ({IGNORE_LABEL})", IGNORE_COLOUR))
    return '<div class="lm-legend">' + "".join(
        f'<span><span class="lm-swatch" style="background:rgb({r},{g},{b})"></span>{html.escape(n)}</span>'
        for n, (r, g, b) in items) + "</div>"


# ----------------------------------------------------------------------------
# gathering the maps
# ----------------------------------------------------------------------------
def has_maps(shape) -> bool:
    """Whether an output is per-pixel class scores (a scene parser).

    Parameters
    ----------
    shape : sequence of int
        The output's ``(C, h, w)``.

    Returns
    -------
    bool
        True for more than one pixel; False for one vector (a classifier such as LeNet,
        ``(10, 1, 1)``).
    """
    shape = tuple(int(s) for s in shape)
    return len(shape) == 3 and shape[1] * shape[2] > 1


def top_labels(scores: np.ndarray, shape) -> np.ndarray:
    """Label maps from class scores: the arg-max over the classes.

    Parameters
    ----------
    scores : ndarray
        ``(n, C*h*w)`` (or ``(n, C, h, w)``) scores, real values or signed codes.
    shape : sequence of int
        ``(C, h, w)``.

    Returns
    -------
    ndarray
        int64 ``(n, h, w)``; ties go to the lowest class (as ``np.argmax``).
    """
    scores = np.asarray(scores)
    return np.argmax(scores.reshape((len(scores),) + tuple(shape)), axis=1).astype(np.int64)


def dataset_truth(net, count: int) -> np.ndarray | None:
    """The per-pixel labels of the first ``count`` test images of the model's dataset.

    These are the images ``convc verify`` and ``convc compare`` take when given none
    (:func:`convc.inputs.model_inputs`, which keeps labels only when they are one an
    image).

    Parameters
    ----------
    net : Network
    count : int

    Returns
    -------
    ndarray or None
        int64 ``(n, H, W)`` at the input's resolution (``n <= count``), or None: the
        output has no maps, the model records no dataset convc knows, or its labels
        are one an image.
    """
    if not has_maps(net.output_shape):
        return None
    name, folder, seed, _ = dataset_of(net)
    if name not in DATASETS:
        return None
    try:
        ds = load_dataset(name, net.input.shape, net.classes, data_dir=folder, seed=seed)
    except ConvcError:
        return None
    return ds.test_y[:count] if ds.dense else None


def collect(frames: np.ndarray, maps: dict, *, columns, classes: int, dataset: str | None = None,
            grid=None, images_total: int | None = None) -> dict:
    """The ``label_maps`` entry of a report (the schema is in the module's notes).

    Parameters
    ----------
    frames : ndarray
        Raw inputs ``(n, C, H, W)`` of the images to draw.
    maps : dict
        Key to ``(m, h, w)`` integer label maps of the first ``m <= n`` images (fewer:
        the RTL finished fewer; a missing image's panel says so), or None (not known).
    columns : sequence of (key, title)
        The map panels after the input, in order.
    classes : int
    dataset : str or None
        The model's dataset, for the class names.
    grid : (float, float) or None
        ``(offset, stride)`` of the output's pixels on the input; None stretches the
        maps over the frame.
    images_total : int or None
        Images in the run (default ``n``).

    Returns
    -------
    dict
        JSON-serializable.
    """
    frames = np.asarray(frames)
    images = []
    for i, frame in enumerate(frames):
        rgb = frame_rgb(frame)
        images.append({"index": i, "frame": png_base64(rgb), "frame_size": list(rgb.shape[:2]),
                       "maps": {k: (np.asarray(v[i]).astype(int).tolist() if v is not None and i < len(v) else None)
                                for k, v in maps.items()}})
    return {"classes": class_names(classes, dataset), "palette": palette(classes).tolist(),
            "columns": [[str(k), str(t)] for k, t in columns],
            "grid": None if grid is None else [float(grid[0]), float(grid[1])],
            "images_total": len(frames) if images_total is None else int(images_total), "images": images}


def model_maps(net, frames: np.ndarray, maps: dict, *, columns, truth: np.ndarray | None = None,
               images_total: int | None = None) -> dict:
    """:func:`collect` for a model's output: its class names, its output grid, and the
    ground truth sampled at its output's pixels (:meth:`Network.label_grid
    <convc.reference.network.Network.label_grid>`) as the first panel when known.

    Parameters
    ----------
    net : Network
    frames : ndarray
        Raw inputs ``(n, C, H, W)``.
    maps : dict
        Key to ``(m, h, w)`` label maps (or None), as :func:`collect`.
    columns : sequence of (key, title)
        The prediction panels, in order.
    truth : ndarray or None
        Per-pixel labels ``(>= n, H, W)`` of the inputs, at the input's resolution.
    images_total : int or None

    Returns
    -------
    dict
    """
    maps, columns = dict(maps), list(columns)
    if truth is not None:
        maps["truth"] = net.label_grid(np.asarray(truth)[:len(frames)])
        columns.insert(0, ("truth", "ground truth"))
    try:
        dataset = dataset_of(net)[0]
    except ConvcError:
        dataset = None
    try:
        grid = net.output_grid()
    except ValueError:
        grid = None
    return collect(frames, maps, columns=columns, classes=net.output_shape[0], dataset=dataset, grid=grid,
                   images_total=images_total)


def verify_maps(prep, rtl_codes: np.ndarray, *, test_split: bool, limit: int = MAX_IMAGES) -> dict | None:
    """The ``label_maps`` entry of ``convc verify``'s report: input, ground truth (when
    known), float reference and RTL for the first ``limit`` images (the golden model's
    maps kept to compare with).

    Parameters
    ----------
    prep : Prepared
        :func:`convc.sim.verify.prepare`'s result.
    rtl_codes : ndarray
        The RTL's output layer, signed codes ``(n, words)`` of the images it finished.
    test_split : bool
        The images are the model's test split (then the ground truth comes from its
        dataset, when that labels pixels).
    limit : int

    Returns
    -------
    dict or None
        None for an output without maps (a classifier).
    """
    out = prep.program.layers[-1]
    if not has_maps(out.shape):
        return None
    n = min(int(limit), prep.images)
    net = load_model(prep.model)
    float_out = prep.float_layers[-1]
    maps = {"float": None if float_out is None else top_labels(float_out[:n], out.shape),
            "rtl": top_labels(np.asarray(rtl_codes)[:n], out.shape),
            "golden": top_labels(prep.golden_layers[-1][:n], out.shape)}
    return model_maps(net, prep.x[:n], maps, columns=[("float", "float reference"), ("rtl", "RTL")],
                      truth=dataset_truth(net, n) if test_split else None, images_total=prep.images)


# ----------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------
_REFERENCES = (("float", "the float reference"), ("golden", "the golden model"))


def _agree(a, b) -> float:
    return float(np.mean(a == b)) if a.shape == b.shape and a.size else float("nan")


def _caption(key: str, maps: dict, truth: np.ndarray | None) -> list[str]:
    """A prediction's lines: its pixel agreement with the float reference and the golden
    model (those it is not), and its pixel accuracy against the ground truth."""
    lab = maps[key]
    lines = []
    for ref, name in _REFERENCES:
        if ref != key and maps.get(ref) is not None:
            lines.append(f"{'agrees with' if not lines else 'with'} {name} on "
                         f"{100 * _agree(lab, np.asarray(maps[ref])):.1f}%{'' if lines else ' of pixels'}")
    if truth is not None and truth.shape == lab.shape:
        known = truth != IGNORE_LABEL
        if known.any():
            lines.append(f"pixel accuracy {100 * float(np.mean(lab[known] == truth[known])):.1f}%")
    return lines


def section_html(data: dict) -> str:
    """The report section for a ``label_maps`` entry: a legend, then a row an image.

    Parameters
    ----------
    data : dict
        From :func:`collect` (or read back from ``report.json``).

    Returns
    -------
    str
        HTML: a heading, a legend and one row of panels an image; each panel one
        ``<img>``, or a note where that map is not known.
    """
    e = html.escape
    names, colours = data.get("classes") or [], np.asarray(data.get("palette") or [], dtype=np.uint8)
    columns = [tuple(c) for c in data.get("columns") or []]
    grid = data.get("grid")
    imgs = data.get("images") or []
    titles = " and ".join([", ".join(t for _, t in columns[:-1]), columns[-1][1]] if len(columns) > 1
                          else [t for _, t in columns])
    parts = ["<h2>Label maps</h2>",
             f"<p>The first {len(imgs)} of {data.get('images_total', len(imgs))} images: the input frame, "
             f"then the label maps of the {e(titles)} (the class of each output pixel; for a prediction, "
             f"the arg-max of its scores), upscaled and placed where the output's pixels lie on the input"
             + ("" if grid is None else f" (pixel centres {grid[0]:g} + {grid[1]:g}&thinsp;i input pixels; "
                                        f"the margin the output does not cover is blank)")
             + ". Under each prediction: the share of pixels on which it agrees with the others and its "
               "pixel accuracy against the ground truth (ignored pixels left out).</p>"]
    ignore = any(-1 in row for im in imgs for lab in (im.get("maps") or {}).values() if lab for row in lab)
    parts.append(legend_html(names, colours, ignore=ignore))
    for im in imgs:
        fh, fw = im.get("frame_size") or [1, 1]
        scale = DISPLAY_WIDTH / max(fw, 1)
        box_h = fh * scale
        box = f'<div class="lm-box" style="width:{DISPLAY_WIDTH}px;height:{box_h:.0f}px">'
        maps = {k: (None if v is None else np.asarray(v, dtype=np.int64)) for k, v in (im.get("maps") or {}).items()}
        truth = maps.get("truth")
        row = [f'<figure class="lm">{box}'
               + img_tag(im["frame"], left=0, top=0, width=DISPLAY_WIDTH, height=box_h,
                         alt=f"image {im.get('index')}: input")
               + f'</div><figcaption>image {im.get("index")}: input {fw}&times;{fh}</figcaption></figure>']
        for key, title in columns:
            lab = maps.get(key)
            if lab is None or lab.ndim != 2 or lab.size == 0:
                why = "no ground truth" if key == "truth" else f"no {title} output"
                row.append(f'<figure class="lm">{box}<div class="lm-none">{e(why)}</div></div>'
                           f'<figcaption>{e(title)}</figcaption></figure>')
                continue
            h, w = lab.shape
            if grid is None:
                left, top, width, height = 0.0, 0.0, float(DISPLAY_WIDTH), box_h
            else:
                off, stride = grid
                left, top = (off - stride / 2) * scale, (off - stride / 2) * scale
                width, height = w * stride * scale, h * stride * scale
            tag = img_tag(png_base64(label_rgb(lab, colours)), left=left, top=top, width=width, height=height,
                          alt=f"image {im.get('index')}: {title}")
            cap = [] if key == "truth" else _caption(key, maps, truth)
            row.append(f'<figure class="lm">{box}{tag}</div><figcaption><b>{e(title)}</b>'
                       + "".join(f"<br>{e(line)}" for line in cap) + "</figcaption></figure>")
        parts.append('<div class="lm-row">' + "".join(row) + "</div>")
    return "\n".join(parts)

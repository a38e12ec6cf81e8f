"""Procedural labelled outdoor scenes, for training scene parsers offline.

:func:`make_scenes` draws ``N`` RGB images ``(3, H, W)`` in [0, 1] with an
integer label per pixel.  The classes and their numbers are those of the
Stanford Background dataset (Gould et al. 2009), the seed's benchmark, so a
network trained here labels the same way as one trained there:

====  ==========  =====================================================
 id   class       how it is drawn
====  ==========  =====================================================
 0    sky         top of the frame down to the horizon; a vertical
                  gradient from deep to pale blue (a quarter of the
                  scenes: overcast grey), soft white clouds, faint noise
 1    tree        trunk (brown bar) and canopy (a union of 2-4 discs with
                  a noisy edge), dark green with a blotchy leaf texture
                  of small light and dark patches
 2    road        a trapezoid from the bottom edge to a vanishing point
                  on the horizon; grey asphalt with fine grain, white edge
                  lines and a dashed centre line whose dashes shorten with
                  distance
 3    grass       the ground below the horizon; green to dry yellow-brown,
                  with vertical blade streaks and fine noise, lighter
                  toward the viewer
 4    water       (some scenes) a lake beside the road: an ellipse below
                  the horizon that mirrors the sky's colour (darker), with
                  horizontal ripples
 5    building    (0-3 per scene) rectangles standing on the horizon,
                  brick, beige or concrete, with a grid of windows (dark or
                  lit)
 6    mountain    (some scenes) a jagged ridge of 1-3 peaks behind
                  everything else, hazy grey-blue with smooth shading
 7    object      (some scenes) a car on the road: a coloured body, a
                  dark window band and two black wheels
====  ==========  =====================================================

Colour alone does not decide the class everywhere (water has the sky's
colour, an overcast sky the road's grey, trees and grass are both green, and
every image gets its own exposure and white balance): texture, position and
context matter, as in real scenes.

Regions are painted back to front (sky, mountains, buildings, grass, water,
road, trees, car) and each paint sets the colour and the label of the pixels
it covers, so the label map is exactly what is visible.  Every image has a
horizon, sky and grass; the others are drawn at random.

Deterministic by seed: image ``i`` is drawn from its own generator,
``SeedSequence(seed).spawn(n)[i]``, so the first ``k`` images of
``make_scenes(n, ...)`` are those of ``make_scenes(k, ...)``.  Geometry is
in fractions of the frame, so any size from 8x8 up works; texture cells are
in pixels scaled by ``height / 64``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SCENE_CLASSES", "make_scenes", "scene_palette"]

#: Class names, in label order (Stanford Background's classes; "object" is its
#: "foreground object").
SCENE_CLASSES = ("sky", "tree", "road", "grass", "water", "building", "mountain", "object")

SKY, TREE, ROAD, GRASS, WATER, BUILDING, MOUNTAIN, OBJECT = range(8)

MAX_SCENE_BYTES = 1 << 30      # the images, float32


def scene_palette() -> np.ndarray:
    """``(8, 3)`` uint8 colours to draw label maps, one per class (for reports)."""
    return np.array([[110, 160, 240], [20, 110, 30], [128, 128, 128], [120, 200, 80],
                     [40, 80, 200], [170, 60, 50], [120, 100, 90], [240, 200, 30]], dtype=np.uint8)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float,
                  cell_x: float | None = None) -> np.ndarray:
    """Value noise in [0, 1): a random grid every ``cell`` rows and ``cell_x`` (default
    ``cell``) columns, bilinearly interpolated."""
    cell = max(float(cell), 1.0)
    cell_x = cell if cell_x is None else max(float(cell_x), 1.0)
    gh, gw = int(math.ceil(h / cell)) + 2, int(math.ceil(w / cell_x)) + 2
    grid = rng.random((gh, gw))
    y = np.arange(h) / cell + rng.random()
    x = np.arange(w) / cell_x + rng.random()
    y0, x0 = y.astype(np.intp), x.astype(np.intp)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    a = grid[y0][:, x0]
    b = grid[y0][:, x0 + 1]
    c = grid[y0 + 1][:, x0]
    d = grid[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _paint(img: np.ndarray, lab: np.ndarray, mask: np.ndarray, rgb, label: int) -> None:
    """Set the pixels of ``mask`` to colour ``rgb`` (``(3,)`` or ``(3, H, W)``) and ``label``."""
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim == 1:
        img[:, mask] = rgb[:, None]
    else:
        img[:, mask] = rgb[:, mask]
    lab[mask] = label


def _scene(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    img = np.zeros((3, h, w))
    lab = np.zeros((h, w), dtype=np.int64)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5      # pixel centres
    px = h / 64.0                                                 # texture scale
    hz = h * rng.uniform(0.38, 0.55)                              # horizon row (float)
    above, below = yy < hz, yy >= hz

    # -- sky: gradient, clouds, faint noise -----------------------------------------
    t = np.clip(yy / hz, 0, 1)[None]
    top = np.array([0.12, 0.3, 0.75]) + rng.uniform(-0.05, 0.05, 3)
    low = np.array([0.62, 0.78, 0.95]) + rng.uniform(-0.04, 0.04, 3)
    if rng.random() < 0.25:                                       # overcast: grey, like asphalt or concrete
        grey_sky = rng.uniform(0.5, 0.75)
        top = np.array([grey_sky - 0.08, grey_sky - 0.05, grey_sky])
        low = top + 0.12
    sky = top[:, None, None] * (1 - t) + low[:, None, None] * t
    clouds = np.clip((_smooth_noise(rng, h, w, 6 * px, 20 * px) - rng.uniform(0.55, 0.8)) * 3, 0, 1)
    sky = sky * (1 - clouds) + 0.95 * clouds
    sky += 0.01 * rng.standard_normal((1, h, w))
    _paint(img, lab, np.ones((h, w), bool), sky, SKY)

    # -- mountains: a ridge of 1-3 peaks ----------------------------------------------
    if rng.random() < 0.5:
        ridge = np.full(w, hz)
        for _ in range(rng.integers(1, 4)):
            cx, peak, slope = w * rng.uniform(0, 1), h * rng.uniform(0.12, 0.3), rng.uniform(0.5, 1.2)
            ridge = np.minimum(ridge, hz - peak + slope * np.abs(np.arange(w) + 0.5 - cx) * (h / w))
        ridge += 1.5 * px * (_smooth_noise(rng, 1, w, 3 * px)[0] - 0.5)
        mask = above & (yy >= ridge[None, :])
        shade = 0.75 + 0.25 * _smooth_noise(rng, h, w, 10 * px)
        base = np.array([0.42, 0.44, 0.52]) + rng.uniform(-0.05, 0.05, 3)
        haze = np.clip((yy - ridge[None, :]) / max(hz * 0.5, 1), 0, 1)
        col = base[:, None, None] * shade[None] * (1 - 0.3 * haze[None]) + 0.3 * 0.7 * haze[None]
        _paint(img, lab, mask, col, MOUNTAIN)

    # -- buildings: rectangles on the horizon, with windows -----------------------------
    for _ in range(rng.choice(4, p=[0.3, 0.3, 0.25, 0.15])):
        bw = w * rng.uniform(0.1, 0.3)
        x0 = rng.uniform(-0.05, 1.0) * w - bw / 2
        bottom = hz + h * rng.uniform(0.0, 0.04)
        top_row = max(bottom - h * rng.uniform(0.15, 0.42), 1.0)
        mask = (xx >= x0) & (xx < x0 + bw) & (yy >= top_row) & (yy < bottom)
        if not mask.any():
            continue
        wall = [np.array([0.6, 0.28, 0.2]), np.array([0.8, 0.74, 0.6]), np.array([0.55, 0.55, 0.57])][
            rng.integers(3)] + rng.uniform(-0.05, 0.05, 3)
        col = wall[:, None, None] * (0.92 + 0.08 * rng.random((1, h, w)))
        period = max(rng.uniform(4, 6) * px, 3.0)
        wy = (yy - top_row - period / 2) % period
        wx = (xx - x0 - period / 2) % period
        window = (wy < period * 0.5) & (wx < period * 0.5) & (yy < bottom - period * 0.5)
        cell = np.floor((yy - top_row) / period) * 31 + np.floor((xx - x0) / period)
        lit = (np.sin(cell * 12.9898 + rng.uniform(0, 100)) * 43758.5453) % 1 < 0.3
        glass = np.where(lit, 0.85, 0.15)[None] * np.array([1.0, 0.9, 0.5])[:, None, None]
        col = np.where(window[None], glass, col)
        _paint(img, lab, mask, col, BUILDING)

    # -- grass: blade streaks, fine noise, lighter toward the viewer -------------------
    dry = rng.uniform(0.0, 0.6)                                   # green to dry, yellow-brown grass
    green = (1 - dry) * np.array([0.3, 0.55, 0.18]) + dry * np.array([0.55, 0.5, 0.28]) \
        + rng.uniform(-0.05, 0.05, 3)
    depth = np.clip((yy - hz) / max(h - hz, 1), 0, 1)
    blades = _smooth_noise(rng, h, w, 3 * px, 1.0)
    tex = 0.75 + 0.25 * depth + 0.3 * (blades - 0.5) + 0.1 * rng.standard_normal((h, w))
    _paint(img, lab, below, green[:, None, None] * tex[None], GRASS)

    # -- water: a lake beside the road ---------------------------------------------------
    if rng.random() < 0.35:
        cx = w * rng.choice([rng.uniform(0.0, 0.25), rng.uniform(0.75, 1.0)])
        cy = hz + (h - hz) * rng.uniform(0.15, 0.45)
        rx, ry = w * rng.uniform(0.15, 0.3), (h - hz) * rng.uniform(0.1, 0.25)
        mask = below & (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1)
        ripple = np.sin(yy * (2.2 / px) + 3 * _smooth_noise(rng, h, w, 6 * px))
        # it mirrors the sky at the horizon, darker: its colour alone says sky
        tint = 0.75 * low + 0.25 * np.array([0.2, 0.35, 0.55])
        col = tint[:, None, None] * (0.85 + 0.15 * ripple[None])
        _paint(img, lab, mask, col, WATER)

    # -- road: trapezoid to a vanishing point, lane marks ---------------------------------
    road = None
    if rng.random() < 0.85:
        vx, bx = w * rng.uniform(0.35, 0.65), w * rng.uniform(0.35, 0.65)
        half_bottom = w * rng.uniform(0.22, 0.42)
        s = np.clip((yy - hz) / max(h - hz, 1), 0, None)            # 0 at the horizon, 1 at the bottom
        centre = vx + (bx - vx) * s
        half = half_bottom * s
        off = np.abs(xx - centre)
        road = below & (off <= half)
        grey = rng.uniform(0.35, 0.5)
        col = np.full((3, h, w), grey) + 0.035 * rng.standard_normal((1, h, w))
        edge = (off >= half * 0.86) & (off <= half * 0.93)
        dash = ((1.0 / np.maximum(s, 1e-3)) * 1.5 % 1.0) < 0.5
        middle = (off <= np.maximum(half * 0.04, 0.45)) & dash & (s > 0.12)
        col = np.where((edge | middle)[None] & (s > 0.05)[None], 0.9, col)
        _paint(img, lab, road, col, ROAD)

    # -- trees: trunk and noisy canopy ---------------------------------------------------
    for _ in range(rng.integers(0, 5)):
        tx = w * rng.uniform(0, 1)
        base = hz + (h - hz) * rng.uniform(0.0, 0.3)
        r = h * rng.uniform(0.06, 0.13)
        trunk_h = h * rng.uniform(0.05, 0.12)
        tw = max(w * rng.uniform(0.012, 0.03), 0.6)
        trunk = (np.abs(xx - tx) <= tw) & (yy <= base) & (yy >= base - trunk_h - r)
        _paint(img, lab, trunk, np.array([0.35, 0.22, 0.1]) + rng.uniform(-0.03, 0.03, 3), TREE)
        edge = _smooth_noise(rng, h, w, 2.5 * px) - 0.5
        canopy = np.zeros((h, w), bool)
        cy = base - trunk_h - r * 0.7
        for _ in range(rng.integers(2, 5)):
            ox, oy = rng.uniform(-0.7, 0.7) * r, rng.uniform(-0.6, 0.3) * r
            rr = r * rng.uniform(0.6, 1.0)
            canopy |= np.hypot(xx - tx - ox, yy - cy - oy) / rr + 0.35 * edge < 1
        leaves = _smooth_noise(rng, h, w, 1.5 * px)
        tex = 0.55 + 0.9 * leaves + 0.12 * rng.standard_normal((h, w))
        leaf = (np.array([0.1, 0.33, 0.1]) + rng.uniform(-0.03, 0.03, 3)) * rng.uniform(0.8, 1.5)
        _paint(img, lab, canopy, leaf[:, None, None] * tex[None], TREE)

    # -- a car on the road ---------------------------------------------------------------
    if road is not None and rng.random() < 0.45:
        s_car = rng.uniform(0.35, 0.85)
        row = hz + s_car * (h - hz)
        rows = np.flatnonzero(road[int(min(row, h - 1))])
        if rows.size:
            width = max((rows[-1] - rows[0] + 1) * rng.uniform(0.3, 0.45), 2.0)
            cx = rng.uniform(rows[0] + width / 2, max(rows[-1] + 1 - width / 2, rows[0] + width / 2))
            height = width * rng.uniform(0.45, 0.6)
            body = (np.abs(xx - cx) <= width / 2) & (yy <= row) & (yy >= row - height)
            paint = np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.8], [0.9, 0.8, 0.1], [0.95, 0.95, 0.95]])[
                rng.integers(4)]
            col = np.broadcast_to(paint[:, None, None], (3, h, w)).copy()
            glass = (yy < row - height * 0.55) & (np.abs(xx - cx) <= width * 0.38)
            col[:, glass] = 0.12
            wheel = (yy >= row - height * 0.25) & (np.abs(np.abs(xx - cx) - width * 0.3) <= width * 0.1)
            col[:, wheel] = 0.03
            _paint(img, lab, body, col, OBJECT)

    img *= rng.uniform(0.85, 1.1) * rng.uniform(0.9, 1.1, (3, 1, 1))     # exposure, white balance
    np.clip(img, 0.0, 1.0, out=img)
    return img, lab


def make_scenes(n: int, height: int = 64, width: int = 64,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``n`` procedural scenes and their label maps.

    Parameters
    ----------
    n : int
        Number of images, ``>= 0``.
    height, width : int
        Frame size, each ``>= 8``.
    seed : int
        Any non-negative integer; the same seed gives the same images.

    Returns
    -------
    images : ndarray float32 ``(n, 3, height, width)`` in [0, 1]
    labels : ndarray int64 ``(n, height, width)`` in ``0 .. 7``
    class_names : tuple of str, :data:`SCENE_CLASSES`
    """
    for name, value, low in (("n", n, 0), ("height", height, 8), ("width", width, 8), ("seed", seed, 0)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"make_scenes: {name} must be an integer >= {low}, got {value!r}")
    n, height, width, seed = int(n), int(height), int(width), int(seed)
    if n * 3 * height * width * 4 > MAX_SCENE_BYTES:
        raise ValueError(f"make_scenes: {n} images of {height}x{width} need more than "
                         f"{MAX_SCENE_BYTES >> 30} GiB")
    images = np.empty((n, 3, height, width), dtype=np.float32)
    labels = np.empty((n, height, width), dtype=np.int64)
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(n)):
        images[i], labels[i] = _scene(np.random.default_rng(child), height, width)
    return images, labels, SCENE_CLASSES

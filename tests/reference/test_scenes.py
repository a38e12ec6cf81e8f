"""The procedural scene dataset: shapes, determinism, geometry and class statistics."""

from __future__ import annotations

import time

import numpy as np
import pytest

from convc.reference.scenes import SCENE_CLASSES, make_scenes, scene_palette

SKY, TREE, ROAD, GRASS, WATER, BUILDING, MOUNTAIN, OBJECT = range(8)


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(200, 64, 64, seed=3)


def test_shapes_and_ranges(scenes):
    x, y, names = scenes
    assert x.shape == (200, 3, 64, 64) and x.dtype == np.float32
    assert y.shape == (200, 64, 64) and y.dtype == np.int64
    assert names == SCENE_CLASSES == ("sky", "tree", "road", "grass", "water", "building", "mountain", "object")
    assert x.min() >= 0 and x.max() <= 1 and np.isfinite(x).all()
    assert y.min() >= 0 and y.max() <= 7
    # every class occurs; every image has sky and grass
    assert set(np.unique(y)) == set(range(8))
    for img in y:
        assert (img == SKY).any() and (img == GRASS).any()
    # the optional regions occur in some images, not all
    for cls in (ROAD, WATER, BUILDING, MOUNTAIN, OBJECT):
        frac = np.mean([(img == cls).any() for img in y])
        assert 0.05 < frac < 1.0, (SCENE_CLASSES[cls], frac)


def test_deterministic_by_seed():
    a = make_scenes(6, 32, 40, seed=11)
    b = make_scenes(6, 32, 40, seed=11)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    # image i does not depend on how many are drawn
    c = make_scenes(3, 32, 40, seed=11)
    np.testing.assert_array_equal(c[0], a[0][:3])
    np.testing.assert_array_equal(c[1], a[1][:3])
    d = make_scenes(6, 32, 40, seed=12)
    assert not np.array_equal(d[1], a[1])
    # images differ from one another
    assert len({img.tobytes() for img in a[1]}) == 6


def test_geometry(scenes):
    _, y, _ = scenes
    h = y.shape[1]
    # the horizon is at 0.38 H .. 0.55 H: nothing of the ground above it
    high = y[:, :int(0.38 * h) - 1]
    for cls in (ROAD, GRASS, WATER, OBJECT):
        assert not (high == cls).any(), SCENE_CLASSES[cls]
    # the top row is sky (or a tall tree's crown); the bottom row is grass or road
    assert set(np.unique(y[:, 0])) <= {SKY, TREE}
    assert set(np.unique(y[:, -1])) <= {GRASS, ROAD}
    assert (y[:, -1] == ROAD).any()
    # the road narrows toward the horizon: in the lower half more road than in the upper ground
    rows = np.arange(h)
    road_rows = [rows[(img == ROAD).any(axis=1)] for img in y if (img == ROAD).sum() > 50]
    for img, rr in zip([img for img in y if (img == ROAD).sum() > 50], road_rows):
        width = (img == ROAD).sum(axis=1)
        assert width[-1] > width[rr.min()]
    # a car stands on the road: a road pixel in the rows of every car
    for img in y:
        car = img == OBJECT
        if car.any():
            assert (img[car.any(axis=1)] == ROAD).any()


def test_class_colours_and_textures(scenes):
    x, y, _ = scenes
    mean = {}
    for cls in range(8):
        pix = x.transpose(0, 2, 3, 1)[y == cls]
        mean[cls] = pix.mean(axis=0)
    r, g, b = mean[SKY]
    assert b > r + 0.2 and b > g
    r, g, b = mean[GRASS]
    assert g > r + 0.1 and g > b + 0.1
    r, g, b = mean[ROAD]
    assert max(abs(r - g), abs(g - b)) < 0.03           # grey
    assert mean[TREE].sum() < mean[GRASS].sum() - 0.2     # darker green
    assert mean[TREE][1] > mean[TREE][0] and mean[TREE][1] > mean[TREE][2]
    assert mean[WATER][2] > mean[WATER][0] + 0.15
    assert mean[BUILDING][0] >= mean[BUILDING][2]
    # texture: the high-pass energy (pixel minus the mean of its 4 neighbours),
    # at pixels whose 4 neighbours have the same class (no region borders)
    grey = x.mean(axis=1)
    hp = np.abs(grey[:, 1:-1, 1:-1] - (grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1]
                                       + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:]) / 4)
    c = y[:, 1:-1, 1:-1]
    inner = ((y[:, :-2, 1:-1] == c) & (y[:, 2:, 1:-1] == c) & (y[:, 1:-1, :-2] == c)
             & (y[:, 1:-1, 2:] == c))
    texture = {cls: hp[(c == cls) & inner].mean() for cls in range(8)}
    for cls in (GRASS, TREE, ROAD, BUILDING, WATER):
        assert texture[SKY] < 0.6 * texture[cls], SCENE_CLASSES[cls]
    assert texture[MOUNTAIN] < texture[SKY]                # smooth, hazy
    assert texture[GRASS] > 1.2 * texture[TREE]           # fine blades against larger leaf blotches


@pytest.mark.parametrize("h, w", [(8, 8), (16, 24), (48, 96), (97, 33)])
def test_sizes(h, w):
    x, y, _ = make_scenes(4, h, w, seed=1)
    assert x.shape == (4, 3, h, w) and y.shape == (4, h, w)
    assert 0 <= y.min() and y.max() <= 7 and 0 <= x.min() and x.max() <= 1
    assert (y[:, 0] == SKY).any() and (y[:, -1] != SKY).all()


def test_empty_fast_and_errors():
    x, y, _ = make_scenes(0, 16, 16)
    assert x.shape == (0, 3, 16, 16) and y.shape == (0, 16, 16)
    t = time.perf_counter()
    make_scenes(200, 64, 64, seed=0)
    # about 0.5 s on one core; the bound leaves room for a loaded machine
    assert time.perf_counter() - t < 8.0
    for kwargs, match in ((dict(n=-1), "n must be an integer >= 0"), (dict(n=2.0), "n must"),
                          (dict(n=1, height=7), "height must be an integer >= 8"),
                          (dict(n=1, width=True), "width must"), (dict(n=1, seed=-3), "seed must"),
                          (dict(n=10**6, height=1000, width=1000), "more than 1 GiB")):
        with pytest.raises(ValueError, match=match):
            make_scenes(**kwargs)


def test_palette():
    pal = scene_palette()
    assert pal.shape == (8, 3) and pal.dtype == np.uint8
    assert len({tuple(c) for c in pal}) == 8

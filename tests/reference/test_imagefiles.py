"""The image readers and writer without an imaging library (reference/imagefiles.py):
PNG filters and round trips, PNM, NPY, errors naming the file."""

from __future__ import annotations

import importlib.util
import struct
import zlib

import numpy as np
import pytest

from convc.errors import ConvcError
from convc.reference.imagefiles import read_image, read_png, read_pnm, write_png

HAVE_PIL = importlib.util.find_spec("PIL") is not None


# ---------------------------------------------------------------------------
# PNG
# ---------------------------------------------------------------------------

def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filter_rows(raw: np.ndarray, bpp: int, kinds: list[int]) -> bytes:
    """Encode uint8 rows ``(H, stride)`` with the PNG filter ``kinds[r % len(kinds)]`` each."""
    out = bytearray()
    h, stride = raw.shape
    for r in range(h):
        kind = kinds[r % len(kinds)]
        out.append(kind)
        for i in range(stride):
            x = int(raw[r, i])
            a = int(raw[r, i - bpp]) if i >= bpp else 0
            b = int(raw[r - 1, i]) if r > 0 else 0
            c = int(raw[r - 1, i - bpp]) if r > 0 and i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][kind]
            out.append((x - pred) % 256)
    return bytes(out)


def _png(ctype: int, w: int, h: int, body: bytes, depth: int = 8, extra: bytes = b"",
         bad_crc: bool = False) -> bytes:
    def chunk(kind, data):
        crc = zlib.crc32(kind + data) ^ (1 if bad_crc and kind == b"IDAT" else 0)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
            + extra + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b""))


def test_png_round_trip_and_filters(tmp_path):
    rng = np.random.default_rng(30)
    rgb = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    write_png(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(read_png(tmp_path / "a.png"), rgb)
    grey = rng.integers(0, 256, size=(4, 3), dtype=np.uint8)
    write_png(tmp_path / "g.png", grey)
    np.testing.assert_array_equal(read_png(tmp_path / "g.png"), np.repeat(grey[:, :, None], 3, axis=2))
    # every filter type, in RGB (bpp 3) and RGBA (bpp 4, alpha dropped)
    rgba = rng.integers(0, 256, size=(10, 6, 4), dtype=np.uint8)
    body = _filter_rows(rgba.reshape(10, -1), 4, [0, 1, 2, 3, 4])
    (tmp_path / "f.png").write_bytes(_png(6, 6, 10, body))
    np.testing.assert_array_equal(read_png(tmp_path / "f.png"), rgba[:, :, :3])
    body = _filter_rows(rgb.reshape(5, -1), 3, [4, 3, 1, 2, 4])
    (tmp_path / "f3.png").write_bytes(_png(2, 7, 5, body))
    np.testing.assert_array_equal(read_png(tmp_path / "f3.png"), rgb)
    # palette
    pal = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    idx = np.array([[0, 1], [2, 0]], np.uint8)
    plte = struct.pack(">I", 9) + b"PLTE" + pal.tobytes() + struct.pack(">I", zlib.crc32(b"PLTE" + pal.tobytes()))
    (tmp_path / "p.png").write_bytes(_png(3, 2, 2, _filter_rows(idx, 1, [0]), extra=plte))
    np.testing.assert_array_equal(read_png(tmp_path / "p.png"), pal[idx])
    # read_image: (3, H, W) float32 / 255 (through Pillow when it is installed)
    x = read_image(tmp_path / "a.png")
    assert x.dtype == np.float32 and x.shape == (3, 5, 7)
    np.testing.assert_allclose(x, rgb.transpose(2, 0, 1) / 255.0, rtol=1e-6)


def test_png_errors(tmp_path):
    rgb = np.zeros((2, 2, 3), np.uint8)
    body = _filter_rows(rgb.reshape(2, -1), 3, [0])
    cases = {
        "crc.png": (_png(2, 2, 2, body, bad_crc=True), "fails its CRC check"),
        "deep.png": (_png(2, 2, 2, body, depth=16), "bit depth 16"),
        "short.png": (_png(2, 2, 2, body)[:-20], "truncated"),
        "sig.png": (b"GIF89a" + bytes(40), "not a PNG file"),
        "filt.png": (_png(2, 2, 2, b"\x07" + bytes(6) + b"\x00" + bytes(6)), "unknown PNG filter type 7"),
        "data.png": (_png(2, 2, 2, body[:5]), "image data is truncated"),
    }
    for name, (blob, match) in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(ConvcError, match=match) as info:
            read_png(tmp_path / name)
        assert name in str(info.value)


# ---------------------------------------------------------------------------
# PPM / PGM, .npy, JPEG
# ---------------------------------------------------------------------------

def test_pnm(tmp_path):
    rgb = np.array([[[255, 0, 0], [0, 128, 0]], [[0, 0, 255], [10, 20, 30]]], np.uint8)
    (tmp_path / "a.ppm").write_bytes(b"P6\n# a comment\n2 2\n255\n" + rgb.tobytes())
    np.testing.assert_allclose(read_pnm(tmp_path / "a.ppm"), rgb / 255.0)
    (tmp_path / "b.ppm").write_bytes(b"P3 2 2 255\n" + " ".join(map(str, rgb.ravel())).encode() + b"\n")
    np.testing.assert_allclose(read_pnm(tmp_path / "b.ppm"), rgb / 255.0)
    grey = np.array([[0, 1000], [65535, 3]], ">u2")
    (tmp_path / "c.pgm").write_bytes(b"P5 2 2 65535\n" + grey.tobytes())
    np.testing.assert_allclose(read_pnm(tmp_path / "c.pgm")[:, :, 1], grey / 65535.0)
    (tmp_path / "d.pgm").write_bytes(b"P2\n2 1\n4\n1 4\n")
    np.testing.assert_allclose(read_pnm(tmp_path / "d.pgm")[0, :, 2], [0.25, 1.0])
    x = read_image(tmp_path / "a.ppm")
    assert x.shape == (3, 2, 2) and x.dtype == np.float32 and x[0, 0, 0] == 1.0 and x[2, 1, 0] == 1.0
    for name, blob, match in (("e.ppm", b"P6 2 2 255\n" + bytes(5), "truncated"),
                              ("f.ppm", b"P7 2 2 255\n", "not a PPM/PGM"),
                              ("g.ppm", b"P6 2 x 255\n", "'x' is not a number"),
                              ("h.pgm", b"P2 2 1 4\n1 5\n", "above maxval 4"),
                              ("i.ppm", b"P6 0 2 255\n", "out of range")):
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(ConvcError, match=match) as info:
            read_pnm(tmp_path / name)
        assert name in str(info.value)


def test_npy_and_other_images(tmp_path):
    rng = np.random.default_rng(31)
    hwc = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "a.npy", hwc)
    np.testing.assert_allclose(read_image(tmp_path / "a.npy"), hwc.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    chw = rng.random((3, 5, 2)).astype(np.float32)
    np.save(tmp_path / "b.npy", chw)
    np.testing.assert_array_equal(read_image(tmp_path / "b.npy"), chw)
    np.save(tmp_path / "c.npy", np.full((2, 2), 2.0))
    with pytest.raises(ConvcError, match=r"c\.npy: float image values must be finite and in \[0, 1\]"):
        read_image(tmp_path / "c.npy")
    np.save(tmp_path / "d.npy", np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(ConvcError, match=r"d\.npy: array of shape \[2, 2, 5\] is not an image"):
        read_image(tmp_path / "d.npy")
    (tmp_path / "e.npy").write_bytes(b"nonsense")
    with pytest.raises(ConvcError, match=r"e\.npy: not a readable \.npy array"):
        read_image(tmp_path / "e.npy")
    with pytest.raises(ConvcError, match=r"x\.gif: unknown image type '\.gif'"):
        (tmp_path / "x.gif").write_bytes(b"GIF")
        read_image(tmp_path / "x.gif")
    with pytest.raises(ConvcError, match=r"none\.png: no such file"):
        read_image(tmp_path / "none.png")


@pytest.mark.skipif(HAVE_PIL, reason="Pillow decodes JPEG")
def test_jpeg_without_pillow(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(20))
    with pytest.raises(ConvcError, match=r"a\.jpg: decoding JPEG needs Pillow"):
        read_image(tmp_path / "a.jpg")

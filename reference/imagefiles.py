"""Image files without an imaging library: 8-bit PNG (read and write), binary and
ASCII PPM/PGM, ``.npy``; Pillow for the rest (JPEG) when it is installed (it is not a
convc dependency). Every problem is one :class:`~convc.errors.ConvcError` naming the
file. Used by the labelled-folder loader (:mod:`convc.reference.segmentation`).
"""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

import numpy as np

from convc.errors import ConvcError

__all__ = ["read_image", "read_png", "write_png", "png_bytes", "png_base64", "PNG_SIGNATURE", "read_pnm", "IMAGE_SUFFIXES", "MAX_IMAGE_PIXELS"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pnm", ".npy")
MAX_IMAGE_PIXELS = 1 << 26      # one image (8192 x 8192)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_bytes(image: np.ndarray, level: int = -1) -> bytes:
    """Encode a picture as an 8-bit PNG file (no filter, one zlib stream).

    Parameters
    ----------
    image : ndarray
        uint8 ``(H, W)`` grey or ``(H, W, 3)`` RGB, ``H, W >= 1``.
    level : int
        zlib compression level (-1: zlib's default; the HTML reports use 9).

    Returns
    -------
    bytes
        The whole file: signature, IHDR, IDAT, IEND.
    """
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3) or 0 in a.shape[:2]:
        raise ValueError(f"png_bytes: need uint8 (H, W) or (H, W, 3) with H, W >= 1, got {a.dtype} {a.shape}")
    h, w = a.shape[:2]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), a.reshape(h, -1)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 0 if a.ndim == 2 else 2, 0, 0, 0)
    return (PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, level))
            + chunk(b"IEND", b""))


def png_base64(image: np.ndarray) -> str:
    """:func:`png_bytes` of ``image`` (level 9) as base64 text, for an HTML
    ``data:image/png;base64`` image."""
    return base64.b64encode(png_bytes(image, 9)).decode("ascii")


def write_png(path, image: np.ndarray) -> None:
    """Write ``image`` (uint8, ``(H, W)`` grey or ``(H, W, 3)`` RGB) as an 8-bit PNG."""
    Path(path).write_bytes(png_bytes(image))


def _unfilter(data: bytes, h: int, stride: int, bpp: int, where: str) -> np.ndarray:
    """Undo the PNG row filters (None, Sub, Up, Average, Paeth)."""
    if len(data) < h * (stride + 1):
        raise ConvcError(f"{where}: image data is truncated ({len(data)} bytes for {h} rows of {stride})")
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    for r in range(h):
        kind = data[r * (stride + 1)]
        row = np.frombuffer(data, np.uint8, stride, r * (stride + 1) + 1).astype(np.int64)
        if kind == 0:
            cur = row
        elif kind == 1:            # Sub: a running sum per byte of the pixel
            cur = np.cumsum(row.reshape(-1, bpp), axis=0).reshape(-1) % 256
        elif kind == 2:            # Up
            cur = (row + prev) % 256
        elif kind in (3, 4):       # Average, Paeth: sequential along the row
            vals, up = row.tolist(), prev.tolist()
            cur_l = [0] * stride
            for i in range(stride):
                a = cur_l[i - bpp] if i >= bpp else 0
                b = up[i]
                if kind == 3:
                    pred = (a + b) // 2
                else:
                    c = up[i - bpp] if i >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                cur_l[i] = (vals[i] + pred) % 256
            cur = np.array(cur_l, dtype=np.int64)
        else:
            raise ConvcError(f"{where}: row {r} has an unknown PNG filter type {kind}")
        out[r] = cur
        prev = cur
    return out


def read_png(path) -> np.ndarray:
    """Decode an 8-bit, non-interlaced PNG (grey, grey+alpha, RGB, RGBA or palette) to
    uint8 ``(H, W, 3)`` (alpha dropped).  Anything else is a :class:`ConvcError`."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ConvcError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not blob.startswith(PNG_SIGNATURE):
        raise ConvcError(f"{path}: not a PNG file (bad signature)")
    pos, header, palette, idat = 8, None, None, []
    while True:
        if pos + 8 > len(blob):
            raise ConvcError(f"{path}: PNG is truncated (no IEND chunk)")
        length, kind = struct.unpack(">I4s", blob[pos:pos + 8])
        data = blob[pos + 8:pos + 8 + length]
        if len(data) != length or pos + 12 + length > len(blob):
            raise ConvcError(f"{path}: PNG is truncated (chunk {kind!r})")
        (crc,) = struct.unpack(">I", blob[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + data) != crc:
            raise ConvcError(f"{path}: PNG chunk {kind.decode('latin-1')!r} fails its CRC check")
        pos += 12 + length
        if kind == b"IHDR":
            if length != 13:
                raise ConvcError(f"{path}: PNG header has {length} bytes, expected 13")
            header = struct.unpack(">IIBBBBB", data)
        elif kind == b"PLTE":
            palette = np.frombuffer(data, np.uint8).reshape(-1, 3) if length % 3 == 0 else None
        elif kind == b"IDAT":
            idat.append(data)
        elif kind == b"IEND":
            break
    if header is None:
        raise ConvcError(f"{path}: PNG has no IHDR header")
    w, h, depth, ctype, _, _, interlace = header
    if depth != 8 or ctype not in _PNG_CHANNELS or interlace != 0:
        raise ConvcError(f"{path}: PNG with bit depth {depth}, colour type {ctype}, interlace {interlace} "
                         "is not supported without Pillow (8-bit, not interlaced only)")
    if not 0 < w * h <= MAX_IMAGE_PIXELS:
        raise ConvcError(f"{path}: PNG of {w}x{h} pixels is empty or too large")
    try:
        data = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise ConvcError(f"{path}: PNG image data is damaged ({exc})") from None
    channels = _PNG_CHANNELS[ctype]
    px = _unfilter(data, h, w * channels, channels, str(path)).reshape(h, w, channels)
    if ctype == 3:
        if palette is None or px.max() >= len(palette):
            raise ConvcError(f"{path}: PNG palette is missing or too short")
        return palette[px[:, :, 0]]
    if channels <= 2:
        return np.repeat(px[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(px[:, :, :3])


def read_pnm(path) -> np.ndarray:
    """Decode a PPM or PGM (P2, P3, P5, P6; maxval up to 65535) to float64 ``(H, W, 3)`` in [0, 1]."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ConvcError(f"{path}: cannot read ({exc.strerror or exc})") from None
    magic = blob[:2]
    if magic not in (b"P2", b"P3", b"P5", b"P6"):
        raise ConvcError(f"{path}: not a PPM/PGM file (magic {magic!r}; P2, P3, P5 or P6 expected)")
    tokens, pos = [], 2
    while len(tokens) < 3:                       # width, height, maxval; '#' comments
        while pos < len(blob) and blob[pos:pos + 1].isspace():
            pos += 1
        if pos < len(blob) and blob[pos:pos + 1] == b"#":
            while pos < len(blob) and blob[pos:pos + 1] not in (b"\n", b"\r"):
                pos += 1
            continue
        start = pos
        while pos < len(blob) and not blob[pos:pos + 1].isspace() and blob[pos:pos + 1] != b"#":
            pos += 1
        if start == pos:
            raise ConvcError(f"{path}: PPM/PGM header is truncated")
        try:
            tokens.append(int(blob[start:pos]))
        except ValueError:
            raise ConvcError(f"{path}: PPM/PGM header field {blob[start:pos][:20]!r} is not a number") from None
    w, h, maxval = tokens
    if w < 1 or h < 1 or w * h > MAX_IMAGE_PIXELS or not 0 < maxval < 65536:
        raise ConvcError(f"{path}: PPM/PGM size {w}x{h} or maxval {maxval} out of range")
    channels = 3 if magic in (b"P3", b"P6") else 1
    count = w * h * channels
    if magic in (b"P5", b"P6"):
        dtype = np.dtype(">u2") if maxval > 255 else np.dtype(np.uint8)
        body = blob[pos + 1:]
        if len(body) < count * dtype.itemsize:
            raise ConvcError(f"{path}: PPM/PGM data is truncated ({len(body)} bytes, "
                             f"{count * dtype.itemsize} expected)")
        values = np.frombuffer(body, dtype, count).astype(np.float64)
    else:
        try:
            values = np.array(blob[pos:].split(), dtype=np.int64).astype(np.float64)
        except ValueError:
            raise ConvcError(f"{path}: PPM/PGM data holds something that is not a number") from None
        if values.size < count:
            raise ConvcError(f"{path}: PPM/PGM data is truncated ({values.size} values, {count} expected)")
        values = values[:count]
    if values.max(initial=0) > maxval:
        raise ConvcError(f"{path}: PPM/PGM value above maxval {maxval}")
    img = values.reshape(h, w, channels) / maxval
    return np.repeat(img, 3, axis=2) if channels == 1 else img


def _read_with_pillow(path: Path):
    try:
        from PIL import Image  # optional tool: convc.optional
    except ImportError:
        return None
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as exc:          # Pillow raises many types for bad files
        raise ConvcError(f"{path}: cannot decode the image ({exc})") from None


def read_image(path) -> np.ndarray:
    """Read an image file to float32 ``(3, H, W)`` in [0, 1].

    ``.npy``: ``(H, W)``, ``(H, W, 3)`` or ``(3, H, W)``; uint8 is divided by 255, a
    float array must already be in [0, 1].  Other suffixes go to Pillow if it is
    installed, else to :func:`read_png` or :func:`read_pnm`; a JPEG without Pillow
    is refused.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ConvcError(f"{path}: no such file")
    if suffix == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except Exception as exc:      # numpy raises several types for bad headers and data
            raise ConvcError(f"{path}: not a readable .npy array ({exc})") from None
        if a.ndim == 3 and a.shape[0] == 3 and a.shape[2] != 3:
            a = a.transpose(1, 2, 0)
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] != 3 or a.size == 0:
            raise ConvcError(f"{path}: array of shape {list(a.shape)} is not an image "
                             "((H, W), (H, W, 3) or (3, H, W))")
        if a.dtype == np.uint8:
            a = a / 255.0
        elif a.dtype.kind == "f":
            if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
                raise ConvcError(f"{path}: float image values must be finite and in [0, 1]")
        else:
            raise ConvcError(f"{path}: image dtype {a.dtype} not supported (uint8, or float in [0, 1])")
        rgb = a
    elif suffix in IMAGE_SUFFIXES:
        rgb = _read_with_pillow(path)
        if rgb is None:
            if suffix in (".jpg", ".jpeg"):
                raise ConvcError(f"{path}: decoding JPEG needs Pillow, which is not installed "
                                 "(pip install pillow), or convert the images to PNG or PPM")
            rgb = read_png(path) if suffix == ".png" else read_pnm(path)
        if rgb.dtype == np.uint8:
            rgb = rgb / 255.0
    else:
        raise ConvcError(f"{path}: unknown image type {suffix!r}; supported: {', '.join(IMAGE_SUFFIXES)}")
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)

"""Scene labelling: metrics as the seed reports them, and a loader for labelled folders.

Metrics (Farabet et al. 2013 report both on Stanford Background):

* :func:`pixel_accuracy`: the fraction of labelled pixels whose predicted class is
  the true one;
* :func:`mean_class_accuracy`: the mean over classes of each class's pixel
  accuracy (its recall), over the classes that occur in the ground truth;
* :func:`confusion_matrix`, :func:`class_accuracies` under them.

Pixels labelled ``ignore_label`` (:data:`~convc.reference.layers.IGNORE_LABEL`,
-1) count in none of them.

Loader (:func:`load_labelled_folder`): the Stanford Background layout, ::

    folder/images/<stem>.jpg            (or .png, .ppm, .pgm, .pnm, .npy)
    folder/labels/<stem>.regions.txt    one text row per image row, whitespace-
                                        separated integers, -1 = unknown

(other files in ``labels/``, such as ``*.surfaces.txt`` and ``*.layers.txt``, are
not read).  Class numbers are Stanford Background's (0 sky, 1 tree, 2 road, 3
grass, 4 water, 5 building, 6 mountain, 7 foreground object), the same as
:mod:`convc.reference.scenes`.

Image decoding: Pillow is used when it is installed (it is not a convc
dependency); without it, PNG (8-bit, not interlaced; :func:`read_png`), binary
and ASCII PPM/PGM (:func:`read_pnm`) and ``.npy`` arrays are decoded here, and a
JPEG is refused with a message that says to install Pillow or convert the
images.  Every problem is one :class:`~convc.errors.ConvcError` naming the file.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from convc.errors import ConvcError

from .layers import IGNORE_LABEL

__all__ = ["confusion_matrix", "class_accuracies", "pixel_accuracy", "mean_class_accuracy",
           "read_image", "read_png", "write_png", "read_pnm", "read_regions", "load_labelled_folder",
           "IMAGE_SUFFIXES", "MAX_IMAGE_PIXELS"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pnm", ".npy")
MAX_IMAGE_PIXELS = 1 << 26      # one image (8192 x 8192)


# ---------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------

def _check_pair(pred, labels, where: str) -> tuple[np.ndarray, np.ndarray]:
    pred, labels = np.asarray(pred), np.asarray(labels)
    if pred.shape != labels.shape:
        raise ValueError(f"{where}: predictions {pred.shape} and labels {labels.shape} differ in shape")
    for name, a in (("predictions", pred), ("labels", labels)):
        if a.dtype.kind not in "iu":
            raise ValueError(f"{where}: {name} must be integers, got dtype {a.dtype}")
    return pred, labels


def confusion_matrix(pred, labels, classes: int, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """``(classes, classes)`` int64 counts: row = true class, column = predicted class.

    Pixels labelled ``ignore_label`` are left out.  A label or prediction outside
    ``0 .. classes-1`` (other than an ignored pixel's prediction) is a ValueError.
    """
    pred, labels = _check_pair(pred, labels, "confusion_matrix")
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 1:
        raise ValueError(f"confusion_matrix: classes must be an integer >= 1, got {classes!r}")
    keep = labels != ignore_label
    t, p = labels[keep].astype(np.int64), pred[keep].astype(np.int64)
    for name, a in (("label", t), ("prediction", p)):
        bad = (a < 0) | (a >= classes)
        if bad.any():
            raise ValueError(f"confusion_matrix: {name} {int(a[bad][0])} out of range 0..{classes - 1}")
    return np.bincount(t * classes + p, minlength=classes * classes).reshape(classes, classes)


def pixel_accuracy(pred, labels, ignore_label: int = IGNORE_LABEL) -> float:
    """Correct labelled pixels over labelled pixels; NaN if no pixel is labelled."""
    pred, labels = _check_pair(pred, labels, "pixel_accuracy")
    keep = labels != ignore_label
    total = int(keep.sum())
    if total == 0:
        return float("nan")
    return int((pred[keep] == labels[keep]).sum()) / total


def class_accuracies(pred, labels, classes: int, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """Per class: correct pixels of the class over pixels of the class (float64,
    NaN for a class with no pixel in ``labels``)."""
    cm = confusion_matrix(pred, labels, classes, ignore_label)
    support = cm.sum(axis=1)
    acc = np.full(classes, np.nan)
    present = support > 0
    acc[present] = np.diag(cm)[present] / support[present]
    return acc


def mean_class_accuracy(pred, labels, classes: int | None = None, ignore_label: int = IGNORE_LABEL) -> float:
    """Mean of :func:`class_accuracies` over the classes present in ``labels``
    (NaN if none is).  ``classes`` defaults to one more than the largest label or
    prediction."""
    pred, labels = _check_pair(pred, labels, "mean_class_accuracy")
    if classes is None:
        keep = labels != ignore_label
        if not keep.any():
            return float("nan")
        classes = int(max(labels[keep].max(), pred[keep].max(), 0)) + 1
    acc = class_accuracies(pred, labels, classes, ignore_label)
    present = ~np.isnan(acc)
    return float(acc[present].mean()) if present.any() else float("nan")


# ---------------------------------------------------------------------------
# image files
# ---------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def write_png(path, image: np.ndarray) -> None:
    """Write ``image`` (uint8, ``(H, W)`` grey or ``(H, W, 3)`` RGB) as an 8-bit PNG."""
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise ValueError(f"write_png: need uint8 (H, W) or (H, W, 3), got {a.dtype} {a.shape}")
    h, w = a.shape[:2]
    ctype = 0 if a.ndim == 2 else 2
    raw = np.concatenate([np.zeros((h, 1), np.uint8), a.reshape(h, -1)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0)
    Path(path).write_bytes(_PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                           + chunk(b"IEND", b""))


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
    if not blob.startswith(_PNG_SIGNATURE):
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
        from PIL import Image
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


# ---------------------------------------------------------------------------
# label files and folders
# ---------------------------------------------------------------------------

def read_regions(path, classes: int = 8, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """Read a ``*.regions.txt`` label map to int64 ``(H, W)``.

    One line per row, whitespace-separated integers in ``-1 .. classes-1``; -1
    (unknown) becomes ``ignore_label``.  Blank lines are skipped; every row must
    have the same length.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise ConvcError(f"{path}: not a text file of integers") from None
    except OSError as exc:
        raise ConvcError(f"{path}: cannot read ({exc.strerror or exc})") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        row = []
        for f in fields:
            try:
                row.append(int(f))
            except ValueError:
                raise ConvcError(f"{path}: line {lineno}: {f[:20]!r} is not an integer") from None
        rows.append(row)
        if len(rows[-1]) != len(rows[0]):
            raise ConvcError(f"{path}: line {lineno} has {len(rows[-1])} labels, the first row has {len(rows[0])}")
    if not rows:
        raise ConvcError(f"{path}: no labels (empty file)")
    labels = np.array(rows, dtype=np.int64)
    bad = (labels < -1) | (labels >= classes)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        raise ConvcError(f"{path}: label {int(labels[r, c])} at row {r}, column {c} is outside "
                         f"-1 .. {classes - 1}")
    labels[labels == -1] = ignore_label
    return labels


def _crop(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre crop of the last two axes to ``size``."""
    h, w = a.shape[-2:]
    top, left = (h - size[0]) // 2, (w - size[1]) // 2
    return a[..., top:top + size[0], left:left + size[1]]


def load_labelled_folder(folder, size: tuple[int, int] | None = None, classes: int = 8,
                         ignore_label: int = IGNORE_LABEL) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load a Stanford Background style folder (see the module docstring).

    Parameters
    ----------
    folder : path
        Holds ``images/`` and ``labels/``.
    size : (height, width), optional
        Centre-crop every image and label map to this size (an image smaller than
        it is refused).  Without it all images must have the same size.
    classes : int
        Labels must lie in ``-1 .. classes-1``.
    ignore_label : int
        What -1 (unknown) becomes.

    Returns
    -------
    images : float32 ``(N, 3, H, W)`` in [0, 1]
    labels : int64 ``(N, H, W)``
    stems : list of str, the file names without suffix, sorted
    """
    folder = Path(folder)
    img_dir, lab_dir = folder / "images", folder / "labels"
    for d in (folder, img_dir, lab_dir):
        if not d.is_dir():
            raise ConvcError(f"{d}: no such folder (a labelled folder holds images/ and labels/)")
    images = {}
    for p in sorted(img_dir.iterdir()):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            if p.stem in images:
                raise ConvcError(f"{p}: a second image named {p.stem!r} ({images[p.stem].name})")
            images[p.stem] = p
    if not images:
        raise ConvcError(f"{img_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
    if size is not None:
        size = (int(size[0]), int(size[1]))
        if min(size) < 1:
            raise ConvcError(f"{folder}: crop size {list(size)} must be positive")
    xs, ys, stems = [], [], []
    for stem, img_path in images.items():
        lab_path = lab_dir / f"{stem}.regions.txt"
        if not lab_path.is_file():
            raise ConvcError(f"{img_path}: no label file {lab_path.name} in {lab_dir}")
        x = read_image(img_path)
        y = read_regions(lab_path, classes, ignore_label)
        if y.shape != x.shape[1:]:
            raise ConvcError(f"{lab_path}: labels are {y.shape[0]}x{y.shape[1]} but image {img_path.name} "
                             f"is {x.shape[1]}x{x.shape[2]}")
        if size is not None:
            if x.shape[1] < size[0] or x.shape[2] < size[1]:
                raise ConvcError(f"{img_path}: image is {x.shape[1]}x{x.shape[2]}, smaller than the crop "
                                 f"{size[0]}x{size[1]}")
            x, y = _crop(x, size), _crop(y, size)
        elif xs and x.shape != xs[0].shape:
            raise ConvcError(f"{img_path}: image is {x.shape[1]}x{x.shape[2]} but {stems[0]} is "
                             f"{xs[0].shape[1]}x{xs[0].shape[2]}; give a crop size")
        xs.append(x)
        ys.append(y)
        stems.append(stem)
    return (np.stack(xs).astype(np.float32, copy=False), np.stack(ys).astype(np.int64, copy=False), stems)

"""Datasets: images as float32 ``(N, C, H, W)`` in [0, 1] and int64 labels.

``digits``
    scikit-learn's bundled 1,797 8x8 handwritten digits (values 0..16),
    upsampled x3 (nearest) and centred on a 32x32 canvas; a fixed stratified
    split with 20% held out for test (seed 0).
``mnist``
    The standard IDX files (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each optionally ``.gz``) in a folder; 28x28
    digits centred on a 32x32 canvas.
``synthetic``
    Class prototypes plus noise, in any input shape; for tests.
``scenes``
    Procedural labelled scenes (:mod:`convc.reference.scenes`: sky, trees, road,
    grass, water, buildings, mountains, cars; 8 classes), RGB at the network's input
    size, 200 for training and 50 held out, deterministic by seed; the labels are
    per-pixel maps ``(N, H, W)``, not one class an image.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convc.errors import ConvcError

from .scenes import make_scenes

__all__ = ["Dataset", "DATASETS", "check_labels", "load_dataset", "load_digits", "load_mnist", "make_synthetic", "load_scenes",
           "read_idx", "write_idx", "stratified_split"]

DATASETS = ("digits", "mnist", "synthetic", "scenes")
SCENES_TRAIN, SCENES_TEST = 200, 50
MAX_IDX_BYTES = 2 << 30        # one IDX file, decompressed
MAX_SYNTHETIC_BYTES = 1 << 30  # the synthetic dataset's images (float64 while drawn)


@dataclass
class Dataset:
    """Images and labels of a dataset's two splits.

    Attributes
    ----------
    name : str
    train_x, test_x : ndarray
        float32 ``(N, C, H, W)`` in [0, 1].
    train_y, test_y : ndarray
        int64 labels in ``0 .. classes-1``: ``(N,)``, or per-pixel maps ``(N, H, W)``
        (``scenes``; :attr:`dense`).
    classes : int
    folder : str or None
        The absolute folder the files came from (``mnist``), recorded in the model.
    seed : int
        The seed :func:`load_dataset` was given (recorded in the model, to make the
        same splits again).
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: int
    folder: str | None = None
    seed: int = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    @property
    def dense(self) -> bool:
        """Per-pixel labels (a label map an image) rather than one class an image."""
        return self.train_y.ndim == 3


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices holding out ``test_fraction`` of every class."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_test = int(round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _canvas(images: np.ndarray, size: int) -> np.ndarray:
    """Centre ``(N, h, w)`` images on a ``size`` x ``size`` zero canvas -> ``(N, 1, size, size)``."""
    n, h, w = images.shape
    top, left = (size - h) // 2, (size - w) // 2
    out = np.zeros((n, 1, size, size), dtype=np.float32)
    out[:, 0, top:top + h, left:left + w] = images
    return out


def load_digits(seed: int = 0) -> Dataset:
    try:
        from sklearn.datasets import load_digits as sk_digits  # optional tool: convc.optional
    except ImportError:
        raise ConvcError("dataset 'digits' needs scikit-learn: pip install 'convc[digits]'") from None
    data = sk_digits()
    images = data.images.astype(np.float32) / 16.0
    images = images.repeat(3, axis=1).repeat(3, axis=2)
    x = _canvas(images, 32)
    y = data.target.astype(np.int64)
    tr, te = stratified_split(y, 0.2, seed)
    return Dataset("digits", x[tr], y[tr], x[te], y[te], 10, seed=seed)


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped), validating its header and size."""
    try:
        with open(path, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
        if gz:
            with gzip.open(path, "rb") as fh:
                raw = fh.read(MAX_IDX_BYTES + 1)
        else:
            if path.stat().st_size > MAX_IDX_BYTES:
                raise ConvcError(f"{path}: {path.stat().st_size:,} bytes, beyond the "
                                 f"{MAX_IDX_BYTES >> 30} GiB convc reads from one IDX file")
            raw = path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ConvcError(f"{path}: broken gzip data ({exc})") from None
    except OSError as exc:
        raise ConvcError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > MAX_IDX_BYTES:
        raise ConvcError(f"{path}: decompresses to more than the {MAX_IDX_BYTES >> 30} GiB convc reads "
                         "from one IDX file")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise ConvcError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ConvcError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(dims) * dtype.itemsize     # Python ints: no overflow
    if len(raw) != expected:
        raise ConvcError(f"{path}: IDX data is {len(raw):,} bytes, header dimensions {list(dims)} say "
                         f"{expected:,}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """Write a uint8 array as an IDX file (used by tests to make small MNIST folders)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    head = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = head + array.tobytes()
    Path(path).write_bytes(gzip.compress(data) if compress else data)


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise ConvcError(f"{folder}: no {stem} (or {stem}.gz) for dataset 'mnist'")


def load_mnist(data_dir: str | Path | None) -> Dataset:
    if data_dir is None:
        raise ConvcError("dataset 'mnist' needs --data-dir, a folder with the four IDX files")
    folder = Path(data_dir)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "no such folder"
        raise ConvcError(f"{folder}: {what} (--data-dir for dataset 'mnist')")
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        ipath = _find_idx(folder, f"{prefix}-images-idx3-ubyte")
        lpath = _find_idx(folder, f"{prefix}-labels-idx1-ubyte")
        images, labels = read_idx(ipath), read_idx(lpath)
        if images.ndim != 3:
            raise ConvcError(f"{ipath}: images must have 3 dimensions (N, H, W), the header gives "
                             f"{list(images.shape)}")
        if labels.ndim != 1:
            raise ConvcError(f"{lpath}: labels must have 1 dimension (N,), the header gives {list(labels.shape)}")
        if len(images) != len(labels):
            raise ConvcError(f"{ipath}: {len(images)} images but {lpath.name} holds {len(labels)} labels")
        if len(images) == 0:
            raise ConvcError(f"{ipath}: the {split} split holds no images")
        if images.shape[1] > 32 or images.shape[2] > 32 or min(images.shape[1:]) == 0:
            raise ConvcError(f"{ipath}: images are {images.shape[1]}x{images.shape[2]}, expected 1x1 up to "
                             "the 32x32 canvas")
        if images.dtype.kind == "f":
            bad = ~np.isfinite(images) | (images < 0) | (images > 255)
        elif images.dtype != np.uint8:
            bad = (images < 0) | (images > 255)
        else:
            bad = None
        if bad is not None and bad.any():
            i = int(np.flatnonzero(bad.reshape(-1))[0])
            raise ConvcError(f"{ipath}: pixel {i} is {images.reshape(-1)[i].item()!r}, outside 0..255")
        parts[split] = (_canvas(images.astype(np.float32) / 255.0, 32), check_labels(labels, 10, str(lpath)))
    return Dataset("mnist", *parts["train"], *parts["test"], classes=10, folder=str(folder.resolve()))


def check_labels(labels: np.ndarray, classes: int | None, where: str) -> np.ndarray:
    """Class labels as int64, each a whole number in ``0 .. classes-1`` (no upper
    bound when ``classes`` is falsy); otherwise one :class:`ConvcError` naming
    ``where`` and the first bad label."""
    if labels.dtype.kind == "b":
        raise ConvcError(f"{where}: dtype bool; expected integer class labels")
    if labels.dtype.kind == "f":
        frac = ~np.isfinite(labels) | (labels != np.round(labels))
        if frac.any():
            i = int(np.flatnonzero(frac)[0])
            raise ConvcError(f"{where}: label {i} is {labels[i].item()!r}, not a whole number")
    out = labels < 0
    if classes:
        out |= labels >= classes
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise ConvcError(f"{where}: label {i} is {labels[i].item()!r}, outside 0..{(classes or 1) - 1}")
    return labels.astype(np.int64)


def make_synthetic(shape=(1, 32, 32), classes: int = 10, n_train: int = 400, n_test: int = 100,
                   seed: int = 0, noise: float = 0.35) -> Dataset:
    """Smooth random class prototypes plus Gaussian noise, clipped to [0, 1]."""
    c, h, w = shape
    need = 8 * (classes + n_train + n_test) * c * h * w
    if need > MAX_SYNTHETIC_BYTES:
        raise ConvcError(f"dataset 'synthetic' for inputs {list(shape)}: {need / 2**30:.1f} GiB of images, "
                         f"beyond the {MAX_SYNTHETIC_BYTES >> 30} GiB limit; use a smaller input")
    rng = np.random.default_rng(seed)
    coarse = rng.random((classes, c, max(1, h // 4), max(1, w // 4)))
    protos = coarse.repeat(4, axis=2).repeat(4, axis=3)[:, :, :h, :w]
    protos = np.pad(protos, ((0, 0), (0, 0), (0, h - protos.shape[2]), (0, w - protos.shape[3])), mode="edge")

    def draw(n):
        y = rng.integers(0, classes, n)
        x = protos[y] + noise * rng.standard_normal((n, c, h, w))
        return np.clip(x, 0, 1).astype(np.float32), y.astype(np.int64)

    return Dataset("synthetic", *draw(n_train), *draw(n_test), classes=classes, seed=seed)


def load_scenes(shape: tuple[int, ...], seed: int = 0) -> Dataset:
    """:data:`SCENES_TRAIN` + :data:`SCENES_TEST` procedural scenes at ``shape`` (3, H, W)."""
    if len(shape) != 3 or shape[0] != 3:
        raise ConvcError(f"dataset 'scenes' is RGB (3, H, W); the network expects {list(shape)}")
    x, y, names = make_scenes(SCENES_TRAIN + SCENES_TEST, shape[1], shape[2], seed=seed)
    return Dataset("scenes", x[:SCENES_TRAIN], y[:SCENES_TRAIN], x[SCENES_TRAIN:], y[SCENES_TRAIN:], len(names))


def load_dataset(name: str, shape: tuple[int, ...], classes: int, data_dir=None, seed: int = 0) -> Dataset:
    """Load a dataset by name and check it fits a network's input and classes."""
    if data_dir is not None and name in ("digits", "synthetic", "scenes"):
        raise ConvcError(f"--data-dir {data_dir}: dataset {name!r} reads no folder (--dataset mnist reads "
                         "the IDX files of a folder)")
    if name == "digits":
        ds = load_digits()
    elif name == "mnist":
        ds = load_mnist(data_dir)
    elif name == "synthetic":
        ds = make_synthetic(tuple(shape), classes or 10, seed=seed)
    elif name == "scenes":
        ds = load_scenes(tuple(shape), seed=seed)
    else:
        raise ConvcError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    ds.seed = int(seed)         # what load_dataset needs to make the same splits again
    if ds.shape != tuple(shape):
        raise ConvcError(f"dataset {name!r} has inputs {list(ds.shape)} but the network expects "
                         f"{list(shape)}")
    if classes and ds.classes > classes:
        raise ConvcError(f"dataset {name!r} has {ds.classes} classes but the network outputs {classes}")
    return ds

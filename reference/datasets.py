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
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convc.errors import ConvcError

__all__ = ["Dataset", "DATASETS", "load_dataset", "load_digits", "load_mnist", "make_synthetic",
           "read_idx", "write_idx", "stratified_split"]

DATASETS = ("digits", "mnist", "synthetic")


@dataclass
class Dataset:
    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: int

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])


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
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise ConvcError("dataset 'digits' needs scikit-learn: pip install 'convc[digits]'") from None
    data = sk_digits()
    images = data.images.astype(np.float32) / 16.0
    images = images.repeat(3, axis=1).repeat(3, axis=2)
    x = _canvas(images, 32)
    y = data.target.astype(np.int64)
    tr, te = stratified_split(y, 0.2, seed)
    return Dataset("digits", x[tr], y[tr], x[te], y[te], 10)


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped), validating its header and size."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except OSError as exc:
        raise ConvcError(f"{path}: cannot read ({exc})") from None
    except (EOFError, gzip.BadGzipFile) as exc:
        raise ConvcError(f"{path}: broken gzip data ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise ConvcError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ConvcError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise ConvcError(f"{path}: IDX data is {len(raw)} bytes, header {list(dims)} says {expected}")
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
        raise ConvcError(f"{folder}: no such folder (--data-dir for dataset 'mnist')")
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(_find_idx(folder, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find_idx(folder, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ConvcError(f"{folder}: {prefix} images {list(images.shape)} and labels "
                             f"{list(labels.shape)} do not match")
        if images.shape[1] > 32 or images.shape[2] > 32:
            raise ConvcError(f"{folder}: {prefix} images are {images.shape[1]}x{images.shape[2]}, "
                             "larger than the 32x32 canvas")
        if labels.size and int(labels.max()) > 9:
            raise ConvcError(f"{folder}: {prefix} labels go up to {int(labels.max())}, expected 0..9")
        parts[split] = (_canvas(images.astype(np.float32) / 255.0, 32), labels.astype(np.int64))
    return Dataset("mnist", *parts["train"], *parts["test"], classes=10)


def make_synthetic(shape=(1, 32, 32), classes: int = 10, n_train: int = 400, n_test: int = 100,
                   seed: int = 0, noise: float = 0.35) -> Dataset:
    """Smooth random class prototypes plus Gaussian noise, clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    coarse = rng.random((classes, c, max(1, h // 4), max(1, w // 4)))
    protos = coarse.repeat(4, axis=2).repeat(4, axis=3)[:, :, :h, :w]
    protos = np.pad(protos, ((0, 0), (0, 0), (0, h - protos.shape[2]), (0, w - protos.shape[3])), mode="edge")

    def draw(n):
        y = rng.integers(0, classes, n)
        x = protos[y] + noise * rng.standard_normal((n, c, h, w))
        return np.clip(x, 0, 1).astype(np.float32), y.astype(np.int64)

    return Dataset("synthetic", *draw(n_train), *draw(n_test), classes=classes)


def load_dataset(name: str, shape: tuple[int, ...], classes: int, data_dir=None, seed: int = 0) -> Dataset:
    """Load a dataset by name and check it fits a network's input and classes."""
    if name == "digits":
        ds = load_digits()
    elif name == "mnist":
        ds = load_mnist(data_dir)
    elif name == "synthetic":
        ds = make_synthetic(tuple(shape), classes or 10, seed=seed)
    else:
        raise ConvcError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if ds.shape != tuple(shape):
        raise ConvcError(f"dataset {name!r} has inputs {list(ds.shape)} but the network expects "
                         f"{list(shape)}")
    if classes and ds.classes > classes:
        raise ConvcError(f"dataset {name!r} has {ds.classes} classes but the network outputs {classes}")
    return ds

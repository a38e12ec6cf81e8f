"""The inputs a command runs on, and checked reading and writing of users' files.

One function, :func:`model_inputs`, decides which images a model is calibrated
(``convc compile``) and compared or verified (``convc compare``, ``convc verify``)
on: the dataset its model file records (name, folder and seed, written by
``convc train``), split ``train`` for calibration and ``test`` for comparisons;
when the model names no dataset, or its folder is gone, it says so once on stderr
and falls back to uniform random images.

The other helpers read ``.npy`` files the user names (the header is checked
before anything is allocated) and check and write output files whole (a
temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from convc.errors import ConvcError
from convc.reference.datasets import DATASETS, check_labels, load_dataset

__all__ = ["read_npy_header", "MAX_ARRAY_BYTES", "CALIB_BYTES", "DEFAULT_CALIB", "model_inputs", "dataset_of", "warn",
           "check_output_file", "check_output_dir", "write_atomic", "save_npy", "npy_header", "load_images",
           "load_labels"]

MAX_ARRAY_BYTES = 2 << 30      # an --images or --labels file, counted as float32/int64 values
CALIB_BYTES = 256 << 20        # generated calibration images at most
DEFAULT_CALIB = 256            # calibration images by default (2 for inputs over 16,384 values)


def warn(message: str) -> None:
    """Print one warning line on stderr (``convc: warning: ...``)."""
    print(f"convc: warning: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# output files
# ----------------------------------------------------------------------------

def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_writable(folder: Path, what: str) -> None:
    """Create and remove a temporary file in ``folder``: the one reliable test (read-only
    mounts, /proc, permissions, even as root)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".convc-probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise ConvcError(f"{what}: cannot write in folder {folder} ({exc.strerror or exc})") from None


def check_output_file(path, option: str = "-o") -> Path:
    """Check before any work that ``path`` can be written as a whole new file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    option : str
        The command-line option that named it, for messages.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ConvcError
        ``path`` is a folder or a special file, its folder does not exist, a parent
        is a file, or the folder cannot be written.
    """
    p = Path(path)
    what = f"{option} {p}"
    if str(path) == "" or p.name in ("", ".", ".."):
        raise ConvcError(f"{what}: name a file, not a folder")
    if p.is_dir():
        raise ConvcError(f"{what}: is a folder; name a file to write")
    if p.exists() and not p.is_file():
        raise ConvcError(f"{what}: is not a regular file (a device or a pipe); name a file to write")
    parent = p.parent
    if not parent.exists():
        up = _nearest_existing(parent)
        if not up.is_dir():
            raise ConvcError(f"{what}: {up} is a file, not a folder")
        raise ConvcError(f"{what}: folder {parent} does not exist")
    if not parent.is_dir():
        raise ConvcError(f"{what}: {parent} is a file, not a folder")
    _probe_writable(parent, what)
    return p


def check_output_dir(path, option: str) -> Path:
    """Check before any work that folder ``path`` exists or can be made, and can be written."""
    p = Path(path)
    what = f"{option} {p}"
    if p.exists() and not p.is_dir():
        raise ConvcError(f"{what}: is a file, not a folder")
    up = _nearest_existing(p)
    if not up.is_dir():
        raise ConvcError(f"{what}: {up} is a file, not a folder")
    _probe_writable(up, what)
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path, write, mode: str = "wb", option: str = "-o") -> Path:
    """Write ``path`` whole: ``write(fh)`` fills a temporary file in the same folder,
    which then replaces ``path`` (a failed or interrupted write leaves no half file).
    Messages name ``option`` (if any) and the path."""
    p = Path(path)
    where = f"{option} {p}" if option else str(p)
    folder = p.parent if str(p.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ConvcError(f"{where}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
        os.chmod(tmp, 0o666 & ~_umask())           # as open() would have made it, not mkstemp's 0600
        os.replace(tmp, p)
    except OSError as exc:
        raise ConvcError(f"{where}: cannot write ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def save_npy(path, array: np.ndarray, option: str = "--save") -> Path:
    """``np.save`` to ``path`` whole (see :func:`write_atomic`)."""
    return write_atomic(path, lambda fh: np.save(fh, np.asarray(array), allow_pickle=False), option=option)


# ----------------------------------------------------------------------------
# .npy files the user names
# ----------------------------------------------------------------------------

def read_npy_header(fh) -> tuple[tuple[int, int], tuple[tuple[int, ...], np.dtype] | None]:
    """``(version, (shape, dtype))`` of the ``.npy`` header at ``fh``'s position, or
    ``(version, None)`` for a header version other than 1.0 and 2.0. NumPy's own errors
    (it parses the header with ``tokenize`` and ``literal_eval``) pass through."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        return version, None
    return version, (shape, dtype)


def npy_header(path, option: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a ``.npy`` file, read from its header only.

    Raises
    ------
    ConvcError
        Not a ``.npy`` file, a header that cannot be read, Python objects (pickles),
        or fewer data bytes than the header declares.
    """
    p = Path(path)
    if not p.exists():
        raise ConvcError(f"{option} {p}: no such file (expected a .npy array)")
    if not p.is_file():
        raise ConvcError(f"{option} {p}: is not a file (expected a .npy array)")
    try:
        with open(p, "rb") as fh:
            head = fh.read(6)
            if head[:2] == b"PK":
                raise ConvcError(f"{option} {p}: is an archive (.npz); expected one array (.npy)")
            fh.seek(0)
            try:
                version, head = read_npy_header(fh)
                if head is None:
                    raise ConvcError(f"{option} {p}: .npy format version {version[0]}.{version[1]} "
                                     "is not read by convc (1.0 and 2.0 are)")
                shape, dtype = head
            except ConvcError:
                raise
            except Exception as exc:      # numpy parses the header with tokenize and literal_eval: any error
                raise ConvcError(f"{option} {p}: not a readable .npy file ({exc})") from None
            offset = fh.tell()
        size = p.stat().st_size
    except OSError as exc:
        raise ConvcError(f"{option} {p}: cannot read ({exc.strerror or exc})") from None
    if dtype.hasobject:
        raise ConvcError(f"{option} {p}: holds Python objects; convc never loads pickled data")
    count = math.prod(int(v) for v in shape)
    need = count * dtype.itemsize
    if size - offset < need:
        raise ConvcError(f"{option} {p}: header declares shape {list(shape)} ({need:,} bytes of data), "
                         f"the file holds {max(0, size - offset):,}: truncated or damaged")
    return tuple(int(v) for v in shape), dtype, offset


def _load_npy(path, option: str, value_bytes: int) -> np.ndarray:
    shape, dtype, _ = npy_header(path, option)
    count = math.prod(shape)
    if count * max(value_bytes, dtype.itemsize) > MAX_ARRAY_BYTES:
        raise ConvcError(f"{option} {path}: shape {list(shape)} holds {count:,} values, "
                         f"beyond the {MAX_ARRAY_BYTES >> 30} GiB convc reads at once; pass fewer")
    if dtype.kind not in "fiub":
        raise ConvcError(f"{option} {path}: dtype {dtype} is not numeric")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ConvcError(f"{option} {path}: cannot read as a .npy array ({exc})") from None


def load_images(path, shape: tuple[int, ...], option: str = "--images") -> np.ndarray:
    """Raw inputs from a ``.npy`` file: ``(N, C, H, W)`` (or one ``(C, H, W)``), N >= 1.

    Returns float32; every value must be finite. The header is checked (shape, size
    limit, truncation) before the data is read.
    """
    shape = tuple(int(v) for v in shape)
    x = _load_npy(path, option, 4)
    if x.dtype.kind == "b":
        raise ConvcError(f"{option} {path}: dtype bool; expected numbers")
    if x.ndim == len(shape):
        x = x[None]
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise ConvcError(f"{option} {path}: images have shape {list(x.shape[1:])} (array {list(x.shape)}), "
                         f"the network expects (N, {', '.join(map(str, shape))})")
    if len(x) == 0:
        raise ConvcError(f"{option} {path}: holds no images (shape {list(x.shape)})")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        first = [int(v) for v in np.argwhere(bad)[0]]
        raise ConvcError(f"{option} {path}: {int(bad.sum())} input value(s) are NaN or infinite "
                         f"(or beyond float32), first at index {first}")
    return x


def load_labels(path, count: int, classes: int | None, option: str = "--labels") -> np.ndarray:
    """Integer class labels from a ``.npy`` file: one per image, each in ``0 .. classes-1``.

    Float labels are accepted only when every value is a whole number.
    """
    y = _load_npy(path, option, 8)
    if y.ndim != 1:
        y = y.reshape(-1) if y.size == count else y
    if y.ndim != 1 or len(y) != count:
        raise ConvcError(f"{option} {path}: {y.size} labels (shape {list(y.shape)}) for {count} images")
    return check_labels(y, classes, f"{option} {path}")


# ----------------------------------------------------------------------------
# which images a model runs on
# ----------------------------------------------------------------------------

def dataset_of(net) -> tuple[str | None, str | None, int, str]:
    """The dataset a model records: ``(name, folder, seed, why)``.

    ``name`` is None when the model records none (``why`` says so). The folder is
    the absolute path ``convc train`` recorded (``meta.data_dir``) or None; the seed
    ``meta.data_seed`` (older models: ``meta.train.seed``, else 0).

    Raises
    ------
    ConvcError
        A recorded field of the wrong type (naming the model file and the field).
    """
    where = getattr(net, "path", None) or f"model {net.name!r}"
    meta = net.meta if isinstance(net.meta, dict) else {}
    name = meta.get("dataset")
    if name is None:
        return None, None, 0, "the model records no dataset (meta.dataset)"
    if not isinstance(name, str) or not name:
        raise ConvcError(f"{where}: field 'meta.dataset' must be a dataset name, got {name!r}")
    folder = meta.get("data_dir")
    if folder is not None and (not isinstance(folder, str) or not folder):
        raise ConvcError(f"{where}: field 'meta.data_dir' must be a folder path, got {folder!r}")
    if "data_seed" in meta:
        seed, field = meta["data_seed"], "meta.data_seed"
    else:
        train = meta.get("train", {})
        seed, field = (train.get("seed", 0) if isinstance(train, dict) else 0), "meta.train.seed"
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConvcError(f"{where}: field {field!r} must be a whole number >= 0, got {seed!r}")
    return name, folder, int(seed), ""


def _default_count(net) -> int:
    pixels = math.prod(net.input.shape)
    return DEFAULT_CALIB if pixels <= 16384 else 2


def model_inputs(net, split: str, count: int | None = None, seed: int = 0,
                 log=warn) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The images a model is calibrated (``split="train"``) or compared (``"test"``) on.

    Parameters
    ----------
    net : Network
        The model; its ``meta`` names the dataset (``dataset``, ``data_dir``, ``data_seed``).
    split : {"train", "test"}
    count : int or None
        At most this many images. None: for ``train``, 256 (2 for inputs of more than
        16,384 values); for ``test``, the whole split, or one random image. Random images
        are also limited to :data:`CALIB_BYTES`.
    seed : int
        Seed of the random images of the fallback.
    log : callable
        Receives the one warning when the fallback is taken.

    Returns
    -------
    x : ndarray
        Raw inputs ``(N, C, H, W)`` float32.
    labels : ndarray or None
        Their labels (dataset images only).
    source : str
        Where they came from, for reports.
    """

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1):
        raise ConvcError(f"the number of images must be a whole number >= 1, got {count!r}")
    where = getattr(net, "path", None) or f"model {net.name!r}"
    name, folder, data_seed, why = dataset_of(net)
    if name is not None:
        if name not in DATASETS:
            why = f"it records dataset {name!r}, which convc does not know"
        elif name == "mnist" and folder is None:
            why = "it records dataset 'mnist' but no folder (meta.data_dir; trained by an older convc?)"
        elif folder is not None and not Path(folder).is_dir():
            why = f"its dataset folder {folder} (meta.data_dir) is gone"
        else:
            try:
                ds = load_dataset(name, net.input.shape, net.classes, data_dir=folder, seed=data_seed)
            except ConvcError as exc:
                raise ConvcError(f"{where}: its recorded dataset {name!r}: {exc}") from None
            x, y = (ds.train_x, ds.train_y) if split == "train" else (ds.test_x, ds.test_y)
            if len(x) == 0:
                raise ConvcError(f"{where}: the {split} split of dataset {name!r}"
                                 f"{f' in {folder}' if folder else ''} holds no images")
            n = len(x) if count is None and split == "test" else min(count or _default_count(net), len(x))
            # per-pixel label maps (scenes) are not one class an image: no top-1 labels
            return (x[:n], y[:n] if y.ndim == 1 else None,
                    f"{name} {split} split, {n} images" + (f" from {folder}" if folder else ""))
    if count is None:
        count = _default_count(net) if split == "train" else 1
    per_image = 4 * math.prod(net.input.shape)
    n = max(1, min(count, CALIB_BYTES // per_image))
    if per_image > 4 * CALIB_BYTES:
        raise ConvcError(f"{where}: one input of shape {list(net.input.shape)} is {per_image / 2**30:.1f} GiB, "
                         f"beyond the {4 * CALIB_BYTES >> 20} MiB convc generates for an image")
    use = "calibrated" if split == "train" else "compared"
    log(f"{where}: {why}; it is {use} on {n} uniform random image{'s' if n != 1 else ''}, "
        f"which may not look like its real inputs (pass --images X.npy)")
    rng = np.random.default_rng(seed)
    x = rng.random((n,) + tuple(net.input.shape), dtype=np.float32)
    capped = f", {CALIB_BYTES >> 20} MiB at most" if n < count else ""
    return x, None, f"{n} uniform random images{capped} ({why})"

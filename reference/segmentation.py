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

Image decoding is :mod:`convc.reference.imagefiles` (Pillow when installed; PNG,
PPM/PGM and ``.npy`` without it; a JPEG without Pillow is refused with a message
that says to install Pillow or convert the images).  Every problem is one
:class:`~convc.errors.ConvcError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convc.errors import ConvcError

from .imagefiles import IMAGE_SUFFIXES, read_image
from .layers import IGNORE_LABEL

__all__ = ["confusion_matrix", "class_accuracies", "pixel_accuracy", "mean_class_accuracy",
           "read_regions", "load_labelled_folder"]


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

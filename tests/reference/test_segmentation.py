"""Segmentation metrics on hand-made arrays; the label reader and the labelled-folder
loader on small files written here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convc.errors import ConvcError
from convc.reference.layers import IGNORE_LABEL
from convc.reference.imagefiles import write_png
from convc.reference.segmentation import (
    class_accuracies,
    confusion_matrix,
    load_labelled_folder,
    mean_class_accuracy,
    pixel_accuracy,
    read_regions,
)



# ---------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------

# true labels (one ignored pixel) and predictions, 2 x 4
LABELS = np.array([[0, 0, 0, 1], [1, 2, 2, -1]])
PRED = np.array([[0, 0, 1, 1], [2, 2, 0, 2]])


def test_metrics_hand_computed():
    # 7 labelled pixels; correct: (0,0), (0,1), (0,3), (1,1) -> 4 / 7
    assert pixel_accuracy(PRED, LABELS) == 4 / 7
    cm = confusion_matrix(PRED, LABELS, 3)
    np.testing.assert_array_equal(cm, [[2, 1, 0],     # class 0: 3 pixels, 2 right, 1 as class 1
                                       [0, 1, 1],     # class 1: 2 pixels, 1 right, 1 as class 2
                                       [1, 0, 1]])    # class 2: 2 pixels, 1 right, 1 as class 0
    np.testing.assert_allclose(class_accuracies(PRED, LABELS, 3), [2 / 3, 1 / 2, 1 / 2])
    assert math.isclose(mean_class_accuracy(PRED, LABELS), (2 / 3 + 1 / 2 + 1 / 2) / 3)
    # a class absent from the labels is left out of the mean, not counted as 0
    acc = class_accuracies(PRED, LABELS, 5)
    assert np.isnan(acc[3]) and np.isnan(acc[4])
    assert math.isclose(mean_class_accuracy(PRED, LABELS, classes=5), (2 / 3 + 1 / 2 + 1 / 2) / 3)
    # the ignored pixel's prediction does not matter, even out of range
    pred = PRED.copy()
    pred[1, 3] = 99
    assert pixel_accuracy(pred, LABELS) == 4 / 7
    np.testing.assert_array_equal(confusion_matrix(pred, LABELS, 3), cm)
    # mean class accuracy is not pixel accuracy: a rare class weighs as much as a common one
    labels = np.array([0] * 9 + [1])
    pred = np.zeros(10, dtype=np.int64)
    assert pixel_accuracy(pred, labels) == 0.9
    assert mean_class_accuracy(pred, labels) == 0.5
    # batches: (N, H, W) works the same as flat
    assert pixel_accuracy(PRED[None], LABELS[None]) == 4 / 7


def test_metrics_edges_and_errors():
    all_ignored = np.full((2, 2), IGNORE_LABEL)
    assert math.isnan(pixel_accuracy(np.zeros((2, 2), np.int64), all_ignored))
    assert math.isnan(mean_class_accuracy(np.zeros((2, 2), np.int64), all_ignored))
    assert confusion_matrix(np.zeros((2, 2), np.int64), all_ignored, 2).sum() == 0
    # another ignore label
    assert pixel_accuracy(np.array([1, 0, 0]), np.array([1, 255, 1]), ignore_label=255) == 0.5
    with pytest.raises(ValueError, match="differ in shape"):
        pixel_accuracy(np.zeros(3, np.int64), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="labels must be integers"):
        pixel_accuracy(np.zeros(3, np.int64), np.zeros(3))
    with pytest.raises(ValueError, match=r"label 3 out of range 0..2"):
        confusion_matrix(np.zeros(2, np.int64), np.array([0, 3]), 3)
    with pytest.raises(ValueError, match=r"prediction 5 out of range 0..2"):
        confusion_matrix(np.array([0, 5]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="classes must be an integer >= 1"):
        confusion_matrix(np.zeros(2, np.int64), np.zeros(2, np.int64), 0)




# ---------------------------------------------------------------------------
# regions files and folders
# ---------------------------------------------------------------------------

def test_read_regions(tmp_path):
    (tmp_path / "a.regions.txt").write_text("0 0 1\n-1 7 2\n\n")
    np.testing.assert_array_equal(read_regions(tmp_path / "a.regions.txt"), [[0, 0, 1], [IGNORE_LABEL, 7, 2]])
    np.testing.assert_array_equal(read_regions(tmp_path / "a.regions.txt", ignore_label=255),
                                  [[0, 0, 1], [255, 7, 2]])
    for text, match in (("0 1\n1 x\n", r"line 2: 'x' is not an integer"),
                        ("0 1\n1\n", "line 2 has 1 labels, the first row has 2"),
                        ("0 8\n", r"label 8 at row 0, column 1 is outside -1 .. 7"),
                        ("0 -2\n", "label -2 at row 0, column 1"),
                        ("\n \n", "no labels"),
                        ("0 1.5\n", "'1.5' is not an integer")):
        (tmp_path / "b.regions.txt").write_text(text)
        with pytest.raises(ConvcError, match=match) as info:
            read_regions(tmp_path / "b.regions.txt")
        assert "b.regions.txt" in str(info.value)


def _folder(tmp_path, sizes=((3, 4), (3, 4), (3, 4))):
    """A Stanford Background style folder: images in three formats, their regions files."""
    root = tmp_path / "sb"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(32)
    images, labels = {}, {}
    for k, (stem, (h, w)) in enumerate(zip(["0001", "0002", "0003"], sizes)):
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if k == 0:
            write_png(root / "images" / f"{stem}.png", rgb)
        elif k == 1:
            (root / "images" / f"{stem}.ppm").write_bytes(f"P6 {w} {h} 255\n".encode() + rgb.tobytes())
        else:
            np.save(root / "images" / f"{stem}.npy", rgb)
        lab = rng.integers(-1, 8, (h, w))
        (root / "labels" / f"{stem}.regions.txt").write_text(
            "\n".join(" ".join(str(v) for v in row) for row in lab) + "\n")
        (root / "labels" / f"{stem}.surfaces.txt").write_text("nonsense not read\n")
        images[stem], labels[stem] = rgb, lab
    return root, images, labels


def test_load_folder(tmp_path):
    root, images, labels = _folder(tmp_path)
    x, y, stems = load_labelled_folder(root)
    assert stems == ["0001", "0002", "0003"]
    assert x.shape == (3, 3, 3, 4) and x.dtype == np.float32
    assert y.shape == (3, 3, 4) and y.dtype == np.int64
    for i, stem in enumerate(stems):
        np.testing.assert_allclose(x[i], images[stem].transpose(2, 0, 1) / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(y[i], labels[stem])        # -1 is IGNORE_LABEL
    assert (y == IGNORE_LABEL).any()
    # centre crop
    x2, y2, _ = load_labelled_folder(root, size=(1, 2))
    np.testing.assert_array_equal(x2, x[:, :, 1:2, 1:3])
    np.testing.assert_array_equal(y2, y[:, 1:2, 1:3])
    # another ignore label
    _, y3, _ = load_labelled_folder(root, ignore_label=255)
    np.testing.assert_array_equal(y3 == 255, y == -1)


def test_load_folder_errors(tmp_path):
    with pytest.raises(ConvcError, match=r"nowhere: no such folder"):
        load_labelled_folder(tmp_path / "nowhere")
    (tmp_path / "half" / "images").mkdir(parents=True)
    with pytest.raises(ConvcError, match=r"half/labels: no such folder"):
        load_labelled_folder(tmp_path / "half")
    (tmp_path / "half" / "labels").mkdir()
    with pytest.raises(ConvcError, match=r"half/images: no images"):
        load_labelled_folder(tmp_path / "half")

    root, _, _ = _folder(tmp_path / "a")
    (root / "labels" / "0002.regions.txt").unlink()
    with pytest.raises(ConvcError, match=r"0002\.ppm: no label file 0002\.regions\.txt"):
        load_labelled_folder(root)

    root, _, _ = _folder(tmp_path / "b")
    (root / "labels" / "0003.regions.txt").write_text("0 0\n0 0\n")
    with pytest.raises(ConvcError, match=r"0003\.regions\.txt: labels are 2x2 but image 0003\.npy is 3x4"):
        load_labelled_folder(root)

    root, _, _ = _folder(tmp_path / "c", sizes=((3, 4), (5, 6), (3, 4)))
    with pytest.raises(ConvcError, match=r"0002\.ppm: image is 5x6 but 0001 is 3x4; give a crop size"):
        load_labelled_folder(root)
    x, _, _ = load_labelled_folder(root, size=(3, 4))
    assert x.shape == (3, 3, 3, 4)
    with pytest.raises(ConvcError, match=r"0001\.png: image is 3x4, smaller than the crop 4x4"):
        load_labelled_folder(root, size=(4, 4))

    root, _, _ = _folder(tmp_path / "d")
    (root / "labels" / "0001.regions.txt").write_text("0 0 0 0\n0 0 x 0\n0 0 0 0\n")
    with pytest.raises(ConvcError, match=r"0001\.regions\.txt: line 2: 'x' is not an integer"):
        load_labelled_folder(root)

    root, _, _ = _folder(tmp_path / "e")
    (root / "images" / "0002.ppm").write_bytes(b"P6 4 3 255\n" + bytes(7))
    with pytest.raises(ConvcError, match=r"0002\.ppm: PPM/PGM data is truncated"):
        load_labelled_folder(root)

    root, _, _ = _folder(tmp_path / "f")
    write_png(root / "images" / "0001.ppm", np.zeros((3, 4, 3), np.uint8))   # wrong content for its suffix
    with pytest.raises(ConvcError, match=r"0001\.ppm: a second image named '0001' \(0001\.png\)"):
        load_labelled_folder(root)

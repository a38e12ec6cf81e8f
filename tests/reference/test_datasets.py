"""Datasets: the digits canvas and split, IDX reading, synthetic data."""

import numpy as np
import pytest

from convc.errors import ConvcError
from convc.reference.datasets import (load_dataset, load_digits, load_mnist, make_synthetic,
                                      read_idx, stratified_split, write_idx)


def test_digits_canvas_and_split():
    ds = load_digits()
    assert ds.train_x.shape[1:] == (1, 32, 32) and ds.train_x.dtype == np.float32
    assert len(ds.train_x) + len(ds.test_x) == 1797
    assert len(ds.test_x) == pytest.approx(0.2 * 1797, abs=10)
    # the border of the canvas is empty, the digit sits in the middle 24x24
    assert ds.train_x[:, :, :4].max() == 0 and ds.train_x[:, :, :, 28:].max() == 0
    assert 0 <= ds.train_x.min() and ds.train_x.max() <= 1
    # fixed split: the same every time, every class in the test split
    again = load_digits()
    np.testing.assert_array_equal(ds.test_y, again.test_y)
    assert set(np.unique(ds.test_y)) == set(range(10))


def test_stratified_split_disjoint():
    y = np.repeat(np.arange(5), 20)
    tr, te = stratified_split(y, 0.2, seed=3)
    assert len(set(tr) & set(te)) == 0 and len(tr) + len(te) == 100
    assert np.all(np.bincount(y[te]) == 4)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_from_idx_files(tmp_path, gz):
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    imgs = {s: rng.integers(0, 256, (n, 28, 28)) for s, n in (("train", 12), ("t10k", 5))}
    labels = {s: rng.integers(0, 10, len(v)) for s, v in imgs.items()}
    for s in imgs:
        write_idx(tmp_path / f"{s}-images-idx3-ubyte{suffix}", imgs[s], compress=gz)
        write_idx(tmp_path / f"{s}-labels-idx1-ubyte{suffix}", labels[s], compress=gz)
    ds = load_mnist(tmp_path)
    assert ds.train_x.shape == (12, 1, 32, 32) and ds.test_x.shape == (5, 1, 32, 32)
    np.testing.assert_array_equal(ds.train_x[:, 0, 2:30, 2:30] * 255, imgs["train"])
    np.testing.assert_array_equal(ds.test_y, labels["t10k"])


def test_mnist_errors(tmp_path):
    with pytest.raises(ConvcError, match="--data-dir"):
        load_mnist(None)
    with pytest.raises(ConvcError, match="no such folder"):
        load_mnist(tmp_path / "missing")
    with pytest.raises(ConvcError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    bad = tmp_path / "x-idx"
    bad.write_bytes(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") + b"\x00" * 12)
    with pytest.raises(ConvcError, match="truncated|bytes"):
        read_idx(bad)
    bad.write_bytes(b"GIF89a....")
    with pytest.raises(ConvcError, match="magic"):
        read_idx(bad)


def test_synthetic_shape_and_repeatable():
    a = make_synthetic((3, 16, 20), classes=4, n_train=30, n_test=10, seed=5)
    b = make_synthetic((3, 16, 20), classes=4, n_train=30, n_test=10, seed=5)
    assert a.train_x.shape == (30, 3, 16, 20)
    np.testing.assert_array_equal(a.train_x, b.train_x)


def test_dataset_shape_mismatch():
    with pytest.raises(ConvcError, match="expects"):
        load_dataset("digits", (3, 32, 32), 10)
    with pytest.raises(ConvcError, match="unknown dataset"):
        load_dataset("imagenet", (1, 32, 32), 10)

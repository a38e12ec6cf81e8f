"""Training scene labellers: the output grid on the input, labels sampled at it, the
scenes dataset, the per-pixel loss in the trainer, and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convc.cli import main
from convc.errors import ConvcError
from convc.reference.archs import build_network
from convc.reference.datasets import SCENES_TEST, SCENES_TRAIN, load_dataset
from convc.reference.modelfile import network_from_graph
from convc.reference.segmentation import pixel_accuracy
from convc.reference.train import TrainConfig, evaluate, train


def _spec(layers, shape=(3, 32, 32), classes=8):
    return {"name": "seg", "input": {"shape": list(shape)}, "classes": classes, "layers": layers}


def _net(layers, shape=(3, 32, 32)):
    net = network_from_graph(_spec(layers, shape), "seg.json")
    net.init_params(seed=0)
    return net


TINY = [{"type": "conv2d", "attrs": {"out_channels": 12, "kernel": 5}}, {"type": "tanh"},
        {"type": "maxpool2d", "attrs": {"kernel": 2}},
        {"type": "conv2d", "attrs": {"out_channels": 12, "kernel": 3}}, {"type": "tanh"},
        {"type": "conv2d", "attrs": {"out_channels": 8, "kernel": 1}}]


def test_output_grid_by_hand():
    # conv 5x5: centre 2; max 2x2: +0.5 at stride 2 -> 2.5, 2; conv 3x3: +1 * 2 -> 4.5, 2
    assert _net(TINY).output_grid() == (4.5, 2)
    # padding moves the centre back; a stride-2 conv doubles the stride
    padded = [{"type": "conv2d", "attrs": {"out_channels": 2, "kernel": 3, "padding": 1, "stride": 2}}]
    assert _net(padded).output_grid() == (0.0, 2)
    # the scene parser: a 46x46 window every 4 pixels, its first centred on 22.5
    assert build_network("sceneparse").output_grid() == (22.5, 4)


def test_label_grid_takes_the_nearest_input_pixel():
    net = _net([{"type": "conv2d", "attrs": {"out_channels": 8, "kernel": 2}}], shape=(3, 5, 6))   # centre 0.5
    labels = (np.arange(5)[:, None] * 10 + np.arange(6)[None, :])[None]     # label = 10 row + col
    got = net.label_grid(labels)
    want = np.array([[11, 12, 13, 14, 15], [21, 22, 23, 24, 25], [31, 32, 33, 34, 35], [41, 42, 43, 44, 45]])
    np.testing.assert_array_equal(got[0], want)                            # floor(0.5 + i + 0.5) = i + 1
    with pytest.raises(ValueError, match="has no pixel grid"):
        build_network("lenet").output_grid()


def test_scenes_dataset_splits_and_refusals():
    ds = load_dataset("scenes", (3, 24, 28), 8, seed=3)
    assert ds.dense and ds.classes == 8
    assert ds.train_x.shape == (SCENES_TRAIN, 3, 24, 28) and ds.test_y.shape == (SCENES_TEST, 24, 28)
    again = load_dataset("scenes", (3, 24, 28), 8, seed=3)
    np.testing.assert_array_equal(again.test_x, ds.test_x)                # deterministic by seed
    with pytest.raises(ConvcError, match=r"'scenes' is RGB \(3, H, W\)"):
        load_dataset("scenes", (1, 32, 32), 8)


def test_a_small_labeller_learns_the_scenes():
    """Pixel accuracy well above always answering the most frequent class, and the held-out
    mean class accuracy recorded in the model."""
    data = load_dataset("scenes", (3, 32, 32), 8)
    net = _net(TINY)
    result = train(net, data, TrainConfig(epochs=6, batch_size=16, lr=0.05, shift=0), quiet=True)
    grid = net.label_grid(data.test_y)
    majority = np.bincount(grid[grid >= 0].ravel()).max() / (grid >= 0).sum()
    assert result.test_accuracy > majority + 0.1, (result.test_accuracy, majority)
    assert result.test_accuracy == pytest.approx(pixel_accuracy(net.predict(data.test_x), grid))
    assert result.test_accuracy == pytest.approx(evaluate(net, data.test_x, data.test_y))
    assert 0 < net.meta["test_mean_class_accuracy"] <= 1 and net.meta["dataset"] == "scenes"


def test_dense_training_refusals():
    data = load_dataset("scenes", (3, 32, 32), 8)
    with pytest.raises(ConvcError, match=r"must output maps \(classes, h, w\)"):
        train(_net(TINY + [{"type": "flatten"}, {"type": "linear", "attrs": {"out_features": 8}},
                           {"type": "logsoftmax"}]), data, TrainConfig(epochs=1, shift=0), quiet=True)
    with pytest.raises(ConvcError, match="--shift 0"):
        train(_net(TINY), data, TrainConfig(epochs=1, shift=2), quiet=True)


def test_cli_trains_a_spec_on_the_scenes(tmp_path, capsys):
    spec = tmp_path / "seg.json"
    spec.write_text(json.dumps(_spec(TINY)))
    out = tmp_path / "seg.npz"
    assert main(["train", "--arch", str(spec), "--dataset", "scenes", "--epochs", "1", "-o", str(out), "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["dataset"] == "scenes" and 0 <= obj["test_accuracy"] <= 1 and out.is_file()
    assert main(["train", "--arch", str(spec), "--dataset", "scenes", "--shift", "2", "-o", str(out)]) == 2
    assert "--shift 0" in capsys.readouterr().err

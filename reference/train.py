"""Minibatch SGD with momentum, step learning-rate schedule and L2 decay.

Update for every parameter ``w`` with gradient ``g`` of the mean batch loss:

    v <- momentum * v - lr_e * (g + weight_decay * w)
    w <- w + v

with ``lr_e = lr * lr_gamma ** (epoch // lr_step)``. Biases are not decayed.
Input normalization (per-channel mean and std of the training images) is
computed here and stored in the network, so a model file carries it.
Optional augmentation shifts each training image by up to ``shift`` pixels
(zero fill); it never touches the test split.

Two kinds of network and dataset: a classifier (last layer ``logsoftmax``, one label
an image, :func:`~convc.reference.layers.nll_loss`, top-1 accuracy), and a scene
labeller (output maps ``(classes, h, w)``, a label map an image, sampled at the
output's pixels by :meth:`Network.label_grid`; a final ``pixel_logsoftmax`` is applied
in the loss when the network ends with the scores, as the compiled ``sceneparse`` does;
:func:`~convc.reference.layers.pixel_nll_loss` skipping the ignore label, pixel
accuracy; the held-out mean class accuracy goes into the model's ``meta``). A scene
labeller is trained without shifts (they would move the labels).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from convc.errors import ConvcError
from convc.progress import Progress

from .datasets import Dataset
from .layers import PixelLogSoftmax, nll_loss, pixel_nll_loss
from .network import Network
from .segmentation import mean_class_accuracy, pixel_accuracy

__all__ = ["TrainConfig", "TrainResult", "train", "evaluate"]


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_step: int = 8
    lr_gamma: float = 0.2
    shift: int = 2
    seed: int = 0

    def __post_init__(self):
        def opt(name):
            return "--" + name.replace("_", "-")

        for name in ("epochs", "batch_size", "lr_step", "shift", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConvcError(f"training setting {opt(name)} must be a whole number, got {v!r}")
        for name in ("lr", "lr_gamma", "momentum", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConvcError(f"training setting {opt(name)} must be a finite number, got {v!r}")
        for name in ("epochs", "batch_size", "lr_step"):
            if getattr(self, name) < 1:
                raise ConvcError(f"training setting {opt(name)} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "lr_gamma"):
            if not getattr(self, name) > 0:
                raise ConvcError(f"training setting {opt(name)} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.momentum < 1:
            raise ConvcError(f"training setting --momentum must be in [0, 1), got {self.momentum}")
        for name in ("weight_decay", "shift", "seed"):
            if getattr(self, name) < 0:
                raise ConvcError(f"training setting {opt(name)} must be >= 0, got {getattr(self, name)}")

    def check_input(self, shape: tuple[int, ...]) -> None:
        """Refuse settings that do not fit inputs of ``shape`` ``(C, H, W)`` (before any data is read)."""
        side = min(int(v) for v in shape[1:])
        if self.shift >= side:
            raise ConvcError(f"training setting --shift {self.shift} must be below the input's "
                             f"{shape[1]}x{shape[2]} size (at most {side - 1} pixels)")


@dataclass
class TrainResult:
    test_accuracy: float
    train_accuracy: float
    train_seconds: float
    epochs: int
    history: list[dict] = field(default_factory=list)


def evaluate(net: Network, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``net`` on ``(x, y)``; for label maps ``y`` ``(N, H, W)``, the
    pixel accuracy at the output's pixels (:meth:`Network.label_grid`)."""
    if len(y) == 0:
        return float("nan")
    if y.ndim == 3:
        return pixel_accuracy(net.predict(x), net.label_grid(y))
    return float(np.mean(net.predict(x) == y))


def _shift_batch(x: np.ndarray, rng: np.random.Generator, shift: int) -> np.ndarray:
    n, _, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (shift, shift), (shift, shift)))
    dy = rng.integers(0, 2 * shift + 1, n)
    dx = rng.integers(0, 2 * shift + 1, n)
    out = np.empty_like(x)
    for i in range(n):
        out[i] = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    return out


def train(net: Network, data: Dataset, cfg: TrainConfig, quiet: bool = False) -> TrainResult:
    """Train ``net`` in place on ``data``; returns the held-out accuracy and timing."""
    dense = data.train_y.ndim == 3
    head = None          # the per-pixel log-softmax, when the network ends with the scores
    if dense:
        if len(net.output_shape) != 3:
            raise ConvcError(f"network {net.name!r}: dataset {data.name!r} labels every pixel, so the network "
                             f"must output maps (classes, h, w); it outputs {list(net.output_shape)}")
        if net.layers[-1].type != "pixel_logsoftmax":
            head = PixelLogSoftmax()
    elif net.layers[-1].type != "logsoftmax":
        raise ConvcError(f"network {net.name!r}: training needs a final 'logsoftmax' layer, "
                         f"the last layer is {net.layers[-1].type!r}")
    if net.output_shape != (data.classes,) and net.output_shape[0] < data.classes:
        raise ConvcError(f"network {net.name!r} outputs {list(net.output_shape)}, "
                         f"dataset has {data.classes} classes")
    if dense and cfg.shift:
        raise ConvcError(f"dataset {data.name!r} labels every pixel: train it with --shift 0 (a shift would move "
                         f"the image under its labels)")
    cfg.check_input(net.input.shape)
    for split, x, y in (("train", data.train_x, data.train_y), ("test", data.test_x, data.test_y)):
        if len(x) == 0 or len(x) != len(y):
            raise ConvcError(f"dataset {data.name!r}{f' in {data.folder}' if data.folder else ''}: the {split} "
                             f"split holds {len(x)} images and {len(y)} labels; training needs both splits")
    rng = np.random.default_rng(cfg.seed)
    train_y = net.label_grid(data.train_y) if dense else data.train_y      # at the output's pixels
    loss_of = pixel_nll_loss if dense else nll_loss
    net.input.mean = [float(v) for v in data.train_x.mean(axis=(0, 2, 3))]
    net.input.std = [float(max(v, 1e-6)) for v in data.train_x.std(axis=(0, 2, 3))]
    velocity = {key: np.zeros_like(p) for key, p, _ in net.param_groups()}
    n = len(data.train_x)
    steps = (n + cfg.batch_size - 1) // cfg.batch_size
    history = []
    start = time.perf_counter()
    bar = Progress(cfg.epochs * steps, "train", quiet=quiet)
    for epoch in range(cfg.epochs):
        lr = cfg.lr * cfg.lr_gamma ** (epoch // cfg.lr_step)
        order = rng.permutation(n)
        loss_sum, correct, seen = 0.0, 0, 0
        for step in range(steps):
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            xb, yb = data.train_x[idx], train_y[idx]
            if cfg.shift:
                xb = _shift_batch(xb, rng, cfg.shift)
            logp = net.forward(xb)
            if head is not None:
                logp = head.forward(logp)
            loss, dlogp = loss_of(logp, yb)
            net.backward(dlogp if head is None else head.backward(dlogp))
            for key, p, g in net.param_groups():   # a shared array once, with the summed gradient
                if cfg.weight_decay and not key.endswith(".bias"):
                    g = g + cfg.weight_decay * p
                v = velocity[key]
                v *= cfg.momentum
                v -= lr * g
                p += v
            loss_sum += loss * len(idx)
            labelled = yb >= 0                      # pixels with the ignore label count nowhere
            correct += int(np.sum((np.argmax(logp, axis=1) == yb) & labelled))
            seen += int(labelled.sum()) if dense else len(idx)
            shown = loss_sum / (step * cfg.batch_size + len(idx))
            bar.update(epoch * steps + step + 1,
                       f"epoch {epoch + 1}/{cfg.epochs} loss {shown:.4f} acc {correct / max(seen, 1):.4f}",
                       final=step == steps - 1)
        if not np.isfinite(loss_sum):
            raise ConvcError(f"training diverged at epoch {epoch + 1} (loss is not finite) with --lr {cfg.lr}, "
                             f"--momentum {cfg.momentum}, --weight-decay {cfg.weight_decay}, --lr-gamma "
                             f"{cfg.lr_gamma}; try a smaller --lr (or --weight-decay)")
        history.append({"epoch": epoch + 1, "lr": lr, "loss": loss_sum / n, "train_accuracy": correct / max(seen, 1)})
    seconds = time.perf_counter() - start
    test_acc = evaluate(net, data.test_x, data.test_y)
    train_acc = evaluate(net, data.train_x, data.train_y)
    net.meta.update({"dataset": data.name, "data_dir": data.folder, "data_seed": data.seed,
                     "train": asdict(cfg), "test_accuracy": test_acc, "train_accuracy": train_acc})
    if dense:
        net.meta["test_mean_class_accuracy"] = mean_class_accuracy(
            net.predict(data.test_x), net.label_grid(data.test_y), data.classes)
    return TrainResult(test_acc, train_acc, seconds, cfg.epochs, history)

"""Elementwise nonlinearities, the linear layer, flatten, log-softmax and the NLL loss."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import Layer, _check_batch, _check_int


# ---------------------------------------------------------------------------
# elementwise nonlinearities
# ---------------------------------------------------------------------------

@dataclass(eq=False)
class _Elementwise(Layer):
    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(int(v) for v in in_shape)


@dataclass(eq=False)
class ReLU(_Elementwise):
    """``y = max(x, 0)``; gradient 1 where ``x > 0`` else 0."""

    type: ClassVar[str] = "relu"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._cache = x > 0
        return np.where(self._cache, x, x.dtype.type(0))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        pos = self._require_cache()
        self.grads = {}
        return np.where(pos, dy, dy.dtype.type(0))


@dataclass(eq=False)
class Tanh(_Elementwise):
    """``y = tanh(x)``; gradient ``1 - y^2``."""

    type: ClassVar[str] = "tanh"

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.tanh(x)
        self._cache = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._require_cache()
        self.grads = {}
        g = y * y
        if np.result_type(dy, g) != g.dtype or dy.shape != g.shape:
            return dy * (1 - g)
        np.subtract(1, g, out=g)       # the same two roundings, without temporaries
        return np.multiply(dy, g, out=g)


@dataclass(eq=False)
class Abs(_Elementwise):
    """``y = |x|``; gradient ``sign(x)`` (0 at ``x == 0``)."""

    type: ClassVar[str] = "abs"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._cache = np.sign(x)
        return np.abs(x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        sign = self._require_cache()
        self.grads = {}
        return dy * sign


# ---------------------------------------------------------------------------
# vector layers
# ---------------------------------------------------------------------------

@dataclass(eq=False)
class Linear(Layer):
    r"""Fully connected layer ``y = x W^T + b``.

    ``params = {"weight": (out_features, in_features), "bias": (out_features,)}``;
    input ``(N, in_features)``, output ``(N, out_features)``.  Init is
    ``U(-1/sqrt(in_features), +1/sqrt(in_features))``, bias 0.
    """

    type: ClassVar[str] = "linear"

    in_features: int
    out_features: int

    def __post_init__(self) -> None:
        super().__post_init__()
        self.in_features = _check_int(self.type, "in_features", self.in_features, 1)
        self.out_features = _check_int(self.type, "out_features", self.out_features, 1)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"weight": (self.out_features, self.in_features), "bias": (self.out_features,)}

    def init_params(self, rng: np.random.Generator, dtype=np.float32) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        w = rng.uniform(-bound, bound, size=(self.out_features, self.in_features))
        self.params = {
            "weight": w.astype(dtype),
            "bias": np.zeros(self.out_features, dtype=dtype),
        }
        self._zero_grads()

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        in_shape = tuple(int(v) for v in in_shape)
        if len(in_shape) != 1:
            raise ValueError(
                f"{self.type}: expected a per-sample vector shape (F,), got {in_shape}; "
                "insert a flatten layer"
            )
        if in_shape[0] != self.in_features:
            raise ValueError(
                f"{self.type}: expected {self.in_features} input features, got {in_shape[0]}"
            )
        return (self.out_features,)

    def macs(self, in_shape: tuple[int, ...]) -> int:
        """``in_features * out_features``."""
        self.output_shape(in_shape)
        return self.in_features * self.out_features

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_batch(self.type, x, 2)
        self.output_shape(x.shape[1:])
        self._require_params()
        self._cache = x
        y = x @ self.params["weight"].T
        y += self.params["bias"]
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x = self._require_cache()
        w = self.params["weight"]
        self.grads = {
            "weight": (dy.T @ x).astype(w.dtype, copy=False),
            "bias": dy.sum(axis=0).astype(self.params["bias"].dtype, copy=False),
        }
        return dy @ w


@dataclass(eq=False)
class Flatten(Layer):
    """``(N, C, H, W) -> (N, C*H*W)`` in C order (any per-sample shape works)."""

    type: ClassVar[str] = "flatten"

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        in_shape = tuple(int(v) for v in in_shape)
        if len(in_shape) < 1:
            raise ValueError(f"{self.type}: expected a per-sample shape, got {in_shape}")
        return (math.prod(in_shape),)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 2:
            raise ValueError(f"{self.type}: expected a batched input, got shape {x.shape}")
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        shape = self._require_cache()
        self.grads = {}
        return dy.reshape(shape)


@dataclass(eq=False)
class LogSoftmax(Layer):
    r"""``y_k = x_k - log(sum_j exp(x_j))`` over the last axis.

    Computed as ``z = x - max(x)``, ``y = z - log(sum exp z)`` so that it does
    not overflow.  Backward: ``dx = dy - exp(y) * sum_k dy_k``.
    """

    type: ClassVar[str] = "logsoftmax"

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        in_shape = tuple(int(v) for v in in_shape)
        if len(in_shape) < 1:
            raise ValueError(f"{self.type}: expected a per-sample shape (F,), got {in_shape}")
        return in_shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        z = x - x.max(axis=-1, keepdims=True)
        y = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        self._cache = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._require_cache()
        self.grads = {}
        return dy - np.exp(y) * dy.sum(axis=-1, keepdims=True)


def nll_loss(logp: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    r"""Mean negative log-likelihood and its gradient.

    .. math::

        L = -\frac{1}{N} \sum_n \mathrm{logp}[n, \mathrm{labels}[n]], \qquad
        \frac{\partial L}{\partial \mathrm{logp}[n, k]} = -\frac{[k = \mathrm{labels}[n]]}{N}

    Parameters
    ----------
    logp : ndarray, shape (N, K)
        Log-probabilities (output of :class:`LogSoftmax`).
    labels : ndarray of int, shape (N,)
        Class indices in ``0..K-1``.

    Returns
    -------
    loss : float
    dlogp : ndarray, shape (N, K), dtype of ``logp``
    """
    logp = np.asarray(logp)
    labels = np.asarray(labels)
    if logp.ndim != 2:
        raise ValueError(f"nll_loss: logp must be (N, K), got shape {logp.shape}")
    n, k = logp.shape
    if labels.shape != (n,):
        raise ValueError(f"nll_loss: labels must have shape ({n},), got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"nll_loss: labels must be integers, got dtype {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= k):
        bad = labels[(labels < 0) | (labels >= k)][0]
        raise ValueError(f"nll_loss: label {int(bad)} out of range 0..{k - 1}")
    rows = np.arange(n)
    loss = -float(logp[rows, labels].sum()) / n
    grad = np.zeros_like(logp)
    grad[rows, labels] = -1.0 / n
    return loss, grad

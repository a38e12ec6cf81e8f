"""The base class of every reference layer and the checks they share."""

from __future__ import annotations

import copy
import dataclasses
import numbers
from typing import Any, ClassVar

import numpy as np


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------

def _check_int(layer: str, name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as a Python int, or raise ValueError naming the field."""
    # bool is an int subclass; ``kernel=True`` is always a mistake.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{layer}: {name} must be an integer >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{layer}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_map_shape(layer: str, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    in_shape = tuple(in_shape)
    if len(in_shape) != 3:
        raise ValueError(f"{layer}: expected a per-sample input shape (C, H, W), got {in_shape}")
    c, h, w = (int(v) for v in in_shape)
    if c < 1 or h < 1 or w < 1:
        raise ValueError(f"{layer}: input shape must be positive, got {in_shape}")
    return c, h, w


def _check_batch(layer: str, x: np.ndarray, ndim: int) -> None:
    if x.ndim != ndim:
        what = "(N, C, H, W)" if ndim == 4 else "(N, F)"
        raise ValueError(f"{layer}: expected a batched input {what}, got shape {x.shape}")


# ---------------------------------------------------------------------------
# base class
# ---------------------------------------------------------------------------

class Layer:
    """Base class of all reference layers.

    Attributes
    ----------
    type : str
        Name of the layer in model files (class variable), e.g. ``"conv2d"``.
    params : dict[str, ndarray]
        Trainable arrays; ``{}`` for layers without parameters.
    grads : dict[str, ndarray]
        Gradients of the loss with respect to ``params`` (same keys), written
        by :meth:`backward`.
    multi_input : bool
        False (class variable) except for layers with several inputs; see the
        multi-input API before :class:`PyramidDown`.
    """

    type: ClassVar[str] = ""
    #: True for a layer that reads several inputs (:class:`Concat`): it has
    #: ``forward_multi(xs)`` and its ``backward`` returns a list of gradients.
    multi_input: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._cache: Any = None

    # -- parameters ---------------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Expected shape of each parameter array, from the attributes."""
        return {}

    def init_params(self, rng: np.random.Generator, dtype=np.float32) -> None:
        """Fill ``params`` with fresh random values and ``grads`` with zeros."""
        self.params = {}
        self.grads = {}

    def _zero_grads(self) -> None:
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _require_params(self) -> None:
        # Cheap check so that a wrongly loaded model fails loudly, not with a
        # broadcasting error deep inside a matmul.
        for name, shape in self.param_shapes().items():
            p = self.params.get(name)
            if p is None:
                raise RuntimeError(
                    f"{self.type}: parameter {name!r} not set; call init_params() or load weights"
                )
            if p.shape != shape:
                raise ValueError(
                    f"{self.type}: parameter {name!r} has shape {p.shape}, expected {shape}"
                )

    def _require_cache(self) -> Any:
        if self._cache is None:
            raise RuntimeError(f"{self.type}: backward() called before forward()")
        return self._cache

    # -- shapes and cost ----------------------------------------------------
    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample output shape for per-sample input shape ``in_shape``."""
        raise NotImplementedError

    def macs(self, in_shape: tuple[int, ...]) -> int:
        """Multiply-accumulates per sample (0 unless overridden)."""
        self.output_shape(in_shape)  # validate
        return 0

    # -- computation --------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Compute the output for batch ``x`` and cache what backward needs."""
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Return dL/dx for dL/dy ``dy`` of the last forward; set ``grads``."""
        raise NotImplementedError

    # -- serialization ------------------------------------------------------
    def attrs(self) -> dict:
        """JSON-serializable attributes (the dataclass fields)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}

"""Vectorized NumPy reference layers (forward and backward).

These layers define the floating-point semantics that the rest of convc
(training, quantization, the compiler and the hardware simulator) is measured
against.  Every layer works on a batch:

* feature maps are ``(N, C, H, W)``,
* vectors are ``(N, F)``.

Shapes passed to :meth:`Layer.output_shape` and :meth:`Layer.macs` are
*per sample* (no batch dimension): ``(C, H, W)`` or ``(F,)``.

Layers compute in the dtype of their input and parameters (``float32`` for
training, ``float64`` for gradient checks); nothing is upcast silently.

Each concrete layer is a ``@dataclass(eq=False)`` whose dataclass fields are
exactly its attributes as written to model files (see :meth:`Layer.attrs`).
Parameters, gradients and forward caches are plain instance attributes set in
``__post_init__``.

The slow loop implementations in :mod:`convc.reference.naive` state the same
equations element by element and are used by the tests.

Scene parsing (multiscale, Farabet et al. 2013) adds :class:`PyramidDown`,
:class:`Upsample`, :class:`PixelLogSoftmax` with :func:`pixel_nll_loss` (ignore
label :data:`IGNORE_LABEL`), and :class:`Concat`, the one layer with several
inputs (``multi_input``: ``forward_multi(xs)``, ``backward`` returns a list;
registered in :data:`MULTI_INPUT_TYPES`, not in :data:`LAYER_TYPES`).
"""

from .base import Layer
from .basic import Abs, Flatten, Linear, LogSoftmax, ReLU, Tanh, nll_loss
from .conv import Conv2d, random_table
from .norm import LocalContrastNorm, LocalResponseNorm
from .pool import AvgPool2d, L2Pool2d, MaxPool2d
from .scene import IGNORE_LABEL, Concat, PixelLogSoftmax, PyramidDown, Upsample, pixel_nll_loss

__all__ = [
    "Layer",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "L2Pool2d",
    "LocalContrastNorm",
    "LocalResponseNorm",
    "ReLU",
    "Tanh",
    "Abs",
    "Linear",
    "Flatten",
    "LogSoftmax",
    "PyramidDown",
    "Upsample",
    "Concat",
    "PixelLogSoftmax",
    "IGNORE_LABEL",
    "LAYER_TYPES",
    "MULTI_INPUT_TYPES",
    "nll_loss",
    "pixel_nll_loss",
    "random_table",
]

LAYER_TYPES: dict[str, type[Layer]] = {
    cls.type: cls
    for cls in (
        Conv2d,
        MaxPool2d,
        AvgPool2d,
        L2Pool2d,
        LocalContrastNorm,
        LocalResponseNorm,
        ReLU,
        Tanh,
        Abs,
        Linear,
        Flatten,
        LogSoftmax,
        PyramidDown,
        Upsample,
        PixelLogSoftmax,
    )
}

#: Layers that read several inputs (``multi_input``); a chain cannot hold them.
MULTI_INPUT_TYPES: dict[str, type[Layer]] = {cls.type: cls for cls in (Concat,)}

"""Slow, loop-based reference implementations of every layer.

Used only by the tests, on tiny shapes, to hold the vectorized layers of
:mod:`convc.reference.layers` to the equations written out element by
element.  Nothing here is vectorized beyond allocating the output arrays; no
im2col, no sliding windows, no filtering helpers are shared with the fast
code.  Arrays follow the layer conventions: maps are ``(N, C, H, W)``,
vectors ``(N, F)``; results have the dtype of ``x``.

Every function takes the parameters explicitly.  Connection tables are *not*
handled here: the caller passes a weight that is already masked and masks
``dweight`` itself.

The LCN backward (:func:`lcn_backward`) is written with explicit loops and
the chain rule in *scatter* form (each forward term pushes its gradient to its
inputs), independent of the vectorized adjoint-filter form; it is also
verified by the finite-difference checks.  The LRN backward
(:func:`lrn_backward`) is likewise in scatter form, while the vectorized layer
gathers over the mirrored window.
"""

from .conv import conv2d_backward, conv2d_forward
from .pool import avgpool2d_backward, avgpool2d_forward, l2pool2d_backward, l2pool2d_forward, maxpool2d_backward, maxpool2d_forward
from .norm import lcn_backward, lcn_forward, lrn_backward, lrn_forward
from .basic import abs_backward, abs_forward, flatten_backward, flatten_forward, linear_backward, linear_forward, logsoftmax_backward, logsoftmax_forward, nll_loss, relu_backward, relu_forward, tanh_backward, tanh_forward
from .scene import concat_backward, concat_forward, pixel_logsoftmax_backward, pixel_logsoftmax_forward, pixel_nll_loss, pyrdown_backward, pyrdown_forward, upsample_backward, upsample_forward

__all__ = [
    "conv2d_forward",
    "conv2d_backward",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
    "l2pool2d_forward",
    "l2pool2d_backward",
    "lcn_forward",
    "lcn_backward",
    "lrn_forward",
    "lrn_backward",
    "relu_forward",
    "relu_backward",
    "tanh_forward",
    "tanh_backward",
    "abs_forward",
    "abs_backward",
    "linear_forward",
    "linear_backward",
    "flatten_forward",
    "flatten_backward",
    "logsoftmax_forward",
    "logsoftmax_backward",
    "nll_loss",
    "pyrdown_forward",
    "pyrdown_backward",
    "upsample_forward",
    "upsample_backward",
    "concat_forward",
    "concat_backward",
    "pixel_logsoftmax_forward",
    "pixel_logsoftmax_backward",
    "pixel_nll_loss",
]

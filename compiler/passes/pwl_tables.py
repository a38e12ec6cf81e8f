"""PWL tables: a minimax piecewise-linear table for every function that
has no multiplier-free form.

- ``tanh`` activations: input = the convolution's ``conv_fmt``, output
  ``out_fmt``, fitted over the whole input range so the error bound holds for
  every code the hardware can see;
- local contrast normalization: ``sqrt`` (s2 -> s) over the whole
  non-negative range of its input format, and ``1/d`` on ``[eps, max]``
  (``d = max(s, mean, eps)`` never goes below ``eps``).

The measured largest error of each table (every input code, real units)
is kept on the node for the report.
"""

from __future__ import annotations

import numpy as np

from convc.errors import ConvcError

from ..ir import ConvNode, IRGraph, LCNNode
from ..pwl_fit import fit_pwl, make_tanh


def run(graph: IRGraph, segments: int) -> IRGraph:
    if not 1 <= segments <= 32:
        raise ConvcError(f"--pwl-segments {segments}: choose 1..32 (the hardware table holds 32)")
    for node in graph.nodes:
        if isinstance(node, ConvNode) and node.act is not None and node.act.kind == "tanh":
            q = node.quant
            q.pwl, q.pwl_error = make_tanh(segments, q.conv_fmt, q.out_fmt)
        elif isinstance(node, LCNNode):
            q = node.quant
            q.sqrt_pwl, q.sqrt_error = fit_pwl(np.sqrt, 0.0, q.sq_fmt.max_value, segments, q.sq_fmt, q.s_fmt)
            q.recip_pwl, q.recip_error = fit_pwl(lambda d: 1.0 / d, q.recip_lo, q.s_fmt.max_value, segments,
                                                 q.s_fmt, q.r_fmt)
    return graph

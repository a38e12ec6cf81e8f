"""A convolution layer with random weights, bias and input for the reference tests
(``tests/reference/conftest.py`` puts this folder on ``sys.path``)."""

from __future__ import annotations

import numpy as np

from convc.reference.layers import Conv2d, random_table


def make_conv(n, cin, cout, h, w, k, s, p, fan_in, seed=0):
    """(layer, input of shape (n, cin, h, w), rng) in float64; ``fan_in``: None (full
    connection), an int (:func:`random_table` of that fan-in) or the table itself."""
    rng = np.random.default_rng(seed)
    if isinstance(fan_in, list):
        table = fan_in
    else:
        table = None if fan_in is None else random_table(cout, cin, fan_in, rng)
    layer = Conv2d(cin, cout, k, stride=s, padding=p, table=table)
    layer.init_params(rng, dtype=np.float64)
    layer.params["bias"] = rng.standard_normal(cout)
    x = rng.standard_normal((n, cin, h, w))
    return layer, x, rng

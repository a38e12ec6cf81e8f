"""What the ``convc`` commands share: the checks of option values and the one result
each prints (text, or with ``--json`` exactly one strict JSON object on stdout).

Problems with an option's value are a :class:`~convc.errors.ConvcError` (exit status 2
and one message, :func:`convc.cli.main`).
"""

from __future__ import annotations

import json
import math

import numpy as np

from .errors import ConvcError

__all__ = ["finite", "emit", "check_seed", "check_count", "parse_floats", "parse_shape"]


def finite(obj):
    """``obj`` with every NaN or infinite float replaced by None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, np.floating):
        return finite(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def emit(args, obj: dict, text: str) -> None:
    """Print a command's result: ``obj`` as one JSON line with ``--json``, else ``text``."""
    if args.json:
        print(json.dumps(finite(obj), indent=None, sort_keys=False, allow_nan=False))
    else:
        print(text)


def check_seed(seed) -> int:
    """``--seed``, which must be >= 0."""
    if seed < 0:
        raise ConvcError(f"--seed must be a whole number >= 0, got {seed}")
    return seed


def check_count(option: str, value):
    """``value`` of ``option`` (a count such as ``--limit``): None or >= 1."""
    if value is not None and value < 1:
        raise ConvcError(f"{option} must be a whole number >= 1, got {value}")
    return value


def parse_floats(option: str, text: str | None) -> list[float] | None:
    """``option``'s comma-separated finite numbers (``--mean 0.5,0.5,0.5``), or None."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ConvcError(f"{option}: expected numbers separated by commas, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise ConvcError(f"{option}: values must be finite, got {text!r}")
    return values


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``--input-shape C,H,W`` as three whole numbers >= 1, or None."""
    if text is None:
        return None
    try:
        dims = tuple(int(v) for v in text.split(","))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise ConvcError(f"--input-shape: expected three whole numbers C,H,W >= 1, got {text!r}")
    return dims

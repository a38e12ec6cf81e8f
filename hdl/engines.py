"""The engines of an accelerator, built from one hardware configuration.

``build_engine(name, hw)`` instantiates an engine sized by a
:class:`~convc.compiler.hwconfig.HardwareConfig`; ``convc synth`` uses it
to report Yosys resource counts for a compiled folder.
"""

from __future__ import annotations

from convc.compiler.engine_figures import post_lanes
from convc.compiler.hwconfig import HardwareConfig
from convc.errors import ConvcError

from .conv import ConvEngine
from .fc import FCEngine
from .lcn import LCNEngine
from .pointwise import PointwiseEngine
from .pool import PoolEngine

__all__ = ["ENGINES", "build_engine"]


def _conv(hw: HardwareConfig):
    return ConvEngine(hw)


def _pool(hw: HardwareConfig):
    return PoolEngine(lanes=hw.out_lanes, bits=hw.bits, kmax=max(hw.pool_kmax, 1), max_width=hw.max_width)


def _fc(hw: HardwareConfig):
    if not hw.has_fc:
        raise ConvcError("this configuration has no fully connected engine (fc_in_lanes = 0)")
    return FCEngine(in_lanes=hw.fc_in_lanes, out_lanes=hw.fc_out_lanes, bits=hw.bits,
                    psum_words=hw.fc_psum_words)


def _lcn(hw: HardwareConfig):
    if not hw.lcn_kmax or not hw.lcn_channels:
        raise ConvcError(f"this configuration has no LCN engine (lcn_kmax = {hw.lcn_kmax}, "
                         f"lcn_channels = {hw.lcn_channels})")
    return LCNEngine(channels=hw.lcn_channels, bits=hw.bits, kmax=hw.lcn_kmax, max_width=hw.max_width)


def _pointwise(hw: HardwareConfig):
    return PointwiseEngine(hw.bits, lanes=post_lanes(hw), max_segments=hw.pwl_segments)


ENGINES = {"conv": _conv, "pool": _pool, "fc": _fc, "lcn": _lcn, "pointwise": _pointwise}


def build_engine(name: str, hw: HardwareConfig):
    if name not in ENGINES:
        raise ConvcError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    return ENGINES[name](hw)

"""Typed IR: the network as the compiler sees it.

Every tensor between nodes is a stack of maps ``(C, H, W)``; a vector of F
features is ``(F, 1, 1)`` (so ``flatten`` needs no node: the memory layout
is the same). Nodes carry float parameters from the model and, after the
quantization pass, their integer parameters and fixed-point formats.

Passes (``compiler/passes/``, one per file) each take and return an
:class:`IRGraph`; see :mod:`convc.pipeline` for their order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .numeric import QFormat
from .pwl_table import PWLTable

__all__ = ["Act", "Pool", "Node", "ConvNode", "ActNode", "PoolNode", "LCNNode", "UpsampleNode", "ConcatNode",
           "IRGraph",
           "ConvQuant", "LCNQuant", "ACT_KINDS", "POOL_KINDS"]

ACT_KINDS = ("relu", "abs", "tanh")
POOL_KINDS = ("max", "avg")


@dataclass(frozen=True)
class Act:
    kind: str  # one of ACT_KINDS

    def __post_init__(self):
        if self.kind not in ACT_KINDS:
            raise ValueError(f"activation {self.kind!r} not in {ACT_KINDS}")


@dataclass(frozen=True)
class Pool:
    kind: str  # one of POOL_KINDS
    kernel: int
    stride: int

    def __post_init__(self):
        if self.kind not in POOL_KINDS:
            raise ValueError(f"pooling {self.kind!r} not in {POOL_KINDS}")

    def out_size(self, n: int) -> int:
        return (n - self.kernel) // self.stride + 1


@dataclass
class Node:
    """Common to all nodes: a name, the model layers it stands for, shapes, and what it
    reads: ``input``, the name of the node whose output it reads (None: the network
    input). A concatenation reads several (:class:`ConcatNode`)."""

    name: str
    sources: list[str]
    in_shape: tuple[int, int, int] = (0, 0, 0)
    out_shape: tuple[int, int, int] = (0, 0, 0)
    input: str | None = None


@dataclass
class ConvQuant:
    """Integer parameters and formats of a convolution (quantization pass)."""

    in_fmt: QFormat
    w_fmt: QFormat
    conv_fmt: QFormat           # after requantizing the accumulator
    out_fmt: QFormat            # after activation and pooling
    weight: np.ndarray          # int64 (out, in, K, K)
    bias: np.ndarray            # int64 (out,), fraction bias_frac, fits int32
    bias_frac: int
    pwl: PWLTable | None = None  # the activation table when act is tanh
    pwl_error: float = 0.0      # its largest error (real units), every input code
    avg_mul: int = 0
    avg_shift: int = 0

    @property
    def acc_frac(self) -> int:
        return self.in_fmt.frac + self.w_fmt.frac

    @property
    def acc_shift(self) -> int:
        return self.acc_frac - self.conv_fmt.frac

    @property
    def bias_shift(self) -> int:
        return self.acc_frac - self.bias_frac


@dataclass
class ConvNode(Node):
    """Convolution (or fully connected: 1x1 on 1x1 maps) with fused
    activation and pooling: ``pool(act(conv(x) + b))``."""

    in_c: int = 0
    out_c: int = 0
    kernel: int = 1
    stride: int = 1
    pad: int = 0
    table: list[list[int]] | None = None
    weight: np.ndarray | None = None  # float (out, in, K, K), zero outside the table
    bias: np.ndarray | None = None    # float (out,)
    act: Act | None = None
    pool: Pool | None = None
    quant: ConvQuant | None = None
    #: log2 of the nearest upsampling of the input it reads (the record's ``up`` field):
    #: the convolution sees ``(C, H << up, W << up)``
    up: int = 0
    #: the node whose weights it uses (stored once; the quantization makes them equal)
    share: str | None = None
    #: keep the input's format (a smoothing filter whose weights are >= 0 and sum to 1 at
    #: most: its output never exceeds its input), so every level of a pyramid has one format
    keep_fmt: bool = False
    #: nodes naming one group get one conv format (the widest range over them): the
    #: classifiers of a folded concatenation, whose scores meet in one region
    fmt_group: str | None = None
    #: a :class:`ConcatNode` it writes into (its maps from ``into_map0`` of that region),
    #: instead of a region of its own
    into: str | None = None
    into_map0: int = 0

    def inputs_of(self, o: int) -> list[int]:
        """The input maps output ``o`` reads."""
        return list(self.table[o]) if self.table is not None else list(range(self.in_c))

    @property
    def conv_shape(self) -> tuple[int, int, int]:
        _, h, w = self.in_shape
        h, w = h << self.up, w << self.up
        k, s, p = self.kernel, self.stride, self.pad
        return (self.out_c, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)

    @property
    def padded_width(self) -> int:
        """A padded input row as the engine's line buffer holds it (upsampled)."""
        return (self.in_shape[2] << self.up) + 2 * self.pad

    @property
    def macs(self) -> int:
        _, h, w = self.conv_shape
        fan_in = len(self.inputs_of(0))
        return self.out_c * h * w * fan_in * self.kernel * self.kernel


@dataclass
class ActNode(Node):
    """A nonlinearity the fusion pass could not attach to a convolution."""

    act: Act = field(default_factory=lambda: Act("relu"))


@dataclass
class PoolNode(Node):
    """A pooling the fusion pass could not attach to a convolution."""

    pool: Pool = field(default_factory=lambda: Pool("max", 2, 2))


@dataclass
class UpsampleNode(Node):
    """Nearest upsampling by ``2**up`` that no convolution took in (its ``up``)."""

    up: int = 1


@dataclass
class ConcatNode(Node):
    """Maps of several nodes one after another (``parts``, in order): a region of memory
    the parts write into (their ``into``); it computes nothing."""

    parts: list[str] = field(default_factory=list)
    fmt: QFormat | None = None      # one format for every part (the quantization pass)


@dataclass
class LCNQuant:
    """Formats and constants of a local contrast normalization."""

    x_fmt: QFormat       # input, m and v
    g_frac: int          # window codes' fraction
    window: np.ndarray   # int64 (K, K): (gaussian / C) codes, = outer(row_taps, col_taps)
    row_taps: np.ndarray  # int64 (K,): the 1-D gaussian / C
    col_taps: np.ndarray  # int64 (K,): the 1-D gaussian
    sq_fmt: QFormat      # v*v and s2
    s_fmt: QFormat       # s, mean, d
    r_fmt: QFormat       # 1 / d
    y_fmt: QFormat       # output
    mean_mul: int
    mean_shift: int
    eps: int             # code of the smallest divisor, in s_fmt
    recip_lo: float      # the reciprocal table's domain starts here (= eps)
    sqrt_pwl: PWLTable | None = None   # filled by the pwl pass
    recip_pwl: PWLTable | None = None
    sqrt_error: float = 0.0
    recip_error: float = 0.0


@dataclass
class LCNNode(Node):
    kernel: int = 9
    window: np.ndarray | None = None  # float (K, K), sums to 1
    eps: float = 1e-4
    quant: LCNQuant | None = None


@dataclass
class IRGraph:
    """The whole network: input, nodes in execution order, and notes."""

    name: str
    input_shape: tuple[int, int, int]
    input_mean: list[float]
    input_std: list[float]
    nodes: list[Node]
    classes: int = 0
    input_fmt: QFormat | None = None
    notes: list[str] = field(default_factory=list)
    # reference layer index whose output each node's output equals (for comparisons)
    ref_index: dict[str, int] = field(default_factory=dict)

    def readers(self) -> dict[str | None, int]:
        """How many nodes read each node's output (key None: the network input); a
        concatenation reads each of its parts."""
        count: dict[str | None, int] = {}
        for node in self.nodes:
            for src in (node.parts if isinstance(node, ConcatNode) else [node.input]):
                count[src] = count.get(src, 0) + 1
        return count

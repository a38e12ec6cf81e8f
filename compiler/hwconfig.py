"""The one hardware configuration.

The compiler fills a :class:`HardwareConfig` from the board and the network
(:mod:`convc.compiler.passes.size`); the golden model, the cycle model and
the HDL generator read it. Resource figures (DSP48E1 slices, RAMB36) are
derived here, once, from the configuration and the engines' figures
(:mod:`convc.compiler.engine_figures`, which the engines read too: this module
imports nothing from :mod:`convc.hdl`).

The convolution engine (NeuFlow's grid, as one wide engine)::

    in_lanes input streams, one pixel each per cycle
      -> per input lane: (kmax-1) line buffers -> a kmax x kmax window
    in_lanes x out_lanes kernel units of kmax*kmax multipliers (DSP48E1),
      output lane o sums its in_lanes windows' products each cycle
    -> per output lane: a partial-sum buffer of psum_words 48-bit words,
       so that input maps beyond in_lanes accumulate on chip
    -> requantize -> activation (ReLU, abs, or a PWL table: one DSP) -> pool
       (one line buffer of max_width words per pool row)

Each input lane's line buffers have a second bank: while one input group
streams, the first ``kmax-1`` rows of the next group's maps are loaded into
the other bank, so the window warm-up is paid once per record, not once per
input group.

The fully connected engine computes ``fc_in_lanes x fc_out_lanes`` products
a cycle (a matrix-vector product per pixel) for linear layers and 1x1
convolutions, with ``fc_psum_words`` accumulators per output lane.

The normalization (LCN) engine works on the per-pixel sum over maps, so its
line buffers do not grow with the number of maps: two windows
(``lcn_kmax`` rows each) for the mean and the variance, ``lcn_kmax`` taps
each (separable is not assumed; one DSP a tap), plus the multipliers for the
squares, the products ``v * r`` and the two PWL tables.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields

from convc.errors import ConvcError

from . import engine_figures as fig
from . import isa
from .isa import MAX_SEGMENTS
from .numeric import ACC_BITS

__all__ = ["HardwareConfig", "HardwareConfigError", "engine_limits"]


class HardwareConfigError(ConvcError, ValueError):
    """A configuration the hardware cannot be built for (the message names the field)."""


@functools.lru_cache(maxsize=None)
def engine_limits() -> tuple[tuple[str, str, int, int], ...]:
    """``(field, what, lo, hi)`` for each configuration field an engine bounds: the
    engines' own limits (their ``LIMITS``, the ranges their constructors check, written
    in :mod:`convc.compiler.engine_figures`), read here so that the compiler never picks
    a configuration the hardware cannot be built for. ``what`` names the engine and its
    parameter."""
    rows = [(f, f"ConvEngine: {f}", *fig.CONV_LIMITS[f]) for f in fig.CONV_LIMITS]
    rows += [("in_lanes", "WindowGenerator: lanes", *fig.WINDOW_LIMITS["lanes"]),
             ("kmax", "WindowGenerator: kmax", *fig.WINDOW_LIMITS["kmax"]),
             ("out_lanes", "PoolEngine: lanes", *fig.POOL_LIMITS["lanes"]),
             ("pool_kmax", "PoolEngine: kmax", *fig.POOL_LIMITS["kmax"]),
             ("fc_in_lanes", "FCEngine: in_lanes", *fig.FC_LIMITS["in_lanes"]),
             ("fc_out_lanes", "FCEngine: out_lanes", *fig.FC_LIMITS["out_lanes"]),
             ("fc_psum_words", "FCEngine: psum_words", *fig.FC_LIMITS["psum_words"]),
             ("lcn_channels", "LCNEngine: channels", *fig.LCN_LIMITS["channels"]),
             ("lcn_kmax", "LCNEngine: kmax", *fig.LCN_LIMITS["kmax"]),
             ("list_words", "MapFeeder: list_words", *fig.FEEDER_LIMITS["list_words"]),
             ("max_width", "RowWriter: max_width", *fig.ROWWRITER_LIMITS["max_width"]),
             ("writers", "RowWriter: ports", *fig.ROWWRITER_LIMITS["ports"])]
    return tuple(rows)


@functools.lru_cache(maxsize=None)
def _lcn_dsp(channels: int, kmax: int, bits: int) -> int:
    return fig.lcn_dsp_count(max(channels, 1), kmax, bits)  # the engine's own count

BRAM36_BITS = 36 * 1024
BRAM18_DEPTH = 1024  # a RAMB18E1 as 1024 x 18


@dataclass(frozen=True)
class HardwareConfig:
    """Sizes of the accelerator.

    Parameters
    ----------
    board : str
        Board name (see ``convc boards``).
    clock_mhz : float
        Accelerator clock (an assumption for timing; open tools give no Fmax
        for Virtex-6).
    bits : int
        Activation and weight width (2..16).
    kmax : int
        Largest convolution kernel (the window of every kernel unit).
    in_lanes, out_lanes : int
        Parallel input streams and output maps of the convolution engine.
    max_width : int
        Longest row a line buffer holds (input width incl. padding).
    psum_words : int
        Depth of each output lane's partial-sum buffer (48-bit words).
    lcn_kmax : int
        Largest LCN window (0: no LCN engine).
    lcn_channels : int
        Maps the LCN engine normalizes together (one pixel of each a cycle).
    pool_kmax : int
        Largest pooling window (``pool_kmax - 1`` row buffers an output lane).
    fc_in_lanes, fc_out_lanes : int
        The fully connected engine's inputs and outputs a cycle (0: none).
    fc_psum_words : int
        Accumulators per FC output lane (pixels per FC pass).
    pwl_tables : int
        Table slots (``pwl_id`` is 4 bits).
    pwl_segments : int
        Segments a PWL table may have (1..``isa.MAX_SEGMENTS``): the pointwise
        engine's comparators a lane are one fewer.  The compiler sets it to the most
        any table of the network has.
    list_words : int
        Depth of the input-map list memory (map bases, 1024 by default): the
        longest list of input maps a record may have, unless the list is a run of
        consecutive maps (``list[j] = list[0] + j``: a dense layer's always is), which
        may be of any length (the feeders step from one group's map base to the next;
        only the first ``max(in_lanes, fc_in_lanes)`` entries are read from the memory).
    mem_bytes_per_cycle : float
        Sustained external-memory bandwidth at ``clock_mhz``.
    burst_words : int
        Words per memory burst.
    writers : int
        Memory write ports of the accelerator's row writer (one 16-bit word a cycle
        each); the output maps of a row are shared among them.
    data_width : int
        The AXI4 memory port's data width in bits (one of
        ``convc.compiler.engine_figures.DATA_WIDTHS``;
        256 on the DDR3 boards, the width of their MIG's user interface).

    Every field is checked against its own range and the limits of the engines that
    it sizes (:func:`engine_limits`, :meth:`field_range`): a configuration the
    hardware cannot be built for is a :class:`HardwareConfigError` naming the field.
    """

    board: str
    clock_mhz: float
    bits: int
    kmax: int
    in_lanes: int
    out_lanes: int
    max_width: int
    psum_words: int
    lcn_kmax: int = 0
    lcn_channels: int = 0
    pool_kmax: int = 2
    fc_in_lanes: int = 0
    fc_out_lanes: int = 0
    fc_psum_words: int = 1024
    pwl_tables: int = 16
    pwl_segments: int = MAX_SEGMENTS
    list_words: int = 1024
    writers: int = 1
    mem_bytes_per_cycle: float = 16.0
    burst_words: int = 64
    acc_bits: int = ACC_BITS
    data_width: int = 256

    # the fields' own ranges; the record's fields and the engines narrow some (field_range)
    _RANGES = {"bits": isa.limit("bits"), "kmax": isa.limit("kernel"), "in_lanes": (1, 256),
               "out_lanes": (1, 256), "max_width": (1, isa.limit("in_w")[1]), "psum_words": (1, 1 << 24),
               "lcn_kmax": (0, isa.limit("kernel")[1]), "lcn_channels": (0, 64),
               "pool_kmax": isa.limit("pool_k"), "fc_in_lanes": (0, 1024), "fc_out_lanes": (0, 1024),
               "fc_psum_words": (1, 1 << 20), "pwl_tables": (1, isa.field_max("pwl_id") + 1),
               "pwl_segments": (1, MAX_SEGMENTS), "list_words": (1, 65536), "burst_words": (1, 4096),
               "writers": (1, 16)}

    def __post_init__(self):
        for name, (lo, hi) in self._RANGES.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise HardwareConfigError(f"hardware configuration: {name}={v!r} outside [{lo}, {hi}]")
        for v, name in ((self.clock_mhz, "clock_mhz"), (self.mem_bytes_per_cycle, "mem_bytes_per_cycle")):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf"):
                raise HardwareConfigError(f"hardware configuration: {name}={v!r} must be a number > 0")
        # the engines' limits (an engine that is not built does not bound its fields)
        absent = set()
        if not self.has_fc:
            absent |= {"fc_in_lanes", "fc_out_lanes", "fc_psum_words"}
        lcn = bool(self.lcn_kmax and self.lcn_channels)     # the accelerator builds an LCN engine
        if not lcn:
            absent |= {"lcn_channels", "lcn_kmax"}
        for name, what, lo, hi in engine_limits():
            v = getattr(self, name)
            if name not in absent and not lo <= v <= hi:
                raise HardwareConfigError(f"hardware configuration: {name}={v} is beyond the hardware "
                                          f"({what}={v} outside [{lo}, {hi}])")
        if self.data_width not in fig.DATA_WIDTHS:
            raise HardwareConfigError(f"hardware configuration: data_width={self.data_width!r} "
                                      f"not in {fig.DATA_WIDTHS}")
        derived = [("max(out_lanes, fc_out_lanes)", fig.post_lanes(self), "PointwiseEngine: lanes",
                    fig.POINTWISE_LIMITS["lanes"]),
                   ("the row writer's lanes", max(fig.post_lanes(self), fig.lcn_lanes(self)), "RowWriter: lanes",
                    fig.ROWWRITER_LIMITS["lanes"]),
                   ("the memory readers (one a feeder, from in_lanes, fc_in_lanes, lcn_channels)",
                    fig.reader_count(self), "Accelerator: readers", (1, fig.MAX_READERS))]
        if lcn:
            derived.append(("max_width", self.max_width, "LCNEngine: max_width",
                            (1, fig.lcn_max_width(self.lcn_kmax))))
        for name, v, what, (lo, hi) in derived:
            if not lo <= v <= hi:
                raise HardwareConfigError(f"hardware configuration: {name} = {v} is beyond the hardware "
                                          f"({what}={v} outside [{lo}, {hi}])")
        lanes = max(self.in_lanes, self.fc_in_lanes if self.has_fc else 0, fig.lcn_lanes(self))
        if self.list_words < lanes:
            raise HardwareConfigError(f"hardware configuration: list_words={self.list_words} is less than "
                                      f"the {lanes} input lanes (each lane's first map base is in the list)")

    @classmethod
    def field_range(cls, name: str) -> tuple[int, int]:
        """The values field ``name`` may take: its own range narrowed by every engine that
        bounds it (what the size pass may choose)."""
        lo, hi = cls._RANGES[name]
        for field, _, elo, ehi in engine_limits():
            if field == name:
                lo, hi = max(lo, elo), min(hi, ehi)
        return lo, hi

    # ---- derived figures, defined once -----------------------------------
    @property
    def kernel_units(self) -> int:
        return self.in_lanes * self.out_lanes

    @property
    def conv_macs_per_cycle(self) -> int:
        return self.kernel_units * self.kmax * self.kmax

    @property
    def macs_per_cycle(self) -> int:
        """Multipliers of both engines (the peak MACs a cycle)."""
        return self.conv_macs_per_cycle + self.dsp_fc

    @property
    def dsp_conv(self) -> int:
        return self.conv_macs_per_cycle

    @property
    def dsp_post(self) -> int:
        """One DSP a lane of the pointwise engine (PWL activations:
        :func:`~convc.compiler.engine_figures.post_lanes`, shared by both engines) and one a
        lane of the pooling engine (average pooling)."""
        return fig.post_lanes(self) + self.out_lanes

    @property
    def dsp_lcn(self) -> int:
        """The LCN engine's multipliers, as the engine itself counts them."""
        if not self.lcn_kmax:
            return 0
        return _lcn_dsp(self.lcn_channels, self.lcn_kmax, self.bits)

    @property
    def dsp_fc(self) -> int:
        return self.fc_in_lanes * self.fc_out_lanes

    @property
    def has_fc(self) -> bool:
        return self.fc_in_lanes > 0 and self.fc_out_lanes > 0

    # figures the engines' own figures compute from the configuration
    dsp_ctrl = property(fig.control_multipliers, doc="The sequencer's and the map feeders' address multipliers "
                                                     "(:func:`~convc.compiler.engine_figures.control_multipliers`).")
    luts = property(fig.logic_luts, doc="6-input LUTs, an estimate from the engines' own figures "
                                        "(:func:`~convc.compiler.engine_figures.logic_luts`).")

    @property
    def dsp(self) -> int:
        return self.dsp_conv + self.dsp_post + self.dsp_lcn + self.dsp_fc + self.dsp_ctrl

    @property
    def bram18(self) -> int:
        """RAMB18E1 halves needed (a RAMB36 is two)."""
        lines = -(-self.max_width // BRAM18_DEPTH)  # RAMB18s per line of max_width words
        line_buffers = 2 * self.in_lanes * (self.kmax - 1) * lines  # two banks (preload)
        # 48-bit partial sums: 1024 x 36 (two RAMB18) + 1024 x 18 (one) per 1024 words
        psum = self.out_lanes * 3 * -(-self.psum_words // BRAM18_DEPTH)
        pool = self.out_lanes * (self.pool_kmax - 1) * lines
        lcn = 0
        if self.lcn_kmax:
            # two window generators, and two FIFOs holding x and v while their windows fill
            lcn = 2 * (self.lcn_kmax - 1) * lines + 2 * 5 * lines
        fc = self.fc_out_lanes * 3 * -(-self.fc_psum_words // BRAM18_DEPTH) if self.has_fc else 0
        tables = 1  # all PWL tables fit one RAMB18
        # memory-side FIFOs of whole beats (up to 512 deep): a reader's beat and last bit, a
        # writer's beat, strobes and last bit, 36 bits a RAMB18
        dw = self.data_width
        fifo = (fig.reader_count(self) * -(-(dw + 1) // 36)
                + fig.writer_count(self) * -(-(dw + dw // 8 + 1) // 36))
        return line_buffers + psum + pool + lcn + fc + tables + fifo

    @property
    def bram36(self) -> int:
        return -(-self.bram18 // 2)

    @property
    def mem_words_per_cycle(self) -> float:
        return self.mem_bytes_per_cycle / (isa.WORD_BITS / 8)

    def to_json(self) -> dict:
        d = asdict(self)
        d["derived"] = {"dsp": self.dsp, "dsp_conv": self.dsp_conv, "dsp_fc": self.dsp_fc, "bram36": self.bram36,
                        "luts": self.luts,
                        "macs_per_cycle": self.macs_per_cycle,
                        "conv_macs_per_cycle": self.conv_macs_per_cycle}
        return d

    @classmethod
    def from_json(cls, d: dict) -> "HardwareConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

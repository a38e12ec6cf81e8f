r"""The convolution engine's band contract (:mod:`convc.hdl.conv`), the compiler's and the
cycle model's side of it: which bands the engine can run (:meth:`BandTiming.check_band`,
the conditions that raise its ``err``) and when a band ends and each of its outputs
leaves (:meth:`BandTiming.band_schedule`, a recurrence over the input groups checked
against the simulation).  :class:`~convc.hdl.conv.ConvEngine` has these methods through
:class:`BandTiming`.
"""

from __future__ import annotations

from dataclasses import dataclass

from convc.compiler import isa
from convc.compiler.isa import ROW_COL_BITS

from .fields import GROUP_BITS

__all__ = ["BandError", "BandSchedule", "BandTiming"]


class BandError(ValueError):
    """A band configuration the engine cannot run (see :meth:`ConvEngine.check_band`)."""


@dataclass(frozen=True)
class BandSchedule:
    """One band's timing (:meth:`ConvEngine.band_schedule`), cycles from its bias.

    ``cycles``        until the next band's bias can go in
    ``last_pixel``    the clock edge of the last group's last main-stream pixel
    ``main_pixels``   ``M = R*Wp - P`` a group; ``preload_pixels`` ``P = (K-1)*Wp``
    """

    cycles: int
    last_pixel: int
    main_pixels: int
    preload_pixels: int
    kernel: int
    stride: int
    width: int
    latency: int

    def output(self, y: int, x: int) -> int:
        """When conv output ``(y, x)`` of the last group leaves the engine: its window's
        last pixel (main-stream index ``(y*S + K-1)*Wp + x*S + K-1 - P``; the last group
        streams without stalls) plus the latency."""
        K, S, Wp = self.kernel, self.stride, self.width
        idx = (y * S + K - 1) * Wp + x * S + K - 1 - self.preload_pixels
        return self.last_pixel - (self.main_pixels - 1 - idx) + self.latency


class BandTiming:
    """The band methods of :class:`~convc.hdl.conv.ConvEngine`, from its sizes
    (``in_lanes``, ``out_lanes``, ``kmax``, ``max_width``, ``psum_words``) and its
    ``latency``."""

    def band_shape(self, kernel: int, stride: int, width: int, rows: int) -> tuple[int, int]:
        """``(conv_h, conv_w)`` of a band."""
        return (rows - kernel) // stride + 1, (width - kernel) // stride + 1

    def check_band(self, kernel: int, stride: int, width: int, rows: int, groups: int,
                   acc_shift: int = 0, bias_shift: int = 0) -> tuple[int, int]:
        """Raise :class:`BandError` if the engine cannot run this band (the conditions
        that raise ``err``); returns ``(conv_h, conv_w)``."""
        checks = [("kernel", kernel, 1, self.kmax), ("stride", stride, *isa.limit("stride")),
                  ("width", width, kernel, self.max_width),
                  ("rows", rows, kernel, (1 << ROW_COL_BITS) - 1),
                  ("groups", groups, 1, (1 << GROUP_BITS) - 1),
                  ("acc_shift", acc_shift, *isa.limit("acc_shift")),
                  ("bias_shift", bias_shift, *isa.limit("bias_shift"))]
        for name, v, lo, hi in checks:
            if not isinstance(v, int) or not lo <= v <= hi:
                raise BandError(f"ConvEngine band: {name}={v!r} outside [{lo}, {hi}]")
        conv_h, conv_w = self.band_shape(kernel, stride, width, rows)
        if groups > 1 and conv_h * conv_w > self.psum_words:
            raise BandError(f"ConvEngine band: {conv_h}x{conv_w} conv outputs do not fit the "
                            f"partial-sum buffer ({self.psum_words} words) with {groups} groups")
        return conv_h, conv_w

    def band_cycles(self, kernel: int, width: int, rows: int, groups: int, preload: bool = True,
                    stride: int = 1) -> int:
        """Cycles from a band's bias to the first cycle the next band's bias can go in
        (``busy`` low): :meth:`band_schedule`'s ``cycles``."""
        return self.band_schedule(kernel, width, rows, groups, preload, stride).cycles

    def band_schedule(self, kernel: int, width: int, rows: int, groups: int, preload: bool = True,
                      stride: int = 1, weight_delay: int = 0) -> "BandSchedule":
        """The engine's timing of one band, when every input is there as soon as the
        engine takes it and the output is always ready: when it ends and when each conv
        output leaves (:class:`BandSchedule`).  A recurrence over the input groups
        (checked against the simulation within 3 cycles)::

            P = (K-1)*Wp   preload pixels a group (``ip``; 0 without preload or for K = 1)
            M = R*Wp - P   main-stream pixels a group (``i``), one a cycle
            Wt = Po*Pi*K*K weight words a group, one a cycle; group g's load starts when
                           group g-1's weights move into the multipliers (group 0's
                           ``weight_delay`` cycles after the bias: its first word's
                           wait, when the pixels come sooner)
            preload of g:  after the preload of g-1 and the main stream of g-2 (its bank)
            main of g:     after the preload of g and the main stream of g-1; it waits
                           at its first valid window until group g's weights are in (the
                           window generator takes 2 more pixels meanwhile)
            end:           max(last pixel + 4, last output + 2), the last output being
                           the last valid window's pixel + latency

        The ideal ``(K-1)*Wp + groups * max(R-K+1, K-1)*Wp`` is this with preload, minus
        the weight waits and the latency (and it is larger when ``M < P``)."""
        K, Wp, R, G, S = kernel, width, rows, groups, stride
        P = (K - 1) * Wp if preload and K > 1 else 0
        M = R * Wp - P
        Wt = self.out_lanes * self.in_lanes * K * K
        first = (K - 1) * Wp + K - 1 - P            # main-stream index of the first valid window
        # pixels after the last valid window of a group
        tail = R * Wp - 1 - ((K - 1 + (R - K) // S * S) * Wp + K - 1 + (Wp - K) // S * S)
        pre_end, main_end = [], []
        t_weights = weight_delay                     # when the current group's weight load starts
        for g in range(G):
            ps = max(pre_end[g - 1] if g else 0, main_end[g - 2] if g >= 2 else 0)
            pre_end.append(ps + P)
            ms = max(pre_end[g], main_end[g - 1] if g else 0)
            wait = max(0, t_weights + Wt - (ms + first))
            main_end.append(ms + M + max(0, wait - 2))
            t_weights = ms + first + wait            # the swap: group g+1's load starts
        last_px = main_end[-1]                       # clock edge of the last pixel (bias: 0)
        return BandSchedule(cycles=max(last_px + 4, last_px - tail + self.latency + 2), last_pixel=last_px,
                            main_pixels=M, preload_pixels=P, kernel=K, stride=S, width=Wp,
                            latency=self.latency)

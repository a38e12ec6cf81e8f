"""Reference for the LCN engine tests: ``convc.sim.golden`` run on a hand-built
one-record ``OP_LCN`` program (the bit-exact model), plus the per-sweep words the engine
streams (``a_o``: v and s per pixel; ``b_o``: y per pixel) and the frame mean (the ISA
formula with numeric.py's ``round_shift``/``saturate``; golden keeps it internal, and
its y checks it again).

Shared by the Amaranth-simulation test (tests/hdl/test_lcn.py) and the cocotb testbench
(tests/hdl/cocotb/test_lcn_tb.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from convc.compiler import isa
from convc.compiler.hwconfig import HardwareConfig
from convc.compiler.numeric import QFormat, round_shift, saturate
from convc.compiler.pwl_table import PWLTable
from convc.compiler.program import Program, Region
from convc.compiler.pwl_fit import fit_pwl
from convc.sim import golden

Q88 = QFormat(16, 8)


@lru_cache(maxsize=None)
def sqrt_table() -> PWLTable:
    """s = sqrt(s2), Q8.8 -> Q8.8 (as tests/sim/test_golden.py)."""
    return fit_pwl(np.sqrt, 0.0, 127.0, 8, Q88, Q88)[0]


@lru_cache(maxsize=None)
def recip_table(lo: float = 0.25) -> PWLTable:
    """r = 1/d, Q8.8 -> Q4.12."""
    return fit_pwl(lambda v: 1.0 / v, lo, 64.0, 16, Q88, QFormat(16, 12))[0]


@lru_cache(maxsize=None)
def narrow_tables(bits: int) -> tuple[PWLTable, PWLTable]:
    """sqrt and 1/d tables for a narrow code width (fraction bits ``bits // 2``)."""
    f = QFormat(bits, bits // 2)
    top = f.max_value
    sq = fit_pwl(np.sqrt, 0.0, top, 4, f, f)[0]
    rc = fit_pwl(lambda v: 1.0 / v, 2.0 ** -(bits // 4), top, 4, f, f)[0]
    return sq, rc


@dataclass
class LCNCase:
    """One frame and one record's parameters."""

    x: np.ndarray                 # (C, H, W) codes
    R: np.ndarray                 # (K,) row taps
    Q: np.ndarray                 # (K,) column taps; G = outer(R, Q)
    m_shift: int = 10
    sq_shift: int = 8
    s2_shift: int = 10
    y_shift: int = 12
    mean_shift: int = 20
    mean_mul: int | None = None
    eps: int = 64
    bits: int = 16
    sqrt: PWLTable = field(default_factory=sqrt_table)
    recip: PWLTable = field(default_factory=recip_table)

    def __post_init__(self):
        self.x = np.asarray(self.x, dtype=np.int64)
        self.R = np.asarray(self.R, dtype=np.int64)
        self.Q = np.asarray(self.Q, dtype=np.int64)
        if self.mean_mul is None:
            self.mean_mul = round(2 ** self.mean_shift / (self.H * self.W))

    C = property(lambda self: self.x.shape[0])
    H = property(lambda self: self.x.shape[1])
    W = property(lambda self: self.x.shape[2])
    K = property(lambda self: len(self.R))

    @property
    def G(self) -> np.ndarray:
        return np.outer(self.R, self.Q)

    def window_words(self) -> list[int]:
        """The record's window block: G (K*K), R (K), Q (K), as signed words."""
        return [int(w) for w in (*self.G.ravel(), *self.R, *self.Q)]

    def to_json(self) -> dict:
        d = {k: getattr(self, k) for k in ("m_shift", "sq_shift", "s2_shift", "y_shift",
                                           "mean_shift", "mean_mul", "eps", "bits")}
        d.update(x=self.x.tolist(), R=self.R.tolist(), Q=self.Q.tolist(),
                 sqrt=self.sqrt.to_json(), recip=self.recip.to_json())
        return d

    @classmethod
    def from_json(cls, d: dict) -> "LCNCase":
        d = dict(d)
        d["sqrt"] = PWLTable.from_json(d["sqrt"])
        d["recip"] = PWLTable.from_json(d["recip"])
        return cls(**d)


@dataclass
class LCNResult:
    v: np.ndarray        # (C, H, W)
    s: np.ndarray        # (H, W)
    y: np.ndarray        # (C, H, W)
    mean: int
    saturations: int
    overflows: int

    def a_words(self) -> list[dict]:
        """Sweep A output, raster order: {v: [C], s, first, last}."""
        C, H, W = self.v.shape
        n = H * W
        return [{"v": [int(self.v[c, k // W, k % W]) for c in range(C)],
                 "s": int(self.s[k // W, k % W]), "first": int(k == 0), "last": int(k == n - 1)}
                for k in range(n)]

    def b_words(self) -> list[dict]:
        """Sweep B output, raster order: {data: [C], first, last}."""
        C, H, W = self.y.shape
        n = H * W
        return [{"data": [int(self.y[c, k // W, k % W]) for c in range(C)],
                 "first": int(k == 0), "last": int(k == n - 1)} for k in range(n)]


def golden_lcn(case: LCNCase) -> LCNResult:
    """Run convc.sim.golden on a one-record OP_LCN program for ``case``."""
    C, H, W, K = case.C, case.H, case.W, case.K
    image = [w & 0xFFFF for w in case.window_words()]
    w_addr = 0
    table_addr = len(image)
    image += [int(w) for w in isa.table_words(case.sqrt)]
    image += [int(w) for w in isa.table_words(case.recip)]
    base = len(image)
    fmt = QFormat(case.bits, 0)
    inp = Region("input", base, (C, H, W), fmt)
    out = Region("lcn", base + C * H * W, (C, H, W), fmt)
    scratch = out.addr + C * H * W
    words = scratch + C * H * W + H * W
    ins = isa.Instr(
        op=isa.OP_LCN, bits=case.bits, kernel=K, pwl_id=0, pwl2_id=1, in_c=C, in_h=H, in_w=W,
        out_h=H, out_w=W, in_addr=inp.addr, out_addr=out.addr, w_addr=w_addr,
        scratch_addr=scratch, acc_shift=case.m_shift, sq_shift=case.sq_shift,
        s2_shift=case.s2_shift, y_shift=case.y_shift, mean_mul=case.mean_mul,
        mean_shift=case.mean_shift, eps=case.eps)
    hw = HardwareConfig(board="test", clock_mhz=100.0, bits=16, kmax=max(K, 1), in_lanes=1,
                        out_lanes=1, max_width=max(W, 1), psum_words=1024, lcn_kmax=K,
                        lcn_channels=C)
    prog = Program(hw=hw, instrs=[ins, isa.Instr(op=isa.OP_END)], names=["lcn", "end"],
                   image=np.asarray(image, dtype=np.int64), memory_words=words,
                   table_addr=table_addr, n_tables=2, input=inp, output=out, layers=[out])
    res = golden.run(prog, case.x[None])
    mem = res.memory[0]
    v = mem[scratch:scratch + C * H * W].reshape(C, H, W)
    s = mem[scratch + C * H * W:scratch + C * H * W + H * W].reshape(H, W)
    y = mem[out.addr:out.addr + C * H * W].reshape(C, H, W)
    return LCNResult(v=v, s=s, y=y, mean=frame_mean(s, case), saturations=res.saturations["lcn"],
                     overflows=res.overflows["lcn"])


def frame_mean(s: np.ndarray, case: LCNCase) -> int:
    """mean = saturate(round_shift(sum s * mean_mul, mean_shift), bits) (isa OP_LCN)."""
    total = int(np.asarray(s, dtype=np.int64).sum()) * int(case.mean_mul)
    return int(saturate(round_shift(total, case.mean_shift), QFormat(case.bits, 0))[0])


def random_case(rng: random.Random, C: int, H: int, W: int, K: int, *, lim: int = 800,
                extreme: bool = False, gaussian: bool = False, bits: int = 16) -> LCNCase:
    """Random frame, random integer taps (G = outer(R, Q) fits 16 bits; ``gaussian``: a
    rounded 1-D Gaussian as the compiler makes), shifts around the window gain (so m, v,
    s vary, with some saturation)."""
    tmax = 181                                   # |R*Q| <= 181**2 < 2**15
    if gaussian:
        g = np.exp(-0.5 * ((np.arange(K) - (K - 1) / 2) / max(K / 4, 0.5)) ** 2)
        R = [max(int(round(v * tmax / C)), 1) for v in g]
        Q = [max(int(round(v * tmax)), 1) for v in g]
    else:
        R = [rng.randint(-tmax // 3, tmax) for _ in range(K)]
        Q = [rng.randint(-tmax // 3, tmax) for _ in range(K)]
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    lim = min(lim, hi // 2)
    if extreme:
        x = [[[rng.choice([lo, hi, rng.randint(lo, hi)]) for _ in range(W)]
              for _ in range(H)] for _ in range(C)]
    else:
        dc = [rng.randint(-2 * lim, 2 * lim) for _ in range(C)]    # a local mean to remove
        x = [[[min(max(dc[c] + rng.randint(-lim, lim), lo), hi) for _ in range(W)]
              for _ in range(H)] for c in range(C)]
    gain = max(abs(sum(R) * sum(Q)) * C, 1)
    base = int(np.log2(gain))
    if bits == 16:
        return LCNCase(
            x=np.asarray(x), R=np.asarray(R), Q=np.asarray(Q),
            m_shift=base + rng.randint(-1, 1), sq_shift=8 + rng.randint(-1, 1),
            s2_shift=base + rng.randint(-1, 1), y_shift=12 + rng.randint(-1, 1),
            mean_shift=20, eps=rng.choice([16, 64, 200]),
        )
    sq, rc = narrow_tables(bits)
    f = bits // 2
    return LCNCase(
        x=np.asarray(x), R=np.asarray(R), Q=np.asarray(Q), bits=bits, sqrt=sq, recip=rc,
        m_shift=base + rng.randint(-1, 1), sq_shift=f + rng.randint(-1, 1),
        s2_shift=base + rng.randint(-1, 1), y_shift=f + rng.randint(-1, 1),
        mean_shift=16, eps=rng.randint(1, hi // 4),
    )


def lcn_job(rng: random.Random, C: int, K: int, shapes, **kw) -> list[LCNCase]:
    """Frames of the given (H, W) (same W) sharing the first one's configuration
    (:func:`random_case` each, ``kw`` passed on)."""
    first = random_case(rng, C, *shapes[0], K, **kw)
    job = [first]
    for H, W in shapes[1:]:
        other = random_case(rng, C, H, W, K, **kw)
        job.append(LCNCase(**{**first.__dict__, "x": other.x, "mean_mul": first.mean_mul}))
    return job

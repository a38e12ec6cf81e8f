r"""HDL building blocks that implement the numeric spec (:mod:`convc.compiler.numeric`)
bit for bit, plus the pipelining helpers every engine uses.

Arithmetic (each function adds logic to a :class:`~amaranth.hdl.Module` and returns a
new :class:`~amaranth.hdl.Signal`; ``domain="comb"`` gives a wire, any other domain a
register, clock-enabled by ``en`` if given, without reset)::

    round_shift_hdl(m, v, s)          numeric.round_shift(v, s), s a Python int
    round_shift_var_hdl(m, v, s, L)   numeric.round_shift(v, s), s a Signal (barrel shift),
                                      exact for s >= -L (left shifts beyond L are clamped)
    saturate_hdl(m, v, width)         numeric.saturate(v, QFormat(width, .))  (signed clamp)
    saturate_var_hdl(m, v, lo, hi)    clamp to run-time limits (signals)
    requantize_hdl(m, acc, s, width)      saturate(round_shift(acc, s)), s a Python int
    requantize_var_hdl(m, acc, s, width)  the same with s a Signal: exact for EVERY s
    mul_add_hdl(m, a, b, c, en=...)   a*b + c as a DSP48E1 (M and C registers, P register)

Rounding is round-half-up, ``(a + (1 << (s-1))) >> s`` with an arithmetic shift, as in
the spec.  The run-time version uses the identity (``s >= 1``)::

    (a + 2**(s-1)) >> s  ==  ((a >> (s-1)) + 1) >> 1

and, writing ``t = floor(a * 2**(1-s))`` (also valid for ``s <= 0``, where it is exact),
``round_shift(a, s) = (t + 1) >> 1``.  ``t`` is one right barrel shift of
``a << (1 + L)`` by ``s + L``, so a single shifter serves left and right shifts with
the same rounding rule.  Shift amounts above ``width(a)`` are clamped to ``width(a)``
(exact: every such shift gives 0).  Below ``-L`` the shift is clamped to ``-L`` (not
exact) -- except in :func:`requantize_var_hdl`, where ``L = width`` makes the clamp
exact, saturation flag included, because a left shift by ``width`` or more of a nonzero
value saturates anyway.

Saturation is never silent in the spec: :func:`saturate_hdl` and friends drive an
optional ``flag`` signal (1 when the value was clamped) for engines that count it.

Pipelining (fixed-latency datapaths with one global stall)::

    en = stall_pipeline(m, i, o, latency)   valid shift register, i.ready, o.valid
    q  = delay(m, v, n, en=en)              n clock-enabled registers (no reset)
    qs = delay_chain(m, v, n, en, name)     [v, v delayed 1, ..., v delayed n]
    s, levels = reduce_tree(m, vs, en, name)  registered adder (or other) tree

A datapath built with these accepts one element a cycle while ``o.ready`` is high, and
freezes entirely (every register holds) while ``o.valid & ~o.ready``: no element is lost,
duplicated or reordered.  ``i.ready`` depends combinationally on ``o.ready`` (allowed by
the stream rules: ready may depend on valid/ready downstream, valid never on ready).
"""

from __future__ import annotations

import operator

from amaranth.hdl import C, Cat, Module, Mux, Shape, Signal, Value, signed

from convc.compiler.numeric import DSP_A_BITS, DSP_B_BITS, DSP_P_BITS, signed_range

__all__ = [
    "round_shift_hdl",
    "round_shift_var_hdl",
    "saturate_hdl",
    "saturate_var_hdl",
    "requantize_hdl",
    "requantize_var_hdl",
    "mul_add_hdl",
    "stall_pipeline",
    "delay",
    "delay_chain",
    "reduce_tree",
    "check_param",
    "param",
    "params",
    "delegate",
]


def check_param(owner, name: str, value, lo: int, hi: int) -> int:
    """Constructor parameter check for engines: ``value`` must be an int in
    ``[lo, hi]``, else ``ValueError("<Class>: <name>=<value> outside [lo, hi]")``.

    ``owner`` is the component being constructed (``self``); on failure its
    "created but never used" warning is silenced, since it never will be.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        try:
            owner._MustUse__silence = True
        except AttributeError:
            pass
        raise ValueError(f"{type(owner).__name__}: {name}={value!r} outside [{lo}, {hi}]")
    return value


def param(name: str, doc: str | None = None) -> property:
    """A read-only property for the constructor parameter kept as ``self._<name>`` (the
    engines expose their sizes this way, as Amaranth's own components do)."""
    return property(lambda self: getattr(self, "_" + name),
                    doc=doc or f"The ``{name}`` the component was built with.")


def params(*names: str, doc: str | None = None):
    """:func:`param` for each name: one property for one name, else a tuple of them in
    the order given (``lanes, bits = params("lanes", "bits")``)."""
    props = tuple(param(name, doc) for name in names)
    return props[0] if len(props) == 1 else props


def delegate(owner: str, *names: str, doc: str | None = None):
    """Read-only properties that read through to ``self._<owner>.<name>`` (an engine's
    sizes taken from its :class:`~convc.compiler.hwconfig.HardwareConfig`): one property
    for one name, else a tuple in the order given
    (``in_lanes, bits = delegate("hw", "in_lanes", "bits")``)."""
    def read(name):
        return property(lambda self: getattr(getattr(self, "_" + owner), name),
                        doc=doc or f"``{owner}.{name}``.")

    props = tuple(read(name) for name in names)
    return props[0] if len(props) == 1 else props


def _as_signed(value) -> Value:
    """The value as a signed Value holding the same number (unsigned gets a zero bit)."""
    v = Value.cast(value)
    if v.shape().signed:
        return v
    return Cat(v, C(0, 1)).as_signed()


def _check_int(name: str, v, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(v, bool):
        raise TypeError(f"{name} must be an int, got {v!r}")
    try:
        v = operator.index(v)  # Python and numpy integers
    except TypeError:
        raise TypeError(f"{name} must be an int, got {v!r}") from None
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name}={v} outside [{lo}, {hi}]")
    return v


def _emit(m: Module, expr, shape: Shape, domain: str, en, name: str | None) -> Signal:
    """Drive a new signal of ``shape`` from ``expr`` in ``domain`` (comb: a wire; otherwise
    a reset-less register, clock-enabled by ``en`` when given)."""
    out = Signal(shape, name=name, reset_less=domain != "comb")
    _drive(m, out, expr, domain, en)
    return out


def _drive(m: Module, target: Signal, expr, domain: str, en) -> None:
    """``target <= expr`` in ``domain`` (comb: a wire), clock-enabled by ``en`` if given."""
    if domain == "comb":
        m.d.comb += target.eq(expr)
    elif en is None:
        m.d[domain] += target.eq(expr)
    else:
        with m.If(en):
            m.d[domain] += target.eq(expr)


# ----------------------------------------------------------------------------
# rounding / saturation
# ----------------------------------------------------------------------------
def round_shift_hdl(m: Module, value, shift: int, *, domain: str = "comb", en=None,
                    name: str | None = None) -> Signal:
    """``numeric.round_shift(value, shift)`` with a constant ``shift``.

    ``shift > 0``: ``(value + (1 << (shift-1))) >> shift`` (arithmetic; the addition is
    one bit wider, so it never overflows).  ``shift == 0``: ``value``.  ``shift < 0``:
    ``value << -shift`` (exact, the result is wider).

    Returns a signed signal just wide enough for every result: ``w - shift + 1`` bits for
    ``0 < shift`` (at least 2), ``w`` for 0, ``w - shift`` for ``shift < 0``, where ``w``
    is the signed width of ``value``.
    """
    _check_int("round_shift_hdl: shift", shift)
    v = _as_signed(value)
    w = len(v)
    if shift > 0:
        s = min(shift, w)  # any shift >= w gives 0 for every w-bit value: exact
        expr = (v + (1 << (s - 1))) >> s
        shape = signed(max(w - s + 1, 2))
    elif shift == 0:
        expr, shape = v, signed(w)
    else:
        expr, shape = v << -shift, signed(w - shift)
    return _emit(m, expr, shape, domain, en, name)


def round_shift_var_hdl(m: Module, value, shift, *, max_left: int = 0, domain: str = "comb",
                        en=None, name: str | None = None) -> Signal:
    """``numeric.round_shift(value, shift)`` with a run-time ``shift`` (a signal, signed
    or unsigned), as one right barrel shifter plus an incrementer.

    Exact for every ``shift >= -max_left`` (right shifts of any size: amounts beyond the
    width of ``value`` are clamped, which is exact); a shift below ``-max_left`` is
    clamped to ``-max_left``.  Returns ``signed(w + max_left)`` (at least 2 bits).
    """
    _check_int("round_shift_var_hdl: max_left", max_left, 0, 64)
    v = _as_signed(value)
    w = len(v)
    sh = Value.cast(shift)
    lo, hi = -max_left, w
    # clamp the shift amount to [lo, hi] (hi: exact, see the module docstring)
    clamped = Mux(sh < lo, lo, Mux(sh > hi, hi, sh))
    amount = Signal(range(hi - lo + 1), name=None if name is None else f"{name}_amt")
    m.d.comb += amount.eq(clamped - lo)
    # t = floor(v * 2**(1 - s)) = (v << (1 + max_left)) >> (s + max_left)
    wide = Signal(signed(w + 1 + max_left), name=None if name is None else f"{name}_t")
    m.d.comb += wide.eq((v << (1 + max_left)) >> amount)
    expr = (wide + 1) >> 1
    return _emit(m, expr, signed(max(w + max_left, 2)), domain, en, name)


def saturate_hdl(m: Module, value, width: int, *, domain: str = "comb", en=None,
                 name: str | None = None, flag: Signal | None = None) -> Signal:
    """Clamp to the signed ``width``-bit range ``[-2**(width-1), 2**(width-1) - 1]``
    (``numeric.saturate``).  Returns ``signed(width)``.

    ``flag`` (optional 1-bit signal) is driven in the same domain: 1 when clamped.
    """
    _check_int("saturate_hdl: width", width, 2, 64)
    lo, hi = signed_range(width)
    v = _as_signed(value)
    if len(v) <= width:  # always in range: no comparators
        if flag is not None:
            m.d.comb += flag.eq(0)
        return _emit(m, v, signed(width), domain, en, name)
    return saturate_var_hdl(m, value, C(lo, signed(width)), C(hi, signed(width)),
                            width=width, domain=domain, en=en, name=name, flag=flag)


def saturate_var_hdl(m: Module, value, lo, hi, *, width: int, domain: str = "comb", en=None,
                     name: str | None = None, flag: Signal | None = None) -> Signal:
    """Clamp ``value`` to ``[lo, hi]`` (run-time limits, ``lo <= hi``, both must fit
    ``signed(width)``).  Returns ``signed(width)``; ``flag`` as in :func:`saturate_hdl`."""
    _check_int("saturate_var_hdl: width", width, 2, 64)
    v = _as_signed(value)
    lo, hi = Value.cast(lo), Value.cast(hi)
    over, under = v > hi, v < lo
    expr = Mux(over, hi, Mux(under, lo, v[:width]))
    out = _emit(m, expr, signed(width), domain, en, name)
    if flag is not None:
        _drive(m, flag, over | under, domain, en)
    return out


def requantize_hdl(m: Module, acc, shift: int, width: int, *, domain: str = "comb", en=None,
                   name: str | None = None, flag: Signal | None = None) -> Signal:
    """``numeric.requantize(acc, shift, QFormat(width, .))`` with a constant shift:
    round-shift (combinational) then saturate (in ``domain``).  Returns ``signed(width)``."""
    r = round_shift_hdl(m, acc, shift, name=None if name is None else f"{name}_rs")
    return saturate_hdl(m, r, width, domain=domain, en=en, name=name, flag=flag)


def requantize_var_hdl(m: Module, acc, shift, width: int, *, lo=None, hi=None, domain: str = "comb",
                       en=None, name: str | None = None, flag: Signal | None = None,
                       shift_domain: str = "comb") -> Signal:
    """``numeric.requantize(acc, shift, QFormat(width, .))`` with a run-time ``shift``
    signal; exact for every shift value the signal can hold.

    Only the bits that can reach the output are shifted. With ``W = width``, ``w`` the
    signed width of ``acc`` and ``t = floor(acc * 2**(1-s))`` (so that
    ``round_shift(acc, s) = (t + 1) >> 1``, see the module docstring):

    * ``t`` fits ``W + 2`` signed bits exactly when ``acc >> (s + W)`` is 0 or -1 (for
      ``s + W < 0``: when ``acc == 0``; ``acc == -1`` passes the mask test too, and its
      ``t``, with the shift clamped to ``-W``, saturates low just the same), a mask test
      on ``acc`` against its sign;
    * then the result is ``saturate((t + 1) >> 1)`` on ``W + 2`` bits, and ``t`` is the
      low ``W + 2`` bits of one right barrel shift (Yosys keeps only the shifter stages
      those bits need);
    * otherwise ``|t| >= 2**(W+1)`` and the result saturates to the sign of ``acc``.

    This costs about half the logic of shifting and comparing the full ``w + W + 1``
    bits (about 800 LUTs a lane for a 48-bit sum to 16 bits).

    ``lo``, ``hi``: run-time saturation limits (signals within ``signed(width)``,
    ``lo <= hi``) instead of the ends of ``signed(width)``, as :func:`saturate_var_hdl`.
    ``shift_domain``: put a register (clock-enabled by ``en``) between the barrel shift
    and the saturation, for a two-stage pipeline (latency 2 if ``domain`` is a clock
    domain too).  Returns ``signed(width)``.
    """
    _check_int("requantize_var_hdl: width", width, 2, 64)
    if (lo is None) != (hi is None):
        raise ValueError("requantize_var_hdl: give both lo and hi, or neither")
    v = _as_signed(acc)
    w = len(v)
    tb = width + 2                                   # bits of t that matter
    sh = Value.cast(shift)
    lo_s, hi_s = -width, w                           # shifts outside give the same t bits
    clamped = Mux(sh < lo_s, lo_s, Mux(sh > hi_s, hi_s, sh))
    amount = Signal(range(hi_s - lo_s + 1), name=None if name is None else f"{name}_amt")
    m.d.comb += amount.eq(clamped - lo_s)
    # t = (v << (1 + W)) >> (s + W): its low tb bits only
    t = Signal(signed(tb), name=None if name is None else f"{name}_t")
    m.d.comb += t.eq(((v << (1 + width)) >> amount)[:tb])
    # fits: every bit of v at or above p = s + W equals the sign. For p < 0 that also
    # passes v = -1, whose t (shift clamped to -W) is -2**(W+1): it saturates low anyway
    s_lo = -(1 << (len(sh) - 1)) if sh.shape().signed else 0
    s_hi = (1 << (len(sh) - 1)) - 1 if sh.shape().signed else (1 << len(sh)) - 1
    p = Signal(range(s_lo + width, s_hi + width + 1), name=None if name is None else f"{name}_p")
    m.d.comb += p.eq(sh + width)
    sign = v[-1]
    diff = v ^ sign.replicate(w)
    fits = Signal(name=None if name is None else f"{name}_fits")
    m.d.comb += fits.eq(~Cat(*(diff[i] & (p <= i) for i in range(w - 1))).any())
    if shift_domain != "comb":
        t = _emit(m, t, signed(tb), shift_domain, en, None if name is None else f"{name}_tq")
        fits = _emit(m, fits, 1, shift_domain, en, None if name is None else f"{name}_fq")
        sign = _emit(m, sign, 1, shift_domain, en, None if name is None else f"{name}_sq")
    r = Signal(signed(tb), name=None if name is None else f"{name}_rs")
    m.d.comb += r.eq((t + 1) >> 1)
    if lo is None:
        lo, hi = (C(b, signed(width)) for b in signed_range(width))
    lo, hi = Value.cast(lo), Value.cast(hi)
    over, under = (~fits & ~sign) | (fits & (r > hi)), (~fits & sign) | (fits & (r < lo))
    expr = Mux(over, hi, Mux(under, lo, r[:width]))
    out = _emit(m, expr, signed(width), domain, en, name)
    if flag is not None:
        _drive(m, flag, over | under, domain, en)
    return out


# ----------------------------------------------------------------------------
# DSP48E1 multiply-add
# ----------------------------------------------------------------------------
def mul_add_hdl(m: Module, a, b, c, *, en=None, domain: str = "sync", acc_bits: int = DSP_P_BITS,
                name: str = "dsp") -> Signal:
    """``p = a*b + c`` wrapped to ``acc_bits`` (<= 48) bits, in the register structure of
    one DSP48E1: ``M = a*b`` and ``C = c`` registered, then ``P = M + C`` registered.
    Latency 2 (both registers clock-enabled by ``en``; no reset, so Yosys packs them into
    the slice).  ``a`` and ``b`` are signed (or unsigned) signals of at most 25 and 18
    signed bits, in either order; feed them from registers (the A/B registers) for a fully
    pipelined slice.
    """
    _check_int("mul_add_hdl: acc_bits", acc_bits, 2, DSP_P_BITS)
    av, bv = _as_signed(a), _as_signed(b)
    if len(av) < len(bv):
        av, bv = bv, av
    if len(av) > DSP_A_BITS or len(bv) > DSP_B_BITS:
        raise ValueError(f"mul_add_hdl: operands of {len(av)} x {len(bv)} signed bits do not "
                         f"fit the DSP48E1 {DSP_A_BITS} x {DSP_B_BITS} multiplier")
    cv = _as_signed(c)
    if len(cv) > DSP_P_BITS:
        raise ValueError(f"mul_add_hdl: addend of {len(cv)} bits is wider than the "
                         f"{DSP_P_BITS}-bit DSP48E1 C port")
    mw = min(len(av) + len(bv), DSP_P_BITS)
    mreg = _emit(m, av * bv, signed(mw), domain, en, f"{name}_m")
    creg = _emit(m, cv, signed(len(cv)), domain, en, f"{name}_c")
    return _emit(m, (mreg + creg)[:acc_bits].as_signed(), signed(acc_bits), domain, en, f"{name}_p")


# ----------------------------------------------------------------------------
# pipelining
# ----------------------------------------------------------------------------
def stall_pipeline(m: Module, i, o, latency: int, *, domain: str = "sync",
                   name: str = "pipe") -> Signal:
    """Control of a fixed-latency pipeline between stream ports ``i`` and ``o``.

    Creates ``latency`` valid bits (reset to 0); returns ``en``, high when the pipeline
    advances: ``en = ~o.valid | o.ready``.  Drives ``i.ready = en`` and ``o.valid``.
    Clock-enable every datapath register with ``en`` (see :func:`delay`); the element
    accepted at cycle ``t`` (``i.valid & i.ready``) reaches ``o`` after ``latency``
    advancing cycles, and ``o.payload`` must come from the last register stage.
    """
    _check_int("stall_pipeline: latency", latency, 1, 1 << 16)
    en = Signal(name=f"{name}_en")
    valid = [Signal(name=f"{name}_v{k}") for k in range(latency)]
    m.d.comb += [
        en.eq(~valid[-1] | o.ready),
        i.ready.eq(en),
        o.valid.eq(valid[-1]),
    ]
    with m.If(en):
        m.d[domain] += valid[0].eq(i.valid)
        for k in range(1, latency):
            m.d[domain] += valid[k].eq(valid[k - 1])
    return en


def delay(m: Module, value, n: int, *, en=None, domain: str = "sync",
          name: str | None = None):
    """``value`` delayed by ``n`` reset-less registers (clock-enabled by ``en``).
    ``n == 0`` returns ``value`` itself.  Keeps the shape (also a shape-castable one,
    e.g. a :class:`~amaranth.lib.data.StructLayout`)."""
    _check_int("delay: n", n, 0)
    shape = value.shape() if hasattr(value, "shape") else Value.cast(value).shape()
    cur = value
    for k in range(n):
        nxt = Signal(shape, name=None if name is None else f"{name}_d{k + 1}", reset_less=True)
        if en is None:
            m.d[domain] += nxt.eq(cur)
        else:
            with m.If(en):
                m.d[domain] += nxt.eq(cur)
        cur = nxt
    return cur



def delay_chain(m: Module, value, n: int, en, name: str) -> list:
    """``[value, value delayed 1, ..., delayed n]`` (reset-less, clock-enabled by ``en``;
    register ``k`` is named ``<name><k>_d1``)."""
    out = [value]
    for k in range(n):
        out.append(delay(m, out[-1], 1, en=en, name=f"{name}{k + 1}"))
    return out


def reduce_tree(m: Module, leaves, en, name: str, *, op=operator.add, grow: int = 1,
                max_bits: int | None = None, first_level: int = 0, odd: str = "pass") -> tuple[Value, int]:
    """Registered reduction tree, one register (clock-enabled by ``en``) a level: pairs
    combined by ``op(a, b)`` (default ``a + b``), each level ``grow`` bits wider (signed;
    at most ``max_bits``, where a sum wraps), an odd one out passed through a register.

    Returns ``(result, levels)``; one leaf is returned as it is, with 0 levels.  Level
    ``l`` (counted from ``first_level``) names its registers ``<name>_l<l>_<j>`` and the
    passed-through one ``<name>_l<l>_<odd>``.
    """
    vals, level = list(leaves), 0
    while len(vals) > 1:
        tag = f"{name}_l{first_level + level}"
        nxt = []
        for j in range(0, len(vals) - 1, 2):
            a, b = vals[j], vals[j + 1]
            width = max(len(a), len(b)) + grow
            if max_bits is not None:
                width = min(max_bits, width)
            r = Signal(signed(width), name=f"{tag}_{j // 2}", reset_less=True)
            with m.If(en):
                m.d.sync += r.eq(op(a, b))
            nxt.append(r)
        if len(vals) % 2:
            nxt.append(delay(m, vals[-1], 1, en=en, name=f"{tag}_{odd}"))
        vals, level = nxt, level + 1
    return vals[0], level

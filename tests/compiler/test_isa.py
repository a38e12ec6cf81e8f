"""The instruction format: packing, limits, listing, and PWL table words."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convc.compiler import isa
from convc.compiler.numeric import QFormat
from convc.compiler.pwl_table import pwl_eval
from convc.compiler.pwl_fit import make_tanh


def _field_strategy(f: isa.Field):
    if f.signed:
        return st.integers(-(1 << (f.bits - 1)), (1 << (f.bits - 1)) - 1)
    return st.integers(0, (1 << f.bits) - 1)


instrs = st.builds(isa.Instr, **{f.name: _field_strategy(f) for f in isa.FIELDS})


@given(instrs)
@settings(max_examples=200, deadline=None)
def test_encode_decode_round_trip(ins):
    blob = isa.encode(ins)
    assert len(blob) == isa.RECORD_BYTES
    assert isa.decode(blob) == ins


def test_fields_are_packed_in_order():
    """Field k starts where field k-1 ends: setting one field to all ones sets exactly its bits."""
    pos = 0
    for f in isa.FIELDS:
        ones = -1 if f.signed else (1 << f.bits) - 1
        word = int.from_bytes(isa.encode(isa.Instr(**{"bits": 0, "kernel": 0, "stride": 0, "pool_k": 0,
                                                        "pool_s": 0, f.name: ones})), "little")
        assert word == ((1 << f.bits) - 1) << pos, f.name
        pos += f.bits
    assert pos <= isa.RECORD_BITS


def test_out_of_range_field_is_refused():
    with pytest.raises(ValueError, match="kernel"):
        isa.Instr(kernel=32)
    with pytest.raises(ValueError, match="acc_shift"):
        isa.Instr(acc_shift=200)


def test_program_image_length_checked():
    blob = isa.encode_program([isa.Instr(op=isa.OP_CONV), isa.Instr(op=isa.OP_END)])
    assert [i.op for i in isa.decode_program(blob)] == [isa.OP_CONV, isa.OP_END]
    with pytest.raises(ValueError, match="whole number"):
        isa.decode_program(blob[:-1])


def test_listing_names_every_record():
    prog = [isa.Instr(op=isa.OP_CONV, n_in=3, n_out=2, act=isa.ACT_PWL, pool=isa.POOL_AVG, pool_k=2, pool_s=2),
            isa.Instr(op=isa.OP_LCN, kernel=9), isa.Instr(op=isa.OP_END)]
    text = isa.listing(prog, ["conv1", "lcn", "end"])
    lines = text.splitlines()
    assert len(lines) == 3 and "conv1" in lines[0] and "pool=avg2/2" in lines[0] and "lcn" in lines[1]


def test_conv_sizes():
    ins = isa.Instr(op=isa.OP_CONV, in_h=32, in_w=30, kernel=5, stride=2, pad=1, n_in=3, n_out=4)
    assert (ins.conv_h, ins.conv_w) == (15, 14)
    assert ins.weight_words == 4 * 3 * 25 + 8


@pytest.mark.parametrize("segments", [1, 8, 16, 32])
def test_table_words_round_trip(segments):
    """A table read back from memory evaluates every input code to the same output."""
    table, _ = make_tanh(segments, QFormat(16, 11), QFormat(16, 14))
    mem = np.zeros(10 + isa.TABLE_WORDS, dtype=np.int64)
    mem[10:] = isa.table_words(table)
    assert mem.min() >= 0 and mem.max() <= 0xFFFF
    back = isa.read_table(mem, 10)
    codes = np.arange(-32768, 32768)
    np.testing.assert_array_equal(pwl_eval(back, codes)[0], pwl_eval(table, codes)[0])
    assert pwl_eval(back, codes)[1] == pwl_eval(table, codes)[1]


def test_instr_is_the_field_list():
    assert [f.name for f in dataclasses.fields(isa.Instr)] == [f.name for f in isa.FIELDS]

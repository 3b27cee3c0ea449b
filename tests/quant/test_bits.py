import numpy as np
import pytest
from hypothesis import given, strategies as st

from quant.bits import bits_for, bits_to_int, int_to_bits, pack_bits, unpack_bits


@given(st.lists(st.integers(0, 1), min_size=1, max_size=200))
def test_pack_roundtrip_and_lsb_first(bits):
    packed = pack_bits(np.array(bits))
    assert packed.shape == ((len(bits) + 7) // 8,)
    assert unpack_bits(packed, len(bits)).tolist() == bits
    value = bits_to_int(bits)
    assert value == sum(b << j for j, b in enumerate(bits))
    assert int_to_bits(value, len(bits)).tolist() == bits


def test_bits_for():
    assert [bits_for(v) for v in (0, 1, 2, 3, 4, 255, 256)] == [1, 1, 2, 2, 3, 8, 9]


def test_pack_rejects_non_bits():
    with pytest.raises(ValueError, match="only 0 and 1"):
        pack_bits(np.array([0, 2]))
    with pytest.raises(ValueError, match="does not fit in 3 bits"):
        int_to_bits(8, 3)

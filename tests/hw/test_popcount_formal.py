"""Formal proof (Yosys SAT) that the ECP5 carry-save popcount, with Yosys's model of the CCU2C
cells, equals the reference count for every input; and that the proof can fail."""

import pytest

from hw import formal
from hw.formal import prove_popcount


@pytest.mark.parametrize("n,chain", [(3, 6), (8, 2), (17, 6), (32, 6)])
def test_tree_equals_reference_for_every_input(n, chain):
    assert prove_popcount(n, chain) is True


def test_a_wrong_table_is_caught(monkeypatch):
    """With the tap half injecting XNOR instead of XOR the tree is wrong, and the proof says so."""
    monkeypatch.setattr(formal.CarrySavePopcount, "_ccu2c", _broken)
    assert prove_popcount(8, 6) is False


_original = formal.CarrySavePopcount._ccu2c


def _broken(self, m, name, *args):
    *rest, init0, init1 = args
    return _original(self, m, name, *rest, init0, 0x0009 if init1 == 0x0006 else init1)

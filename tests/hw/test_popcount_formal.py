"""Formal proof that the ECP5 carry-save popcount, with Yosys's model of the CCU2C cells, equals
the reference count for every input (Yosys's SAT solver up to N = 32, BDDs up to N = 64); and
that each engine's proof can fail."""

import pytest

from hw import formal
from hw.formal import prove_ccu2c_model, prove_popcount
from hw.popcount_ecp5 import TAP_NONE, TAP_XOR, XOR4_FA


@pytest.mark.parametrize("n,chain", [(3, 6), (8, 2), (17, 6), (32, 6)])
def test_tree_equals_reference_for_every_input_sat(n, chain):
    assert prove_popcount(n, chain, engine="sat") is True


@pytest.mark.parametrize("n,chain", [(17, 6), (64, 6), (64, 12)])
def test_tree_equals_reference_for_every_input_bdd(n, chain):
    assert prove_popcount(n, chain, engine="bdd") is True


@pytest.mark.parametrize("engine,n", [("sat", 8), ("bdd", 64)])
def test_a_wrong_table_is_caught(monkeypatch, engine, n):
    """With the tap half injecting XNOR instead of XOR the tree is wrong, and the proof says so."""
    monkeypatch.setattr(formal.CarrySavePopcount, "_ccu2c", _broken)
    assert prove_popcount(n, 6, engine=engine) is False


_original = formal.CarrySavePopcount._ccu2c


def _broken(self, m, name, *args):
    *rest, init0, init1 = args
    return _original(self, m, name, *rest, init0, 0x0009 if init1 == 0x0006 else init1)


def test_simulation_model_of_the_carry_cell_equals_yosys_model():
    """The CCU2C model the simulators use (hw/verilog/ccu2c_sim.v) against Yosys's model of the
    cell, for the tables the tree uses and two arbitrary ones; a model with the second half's
    sum taken from the wrong carry is caught."""
    tables = [(XOR4_FA, TAP_XOR), (XOR4_FA, TAP_NONE), (0x1234, 0xBEEF), (0xFFFF, 0x0001)]
    assert prove_ccu2c_model(tables) is True
    from pathlib import Path
    text = (Path(formal.__file__).parent / "verilog" / "ccu2c_sim.v").read_text()
    assert "assign S1 = p1 ^ c0;" in text
    assert prove_ccu2c_model(tables, text.replace("assign S1 = p1 ^ c0;",
                                                  "assign S1 = p1 ^ CIN;")) is False


def test_proof_timeout_starts_after_the_tools_first_run(tmp_path, monkeypatch):
    """YoWASP compiles Yosys on its first run on a machine (minutes); the proof's timeout does
    not count that: a stand-in Yosys whose first run takes 3 s proves within a 2 s timeout,
    and its first run happens once however many proofs follow."""
    import stat

    tool = tmp_path / "yosys"
    tool.write_text(f"""#!/bin/sh
echo "$@" >> {tmp_path}/calls
test -e {tmp_path}/compiled || {{ sleep 3; touch {tmp_path}/compiled; }}
exit 0
""")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(formal, "_tool", lambda name: str(tool))
    formal._ready.cache_clear()
    try:
        assert formal._run_proof(tmp_path, 2, "a stand-in") is True
        assert formal._run_proof(tmp_path, 2, "a stand-in") is True
        # a lock file this user cannot open (here a folder of that name): no lock, same run
        (tmp_path / "tmp" / "bnnforge-yowasp.lock").mkdir(parents=True)
        monkeypatch.setattr(formal.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
        formal._ready.cache_clear()
        (tmp_path / "compiled").unlink()
        assert formal._run_proof(tmp_path, 2, "a stand-in") is True
    finally:
        formal._ready.cache_clear()
    assert (tmp_path / "calls").read_text().splitlines() == (
        ["-V"] + ["-q -s prove.ys"] * 2 + ["-V", "-q -s prove.ys"])

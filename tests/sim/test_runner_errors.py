import pytest

import sim.runner
from quant.errors import SimulatorError
from sim.runner import check_simulator, run_vectors


def test_missing_icarus(monkeypatch):
    monkeypatch.setattr(sim.runner.shutil, "which", lambda name: None)
    with pytest.raises(SimulatorError, match=r"Icarus Verilog \(iverilog, vvp\) is not "
                                             r"installed: run `make setup`"):
        check_simulator("icarus")


def test_missing_verilator(monkeypatch):
    monkeypatch.setattr(sim.runner, "_verilator_bin", lambda: None)
    with pytest.raises(SimulatorError, match="Verilator is not installed in this environment"):
        check_simulator("verilator")


def test_unknown_simulator_and_design(tmp_path):
    with pytest.raises(SimulatorError, match="unknown simulator 'xsim'; choose one of icarus, "
                                             "verilator"):
        check_simulator("xsim")
    with pytest.raises(SimulatorError, match="is not a generated design \\(no design.json\\)"):
        run_vectors(tmp_path, [1], None, "icarus")

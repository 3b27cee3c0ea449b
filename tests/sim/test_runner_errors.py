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


def _popcount_design(path, n):
    from hw.axis import AxisTop
    from hw.generate import design_info, write_design
    from hw.popcount import PopcountStream
    from quant.bits import bits_for

    top = AxisTop([PopcountStream(n)], element_width=bits_for(n))
    info = design_info(top, "popcount_top", "popcount")
    write_design(path, top, "popcount_top", {}, info)
    return info


def test_one_build_per_content(tmp_path, monkeypatch):
    """Two directories holding the same design share one cached build (the second run builds
    nothing); another design gets its own; each run is still checked against its expectation."""
    monkeypatch.setenv("BNNFORGE_SIM_CACHE", str(tmp_path / "cache"))
    builds = []
    real_build = sim.runner._cached_build

    def counting(*args, **kwargs):
        builds.append(args[0])
        return real_build(*args, **kwargs)

    monkeypatch.setattr(sim.runner, "_cached_build", counting)
    for name, n in (("a", 6), ("b", 6), ("c", 7)):
        _popcount_design(tmp_path / name, n)
        inputs = [0b111111_000111, (1 << 2 * n) - 1]
        expected = [sum(((v >> i) & 1) == ((v >> (n + i)) & 1) for i in range(n))
                    for v in inputs]
        result = run_vectors(tmp_path / name, inputs, expected, "icarus", stall_modes=("none",))
        assert result["passed"] and [int(o, 16) for o in result["runs"][0]["outputs"]] == expected
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir() if p.is_dir())
    assert len(entries) == 2 and len(builds) == 2


def test_build_key_follows_content(tmp_path):
    (tmp_path / "top.v").write_text("module top; endmodule\n")
    key = sim.runner.build_key("icarus", [tmp_path / "top.v"], "top", [])
    assert key == sim.runner.build_key("icarus", [tmp_path / "top.v"], "top", [])
    assert key != sim.runner.build_key("verilator", [tmp_path / "top.v"], "top", [])
    assert key != sim.runner.build_key("icarus", [tmp_path / "top.v"], "top", ["-Wno-fatal"])
    (tmp_path / "top.v").write_text("module top; wire a; endmodule\n")
    assert key != sim.runner.build_key("icarus", [tmp_path / "top.v"], "top", [])


def test_clock_wrapper_ports_and_errors():
    """The simulation top keeps every port of the design but clk, which it toggles itself;
    its ports and clock are public to Verilator's VPI (the design's own signals are not)."""
    from sim.runner import CLOCK_TOP, PUBLIC_MARK, clock_wrapper

    verilog = ("module other(a);\n  input a;\nendmodule\n"
               "module top(clk, rst, d, q);\n  wire x;\n  input clk;\n  input rst;\n"
               "  input [7:0] d;\n  output [3:0] q;\n  reg [3:0] q;\nendmodule\n")
    text = clock_wrapper(verilog, "top")
    assert text.splitlines()[:5] == [f"module {CLOCK_TOP}(rst, d, q);",
                                     f"  input rst {PUBLIC_MARK};",
                                     f"  input [7:0] d {PUBLIC_MARK};",
                                     f"  output [3:0] q {PUBLIC_MARK};",
                                     f"  reg clk {PUBLIC_MARK} = 1'b0;"]
    assert "  always #5 clk = ~clk;" in text
    assert "  top dut (.clk(clk), .rst(rst), .d(d), .q(q));" in text
    with pytest.raises(SimulatorError, match="^no module missing in the design's Verilog$"):
        clock_wrapper(verilog, "missing")
    with pytest.raises(SimulatorError, match="^module other: could not read its ports"):
        clock_wrapper(verilog, "other")


def test_verilator_compiles_through_ccache_when_installed(tmp_path, monkeypatch):
    """With ccache on PATH, Verilator's builds compile through it (``OBJCACHE``, read by
    Verilator's makefile), its cache in the simulators'; a user's own OBJCACHE or CCACHE_DIR
    stays; without ccache nothing is set; and the environment is restored afterwards."""
    import os
    import shutil

    monkeypatch.setenv("BNNFORGE_SIM_CACHE", str(tmp_path / "cache"))
    for var in ("OBJCACHE", "CCACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    real_which = shutil.which
    for present in (True, False):
        monkeypatch.setattr(sim.runner.shutil, "which",
                            lambda name: (present and "/usr/bin/ccache") if name == "ccache"
                            else real_which(name))
        with sim.runner._environment("verilator"):
            seen = {v: os.environ.get(v) for v in ("OBJCACHE", "CCACHE_DIR")}
        assert seen == ({"OBJCACHE": "ccache", "CCACHE_DIR": str(tmp_path / "cache" / "ccache")}
                        if present else {"OBJCACHE": None, "CCACHE_DIR": None})
        assert "OBJCACHE" not in os.environ
        with sim.runner._environment("icarus"):
            assert "OBJCACHE" not in os.environ
    monkeypatch.setattr(sim.runner.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setenv("CCACHE_DIR", str(tmp_path / "mine"))
    with sim.runner._environment("verilator"):
        assert os.environ["CCACHE_DIR"] == str(tmp_path / "mine")
    monkeypatch.setenv("OBJCACHE", "sccache")
    with sim.runner._environment("verilator"):
        assert os.environ["OBJCACHE"] == "sccache"

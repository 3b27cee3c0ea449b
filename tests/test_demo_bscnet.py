"""The BSC-Net demo end to end on a coarse frog frame (voxel size 24, 579 sites): training,
bitstream round trip, 21 binary layers on Icarus with the hardware's sums fed back, report."""

import json

import numpy as np
import pytest
import torch

from bnnforge.demo_bscnet import run_bscnet_demo, segmentation_frame, simulate_bscnet


@pytest.mark.long
def test_whole_program_in_hardware(tmp_path):
    """`bnnforge sim` of a two-level UNET-S bitstream (random weights, batch-norm statistics
    as training leaves them) made at voxel size 9 on the frog frame at voxel size 24: every op
    between the first layer and the head in hardware on Icarus (SSC, down, up, pointwise
    projection, batch-norm + residual/projection add, the real 1x1, mean pool and unpool),
    each equal to the golden fixed-point op, so the predictions are golden's; only the first
    layer, the concatenations and the head on the host; the report's figures, and the on-chip
    memory the core's, whatever the frame."""
    from bnnforge.bscnet_hw import LINEAR_FOLD
    from bnnforge.demo_bscnet import TILE_BITS, TILE_VOXELS, kind_totals
    from golden.bscnet import BSCNet, from_bitstream
    from golden.bscnet_fixed import FixedBscNet
    from golden.checkpoint import save_checkpoint
    from golden.frog import frog_segmentation
    from hw.memory_budget import budget
    from quant.bitstream import read
    from tests.golden.test_bscnet_fixed import _trained_like
    from tests.test_cli import bnnforge

    torch.manual_seed(1)
    net = _trained_like(BSCNet("unet-s", classes=16, sfsc=False, levels=2), 1).eval()
    save_checkpoint(tmp_path / "b.ckpt", net, {"channels": 1, "voxel_size": 9})
    assert bnnforge("quantize", tmp_path / "b.ckpt", "-o", tmp_path / "b.bnn").returncode == 0
    out = tmp_path / "s"
    r = bnnforge("sim", tmp_path / "b.bnn", "--voxel-size", 24, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "PASS: 21 ops in hardware, 0 mismatches" in r.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["voxel_size"] == 24 and report["simulator"] == "icarus"
    assert report["sites"] == len(frog_segmentation(24, (0, 0, 0))[0]) == 579
    assert report["mismatches"] == 0 and report["accuracy"] == report["golden_accuracy"]
    rows = report["layers"]
    where = {x["name"]: x["where"] for x in rows}
    assert [n for n, w in where.items() if w == "host"] == ["stem", "head"]
    assert rows[0]["name"] == "stem" and rows[-1]["name"] == "head"
    # The concatenations are no layers (no arithmetic): listed apart, each with its blocks.
    program = FixedBscNet(from_bitstream(read(tmp_path / "b.bnn"))).program
    concats = [op for op in program["ops"] if op["op"] == "concat"]
    assert [c["srcs"] for c in report["concatenations"]] == [op["srcs"] for op in concats]
    assert any(len(c["channels"]) == 2 and min(c["channels"]) > 0
               for c in report["concatenations"])
    # The on-chip memory is the core's (every engine in one design, written beside the
    # report): its Verilog's memories, counted again here.
    core = json.loads((out / "core" / "design.json").read_text())
    core_bits = budget((out / "core" / core["verilog"]).read_text())["bits"]
    assert report["onchip_memory_bits"] == report["onchip_memory"]["bits"] == core_bits > 0
    assert report["onchip_memory"]["fits"] is True
    kinds = {x["kind"] for x in rows if x["where"] == "hardware"}
    assert kinds == {"ssc", "down", "up", "pointwise", "bn_add", "linear", "pool", "unpool"}
    hw = [x for x in rows if x["where"] == "hardware"]
    for x in hw:
        assert x["mismatches"] == 0 and x["cycles_simulated"] >= x["cycles_model"] > 0, x
    # Streaming ops keep to their models within their pipelines' fill (a few cycles a run,
    # and the first beat's words in and the last one's out at the 64-bit port).
    for x in hw:
        if x["kind"] in ("bn_add", "linear"):
            fill = 8 + x["words_in"] + x["words_out"]
            assert x["cycles_simulated"] - x["cycles_model"] <= fill, x
    # Every design's memories fit the device; a mean engine (one a kind) averages 8
    # channels in tiles of 512 sites, a pass a group of 8.
    assert all(x["memory_fits"] is True for x in hw)
    means = [x for x in hw if x["kind"] in ("pool", "unpool")]
    assert {(x["engine"], x["engine_channels"], x["tile_sites"]) for x in means} == {
        ("pool-engine", 8, 512), ("unpool-engine", 8, 512)}
    assert {(x["kind"], x["channels"], x["passes"]) for x in means} == {("pool", 16, 2),
                                                                        ("unpool", 32, 4)}
    # Their model is the busier side of the word port: the input sites' words, or each
    # output site's present inputs or its words if more (the sides overlap only in part).
    for x in means:
        assert x["cycles_model"] <= x["cycles_simulated"] <= 1.3 * x["cycles_model"], x
    ssc = [x for x in hw if x["kind"] == "ssc"]
    assert all(x["spconv_equal"] is True and x["spconv_seconds"] > 0 for x in ssc)
    assert all(x.get("tiles", 1) >= 1 for x in hw) and TILE_BITS == 6 and TILE_VOXELS == 512
    # One engine a binary kind serves every layer of that kind, a pass a fold of 16 output
    # channels: each pass loads its fold's weights (a header and a word a PE row, slot and
    # input fold, a beat's 64-bit words a cycle) before its frame.
    binary = [x for x in hw if x["kind"] in ("ssc", "down", "up", "pointwise")]
    assert {x["engine"] for x in binary} == {"ssc-engine", "down-engine", "up-engine",
                                              "pointwise-engine"}
    for x in binary:
        slots = {"ssc": 27, "down": 8, "up": 8, "pointwise": 1}[x["kind"]]
        assert x["fold_passes"] == -(-x["cout"] // 16)
        words = slots * (x["cin"] // 16) * 16
        assert x["load_cycles_model"] == x["fold_passes"] * (1 + words) * x["words_in"]
        assert 0 <= x["load_cycles"] - x["load_cycles_model"] <= 12 * x["fold_passes"], x
    # One linear engine runs every 1x1: a header, the weight words and a bias word a group.
    for x in (x for x in hw if x["kind"] == "linear"):
        assert x["engine"] == "linear-engine"
        groups = x["cout"] // LINEAR_FOLD[0]
        # a site's codes (the engine's input channels of 24 bits) in 64-bit words
        assert x["words_in"] == x["words_out"] == -(-x["engine_channels"] * 24 // 64)
        assert x["load_cycles_model"] == (1 + groups * (x["cin"] // LINEAR_FOLD[1]) + groups
                                          ) * x["words_in"]
        assert 0 <= x["load_cycles"] - x["load_cycles_model"] <= 8 + x["words_out"], x
    assert sum(t["ops"] for t in report["kind_totals"]) == len(hw)
    spf = report["seconds_per_frame"]
    assert spf["hardware"] == pytest.approx(
        sum(x["cycles_simulated"] + x.get("load_cycles", 0) for x in hw) / 200e6)
    assert spf["spconv_equal"] is True and spf["numpy"] > 0
    totals = {t["kind"]: t for t in kind_totals(rows)}
    assert totals["ssc"]["ops"] == 6 and totals["pointwise"]["ops"] == 1
    assert totals["bn_add"]["cycles_model"] == sum(x["cycles_model"] for x in hw
                                                   if x["kind"] == "bn_add")


@pytest.mark.slow
def test_bscnet_demo_small(tmp_path, monkeypatch):
    """Both models on the voxel-size-24 frame, a few steps a stage: 0 mismatches, the report's
    keys, every op in hardware but the first layer, the concatenations and the head; with
    --synth (place and route stood in for by a 40 MHz result) every hardware time at that
    clock."""
    import bnnforge.reports

    placed = {"part": "LFE5U-85F", "lut4": 1, "ccu2c": 1, "ff": 1, "comb": 1, "bram": 1,
              "dsp": 0, "fmax_mhz": 40.0, "freq_target_mhz": 200.0, "seed": 1,
              "tools": {"nextpnr": "stand-in"}, "hw_seconds_per_image_at_fmax": 0.0}
    called = []
    monkeypatch.setattr(bnnforge.reports, "synth_design",
                        lambda d, mhz, cycles, seeds, until_routed: called.append(
                            (d, seeds, until_routed)) or dict(placed))
    report = run_bscnet_demo(out_dir=tmp_path, simulator="icarus", voxel_size=24, steps=3,
                             synth=True)
    assert called == [(tmp_path / "core", bnnforge.reports.CORE_SEEDS, True)]
    assert report["mismatches"] == 0
    assert report["clock"]["source"] == "placed" and report["clock"]["mhz"] == 40.0
    assert report["synth"]["fits"] is True and report["synth"]["fmax_mhz"] == 40.0
    hw_rows = [x for x in report["layers"] if x["where"] == "hardware"]
    assert report["seconds_per_frame"]["hardware"] == pytest.approx(
        sum(x["cycles_simulated"] + x.get("load_cycles", 0) for x in hw_rows) / 40e6)
    assert report["seconds_per_frame"]["hardware_clock_source"] == "placed"
    core = json.loads((tmp_path / "core" / "design.json").read_text())["memory_budget"]
    assert report["onchip_memory_bits"] == core["bits"] == report["onchip_memory"]["bits"]
    from bnnforge.demo_bscnet import split_volume
    from golden.frog import frog_volume

    _, test_vol, _ = split_volume(frog_volume(), 24)
    ev = report["evaluation"]
    assert ev["test_sites"] == report["sites"] < 579
    assert ev["torch_cpu_kernels"] == torch.backends.cpu.get_cpu_capability()
    assert [m["name"] for m in ev["models"]] == ["bsc-baseline", "bsc-net"]
    for m in ev["models"]:
        # The hardware's outputs equal golden's, so the host's predictions are the golden ones.
        assert m["hardware"] == m["golden"]
        assert report["hardware_runs"][m["name"]]["mismatches"] == 0
    assert report["model"] == "bsc-net" and report["sfsc"] is True
    layers = report["layers"]
    assert {l["name"] for l in layers if l["where"] == "host"} == {"stem", "head"}
    kinds = [l["kind"] for l in layers if l["where"] == "hardware"]
    assert kinds.count("ssc") == 26 and kinds.count("down") == 6 and kinds.count("up") == 6
    assert kinds.count("linear") == 12 and kinds.count("pointwise") == 6
    # BSC-Net's SSC layers ran one pass a distinct shift of their groups.
    shifts = report["hardware_runs"]["bsc-net"]["sfsc_shifts"]
    for l in layers:
        if l["kind"] == "ssc" and l["where"] == "hardware":
            assert len(l["passes"]) == len({tuple(s) for s in shifts[l["name"]]})
    # An SSC layer's pairs as golden counts them (the baseline's first, unshifted).
    from golden.frog import frog_segmentation
    from golden.sparse import ssc_kernel_map

    coords, _, bits = frog_segmentation(24, (0, 0, 0), test_vol)
    base = report["hardware_runs"]["bsc-baseline"]["layers"]
    assert base[1]["pairs_whole_frame"] == len(ssc_kernel_map(coords, bits))
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["mismatches"] == 0 and saved["simulator"] == "icarus"
    for name in ("bsc-baseline", "bsc-net"):
        assert report["hardware_runs"][name]["seconds_per_frame"]["spconv_equal"] is True
    assert "SFSC, each as one SubMConv3d of kernel 5" in report["seconds_per_frame"][
        "spconv_scope"]
    assert (tmp_path / "report.md").read_text().startswith("# BSC-Net demo")


def test_segmentation_metrics_and_split_by_hand():
    from bnnforge.demo_bscnet import segmentation_metrics, split_volume

    m = segmentation_metrics([0, 0, 1, 2], [0, 1, 1, 1])
    # class 0: 1 / 2; class 1: 1 / 3 (class 2 is not in the truth)
    assert m["accuracy"] == 0.5 and abs(m["miou"] - (1 / 2 + 1 / 3) / 2) < 1e-12
    vol = np.zeros((3, 480, 5), dtype=np.uint8)
    vol[:, 100:400] = np.arange(100, 400, dtype=np.uint8)[None, :, None] % 7 + 1
    (train, mirrored), test, text = split_volume(vol, 9)
    # The midplane y = 232 rounded to a multiple of 9: 234.
    assert train[:, :234].any() and not train[:, 234:].any()
    assert test[:, 234:].any() and not test[:, :234].any()
    assert np.array_equal(train + test, vol)
    assert np.array_equal(mirrored, train[:, ::-1]) and not mirrored[:, :480 - 234].any()
    assert text.startswith("frog CT y < 234 (one side of the midplane) for training")


@pytest.mark.long
def test_sfsc_layers_in_hardware(tmp_path):
    """BSC-Net's SFSC layers in hardware: the first level's two SSC layers of a two-level
    UNET-S with SFSC, whose four channel groups chose two corner windows, run one pass a
    shift on Icarus (the other ops golden); each layer's sums equal the golden program's."""
    from bnnforge.bscnet_hw import ProgramRunner
    from bnnforge.demo_bscnet import TILE_BITS, TILE_VOXELS
    from golden.bscnet import BSCNet, SFSC, SFSC_SHIFTS
    from golden.bscnet_fixed import FixedBscNet, run_program
    from tests.golden.test_bscnet_fixed import _trained_like

    torch.manual_seed(2)
    net = BSCNet("unet-s", classes=16, sfsc=True, levels=2)
    for mod in net.modules():
        if isinstance(mod, SFSC):
            mod.alpha.data.zero_()
            mod.alpha.data[:2, 1] = 1.0       # groups 0, 1: the first corner
            mod.alpha.data[2:, 8] = 1.0       # groups 2, 3: the opposite corner
    net.fix_shifts()
    net = _trained_like(net, 2)
    frame, feats, _ = segmentation_frame(24, (0, 0, 0), 2)
    fx = FixedBscNet(net)
    runner = ProgramRunner(fx.program, frame, tmp_path, "icarus", TILE_VOXELS, TILE_BITS,
                           spconv=True)
    chosen = {"enc.0.0.a.conv", "enc.0.0.b.conv"}
    got = {}

    def hook(op, buffers):
        if op.get("name") in chosen:
            got[op["name"]] = runner(op, buffers)
            return got[op["name"]]
        return None

    trace = []
    run_program(fx.program, frame, fx.first_codes(feats, frame), hook=hook, trace=trace)
    want = {op["name"]: out for op, out in trace if op.get("name") in chosen}
    assert runner.mismatches == 0 and set(got) == chosen
    for name in chosen:
        assert np.array_equal(got[name], want[name])
    corners = [list(map(int, SFSC_SHIFTS[1])), list(map(int, SFSC_SHIFTS[8]))]
    for row in runner.rows:
        assert [p["shift"] for p in row["passes"]] == sorted(corners)
        assert [p["channels"] for p in row["passes"]] == [8, 8]
        assert [p["fold_passes"] for p in row["passes"]] == [1, 1]
        assert row["cycles_simulated"] == sum(p["cycles_simulated"] for p in row["passes"])
        assert row["cycles_simulated"] >= row["cycles_model"] > 0
        # spconv beside it: the shifted windows as one kernel-5 SubMConv3d, its sums the
        # hardware's.
        assert row["spconv_kernel"] == 5 and row["spconv_equal"] is True


@pytest.mark.slow
def test_fcn_program_in_hardware(tmp_path):
    """The FCN form (each level's output concatenated with the deconvolution of the deeper
    levels', head on all of them): a two-level FCN-S, every op between first layer and head
    in hardware on Icarus, equal to the golden program. Slow (80 s): its ops run on the
    engines the UNET-S test runs in CI; only the up layer's shape and the concatenations
    differ, and the golden FCN program's real ops are checked against the float network in
    CI (tests/golden/test_bscnet_fixed.py)."""
    from golden.bscnet import BSCNet
    from tests.golden.test_bscnet_fixed import _trained_like

    torch.manual_seed(4)
    net = _trained_like(BSCNet("fcn-s", classes=16, sfsc=False, levels=2), 4)
    frame, feats, labels = segmentation_frame(24, (0, 0, 0), 2)
    r = simulate_bscnet(net, frame, feats, labels, tmp_path, "icarus", 200.0, spconv=False)
    assert r["mismatches"] == 0
    assert torch.equal(r["predictions"], r["golden_predictions"])
    hw = [x for x in r["rows"] if x["where"] == "hardware"]
    ups = [x for x in hw if x["kind"] == "up"]
    # FCN's deconvolution keeps the deeper levels' 32 channels (UNET's would halve them).
    assert [(x["cin"], x["cout"]) for x in ups] == [(32, 32)]
    assert all(x["mismatches"] == 0 for x in hw)


def test_unet_core_fits(tmp_path):
    """UNET-S's hardware as one design (every engine it needs, built from the arch's shapes,
    no frame): its memories fit the LFE5U-85F by the estimate made before synthesis, and
    the binary engines hold one fold of weights (slots x Cin x 16 bits), not a layer's."""
    from bnnforge.demo_bscnet import core_design

    torch.manual_seed(3)
    before = torch.get_rng_state()
    budget, synth = core_design("unet-s", tmp_path / "core", False, 200.0)
    # the network it sizes the engines from draws on a fork: the caller's stream is untouched
    assert torch.equal(torch.get_rng_state(), before)
    assert synth is None and budget["fits"] is True
    assert budget["block_ram_estimate"] <= budget["device_block_rams"] == 208
    info = json.loads((tmp_path / "core" / "design.json").read_text())
    assert info["engines"] == ["down_engine", "pointwise_engine", "ssc_engine", "up_engine",
                               "affine_residual", "affine_projection", "linear_engine",
                               "pool_engine", "unpool_engine"]
    assert info["tile"] == {"max_voxels": 512, "coord_bits": 6}
    assert info["synth_per_module"] is True and info["router"] == "router2"
    assert info["placer"] == "static"
    # One 64-bit word a cycle each way at the core's port: the linear engine's site of 112
    # channels of 24-bit codes is 42 words in and 42 out.
    assert info["word_bits"] == 64 and info["tdata_in"] == info["tdata_out"] == 64
    assert info["engine_words"]["linear_engine"] == {"in": 112 * 24 // 64, "out": 112 * 24 // 64,
                                                     "bits_in": 112 * 24, "bits_out": 112 * 24}
    verilog = (tmp_path / "core" / info["verilog"]).read_text()
    from hw.memory_budget import memories

    # The SSC engine's PE rows: 16-bit words, 27 slots of up to 16 input folds (192
    # channels: 12) and one output fold, addressed Cat(sf, nf, slot).
    w = [m for m in memories(verilog) if m["width"] == 16 and m["depth"] == 27 * 16 * 2]
    assert len(w) == 16


@pytest.mark.slow
def test_voxel_size_2_frame_on_the_engines(tmp_path):
    """The whole frog frame at voxel size 2 (192,213 sites) through a BSC-Net UNET-S with SFSC
    (random weights, batch-norm statistics as training leaves them, four groups a layer with
    their own window shifts) on Verilator: every op between first layer and head in hardware
    on the engines every other frame runs on, 0 mismatches, and the on-chip memory the core's,
    the same figure as at voxel size 24. The frame's run took about 92 minutes on a 2-core
    machine with another job beside it (at 8449ec2; docs/sparse.md); the report stays in
    pytest's base directory (``--basetemp``)."""
    from golden.bscnet import BSCNet, SFSC
    from golden.checkpoint import save_checkpoint
    from tests.golden.test_bscnet_fixed import _trained_like
    from tests.test_cli import bnnforge

    torch.manual_seed(7)
    net = BSCNet("unet-s", classes=16, sfsc=True)
    for mod in net.modules():
        if isinstance(mod, SFSC):
            mod.alpha.data.normal_()
    net.fix_shifts()
    net = _trained_like(net, 7).eval()
    save_checkpoint(tmp_path / "b.ckpt", net, {"channels": 1, "voxel_size": 2})
    assert bnnforge("quantize", tmp_path / "b.ckpt", "-o", tmp_path / "b.bnn").returncode == 0
    figures = {}
    for voxel in (24, 2):
        out = tmp_path / f"v{voxel}"
        r = bnnforge("sim", tmp_path / "b.bnn", "--voxel-size", voxel, "--simulator",
                     "verilator", "-o", out)
        assert r.returncode == 0, r.stderr
        report = json.loads((out / "report.json").read_text())
        hw = [x for x in report["layers"] if x["where"] == "hardware"]
        assert report["mismatches"] == 0 and all(x["mismatches"] == 0 for x in hw)
        assert {x["name"] for x in report["layers"] if x["where"] == "host"} == {
            "stem", "head"}
        assert all(x["cycles_simulated"] >= x["cycles_model"] > 0 for x in hw)
        figures[voxel] = report["onchip_memory_bits"]
    assert report["sites"] == 192_213
    assert figures[2] == figures[24] > 0


def test_core_placed_while_models_train(tmp_path, monkeypatch):
    """With --synth the core's placement runs beside the training (both start before either
    ends), and an error of the placement reaches the caller once training is done."""
    import threading

    import bnnforge.demo_bscnet as demo
    from quant.errors import BnnforgeError

    both = threading.Barrier(2, timeout=60)
    trained = []

    def place(arch, out_dir, synth, clock_mhz, program=None):
        # the program comes from the main thread: the placement never draws from torch's
        # global random state while a model is initialized
        assert program is not None and program["ops"]
        both.wait()                        # only passes if training runs at the same time
        raise BnnforgeError("stand-in placement failed")

    def train(variant, arch, frames, steps, seed):
        both.wait()
        trained.append(variant)
        return None, []

    monkeypatch.setattr(demo, "core_design", place)
    monkeypatch.setattr(demo, "_train_model", train)
    with pytest.raises(BnnforgeError, match="^stand-in placement failed$"):
        demo.run_bscnet_demo(out_dir=tmp_path, simulator="icarus", voxel_size=24,
                             models=("bsc-net",), synth=True)
    assert trained == ["bsc-net"]


def test_core_written_once_for_a_program_shape(tmp_path, monkeypatch):
    """A core is written (by Amaranth, here stood in for) once for programs of the same
    shapes, whatever their weights, kept in the cache and copied from there; another tile,
    other channels or other code is another core; a write that fails leaves nothing."""
    import bnnforge.bscnet_hw as bh
    from golden.bscnet import BSCNet
    from golden.bscnet_fixed import FixedBscNet

    monkeypatch.setenv("BNNFORGE_SIM_CACHE", str(tmp_path / "cache"))
    written = []

    def stand_in(runner, out_dir, tile_voxels, tile_bits, family):
        written.append((tile_voxels, max(runner.engines.values())))
        if len(written) == 4:
            raise RuntimeError("interrupted")
        out_dir.mkdir(parents=True)
        (out_dir / "bnn_top.v").write_text(f"// {len(written)}\n")
        (out_dir / "design.json").write_text(json.dumps({"memory_budget": {"bits": 8}}))

    monkeypatch.setattr(bh, "_write_core", stand_in)
    programs = []
    for seed, arch in ((0, "unet-s"), (1, "unet-s"), (0, "unet-h")):
        torch.manual_seed(seed)
        programs.append(FixedBscNet(BSCNet(arch, levels=2, sfsc=False).eval()).program)
    assert bh.write_core(programs[0], tmp_path / "a", 512, 6) == {"bits": 8}
    bh.write_core(programs[1], tmp_path / "b", 512, 6)
    assert len(written) == 1
    assert (tmp_path / "b" / "bnn_top.v").read_text() == "// 1\n"
    bh.write_core(programs[0], tmp_path / "c", 256, 6)
    bh.write_core(programs[2], tmp_path / "d", 512, 6)
    assert [w[0] for w in written] == [512, 256, 512] and written[2][1] > written[0][1]
    assert (tmp_path / "d" / "bnn_top.v").read_text() == "// 3\n"
    monkeypatch.setattr(bh, "CORE_CODE", bh.CORE_CODE + ("golden/bscnet_fixed.py",))
    with pytest.raises(RuntimeError, match="interrupted"):
        bh.write_core(programs[0], tmp_path / "e", 512, 6)
    assert not (tmp_path / "e").exists()
    bh.write_core(programs[0], tmp_path / "e", 512, 6)
    assert len(written) == 5 and (tmp_path / "e" / "bnn_top.v").read_text() == "// 5\n"

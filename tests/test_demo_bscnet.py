"""The BSC-Net demo end to end on a coarse frog frame (voxel size 24, 579 sites): training,
bitstream round trip, 21 binary layers on Icarus with the hardware's sums fed back, report."""

import json

import numpy as np
import pytest
import torch

from bnnforge.demo_bscnet import run_bscnet_demo, segmentation_frame, simulate_bscnet


def test_three_kinds_in_the_loop(tmp_path):
    """One SSC, one down and the up layer of an untrained UNET-S in hardware (Icarus) inside
    the network's forward pass: every layer's sums equal golden's and the logits are golden's."""
    from golden.bscnet import BSCNet

    torch.manual_seed(1)
    net = BSCNet("unet-s", classes=16, sfsc=False).eval()
    frame, feats, labels = segmentation_frame(24, (0, 0, 0), 7)
    names = ["enc.1.0.a.conv", "down.1.conv", "up.5.conv"]
    rows, bad, acc, _, pred = simulate_bscnet(net, frame, feats, labels, tmp_path, "icarus",
                                              200.0, names)
    assert float((pred == labels).float().mean()) == acc
    assert bad == 0 and [r["name"] for r in rows] == names
    assert [r["kind"] for r in rows] == ["ssc", "down", "up"]
    with torch.no_grad():
        want = float((net(feats, frame).argmax(1) == labels).float().mean())
    assert acc == want
    assert rows[1]["voxels"] == frame.size(1) and rows[1]["out_voxels"] == frame.size(2)
    assert rows[0]["cycles_simulated"] >= rows[0]["cycles_model"] > 0
    # The designs have the demo's bounded size, whatever the frame (tiles with halos).
    from bnnforge.demo_bscnet import TILE_BITS, TILE_VOXELS

    assert all(r["largest_tile"] <= TILE_VOXELS and r["tiles"] >= 1 for r in rows)
    assert rows[0]["pairs"] >= rows[0]["pairs_whole_frame"]
    assert all(r["onchip_memory_bits"] > 0 for r in rows) and TILE_BITS == 6
    assert np.isfinite(rows[0]["software_seconds"])
    # spconv's SubMConv3d on the SSC layer's own frame and weights gives golden's sums.
    assert rows[0]["spconv_equal"] is True and rows[0]["spconv_seconds"] > 0
    assert "spconv_seconds" not in rows[1]
    from bnnforge.demo_bscnet import seconds_per_frame

    spf = seconds_per_frame(rows, 200.0)
    assert spf["spconv"] == rows[0]["spconv_seconds"] and spf["spconv_equal"] is True
    assert spf["hardware"] == sum(r["cycles_simulated"] for r in rows) / 200e6


@pytest.mark.slow
def test_bscnet_demo_small(tmp_path):
    report = run_bscnet_demo(out_dir=tmp_path, simulator="icarus", voxel_size=24, epochs=3)
    assert report["mismatches"] == 0
    assert report["clock"]["source"] == "target"
    from bnnforge.demo_bscnet import split_volume
    from golden.frog import frog_volume

    _, test_vol, _ = split_volume(frog_volume(), 24)
    assert report["evaluation"]["test_sites"] == report["sites"] < 579
    # The hardware's sums equal golden's, so the host's predictions are the golden ones.
    assert report["accuracy"]["hardware"] == report["accuracy"]["golden"]
    layers = report["layers"]
    assert [l["kind"] for l in layers].count("ssc") == 14
    assert [l["kind"] for l in layers].count("down") == 6
    assert [l["kind"] for l in layers][-1] == "up"
    for l in layers:
        assert l["cycles_simulated"] >= l["cycles_model"] or l["kind"] == "up"
        assert l["search_cycles"] > 0 and l["software_seconds"] > 0
    # An SSC layer's pairs and the down layer's outputs as golden counts them.
    from golden.bscnet import SparseFrame
    from golden.frog import frog_segmentation
    from golden.sparse import ssc_kernel_map

    coords, _, bits = frog_segmentation(24, (0, 0, 0), test_vol)
    fr = SparseFrame(coords, bits, 7)
    assert layers[0]["pairs"] == len(ssc_kernel_map(coords, bits))
    assert layers[2]["out_voxels"] == fr.size(1)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["mismatches"] == 0 and saved["simulator"] == "icarus"
    assert saved["seconds_per_frame"]["spconv_equal"] is True
    assert (tmp_path / "report.md").read_text().startswith("# BSC-Net demo")


def test_segmentation_metrics_and_split_by_hand():
    from bnnforge.demo_bscnet import segmentation_metrics, split_volume

    m = segmentation_metrics([0, 0, 1, 2], [0, 1, 1, 1])
    # class 0: 1 / 2; class 1: 1 / 3 (class 2 is not in the truth)
    assert m["accuracy"] == 0.5 and abs(m["miou"] - (1 / 2 + 1 / 3) / 2) < 1e-12
    vol = np.zeros((20, 4, 4), dtype=np.uint8)
    vol[2:18] = 3
    train, test, text = split_volume(vol, 4)
    # occupied slices 2..17: 2 + 0.6 x 16 = 11.6, rounded to a multiple of 4: 12
    assert train[2:12].all() and not train[12:].any() and test[12:18].all() and not test[:12].any()
    assert text.startswith("frog CT slices z < 12 for training")

"""The Group-Net demo flow end to end on a small configuration (the full run is
`bnnforge demo --network groupnet`), and the fixed-point accuracy bound on the demo network."""

import json

import pytest

from bnnforge.demo_groupnet import run_groupnet_demo
from golden.digits import as_images, load_digits_split
from golden.groupnet import TRAINING, FixedPoint, GroupNet, fixed_forward
from golden.train import accuracy, seed_everything, torch_threads, train_classifier


@pytest.mark.long
def test_small_groupnet_demo(tmp_path):
    """K = 1 and 2 with binary activations, K = 2 with 2-bit activations (multi-bit inputs
    to the MVTUs), and K = 2 with 2-bit activations in two stages (4 and 8 channels, a
    stride-2 unit with a down-sampling shortcut): every image bit-exact, the cycles the
    model's."""
    report = run_groupnet_demo(out_dir=tmp_path / "d", simulator="icarus", epochs=1,
                               bases=(1, 2), images=3, channels=4, target_cycles=8 * 8 * 4,
                               act_runs=((2, 2, None), (2, 2, (4, 8))))
    saved = json.loads((tmp_path / "d" / "report.json").read_text())["runs"]
    assert [(r["bases"], r["act_bits"], r["stages"]) for r in saved] == [
        (1, 1, None), (2, 1, None), (2, 2, None), (2, 2, [4, 8])]
    staged = report["runs"][3]
    # Two stages of two blocks: 8 units a base, 4x4 (stride 2) after the first stage.
    assert staged["weight_bits"] == 2 * (4 * 4 * 36 + 8 * 9 * 4 + 3 * 8 * 9 * 8)
    for run in report["runs"]:
        assert run["mismatches"] == 0 and run["images"] == 3
        assert run["accuracy"]["hardware"] == run["accuracy"]["golden"]
        assert set(run) >= {"bases", "accuracy", "images", "mismatches", "layers",
                            "cycles_per_image", "software", "weight_bits", "lanes"}
        assert run["cycles_per_image"] == run["cycles_per_image_model"] == 256
        if not run["stages"]:
            assert run["weight_bits"] == run["bases"] * 4 * 4 * 36
        assert run["clock"]["source"] == "target" and run["clock"]["mhz"] == 200.0
    md = (tmp_path / "d" / "report.md").read_text()
    assert "200 (target)" in md and "a target clock, not achieved" in md
    assert len({r["cycles_per_image"] for r in report["runs"]}) == 1
    assert "act bits" in md


def test_fixed_point_loses_little_accuracy_on_the_demo_network():
    """The demo's architecture (16 channels, 2 blocks, Group-Net decomposition; two bases to
    keep the test short), trained with the demo's recipe on one thread: the declared
    fixed-point format changes the test accuracy by at most one point.

    The float bound holds with a margin: `benchmarks/training_stability.py --bases 2` (15
    epochs, seeds 0-4, 1 and 2 threads) gave 0.975-0.992 on every run."""
    seed_everything(0)
    data = load_digits_split(0)
    x_train, x_test = as_images(data.x_train), as_images(data.x_test)
    with torch_threads(1):
        model = GroupNet(channels=16, blocks=2, bases=2, decomposition="groupnet")
        train_classifier(model, x_train, data.y_train, epochs=15, **TRAINING)
        acc_float = accuracy(model, x_test, data.y_test)
        fmt = FixedPoint()
        codes = model.stem_codes(x_test, fmt)
        pred = model.head_logits(fixed_forward(model.fixed_point(fmt), codes), fmt).argmax(1)
    acc_fixed = float((pred.numpy() == data.y_test).mean())
    assert acc_float > 0.93
    assert abs(acc_fixed - acc_float) <= 0.01


@pytest.mark.slow
def test_small_groupnet_demo_with_synthesis(tmp_path):
    """--synth on the Group-Net demo: each K's design generated for ECP5, simulated bit-exact,
    placed and routed; the hardware time per image uses the achieved Fmax (about 5 minutes:
    slow; the MLP demo's --synth runs in CI)."""
    report = run_groupnet_demo(out_dir=tmp_path / "d", simulator="icarus", epochs=1,
                               bases=(2,), images=2, channels=4, target_cycles=8 * 8 * 4,
                               synth=True, act_runs=())
    run = report["runs"][0]
    assert run["mismatches"] == 0 and run["family"] == "ecp5"
    s = run["synth"]
    assert "error" not in s, s
    assert s["part"] == "LFE5U-85F" and s["lut4"] > 0 and s["ff"] > 0
    assert run["hw_clock_mhz"] == s["fmax_mhz"] and 20 < s["fmax_mhz"] < 1000
    assert run["clock"]["source"] == "placed" and run["clock"]["mhz"] == s["fmax_mhz"]
    assert run["hw_seconds_per_image"] == run["cycles_per_image"] / (s["fmax_mhz"] * 1e6)
    md = (tmp_path / "d" / "report.md").read_text()
    assert f"| K = 2 | LFE5U-85F | {s['lut4']} | {s['ccu2c']} | {s['ff']} |" in md

"""The CNN demo end to end on a short run (the full run is `bnnforge demo --network cnn`), and
the example script of the Python API."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bnnforge.demo_cnn import run_cnn_demo

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.long
def test_cnn_demo(tmp_path):
    """8 epochs on one thread, 60 test images through the hardware on Icarus: float = golden =
    hardware, 0 mismatches, the measured cycles an image equal the model's. The accuracy bound
    holds with a margin: seeds 0-3 gave 0.967-0.983 on these 60 images."""
    report = run_cnn_demo(out_dir=tmp_path / "d", simulator="icarus", epochs=8, seed=0,
                          images=60)
    saved = json.loads((tmp_path / "d" / "report.json").read_text())
    assert saved["mismatches"] == report["mismatches"] == 0 and saved["images"] == 60
    acc = report["accuracy"]
    assert acc["float"] == acc["golden"] == acc["hardware"] > 0.9
    assert report["cycles_per_image"] == report["cycles_per_image_model"] == 256
    assert [r["op"] for r in report["layers"]] == ["conv", "conv", "pool", "dense", "dense"]
    for r in report["layers"]:
        assert r["cycles_simulated"] <= r["cycles_model"]
    assert report["clock"]["source"] == "target"
    assert "0 of 60 images" in (tmp_path / "d" / "report.md").read_text()


def test_example_script(tmp_path):
    """examples/train_cnn.py trains, exports, generates and simulates; the golden accuracy it
    prints equals the float one and the hardware has no mismatches."""
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "train_cnn.py"), "--epochs",
                          "1", "--images", "6", "--out", str(tmp_path / "ex")],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    acc = {l.split(":")[0]: l.split(":")[1].strip() for l in lines if "accuracy" in l}
    assert acc["float accuracy on the test split"] == acc["golden (integer) accuracy"]
    assert "simulated 6 images on icarus: 0 mismatches with the golden model" in lines
    assert (tmp_path / "ex" / "net.bnn").exists()

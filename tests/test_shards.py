"""Sharded simulation on a Dask LocalCluster of two workers gives exactly the serial results."""

import re

import numpy as np
import pytest

from bnnforge.kinds import kind_named
from bnnforge.shards import simulate_sharded
from quant import bitstream as bitstream_io
from tests.helpers import random_dense

# Dask's scheduler leaves a listening socket to the garbage collector when its cluster closes
# (a ResourceWarning it does not control; the results are unaffected).
pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def test_two_workers_equal_serial(tmp_path):
    bs = random_dense(np.random.default_rng(5), [40, 24, 10])
    path = bitstream_io.write(bs, tmp_path / "net.bnn")
    bs = bitstream_io.read(path)
    kind = kind_named("mlp")
    folding = kind.fold(bs, target_cycles=8)
    x = np.random.default_rng(6).integers(0, 2, (30, 40), dtype=np.uint8)
    kind.generate(bs, folding, tmp_path / "serial")
    serial = kind.simulate(bs, tmp_path / "serial", x, "icarus")
    sharded = simulate_sharded(path, folding, x, "icarus", shards=3, workers=2)
    assert serial["mismatches"] == sharded["mismatches"] == 0
    assert np.array_equal(sharded["hardware"], serial["hardware"])
    assert np.array_equal(sharded["golden"], serial["golden"])
    assert [s["n"] for s in sharded["shards"]] == [10, 10, 10]
    assert all(s["cycles_per_input"] == 8 for s in sharded["shards"])
    assert re.fullmatch(r"dask\.distributed LocalCluster \(2 workers, 1 thread each\), "
                        r"scheduler tcp://127\.0\.0\.1:\d+", sharded["engine"])


def test_sim_command_with_shards(tmp_path, capsys):
    from bnnforge.cli import main

    path = bitstream_io.write(random_dense(np.random.default_rng(7), [24, 16, 10]),
                              tmp_path / "n.bnn")
    assert main(["sim", str(path), "--target-cycles", "8", "--vectors", "12", "--shards", "2",
                 "-o", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "engine: dask.distributed LocalCluster" in out
    assert "PASS: 12 vectors in 2 shards, 0 mismatches with the golden model" in out


def test_mlp_demo_test_split_in_shards(tmp_path):
    """The demo's test split in two shards on two workers: every image bit-exact, the cycles
    pooled over the shards still the slowest layer's model, the report names the shards."""
    from bnnforge.demo import run_demo

    report = run_demo(out_dir=tmp_path / "demo", simulator="icarus", epochs=2, images=10,
                      hidden=(32,), target_cycles=16, clock_mhz=100.0, shards=2)
    assert report["mismatches"] == 0 and report["images"] == 10
    assert report["accuracy"]["hardware"] == report["accuracy"]["golden"]
    assert [s["n"] for s in report["shards"]] == [5, 5]
    assert all(s["cycles_per_input"] == 16 for s in report["shards"])
    assert report["cycles_per_image"] == 16
    assert report["engine"].startswith("dask.distributed LocalCluster")
    md = (tmp_path / "demo" / "report.md").read_text()
    assert "Test split simulated in 2 shards on dask.distributed LocalCluster" in md


@pytest.mark.slow
def test_groupnet_demo_test_split_in_shards(tmp_path):
    """The Group-Net demo's test split in shards. With the slow marker: the MLP demo's test in
    shards and the serial-equals-parallel test run the same shard flow in CI, and CI is at
    its 20-minute budget."""
    from bnnforge.demo_groupnet import run_groupnet_demo

    report = run_groupnet_demo(out_dir=tmp_path / "d", simulator="icarus", epochs=1,
                               bases=(2,), images=4, channels=4, target_cycles=8 * 8 * 4,
                               shards=2, act_runs=())
    run = report["runs"][0]
    assert run["mismatches"] == 0 and run["images"] == 4
    assert run["accuracy"]["hardware"] == run["accuracy"]["golden"]
    assert [s["n"] for s in run["shards"]] == [2, 2]
    # Pooled over two shards of two images each: one interval a shard, each the model's.
    assert run["cycles_per_image"] == run["cycles_per_image_model"] == 256
    assert all(layer["cycles_simulated"] is not None for layer in run["layers"])


def test_bscnet_demo_refuses_shards(capsys):
    from bnnforge.cli import main

    assert main(["demo", "--network", "bscnet", "--shards", "2"]) == 2
    assert ("error: --shards splits a test set of images across Dask workers; the bscnet demo "
            "runs one frame (leave --shards out)") in capsys.readouterr().err

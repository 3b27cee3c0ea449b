"""Sharded simulation on a Dask LocalCluster of two workers gives exactly the serial results."""

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
    assert sharded["engine"] == "dask.distributed LocalCluster (2 workers, 1 thread each)"


def test_sim_command_with_shards(tmp_path, capsys):
    from bnnforge.cli import main

    path = bitstream_io.write(random_dense(np.random.default_rng(7), [24, 16, 10]),
                              tmp_path / "n.bnn")
    assert main(["sim", str(path), "--target-cycles", "8", "--vectors", "12", "--shards", "2",
                 "-o", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "engine: dask.distributed LocalCluster" in out
    assert "PASS: 12 vectors in 2 shards, 0 mismatches with the golden model" in out

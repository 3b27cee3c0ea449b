"""Sharded simulation on Dask: the inputs split across workers, each worker generating the same
design from the bitstream's bytes and the folding (tasks carry their inputs, never a path that
exists only on the client), simulating its shard, and the results merged in input order.

A ``LocalCluster`` with one worker per core (one thread each) by default; ``scheduler`` names an
existing Dask cluster (``tcp://host:8786``) instead. Needs the ``dask`` extra
(``pip install 'bnnforge[dask]'``).
"""

import os

import numpy as np

from quant.errors import BnnforgeError

__all__ = ["simulate_sharded", "dask_client"]


def dask_client(scheduler=None, workers=None):
    """``(client, cluster, engine description)``; the caller closes both (cluster may be
    None)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as e:
        raise BnnforgeError(f"sharded simulation needs the dask extra ({e.name} is not "
                            f"installed): pip install 'bnnforge[dask]'")
    if scheduler:
        try:
            client = Client(scheduler, timeout=10)
        except OSError as e:
            raise BnnforgeError(f"cannot reach the Dask scheduler at {scheduler}: {e}")
        n = len(client.scheduler_info()["workers"])
        return client, None, f"dask.distributed Client of the scheduler {scheduler} ({n} workers)"
    import logging

    # Shutting a LocalCluster down logs routine warnings (a worker killed after 4 s) that are
    # not the user's concern; errors still show.
    logging.getLogger("distributed").setLevel(logging.ERROR)
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           dashboard_address=":0")
    return Client(cluster), cluster, f"dask.distributed LocalCluster ({n} workers, 1 thread each)"


def _shard_task(bitstream_bytes, folding, family, reg_every, inputs, simulator, index):
    """One shard on a worker: read the bitstream from its bytes, generate the design in a
    directory of the worker's own, simulate; returns what the merge needs (no paths)."""
    import tempfile
    from pathlib import Path

    from quant import bitstream as bitstream_io
    from quant.layout import Folding
    from .kinds import kind_of

    with tempfile.TemporaryDirectory(prefix=f"bnnforge-shard{index}-") as tmp:
        path = Path(tmp) / "net.bnn"
        path.write_bytes(bitstream_bytes)
        bs = bitstream_io.read(path)
        kind = kind_of(bs)
        fold = {name: Folding(pe, simd) for name, (pe, simd) in folding.items()}
        kind.generate(bs, fold, Path(tmp) / "design", reg_every, family=family,
                      checksum=bs.checksum)
        result = kind.simulate(bs, Path(tmp) / "design", inputs, simulator)
        run = result["runs"][0]
        return {"index": index, "hardware": np.asarray(result["hardware"]),
                "golden": np.asarray(result["golden"]), "mismatches": result["mismatches"],
                "cycles": run["cycles"], "t_out": run["t_out"], "n": len(inputs)}


def simulate_sharded(bitstream_path, folding, inputs, simulator, shards, family=None,
                     reg_every=1, scheduler=None, workers=None, progress=None):
    """Split ``inputs`` into ``shards`` contiguous shards, simulate them on Dask workers and
    merge: ``{hardware, golden, mismatches, shards: [{n, cycles, cycles_per_input}], engine}``
    with outputs in input order."""
    from pathlib import Path

    from dask.distributed import as_completed

    if shards < 1:
        raise BnnforgeError(f"shards must be a positive integer, not {shards}")
    data = Path(bitstream_path).read_bytes()
    fold = {name: (f.pe, f.simd) for name, f in folding.items()}
    parts = [p for p in np.array_split(np.asarray(inputs), min(shards, len(inputs))) if len(p)]
    client, cluster, engine = dask_client(scheduler, workers)
    try:
        futures = [client.submit(_shard_task, data, fold, family, reg_every, part, simulator, i,
                                 pure=False) for i, part in enumerate(parts)]
        done = {}
        for fut in as_completed(futures):
            r = fut.result()
            done[r["index"]] = r
            if progress:
                progress(sum(x["n"] for x in done.values()), len(inputs))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    ordered = [done[i] for i in range(len(parts))]
    return {"hardware": np.concatenate([r["hardware"] for r in ordered]),
            "golden": np.concatenate([r["golden"] for r in ordered]),
            "mismatches": sum(r["mismatches"] for r in ordered),
            "shards": [{"n": r["n"], "cycles": r["cycles"],
                        "cycles_per_input": (float(np.diff(r["t_out"]).mean())
                                             if len(r["t_out"]) > 1 else None)}
                       for r in ordered],
            "engine": engine}

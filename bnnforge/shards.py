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

__all__ = ["simulate_sharded", "simulate_test_set", "dask_client"]


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
    return Client(cluster), cluster, (f"dask.distributed LocalCluster ({n} workers, 1 thread "
                                      f"each), scheduler {cluster.scheduler_address}")


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
        # The run's stamps and busy counts go back; its output words and log stay (the merged
        # outputs are the decoded arrays, the log a path on the worker).
        run = {k: v for k, v in result["runs"][0].items() if k not in ("outputs", "log")}
        extra = {k: np.asarray(result[k]) for k in MERGED if k in result}
        return {"index": index, "mismatches": result["mismatches"], "run": run,
                "n": len(inputs), **extra}


MERGED = ("hardware", "golden", "predictions", "golden_predictions")
"""Per-input arrays of a kind's simulation result that the merge concatenates in order."""


def simulate_sharded(bitstream_path, folding, inputs, simulator, shards, family=None,
                     reg_every=1, scheduler=None, workers=None, progress=None):
    """Split ``inputs`` into ``shards`` contiguous shards, simulate them on Dask workers and
    merge: ``{hardware, golden, mismatches, runs, shards: [{n, cycles, cycles_per_input}],
    engine}`` with outputs in input order (and a kind's ``predictions``), ``runs`` one a
    shard (stamps and busy counts)."""
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
    runs = [r["run"] for r in ordered]
    merged = {k: np.concatenate([r[k] for r in ordered]) for k in MERGED if k in ordered[0]}
    return dict(merged, mismatches=sum(r["mismatches"] for r in ordered), runs=runs, log=None,
                shards=[{"n": r["n"], "cycles": r["run"]["cycles"],
                         "cycles_per_input": (float(np.diff(r["run"]["t_out"]).mean())
                                              if len(r["run"]["t_out"]) > 1 else None)}
                        for r in ordered],
                engine=engine)


def simulate_test_set(kind, bitstream, bitstream_path, design_dir, folding, inputs, simulator,
                      shards=None, family=None, scheduler=None, progress=None):
    """A demo's test-set run: on this machine (``shards`` None) with the design in
    ``design_dir``, or split into ``shards`` on Dask (each worker generating the same design
    from the bitstream's bytes). Both return the kind's result with ``runs`` (one a shard; cycle
    figures pool them: :func:`sim.cycles.measure_runs`, :func:`sim.cycles.pooled_interval`),
    ``shards`` and ``engine`` (None on this machine)."""
    if not shards:
        result = kind.simulate(bitstream, design_dir, inputs, simulator, progress=progress)
        return dict(result, shards=None, engine=None)
    result = simulate_sharded(bitstream_path, folding, inputs, simulator, shards, family=family,
                              scheduler=scheduler, progress=progress)
    import json
    from pathlib import Path

    result["info"] = json.loads((Path(design_dir) / "design.json").read_text())
    return result

"""``bnnforge explore BITSTREAM``: a design-space sweep on Dask.

Each point is a folding (a cycle target), a family and a clock target. A point generates its
design, checks it bit-exact on random vectors in simulation and (unless ``synth=False``)
synthesizes and places it; its row has the folding, the cycles an input measured at the
handshakes, mismatches, resources, Fmax and inputs per second at that Fmax. Points run as Dask
tasks that carry their inputs (the bitstream's bytes and the point), on a ``LocalCluster`` (one
worker per core) or an existing scheduler. Finished points are cached by a content hash of
those inputs under ``build/explore/<name>/cache``, so a rerun or an interrupted sweep resumes; a
failed point is a row with its error and does not stop the sweep.
"""

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from quant.bitstream import atomic_write
from quant.errors import BnnforgeError

__all__ = ["explore", "default_targets", "pareto_front", "folding_lanes", "DEFAULT_MAX_LANES",
           "point_label"]

CACHE_VERSION = 1
"""Bumped when a row's meaning changes, so that old cached rows are not reused."""


DEFAULT_MAX_LANES = 2048
"""The default sweep's lane budget (sum of PE x SIMD over the folding table): its first point is
the fastest power-of-two cycle target whose folding stays within it. Larger designs take tens
of minutes each to place and route with nextpnr (the digits MLP at 32 cycles, 3,664 lanes, was
still routing after 10 minutes, at 16 cycles, 7,328 lanes, still placing; at 256 cycles a point
took under a minute); ``--targets`` or ``--max-lanes`` sweeps them when wanted."""


def folding_lanes(folding):
    """Sum of PE x SIMD over a folding table."""
    return sum(f.pe * f.simd for f in folding.values())


def default_targets(kind, bitstream, points=6, max_lanes=DEFAULT_MAX_LANES):
    """Cycle targets from the network's shapes: powers of two from the fastest useful folding
    (the largest matrix's rows, one PE a row and SIMD across) up to the slowest (one lane a
    matrix), skipping those whose folding needs more than ``max_lanes`` lanes; ``points`` of
    them."""
    shapes = kind.shapes(bitstream)
    low = kind.vectors_per_input(bitstream)
    start = 1 << max(0, int(np.ceil(np.log2(max(low, 4)))))
    top = max(r * c for r, c in shapes.values()) * low
    targets = []
    t = start
    while len(targets) < points and t <= top:
        if folding_lanes(kind.fold(bitstream, target_cycles=t)) <= max_lanes:
            targets.append(t)
        t *= 2
    return targets


def _key(data, point):
    h = hashlib.sha256(data)
    h.update(json.dumps(dict(point, cache_version=CACHE_VERSION), sort_keys=True).encode())
    return h.hexdigest()[:20]


def _point_task(data, point):
    """One point on a worker: generate, simulate, synthesize; a row (never raises)."""
    import tempfile

    from quant import bitstream as bitstream_io
    from sim.cycles import pooled_interval
    from .kinds import kind_of

    row = dict(point)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="bnnforge-explore-") as tmp:
            path = Path(tmp) / "net.bnn"
            path.write_bytes(data)
            bs = bitstream_io.read(path)
            kind = kind_of(bs)
            if point.get("max_lanes"):
                folding = kind.fold(bs, max_lanes=point["max_lanes"])
            else:
                folding = kind.fold(bs, target_cycles=point["target_cycles"])
            family = None if point["family"] == "generic" else point["family"]
            design = Path(tmp) / "design"
            info = kind.generate(bs, folding, design, family=family, checksum=bs.checksum)
            inputs = kind.random_inputs(bs, point["vectors"],
                                        np.random.default_rng(point["seed"]))
            result = kind.simulate(bs, design, inputs, point["simulator"])
            cycles = pooled_interval([result["runs"][0]["t_out"]],
                                     kind.transfers_per_input(bs))
            row.update(folding=[{"layer": n, "pe": f.pe, "simd": f.simd}
                                for n, f in folding.items()],
                       lanes=folding_lanes(folding),
                       cycles_per_input=cycles,
                       cycles_per_input_model=info.get("cycles_per_frame",
                                                       info.get("cycles_per_vector")),
                       mismatches=int(result["mismatches"]))
            if point["synth"]:
                from hw.synth import fmax_of, synthesize

                r = synthesize(design, point["family"] if family else "ecp5", None,
                               point["clock_mhz"], seed=1, say=lambda text: None)
                fmax = fmax_of(r)
                row.update(part=r["part"], lut4=r["lut4"], ff=r["ff"], logic_slots=r["comb"],
                           bram=r["bram"], dsp=r["dsp"], fmax_mhz=fmax,
                           inputs_per_second=(fmax * 1e6 / cycles if fmax and cycles
                                              else None),
                           clock_source="placed")
    except Exception as e:  # a failed point is a row, not the end of the sweep
        row["error"] = f"{type(e).__name__}: {e}".splitlines()[0]
    row["seconds"] = time.monotonic() - started
    return row


def pareto_front(rows, x, y="inputs_per_second"):
    """Rows not dominated in (lower ``x``, higher ``y``)."""
    ok = [r for r in rows if r.get(x) is not None and r.get(y) is not None]
    return [r for r in ok if not any(o is not r and o[x] <= r[x] and o[y] >= r[y]
                                     and (o[x] < r[x] or o[y] > r[y]) for o in ok)]


def point_label(row):
    """A point's folding rule in words: ``"64 cycles"`` or ``"512 lanes"``."""
    if row.get("max_lanes"):
        return f"{row['max_lanes']} lanes"
    return f"{row['target_cycles']} cycles"


def explore(bitstream_path, out_dir=None, targets=None, families=("ecp5",), clocks=(200.0,),
            vectors=16, simulator="icarus", synth=True, scheduler=None, workers=None,
            seed=0, progress=None, lanes=(), max_lanes=DEFAULT_MAX_LANES):
    """The sweep; writes ``results.json`` (and ``pareto.png`` with synthesis) and returns the
    results. Foldings: the cycle ``targets`` (default :func:`default_targets` within
    ``max_lanes``) and the lane budgets ``lanes`` (the best throughput with at most that many
    lanes a matrix)."""
    from quant import bitstream as bitstream_io
    from .kinds import kind_of
    from .shards import dask_client

    bitstream_path = Path(bitstream_path)
    bs = bitstream_io.read(bitstream_path)
    kind = kind_of(bs)
    if kind.name not in ("mlp", "cnn", "groupnet"):
        raise BnnforgeError(f"bnnforge explore sweeps dense (mlp), CNN and Group-Net "
                            f"bitstreams, not {kind.name}")
    data = bitstream_path.read_bytes()
    out_dir = Path(out_dir or Path("build") / "explore" / bitstream_path.stem)
    cache = out_dir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    targets = list(targets or ([] if lanes else default_targets(kind, bs, max_lanes=max_lanes)))
    rules = [{"target_cycles": t} for t in targets] + [{"max_lanes": n} for n in lanes]
    points = [dict(rule, family=f, clock_mhz=c, vectors=vectors, simulator=simulator,
                   seed=seed, synth=synth)
              for rule in rules for f in families for c in clocks]
    rows, todo = {}, []
    for i, p in enumerate(points):
        f = cache / f"{_key(data, p)}.json"
        if f.exists():
            rows[i] = dict(json.loads(f.read_text()), cached=True)
        else:
            todo.append(i)
    started = time.monotonic()
    client, cluster, engine = (None, None, "none: every point cached") if not todo else \
        dask_client(scheduler, workers)
    n_workers = len(client.scheduler_info()["workers"]) if client else 0
    try:
        if todo:
            from dask.distributed import as_completed

            futures = {client.submit(_point_task, data, points[i], pure=False): i for i in todo}
            running = len(futures)
            for fut in as_completed(futures):
                i = futures[fut]
                row = fut.result()
                running -= 1
                rows[i] = dict(row, cached=False)
                if "error" not in row:
                    atomic_write(cache / f"{_key(data, points[i])}.json",
                                 lambda tmp: Path(tmp).write_text(json.dumps(row, indent=2)))
                if progress:
                    progress(len(rows), len(points), running)
    finally:
        if client:
            client.close()
        if cluster is not None:
            cluster.close()
    ordered = [rows[i] for i in range(len(points))]
    results = {"bitstream": str(bitstream_path), "network": kind.name, "engine": engine,
               "workers": n_workers, "points": ordered,
               "wall_seconds": time.monotonic() - started,
               "pareto_logic": [point_label(r) for r in pareto_front(ordered, "logic_slots")],
               "pareto_bram": [point_label(r) for r in pareto_front(ordered, "bram")]}
    atomic_write(out_dir / "results.json",
                 lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2) + "\n"))
    if synth:
        atomic_write(out_dir / "pareto.png", lambda tmp: _plot(ordered, tmp, kind.target_unit))
    return results


def _plot(rows, path, unit):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, x, label in ((axes[0], "logic_slots", "logic slots (LUT4 + carry, placed)"),
                         (axes[1], "bram", "block RAMs")):
        ok = [r for r in rows if r.get(x) is not None and r.get("inputs_per_second")]
        ax.scatter([r[x] for r in ok], [r["inputs_per_second"] for r in ok], color="tab:blue")
        for r in ok:
            ax.annotate(point_label(r), (r[x], r["inputs_per_second"]), fontsize=7)
        front = sorted(pareto_front(rows, x), key=lambda r: r[x])
        ax.plot([r[x] for r in front], [r["inputs_per_second"] for r in front],
                color="tab:orange", label="Pareto front")
        ax.set_xlabel(label)
        ax.set_ylabel(f"{unit}s per second at the placed Fmax")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.suptitle("bnnforge explore: throughput vs resources (labels: the folding's rule)")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)

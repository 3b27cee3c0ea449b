"""Cycle measurements from a simulation run, beside the analytical model.

Model (FINN's MVAU estimate): a layer takes ``(rows / PE) * (cols / SIMD)`` cycles a vector; a
pipeline of layers delivers one vector every ``max`` of those (its slowest layer).

Measured, from the cycle stamps of one run without stalls:

* ``latency``: cycles from the first input transfer to the first output transfer;
* ``interval``: steady-state cycles per vector at the output,
  ``(t_last - t_first) / (vectors - 1)``;
* per block, ``cycles_simulated``: the cycles in which the block did work (``layer_busy``)
  divided by the vectors, and ``interval``, the spacing of its output transfers
  (``layer_fire``), which in a pipeline is set by the slowest block.
"""

__all__ = ["interval", "measure", "measure_runs", "pooled_interval"]


def interval(stamps):
    """Mean spacing of a list of cycle stamps; None with fewer than two."""
    if len(stamps) < 2:
        return None
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def pooled_interval(stamp_lists, stride=1):
    """Mean spacing over several runs of the same design (the shards of a test set): each
    list's stamps ``stride - 1, 2 stride - 1, ...`` (the last transfer of each input when an
    input is ``stride`` transfers); the spans summed over the sums of intervals. None without
    two stamps in any list. One list: :func:`interval` of those stamps."""
    span = count = 0
    for stamps in stamp_lists:
        s = list(stamps)[stride - 1::stride]
        if len(s) >= 2:
            span += s[-1] - s[0]
            count += len(s) - 1
    return span / count if count else None


def measure_runs(runs, info):
    """:func:`measure` pooled over several runs of one design on disjoint inputs (shards):
    latency of the first run, intervals pooled (:func:`pooled_interval`), busy cycles and
    total cycles summed. For one run it equals :func:`measure`."""
    if len(runs) == 1:
        return measure(runs[0], info)
    first = measure(runs[0], info)
    n = sum(max(1, len(r["t_in"])) for r in runs)
    blocks = [{"name": b["name"],
               "cycles_simulated": sum(r["busy"][i] for r in runs) / n,
               "interval": pooled_interval([r["fires"][i] for r in runs]),
               "cycles_model": b["cycles_model"]} for i, b in enumerate(info["blocks"])]
    return dict(first, interval=pooled_interval([r["t_out"] for r in runs]),
                total_cycles=sum(r["cycles"] for r in runs), blocks=blocks)


def measure(run, info):
    """``{latency, interval, total_cycles, blocks: [{name, interval, model}]}`` of a run."""
    n = max(1, len(run["t_in"]))
    blocks = [{"name": b["name"], "cycles_simulated": busy / n, "interval": interval(f),
               "cycles_model": b["cycles_model"]}
              for b, f, busy in zip(info["blocks"], run["fires"], run["busy"])]
    return {"latency": run["t_out"][0] - run["t_in"][0] if run["t_out"] else None,
            "interval": interval(run["t_out"]), "total_cycles": run["cycles"],
            "model_interval": info["cycles_per_vector"], "model_latency": info["latency"],
            "blocks": blocks}

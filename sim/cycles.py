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

__all__ = ["interval", "measure"]


def interval(stamps):
    """Mean spacing of a list of cycle stamps; None with fewer than two."""
    if len(stamps) < 2:
        return None
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


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

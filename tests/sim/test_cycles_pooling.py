"""Cycle figures pooled over the runs of a sharded simulation, against values by hand."""

from sim.cycles import measure, measure_runs, pooled_interval


def test_pooled_interval_by_hand():
    # run 1: outputs at 10, 14, 18 (two intervals, span 8); run 2: 5, 11 (one, span 6)
    assert pooled_interval([[10, 14, 18], [5, 11]]) == (8 + 6) / 3
    assert pooled_interval([[10, 14, 18]]) == 4
    assert pooled_interval([[3], []]) is None
    # inputs of two transfers: the last transfer of each input counts (11, 21, 31 | 2, 8)
    assert pooled_interval([[10, 11, 20, 21, 30, 31], [1, 2, 7, 8]], stride=2) == (20 + 6) / 3


def _run(t_in, t_out, busy, fires, cycles):
    return {"t_in": t_in, "t_out": t_out, "busy": busy, "fires": fires, "cycles": cycles}


def test_measure_runs_pools_shards():
    info = {"blocks": [{"name": "a", "cycles_model": 4}], "cycles_per_vector": 4,
            "latency": 7}
    r1 = _run([0, 4, 8], [7, 11, 15], [12], [[6, 10, 14]], 20)
    r2 = _run([0, 4], [8, 14], [8], [[7, 12]], 16)
    m = measure_runs([r1, r2], info)
    assert m["latency"] == 7                       # the first run's
    assert m["interval"] == (8 + 6) / 3
    assert m["total_cycles"] == 36
    assert m["blocks"][0]["cycles_simulated"] == (12 + 8) / 5
    assert m["blocks"][0]["interval"] == (8 + 5) / 3
    assert measure_runs([r1], info) == measure(r1, info)

"""Folding of dense layers: validated per-layer PE/SIMD, from a file or chosen from a target.

A folding file is JSON: ``{"layers": [{"name": "fc0", "pe": 16, "simd": 64}, ...]}``, one entry
for every layer of the network, in any order.

Choosing from a target never falls back silently: with ``target_cycles`` every layer gets the
folding with the fewest lanes (``PE * SIMD``) whose cycles per vector are at most the target;
with ``max_lanes`` the network's throughput is set by its slowest layer, so the bottleneck's
best cycles under the lane budget become the target of every layer (no lanes are spent on a
layer that would only wait). Ties go to the larger SIMD (fewer trees and memories).
"""

import json
from pathlib import Path

from quant.errors import FoldingError
from quant.layout import Folding, FoldedLayout

__all__ = ["divisors", "choose_for_target", "choose_for_lanes", "load_folding", "save_folding",
           "folding_table"]


def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _check_target(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FoldingError(f"{name} must be a positive integer, not {value!r}")


def _candidates(rows, cols):
    for pe in divisors(rows):
        for simd in divisors(cols):
            yield (rows // pe) * (cols // simd), pe * simd, pe, simd


def choose_for_target(shapes, target_cycles):
    """``{name: Folding}`` for ``shapes`` (``{name: (rows, cols)}``): for each layer the fewest
    lanes with at most ``target_cycles`` cycles per vector."""
    _check_target("target cycles", target_cycles)
    out = {}
    for name, (rows, cols) in shapes.items():
        ok = [(lanes, -simd, cyc, pe, simd) for cyc, lanes, pe, simd in _candidates(rows, cols)
              if cyc <= target_cycles]
        lanes, _, cyc, pe, simd = min(ok)  # PE = rows, SIMD = cols always meets a target >= 1
        out[name] = Folding(pe, simd)
    return out


def choose_for_lanes(shapes, max_lanes):
    """``{name: Folding}``: the best throughput with at most ``max_lanes`` lanes a layer."""
    _check_target("max lanes", max_lanes)
    bottleneck = max(min(cyc for cyc, lanes, _, _ in _candidates(rows, cols) if lanes <= max_lanes)
                     for rows, cols in shapes.values())
    return choose_for_target(shapes, bottleneck)


def check_folding(shapes, folding):
    """Validate ``{name: Folding}`` against ``{name: (rows, cols)}``: every layer present, no
    extra names, PE and SIMD dividing the layer's shape."""
    missing = [n for n in shapes if n not in folding]
    extra = [n for n in folding if n not in shapes]
    if missing:
        raise FoldingError(f"the folding has no entry for layer(s) {', '.join(missing)}")
    if extra:
        raise FoldingError(f"the folding names layer(s) {', '.join(extra)} that the network "
                           f"does not have (layers: {', '.join(shapes)})")
    for name, (rows, cols) in shapes.items():
        FoldedLayout(rows, cols, folding[name], name)
    return folding


def load_folding(path, shapes):
    """Read and validate a folding file for the layers ``shapes``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        entries = data["layers"]
        folding = {e["name"]: Folding(e["pe"], e["simd"]) for e in entries}
    except FileNotFoundError:
        raise FoldingError(f"{path}: no such folding file")
    except (ValueError, KeyError, TypeError) as e:
        if isinstance(e, FoldingError):
            raise FoldingError(f"{path}: {e}")
        raise FoldingError(f"{path}: not a folding file ({type(e).__name__}: {e}); expected "
                           '{"layers": [{"name": ..., "pe": ..., "simd": ...}, ...]}')
    return check_folding(shapes, folding)


def folding_table(shapes, folding):
    """Rows ``{name, rows, cols, pe, simd, lanes, cycles}`` describing a folding."""
    rows_out = []
    for name, (rows, cols) in shapes.items():
        f = folding[name]
        rows_out.append({"name": name, "rows": rows, "cols": cols, "pe": f.pe, "simd": f.simd,
                         "lanes": f.pe * f.simd,
                         "cycles": FoldedLayout(rows, cols, f, name).cycles_per_vector})
    return rows_out


def save_folding(path, shapes, folding):
    Path(path).write_text(json.dumps(
        {"layers": [{k: r[k] for k in ("name", "pe", "simd")}
                    for r in folding_table(shapes, folding)]}, indent=2) + "\n")

"""The flows behind the command line that every network kind shares: folding, generation and
simulation through the kind's steps (:mod:`bnnforge.kinds`), tables and verdicts."""

__all__ = ["resolve_folding", "generate", "format_table", "print_folding", "verdict",
           "mismatched", "family", "TOP_NAME"]

TOP_NAME = "bnn_top"


def resolve_folding(bitstream, folding_file=None, target_cycles=None, max_lanes=None):
    """The network's folding from exactly one of a file, a cycle target (per vector for an
    MLP, per image for a Group-Net) or a lane budget."""
    from .kinds import kind_of

    return kind_of(bitstream).fold(bitstream, folding_file, target_cycles, max_lanes)


def generate(bitstream, folding, out_dir, reg_every=1, checksum=None, family=None):
    """Generate the design of a bitstream with its kind's generator; ``family`` is the target
    FPGA family (None: generic)."""
    from .kinds import kind_of

    return kind_of(bitstream).generate(bitstream, folding, out_dir, reg_every, family=family,
                                       checksum=checksum)


def print_budget(info):
    """The design's on-chip memory against its family's default device."""
    from hw.memory_budget import budget_lines

    b = info.get("memory_budget")
    if b:
        print("\n".join(budget_lines(b)))


def family(args):
    """The ``--family`` option as a family name, None for generic."""
    return None if args.family == "generic" else args.family


def mismatched(result, expected, group):
    """Items (``group(index)`` of each output) that differ from ``expected`` or are missing
    in any stall mode of a runner's result."""
    bad = set()
    for run in result["runs"]:
        got = [int(v, 16) for v in run["outputs"]]
        bad.update(group(i) for i, (g, e) in enumerate(zip(got, expected)) if g != e)
        bad.update(group(i) for i in range(len(got), len(expected)))
    return bad


def format_table(rows, columns):
    """A plain-text table of ``rows`` (dicts) with ``columns`` (key, header, format)."""
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        cells.append([("-" if r.get(k) is None else fmt.format(r[k])) for k, _, fmt in columns])
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_folding(info):
    print(format_table(info["folding"], [("name", "layer", "{}"), ("rows", "rows", "{}"),
                                         ("cols", "cols", "{}"), ("pe", "PE", "{}"),
                                         ("simd", "SIMD", "{}"), ("lanes", "lanes", "{}"),
                                         ("cycles", "cycles/vector", "{}")]))


def verdict(result, what, stall):
    """Print the waveform's place and PASS/FAIL; the exit status."""
    if "waves" in result:
        print(f"waveform: {result['waves']}")
    ok = result["passed"] and result["mismatches"] == 0
    print(f"{'PASS' if ok else 'FAIL'}: {what} x {len(stall)} stall modes, "
          f"{result['mismatches']} mismatches with the golden model "
          f"(simulator log: {result['log']})")
    return 0 if ok else 1

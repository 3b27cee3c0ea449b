"""``bnnforge run``: a user's inputs through a bitstream's golden model or simulated hardware."""

from pathlib import Path

import numpy as np

from quant.errors import BnnforgeError

__all__ = ["run_bitstream", "load_inputs", "save_outputs"]

DEFAULT_MAX_LANES = 256
"""Folding of ``bnnforge run --simulator`` when none is given (printed)."""


def load_inputs(path):
    """A ``.npy`` array, or a clear error (no pickles are loaded)."""
    path = Path(path)
    if not path.is_file():
        raise BnnforgeError(f"{path}: no such file")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise BnnforgeError(f"{path}: not a NumPy .npy array ({e})")


def save_outputs(path, array):
    """Write ``array`` as ``.npy`` atomically (no partial file on failure)."""
    from quant.bitstream import atomic_write

    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)

    atomic_write(path, write)


def run_bitstream(args):
    from quant.bitstream import read
    from .kinds import kind_of
    from .progress import step

    bs = read(args.bitstream)
    kind = kind_of(bs)
    if kind.name not in ("mlp", "cnn"):
        raise BnnforgeError(f"bnnforge run takes dense (mlp) and CNN bitstreams, not a "
                            f"{kind.name} one")
    x = load_inputs(args.inputs)
    host = None
    if "host" in bs.meta:
        from quant.host_io import HostIO

        host = HostIO(bs)
        codes = host.encode(x)
    elif kind.name == "cnn":
        from .kinds.cnn import check_images

        codes = check_images(bs, x)
    else:
        codes = np.asarray(x)
        feats = bs.input["features"]
        if codes.ndim != 2 or codes.shape[1] != feats or not np.isin(codes, (0, 1)).all():
            raise BnnforgeError(f"the network takes N x {feats} bits (0 or 1), not an array "
                                f"of shape {codes.shape}" + ("" if codes.ndim != 2 or
                                                             codes.shape[1] != feats else
                                                             " with values other than 0 and 1"))
        codes = codes.astype(np.uint8)
    golden = np.asarray(kind.load(bs)(codes))
    scores = golden
    if args.simulator:
        given = [args.folding, args.target_cycles, args.max_lanes]
        if not any(v is not None for v in given):
            args.max_lanes = DEFAULT_MAX_LANES
            print(f"folding: --max-lanes {DEFAULT_MAX_LANES} (default; give --folding, "
                  f"--target-cycles or --max-lanes to choose)")
        from .flows import family

        folding = kind.fold(bs, args.folding, args.target_cycles, args.max_lanes)
        out = args.design or Path("build") / "run" / Path(args.bitstream).stem
        step(f"generating {out}")
        kind.generate(bs, folding, out, args.reg_every, family=family(args),
                      checksum=bs.checksum, **kind._port_options(args))
        step(f"simulating {len(codes)} inputs on {args.simulator}")
        result = kind.simulate(bs, out, codes, args.simulator)
        if result["mismatches"]:
            print(f"FAIL: the simulated hardware differs from the golden model on "
                  f"{result['mismatches']} of {len(codes)} inputs; nothing written")
            return 1
        scores = np.asarray(result["hardware"])
        print(f"hardware equals the golden model on all {len(codes)} inputs")
    outputs = host.decode(scores) if host is not None else scores
    save_outputs(args.output, outputs)
    print(f"wrote {args.output} ({' x '.join(map(str, outputs.shape))} {outputs.dtype}, "
          f"from the {'simulated hardware on ' + args.simulator if args.simulator else 'golden model'})")
    return 0

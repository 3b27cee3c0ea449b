"""The binary CNN section of the weight bitstream (see ``docs/bitstream.md``).

A CNN spec is plain data beside the bitstream's dense layers (which hold every matrix):

- ``input``: ``{height, width, channels, bits}``: the map the hardware takes, pixels in raster
  order, channel ``c`` of a pixel at bits ``[c B, (c + 1) B)`` (``B = bits``; ``B = 1``: one bit
  a channel, 1 meaning +1).
- ``ops``: in order, each one of

  - ``{"op": "conv", "layer": NAME, "kernel": k, "stride": s, "padding": p, "pad_value": v}``:
    a ``k x k`` convolution whose matrix is the dense layer ``NAME`` (``rows`` output channels,
    ``cols = k k C`` in window order ``(i k + j) C + c``); padded positions hold ``v`` (a bit,
    or for a multi-bit input an integer in ``[0, 2^B - 1]``, the same in every channel);
  - ``{"op": "pool", "kernel": k}``: max-pooling of binary activations over ``k x k`` blocks,
    stride ``k``, rows and columns beyond the last whole block dropped (floor); on bits, the
    maximum is the OR;
  - ``{"op": "dense", "layer": NAME}``: a fully connected layer over the whole map flattened in
    ``(h, w, c)`` order.

  Only the first matrix may take multi-bit inputs; the last op is a dense layer with scores.
"""

from .errors import BitstreamError

__all__ = ["OPS", "validate_cnn", "cnn_section", "cnn_from_section", "cnn_shapes"]

OPS = ("conv", "pool", "dense")


def _int(spec, key, what, low=1):
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise BitstreamError(f"{what}: {key} must be an integer >= {low}, not {value!r}")
    return value


def cnn_shapes(spec, layers):
    """Check ``spec`` against the dense ``layers`` and return one row an op: ``{op, name,
    in: (H, W, C, B), out: (H, W, C, B), layer}`` (``layer`` the :class:`DenseLayer` or None).

    Raises :class:`BitstreamError` naming the first op that does not fit."""
    inp = spec["input"]
    h, w, c = (_int(inp, k, "the input") for k in ("height", "width", "channels"))
    b = _int(inp, "bits", "the input")
    if b > 16:
        raise BitstreamError(f"the input has {b}-bit channels; at most 16 are supported")
    by_name = {layer.name: layer for layer in layers}
    used, rows = [], []
    ops = spec["ops"]
    if not ops:
        raise BitstreamError("the CNN has no ops")
    for i, op in enumerate(ops):
        kind = op.get("op")
        where = f"op {i} ({kind})"
        if kind not in OPS:
            raise BitstreamError(f"op {i} has unknown kind {kind!r}; choose one of "
                                 f"{', '.join(OPS)}")
        layer = None
        if kind in ("conv", "dense"):
            name = op.get("layer")
            if name not in by_name:
                raise BitstreamError(f"{where} names layer {name!r}, which the bitstream lacks")
            layer = by_name[name]
            used.append(name)
            where = f"layer {name} ({kind})"
            if layer.input_bits != b:
                raise BitstreamError(f"{where} takes {layer.input_bits}-bit inputs but its "
                                     f"input has {b} bits a channel")
            if layer.output == "scores" and i != len(ops) - 1:
                raise BitstreamError(f"{where} outputs scores but is not the last op")
        if kind == "conv":
            k = _int(op, "kernel", where)
            s = _int(op, "stride", where)
            p = _int(op, "padding", where, low=0)
            v = op.get("pad_value")
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << b:
                raise BitstreamError(f"{where}: pad_value must be an integer in "
                                     f"[0, {(1 << b) - 1}], not {v!r}")
            if p > k - 1:
                raise BitstreamError(f"{where}: padding {p} exceeds the kernel's reach {k - 1}")
            if k > min(h, w) + 2 * p:
                raise BitstreamError(f"{where}: kernel {k} exceeds the padded "
                                     f"{h + 2 * p}x{w + 2 * p} map")
            if layer.cols != k * k * c:
                raise BitstreamError(f"{where}: its matrix has {layer.cols} columns but a "
                                     f"{k}x{k} window of {c} channels has {k * k * c}")
            out = ((h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1, layer.rows)
        elif kind == "pool":
            k = _int(op, "kernel", where)
            if b != 1:
                raise BitstreamError(f"{where}: pooling takes binary activations, not "
                                     f"{b}-bit inputs")
            if k > min(h, w):
                raise BitstreamError(f"{where}: a {k}x{k} pool does not fit the {h}x{w} map")
            out = (h // k, w // k, c)
        else:
            if h != w:
                raise BitstreamError(f"{where}: a fully connected layer after a map needs a "
                                     f"square map, not {h}x{w}")
            if layer.cols != h * w * c:
                raise BitstreamError(f"{where}: takes {layer.cols} inputs but the map before "
                                     f"it has {h}x{w}x{c} = {h * w * c}")
            out = (1, 1, layer.rows)
        rows.append({"op": kind, "name": layer.name if layer else f"pool{i}",
                     "in": (h, w, c, b), "out": out + (1,), "layer": layer, "spec": op})
        h, w, c = out
        b = 1
    if ops[-1]["op"] != "dense" or rows[-1]["layer"].output != "scores":
        raise BitstreamError("the last op of a CNN must be a dense layer with scores")
    extra = sorted(set(by_name) - set(used))
    if extra or len(used) != len(set(used)):
        raise BitstreamError(f"every dense layer must be used by exactly one op "
                             f"(unused: {', '.join(extra) or 'none'})")
    if used != [layer.name for layer in layers]:
        raise BitstreamError("the dense layers must be in the order of the ops that use them")
    return rows


def validate_cnn(spec, layers):
    """Check a CNN spec against its layers; raises :class:`BitstreamError`."""
    cnn_shapes(spec, layers)


def cnn_section(spec):
    """The manifest's ``network`` entry of a CNN (no tensors of its own)."""
    return {"kind": "cnn", "input": dict(spec["input"]),
            "ops": [dict(op) for op in spec["ops"]]}, {}


def cnn_from_section(section, tensors, path):
    return {"input": dict(section["input"]), "ops": [dict(op) for op in section["ops"]]}

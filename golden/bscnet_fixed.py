"""BSC-Net between its real first layer and its head in fixed point: a *program* of operations
over named buffers of integer codes, and its interpreter (the golden model the hardware must
match bit for bit).

Format (:class:`SparseFixedPoint`): activations are signed ``width``-bit codes with ``frac``
fractional bits; a layer's batch-norm scales and the real 1x1 weights (batch-norm folded in)
are signed ``mant_width``-bit mantissas with one exponent a layer (``e``, the largest in
``[0, max_exp]`` that keeps the layer's largest magnitude in range); biases are codes.
Rounding is half up (``floor(v + 1/2)``, :func:`quant.fixed.round_shift`), every result is
saturated to ``width`` bits, and a binary layer's input bit is ``code >= 0``.

Why 16 fractional bits and 18-bit mantissas (one ECP5 multiplier): binary layers amplify a
flipped input bit, so small rounding differences grow through the network. On the BSC-Net
demo's frog frame (voxel size 9, 5,130 sites) the predictions of this format equal the float
network's on every site, where 12 fractional bits (20-bit codes) or 8 (16-bit codes) change about
16 % of them. On random networks with random batch-norm statistics the mantissas'
rounding (a relative 2^-18 of a scale) still changed 19 % of one network's predictions out of
three: the float network is not the reference, this program is, and the accuracy the demo
reports for each says what the format costs.

Operations (dicts; buffers are ``N_level x C`` int64 arrays, ``"x"`` the first layer's codes and
``"out"`` the head's input):

``binary`` ``{name, kind, level, src, dst, weights, shifts}``
    The binary convolution's integer sums of the bits ``src >= 0`` (kind ``ssc``, ``down``,
    ``up``, ``pointwise``; ``shifts``: SFSC's per-group window shifts, ``None`` for plain).
``bn_add`` ``{name, level, sums, m, e, b, res, sums2, m2, e2, b2, dst}``
    ``sat(rs(m S, e - frac) + b + R)``: ``R`` the codes ``res``, or a second batch-normed sum
    ``rs(m2 S2, e2 - frac) + b2`` (the 1-bit projection), or nothing (``rs`` by a negative
    amount: a left shift).
``pool`` ``{level, src, dst}``
    Mean of the present children (level to level + 1): ``rs(sum * r[n], pool_frac)`` with
    ``r[n] = round(2^pool_frac / n)``.
``unpool`` ``{level, src, dst}``
    Every site of ``level`` takes its parent's codes (level + 1).
``linear`` ``{name, level, src, m, e, b, dst}``
    The real 1x1 convolution and its batch-norm: ``sat(rs(M z, e) + b)``.
``concat`` ``{srcs, dst}``
    Channels side by side.
"""

from dataclasses import asdict, dataclass

import numpy as np
import torch

from quant.errors import BnnforgeError
from quant.fixed import round_shift, saturate, to_fixed
from .sparse import binary_ssc_dot

__all__ = ["SparseFixedPoint", "fixed_program", "run_program", "FixedBscNet", "mantissas",
           "scale_shift", "apply_op", "binary_sums", "mean_over_rows"]


@dataclass(frozen=True)
class SparseFixedPoint:
    width: int = 24
    frac: int = 16
    mant_width: int = 18
    max_exp: int = 24
    pool_frac: int = 15
    rounding: str = "half-up: floor(v + 1/2) after each shift"
    overflow: str = "saturate to width bits"

    def to_dict(self):
        return asdict(self)

    def reciprocals(self):
        """``r[n] = round(2^pool_frac / n)`` for n = 0..8 (``r[0]`` unused, 0)."""
        return np.array([0] + [int(np.floor((1 << self.pool_frac) / n + 0.5))
                               for n in range(1, 9)], dtype=np.int64)


def mantissas(values, fmt, what):
    """``(m, e)``: ``values`` as signed ``mant_width``-bit mantissas with the largest exponent
    ``e`` in ``[0, max_exp]`` that keeps them in range."""
    v = np.asarray(values, dtype=np.float64)
    hi = (1 << (fmt.mant_width - 1)) - 1
    peak = float(np.abs(v).max(initial=0.0))
    e = fmt.max_exp
    while e > 0 and peak * (1 << e) + 0.5 > hi:
        e -= 1
    m = to_fixed(v, e)
    if np.abs(m).max(initial=0) > hi:
        raise BnnforgeError(f"{what}: a value of magnitude {peak:.4g} does not fit a "
                            f"{fmt.mant_width}-bit signed integer; the fixed-point format "
                            f"needs wider mantissas")
    return m, e


def scale_shift(m, v, e, frac):
    """``rs(m v, e - frac)``: a product with ``e + frac`` fractional bits back to ``frac``
    (a left shift when ``e < frac``)."""
    p = np.asarray(m, dtype=np.int64) * np.asarray(v, dtype=np.int64)
    return round_shift(p, e - frac) if e >= frac else p << (frac - e)


def _bn_affine(bn):
    """``(a, c)`` with ``bn(s) = a s + c`` (eval mode)."""
    std = torch.sqrt(bn.running_var.double() + bn.eps)
    a = bn.weight.detach().double() / std
    c = bn.bias.detach().double() - a * bn.running_mean.double()
    return a.numpy(), c.numpy()


def _bn_terms(bn, fmt, what):
    a, c = _bn_affine(bn)
    m, e = mantissas(a, fmt, what)
    return m, e, to_fixed(c, fmt.frac)


def _binary_op(conv, level, src, dst):
    shifts = conv.shifts().tolist() if hasattr(conv, "shifts") else None
    return {"op": "binary", "name": conv.path, "kind": conv.kind, "level": level, "src": src,
            "dst": dst, "weights": conv.weight_bits().astype(np.uint8), "shifts": shifts,
            "cin": conv.cin, "cout": conv.cout}


class _Builder:
    def __init__(self, fmt):
        self.fmt, self.ops, self.n = fmt, [], 0

    def buf(self, stem):
        self.n += 1
        return f"{stem}{self.n}"

    def ssc_layer(self, layer, level, src, name):
        fmt = self.fmt
        sums = self.buf("s")
        self.ops.append(_binary_op(layer.conv, level, src, sums))
        m, e, b = _bn_terms(layer.bn, fmt, f"{name}.bn")
        op = {"op": "bn_add", "name": name, "level": level, "sums": sums, "m": m, "e": e,
              "b": b, "res": None, "sums2": None}
        if layer.proj is None:
            op["res"] = src
        else:
            sums2 = self.buf("s")
            self.ops.append(_binary_op(layer.proj, level, src, sums2))
            m2, e2, b2 = _bn_terms(layer.proj_bn, fmt, f"{name}.proj_bn")
            op.update(sums2=sums2, m2=m2, e2=e2, b2=b2)
        op["dst"] = self.buf("x")
        self.ops.append(op)
        return op["dst"]

    def block(self, block, level, src, name):
        return self.ssc_layer(block.b, level, self.ssc_layer(block.a, level, src, name + ".a"),
                              name + ".b")

    def resample(self, layer, level, src, name, down):
        fmt = self.fmt
        sums = self.buf("s")
        self.ops.append(_binary_op(layer.conv, level, src, sums))
        skip = self.buf("p")
        self.ops.append({"op": "pool" if down else "unpool", "level": level, "src": src,
                         "dst": skip})
        m, e, b = _bn_terms(layer.bn, fmt, f"{name}.bn")
        z = self.buf("z")
        self.ops.append({"op": "bn_add", "name": name, "level": level + 1 if down else level,
                         "sums": sums, "m": m, "e": e, "b": b, "res": skip, "sums2": None,
                         "dst": z})
        a, c = _bn_affine(layer.bn_out)
        w = layer.lin.weight.detach().double().numpy() * a[:, None]
        mw, ew = mantissas(w, fmt, f"{name}.lin")
        out = self.buf("x")
        self.ops.append({"op": "linear", "name": name + ".lin",
                         "level": level + 1 if down else level, "src": z, "m": mw, "e": ew,
                         "b": to_fixed(c, fmt.frac), "dst": out})
        return out


def fixed_program(net, fmt=None):
    """The program of a :class:`golden.bscnet.BSCNet` (eval mode) between its first layer and
    its head, in the format ``fmt`` (default :class:`SparseFixedPoint`)."""
    fmt = fmt or SparseFixedPoint()
    if net.training:
        raise BnnforgeError("the fixed-point program uses the batch-norm statistics; call "
                            "net.eval() first")
    b = _Builder(fmt)
    L = net.cfg["levels"]
    x, skips = "x", []
    for level in range(L):
        for r, block in enumerate(net.enc[level]):
            x = b.block(block, level, x, f"enc.{level}.{r}")
        skips.append(x)
        if level < L - 1:
            x = b.resample(net.down[level], level, x, f"down.{level}", down=True)
    if net.dec is not None:
        for level in reversed(range(L - 1)):
            y = b.resample(net.up[level], level, x, f"up.{level}", down=False)
            x = b.buf("c")
            b.ops.append({"op": "concat", "srcs": [skips[level], y], "dst": x})
            for r, block in enumerate(net.dec[level]):
                x = b.block(block, level, x, f"dec.{level}.{r}")
    else:
        x = skips[-1]
        for level in reversed(range(L - 1)):
            y = b.resample(net.up[level], level, x, f"up.{level}", down=False)
            c = b.buf("c")
            b.ops.append({"op": "concat", "srcs": [skips[level], y], "dst": c})
            x = c
    b.ops.append({"op": "concat", "srcs": [x], "dst": "out"})
    return {"format": fmt, "levels": L, "ops": b.ops}


def binary_sums(op, frame, bits):
    """The integer sums of a ``binary`` op on the input bits (SFSC: each group of output
    channels over its shifted window)."""
    kind, level = op["kind"], op["level"]
    w = op["weights"]
    n_out = frame.out_size(kind, level)
    if op["shifts"] is None:
        return binary_ssc_dot(bits, w, frame.rows(kind, level), n_out)
    groups = len(op["shifts"])
    gs = w.shape[1] // groups
    return np.concatenate([binary_ssc_dot(bits, w[:, g * gs:(g + 1) * gs],
                                          frame.rows("ssc", level, s), n_out)
                           for g, s in enumerate(op["shifts"])], axis=1)


def mean_over_rows(codes, rows, n_out, fmt):
    """Each output's ``sat(rs(sum * r[n], pool_frac))`` over the kernel-map rows ``(out, in,
    slot)`` reaching it (``n`` of them; none: 0)."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    total = np.zeros((n_out, codes.shape[1]), dtype=np.int64)
    np.add.at(total, rows[:, 0], codes[rows[:, 1]])
    count = np.bincount(rows[:, 0], minlength=n_out)
    return saturate(round_shift(total * fmt.reciprocals()[count][:, None], fmt.pool_frac),
                    fmt.width)


def apply_op(op, buffers, frame, fmt):
    """One op's output from the buffers (golden)."""
    kind = op["op"]
    if kind == "binary":
        return binary_sums(op, frame, (buffers[op["src"]] >= 0).astype(np.uint8))
    if kind == "bn_add":
        v = scale_shift(op["m"], buffers[op["sums"]], op["e"], fmt.frac) + op["b"]
        if op["res"] is not None:
            v = v + buffers[op["res"]]
        if op["sums2"] is not None:
            v = v + scale_shift(op["m2"], buffers[op["sums2"]], op["e2"], fmt.frac) + op["b2"]
        return saturate(v, fmt.width)
    if kind == "pool":
        level = op["level"]
        return mean_over_rows(buffers[op["src"]], frame.rows("down", level),
                              frame.size(level + 1), fmt)
    if kind == "unpool":
        rows = np.asarray(frame.rows("up", op["level"]), dtype=np.int64)
        return buffers[op["src"]][rows[:, 1]]
    if kind == "linear":
        acc = buffers[op["src"]] @ op["m"].T
        return saturate(round_shift(acc, op["e"]) + op["b"], fmt.width)
    if kind == "concat":
        return np.concatenate([buffers[s] for s in op["srcs"]], axis=1)
    raise BnnforgeError(f"unknown fixed-point op {kind!r}")


def run_program(program, frame, codes, hook=None, trace=None):
    """Run ``program`` on one frame from the first layer's codes; returns the head's input
    codes. ``hook(op, buffers)`` may return an op's output (the hardware's) in place of the
    golden one, after comparing them; ``trace`` (a list) receives ``(op, output)``."""
    fmt = program["format"]
    buffers = {"x": np.asarray(codes, dtype=np.int64)}
    for op in program["ops"]:
        out = None if hook is None else hook(op, buffers)
        if out is None:
            out = apply_op(op, buffers, frame, fmt)
        buffers[op["dst"]] = out
        if trace is not None:
            trace.append((op, out))
    return buffers["out"]


class FixedBscNet:
    """A BSC-Net in the golden fixed point: the first layer (real) and the head on the host in
    float, the rest as :func:`fixed_program`. ``__call__(feats, frame)`` returns the logits."""

    def __init__(self, net, fmt=None):
        self.net = net.eval()
        self.program = fixed_program(self.net, fmt)
        self.fmt = self.program["format"]

    def first_codes(self, feats, frame):
        from .bscnet import scatter_conv

        with torch.no_grad():
            x = scatter_conv(feats, self.net.stem, frame.groups("ssc", 0), frame.size(0))
        return saturate(to_fixed(x.double().numpy(), self.fmt.frac), self.fmt.width)

    def head(self, codes):
        with torch.no_grad():
            x = torch.as_tensor(codes / float(1 << self.fmt.frac), dtype=torch.float32)
            return self.net.head(self.net.head_bn(x))

    def __call__(self, feats, frame, hook=None, trace=None):
        codes = run_program(self.program, frame, self.first_codes(feats, frame), hook, trace)
        return self.head(codes)

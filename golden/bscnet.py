"""BSC-Net (Xu et al., CVPR 2023): binarized sparse FCN and UNET networks for point clouds.

Architecture as the supplement describes it (``docs/sparse.md`` has the details and the
choices its missing figure leaves open):

* **UNET**: a real-valued input SSC layer (``m`` filters), then levels ``l = 0..6`` (six down-
  sampling steps) of ``(l + 1) m`` channels: SSC blocks, a *Conv* layer down to the next level,
  and on the way back a *DeConv* layer up, a concatenation with the skip (``2 (l + 1) m``
  channels) and SSC blocks back to ``(l + 1) m``. UNET-S: ``m = 16``, one block a level;
  UNET-H: ``m = 32``, two blocks a level.
* **FCN**: the same encoder with eight down-sampling steps (levels ``0..8``, ``(l + 1) m``
  channels), each level's output concatenated with the DeConv of the deeper levels' output,
  so level 0 ends with ``sum_l (l + 1) m`` channels. FCN-S: ``m = 16``, one block a level;
  FCN-H: ``m = 24``, two blocks a level.
* **SSC layer** (binary): ``y = BN(SSC_bin(sign(x))) + P(x)`` with ``P`` the identity when
  the channel counts agree, else ``BN(conv1x1_bin(sign(x)))``. An SSC block is two SSC layers
  (the first changes the channel count). The SSC convolution is plain (BSC-Baseline) or SFSC
  (BSC-Net, :class:`SFSC`).
* **Conv layer** (binary down-sampling): ``z = BN(down_bin(sign(x))) + avgpool(x)`` (kernel 2,
  stride 2, channels kept), then the real-valued ``BN(conv1x1(z))`` changes the channels.
  **DeConv layer**: ``z = BN(up_bin(sign(x))) + unpool(x)`` at the finer sites, then the real
  ``BN(conv1x1(z))``.
* The first SSC layer and the linear head are real-valued; activations are binarized with sign
  (ApproxSign gradient), weights with the chosen binarizer (sign or c-sign). Binary layers are
  unscaled: their scale is absorbed by the batch-norm that follows.

Integer inference: every binary convolution takes ``+-1`` inputs and weights, so its sums are
integers (exact in float32 below 2^24); :meth:`BSCNet.forward` accepts ``sums_hook`` which, for
each binary layer, may replace the sums (the hardware's) after they are checked, and
``trace`` which records each binary layer's input bits and sums.
"""

import numpy as np
import torch
from torch import nn

from quant.binarize import approx_sign
from quant.csign import WeightBinarizer
from quant.errors import BnnforgeError
from .sparse import check_coords, downsample_map, ssc_kernel_map, upsample_map, voxel_keys

__all__ = ["SparseFrame", "BinaryConv", "SFSC", "SSCLayer", "ConvLayer", "DeConvLayer",
           "to_bitstream", "from_bitstream",
           "BSCNet", "ARCHS", "shifted_kernel_map", "SFSC_SHIFTS"]

ARCHS = {
    "unet-s": dict(network="unet", m=16, reps=1, levels=7, step=16),
    "unet-h": dict(network="unet", m=32, reps=2, levels=7, step=32),
    "fcn-s": dict(network="fcn", m=16, reps=1, levels=9, step=16),
    "fcn-h": dict(network="fcn", m=24, reps=2, levels=9, step=24),
}
"""The supplement's four networks: initial filters ``m``, blocks a level, levels (down-sampling
steps + 1) and the filters added per down-sampling step."""

SFSC_SHIFTS = np.array([(0, 0, 0)] + [(dx, dy, dz) for dz in (-1, 1) for dy in (-1, 1)
                                       for dx in (-1, 1)], dtype=np.int64)
"""SFSC's candidate window shifts: none, and the eight shifts that put the output site at a
corner of the 3x3x3 window, as the paper's figure of SFSC draws them (the site in the centre,
then in a corner of each shifted window; `../shared/papers/bsc-net-sfsc-figure.png`). An
earlier version shifted one voxel along each axis instead (the window's faces, not corners)."""

SLOTS = {"ssc": 27, "down": 8, "up": 8, "pointwise": 1}


shifted_kernel_map = ssc_kernel_map
"""The kernel map of a 3x3x3 window shifted by ``shift`` (SFSC):
``golden.sparse.ssc_kernel_map``."""


def _groups(rows, slots):
    """A kernel map as per-slot index tensors ``[(slot, out, in), ...]`` for fast scatter."""
    rows = torch.as_tensor(np.asarray(rows, dtype=np.int64))
    out = []
    for k in range(slots):
        sel = rows[rows[:, 2] == k]
        if len(sel):
            out.append((k, sel[:, 0].contiguous(), sel[:, 1].contiguous()))
    return out


class SparseFrame:
    """One point cloud at every level of a network: coordinates (hardware order), kernel maps
    of SSC, down-sampling (level ``l`` to ``l + 1``) and up-sampling (``l + 1`` to ``l``).

    Level ``l`` uses ``bits - l`` coordinate bits (at least 2)."""

    def __init__(self, coords, bits, levels):
        c = check_coords(coords, bits)
        keys = voxel_keys(c, bits)
        if np.any(np.diff(keys) <= 0):
            raise BnnforgeError("the frame is not in hardware order (sorted keys, no "
                                "duplicates); use golden.sparse.sort_frame")
        self.coords, self.bits, self.down_rows, self.up_rows = [c], [bits], [], []
        for level in range(1, levels):
            coarse, rows = downsample_map(self.coords[-1])
            self.down_rows.append(rows)
            self.up_rows.append(upsample_map(self.coords[-1], coarse))
            self.coords.append(coarse)
            self.bits.append(max(2, bits - level))
        self._maps = {}

    def size(self, level):
        return len(self.coords[level])

    def rows(self, kind, level, shift=(0, 0, 0)):
        """Kernel map rows ``(out, in, slot)`` of a layer of ``kind`` reading level ``level``
        (for ``up``: writing level ``level`` from ``level + 1``)."""
        if kind == "ssc":
            key = ("ssc", level, tuple(int(s) for s in shift))
            if key not in self._maps:
                self._maps[key] = shifted_kernel_map(self.coords[level], self.bits[level],
                                                     shift)
            return self._maps[key]
        if kind == "down":
            return self.down_rows[level]
        if kind == "up":
            return self.up_rows[level]
        n = self.size(level)
        return np.stack([np.arange(n), np.arange(n), np.zeros(n, np.int64)], axis=1)

    def groups(self, kind, level, shift=(0, 0, 0)):
        key = ("groups", kind, level, tuple(int(s) for s in shift))
        if key not in self._maps:
            self._maps[key] = _groups(self.rows(kind, level, shift), SLOTS[kind])
        return self._maps[key]

    def out_size(self, kind, level):
        return self.size(level + 1) if kind == "down" else self.size(level)


def scatter_conv(x, w, groups, n_out):
    """``out[u] += W_k x[j]`` for every pair ``(k, u, j)``; ``w`` is ``slots x Cout x Cin``."""
    out = x.new_zeros(n_out, w.shape[1])
    for k, u, j in groups:
        out = out.index_add(0, u, x[j] @ w[k].T)
    return out


class BinaryConv(nn.Module):
    """A binary sparse convolution of ``kind`` (ssc, down, up, pointwise): ``sign(W)`` (the
    binarizer's straight-through gradient) applied to ``+-1`` inputs; integer sums."""

    def __init__(self, kind, cin, cout, binarizer="sign"):
        super().__init__()
        self.kind, self.cin, self.cout = kind, cin, cout
        slots = SLOTS[kind]
        self.weight = nn.Parameter(torch.empty(slots, cout, cin).uniform_(-1, 1)
                                   * (3.0 / (slots * cin)) ** 0.5)
        self.binarize = WeightBinarizer(self.weight.shape, binarizer)

    def forward(self, a, frame, level):
        w = self.binarize(self.weight)
        return scatter_conv(a, w, frame.groups(self.kind, level), frame.out_size(self.kind, level))

    def weight_bits(self):
        return self.binarize.bits(self.weight).numpy()


class SFSC(nn.Module):
    """Shifted sparse convolution (our definition; the paper's code is not public).

    The ``Cout`` output channels form ``groups`` contiguous groups; group ``g`` computes a
    binary 3x3x3 convolution over the window centred at ``u + s_g``:
    ``y_g[u] = sum_k W_{g,k} . a[u + s_g + off_k]`` over the present sites, for every output
    site ``u`` (the input sites). ``s_g`` is one of :data:`SFSC_SHIFTS`. While searching
    (``self.searching``), ``y_g = sum_c softmax(alpha_g)_c y_g^{(c)}`` mixes every candidate
    (differentiable in ``alpha``); after :meth:`fix` (argmax) only the chosen shift is used,
    and the layer is an integer binary convolution whose offsets reach distance 2."""

    def __init__(self, cin, cout, groups=4, binarizer="sign"):
        super().__init__()
        if cout % groups:
            raise BnnforgeError(f"SFSC: {groups} groups do not divide {cout} output channels")
        self.kind, self.cin, self.cout, self.ngroups = "ssc", cin, cout, groups
        self.weight = nn.Parameter(torch.empty(27, cout, cin).uniform_(-1, 1)
                                   * (3.0 / (27 * cin)) ** 0.5)
        self.binarize = WeightBinarizer(self.weight.shape, binarizer)
        self.alpha = nn.Parameter(torch.zeros(groups, len(SFSC_SHIFTS)))
        self.register_buffer("shift_index", torch.zeros(groups, dtype=torch.int64))
        self.register_buffer("fixed", torch.zeros((), dtype=torch.bool))

    @property
    def searching(self):
        return not bool(self.fixed)

    @searching.setter
    def searching(self, value):
        self.fixed.fill_(not value)

    def fix(self):
        """End the search: every group keeps its most probable shift."""
        self.shift_index.copy_(self.alpha.detach().argmax(dim=1))
        self.fixed.fill_(True)

    def shifts(self):
        return SFSC_SHIFTS[self.shift_index.numpy()]

    def forward(self, a, frame, level):
        w = self.binarize(self.weight)
        n, gs = frame.size(level), self.cout // self.ngroups
        if self.searching:
            # Every candidate window over all channels once; each group's channels mix them
            # with its own distribution.
            p = torch.softmax(self.alpha, dim=1).repeat_interleave(gs, dim=0)   # Cout x C
            return sum(p[:, c] * scatter_conv(a, w, frame.groups("ssc", level, s), n)
                       for c, s in enumerate(SFSC_SHIFTS))
        outs = []
        for g in range(self.ngroups):
            wg = w[:, g * gs:(g + 1) * gs]
            s = SFSC_SHIFTS[int(self.shift_index[g])]
            outs.append(scatter_conv(a, wg, frame.groups("ssc", level, s), n))
        return torch.cat(outs, dim=1)

    def weight_bits(self):
        return self.binarize.bits(self.weight).numpy()


class BatchNorm(nn.BatchNorm1d):
    """Batch-norm over the sites of a frame; a level with a single site (deep levels of small
    frames) uses the running statistics even in training."""

    def forward(self, x):
        if self.training and x.shape[0] < 2:
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight,
                                            self.bias, False, 0.0, self.eps)
        return super().forward(x)


def _binary(conv, x, frame, level, ctx):
    """Run a binary convolution on ``sign(x)``; record and let the hook replace its sums."""
    a = approx_sign(x)
    y = conv(a, frame, level)
    if ctx is not None:
        trace, hook = ctx
        bits = (a.detach() > 0).to(torch.uint8).numpy()
        name = getattr(conv, "path", conv.kind)
        if trace is not None:
            trace.append(dict(name=name, kind=conv.kind, level=level, bits=bits,
                              sums=y.detach().round().to(torch.int64).numpy()))
        if hook is not None:
            got = hook(name, conv, level, bits, y.detach())
            if got is not None:
                y = y + (torch.as_tensor(got, dtype=y.dtype) - y).detach()
    return y


class SSCLayer(nn.Module):
    """``BN(SSC_bin(sign x)) + P(x)``; ``P`` identity or ``BN(conv1x1_bin(sign x))``."""

    def __init__(self, cin, cout, binarizer="sign", sfsc_groups=0):
        super().__init__()
        self.conv = (SFSC(cin, cout, sfsc_groups, binarizer) if sfsc_groups
                     else BinaryConv("ssc", cin, cout, binarizer))
        self.bn = BatchNorm(cout)
        self.proj = None
        if cin != cout:
            self.proj = BinaryConv("pointwise", cin, cout, binarizer)
            self.proj_bn = BatchNorm(cout)

    def forward(self, x, frame, level, ctx):
        y = self.bn(_binary(self.conv, x, frame, level, ctx))
        if self.proj is None:
            return y + x
        return y + self.proj_bn(_binary(self.proj, x, frame, level, ctx))


class SSCBlock(nn.Module):
    """Two SSC layers."""

    def __init__(self, cin, cout, binarizer, sfsc_groups):
        super().__init__()
        self.a = SSCLayer(cin, cout, binarizer, sfsc_groups)
        self.b = SSCLayer(cout, cout, binarizer, sfsc_groups)

    def forward(self, x, frame, level, ctx):
        return self.b(self.a(x, frame, level, ctx), frame, level, ctx)


def _pool(x, rows, n_out):
    """Mean of the present children at each coarse site (rows ``(coarse, fine, slot)``)."""
    rows = torch.as_tensor(np.asarray(rows, dtype=np.int64))
    s = x.new_zeros(n_out, x.shape[1]).index_add(0, rows[:, 0], x[rows[:, 1]])
    cnt = x.new_zeros(n_out).index_add(0, rows[:, 0], x.new_ones(len(rows)))
    return s / cnt.clamp(min=1)[:, None]


class _Resample(nn.Module):
    """``z = BN(conv_bin(sign x)) + skip(x)`` (channels kept), then the real ``BN(conv1x1(z))``
    to ``cout`` channels; ``kind`` is the binary convolution's (down or up)."""

    kind = None

    def __init__(self, cin, cout, binarizer="sign"):
        super().__init__()
        self.conv = BinaryConv(self.kind, cin, cin, binarizer)
        self.bn = BatchNorm(cin)
        self.lin = nn.Linear(cin, cout, bias=False)
        self.bn_out = BatchNorm(cout)

    def forward(self, x, frame, level, ctx):
        z = self.bn(_binary(self.conv, x, frame, level, ctx)) + self.skip(x, frame, level)
        return self.bn_out(self.lin(z))


class ConvLayer(_Resample):
    """Down-sampling: ``z = BN(down_bin(sign x)) + avgpool(x)``; ``BN(conv1x1(z))`` (real)."""

    kind = "down"

    def skip(self, x, frame, level):
        return _pool(x, frame.rows("down", level), frame.size(level + 1))


class DeConvLayer(_Resample):
    """Up-sampling onto level ``level``'s sites: ``z = BN(up_bin(sign x)) + unpool(x)``;
    ``BN(conv1x1(z))`` (real)."""

    kind = "up"

    def skip(self, x, frame, level):
        rows = torch.as_tensor(frame.rows("up", level))
        return x[rows[:, 1]]      # every fine site has its parent, in order


class BSCNet(nn.Module):
    KIND = "bscnet"  # the network kind's name (checkpoints, bnnforge.kinds)

    """A BSC-Net FCN or UNET (``arch`` one of :data:`ARCHS`) for per-voxel classification.

    ``forward(feats, frame)``: ``feats`` N x ``in_channels`` float at level 0 of ``frame``
    (:class:`SparseFrame` with at least ``levels`` levels); returns N x ``classes`` logits."""

    def __init__(self, arch="unet-s", in_channels=1, classes=16, binarizer="sign", sfsc=True,
                 sfsc_groups=4, levels=None):
        super().__init__()
        if arch not in ARCHS:
            raise BnnforgeError(f"unknown BSC-Net architecture {arch!r}; choose one of "
                                f"{', '.join(ARCHS)}")
        cfg = dict(ARCHS[arch])
        if levels is not None:
            cfg["levels"] = levels
        self.arch, self.cfg = arch, cfg
        self.config = dict(arch=arch, in_channels=in_channels, classes=classes,
                           binarizer=binarizer, sfsc=sfsc, sfsc_groups=sfsc_groups,
                           levels=cfg["levels"])
        m, reps, L, step = cfg["m"], cfg["reps"], cfg["levels"], cfg["step"]
        g = sfsc_groups if sfsc else 0
        self.planes = [m + step * l for l in range(L)]
        p = self.planes
        self.stem = nn.Parameter(torch.randn(27, m, in_channels) * (2.0 / (27 * in_channels))
                                 ** 0.5)
        self.enc = nn.ModuleList(nn.ModuleList(SSCBlock(p[l], p[l], binarizer, g)
                                               for _ in range(reps)) for l in range(L))
        self.down = nn.ModuleList(ConvLayer(p[l], p[l + 1], binarizer) for l in range(L - 1))
        if cfg["network"] == "unet":
            self.up = nn.ModuleList(DeConvLayer(p[l + 1], p[l], binarizer)
                                    for l in range(L - 1))
            self.dec = nn.ModuleList(
                nn.ModuleList(SSCBlock(2 * p[l] if r == 0 else p[l], p[l], binarizer, g)
                              for r in range(reps)) for l in range(L - 1))
            head = p[0]
        else:
            widths = [sum(p[l:]) for l in range(L)]
            self.up = nn.ModuleList(DeConvLayer(widths[l + 1], widths[l + 1], binarizer)
                                    for l in range(L - 1))
            self.dec = None
            head = widths[0]
        self.head_bn = BatchNorm(head)
        self.head = nn.Linear(head, classes)
        for name, mod in self.binary_layers():
            mod.path = name

    def binary_layers(self):
        """``[(name, conv module)]`` of every binary convolution (module order)."""
        out = []
        for name, mod in self.named_modules():
            if isinstance(mod, (BinaryConv, SFSC)):
                out.append((name, mod))
        return out

    def forward(self, feats, frame, trace=None, sums_hook=None):
        ctx = None if trace is None and sums_hook is None else (trace, sums_hook)
        L = self.cfg["levels"]
        if len(frame.coords) < L:
            raise BnnforgeError(f"the frame has {len(frame.coords)} levels; {self.arch} needs "
                                f"{L}")
        x = scatter_conv(feats, self.stem, frame.groups("ssc", 0), frame.size(0))
        skips = []
        for level in range(L):
            for r, block in enumerate(self.enc[level]):
                x = block(x, frame, level, ctx)
            skips.append(x)
            if level < L - 1:
                x = self.down[level](x, frame, level, ctx)
        if self.dec is not None:
            for level in reversed(range(L - 1)):
                x = self.up[level](x, frame, level, ctx)
                x = torch.cat([skips[level], x], dim=1)
                for r, block in enumerate(self.dec[level]):
                    x = block(x, frame, level, ctx)
        else:
            x = skips[-1]
            for level in reversed(range(L - 1)):
                x = torch.cat([skips[level],
                               self.up[level](x, frame, level, ctx)], dim=1)
        return self.head(self.head_bn(x))

    def fix_shifts(self):
        for mod in self.modules():
            if isinstance(mod, SFSC):
                mod.fix()


def to_bitstream(net, input_spec, meta=None):
    """The bitstream of a trained BSC-Net: binary layers as weight bits, the real-valued parts
    (and batch-norm statistics) as host tensors."""
    from quant.bitstream import Bitstream

    binary = dict(net.binary_layers())
    layers = [{"name": name, "kind": mod.kind, "cin": mod.cin, "cout": mod.cout,
               "weights": mod.weight_bits()} for name, mod in binary.items()]
    host = {}
    for key, value in net.state_dict().items():
        owner = key.rsplit(".", 1)[0]
        if owner in binary and key.endswith(".weight"):
            if getattr(binary[owner], "searching", False):
                raise BnnforgeError(f"{owner}: the SFSC shift search is still running; end it "
                                    f"(BSCNet.fix_shifts()) before export")
            continue          # latent binary weights
        if ".binarize." in key:
            continue
        host[key] = value.detach().to(torch.float32).numpy()
    config = dict(net.config, binarizer="sign")
    return Bitstream(layers=[], input=dict(input_spec), meta=dict(meta or {}), host=host,
                     bscnet={"config": config, "layers": layers})


def from_bitstream(bs):
    """The BSC-Net of a bitstream, in eval mode: binary weights as +-1 latent weights (their
    signs are the bits), real-valued parts from the host tensors."""
    if bs.kind != "bscnet":
        raise BnnforgeError(f"the bitstream holds a {bs.kind} network, not a BSC-Net")
    net = BSCNet(**bs.bscnet["config"])
    state = {k: torch.as_tensor(np.asarray(v)) for k, v in bs.host.items()}
    for key in state:
        if key.endswith(("shift_index", "num_batches_tracked")):
            state[key] = state[key].round().to(torch.int64)
        elif key.endswith(".fixed"):
            state[key] = state[key] != 0
    binary = dict(net.binary_layers())
    for layer in bs.bscnet["layers"]:
        if layer["name"] not in binary:
            raise BnnforgeError(f"the bitstream's layer {layer['name']} is not in a "
                                f"{net.arch} network")
        state[layer["name"] + ".weight"] = torch.as_tensor(
            2.0 * np.asarray(layer["weights"], dtype=np.float32) - 1)
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if ".binarize." not in k]
    if missing or unexpected:
        raise BnnforgeError(f"the bitstream does not match a {net.arch} network (missing "
                            f"{missing[:3]}, unexpected {unexpected[:3]})")
    return net.eval()

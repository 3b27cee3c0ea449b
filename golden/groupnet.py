"""Group-Net (Zhuang et al., CVPR 2019): K binary bases per group, learned scales and soft
connections, BPAC dilations; trainable in float and run in fixed point as the hardware does.

Structure (as the authors' public code builds it; see DESIGN.md):

* A binary *unit* is ``u(x) = BN(ReLU(conv3x3(sign(x), sign(W) * mean|W|))) + x``: the input's
  sign (ApproxSign gradient), a binary convolution padded with +1, ReLU, batch-norm and a
  real-valued residual add. A ResNet basic block is two units.
* The network is a full-precision stem (conv, batch-norm; see ``stem_relu``), a sequence of
  units, global average pooling and a full-precision linear classifier. Stem and classifier run
  on the host.
* The units are split into *groups*; each of the K bases runs its own copy of a group's units,
  and the group's output is ``Y = sum_k lambda_k * y_k`` with a learned scalar per base. How the
  units are grouped is the *decomposition*:

  ============  =============================================  ===============
  name          group                                          connection
  ============  =============================================  ===============
  ``layer``     one unit (layer-wise binary decomposition)     hard
  ``gbd1``      one block (two units), GBD v1                  hard
  ``gbd2``      two blocks, GBD v2                             hard
  ``gbd3``      the whole network, GBD v3                      hard
  ``groupnet``  one block                                      soft
  ============  =============================================  ===============

  With a hard connection every base of a group reads ``Y`` of the previous group; with a soft
  connection base ``k`` reads ``x_k = s * y_k + (1 - s) * Y`` (``y_k`` its own previous output,
  ``s = sigmoid(theta)``, one learned gate per group).
* BPAC: in the last ``bpac_blocks`` blocks (two by default, as the supplement's S3 places the
  dilations "in the last two blocks"), base ``k``'s units use dilation ``rates[k]`` (padding
  equal to the rate keeps the map size).

Fixed point (:class:`FixedPoint`, written into the bitstream): activations are signed
``width``-bit integers with ``frac`` fractional bits, saturated on overflow. A unit computes
``sat(x + c + round_shift(a * max(2P - n, 0), scale_frac - frac))`` with the batch-norm scale
``a`` (``scale_frac`` fractional bits) and shift ``c`` (``frac`` bits) and ``P`` the popcount;
a group sums ``round_shift(sum_k l_k y_k, lambda_frac)``; a soft connection mixes
``round_shift(g y_k + (2^gate_frac - g) Y, gate_frac)``. ``round_shift(v, s)`` is
``floor((v + 2^(s-1)) / 2^s)`` (round half up); parameters are rounded the same way.
"""

from dataclasses import dataclass, asdict

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from quant.activation import ActivationQuant
from quant.binarize import approx_sign
from quant.csign import WeightBinarizer
from quant.fixed import round_shift, saturate, to_fixed
from .conv import binary_conv2d_popcount, weights_hwc

__all__ = ["DECOMPOSITIONS", "TRAINING", "FixedPoint", "BinaryUnit", "GroupNet", "round_shift",
           "saturate", "to_fixed", "unit_forward", "fixed_forward", "HostParts",
           "stem_codes", "head_logits", "torch_popcounts", "bitpacked_popcounts"]

DECOMPOSITIONS = ("layer", "gbd1", "gbd2", "gbd3", "groupnet")

#: The training recipe (keyword arguments of :func:`golden.train.train_classifier`) that the
#: demo, the c-sign study and the tests share.
TRAINING = {"lr": 1e-2}

ACT_FRAC = 16
"""Fractional bits of a K-bit activation's multiplier ``(2^K - 1) / beta``."""


@dataclass(frozen=True)
class FixedPoint:
    """Formats of the real-valued parts inside the binary groups."""

    width: int = 20
    frac: int = 12
    scale_frac: int = 16
    lambda_frac: int = 12
    gate_frac: int = 12
    rounding: str = "half-up: floor(v * 2^f + 1/2)"
    overflow: str = "saturate"

    def to_dict(self):
        return asdict(self)


class BinaryUnit(nn.Module):
    """``BN(ReLU(binary_conv3x3(sign(x)))) + x`` with dilation ``dilation`` (padding with +1).

    With ``stride`` 2 or ``cin != channels`` (the first unit of a ResNet stage) the
    convolution has that stride and the residual is a down-sampling *shortcut*
    ``BN_d(conv1x1(avgpool2(x)))``, real-valued (as Bi-Real Net and ReActNet keep it; the
    papers do not binarize it).

    With ``act_bits`` the input is not binarized but quantized to ``act_bits``-bit codes on
    ``[0, act_beta]`` (:class:`quant.activation.ActivationQuant`, supplement S4.1): binary
    weights with K-bit activations (padding then is 0, the quantizer's lowest level); in fixed
    point and in hardware the codes come from the input codes by :func:`act_codes`."""

    def __init__(self, channels, dilation=1, act_bits=None, act_beta=1.0, binarizer="sign",
                 cin=None, stride=1):
        super().__init__()
        cin = channels if cin is None else cin
        if stride not in (1, 2):
            raise ValueError(f"a unit's stride is 1 or 2, not {stride}")
        self.channels, self.cin, self.dilation, self.stride = channels, cin, dilation, stride
        self.act = None if act_bits is None else ActivationQuant(act_bits, act_beta)
        self.weight = nn.Parameter(torch.empty(channels, cin, 3, 3).uniform_(-1, 1)
                                   * (3.0 / (9 * cin)) ** 0.5)
        self.binarize = WeightBinarizer(self.weight.shape, binarizer)
        self.bn = nn.BatchNorm2d(channels)
        self.shortcut = None
        if stride != 1 or cin != channels:
            self.shortcut = nn.Sequential(nn.AvgPool2d(stride) if stride > 1 else nn.Identity(),
                                          nn.Conv2d(cin, channels, 1, bias=False),
                                          nn.BatchNorm2d(channels))

    def forward(self, x):
        if self.act is not None:
            b = F.pad(self.act(x), (self.dilation,) * 4, value=0.0)
        else:
            b = F.pad(approx_sign(x), (self.dilation,) * 4, value=1.0)
        # Forward sign(W) * mean|W|; backward the binarizer's gradient unscaled (the
        # authors' straight-through estimator treats the scale as a constant of value 1).
        signs = self.binarize(self.weight)
        w = signs + (signs * self.weight.detach().abs().mean() - signs).detach()
        y = self.bn(F.relu(F.conv2d(b, w, stride=self.stride, dilation=self.dilation)))
        return y + (x if self.shortcut is None else self.shortcut(x))

    @torch.no_grad()
    def clip_(self):
        self.weight.clamp_(-1, 1)

    def fixed_point(self, fmt):
        """``{weights (HWC rows of bits), scale, shift, dilation, act}`` of this unit; ``act``
        None for binary activations, else ``{bits, mult, frac}``: the input codes' K-bit
        activations ``q = clip(round_shift(x * mult, fmt.frac + frac), 0, 2^K - 1)`` with
        ``mult = (2^K - 1) / beta`` in ``frac`` fractional bits (:data:`ACT_FRAC`)."""
        w = self.weight.detach().double()
        alpha = w.abs().mean().item()
        bn = self.bn
        std = torch.sqrt(bn.running_var.double() + bn.eps)
        a = bn.weight.detach().double() * alpha / std
        c = bn.bias.detach().double() - bn.weight.detach().double() * bn.running_mean.double() / std
        act = None
        if self.act is not None:
            levels = (1 << self.act.bits) - 1
            # The convolution sees q * beta / levels: its step joins the scale.
            a = a * (self.act.beta / levels)
            act = {"bits": self.act.bits, "frac": ACT_FRAC,
                   "mult": int(to_fixed(levels / self.act.beta, ACT_FRAC))}
        return {"weights": weights_hwc(self.binarize.bits(self.weight)).numpy(),
                "scale": to_fixed(a.numpy(), fmt.scale_frac),
                "shift": to_fixed(c.numpy(), fmt.frac), "dilation": self.dilation,
                "act": act, "stride": self.stride, "shortcut": self._shortcut_fixed(fmt)}

    def _shortcut_fixed(self, fmt):
        """``{weights (C x Cin), bias (C)}``: ``r = round_shift(weights @ s, scale_frac) + bias``
        on the sum ``s`` of each 2x2 (stride 2; the pixel itself at stride 1) of input codes,
        the batch-norm and the average's 1/4 folded into the weights."""
        if self.shortcut is None:
            return None
        conv, bn = self.shortcut[1], self.shortcut[2]
        std = torch.sqrt(bn.running_var.double() + bn.eps)
        a = bn.weight.detach().double() / std
        c = bn.bias.detach().double() - a * bn.running_mean.double()
        w = conv.weight.detach().double()[:, :, 0, 0] * a[:, None] / (self.stride ** 2)
        return {"weights": to_fixed(w.numpy(), fmt.scale_frac),
                "bias": to_fixed(c.numpy(), fmt.frac)}


def _stem(in_channels, channels, relu):
    """The full-precision stem: 3x3 convolution and batch-norm, then ReLU when ``relu``."""
    layers = [nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
              nn.BatchNorm2d(channels)]
    return nn.Sequential(*layers, *([nn.ReLU()] if relu else []))


class GroupNet(nn.Module):
    KIND = "groupnet"  # the network kind's name (checkpoints, bnnforge.kinds)

    """A Group-Net CNN: stem, ``blocks`` binary blocks (two units each) of ``channels``
    channels decomposed into groups with ``bases`` bases, average pooling, classifier.

    Parameters
    ----------
    stages : list of int or None
        ResNet stages: the channels of each, ``blocks`` blocks a stage (``channels`` is then
        the first stage's). The first unit of every stage after the first has stride 2 and a
        down-sampling shortcut (:class:`BinaryUnit`). None: one stage of ``channels``.
    bases : int
        K, from 1 to 8.
    decomposition : str
        One of :data:`DECOMPOSITIONS`.
    bpac_rates : list of int or None
        Dilation of each base in the last ``bpac_blocks`` blocks (BPAC); None for none.
    act_bits, act_beta : int or None, float
        K-bit activations instead of binary ones (golden only; see :class:`BinaryUnit`).
    binarizer : "sign" or "csign"
        Weight binarizer of every unit (the scale ``mean|W|`` multiplies either).
    stem_relu : bool
        End the stem with a ReLU, as the authors' ResNet stem does. Off by default: with
        sign(0) = +1 every input bit of the first unit is then +1, its convolution is a
        constant, and its batch-norm divides a drift of that constant by ``sqrt(eps)`` in
        evaluation, which made training collapse on some seeds and thread counts (test
        accuracy 0.1-0.44 while the training loss fell). Without it the first sign sees the
        stem's batch-normalised, zero-centred output.
    """

    def __init__(self, in_channels=1, channels=16, blocks=2, bases=3, classes=10,
                 decomposition="groupnet", bpac_rates=None, bpac_blocks=2, act_bits=None,
                 act_beta=1.0, binarizer="sign", stem_relu=False, stages=None):
        super().__init__()
        stages = [channels] if stages is None else [int(c) for c in stages]
        if not stages or min(stages) < 1:
            raise ValueError(f"stages must be positive channel counts, not {stages}")
        channels = stages[0]
        if not 1 <= bases <= 8:
            raise ValueError(f"Group-Net bases must be between 1 and 8, not {bases}")
        if decomposition not in DECOMPOSITIONS:
            raise ValueError(f"unknown decomposition {decomposition!r}; choose one of "
                             f"{', '.join(DECOMPOSITIONS)}")
        if bpac_rates is not None and len(bpac_rates) != bases:
            raise ValueError(f"BPAC needs one dilation rate per base: {bases} bases, "
                             f"{len(bpac_rates)} rates")
        self.config = dict(in_channels=in_channels, channels=channels, blocks=blocks,
                           bases=bases, classes=classes, decomposition=decomposition,
                           bpac_rates=list(bpac_rates) if bpac_rates else None,
                           bpac_blocks=bpac_blocks, act_bits=act_bits, act_beta=act_beta,
                           binarizer=binarizer,
                           stem_relu=stem_relu, stages=stages if len(stages) > 1 else None)
        per_stage = 2 * blocks
        units = per_stage * len(stages)
        # Each unit's (cin, cout, stride): the first unit of stages after the first strides.
        shapes = []
        for u in range(units):
            stage, first = u // per_stage, u % per_stage == 0 and u >= per_stage
            shapes.append((stages[stage - 1] if first else stages[stage], stages[stage],
                           2 if first else 1))
        size = {"layer": 1, "gbd1": 2, "groupnet": 2, "gbd2": 4, "gbd3": units}[decomposition]
        self.groups = [list(range(i, min(i + size, units))) for i in range(0, units, size)]
        self.soft = decomposition == "groupnet"
        self.bases = bases

        def rate(unit, k):
            if bpac_rates and unit >= units - 2 * bpac_blocks:
                return bpac_rates[k]
            return 1

        self.stem = _stem(in_channels, channels, stem_relu)
        self.units = nn.ModuleList(
            nn.ModuleList(nn.ModuleList(BinaryUnit(shapes[u][1], rate(u, k), act_bits, act_beta,
                                                   binarizer, cin=shapes[u][0],
                                                   stride=shapes[u][2])
                                        for u in group)
                          for k in range(bases)) for group in self.groups)
        self.lambdas = nn.Parameter(torch.full((len(self.groups), bases), 1.0 / bases))
        self.gates = nn.Parameter(torch.zeros(len(self.groups)))
        self.head = nn.Linear(stages[-1], classes)

    def binary_part(self, y):
        """The groups, on the stem's output ``y``; returns the last group's ``Y``."""
        outs = None
        for g in range(len(self.groups)):
            new = []
            for k in range(self.bases):
                if self.soft and outs is not None:
                    s = torch.sigmoid(self.gates[g])
                    x = s * outs[k] + (1 - s) * y
                else:
                    x = y
                for unit in self.units[g][k]:
                    x = unit(x)
                new.append(x)
            y = sum(self.lambdas[g, k] * new[k] for k in range(self.bases))
            outs = new
        return y

    def forward(self, images):
        return self.head(self.binary_part(self.stem(images)).mean(dim=(2, 3)))

    def clip_(self):
        for group in self.units:
            for base in group:
                for unit in base:
                    unit.clip_()

    # -- fixed point -----------------------------------------------------------------------

    def fixed_point(self, fmt=FixedPoint()):
        """Everything the fixed-point model and the hardware need, as integers (and the host
        parts, stem and classifier, as float32)."""
        groups = []
        for g, group in enumerate(self.groups):
            gate = None
            if self.soft and g > 0:
                gate = int(to_fixed(torch.sigmoid(self.gates[g]).item(), fmt.gate_frac))
            groups.append({
                "units": [[unit.fixed_point(fmt) for unit in self.units[g][k]]
                          for k in range(self.bases)],
                "lambdas": to_fixed(self.lambdas[g].detach().double().numpy(), fmt.lambda_frac),
                "gate": gate})
        return {"format": fmt, "groups": groups, "config": dict(self.config)}

    def stem_codes(self, images, fmt=FixedPoint()):
        """The stem's output on the host, as fixed-point codes ``N x C x H x W``."""
        self.eval()
        return stem_codes(self.stem, images, fmt)

    def head_logits(self, codes, fmt=FixedPoint()):
        """The classifier on the host, from the binary part's fixed-point output."""
        return head_logits(self.head, codes, fmt)

    def to_bitstream(self, height, width, fmt=FixedPoint(), meta=None):
        """The fixed-point Group-Net, its host parts and its input description as a
        :class:`quant.bitstream.Bitstream`."""
        from quant.bitstream import Bitstream

        params = self.fixed_point(fmt)
        c = self.config["channels"]
        spec = {"format": fmt.to_dict(), "height": height, "width": width, "channels": c,
                "config": dict(self.config), "groups": params["groups"]}
        conv, bn = self.stem[0], self.stem[1]
        host = {"stem.conv.weight": conv.weight, "stem.bn.weight": bn.weight,
                "stem.bn.bias": bn.bias, "stem.bn.running_mean": bn.running_mean,
                "stem.bn.running_var": bn.running_var, "head.weight": self.head.weight,
                "head.bias": self.head.bias}
        host = {k: v.detach().float().numpy() for k, v in host.items()}
        spec_input = {"kind": "fixed-point codes from the host stem", "channels": c,
                      "height": height, "width": width, "features": c * fmt.width,
                      "images": {"channels": self.config["in_channels"], "scale": "pixel / 16"}}
        return Bitstream([], spec_input, dict(meta or {}), groupnet=spec, host=host).validate()


@torch.no_grad()
def stem_codes(stem, images, fmt):
    """A stem module's output as fixed-point codes (saturated)."""
    out = stem(torch.as_tensor(images, dtype=torch.float32)).double().numpy()
    return to_fixed(out, fmt.frac, fmt.width)


@torch.no_grad()
def head_logits(head, codes, fmt):
    """Global average pooling of the dequantized codes, then the classifier."""
    y = torch.from_numpy(np.asarray(codes, dtype=np.float64) / (1 << fmt.frac)).float()
    return head(y.mean(dim=(2, 3)))


class HostParts(nn.Module):
    """The stem and classifier of a Group-Net bitstream, rebuilt for the host, with the
    fixed-point parameters of its groups (``params``, as :func:`fixed_forward` takes them)."""

    def __init__(self, bitstream):
        super().__init__()
        spec, host = bitstream.groupnet, bitstream.host
        self.fmt = FixedPoint(**{k: v for k, v in spec["format"].items()
                                 if k in FixedPoint.__dataclass_fields__})
        w = torch.from_numpy(host["stem.conv.weight"])
        # Bitstreams written before the option existed had the ReLU.
        self.stem = _stem(w.shape[1], w.shape[0], spec["config"].get("stem_relu", True))
        hw = torch.from_numpy(host["head.weight"])
        self.head = nn.Linear(hw.shape[1], hw.shape[0])
        with torch.no_grad():
            self.stem[0].weight.copy_(w)
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(self.stem[1], name).copy_(torch.from_numpy(host[f"stem.bn.{name}"]))
            self.head.weight.copy_(hw)
            self.head.bias.copy_(torch.from_numpy(host["head.bias"]))
        self.eval()
        self.params = {"format": self.fmt, "groups": spec["groups"], "config": spec["config"]}

    def stem_codes(self, images):
        return stem_codes(self.stem, images, self.fmt)

    def head_logits(self, codes):
        return head_logits(self.head, codes, self.fmt)

    def predict(self, images):
        """The whole network as the hardware flow computes it: stem on the host, groups in
        fixed point, classifier on the host."""
        return self.head_logits(fixed_forward(self.params, self.stem_codes(images))).argmax(1)


def torch_popcounts(bits, unit):
    """Popcounts of a unit's binary convolution with :func:`golden.conv.binary_conv2d_popcount`."""
    w = _unit_weights(unit, bits.shape[1])
    d = unit["dilation"]
    return binary_conv2d_popcount(bits, w, unit.get("stride", 1), d, d, 1).numpy()


def bitpacked_popcounts(bits, unit):
    """The same popcounts with packed 64-bit words and ``np.bitwise_count``."""
    from .bitpacked import conv_popcounts

    stride = unit.get("stride", 1)
    # Stride 2 keeps every other window (output (i, j) is centred at input (2i, 2j)).
    return conv_popcounts(bits, unit["weights"], unit["dilation"])[..., ::stride, ::stride]


def act_codes(x, act, fmt):
    """A unit's K-bit activations of its input codes: ``clip(round_shift(x * mult, fmt.frac +
    frac), 0, 2^K - 1)``."""
    q = round_shift(np.asarray(x, dtype=np.int64) * int(act["mult"]), fmt.frac + act["frac"])
    return np.clip(q, 0, (1 << act["bits"]) - 1)


def _unit_weights(unit, cin):
    """A unit's weight bits as ``Cout x Cin x 3 x 3`` (from window-order rows)."""
    w = torch.from_numpy(np.asarray(unit["weights"]))
    return w.reshape(w.shape[0], 3, 3, cin).permute(0, 3, 1, 2)


def act_sums(q, unit):
    """``sum w q`` of a unit with K-bit activations: its +-1 weights over the codes ``q``
    (padding 0), exact in float64."""
    w = 2.0 * _unit_weights(unit, q.shape[1]).double() - 1
    d = unit["dilation"]
    out = F.conv2d(torch.from_numpy(q).double(), w, stride=unit.get("stride", 1), padding=d,
                   dilation=d)
    return out.round().to(torch.int64).numpy()


def shortcut_forward(shortcut, x, fmt, stride):
    """A down-sampling shortcut in fixed point: the 2x2 sums of the codes ``x`` (``N x Cin x
    H x W``), then ``sat(round_shift(W s, scale_frac) + bias)``."""
    x = np.asarray(x, dtype=np.int64)
    n, c, h, w = x.shape
    s = x.reshape(n, c, h // stride, stride, w // stride, stride).sum(axis=(3, 5))
    # |W| < 2^31 (the bitstream's int32) and |s| < 2^(width + 2): the sums fit in int64 for
    # the formats the bitstream accepts (width <= 28 with 32 input channels).
    acc = np.einsum("oc,nchw->nohw", np.asarray(shortcut["weights"], dtype=np.int64), s)
    bias = np.asarray(shortcut["bias"], dtype=np.int64)[None, :, None, None]
    return saturate(round_shift(acc, fmt.scale_frac) + bias, fmt.width)


def unit_forward(unit, x, fmt, popcounts=torch_popcounts):
    """One binary unit in fixed point: ``x`` codes ``N x C x H x W`` to output codes (a unit
    with K-bit activations: ``max(sum w q, 0)`` in place of ``max(2P - 9C, 0)``)."""
    c = x.shape[1]
    stride = unit.get("stride", 1)
    if unit.get("act"):
        relu = np.maximum(act_sums(act_codes(x, unit["act"], fmt), unit), 0)
    else:
        p = popcounts((x >= 0).astype(np.uint8), unit)
        relu = np.maximum(2 * p - 9 * c, 0)
    scaled = round_shift(unit["scale"][None, :, None, None] * relu, fmt.scale_frac - fmt.frac)
    res = x if unit.get("shortcut") is None else shortcut_forward(unit["shortcut"], x, fmt,
                                                                  stride)
    return saturate(res + unit["shift"][None, :, None, None] + scaled, fmt.width)


def fixed_forward(params, codes, trace=False, popcounts=torch_popcounts):
    """The binary groups in fixed point: stem codes in, the last group's ``Y`` codes out (with
    ``trace``, also every group's ``(y_1..y_K, Y)``). ``popcounts`` computes the binary
    convolutions (:func:`torch_popcounts` or :func:`bitpacked_popcounts`)."""
    fmt = params["format"]
    y, outs, steps = np.asarray(codes, dtype=np.int64), None, []
    for group in params["groups"]:
        new = []
        for k, units in enumerate(group["units"]):
            if group["gate"] is not None and outs is not None:
                g = group["gate"]
                x = saturate(round_shift(g * outs[k] + ((1 << fmt.gate_frac) - g) * y,
                                         fmt.gate_frac), fmt.width)
            else:
                x = y
            for unit in units:
                x = unit_forward(unit, x, fmt, popcounts)
            new.append(x)
        acc = sum(int(group["lambdas"][k]) * new[k] for k in range(len(new)))
        y = saturate(round_shift(acc, fmt.lambda_frac), fmt.width)
        outs = new
        steps.append((new, y))
    return (y, steps) if trace else y

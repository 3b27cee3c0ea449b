"""Group-Net in hardware: binary units in fixed point, K parallel bases, soft connections.

Streams carry one pixel a transfer in raster order; a pixel of a real-valued feature map is
``channels`` two's-complement codes of ``fmt.width`` bits (channel ``c`` at bit
``c * width``). The fixed-point semantics are those of :mod:`golden.groupnet`.

* :class:`BinaryUnitHW`: ``sat(x + c + round_shift(a * max(2P - n, 0)))``: the input forks
  into a sign -> sliding window -> FIFO -> MVTU (popcounts) path and a residual FIFO of the
  codes themselves; both join in the fixed-point tail.
* :class:`GroupHW`: the K bases of one group, each a chain of units, side by side on the
  group's input (with a soft connection, base ``k`` first mixes its own previous output with
  the previous ``Y``); the lambda-weighted sum of their outputs.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from quant.bits import bits_for
from quant.bitstream import DenseLayer
from quant.errors import BnnforgeError
from .conv import conv_cycles_model
from .fifo import StreamFifo
from .mvtu import MVTU
from .params import construction
from .streamops import fork, join_ready
from .window import SlidingWindow

__all__ = ["BinaryUnitHW", "GroupHW", "groupnet_top", "groupnet_memory_files"]


def _round_shift(value, shift):
    return value if shift == 0 else (value + (1 << (shift - 1))) >> shift


def _saturate(m, value, width, name):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    out = Signal(signed(width), name=name)
    m.d.comb += out.eq(Mux(value > hi, hi, Mux(value < lo, lo, value)))
    return out


def _codes(payload, count, width):
    return [payload[k * width:(k + 1) * width].as_signed() for k in range(count)]


class BinaryUnitHW(wiring.Component):
    """One binary unit of :mod:`golden.groupnet` on a ``height x width`` map.

    Parameters
    ----------
    unit : dict
        ``weights`` (``C x 9C`` bits, window order), ``scale`` and ``shift`` (``C`` integers),
        ``dilation``.
    height, width : int
        Map size (the unit keeps it: stride 1, padding = dilation, padding bit +1).
    fmt : golden.groupnet.FixedPoint
    folding : quant.layout.Folding
        Of the ``C x 9C`` MVTU.
    """

    def __init__(self, unit, height, width, fmt, folding, name="unit", reg_every=1):
        with construction(self):
            weights = unit["weights"]
            c = weights.shape[0]
            if weights.shape != (c, 9 * c):
                raise BnnforgeError(f"{name}: weights of shape {weights.shape}, expected "
                                    f"{(c, 9 * c)} for a 3x3 unit")
            for key in ("scale", "shift"):
                if len(unit[key]) != c:
                    raise BnnforgeError(f"{name}: {len(unit[key])} {key} values for {c} channels")
            if fmt.scale_frac < fmt.frac:
                raise BnnforgeError(f"the batch-norm scale needs at least as many fractional "
                                    f"bits ({fmt.scale_frac}) as the activations ({fmt.frac})")
            d = unit["dilation"]
            self.swu = SlidingWindow(height, width, c, 3, 1, d, d, pad_bit=1)
            self.mvtu = MVTU(DenseLayer(f"{name}", weights, None), folding, reg_every)
        self.unit, self.fmt, self.channels, self.name = unit, fmt, c, name
        self.height, self.width = height, width
        self.wfifo = StreamFifo(9 * c, -(-self.swu.latency // self.mvtu.cycles_per_vector) + 2,
                                name=f"{name}_wfifo")
        # The sign bits wait here while the window unit walks through the padding between two
        # frames, so that a slower unit upstream never has to stop.
        hp, wp = self.swu.padded
        self.sfifo = StreamFifo(c, 2 * d * wp + 2 * d + 4, name=f"{name}_sfifo")
        # Every pixel between the fork and the tail: the sign FIFO, the window unit's lead,
        # the windows in the FIFO and in the MVTU, and the output register.
        self.rfifo = StreamFifo(c * fmt.width,
                                self.sfifo.depth + self.swu.latency + self.wfifo.depth + 8,
                                name=f"{name}_rfifo")
        sig = stream.Signature(c * fmt.width)
        super().__init__({"i": In(sig), "o": Out(sig), "busy": Out(1)})

    @property
    def cycles_per_frame(self):
        """``max(padded positions, pixels x MVTU cycles a window)``."""
        return conv_cycles_model(self.swu, self.wfifo, self.mvtu)

    @property
    def cycles_per_vector(self):
        return -(-self.cycles_per_frame // (self.height * self.width))

    @property
    def latency(self):
        """First pixel in to first pixel out, fed a pixel every cycle: sign FIFO, window unit,
        window FIFO, MVTU, tail register."""
        return (self.sfifo.latency + self.swu.latency + self.wfifo.latency + self.mvtu.latency
                + 1)

    def elaborate(self, platform):
        m = Module()
        c, fmt = self.channels, self.fmt
        m.submodules.sfifo, m.submodules.swu = self.sfifo, self.swu
        m.submodules.wfifo, m.submodules.mvtu = self.wfifo, self.mvtu
        m.submodules.rfifo = self.rfifo
        wiring.connect(m, self.sfifo.o, self.swu.i)
        wiring.connect(m, self.swu.o, self.wfifo.i)
        wiring.connect(m, self.wfifo.o, self.mvtu.i)
        codes = _codes(self.i.payload, c, fmt.width)
        m.d.comb += [self.sfifo.i.payload.eq(Cat(*[~x[-1] for x in codes])),
                     self.rfifo.i.payload.eq(self.i.payload), self.busy.eq(self.mvtu.busy)]
        fork(m, self.i, [(self.sfifo.i.valid, self.sfifo.i.ready),
                         (self.rfifo.i.valid, self.rfifo.i.ready)], name="in")

        n = 9 * c
        pw = bits_for(n)
        popcounts = [self.mvtu.o.payload[k * pw:(k + 1) * pw] for k in range(c)]
        residual = _codes(self.rfifo.o.payload, c, fmt.width)
        outs = []
        for k in range(c):
            dot = Signal(signed(pw + 2), name=f"dot{k}")
            m.d.comb += dot.eq(popcounts[k] * 2 - n)
            relu = Mux(dot < 0, 0, dot)
            scale = Const(int(self.unit["scale"][k]), signed(bits_for(abs(int(self.unit["scale"][k]))) + 1))
            shift = int(self.unit["shift"][k])
            total = residual[k] + shift + _round_shift(scale * relu, fmt.scale_frac - fmt.frac)
            outs.append(_saturate(m, total, fmt.width, f"out{k}"))

        out_free = ~self.o.valid | self.o.ready
        fire = self.mvtu.o.valid & self.rfifo.o.valid & out_free
        join_ready(m, [self.mvtu.o, self.rfifo.o], fire)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(fire):
            m.d.sync += [self.o.payload.eq(Cat(*outs)), self.o.valid.eq(1)]
        return m


class GroupHW(wiring.Component):
    """The K bases of one Group-Net group and their lambda-weighted sum.

    Input: ``Y`` codes, or with a soft connection (``group["gate"]`` set) ``Cat(Y, y_1..y_K)``
    of the previous group. Output: ``Y``, or ``Cat(Y, y_1..y_K)`` when ``emit_bases`` (the next
    group has a soft connection).

    Parameters
    ----------
    group : dict
        ``units`` (per base, the list of unit dicts), ``lambdas`` (K integers), ``gate``
        (integer or None).
    foldings : list of quant.layout.Folding
        One per unit position in the group, shared by the bases.
    """

    def __init__(self, group, height, width, fmt, foldings, emit_bases=False, name="group",
                 reg_every=1):
        with construction(self):
            bases = group["units"]
            k_count = len(bases)
            if not 1 <= k_count <= 8:
                raise BnnforgeError(f"{name}: {k_count} bases; Group-Net takes 1 to 8")
            if len(group["lambdas"]) != k_count:
                raise BnnforgeError(f"{name}: {len(group['lambdas'])} lambdas for {k_count} "
                                    f"bases")
            if len(foldings) != len(bases[0]):
                raise BnnforgeError(f"{name}: {len(foldings)} foldings for {len(bases[0])} "
                                    f"units a base")
            self.units = [[BinaryUnitHW(u, height, width, fmt, foldings[j],
                                        name=f"{name}_b{k}_u{j}", reg_every=reg_every)
                           for j, u in enumerate(base)] for k, base in enumerate(bases)]
        self.group, self.fmt, self.name = group, fmt, name
        self.bases, self.emit_bases = k_count, emit_bases
        self.channels = self.units[0][0].channels
        self.height, self.width = height, width
        w = self.channels * fmt.width
        self.gated = group["gate"] is not None
        super().__init__({"i": In(stream.Signature(w * (k_count + 1 if self.gated else 1))),
                          "o": Out(stream.Signature(w * (k_count + 1 if emit_bases else 1))),
                          "busy": Out(1)})

    @property
    def cycles_per_frame(self):
        """The bases run in parallel: the slowest unit of any base sets the pace."""
        return max(u.cycles_per_frame for base in self.units for u in base)

    @property
    def cycles_per_vector(self):
        return max(u.cycles_per_vector for base in self.units for u in base)

    latency = None
    """Not modelled: after the first unit, pixels arrive at the previous unit's pace, so the
    first output depends on every unit's rate (measured in simulation instead)."""

    def elaborate(self, platform):
        m = Module()
        fmt, c, k_count = self.fmt, self.channels, self.bases
        w = c * fmt.width
        for base in self.units:
            for u in base:
                m.submodules[u.name] = u
            for a, b in zip(base[:-1], base[1:]):
                wiring.connect(m, a.o, b.i)
        firsts = [base[0] for base in self.units]
        lasts = [base[-1] for base in self.units]
        m.d.comb += self.busy.eq(lasts[0].busy)

        # Inputs: Y for every base, or the soft connection's mix.
        y_prev = _codes(self.i.payload[:w], c, fmt.width)
        for k, first in enumerate(firsts):
            if self.gated:
                own = _codes(self.i.payload[(k + 1) * w:(k + 2) * w], c, fmt.width)
                g = int(self.group["gate"])
                mixed = [_saturate(m, _round_shift(g * a + ((1 << fmt.gate_frac) - g) * b,
                                                   fmt.gate_frac), fmt.width, f"mix{k}_{ch}")
                         for ch, (a, b) in enumerate(zip(own, y_prev))]
                m.d.comb += first.i.payload.eq(Cat(*mixed))
            else:
                m.d.comb += first.i.payload.eq(self.i.payload[:w])
        fork(m, self.i, [(f.i.valid, f.i.ready) for f in firsts], name="bases")

        # Output: the lambda-weighted sum of the bases.
        ys = [_codes(last.o.payload, c, fmt.width) for last in lasts]
        total = []
        for ch in range(c):
            acc = sum(int(self.group["lambdas"][k]) * ys[k][ch] for k in range(k_count))
            total.append(_saturate(m, _round_shift(acc, fmt.lambda_frac), fmt.width, f"y{ch}"))
        out_free = ~self.o.valid | self.o.ready
        all_valid = lasts[0].o.valid
        for last in lasts[1:]:
            all_valid = all_valid & last.o.valid
        fire = all_valid & out_free
        join_ready(m, [last.o for last in lasts], fire)
        payload = Cat(*total)
        if self.emit_bases:
            payload = Cat(payload, *[last.o.payload for last in lasts])
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(fire):
            m.d.sync += [self.o.payload.eq(payload), self.o.valid.eq(1)]
        return m


def groupnet_top(params, height, width, foldings, reg_every=1):
    """The binary part of a Group-Net behind AXI4-Stream ports: stem codes in (one pixel a
    transfer, channels packed), the last group's ``Y`` out (one channel a byte-aligned lane),
    ``tlast`` on each frame's last pixel.

    ``foldings[g][j]`` is the folding of unit ``j`` of group ``g`` (shared by the bases).
    """
    from .axis import AxisTop

    groups, fmt = params["groups"], params["format"]
    blocks = []
    for g, group in enumerate(groups):
        emit = g + 1 < len(groups) and groups[g + 1]["gate"] is not None
        blocks.append(GroupHW(group, height, width, fmt, foldings[g], emit, name=f"g{g}",
                              reg_every=reg_every))
    return AxisTop(blocks, element_width=fmt.width, frame_outputs=height * width)


def groupnet_memory_files(params, foldings):
    """``{file: text}`` of every weight memory of :func:`groupnet_top`."""
    from quant.layout import memory_files

    files = {}
    for g, group in enumerate(params["groups"]):
        for k, base in enumerate(group["units"]):
            for j, unit in enumerate(base):
                layer = DenseLayer(f"g{g}_b{k}_u{j}", unit["weights"], None)
                files.update(memory_files(layer, foldings[g][j]))
    return files

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

import numpy as np
from amaranth import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.bits import bits_for
from quant.bitstream import DenseLayer
from quant.errors import BnnforgeError
from quant.fixed import round_shift, saturate
from quant.layout import Folding
from .conv import conv_cycles_model
from .fifo import StreamFifo
from .mvtu import MVTU
from .params import construction
from .streamops import fork, join_ready
from .window import SlidingWindow
from .block import StreamBlock

__all__ = ["BinaryUnitHW", "GroupHW", "groupnet_top", "groupnet_memory_files", "pixel_layout"]


def _saturate(m, value, width, name):
    out = Signal(signed(width), name=name)
    m.d.comb += out.eq(saturate(value, width))
    return out


def pixel_layout(channels, width):
    """A pixel of fixed-point codes on a Group-Net stream: channel ``k`` is element ``k``, a
    signed ``width``-bit code, channel 0 lowest (:func:`sim.vectors.pack_pixels` packs it)."""
    return data.ArrayLayout(signed(width), channels)


def _codes(payload, count, width):
    """The signed codes of a pixel payload, through :func:`pixel_layout`."""
    view = pixel_layout(count, width)(payload)
    return [view[k] for k in range(count)]


class PairSum(wiring.Component):
    """Sums of each 2x2 block of a ``height x width`` map in raster order: pixels of ``C``
    ``width``-bit codes in, ``(height/2)(width/2)`` pixels of ``C`` codes ``width + 2`` bits
    wide out (a shortcut's average pool before its 1x1, the 1/4 folded into the weights).
    An even row's pairs are kept in a row of partial sums, completed by the odd row."""

    def __init__(self, channels, height, width, code_width, name="pool"):
        with construction(self):
            if height % 2 or width % 2:
                raise BnnforgeError(f"{name}: a 2x2 pool needs an even map, not "
                                    f"{height}x{width}")
        self.channels, self.height, self.width, self.code_width = (channels, height, width,
                                                                   code_width)
        self.name = name
        super().__init__({"i": In(stream.Signature(channels * code_width)),
                          "o": Out(stream.Signature(channels * (code_width + 2)))})

    def elaborate(self, platform):
        m = Module()
        c, w, cw = self.channels, self.width, self.code_width
        x, y = Signal(range(w)), Signal(range(self.height))
        row = [[Signal(signed(cw + 2), name=f"part{j}_{k}") for k in range(c)]
               for j in range(w // 2)]
        codes = _codes(self.i.payload, c, cw)
        j = x[1:]
        part = [Signal(signed(cw + 2), name=f"cur{k}") for k in range(c)]
        for k in range(c):
            m.d.comb += part[k].eq(Array(r[k] for r in row)[j])
        out_free = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(out_free)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        sums = [Signal(signed(cw + 2), name=f"sum{k}") for k in range(c)]
        m.d.comb += [sums[k].eq(part[k] + codes[k]) for k in range(c)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += x.eq(Mux(x == w - 1, 0, x + 1))
            with m.If(x == w - 1):
                m.d.sync += y.eq(Mux(y == self.height - 1, 0, y + 1))
            with m.Switch(j):
                for jj in range(w // 2):
                    with m.Case(jj):
                        with m.If(~y[0] & ~x[0]):
                            m.d.sync += [row[jj][k].eq(codes[k]) for k in range(c)]
                        with m.Elif(~(y[0] & x[0])):
                            m.d.sync += [row[jj][k].eq(sums[k]) for k in range(c)]
            with m.If(y[0] & x[0]):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(Cat(*sums))]
        return m


def _shortcut_linear(units, cin, fmt, cycles, name):
    """A :class:`hw.sparse.site.SiteLinear` computing the shortcuts of ``units`` (their
    weights stacked) on inputs of ``fmt.width + 2`` bits, folded for at most ``cycles`` cycles
    a pixel; its outputs saturate at ``width + 2`` bits (the unit's tail saturates again at
    ``width``: the same as saturating once)."""
    from types import SimpleNamespace

    from hw.folding import choose_for_target
    from hw.sparse.site import SiteLinear

    wts = np.concatenate([np.asarray(u["shortcut"]["weights"], dtype=np.int64) for u in units])
    bias = np.concatenate([np.asarray(u["shortcut"]["bias"], dtype=np.int64) for u in units])
    mant = max(2, int(np.abs(wts).max(initial=1)).bit_length() + 1)
    folding = choose_for_target({name: (wts.shape[0], cin)}, max(1, cycles))[name]
    lfmt = SimpleNamespace(width=fmt.width + 2, mant_width=mant)
    return SiteLinear(wts, bias, fmt.scale_frac, lfmt, folding, name=name)


class BinaryUnitHW(wiring.Component):
    """Binary units of :mod:`golden.groupnet` that read the same input, on a
    ``height x width`` map: one unit, or the first units of K bases that share their input
    (their weights side by side in one MVTU of ``K * C`` rows behind one window unit).

    Parameters
    ----------
    units : dict or list of dict
        Each ``weights`` (``C x 9C`` bits, window order), ``scale`` and ``shift`` (``C``
        integers), ``dilation`` and ``act`` (the same for all). With K-bit activations
        (``act``), the fork computes each channel's code ``q`` (:func:`golden.groupnet.
        act_codes`), the window unit carries ``C K`` bits a pixel padded with 0, and the MVTU
        takes ``K``-bit inputs (a popcount tree a bit plane, :class:`hw.mvtu.MVTU`).
    height, width : int
        Map size (a unit keeps it: stride 1, padding = dilation, padding bit +1).
    fmt : golden.groupnet.FixedPoint
    folding : quant.layout.Folding
        Of the ``K C x 9C`` MVTU.

    Members
    -------
    i : In(stream.Signature(C * fmt.width))
    o : Out(stream.Signature(K * C * fmt.width))
        ``Cat`` of the K units' outputs.
    """

    def __init__(self, units, height, width, fmt, folding, name="unit", reg_every=1,
                 family=None):
        units = [units] if isinstance(units, dict) else list(units)
        with construction(self):
            c, cols = units[0]["weights"].shape
            cin = cols // 9
            d = units[0]["dilation"]
            stride = units[0].get("stride", 1)
            for k, unit in enumerate(units):
                if unit["weights"].shape != (c, 9 * cin) or cols % 9:
                    raise BnnforgeError(f"{name}: weights of shape {unit['weights'].shape}, "
                                        f"expected {(c, 9 * cin)} for a 3x3 unit")
                for key in ("scale", "shift"):
                    if len(unit[key]) != c:
                        raise BnnforgeError(f"{name}: {len(unit[key])} {key} values for {c} "
                                            f"channels")
                if unit["dilation"] != d:
                    raise BnnforgeError(f"{name}: units that share a window unit need one "
                                        f"dilation, not {d} and {unit['dilation']}")
                if unit.get("act") != units[0].get("act"):
                    raise BnnforgeError(f"{name}: units that share a window unit need the "
                                        f"same activations, not {units[0].get('act')} and "
                                        f"{unit.get('act')}")
                if unit.get("stride", 1) != stride:
                    raise BnnforgeError(f"{name}: units that share a window unit need one "
                                        f"stride, not {stride} and {unit.get('stride', 1)}")
                if (unit.get("shortcut") is None) != (stride == 1 and cin == c):
                    raise BnnforgeError(f"{name}: a unit with stride {stride} and {cin} -> {c} "
                                        f"channels needs "
                                        f"{'a' if stride != 1 or cin != c else 'no'} "
                                        f"down-sampling shortcut")
            if fmt.scale_frac < fmt.frac:
                raise BnnforgeError(f"the batch-norm scale needs at least as many fractional "
                                    f"bits ({fmt.scale_frac}) as the activations ({fmt.frac})")
            self.act = units[0].get("act")
            b = self.act["bits"] if self.act else 1
            self.swu = (SlidingWindow(height, width, cin * b, 3, stride, d, d, pad_pixel=0)
                        if self.act else
                        SlidingWindow(height, width, cin, 3, stride, d, d, pad_bit=1))
            weights = np.concatenate([u["weights"] for u in units])
            self.mvtu = MVTU(DenseLayer(f"{name}", weights, None, input_bits=b), folding,
                             reg_every, family)
            self.shortcut = units[0].get("shortcut") is not None
            self.pool = self.linear = None
            if self.shortcut:
                if stride == 2:
                    self.pool = PairSum(cin, height, width, fmt.width, name=f"{name}_pool")
                self.linear = _shortcut_linear(units, cin, fmt, self.mvtu.cycles_per_vector,
                                               f"{name}_shortcut")
        self.act_bits, self.stride, self.cin = b, stride, cin
        self.units, self.fmt, self.channels, self.name = units, fmt, c, name
        self.height, self.width = height, width
        self.out_size = self.swu.out_size
        self.wfifo = StreamFifo(9 * cin * b,
                                -(-self.swu.latency // self.mvtu.cycles_per_vector) + 2,
                                name=f"{name}_wfifo")
        # The sign bits wait here while the window unit walks through the padding between two
        # frames, so that a slower unit upstream never has to stop.
        hp, wp = self.swu.padded
        self.sfifo = StreamFifo(cin * b, 2 * d * wp + 2 * d + 4, name=f"{name}_sfifo")
        # Every pixel between the fork and the tail: the sign FIFO, the window unit's lead,
        # the windows in the FIFO and in the MVTU, and the output register (a shortcut's
        # outputs: fewer, the same bound).
        rwidth = (len(units) * c * (fmt.width + 2)) if self.shortcut else c * fmt.width
        self.rfifo = StreamFifo(rwidth,
                                self.sfifo.depth + self.swu.latency + self.wfifo.depth + 8,
                                name=f"{name}_rfifo")
        super().__init__({"i": In(stream.Signature(cin * fmt.width)),
                          "o": Out(stream.Signature(len(units) * c * fmt.width)),
                          "busy": Out(1)})

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
        window FIFO, MVTU, tail register (a unit with a shortcut: not modelled, None)."""
        if self.shortcut:
            return None
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
        codes = _codes(self.i.payload, self.cin, fmt.width)
        if self.act:
            # K-bit activations: q = clip(round_shift(x * mult, frac + act frac), 0, 2^K - 1).
            top = (1 << self.act_bits) - 1
            qs = []
            for k, x in enumerate(codes):
                v = Signal(signed(fmt.width + bits_for(self.act["mult"]) + 1), name=f"q{k}_v")
                m.d.comb += v.eq(round_shift(x * int(self.act["mult"]),
                                             fmt.frac + self.act["frac"]))
                q = Signal(self.act_bits, name=f"q{k}")
                m.d.comb += q.eq(Mux(v < 0, 0, Mux(v > top, top, v[:self.act_bits])))
                qs.append(q)
            m.d.comb += self.sfifo.i.payload.eq(Cat(*qs))
        else:
            m.d.comb += self.sfifo.i.payload.eq(Cat(*[~x[-1] for x in codes]))
        m.d.comb += self.busy.eq(self.mvtu.busy)
        if self.shortcut:
            # The residual is the down-sampling shortcut: 2x2 sums (stride 2), the real 1x1.
            m.submodules.linear = self.linear
            if self.pool is not None:
                m.submodules.pool = self.pool
                wiring.connect(m, self.pool.o, self.linear.i)
                entry = self.pool.i
                m.d.comb += entry.payload.eq(self.i.payload)
            else:
                entry = self.linear.i
                wide = [Signal(signed(fmt.width + 2), name=f"wide{k}") for k in range(self.cin)]
                m.d.comb += [wide[k].eq(x) for k, x in enumerate(codes)]
                m.d.comb += entry.payload.eq(Cat(*wide))
            wiring.connect(m, self.linear.o, self.rfifo.i)
            fork(m, self.i, [(self.sfifo.i.valid, self.sfifo.i.ready),
                             (entry.valid, entry.ready)], name="in")
        else:
            m.d.comb += self.rfifo.i.payload.eq(self.i.payload)
            fork(m, self.i, [(self.sfifo.i.valid, self.sfifo.i.ready),
                             (self.rfifo.i.valid, self.rfifo.i.ready)], name="in")

        n = 9 * self.cin
        pw = self.mvtu.element_width
        popcounts = [self.mvtu.o.payload[k * pw:(k + 1) * pw] for k in range(len(self.units) * c)]
        top = (1 << self.act_bits) - 1
        outs = []
        if self.shortcut:
            wide_out = _codes(self.rfifo.o.payload, len(self.units) * c, fmt.width + 2)
        for b, unit in enumerate(self.units):
            if self.shortcut:
                residual = [_saturate(m, r, fmt.width, f"res{b}_{k}")
                            for k, r in enumerate(wide_out[b * c:(b + 1) * c])]
            else:
                residual = _codes(self.rfifo.o.payload, c, fmt.width)
            for k in range(c):
                dot = Signal(signed(pw + 2), name=f"dot{b}_{k}")
                if self.act:
                    # S = sum (w ? q : top - q) = sum w q + top x (the row's zero weights).
                    zeros = n - int(np.asarray(unit["weights"][k]).sum())
                    m.d.comb += dot.eq(popcounts[b * c + k] - top * zeros)
                else:
                    m.d.comb += dot.eq(popcounts[b * c + k] * 2 - n)
                relu = Mux(dot < 0, 0, dot)
                a = int(unit["scale"][k])
                scale = Const(a, signed(bits_for(abs(a)) + 1))
                total = (residual[k] + int(unit["shift"][k])
                         + round_shift(scale * relu, fmt.scale_frac - fmt.frac))
                outs.append(_saturate(m, total, fmt.width, f"out{b}_{k}"))

        out_free = ~self.o.valid | self.o.ready
        fire = self.mvtu.o.valid & self.rfifo.o.valid & out_free
        join_ready(m, [self.mvtu.o, self.rfifo.o], fire)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(fire):
            m.d.sync += [self.o.payload.eq(Cat(*outs)), self.o.valid.eq(1)]
        return m


class GroupHW(StreamBlock):
    """The K bases of one Group-Net group and their lambda-weighted sum.

    Input: ``Y`` codes, or with a soft connection (``group["gate"]`` set) ``Cat(Y, y_1..y_K)``
    of the previous group. Output: ``Y``, or ``Cat(Y, y_1..y_K)`` when ``emit_bases`` (the next
    group has a soft connection).

    With a hard connection every base's first unit reads the same input bits: when their
    dilations agree they share one window unit and one MVTU with their weights side by side
    (``K * C`` rows, ``K`` times the PEs, the same cycles). Otherwise, and after the first
    unit, each base has its own units; all bases work in parallel.

    Parameters
    ----------
    group : dict
        ``units`` (per base, the list of unit dicts), ``lambdas`` (K integers), ``gate``
        (integer or None).
    foldings : list of quant.layout.Folding
        One per unit position in the group, for one base (a shared first unit gets K times
        the PEs).
    """

    def __init__(self, group, height, width, fmt, foldings, emit_bases=False, name="group",
                 reg_every=1, family=None):
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
            self.gated = group["gate"] is not None
            firsts = [base[0] for base in bases]
            self.shared = (k_count > 1 and not self.gated
                           and len({u["dilation"] for u in firsts}) == 1)
            if self.shared:
                f = foldings[0]
                self.head = [BinaryUnitHW(firsts, height, width, fmt,
                                          Folding(f.pe * k_count, f.simd), name=f"{name}_u0",
                                          reg_every=reg_every, family=family)]
            else:
                self.head = [BinaryUnitHW(u, height, width, fmt, foldings[0],
                                          name=f"{name}_b{k}_u0", reg_every=reg_every,
                                          family=family)
                             for k, u in enumerate(firsts)]
            # After the first unit each unit sees the map its predecessor leaves (a stride-2
            # unit halves it).
            self.rest = []
            for k, base in enumerate(bases):
                size, chain = self.head[0].out_size, []
                for j, u in enumerate(base):
                    if j == 0:
                        continue
                    unit = BinaryUnitHW(u, size[0], size[1], fmt, foldings[j],
                                        name=f"{name}_b{k}_u{j}", reg_every=reg_every,
                                        family=family)
                    chain.append(unit)
                    size = unit.out_size
                self.rest.append(chain)
        self.group, self.fmt, self.name = group, fmt, name
        self.bases, self.emit_bases = k_count, emit_bases
        last = self.rest[0][-1] if self.rest[0] else self.head[0]
        self.channels, self.cin = last.channels, self.head[0].cin
        self.height, self.width = height, width
        self.out_size = last.out_size
        win, wout = self.cin * fmt.width, self.channels * fmt.width
        super().__init__({"i": In(stream.Signature(win * (k_count + 1 if self.gated else 1))),
                          "o": Out(stream.Signature(wout * (k_count + 1 if emit_bases else 1))),
                          "busy": Out(1)})

    @property
    def hardware_units(self):
        return self.head + [u for base in self.rest for u in base]

    def block_ram_memories(self):
        return [f for u in self.hardware_units for f in u.mvtu.block_ram_memories()]

    @property
    def cycles_per_frame(self):
        """The bases run in parallel: the slowest unit of any base sets the pace."""
        return max(u.cycles_per_frame for u in self.hardware_units)

    @property
    def cycles_per_vector(self):
        return max(u.cycles_per_vector for u in self.hardware_units)

    latency = None
    """Not modelled: after the first unit, pixels arrive at the previous unit's pace, so the
    first output depends on every unit's rate (measured in simulation instead)."""

    def elaborate(self, platform):
        m = Module()
        fmt, c, k_count = self.fmt, self.channels, self.bases
        w, ci = c * fmt.width, self.cin
        wi = ci * fmt.width
        for u in self.hardware_units:
            m.submodules[u.name] = u
        for base in self.rest:
            for a, b in zip(base[:-1], base[1:]):
                wiring.connect(m, a.o, b.i)
        m.d.comb += self.busy.eq(self.head[0].busy)

        # Group input to the first units: Y, or each base's soft-connection mix.
        y_prev = _codes(self.i.payload[:wi], ci, fmt.width)
        for k, first in enumerate(self.head):
            if self.gated:
                own = _codes(self.i.payload[(k + 1) * wi:(k + 2) * wi], ci, fmt.width)
                g = int(self.group["gate"])
                mixed = [_saturate(m, round_shift(g * a + ((1 << fmt.gate_frac) - g) * b,
                                                   fmt.gate_frac), fmt.width, f"mix{k}_{ch}")
                         for ch, (a, b) in enumerate(zip(own, y_prev))]
                m.d.comb += first.i.payload.eq(Cat(*mixed))
            else:
                m.d.comb += first.i.payload.eq(self.i.payload[:wi])
        fork(m, self.i, [(f.i.valid, f.i.ready) for f in self.head], name="bases")

        # From the first units to the rest of each base.
        if self.shared and self.rest[0]:
            head = self.head[0]
            for k, base in enumerate(self.rest):
                m.d.comb += base[0].i.payload.eq(head.o.payload[k * w:(k + 1) * w])
            fork(m, head.o, [(base[0].i.valid, base[0].i.ready) for base in self.rest],
                 name="shared")
        elif not self.shared:
            for first, base in zip(self.head, self.rest):
                if base:
                    wiring.connect(m, first.o, base[0].i)

        # The last stream of each base (one shared stream when the group is a shared unit).
        if self.shared and not self.rest[0]:
            sources = [self.head[0].o]
            ys = [_codes(self.head[0].o.payload[k * w:(k + 1) * w], c, fmt.width)
                  for k in range(k_count)]
            payloads = [self.head[0].o.payload[k * w:(k + 1) * w] for k in range(k_count)]
        else:
            if self.shared:
                lasts = [base[-1] for base in self.rest]
            else:
                lasts = [base[-1] if base else first for first, base in zip(self.head, self.rest)]
            sources = [last.o for last in lasts]
            ys = [_codes(last.o.payload, c, fmt.width) for last in lasts]
            payloads = [last.o.payload for last in lasts]

        total = []
        for ch in range(c):
            acc = sum(int(self.group["lambdas"][k]) * ys[k][ch] for k in range(k_count))
            total.append(_saturate(m, round_shift(acc, fmt.lambda_frac), fmt.width, f"y{ch}"))
        out_free = ~self.o.valid | self.o.ready
        all_valid = sources[0].valid
        for src in sources[1:]:
            all_valid = all_valid & src.valid
        fire = all_valid & out_free
        join_ready(m, sources, fire)
        payload = Cat(*total)
        if self.emit_bases:
            payload = Cat(payload, *payloads)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(fire):
            m.d.sync += [self.o.payload.eq(payload), self.o.valid.eq(1)]
        return m


def groupnet_top(params, height, width, foldings, reg_every=1, family=None):
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
                              reg_every=reg_every, family=family))
        height, width = blocks[-1].out_size
    return AxisTop(blocks, element_width=fmt.width, frame_outputs=height * width)


def groupnet_memory_files(top):
    """``{file: text}`` of every weight memory of a :func:`groupnet_top` design."""
    from quant.layout import memory_files

    files = {}
    for group in top.blocks:
        for unit in group.hardware_units:
            files.update(memory_files(unit.mvtu.layer, unit.mvtu.layout_folding))
    return files

"""Sliding-window unit: a stream of feature-map pixels in, a stream of convolution windows out."""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream
from amaranth.lib.wiring import In, Out

from quant.errors import BnnforgeError
from .params import check_positive_int, construction
from .block import StreamBlock

__all__ = ["SlidingWindow"]


class SlidingWindow(StreamBlock):
    """Convolution windows of a binary feature map, one window a transfer.

    Pixels arrive in raster order (row by row, left to right), one pixel of ``channels`` bits a
    transfer, ``height x width`` pixels a frame, frame after frame. The unit pads the map with
    ``padding`` pixels of ``pad_bit`` on every side (1 means +1, 0 means -1), and emits the
    window of every output position, in raster order, as ``kernel * kernel * channels`` bits:
    element ``(i * kernel + j) * channels + c`` is channel ``c`` of kernel row ``i``, column
    ``j`` (the order of :func:`golden.conv.weights_hwc`). Kernel taps are ``dilation`` pixels
    apart; windows are ``stride`` pixels apart.

    The unit holds ``(kernel - 1) * dilation`` line buffers of ``width + 2 * padding`` pixels
    (one memory each) and the last ``(kernel - 1) * dilation`` columns of the tapped rows in
    registers. It takes one padded position a cycle; padding positions need no input, so a
    frame takes ``(height + 2 p) * (width + 2 p)`` cycles when the source and sink keep up.

    ``pad_pixel`` (an integer of ``channels`` bits) replaces the padded pixel of ``pad_bit``s,
    for a map of multi-bit values (``channels`` is then the bits of a pixel).

    Raises
    ------
    BnnforgeError
        On a non-positive size, a kernel extent larger than the padded map, or padding beyond
        the kernel's reach (windows made only of padding).
    """

    def __init__(self, height, width, channels, kernel, stride=1, dilation=1, padding=0,
                 pad_bit=1, pad_pixel=None):
        with construction(self):
            for name, value in (("height", height), ("width", width), ("channels", channels),
                                ("kernel", kernel), ("stride", stride), ("dilation", dilation)):
                check_positive_int(name, value)
            if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
                raise BnnforgeError(f"padding must be a non-negative integer, not {padding!r}")
            if pad_bit not in (0, 1):
                raise BnnforgeError(f"pad_bit must be 0 (-1) or 1 (+1), not {pad_bit!r}")
            if pad_pixel is not None and not (isinstance(pad_pixel, int)
                                              and 0 <= pad_pixel < 1 << channels):
                raise BnnforgeError(f"pad_pixel must be an integer of {channels} bits, not "
                                    f"{pad_pixel!r}")
            extent = (kernel - 1) * dilation + 1
            if extent > min(height, width) + 2 * padding:
                raise BnnforgeError(
                    f"kernel extent {extent} (kernel {kernel}, dilation {dilation}) exceeds the "
                    f"padded {height + 2 * padding}x{width + 2 * padding} map")
            if padding > extent - 1:
                raise BnnforgeError(
                    f"padding {padding} exceeds the reach of kernel {kernel} at dilation "
                    f"{dilation} ({extent - 1}): some windows would hold only padding")
        self.height, self.width, self.channels = height, width, channels
        self.kernel, self.stride, self.dilation = kernel, stride, dilation
        self.padding, self.pad_bit = padding, pad_bit
        # The padded pixel: every bit ``pad_bit``, unless given whole (a multi-bit map's pad
        # value in every channel).
        self.pad_pixel = ((1 << channels) - 1 if pad_bit else 0) if pad_pixel is None else pad_pixel
        self.extent = extent
        super().__init__({"i": In(stream.Signature(channels)),
                          "o": Out(stream.Signature(kernel * kernel * channels)),
                          "busy": Out(1)})

    @property
    def padded(self):
        return self.height + 2 * self.padding, self.width + 2 * self.padding

    @property
    def out_size(self):
        """``(Ho, Wo)``: ``(padded - extent) // stride + 1`` in each dimension."""
        hp, wp = self.padded
        return ((hp - self.extent) // self.stride + 1, (wp - self.extent) // self.stride + 1)

    @property
    def cycles_per_frame(self):
        """Padded positions of a frame: one a cycle."""
        hp, wp = self.padded
        return hp * wp

    cycles_per_vector = 1

    @property
    def latency(self):
        """Cycles from the first pixel of a frame to its first window, with a source that
        delivers a pixel every cycle: the padded positions from the first pixel to the first
        window's last one, plus the output register."""
        wp = self.padded[1]
        first_pixel = self.padding * wp + self.padding
        first_window_end = (self.extent - 1) * wp + (self.extent - 1)
        return first_window_end - first_pixel + 1

    def _emit_mask(self, size):
        mask = 0
        for pos in range(size):
            start = pos - (self.extent - 1)
            if start >= 0 and start % self.stride == 0 and start // self.stride < \
                    (size - self.extent) // self.stride + 1:
                mask |= 1 << pos
        return Const(mask, size)

    def elaborate(self, platform):
        m = Module()
        C, K, D, P, E = self.channels, self.kernel, self.dilation, self.padding, self.extent
        hp, wp = self.padded

        y, x = Signal(range(hp)), Signal(range(wp))
        interior = Signal()
        m.d.comb += interior.eq((y >= P) & (y < P + self.height) & (x >= P) & (x < P + self.width))
        emit = Signal()
        m.d.comb += emit.eq(self._emit_mask(hp).bit_select(y, 1) &
                            self._emit_mask(wp).bit_select(x, 1))
        out_free = ~self.o.valid | self.o.ready
        advance = Signal()
        m.d.comb += [
            advance.eq((~interior | self.i.valid) & (~emit | out_free)),
            self.i.ready.eq(interior & (~emit | out_free)),
            self.busy.eq(advance),
        ]
        pad = Const(self.pad_pixel, C)
        pixel = Signal(C)
        m.d.comb += pixel.eq(Mux(interior, self.i.payload, pad))

        x_next = Signal.like(x)
        last_x = x == wp - 1
        m.d.comb += x_next.eq(Mux(advance, Mux(last_x, 0, x + 1), x))
        with m.If(advance):
            m.d.sync += x.eq(x_next)
            with m.If(last_x):
                m.d.sync += y.eq(Mux(y == hp - 1, 0, y + 1))

        # Column of the last E rows at column x: rows[r] is pixel (y - r, x).
        rows = [pixel]
        for k in range(E - 1):
            mem = memory.Memory(shape=C, depth=wp, init=[])
            m.submodules[f"line{k}"] = mem
            wr = mem.write_port()
            rd = mem.read_port(transparent_for=(wr,))
            m.d.comb += [rd.addr.eq(x_next), rd.en.eq(1),
                         wr.addr.eq(x), wr.data.eq(rows[-1]), wr.en.eq(advance)]
            rows.append(rd.data)
        # Kernel row i sits at depth (E - 1) - i * D.
        column = Cat(*[rows[(E - 1) - i * D] for i in range(K)])
        # Earlier columns: ages 1 .. E - 1.
        ages = [column]
        for a in range(1, E):
            reg = Signal(K * C, name=f"col{a}")
            with m.If(advance):
                m.d.sync += reg.eq(ages[-1])
            ages.append(reg)
        window = Cat(*[ages[(E - 1) - j * D][i * C:(i + 1) * C]
                       for i in range(K) for j in range(K)])

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(advance & emit):
            m.d.sync += [self.o.payload.eq(window), self.o.valid.eq(1)]
        return m

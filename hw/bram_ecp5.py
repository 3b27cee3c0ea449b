"""A read-only memory in ECP5 block RAM with the block's output register: DP16KD cells
instantiated by hand in pseudo-dual-port 36-bit (or 18-bit) read mode with ``REGMODE = OUTREG``.

Yosys maps inferred memories to DP16KD without the output register, and the block's
clock-to-out then takes most of a 200 MHz cycle before any logic; with the register the read
has two cycles of latency and the path out of the block is short (see DESIGN notes: 150 MHz vs
492 MHz for a lone block in nextpnr's timing model).

Each cell holds 1,024 rows of 18 bits, written as 64 ``INITVAL_xx`` parameters of 16 rows of 20
bits (18 data bits, 2 unused). In 36-bit mode word ``a`` is rows ``2a`` (bits 0-17, on DOA) and
``2a + 1`` (bits 18-35, on DOB) at read address ``ADB[13:5]``; in 18-bit mode it is row ``a``
on DOB at ``ADB[13:4]``: the layout Yosys itself uses when it maps a memory to the cell
(``share/lattice/brams_map_16kd.v``). ``cells="logic"`` builds the same two-stage read from an
Amaranth memory and a register (Amaranth simulation, other families), and
``hw/verilog/dp16kd_sim.v`` is the simulation model of the cell for simulators.
"""

from amaranth import Cat, ClockSignal, Const, Instance, Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from quant.errors import BnnforgeError
from .params import check_positive_int, construction

__all__ = ["BlockRom", "rom_mode", "initvals", "ROWS", "MAX_DEPTH"]

ROWS = 1024
"""18-bit rows of one DP16KD."""
MAX_DEPTH = 1024
"""Deepest memory :class:`BlockRom` builds (18-bit mode); deeper ones are left to Yosys."""


def rom_mode(depth):
    """Read width of the cells for a memory of ``depth`` words: 36 up to 512 words, 18 up to
    1,024; None beyond."""
    if depth <= ROWS // 2:
        return 36
    if depth <= ROWS:
        return 18
    return None


def initvals(words, mode):
    """The 64 ``INITVAL_xx`` values of one cell holding ``words`` (``mode``-bit integers, at
    most ``ROWS * 18 // mode`` of them): ``{"INITVAL_00": int, ...}`` of 320 bits each."""
    rows = [0] * ROWS
    mask = (1 << 18) - 1
    for a, w in enumerate(words):
        if mode == 36:
            rows[2 * a], rows[2 * a + 1] = w & mask, (w >> 18) & mask
        else:
            rows[a] = w & mask
    out = {}
    for k in range(64):
        v = 0
        for i in range(16):
            v |= rows[16 * k + i] << (20 * i)
        out[f"INITVAL_{k:02X}"] = v
    return out


class BlockRom(wiring.Component):
    """``data`` is word ``addr`` of ``init`` two enabled cycles after ``addr`` was presented:
    ``addr`` is sampled when ``en`` is high, and the output register loads when ``en`` is high,
    so the read pipeline stalls with ``en`` like the registers around it.

    Parameters
    ----------
    width : int
        Bits a word (split over ``ceil(width / mode)`` cells side by side).
    depth : int
        Words (at most :data:`MAX_DEPTH`).
    init : list of int
        The words.
    cells : "ecp5" or "logic"
        DP16KD cells (at most :data:`MAX_DEPTH` words), or a memory of any depth that the
        synthesis tool maps as it likes, read into a register.
    name : str
        Name of the memory in the Verilog ("logic" only; ``$readmemh`` files are linked to it).
    """

    latency = 2

    def __init__(self, width, depth, init, cells="ecp5", name="mem"):
        with construction(self):
            check_positive_int("ROM width", width)
            check_positive_int("ROM depth", depth)
            if cells == "ecp5" and rom_mode(depth) is None:
                raise BnnforgeError(f"a block ROM holds at most {MAX_DEPTH} words, not {depth}")
            if len(init) > depth:
                raise BnnforgeError(f"{len(init)} initial words for a ROM of {depth}")
            if cells not in ("ecp5", "logic"):
                raise BnnforgeError(f"cells must be 'ecp5' or 'logic', not {cells!r}")
        self.width, self.depth, self.cells, self.mem_name = width, depth, cells, name
        self.init = [int(w) for w in init] + [0] * (depth - len(init))
        self.mode = rom_mode(depth)
        super().__init__({"addr": In(range(depth)), "en": In(1), "data": Out(width)})

    @property
    def blocks(self):
        """DP16KD cells used."""
        return -(-self.width // self.mode) if self.cells == "ecp5" else 0

    def elaborate(self, platform):
        m = Module()
        if self.cells == "logic":
            mem = memory.Memory(shape=self.width, depth=self.depth, init=self.init)
            m.submodules[self.mem_name] = mem
            rp = mem.read_port()
            m.d.comb += [rp.addr.eq(self.addr), rp.en.eq(self.en)]
            with m.If(self.en):
                m.d.sync += self.data.eq(rp.data)
            return m
        mode = self.mode
        lo_bit = 5 if mode == 36 else 4
        abits = len(self.addr)
        adb = {f"i_ADB{b}": (self.addr[b - lo_bit] if 0 <= b - lo_bit < abits else Const(0))
               for b in range(14)}
        zero18 = {f"i_DI{p}{b}": Const(0) for p in "AB" for b in range(18)}
        ada = {f"i_ADA{b}": Const(0) for b in range(14)}
        for c in range(self.blocks):
            lo = c * mode
            bits = min(mode, self.width - lo)
            words = [(w >> lo) & ((1 << bits) - 1) for w in self.init]
            params = {f"p_{k}": Const(v, 320) for k, v in initvals(words, mode).items()}
            doa, dob = Signal(18, name=f"doa{c}"), Signal(18, name=f"dob{c}")
            m.submodules[f"bram{c}"] = Instance(
                "DP16KD",
                p_DATA_WIDTH_A=mode, p_DATA_WIDTH_B=mode,
                p_REGMODE_A="OUTREG", p_REGMODE_B="OUTREG",
                p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
                **params,
                i_CLKA=ClockSignal(), i_CEA=Const(0), i_OCEA=self.en, i_WEA=Const(0),
                i_RSTA=Const(0), i_CSA0=Const(0), i_CSA1=Const(0), i_CSA2=Const(0),
                i_CLKB=ClockSignal(), i_CEB=self.en, i_OCEB=self.en, i_WEB=Const(0),
                i_RSTB=Const(0), i_CSB0=Const(0), i_CSB1=Const(0), i_CSB2=Const(0),
                **ada, **adb, **zero18,
                **{f"o_DOA{b}": doa[b] for b in range(18)},
                **{f"o_DOB{b}": dob[b] for b in range(18)})
            word = Cat(doa, dob) if mode == 36 else dob
            m.d.comb += self.data[lo:lo + bits].eq(word[:bits])
        return m

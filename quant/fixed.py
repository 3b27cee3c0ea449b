"""Fixed-point arithmetic shared by the golden models and the hardware: one definition of the
rounding and the saturation, applied to NumPy integers (golden) or to Amaranth values (hw).

* :func:`round_shift`: ``floor((v + 2^(s-1)) / 2^s)``, round half up (``v`` itself when
  ``s`` is 0). On integers and on two's complement values alike an arithmetic right shift is a
  floor, so the same expression serves both.
* :func:`saturate`: clamp to the range of a signed ``width``-bit integer.
* :func:`to_fixed`: real values to integers with ``frac`` fractional bits, rounded half up.
"""

import numpy as np

__all__ = ["round_shift", "saturate", "signed_range", "to_fixed"]


def _is_hardware(v):
    return type(v).__module__.startswith("amaranth")


def round_shift(v, shift):
    """``floor((v + 2^(shift-1)) / 2^shift)``: NumPy int64 arrays (or ints) in, int64 out; an
    Amaranth value in, a value out."""
    if not _is_hardware(v):
        v = np.asarray(v, dtype=np.int64)
    if shift == 0:
        return v
    return (v + (1 << (shift - 1))) >> shift


def signed_range(width):
    """``(lo, hi)`` of a signed ``width``-bit integer."""
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


def saturate(v, width):
    """``v`` clamped to a signed ``width``-bit integer: int64 arrays, or an Amaranth value (a
    ``Mux`` chain; the caller sizes the signal it assigns to)."""
    lo, hi = signed_range(width)
    if _is_hardware(v):
        from amaranth import Mux

        return Mux(v > hi, hi, Mux(v < lo, lo, v))
    return np.clip(np.asarray(v, dtype=np.int64), lo, hi)


def to_fixed(x, frac, width=None):
    """Real values to integers with ``frac`` fractional bits, rounded half up (saturated to
    ``width`` bits when given)."""
    v = np.floor(np.asarray(x, dtype=np.float64) * (1 << frac) + 0.5).astype(np.int64)
    return v if width is None else saturate(v, width)

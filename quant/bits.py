"""Bit packing shared by the bitstream, the golden model and the hardware.

Convention (see ``docs/bitstream.md``): a bit 1 means +1 and a bit 0 means -1. Element ``j`` of
a vector is bit ``j % 8`` of byte ``j // 8`` (LSB first), and bit ``j`` of the integer that the
hardware sees on a bus of that vector.
"""

import numpy as np

__all__ = ["pack_bits", "unpack_bits", "bits_to_int", "int_to_bits", "bits_for"]


def bits_for(value):
    """Width of an unsigned field that holds every integer in ``[0, value]`` (at least 1)."""
    if value < 0:
        raise ValueError(f"bits_for needs a non-negative value, not {value}")
    return max(1, int(value).bit_length())


def pack_bits(bits):
    """Pack an array of 0/1 values along its last axis into ``uint8``, LSB first."""
    bits = np.asarray(bits)
    if bits.size and not np.isin(bits, (0, 1)).all():
        raise ValueError("pack_bits takes only 0 and 1")
    return np.packbits(bits.astype(np.uint8), axis=-1, bitorder="little")


def unpack_bits(packed, n):
    """Inverse of :func:`pack_bits`: the first ``n`` bits along the last axis, as ``uint8``."""
    packed = np.asarray(packed, dtype=np.uint8)
    return np.unpackbits(packed, axis=-1, count=n, bitorder="little")


def bits_to_int(bits):
    """A vector of 0/1 as the integer whose bit ``j`` is element ``j``."""
    packed = pack_bits(np.asarray(bits).reshape(-1))
    return int.from_bytes(packed.tobytes(), "little")


def int_to_bits(value, n):
    """Inverse of :func:`bits_to_int`: ``n`` elements of 0/1 as ``uint8``."""
    if value < 0 or value >> n:
        raise ValueError(f"{value:#x} does not fit in {n} bits")
    raw = np.frombuffer(int(value).to_bytes((n + 7) // 8 or 1, "little"), dtype=np.uint8)
    return unpack_bits(raw, n)

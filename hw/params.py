"""Parameter checks for hardware generators."""

import contextlib

from quant.errors import BnnforgeError

__all__ = ["check_positive_int", "check_family", "construction", "unused"]


def check_positive_int(name, value):
    """Raise :class:`~quant.errors.BnnforgeError` unless ``value`` is a positive ``int``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BnnforgeError(f"{name} must be a positive integer, not {value!r}")


def check_family(family):
    """Raise unless ``family`` is a target family bnnforge generates for (None: generic)."""
    if family not in (None, "ecp5", "ice40"):
        raise BnnforgeError(f"unknown FPGA family {family!r}; choose ecp5 or ice40, or none "
                            f"for a generic design")


@contextlib.contextmanager
def construction(component, *parts):
    """Wrap a component's parameter checks: when they reject the parameters, mark the
    half-built component (and ``parts``, components built for it) as deliberately unused so
    that Amaranth does not warn about them (its ``UnusedElaboratable`` check is armed when an
    object is created)."""
    try:
        yield
    except Exception:
        unused(component, *parts)
        raise


def unused(*components):
    """Mark components that were built only to read their sizes (never elaborated) as
    deliberately unused, so that Amaranth does not warn about them."""
    for c in components:
        c._MustUse__silence = True

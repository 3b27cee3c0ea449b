"""Errors that a user can cause and fix, shared by every part of bnnforge.

The command line prints these as one line (no traceback) and exits non-zero; anything else that
escapes is a bug in bnnforge.
"""


class BnnforgeError(ValueError):
    """A problem with the user's input, configuration or environment.

    The message names the problem and, where there is one, what to do about it.
    """


class BitstreamError(BnnforgeError):
    """A weight bitstream that cannot be read: not ours, truncated, corrupt or inconsistent."""


class FoldingError(BnnforgeError):
    """An illegal folding (PE/SIMD) or an unreachable folding target."""


class SimulatorError(BnnforgeError):
    """A simulator that is missing, or a simulation that could not be built or run."""

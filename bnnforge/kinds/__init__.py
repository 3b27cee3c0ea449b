"""Network kinds: one module per kind implementing the same steps
(:data:`bnnforge.kinds.base.STEPS`), one registry, one vocabulary (``mlp``, ``groupnet``,
``bscnet``, ``cnn``). The command line, the flows, checkpoints and the demos find a kind here.

A new kind: write a module with a :class:`~bnnforge.kinds.base.NetworkKind` subclass and add
an instance to :data:`KINDS`.
"""

from quant.errors import BnnforgeError
from .base import STEPS, NetworkKind
from .bscnet import BscNetKind
from .cnn import CnnKind
from .groupnet import GroupNetKind
from .mlp import MlpKind

__all__ = ["KINDS", "NetworkKind", "STEPS", "kind_named", "kind_of", "kind_of_model",
           "register"]

KINDS = {}


def register(kind):
    """Add ``kind`` to the registry after checking that it implements every step."""
    missing = [s for s in STEPS if not callable(getattr(kind, s, None))]
    if missing or not kind.name:
        raise TypeError(f"network kind {kind.name!r} does not implement {', '.join(missing)}")
    KINDS[kind.name] = kind
    return kind


for _kind in (MlpKind(), GroupNetKind(), BscNetKind(), CnnKind()):
    register(_kind)


def kind_named(name):
    """The kind called ``name``."""
    if name not in KINDS:
        raise BnnforgeError(f"unknown network kind {name!r}; choose one of {', '.join(KINDS)}")
    return KINDS[name]


def kind_of(bitstream):
    """The kind of a bitstream."""
    for kind in KINDS.values():
        if kind.bitstream_kind == bitstream.kind:
            return kind
    raise BnnforgeError(f"no network kind handles {bitstream.kind!r} bitstreams")


def kind_of_model(model):
    """The kind of a golden model (its class's ``KIND``)."""
    for kind in KINDS.values():
        if kind.model_kind == getattr(model, "KIND", None):
            return kind
    raise BnnforgeError(f"no network kind handles a {type(model).__name__}")

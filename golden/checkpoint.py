"""Checkpoints of the golden networks: safe to load (``torch.load(weights_only=True)``: tensors
and plain data only, no pickled code) and checked before use.

A checkpoint is a dict ``{"format": "bnnforge-checkpoint", "version": 1, "kind": "mlp" |
"groupnet" | "bscnet", "config": {...}, "input": {...}, "state_dict": {...}}``.
"""

import os
import tempfile
from pathlib import Path

import torch

from quant.errors import BnnforgeError

__all__ = ["save_checkpoint", "load_checkpoint", "model_classes", "CheckpointError"]

FORMAT = "bnnforge-checkpoint"


class CheckpointError(BnnforgeError):
    """A file that is not a checkpoint of ours, or one that is corrupt."""


def model_classes():
    """``{kind: class}`` of the golden networks a checkpoint can hold; each class has ``KIND``
    and a ``config`` dict that rebuilds it as ``cls(**config)``."""
    from .bscnet import BSCNet
    from .groupnet import GroupNet
    from .mlp import BinaryMLP

    return {cls.KIND: cls for cls in (BinaryMLP, GroupNet, BSCNet)}


def save_checkpoint(path, model, input_spec, meta=None):
    """Write ``model`` (a BinaryMLP or GroupNet) with its input description; atomic."""
    if type(model) not in model_classes().values():
        raise BnnforgeError(f"cannot checkpoint a {type(model).__name__}")
    data = {"format": FORMAT, "version": 1, "kind": model.KIND, "config": dict(model.config),
            "input": dict(input_spec), "meta": dict(meta or {}),
            "state_dict": model.state_dict()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        torch.save(data, tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def load_checkpoint(path):
    """``(model, input_spec, meta)`` from a checkpoint; :class:`CheckpointError` names what is
    wrong with a file that is not ours or is corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, weights_only=True, map_location="cpu")
    except Exception:
        raise CheckpointError(f"{path}: not a readable checkpoint; is it a bnnforge "
                              f"checkpoint, complete and uncorrupted?")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a bnnforge checkpoint (no {FORMAT!r} marker)")
    if data.get("version") != 1:
        raise CheckpointError(f"{path}: checkpoint version {data.get('version')!r} is not "
                              f"supported; this bnnforge reads version 1")
    try:
        kind, config = data["kind"], data["config"]
        classes = model_classes()
        if kind not in classes:
            raise CheckpointError(f"{path}: unknown model kind {kind!r}; this bnnforge reads "
                                  f"{', '.join(classes)}")
        model = classes[kind](**config)
        model.load_state_dict(data["state_dict"])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: corrupt checkpoint ({first})")
    return model.eval(), data.get("input", {}), data.get("meta", {})

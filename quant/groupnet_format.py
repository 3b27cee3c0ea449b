"""The Group-Net section of the weight bitstream (see ``docs/bitstream.md``).

A Group-Net spec is plain data: ``format`` (the fixed-point format, a dict), ``height``,
``width``, ``channels``, ``config`` (how the network was built), and ``groups``: each with
``gate`` (integer or None), ``lambdas`` (K integers) and ``units`` (per base, a list of units:
``weights`` ``C x 9C`` bits in window order, ``scale`` and ``shift`` ``C`` integers,
``dilation``, ``act``: None for binary activations, else K-bit activations ``{bits, mult,
frac}``, as :func:`golden.groupnet.act_codes` computes them). Tensors: ``g<g>.b<k>.u<j>.weight`` (packed bits), ``.scale``, ``.shift``
(int32), ``g<g>.lambda`` (int32).
"""

import numpy as np

from .bits import pack_bits, unpack_bits
from .errors import BitstreamError

__all__ = ["validate_groupnet", "groupnet_section", "groupnet_from_section"]

_FORMAT_KEYS = ("width", "frac", "scale_frac", "lambda_frac", "gate_frac")
_INT32 = (-(1 << 31), (1 << 31) - 1)


def _int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise BitstreamError(f"{what} must be an integer, not {value!r}")
    return int(value)


def validate_groupnet(spec):
    """Check a Group-Net spec; raises :class:`BitstreamError` naming the first problem."""
    fmt = spec["format"]
    for key in _FORMAT_KEYS:
        _int(fmt.get(key), f"the fixed-point format's {key}")
    if not 2 <= fmt["width"] <= 32 or not 0 <= fmt["frac"] < fmt["width"]:
        raise BitstreamError(f"fixed-point width {fmt['width']} with {fmt['frac']} fractional "
                             f"bits is not supported (width 2..32, frac below width)")
    c = _int(spec["channels"], "channels")
    for key in ("height", "width"):
        if _int(spec[key], key) < 1:
            raise BitstreamError(f"the map {key} must be positive, not {spec[key]}")
    if not spec["groups"]:
        raise BitstreamError("the Group-Net has no groups")
    k_count = len(spec["groups"][0]["units"])
    if not 1 <= k_count <= 8:
        raise BitstreamError(f"a Group-Net has 1 to 8 bases, not {k_count}")
    for g, group in enumerate(spec["groups"]):
        where = f"group {g}"
        if len(group["units"]) != k_count:
            raise BitstreamError(f"{where} has {len(group['units'])} bases, group 0 has {k_count}")
        if len(group["lambdas"]) != k_count:
            raise BitstreamError(f"{where} has {len(group['lambdas'])} lambdas for {k_count} bases")
        gate = group["gate"]
        if gate is not None:
            if g == 0:
                raise BitstreamError("group 0 cannot have a soft connection (no previous group)")
            if not 0 <= _int(gate, f"{where}'s gate") <= 1 << fmt["gate_frac"]:
                raise BitstreamError(f"{where}'s gate {gate} is outside [0, "
                                     f"{1 << fmt['gate_frac']}]")
        lengths = {len(base) for base in group["units"]}
        if len(lengths) != 1 or 0 in lengths:
            raise BitstreamError(f"{where}: every base needs the same, non-zero number of units")
        for k, base in enumerate(group["units"]):
            for j, unit in enumerate(base):
                name = f"{where}, base {k}, unit {j}"
                if np.asarray(unit["weights"]).shape != (c, 9 * c):
                    raise BitstreamError(f"{name}: weights of shape "
                                         f"{np.asarray(unit['weights']).shape}, expected "
                                         f"{(c, 9 * c)}")
                for key in ("scale", "shift"):
                    v = np.asarray(unit[key])
                    if v.shape != (c,):
                        raise BitstreamError(f"{name}: {v.size} {key} values for {c} channels")
                    if v.min() < _INT32[0] or v.max() > _INT32[1]:
                        raise BitstreamError(f"{name}: {key} does not fit in 32 bits")
                act = unit.get("act")
                if act is not None:
                    bits = _int(act.get("bits"), f"{name}'s activation bits")
                    if not 2 <= bits <= 8:
                        raise BitstreamError(f"{name}: {bits}-bit activations; the hardware "
                                             f"takes 2 to 8 bits (binary ones: act None)")
                    if not 0 < _int(act.get("mult"), f"{name}'s activation multiplier") \
                            <= _INT32[1]:
                        raise BitstreamError(f"{name}: activation multiplier {act['mult']} is "
                                             f"not a positive 32-bit integer")
                    if not 0 <= _int(act.get("frac"), f"{name}'s activation fraction") <= 24:
                        raise BitstreamError(f"{name}: {act['frac']} fractional bits of the "
                                             f"activation multiplier; 0 to 24 are supported")
                d = _int(unit["dilation"], f"{name}'s dilation")
                if d < 1 or 2 * d + 1 > min(spec["height"], spec["width"]) + 2 * d:
                    raise BitstreamError(f"{name}: dilation {d} is not usable")
    return spec


def groupnet_section(spec):
    """``(manifest section, tensors)`` of a validated spec."""
    tensors, groups = {}, []
    for g, group in enumerate(spec["groups"]):
        tensors[f"g{g}.lambda"] = np.asarray(group["lambdas"], dtype=np.int32)
        bases = []
        for k, base in enumerate(group["units"]):
            units = []
            for j, unit in enumerate(base):
                prefix = f"g{g}.b{k}.u{j}"
                tensors[f"{prefix}.weight"] = pack_bits(np.asarray(unit["weights"]))
                tensors[f"{prefix}.scale"] = np.asarray(unit["scale"], dtype=np.int32)
                tensors[f"{prefix}.shift"] = np.asarray(unit["shift"], dtype=np.int32)
                act = unit.get("act")
                units.append({"prefix": prefix, "dilation": int(unit["dilation"]),
                              "act": None if act is None else
                              {k: int(act[k]) for k in ("bits", "mult", "frac")}})
            bases.append(units)
        groups.append({"gate": None if group["gate"] is None else int(group["gate"]),
                       "lambdas": f"g{g}.lambda", "units": bases})
    section = {"kind": "groupnet", "format": dict(spec["format"]), "height": spec["height"],
               "width": spec["width"], "channels": spec["channels"],
               "config": spec.get("config", {}), "groups": groups,
               "unit": "sat(x + shift + round_shift(scale * max(2P - 9C, 0), scale_frac - frac)); "
                       "with act: max(sum w q, 0), q = clip(round_shift(x * mult, frac + "
                       "act.frac), 0, 2^bits - 1)"}
    return section, tensors


def groupnet_from_section(section, tensors, path):
    """The spec back from a manifest section and the file's tensors."""
    def tensor(name):
        if name not in tensors:
            raise BitstreamError(f"{path}: the manifest names tensor {name!r} but the file "
                                 f"has none")
        return tensors[name]

    c = section["channels"]
    groups = []
    for group in section["groups"]:
        bases = []
        for base in group["units"]:
            units = []
            for unit in base:
                packed = tensor(f"{unit['prefix']}.weight")
                if packed.shape != (c, (9 * c + 7) // 8):
                    raise BitstreamError(f"{path}: {unit['prefix']}: the manifest says {c} "
                                         f"channels but the weight tensor is "
                                         f"{'x'.join(map(str, packed.shape))}")
                units.append({"weights": unpack_bits(packed, 9 * c),
                              "scale": tensor(f"{unit['prefix']}.scale").astype(np.int64),
                              "shift": tensor(f"{unit['prefix']}.shift").astype(np.int64),
                              "dilation": unit["dilation"], "act": unit.get("act")})
            bases.append(units)
        groups.append({"gate": group["gate"],
                       "lambdas": tensor(group["lambdas"]).astype(np.int64), "units": bases})
    return {"format": section["format"], "height": section["height"],
            "width": section["width"], "channels": c, "config": section.get("config", {}),
            "groups": groups}

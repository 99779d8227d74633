"""Per-phone mouth targets (visemes) in ARKit weights, and the dominance that decides coarticulation.

Why a table and not rules in the renderer: the ground truth the model learns is only as good as these
numbers, so they live in one place, cover every symbol of ``engine.phonemes.PHONES`` and are checked by
tests. Each phone has a target per articulator channel and, per articulator *group*, a Cohen-Massaro
dominance (how strongly the phone pulls that articulator toward its target) with separate decay rates
before (anticipation) and after (carry-over) the segment.

Groups, so that one phone can dominate one articulator and leave another free:

- ``jaw``: jawOpen, jawForward.
- ``closure``: the virtual ``closure`` channel alone. Bilabials dominate it almost absolutely over
  their whole segment, with a steep decay, so lips close on every p/b/m whatever the neighbours and
  part at the release -- contact is close to a step, while the jaw around it moves smoothly.
- ``lips``: lip shape and aperture (press, roll, shrug, lower-down, upper-up, cheek puff); the
  labiodentals dominate it (lower lip under the upper teeth).
- ``rounding``: funnel and pucker. Rounded vowels dominate it with a slow anticipatory decay, so rounding
  starts during the consonants before them (anticipatory rounding, "s" in "soon").
- ``spread``: stretch, smile, dimple (spread vowels such as IY).
- ``tongue``: tongueOut (dental fricatives).

``closure`` is not an ARKit shape: it is the fraction of the jaw's lip separation that the lips cancel.
The renderer turns it into ``mouthClose = closure * jawOpen`` -- ARKit's own convention, where
mouthClose at the value of jawOpen closes the lips over an open jaw -- and suppresses the lip-opening
shapes by ``1 - closure``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.arkit import ARKIT_INDEX, ARKIT_NAMES
from engine.phonemes import BILABIALS, LABIODENTALS, PHONES, ROUNDED, SILENCE, VOWELS

GROUPS: tuple[str, ...] = ("jaw", "closure", "lips", "rounding", "spread", "tongue")
CLOSURE = "closure"  # virtual channel, see module docstring

_GROUP_CHANNELS: dict[str, tuple[str, ...]] = {
    "jaw": ("jawOpen", "jawForward"),
    "closure": (),
    "lips": (
        "mouthPressLeft", "mouthPressRight", "mouthRollLower", "mouthRollUpper",
        "mouthShrugLower", "mouthShrugUpper", "mouthLowerDownLeft", "mouthLowerDownRight",
        "mouthUpperUpLeft", "mouthUpperUpRight", "cheekPuff",
    ),
    "rounding": ("mouthFunnel", "mouthPucker"),
    "spread": (
        "mouthStretchLeft", "mouthStretchRight", "mouthSmileLeft", "mouthSmileRight",
        "mouthDimpleLeft", "mouthDimpleRight",
    ),
    "tongue": ("tongueOut",),
}  # fmt: skip

SPEECH_CHANNELS: tuple[str, ...] = tuple(c for g in GROUPS for c in _GROUP_CHANNELS[g])
"""ARKit shapes that speech articulation drives (mouthClose is derived from closure and jawOpen)."""

LIP_OPENING_CHANNELS: tuple[str, ...] = (
    "mouthFunnel", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "mouthShrugUpper", "mouthRollLower", "mouthRollUpper", "tongueOut",
)  # fmt: skip
"""Shapes that part the lips; the renderer scales them by ``1 - closure`` so no layer reopens a p/b/m."""

# ---- targets -------------------------------------------------------------------------------------
# Shapes without a side suffix apply to both sides. Values are deviations from the rest face (0).

_VOWEL_TARGETS: dict[str, dict[str, float]] = {
    "AA": {"jawOpen": 0.65, "mouthLowerDown": 0.25, "mouthUpperUp": 0.08},
    "AE": {"jawOpen": 0.50, "mouthLowerDown": 0.30, "mouthUpperUp": 0.15, "mouthStretch": 0.25},
    "AH": {"jawOpen": 0.42, "mouthLowerDown": 0.15},
    "AO": {"jawOpen": 0.50, "mouthFunnel": 0.35, "mouthPucker": 0.15},
    "AW": {"jawOpen": 0.50, "mouthFunnel": 0.28, "mouthPucker": 0.22, "mouthLowerDown": 0.10},
    "AY": {"jawOpen": 0.50, "mouthLowerDown": 0.20, "mouthStretch": 0.15},
    "EH": {"jawOpen": 0.36, "mouthLowerDown": 0.20, "mouthUpperUp": 0.08, "mouthStretch": 0.25},
    "ER": {"jawOpen": 0.22, "mouthFunnel": 0.30, "mouthPucker": 0.22},
    "EY": {"jawOpen": 0.30, "mouthLowerDown": 0.15, "mouthStretch": 0.30, "mouthSmile": 0.10},
    "IH": {"jawOpen": 0.22, "mouthLowerDown": 0.10, "mouthStretch": 0.30},
    "IY": {"jawOpen": 0.15, "mouthUpperUp": 0.05, "mouthStretch": 0.45, "mouthSmile": 0.15},
    "OW": {"jawOpen": 0.35, "mouthFunnel": 0.45, "mouthPucker": 0.35},
    "OY": {"jawOpen": 0.35, "mouthFunnel": 0.35, "mouthPucker": 0.25},
    "UH": {"jawOpen": 0.20, "mouthFunnel": 0.35, "mouthPucker": 0.35},
    "UW": {"jawOpen": 0.12, "mouthFunnel": 0.30, "mouthPucker": 0.70},
    "UE": {"jawOpen": 0.12, "mouthFunnel": 0.25, "mouthPucker": 0.70},
}

_CONSONANT_TARGETS: dict[str, dict[str, float]] = {
    # lips fully closed (closure 1 cancels the jaw's lip separation), pressed, jaw nearly shut
    "P": {CLOSURE: 1.0, "jawOpen": 0.04, "mouthPress": 0.45, "cheekPuff": 0.06},
    "B": {CLOSURE: 1.0, "jawOpen": 0.04, "mouthPress": 0.35, "cheekPuff": 0.04},
    "M": {CLOSURE: 1.0, "jawOpen": 0.04, "mouthPress": 0.25},
    # lower lip rolled in under the upper teeth, upper lip lifted off them
    "F": {"jawOpen": 0.10, "mouthRollLower": 0.60, "mouthUpperUp": 0.22, "mouthShrugLower": 0.10},
    "V": {"jawOpen": 0.10, "mouthRollLower": 0.55, "mouthUpperUp": 0.20, "mouthShrugLower": 0.10},
    "TH": {"jawOpen": 0.15, "tongueOut": 0.35, "mouthUpperUp": 0.05},
    "DH": {"jawOpen": 0.15, "tongueOut": 0.28, "mouthUpperUp": 0.05},
    "S": {"jawOpen": 0.08, "mouthStretch": 0.25, "mouthUpperUp": 0.15, "mouthLowerDown": 0.10},
    "Z": {"jawOpen": 0.08, "mouthStretch": 0.22, "mouthUpperUp": 0.12, "mouthLowerDown": 0.10},
    # post-alveolars: protruded, rounded lips with the teeth showing
    "SH": {"jawOpen": 0.12, "mouthFunnel": 0.40, "mouthPucker": 0.25, "mouthUpperUp": 0.15},
    "ZH": {"jawOpen": 0.12, "mouthFunnel": 0.38, "mouthPucker": 0.25, "mouthUpperUp": 0.12},
    "CH": {"jawOpen": 0.12, "mouthFunnel": 0.38, "mouthPucker": 0.25, "mouthUpperUp": 0.15},
    "JH": {"jawOpen": 0.12, "mouthFunnel": 0.35, "mouthPucker": 0.25, "mouthUpperUp": 0.12},
    "T": {"jawOpen": 0.15, "mouthLowerDown": 0.05},
    "D": {"jawOpen": 0.15, "mouthLowerDown": 0.05},
    "N": {"jawOpen": 0.14, "mouthLowerDown": 0.04},
    "L": {"jawOpen": 0.20, "mouthLowerDown": 0.06},
    "K": {"jawOpen": 0.20},
    "G": {"jawOpen": 0.20},
    "NG": {"jawOpen": 0.16},
    "HH": {"jawOpen": 0.30, "mouthLowerDown": 0.08},
    "R": {"jawOpen": 0.15, "mouthFunnel": 0.25, "mouthPucker": 0.20},
    "RR": {"jawOpen": 0.20, "mouthLowerDown": 0.05},
    "W": {"jawOpen": 0.08, "mouthFunnel": 0.30, "mouthPucker": 0.75},
    "Y": {"jawOpen": 0.12, "mouthStretch": 0.30},
    "X": {"jawOpen": 0.20, "mouthLowerDown": 0.05},
    "NY": {"jawOpen": 0.12, "mouthLowerDown": 0.05},
}

SPREAD_VOWELS = frozenset({"IY", "IH", "EY", "EH", "AE"})
SIBILANTS = frozenset({"S", "Z", "SH", "ZH", "CH", "JH"})


@dataclass(frozen=True)
class Dominance:
    """Cohen-Massaro dominance of one phone over one articulator group.

    ``strength`` scales the phone's pull; ``rate_before``/``rate_after`` (1/s) are the exponential
    decay away from the segment's core toward earlier (anticipation) and later (carry-over) times;
    a small ``rate_before`` lets the gesture start early.
    """

    strength: float
    rate_before: float = 25.0
    rate_after: float = 25.0


def _dominance(phone: str) -> dict[str, Dominance]:
    """Articulatory reasoning per phone class: which articulators does this sound actually need?

    Strengths are relative: what matters is a phone's dominance against its neighbours'. A strong
    phone with a steep rate holds its target over its segment and lets go quickly after it.
    """
    groups: dict[str, Dominance]
    if phone == SILENCE:
        groups = {g: Dominance(1.0, 18.0, 18.0) for g in GROUPS}
        groups["rounding"] = Dominance(3.0, 18.0, 18.0)  # long pauses un-round even before UW
        return groups
    # defaults: a lingual consonant (t d n l k g ng hh y x rr ny) leaves lips and jaw largely free
    groups = {
        "jaw": Dominance({"HH": 0.1, "K": 0.4, "G": 0.4, "NG": 0.4}.get(phone, 0.6)),
        "closure": Dominance(0.5),
        "lips": Dominance(0.05 if phone == "HH" else 0.2),
        "rounding": Dominance(0.1),
        "spread": Dominance(1.0 if phone == "Y" else 0.2),
        "tongue": Dominance(0.2),
    }
    rounded = phone in ROUNDED
    if phone in BILABIALS:
        groups |= {
            "jaw": Dominance(1.2, 30.0, 30.0),
            "closure": Dominance(300.0, 400.0, 400.0),  # half-released ~14 ms after the segment
            "lips": Dominance(5.0, 40.0, 40.0),
            "rounding": Dominance(0.15),  # free: "boot" rounds during the b
            "spread": Dominance(0.3),
        }
    elif phone in LABIODENTALS:
        groups |= {
            "jaw": Dominance(1.2, 30.0, 30.0),
            "lips": Dominance(20.0, 150.0, 150.0),
            "rounding": Dominance(0.15),
            "spread": Dominance(0.3),
        }
    elif phone in VOWELS:
        groups |= {
            "jaw": Dominance(1.5, 20.0, 20.0),
            "closure": Dominance(1.0),
            "lips": Dominance(0.8),
            "rounding": Dominance(2.5, 7.0, 18.0) if rounded else Dominance(0.6),
            "spread": Dominance(1.5 if phone in SPREAD_VOWELS else 0.6),
            "tongue": Dominance(0.5),
        }
    elif phone in {"TH", "DH"}:
        groups |= {
            "jaw": Dominance(1.2, 30.0, 30.0),
            "lips": Dominance(0.5),
            "rounding": Dominance(0.2),
            "spread": Dominance(0.3),
            "tongue": Dominance(10.0, 100.0, 100.0),
        }
    elif phone in SIBILANTS:
        groups |= {
            "jaw": Dominance(2.0, 30.0, 30.0),  # sibilants need a nearly closed jaw
            "lips": Dominance(0.8),
            "rounding": Dominance(3.0, 10.0, 18.0) if rounded else Dominance(0.3),
            "spread": Dominance(0.8),
            "tongue": Dominance(1.0),
        }
    elif phone == "W":
        groups |= {
            "jaw": Dominance(1.0),
            "lips": Dominance(2.0),
            "rounding": Dominance(6.0, 14.0, 25.0),
            "spread": Dominance(1.0),
        }
    elif phone == "R":
        groups |= {
            "jaw": Dominance(1.0),
            "lips": Dominance(0.5),
            "rounding": Dominance(2.0, 10.0, 20.0),
            "spread": Dominance(0.5),
        }
    return groups


def _core_fraction(phone: str) -> float:
    """Share of the segment (around its centre) over which the phone holds its target fully."""
    if phone in BILABIALS or phone in LABIODENTALS:
        return 1.0  # closure spans the whole segment
    if phone in VOWELS:
        return 0.5
    return 0.3


def _expand_sides(targets: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in targets.items():
        if name == CLOSURE or name in ARKIT_INDEX:
            out[name] = value
        else:
            left, right = name + "Left", name + "Right"
            if left not in ARKIT_INDEX or right not in ARKIT_INDEX:
                raise KeyError(f"viseme table names unknown ARKit shape {name!r}")
            out[left] = out[right] = value
    return out


@dataclass(frozen=True)
class VisemeTable:
    """Everything the renderer needs, as arrays indexed by ``PHONES`` order for vectorised lookup."""

    targets: np.ndarray  # [P, 52] ARKit targets (mouthClose column unused: derived from closure)
    closure: np.ndarray  # [P] lip closure target 0..1
    strength: np.ndarray  # [P, G] dominance strength per group
    rate_before: np.ndarray  # [P, G] 1/s
    rate_after: np.ndarray  # [P, G] 1/s
    core_fraction: np.ndarray  # [P]
    closes_lips: np.ndarray  # [P] bool, p/b/m
    group_of_channel: np.ndarray  # [52] group index per ARKit channel, -1 when speech does not drive it
    closure_group: int


def build_table() -> VisemeTable:
    n_phones, n_groups = len(PHONES), len(GROUPS)
    targets = np.zeros((n_phones, len(ARKIT_NAMES)), np.float32)
    closure = np.zeros(n_phones, np.float32)
    strength = np.zeros((n_phones, n_groups), np.float32)
    rate_before = np.zeros((n_phones, n_groups), np.float32)
    rate_after = np.zeros((n_phones, n_groups), np.float32)
    core = np.zeros(n_phones, np.float32)
    speech = set(SPEECH_CHANNELS)
    for p, phone in enumerate(PHONES):
        raw = {} if phone == SILENCE else (_VOWEL_TARGETS.get(phone) or _CONSONANT_TARGETS[phone])
        for name, value in _expand_sides(raw).items():
            if name == CLOSURE:
                closure[p] = value
            elif name not in speech:
                raise KeyError(f"viseme for {phone} drives {name}, which is not a speech channel")
            else:
                targets[p, ARKIT_INDEX[name]] = value
        dominance = _dominance(phone)
        for g, group in enumerate(GROUPS):
            strength[p, g] = dominance[group].strength
            rate_before[p, g] = dominance[group].rate_before
            rate_after[p, g] = dominance[group].rate_after
        core[p] = _core_fraction(phone)
    group_of_channel = np.full(len(ARKIT_NAMES), -1, np.int64)
    for g, group in enumerate(GROUPS):
        for name in _GROUP_CHANNELS[group]:
            group_of_channel[ARKIT_INDEX[name]] = g
    closes = np.array([p in BILABIALS for p in PHONES])
    return VisemeTable(
        targets, closure, strength, rate_before, rate_after, core, closes, group_of_channel,
        GROUPS.index(CLOSURE),
    )  # fmt: skip


TABLE = build_table()


def viseme(phone: str) -> dict[str, float]:
    """The non-zero target weights of one phone, by ARKit name (plus ``closure``), for inspection."""
    if phone not in PHONES:
        raise ValueError(f"unknown phone {phone!r}; the inventory is engine.phonemes.PHONES")
    p = PHONES.index(phone)
    out = {ARKIT_NAMES[i]: float(v) for i, v in enumerate(TABLE.targets[p]) if v}
    if TABLE.closure[p]:
        out[CLOSURE] = float(TABLE.closure[p])
    return out

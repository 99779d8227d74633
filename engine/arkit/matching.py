"""Match the 52 ARKit names to the shape keys a character already has.

Rigs name the same shape many ways (``jawOpen``, ``Jaw_Open``, ``blendShape1.jawOpen``,
``A25_Jaw_Open``, CC4's ``Jaw_Open``, ``eyeBlink_L``, ``EYEBLINKLEFT``). We reduce every name to a
canonical (body, side) pair so that spelling, case, separators and export prefixes stop mattering,
then add the few vendor aliases whose wording differs (CC4 ``Brow_Drop_L`` is ARKit
``browDownLeft``). Names with no word breaks at all (``eyeblinkleft``, ``JAWOPEN``) cannot be split
into body and side, so they are compared as one squashed word. This module is the only place that
matches names: the Blender add-on calls it too. Matching never raises: what is not found is
reported so the user can fill it in by hand.

The second half turns a match into what a take needs: the channel table (ARKit index -> key name)
and the output mode of a mesh (ARKit keys or vertex motion).
"""

from __future__ import annotations

import re
from collections import abc
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.arkit.names import ARKIT_INDEX, ARKIT_NAMES

_LEFT = "left"
_RIGHT = "right"
_SIDE_TOKENS = {"l": _LEFT, "left": _LEFT, "lf": _LEFT, "r": _RIGHT, "right": _RIGHT, "rt": _RIGHT}

# Vendor names whose words differ from ARKit's, written in their own spelling and normalised at import.
# CC3+/CC4 (Reallusion "ARKit compatible" expression set), VRoid/VRM presets.
_VENDOR_ALIASES: dict[str, tuple[str, ...]] = {
    "eyeLookDownLeft": ("Eye_L_Look_Down",),
    "eyeLookDownRight": ("Eye_R_Look_Down",),
    "eyeLookUpLeft": ("Eye_L_Look_Up",),
    "eyeLookUpRight": ("Eye_R_Look_Up",),
    # The subject's left eye looking to the subject's left is looking out.
    "eyeLookOutLeft": ("Eye_L_Look_L",),
    "eyeLookInLeft": ("Eye_L_Look_R",),
    "eyeLookOutRight": ("Eye_R_Look_R",),
    "eyeLookInRight": ("Eye_R_Look_L",),
    "eyeBlinkLeft": ("Fcl_EYE_Close_L", "Blink_L"),
    "eyeBlinkRight": ("Fcl_EYE_Close_R", "Blink_R"),
    "mouthRollLower": ("Mouth_Roll_In_Lower",),
    "mouthRollUpper": ("Mouth_Roll_In_Upper",),
    "mouthLowerDownLeft": ("Mouth_Down_Lower_L",),
    "mouthLowerDownRight": ("Mouth_Down_Lower_R",),
    "mouthUpperUpLeft": ("Mouth_Up_Upper_L",),
    "mouthUpperUpRight": ("Mouth_Up_Upper_R",),
    "browDownLeft": ("Brow_Drop_L",),
    "browDownRight": ("Brow_Drop_R",),
    "browOuterUpLeft": ("Brow_Raise_Outer_L",),
    "browOuterUpRight": ("Brow_Raise_Outer_R",),
    "cheekSquintLeft": ("Cheek_Raise_L",),
    "cheekSquintRight": ("Cheek_Raise_R",),
    "tongueOut": ("Tongue_Out", "V_Tongue_Out"),
}

# "A25_", "AK_25_", "B03-" style numbering that some exporters put in front of every key.
_NUMBER_PREFIX = re.compile(r"^(?:[a-z]{1,3}_?\d{1,3}|\d{1,3})(?=[_\-\s.])", re.IGNORECASE)
_CAMEL_SPLIT = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
# Glued-on namespaces that word splitting cannot see ("ARKit_eyeBlinkLeft" splits into "ar kit ...",
# "bsjawopen" is one word); only stripped when what remains is a known name.
_SQUASHED_PREFIXES = ("arkit", "blendshapes", "blendshape", "shapes", "shape", "bs", "key")


def _tokens(name: str) -> list[str]:
    """Lower-case words of a key name, with namespace and numbering prefixes removed."""
    # "blendShape1.jawOpen", "Face.jawOpen", "Genesis:jawOpen", "head|jawOpen": keep the last part.
    parts = [p for p in re.split(r"[.:|/]", name.strip()) if p]
    # Blender's duplicate suffix ("jawOpen.001") is not a namespace: drop it before taking the last part.
    while len(parts) > 1 and parts[-1].isdigit():
        parts.pop()
    name = parts[-1] if parts else name
    name = _NUMBER_PREFIX.sub("", name)
    words: list[str] = []
    for chunk in re.split(r"[\s_\-]+", name):
        words.extend(w.lower() for w in _CAMEL_SPLIT.findall(chunk))
    return words


def canonical_key(name: str) -> tuple[str, str]:
    """(body, side) for a shape name: ``'eyeBlink_L'`` and ``'EyeBlinkLeft'`` -> ``('eyeblink', 'left')``."""
    words = _tokens(name)
    side = ""
    if len(words) > 1 and words[-1] in _SIDE_TOKENS:
        side = _SIDE_TOKENS[words.pop()]
    return "".join(words), side


@dataclass
class ShapeKeyMapping:
    """Result of matching: ``matched`` ARKit name -> key name, plus what needs the user's attention."""

    matched: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    # ARKit name -> the equally good candidates; none of them is chosen, the user picks.
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    # Override entries that named a key the mesh does not have (ignored, reported).
    invalid_overrides: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.ambiguous


def squashed_key(name: str) -> str:
    """A name as one lower-case word (prefixes removed): ``'EYE_BLINK_L'`` -> ``'eyeblinkleft'``."""
    body, side = canonical_key(name)
    return body + side


def _build_index() -> dict[tuple[str, str], str]:
    index: dict[tuple[str, str], str] = {}
    for arkit in ARKIT_NAMES:
        index[canonical_key(arkit)] = arkit
    for arkit, aliases in _VENDOR_ALIASES.items():
        for alias in aliases:
            index.setdefault(canonical_key(alias), arkit)
    return index


_INDEX = _build_index()
# "eyeblinkleft" -> "eyeBlinkLeft": for names whose words (and so whose side) cannot be told apart.
_SQUASHED_INDEX = {body + side: arkit for (body, side), arkit in _INDEX.items()}


def arkit_name_for(key_name: str) -> str | None:
    """The ARKit name a shape key stands for, or None when it is not an ARKit shape."""
    found = _INDEX.get(canonical_key(key_name))
    if found is not None:
        return found
    squashed = squashed_key(key_name)
    found = _SQUASHED_INDEX.get(squashed)
    if found is not None:
        return found
    for prefix in _SQUASHED_PREFIXES:
        if squashed.startswith(prefix) and squashed[len(prefix) :] in _SQUASHED_INDEX:
            return _SQUASHED_INDEX[squashed[len(prefix) :]]
    return None


def _rank(arkit: str, key: str) -> int:
    """Lower is better: exact spelling beats a case change beats a normalised, squashed or vendor match."""
    if key == arkit:
        return 0
    if key.lower() == arkit.lower():
        return 1
    if canonical_key(key) == canonical_key(arkit):
        return 2
    if squashed_key(key) == squashed_key(arkit):
        return 3
    return 4


def map_shape_keys(names: Iterable[str], overrides: abc.Mapping[str, str] | None = None) -> ShapeKeyMapping:
    """Match ARKit names to ``names`` (the mesh's shape keys).

    ``overrides`` is the user's editable table (ARKit name -> key name); an empty value means
    "this shape has no key" and marks it missing on purpose. Never raises on missing shapes.
    """
    names = [n for n in names if isinstance(n, str) and n]
    present = set(names)
    result = ShapeKeyMapping()
    candidates: dict[str, list[str]] = {}
    for key in names:
        arkit = arkit_name_for(key)
        if arkit is not None:
            candidates.setdefault(arkit, []).append(key)

    overrides = dict(overrides or {})
    for arkit in ARKIT_NAMES:
        if arkit in overrides:
            chosen = overrides[arkit]
            if not chosen:
                result.missing.append(arkit)
                continue
            if chosen in present:
                result.matched[arkit] = chosen
                continue
            result.invalid_overrides[arkit] = chosen
        found = candidates.get(arkit, [])
        if not found:
            result.missing.append(arkit)
            continue
        best = min(_rank(arkit, k) for k in found)
        top = [k for k in found if _rank(arkit, k) == best]
        if len(top) == 1:
            result.matched[arkit] = top[0]
        else:
            result.ambiguous[arkit] = sorted(top)
    for name in overrides:
        if name not in ARKIT_NAMES:
            result.invalid_overrides[name] = overrides[name]
    return result


# Short alias used in the retargeting docs.
Mapping = ShapeKeyMapping


# ---- output mode --------------------------------------------------------------------------------

ARKIT = "ARKIT"
VERTEX = "VERTEX"
AUTO = "AUTO"
OUTPUT_MODES = (AUTO, ARKIT, VERTEX)

# Auto mode uses ARKit keys only when the rig can actually speak with them: the jaw key plus a
# quarter of the 52 shapes. Fewer than that and vertex mode animates the face more faithfully.
MIN_ARKIT_KEYS = 13
_REQUIRED_FOR_SPEECH = ARKIT_INDEX["jawOpen"]


def match_arkit_keys(
    key_names: Iterable[str], overrides: abc.Mapping[str, str] | None = None
) -> dict[int, str]:
    """ARKit channel index -> the mesh's own key name.

    `overrides` (ARKit name -> key name, '' for "no key") is the user's table and always wins;
    shapes the matcher finds ambiguous are left for the user to choose."""
    mapping = map_shape_keys(key_names, overrides)
    return {ARKIT_INDEX[arkit]: key for arkit, key in mapping.matched.items()}


def speaks_arkit(matched: abc.Mapping[int, str]) -> bool:
    """True when the matched keys can carry speech: the jaw plus enough of the other shapes."""
    has_jaw = _REQUIRED_FOR_SPEECH in matched
    return has_jaw and len(matched) >= MIN_ARKIT_KEYS


def resolve_output_mode(requested: str, matched: abc.Mapping[int, str]) -> str:
    """ARKIT or VERTEX for a mesh: AUTO decides from the matched keys; an explicit ARKIT request on
    a rig without ARKit keys is an error (ValueError)."""
    requested = requested.upper()
    if requested == VERTEX:
        return VERTEX
    if requested == ARKIT:
        if not matched:
            raise ValueError(
                "ARKit output needs shape keys named like ARKit blendshapes (jawOpen, eyeBlinkLeft, ...); "
                "this mesh has none -- choose Vertex output or add the keys"
            )
        return ARKIT
    if requested != AUTO:
        raise ValueError(f"unknown output mode {requested!r}; use AUTO, ARKIT or VERTEX")
    return ARKIT if speaks_arkit(matched) else VERTEX

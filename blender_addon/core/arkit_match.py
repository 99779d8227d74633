"""Which of a mesh's shape keys are ARKit blendshapes, and which output mode a mesh gets.

Rigs name ARKit keys inconsistently ('jawOpen', 'JawOpen', 'jaw_open', 'ARKit.jawOpen'), so names
are compared after lower-casing and dropping separators and a few common prefixes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from engine.arkit import ARKIT_NAMES

ARKIT = "ARKIT"
VERTEX = "VERTEX"
AUTO = "AUTO"

# Auto mode uses ARKit keys only when the rig can actually speak with them: the jaw key plus a
# quarter of the 52 shapes. Fewer than that and vertex mode animates the face more faithfully.
MIN_ARKIT_KEYS = 13
_REQUIRED_FOR_SPEECH = "jawopen"
_PREFIXES = ("arkit", "blendshape", "bs", "shapes", "key")


def canonical(name: str) -> str:
    key = re.sub(r"[^0-9a-z]", "", name.lower())
    for prefix in _PREFIXES:
        if key.startswith(prefix) and key[len(prefix) :] in _CANONICAL_ARKIT:
            return key[len(prefix) :]
    return key


_CANONICAL_ARKIT: dict[str, int] = {re.sub(r"[^0-9a-z]", "", n.lower()): i for i, n in enumerate(ARKIT_NAMES)}


def match_arkit_keys(key_names: Iterable[str]) -> dict[int, str]:
    """ARKit channel index -> the mesh's own key name. The first key wins when a rig has duplicates."""
    matched: dict[int, str] = {}
    for name in key_names:
        index = _CANONICAL_ARKIT.get(canonical(name))
        if index is not None and index not in matched:
            matched[index] = name
    return matched


def speaks_arkit(matched: dict[int, str]) -> bool:
    has_jaw = any(canonical(ARKIT_NAMES[i]) == _REQUIRED_FOR_SPEECH for i in matched)
    return has_jaw and len(matched) >= MIN_ARKIT_KEYS


def choose_mode(requested: str, matched: dict[int, str]) -> str:
    """Resolve AUTO; an explicit ARKIT request on a rig without ARKit keys is an error."""
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

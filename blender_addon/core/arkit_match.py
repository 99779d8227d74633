"""Which of a mesh's shape keys are ARKit blendshapes, and which output mode a mesh gets.

The engine's matcher (engine.arkit_names: vendor aliases, '_L'/'_R' sides, export prefixes, the
user's override table) decides first; names it cannot split into words ('eyeblinkleft',
'JAWOPEN') are then compared case-insensitively with separators and a few prefixes dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from engine.arkit import ARKIT_INDEX, ARKIT_NAMES

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


def match_arkit_keys(key_names: Iterable[str], overrides: dict[str, str] | None = None) -> dict[int, str]:
    """ARKit channel index -> the mesh's own key name.

    `overrides` (ARKit name -> key name, '' for "no key") is the user's table and always wins;
    shapes the engine's matcher finds ambiguous are left for the user to choose."""
    from engine.arkit_names import map_shape_keys

    names = [n for n in key_names if isinstance(n, str) and n]
    mapping = map_shape_keys(names, overrides)
    matched = {ARKIT_INDEX[arkit]: key for arkit, key in mapping.matched.items()}
    used = set(matched.values())
    undecidable = set(mapping.ambiguous) | {a for a, key in (overrides or {}).items() if not key}
    for name in names:  # the case-insensitive fallback
        index = _CANONICAL_ARKIT.get(canonical(name))
        if index is None or index in matched or name in used or ARKIT_NAMES[index] in undecidable:
            continue
        matched[index] = name
        used.add(name)
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
